// elementwise.wgsl: unary and binary elementwise ops and their backward passes.
//
// Bindings: 0 params (uniform), 1 x / a (read), 2 b (read), 3 gy / gz (read), 4 out (read_write).
// Entry points (all 1-D, workgroup (WG=256,1,1), grid folded by Gpu::grid_1d):
//   unary            y[i] = f(x[i])                      uses 1 x, 4 y
//   unary_backward   gx[i] (+)= gy[i] * f'(x[i] | y[i])  uses 1 x-or-y, 3 gy, 4 gx   [backward]
//   binary           z[i] = a[i % la] op b[i % lb]       uses 1 a, 2 b, 4 z
//   binary_backward  g(a or b)[j] (+)= sum over the broadcast copies of dz * d(op)   [backward]
//                                                        uses 1 a, 2 b, 3 gz, 4 g
//   axpy             y[i] += alpha * x[i]                uses 1 x, 4 y
//
// Variants are override constants, not copies:
//   OP (unary):  0 affine alpha*x+beta, 1 relu, 2 elu, 3 tanh, 4 sigmoid, 5 softplus, 6 exp,
//                7 square
//   FROM_OUTPUT: unary_backward reads y = f(x) instead of x (relu, elu, tanh, sigmoid, exp).
//   BOP (binary): 0 add, 1 sub, 2 mul
//   WHICH: binary_backward computes the gradient of a (0) or b (1).
//   ACC: backward entries add into gx instead of overwriting it.
// Broadcasting: an operand of length la < n is indexed i % la (a row vector against [rows, la]
// or a scalar with la = 1); its gradient sums over the n / la copies.

struct Params {
    n: u32,     // elements of the output (unary, binary) or of the gradient (binary_backward)
    la: u32,    // length of a (binary) / copies count (binary_backward: rows = n_out / l_grad)
    lb: u32,    // length of b
    n_out: u32, // binary_backward: elements of dz
    alpha: f32,
    beta: f32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> in1: array<f32>;
@group(0) @binding(2) var<storage, read> in2: array<f32>;
@group(0) @binding(3) var<storage, read> io3: array<f32>;
@group(0) @binding(4) var<storage, read_write> out4: array<f32>;

override OP: u32 = 0u;
override FROM_OUTPUT: bool = false;
override BOP: u32 = 0u;
override WHICH: u32 = 0u;
override ACC: bool = false;

fn unary_f(x: f32) -> f32 {
    switch OP {
        case 0u: { return p.alpha * x + p.beta; }
        case 1u: { return max(x, 0.0); }
        case 2u: { return elu(x); }
        case 3u: { return tanh_s(x); }
        case 4u: { return sigmoid(x); }
        case 5u: { return softplus(x); }
        case 6u: { return exp(x); }
        default: { return x * x; }
    }
}

// f'(x) from the input x.
fn unary_df_x(x: f32) -> f32 {
    switch OP {
        case 0u: { return p.alpha; }
        case 1u: { return select(0.0, 1.0, x > 0.0); }
        case 2u: { return select(exp(x), 1.0, x > 0.0); }
        case 3u: { let t = tanh_s(x); return 1.0 - t * t; }
        case 4u: { let s = sigmoid(x); return s * (1.0 - s); }
        case 5u: { return sigmoid(x); }
        case 6u: { return exp(x); }
        default: { return 2.0 * x; }
    }
}

// f'(x) from the output y = f(x), for the ops where that is exact.
fn unary_df_y(y: f32) -> f32 {
    switch OP {
        case 1u: { return select(0.0, 1.0, y > 0.0); }
        case 2u: { return select(y + 1.0, 1.0, y > 0.0); }
        case 3u: { return 1.0 - y * y; }
        case 4u: { return y * (1.0 - y); }
        case 6u: { return y; }
        default: { return 0.0; }
    }
}

@compute @workgroup_size(WG)
fn unary(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
         @builtin(local_invocation_id) lid: vec3<u32>) {
    let i = flat_id(wid, nwg, lid);
    if i >= p.n { return; }
    out4[i] = unary_f(in1[i]);
}

@compute @workgroup_size(WG)
fn unary_backward(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                  @builtin(local_invocation_id) lid: vec3<u32>) {
    let i = flat_id(wid, nwg, lid);
    if i >= p.n { return; }
    var d: f32;
    if FROM_OUTPUT { d = unary_df_y(in1[i]); } else { d = unary_df_x(in1[i]); }
    let g = io3[i] * d;
    if ACC { out4[i] += g; } else { out4[i] = g; }
}

fn binary_f(a: f32, b: f32) -> f32 {
    switch BOP {
        case 0u: { return a + b; }
        case 1u: { return a - b; }
        default: { return a * b; }
    }
}

@compute @workgroup_size(WG)
fn binary(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
          @builtin(local_invocation_id) lid: vec3<u32>) {
    let i = flat_id(wid, nwg, lid);
    if i >= p.n { return; }
    out4[i] = binary_f(in1[i % p.la], in2[i % p.lb]);
}

// One thread per element j of the gradient (length p.n); loops over the p.n_out / p.n copies
// of j in dz (consecutive threads read consecutive dz: coalesced).
@compute @workgroup_size(WG)
fn binary_backward(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                   @builtin(local_invocation_id) lid: vec3<u32>) {
    let j = flat_id(wid, nwg, lid);
    if j >= p.n { return; }
    var s = 0.0;
    for (var i = j; i < p.n_out; i += p.n) {
        let gz = io3[i];
        switch BOP {
            case 0u: { s += gz; }
            case 1u: { s += select(gz, -gz, WHICH == 1u); }
            default: {
                // d(a*b)/da = b, d(a*b)/db = a
                if WHICH == 0u { s += gz * in2[i % p.lb]; } else { s += gz * in1[i % p.la]; }
            }
        }
    }
    if ACC { out4[j] += s; } else { out4[j] = s; }
}

@compute @workgroup_size(WG)
fn axpy(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_id) lid: vec3<u32>) {
    let i = flat_id(wid, nwg, lid);
    if i >= p.n { return; }
    out4[i] += p.alpha * in1[i];
}
