// returns.wgsl: the lambda-return scan over an imagined trajectory, forward and backward.
//
// Inputs are time-major [H+1, N] (row t = imagined step t; see src/ops/returns.rs):
//   R_t = r_t + g_t * ((1 - lambda) * v_{t+1} + lambda * R_{t+1}),  t = H-1 .. 0,  R_H = v_H.
// One invocation per trajectory (column n) runs the whole recursion, so the scan is one
// dispatch instead of O(H) elementwise ones. Workgroup (WG,1,1), grid folded by Gpu::grid_1d.
//
// Entry points:
//   lambda_return           uses 1 r, 2 g, 3 v, 7 out R [H, N]
//   lambda_return_backward  [backward] uses 2 g, 3 v, 4 R (saved), 5 dR [H, N],
//                           6 dr, 8 dg, 9 dv (all [H+1, N]; each added into or overwritten as
//                           the params' acc_* flags say; row H of dr, dg and row 0 of dv are 0)

struct Params {
    h: u32,
    n: u32,
    lambda: f32,
    acc_r: u32,
    acc_g: u32,
    acc_v: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> r: array<f32>;
@group(0) @binding(2) var<storage, read> g: array<f32>;
@group(0) @binding(3) var<storage, read> v: array<f32>;
@group(0) @binding(4) var<storage, read> ret_saved: array<f32>;
@group(0) @binding(5) var<storage, read> d_ret: array<f32>;
@group(0) @binding(6) var<storage, read_write> d_r: array<f32>;
@group(0) @binding(7) var<storage, read_write> ret: array<f32>;
@group(0) @binding(8) var<storage, read_write> d_g: array<f32>;
@group(0) @binding(9) var<storage, read_write> d_v: array<f32>;

@compute @workgroup_size(WG)
fn lambda_return(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                 @builtin(local_invocation_id) lid: vec3<u32>) {
    let j = flat_id(wid, nwg, lid);
    let n = p.n;
    let h = p.h;
    let lam = p.lambda;
    if j >= n { return; }
    var next = v[h * n + j];
    for (var t = h; t > 0u; t--) {
        let i = (t - 1u) * n + j;
        next = r[i] + g[i] * ((1.0 - lam) * v[i + n] + lam * next);
        ret[i] = next;
    }
}

fn put(buf_is_acc: u32, old: f32, val: f32) -> f32 {
    return select(val, old + val, buf_is_acc != 0u);
}

@compute @workgroup_size(WG)
fn lambda_return_backward(@builtin(workgroup_id) wid: vec3<u32>,
                          @builtin(num_workgroups) nwg: vec3<u32>,
                          @builtin(local_invocation_id) lid: vec3<u32>) {
    let j = flat_id(wid, nwg, lid);
    let n = p.n;
    let h = p.h;
    let lam = p.lambda;
    if j >= n { return; }
    // c = dL/dR_t including what flows back from R_{t-1} (ascending t).
    var c = 0.0;
    d_v[j] = put(p.acc_v, d_v[j], 0.0);
    for (var t = 0u; t < h; t++) {
        let i = t * n + j;
        if t > 0u {
            c = c * g[i - n] * lam;
        }
        c += d_ret[i];
        var r_next = v[h * n + j];
        if t + 1u < h {
            r_next = ret_saved[i + n];
        }
        d_r[i] = put(p.acc_r, d_r[i], c);
        d_g[i] = put(p.acc_g, d_g[i], c * ((1.0 - lam) * v[i + n] + lam * r_next));
        // v_{t+1} enters R_t directly; v_H also through the bootstrap R_H = v_H.
        var dv = c * g[i] * (1.0 - lam);
        if t + 1u == h {
            dv = c * g[i];
        }
        d_v[i + n] = put(p.acc_v, d_v[i + n], dv);
    }
    let last = h * n + j;
    d_r[last] = put(p.acc_r, d_r[last], 0.0);
    d_g[last] = put(p.acc_g, d_g[last], 0.0);
}
