// common.wgsl: the prelude prepended to every kernel file (WGSL has no includes).
//
// Large 1-D dispatches fold their workgroups into x and y (Gpu::grid_1d) because a device
// allows at most 65,535 (or its own limit) workgroups per dimension; 2-D ones fold y into z
// (Gpu::grid_2d). These helpers rebuild the flat indices.

// Workgroup size of the 1-D kernels (Rust: gpu::WG_1D).
const WG: u32 = 256u;

// Flat workgroup index of a folded 1-D grid.
fn flat_group(wid: vec3<u32>, nwg: vec3<u32>) -> u32 {
    return wid.x + wid.y * nwg.x;
}

// Flat thread index of a folded 1-D grid of WG-wide workgroups.
fn flat_id(wid: vec3<u32>, nwg: vec3<u32>, lid: vec3<u32>) -> u32 {
    return flat_group(wid, nwg) * WG + lid.x;
}

// The y workgroup index of a 2-D grid whose y folded into z.
fn fold_yz(wid: vec3<u32>, nwg: vec3<u32>) -> u32 {
    return wid.y + wid.z * nwg.y;
}

// Numerically stable softplus: log(1 + exp(x)).
fn softplus(x: f32) -> f32 {
    return max(x, 0.0) + log(1.0 + exp(-abs(x)));
}

fn sigmoid(x: f32) -> f32 {
    // exp of a non-positive argument only: no overflow for large |x|.
    let e = exp(-abs(x));
    return select(e / (1.0 + e), 1.0 / (1.0 + e), x >= 0.0);
}

// tanh from exp of a non-positive argument: some drivers' builtin tanh returns NaN for large |x|.
fn tanh_s(x: f32) -> f32 {
    let e = exp(-2.0 * abs(x));
    return sign(x) * (1.0 - e) / (1.0 + e);
}

// ELU with alpha = 1.
fn elu(x: f32) -> f32 {
    return select(exp(x) - 1.0, x, x > 0.0);
}

// Activations shared by kernels that fuse one (matmul, conv): 0 none, 1 ReLU, 2 ELU.
fn activate(x: f32, act: u32) -> f32 {
    switch act {
        case 1u: { return max(x, 0.0); }
        case 2u: { return elu(x); }
        default: { return x; }
    }
}

// The derivative of `activate(x, act)` from its output y = activate(x, act) (ReLU: 1 where
// y > 0; ELU: 1 or y + 1): what a backward pass that saved only the output multiplies by.
fn activate_grad(y: f32, act: u32) -> f32 {
    switch act {
        case 1u: { return select(0.0, 1.0, y > 0.0); }
        case 2u: { return select(y + 1.0, 1.0, y > 0.0); }
        default: { return 1.0; }
    }
}
