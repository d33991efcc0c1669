// adam.wgsl: global-norm gradient clipping and the Adam update over ONE flat buffer holding
// every parameter tensor (PyTorch clip_grad_norm_ + torch.optim.Adam, weight decay 0).
// A whole update is three dispatches, whatever the number of parameter tensors:
//
//   sumsq_partial  partials[w] = sum of g[i]^2 over chunk w of CHUNK = WG * PER_THREAD values.
//                  One workgroup (WG,1,1) per chunk (groups folded by Gpu::grid_1d): strided
//                  coalesced loads, then a shared-memory tree. Uses 1 g, 2 partials.
//   norm_finish    ONE workgroup (WG,1,1): total = sqrt(sum of the partials);
//                  norm[0] = total; coef[0] = min(max_norm / (total + 1e-6), 1) when CLIP,
//                  else 1. Uses 2 partials, 3 norm, 4 coef.
//   adam_update    one thread per parameter (workgroup (WG,1,1), grid folded by Gpu::grid_1d):
//                    g  = grad[i] * coef[0]
//                    m  = m + (1 - beta1) * (g - m)          (torch lerp_)
//                    v  = beta2 * v + (1 - beta2) * g * g    (torch mul_ + addcmul_)
//                    p  = p - step_size * m / (sqrt(v) / sqrt_bc2 + eps)   (torch addcdiv_)
//                  with step_size = lr / (1 - beta1^t) and sqrt_bc2 = sqrt(1 - beta2^t) computed
//                  on the host in f64 (as PyTorch does with Python floats). The gradient buffer
//                  is only read. Uses 1 g, 4 coef, 5 param, 6 m, 7 v.
// No entry point is a backward pass. Overrides: CLIP (norm_finish: clip or report coef = 1).
// Non-finite gradients are not special-cased: they propagate as in PyTorch (a NaN or inf norm
// makes the clip coefficient NaN or 0 and the parameters NaN).

struct Params {
    n: u32,          // parameters
    n_partials: u32, // chunks of sumsq_partial
    _pad0: u32,
    _pad1: u32,
    max_norm: f32,
    beta1: f32,
    beta2: f32,
    one_minus_beta1: f32,
    one_minus_beta2: f32,
    step_size: f32,
    sqrt_bc2: f32,
    eps: f32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> grad: array<f32>;
@group(0) @binding(2) var<storage, read_write> partials: array<f32>;
@group(0) @binding(3) var<storage, read_write> norm: array<f32>;
@group(0) @binding(4) var<storage, read_write> coef: array<f32>;
@group(0) @binding(5) var<storage, read_write> param: array<f32>;
@group(0) @binding(6) var<storage, read_write> m: array<f32>;
@group(0) @binding(7) var<storage, read_write> v: array<f32>;

override CLIP: bool = true;

// Values per thread in sumsq_partial (Rust: adam::PER_THREAD).
const PER_THREAD: u32 = 64u;

var<workgroup> red: array<f32, WG>;

// Tree-sum red[0..WG] into red[0]; call from uniform control flow.
fn tree_sum(lid: u32) {
    for (var w = WG / 2u; w > 0u; w >>= 1u) {
        if lid < w {
            red[lid] += red[lid + w];
        }
        workgroupBarrier();
    }
}

@compute @workgroup_size(WG)
fn sumsq_partial(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                 @builtin(local_invocation_id) lid: vec3<u32>) {
    let w = flat_group(wid, nwg);
    var s = 0.0;
    if w < p.n_partials {
        let start = w * WG * PER_THREAD;
        let end = min(start + WG * PER_THREAD, p.n);
        for (var i = start + lid.x; i < end; i += WG) {
            let x = grad[i];
            s += x * x;
        }
    }
    red[lid.x] = s;
    workgroupBarrier();
    tree_sum(lid.x);
    if lid.x == 0u && w < p.n_partials {
        partials[w] = red[0];
    }
}

@compute @workgroup_size(WG)
fn norm_finish(@builtin(local_invocation_id) lid: vec3<u32>) {
    var s = 0.0;
    for (var i = lid.x; i < p.n_partials; i += WG) {
        s += partials[i];
    }
    red[lid.x] = s;
    workgroupBarrier();
    tree_sum(lid.x);
    if lid.x == 0u {
        let total = sqrt(red[0]);
        norm[0] = total;
        if CLIP {
            coef[0] = min(p.max_norm / (total + 1e-6), 1.0);
        } else {
            coef[0] = 1.0;
        }
    }
}

@compute @workgroup_size(WG)
fn adam_update(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
               @builtin(local_invocation_id) lid: vec3<u32>) {
    let i = flat_id(wid, nwg, lid);
    if i >= p.n { return; }
    let g = grad[i] * coef[0];
    let mi = m[i] + p.one_minus_beta1 * (g - m[i]);
    let vi = p.beta2 * v[i] + p.one_minus_beta2 * g * g;
    m[i] = mi;
    v[i] = vi;
    let denom = sqrt(vi) / p.sqrt_bc2 + p.eps;
    param[i] = param[i] - p.step_size * (mi / denom);
}
