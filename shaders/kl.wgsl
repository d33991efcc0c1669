// kl.wgsl: KL divergence between diagonal Gaussians, summed over the latent axis, its backward,
// and the free-nats clamp of the balanced KL loss.
//
//   kl_rows          out[r] = sum_c log(sp/sq) + (sq^2 + (mq - mp)^2) / (2 sp^2) - 1/2
//                    over c < S of row r: KL(N(mq, sq) || N(mp, sp)). One thread per row.
//   kl_mean_clamp    mean = sum_r kl[r] / rows; value = alpha max(free, mean) + (1 - alpha) max(free, mean);
//                    gate = 1 if mean > free else 0 (the clamp's derivative). One workgroup:
//                    strided partial sums, then a shared-memory tree.
//   kl_backward      [backward] one side's gradients, per element (row r = e / S), times
//                    gr = scale * g[r] (per-row mode) or scale * g[0] * gate[0] (SCALAR_G: the
//                    balanced loss, g the gradient of its scalar value):
//                    SIDE 0 (posterior q): d mq = gr (mq - mp) / sp^2,  d sq = gr (sq / sp^2 - 1 / sq)
//                    SIDE 1 (prior p):     d mp = -gr (mq - mp) / sp^2,
//                                          d sp = gr (1 / sp - (sq^2 + (mq - mp)^2) / sp^3)
//                    Per side rather than all four at once: 4 inputs + g + gate + 4 outputs would
//                    pass WebGPU's guaranteed 8 storage buffers per stage. Stop-gradient variants
//                    run one side; the balanced loss runs each side once with its own weight.
//
// Bindings: 0 params; 1 mq, 2 sq, 3 mp, 4 sp (read) [rows, S];
//   kl_rows:       5 out [rows] (rw)
//   kl_mean_clamp: 6 kl [rows] (read), 7 value [1] (rw), 8 mean [1] (rw), 9 gate [1] (rw)
//   kl_backward:   1-4, 10 g (read: [rows], or [1] with SCALAR_G), 11 gate (read; `g` again
//                  without SCALAR_G), 12 d m (rw), 13 d s (rw) (a 1-element dummy when absent)
// Workgroup (WG,1,1), 1-D grids folded by Gpu::grid_1d.
// Overrides: SIDE, SCALAR_G, HAS_M, HAS_S, ACC_M, ACC_S (add into the gradient).

struct Params {
    rows: u32,
    s: u32,
    n: u32,       // rows * s
    scale: f32,   // kl_backward: weight of the incoming gradient
    alpha: f32,   // kl_mean_clamp
    free: f32,    // kl_mean_clamp
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> mq: array<f32>;
@group(0) @binding(2) var<storage, read> sq: array<f32>;
@group(0) @binding(3) var<storage, read> mp: array<f32>;
@group(0) @binding(4) var<storage, read> sp: array<f32>;
@group(0) @binding(5) var<storage, read_write> kl_out: array<f32>;
@group(0) @binding(6) var<storage, read> kl_in: array<f32>;
@group(0) @binding(7) var<storage, read_write> value: array<f32>;
@group(0) @binding(8) var<storage, read_write> mean_out: array<f32>;
@group(0) @binding(9) var<storage, read_write> gate_out: array<f32>;
@group(0) @binding(10) var<storage, read> g: array<f32>;
@group(0) @binding(11) var<storage, read> gate: array<f32>;
@group(0) @binding(12) var<storage, read_write> d_m: array<f32>;
@group(0) @binding(13) var<storage, read_write> d_s: array<f32>;

override SIDE: u32 = 0u;
override SCALAR_G: bool = false;
override HAS_M: bool = true;
override HAS_S: bool = true;
override ACC_M: bool = false;
override ACC_S: bool = false;

var<workgroup> partial: array<f32, WG>;

@compute @workgroup_size(WG)
fn kl_rows(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
           @builtin(local_invocation_id) lid: vec3<u32>) {
    let r = flat_id(wid, nwg, lid);
    if r >= p.rows { return; }
    var acc = 0.0;
    for (var c = 0u; c < p.s; c++) {
        let e = r * p.s + c;
        let q = sq[e];
        let ps = sp[e];
        let d = mq[e] - mp[e];
        acc += log(ps / q) + (q * q + d * d) / (2.0 * ps * ps) - 0.5;
    }
    kl_out[r] = acc;
}

@compute @workgroup_size(WG)
fn kl_mean_clamp(@builtin(local_invocation_id) lid: vec3<u32>) {
    var s = 0.0;
    for (var r = lid.x; r < p.rows; r += WG) {
        s += kl_in[r];
    }
    partial[lid.x] = s;
    workgroupBarrier();
    for (var w = WG / 2u; w > 0u; w >>= 1u) {
        if lid.x < w {
            partial[lid.x] += partial[lid.x + w];
        }
        workgroupBarrier();
    }
    if lid.x == 0u {
        let m = partial[0] / f32(p.rows);
        let c = max(p.free, m);
        mean_out[0] = m;
        value[0] = p.alpha * c + (1.0 - p.alpha) * c;
        gate_out[0] = select(0.0, 1.0, m > p.free);
    }
}

@compute @workgroup_size(WG)
fn kl_backward(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
               @builtin(local_invocation_id) lid: vec3<u32>) {
    let e = flat_id(wid, nwg, lid);
    if e >= p.n { return; }
    let r = e / p.s;
    var gr: f32;
    if SCALAR_G { gr = p.scale * g[0] * gate[0]; } else { gr = p.scale * g[r]; }
    let q = sq[e];
    let ps = sp[e];
    let d = mq[e] - mp[e];
    let ivp = 1.0 / (ps * ps);
    var gm: f32;
    var gs: f32;
    if SIDE == 0u {
        gm = gr * d * ivp;
        gs = gr * (q * ivp - 1.0 / q);
    } else {
        gm = -gr * d * ivp;
        gs = gr * (1.0 / ps - (q * q + d * d) * ivp / ps);
    }
    if HAS_M {
        if ACC_M { d_m[e] += gm; } else { d_m[e] = gm; }
    }
    if HAS_S {
        if ACC_S { d_s[e] += gs; } else { d_s[e] = gs; }
    }
}
