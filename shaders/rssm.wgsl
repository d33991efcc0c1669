// rssm.wgsl: the RSSM's `observe` over a whole sequence in one dispatch, and its backward
// through time in one more (src/ops/rssm.rs; the per-op path in src/model/world_model.rs is
// their reference).
//
// Every batch row's recurrence is independent of the others, so each workgroup owns a tile of
// R rows and runs all T steps itself; no grid-wide barrier is needed. Per step and row:
//   x   = ELU(W_in [s_{t-1}, a_t] + b_in)                       (img_in)
//   gi  = W_ih x + b_ih,  gh = W_hh h_{t-1} + b_hh              (GRU gates, order r, z, n)
//   h_t = (1 - z) n + z h_{t-1}, r = sig(gi_r+gh_r), z = sig(gi_z+gh_z), n = tanh(gi_n + r gh_n)
//   yi  = ELU(W_io h_t + b_io),  prior = W_is yi + b_is          (img_out, img_stats)
//   yo  = ELU(xe_t + W_oh h_t),  post  = W_os yo + b_os          (obs_out: xe_t = W_oe e_t + b_oo
//                                                                 is one GEMM over all B*T rows
//                                                                 before this kernel)
//   s_t = post_mean + (softplus(post_raw) + min_std) eps_t
// The tile's live vectors sit in workgroup memory; each invocation computes output units
// j = lid, lid + WGT, ... for all R rows at once, so a weight read from global memory is used
// R times. Weights come packed by `pack_weights` / `pack_biases` into one buffer `wp`: each
// matrix transposed ([in, out], for the forward: neighbouring invocations read neighbouring
// addresses) and as is ([out, in], for the backward, which reads columns).
//
// Entry points:
//   pack_weights, pack_biases: copy the parameters into `wp` (one thread per element).
//   observe_forward: writes deter/stoch/post/prior [B,T,*] and what the backward and the weight
//     gradients need: inp_in [T,B,S+A] = [s_{t-1}, a_t], x [T,B,H], gates [T,B,4D] =
//     [r|z|n|gh_n], hprev [T,B,D] = h_{t-1}, y_img [B,T,H], y_obs [B,T,H].
//   observe_backward [backward]: from the gradients of deter, stoch, post and prior (any may be
//     absent: flags), in reverse time, carrying dL/dh and dL/ds in workgroup memory; writes the
//     pre-activation gradients dgi, dgh [T,B,3D], d_img_in [T,B,H] (time-major, like their
//     GEMM partners), d_img_out, d_obs_out [B,T,H] and d_post [B,T,2S]. Every weight gradient is
//     then one GEMM over all B*T rows (from Rust).
// Bindings: 0 params; 1 wp; 2 xe; 3 action; 4 eps; 5 deter; 6 stoch; 7 post; 8 prior; 9 inp_in;
//   10 x; 11 gates; 12 hprev; 13 y_img; 14 y_obs; 16-19 d_deter, d_stoch, d_post, d_prior;
//   20 dgi; 21 dgh; 22 d_img_in; 23 d_img_out; 24 d_obs_out; 25 d_post_pre;
//   26-32 the seven weight matrices (img_in, w_ih, w_hh, img_out, img_stats, obs_out,
//   obs_stats); 33 wp (written by the pack kernels); 34-39 the six biases (img_in, b_ih, b_hh,
//   img_out, img_stats, obs_stats); 57 carry (the backward's state between chunks of steps).
// Workgroup (WGT,1,1), one workgroup per tile of R rows (grid x = ceil(B / R)). Overrides: R
// (rows per tile, <= RMAX), WGT (threads), SH (workgroup floats: R times the per-row need, at
// most the device's workgroup storage). Rows past B in the last tile compute on clamped inputs
// and store nothing; every barrier is in uniform control flow (loop bounds are uniform).
//
// Steps in chunks: a dispatch runs steps [p.t0, p.t1). Some drivers end a shader's loops after
// a fixed number of iterations per invocation, silently (lavapipe: 65,535, `Gpu::loop_limit`),
// and one step at the spec's widths is thousands; there the Rust side (`FusedPlan`) splits T
// (or H) so that each dispatch's loops stay within half of it, elsewhere one dispatch runs all.
// A forward chunk starts from the state the previous one stored (h_{t0-1}, s_{t0-1} from deter
// and stoch; the imagination's from its features); a backward chunk, run from the last one
// down, from dL/dh and dL/ds in 57 carry [rows, deter + stoch], which it leaves for the next.

const RMAX: u32 = 8u;

struct Params {
    batch: u32,
    steps: u32,
    stoch: u32,
    act: u32,
    deter: u32,
    hidden: u32,
    min_std: f32,
    flags: u32,
    // Offsets in wp (floats): transposed matrices, then the matrices as is, then biases.
    t_in: u32,
    t_ih: u32,
    t_hh: u32,
    t_io: u32,
    t_is: u32,
    t_oh: u32,
    t_os: u32,
    w_in: u32,
    w_ih: u32,
    w_hh: u32,
    w_io: u32,
    w_is: u32,
    w_oh: u32,
    w_os: u32,
    b_in: u32,
    b_ih: u32,
    b_hh: u32,
    b_io: u32,
    b_is: u32,
    b_os: u32,
    // obs_out's input width (deter + embed): the row stride of its weight.
    obs_in: u32,
    // pack kernels: elements to copy.
    n_pack: u32,
    // Imagination (zero for observe): the actor's width, the horizon H, the actor's std floor and
    // raw-std shift, the actor's five layers (four hidden, then out) transposed in wp and their
    // biases, the number of actor values to pack.
    units: u32,
    horizon: u32,
    act_min_std: f32,
    init_std: f32,
    a_w0: u32,
    a_w1: u32,
    a_w2: u32,
    a_w3: u32,
    a_w4: u32,
    a_b0: u32,
    a_b1: u32,
    a_b2: u32,
    a_b3: u32,
    a_b4: u32,
    n_pack_actor: u32,
    // The steps [t0, t1) this dispatch runs (see the header: chunks of T on drivers that limit
    // loop iterations).
    t0: u32,
    t1: u32,
}

// flags of the backward: which output gradients exist.
const HAS_DDETER: u32 = 1u;
const HAS_DSTOCH: u32 = 2u;
const HAS_DPOST: u32 = 4u;
const HAS_DPRIOR: u32 = 8u;
// flags of the imagination: actions read from `action` ([H,N,A]) instead of the actor's; the
// actor's mode tanh(mean) instead of a sample; the prior's mean instead of a sample.
const ACT_GIVEN: u32 = 16u;
const ACT_MODE: u32 = 32u;
const PRIOR_MEAN: u32 = 64u;
// Batch-major layouts for dreams: actions (and the actor's noise) [N,H,A], features [N,H,S+D]
// without the start states.
const BATCH_MAJOR: u32 = 128u;

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> wp: array<f32>;
@group(0) @binding(2) var<storage, read> xe: array<f32>;
@group(0) @binding(3) var<storage, read> action: array<f32>;
@group(0) @binding(4) var<storage, read> eps: array<f32>;
@group(0) @binding(5) var<storage, read_write> deter: array<f32>;
@group(0) @binding(6) var<storage, read_write> stoch: array<f32>;
@group(0) @binding(7) var<storage, read_write> post: array<f32>;
@group(0) @binding(8) var<storage, read_write> prior: array<f32>;
@group(0) @binding(9) var<storage, read_write> inp_in: array<f32>;
@group(0) @binding(10) var<storage, read_write> xs: array<f32>;
@group(0) @binding(11) var<storage, read_write> gates: array<f32>;
@group(0) @binding(12) var<storage, read_write> hprev: array<f32>;
@group(0) @binding(13) var<storage, read_write> y_img: array<f32>;
@group(0) @binding(14) var<storage, read_write> y_obs: array<f32>;
@group(0) @binding(16) var<storage, read> d_deter: array<f32>;
@group(0) @binding(17) var<storage, read> d_stoch: array<f32>;
@group(0) @binding(18) var<storage, read> d_post: array<f32>;
@group(0) @binding(19) var<storage, read> d_prior: array<f32>;
@group(0) @binding(20) var<storage, read_write> dgi: array<f32>;
@group(0) @binding(21) var<storage, read_write> dgh: array<f32>;
@group(0) @binding(22) var<storage, read_write> d_img_in: array<f32>;
@group(0) @binding(23) var<storage, read_write> d_img_out: array<f32>;
@group(0) @binding(24) var<storage, read_write> d_obs_out: array<f32>;
@group(0) @binding(25) var<storage, read_write> d_post_pre: array<f32>;
@group(0) @binding(26) var<storage, read> m_in: array<f32>;
@group(0) @binding(27) var<storage, read> m_ih: array<f32>;
@group(0) @binding(28) var<storage, read> m_hh: array<f32>;
@group(0) @binding(29) var<storage, read> m_io: array<f32>;
@group(0) @binding(30) var<storage, read> m_is: array<f32>;
@group(0) @binding(31) var<storage, read> m_oo: array<f32>;
@group(0) @binding(32) var<storage, read> m_os: array<f32>;
@group(0) @binding(33) var<storage, read_write> wp_out: array<f32>;
@group(0) @binding(34) var<storage, read> v_in: array<f32>;
@group(0) @binding(35) var<storage, read> v_ih: array<f32>;
@group(0) @binding(36) var<storage, read> v_hh: array<f32>;
@group(0) @binding(37) var<storage, read> v_io: array<f32>;
@group(0) @binding(38) var<storage, read> v_is: array<f32>;
@group(0) @binding(39) var<storage, read> v_os: array<f32>;
@group(0) @binding(40) var<storage, read> start_h: array<f32>;
@group(0) @binding(41) var<storage, read> start_s: array<f32>;
@group(0) @binding(42) var<storage, read> act_eps: array<f32>;
@group(0) @binding(43) var<storage, read_write> feats: array<f32>;
@group(0) @binding(44) var<storage, read_write> actions: array<f32>;
@group(0) @binding(45) var<storage, read> d_feats: array<f32>;
@group(0) @binding(46) var<storage, read_write> d_actions: array<f32>;
@group(0) @binding(47) var<storage, read> aw0: array<f32>;
@group(0) @binding(48) var<storage, read> aw1: array<f32>;
@group(0) @binding(49) var<storage, read> aw2: array<f32>;
@group(0) @binding(50) var<storage, read> aw3: array<f32>;
@group(0) @binding(51) var<storage, read> aw4: array<f32>;
@group(0) @binding(52) var<storage, read> ab0: array<f32>;
@group(0) @binding(53) var<storage, read> ab1: array<f32>;
@group(0) @binding(54) var<storage, read> ab2: array<f32>;
@group(0) @binding(55) var<storage, read> ab3: array<f32>;
@group(0) @binding(56) var<storage, read> ab4: array<f32>;
@group(0) @binding(57) var<storage, read_write> carry: array<f32>;

override R: u32 = 2u;
override WGT: u32 = 64u;
override SH: u32 = 4096u;
// The forward writes what the backward needs (off for inference: those bindings are dummies).
override SAVE: bool = true;

var<workgroup> sh: array<f32, SH>;

// ELU's derivative from its output y: 1 where y > 0, else y + 1 (= exp(x)).
fn elu_grad(y: f32) -> f32 {
    return select(y + 1.0, 1.0, y > 0.0);
}

// ---------------------------------------------------------------------------------------------
// Packing. Matrix m (0..7: img_in, w_ih, w_hh, img_out, img_stats, obs_out's deter columns,
// obs_stats) is [out_m, in_m] (source row stride ld_m).

fn mat_dims(m: u32) -> vec3<u32> {
    let S = p.stoch;
    let D = p.deter;
    let H = p.hidden;
    switch m {
        case 0u: { return vec3<u32>(H, S + p.act, S + p.act); }
        case 1u: { return vec3<u32>(3u * D, H, H); }
        case 2u: { return vec3<u32>(3u * D, D, D); }
        case 3u: { return vec3<u32>(H, D, D); }
        case 4u: { return vec3<u32>(2u * S, H, H); }
        case 5u: { return vec3<u32>(H, D, p.obs_in); }
        default: { return vec3<u32>(2u * S, H, H); }
    }
}

fn mat_src(m: u32, i: u32) -> f32 {
    switch m {
        case 0u: { return m_in[i]; }
        case 1u: { return m_ih[i]; }
        case 2u: { return m_hh[i]; }
        case 3u: { return m_io[i]; }
        case 4u: { return m_is[i]; }
        case 5u: { return m_oo[i]; }
        default: { return m_os[i]; }
    }
}

fn mat_offsets(m: u32) -> vec2<u32> {
    switch m {
        case 0u: { return vec2<u32>(p.t_in, p.w_in); }
        case 1u: { return vec2<u32>(p.t_ih, p.w_ih); }
        case 2u: { return vec2<u32>(p.t_hh, p.w_hh); }
        case 3u: { return vec2<u32>(p.t_io, p.w_io); }
        case 4u: { return vec2<u32>(p.t_is, p.w_is); }
        case 5u: { return vec2<u32>(p.t_oh, p.w_oh); }
        default: { return vec2<u32>(p.t_os, p.w_os); }
    }
}

@compute @workgroup_size(WG)
fn pack_weights(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                @builtin(local_invocation_id) lid: vec3<u32>) {
    var i = flat_id(wid, nwg, lid);
    if i >= p.n_pack { return; }
    var m = 0u;
    loop {
        let dm = mat_dims(m);
        let n = dm.x * dm.y;
        if i < n || m == 6u { break; }
        i -= n;
        m += 1u;
    }
    let dm = mat_dims(m);
    let row = i / dm.y;
    let col = i - row * dm.y;
    let v = mat_src(m, row * dm.z + col);
    let off = mat_offsets(m);
    wp_out[off.x + col * dm.x + row] = v;
    wp_out[off.y + row * dm.y + col] = v;
}

@compute @workgroup_size(WG)
fn pack_biases(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
               @builtin(local_invocation_id) lid: vec3<u32>) {
    let i = flat_id(wid, nwg, lid);
    let H = p.hidden;
    let D3 = 3u * p.deter;
    let S2 = 2u * p.stoch;
    // Layout: b_in [H] | b_ih [3D] | b_hh [3D] | b_io [H] | b_is [2S] | b_os [2S], from p.b_in.
    if i < H {
        wp_out[p.b_in + i] = v_in[i];
    } else if i < H + D3 {
        wp_out[p.b_in + i] = v_ih[i - H];
    } else if i < H + 2u * D3 {
        wp_out[p.b_in + i] = v_hh[i - H - D3];
    } else if i < 2u * H + 2u * D3 {
        wp_out[p.b_in + i] = v_io[i - H - 2u * D3];
    } else if i < 2u * H + 2u * D3 + S2 {
        wp_out[p.b_in + i] = v_is[i - 2u * H - 2u * D3];
    } else if i < 2u * H + 2u * D3 + 2u * S2 {
        wp_out[p.b_in + i] = v_os[i - 2u * H - 2u * D3 - S2];
    }
}

// ---------------------------------------------------------------------------------------------
// Pieces shared by observe and imagine. They work on the tile's rows in workgroup memory (`per`
// floats per row); thread `tid` handles output units j = tid, tid + WGT, ... . The callers place
// the barriers between pieces.

// One GRU step for the tile: x at o_x, h_{t-1} at o_hc, h_t into o_hn. Saves the gates
// [r|z|n|gh_n] time-major (row t * nrows + b) when SAVE.
fn tile_gru(tid: u32, b0: u32, nrows: u32, t: u32, per: u32, o_x: u32, o_hc: u32, o_hn: u32) {
    let D = p.deter;
    let H = p.hidden;
    for (var j = tid; j < D; j += WGT) {
        var ir: array<f32, RMAX>;
        var iz: array<f32, RMAX>;
        var inn: array<f32, RMAX>;
        var hr: array<f32, RMAX>;
        var hz: array<f32, RMAX>;
        var hn: array<f32, RMAX>;
        let bir = wp[p.b_ih + j];
        let biz = wp[p.b_ih + D + j];
        let bin = wp[p.b_ih + 2u * D + j];
        let bhr = wp[p.b_hh + j];
        let bhz = wp[p.b_hh + D + j];
        let bhn = wp[p.b_hh + 2u * D + j];
        for (var r = 0u; r < R; r++) {
            ir[r] = bir;
            iz[r] = biz;
            inn[r] = bin;
            hr[r] = bhr;
            hz[r] = bhz;
            hn[r] = bhn;
        }
        for (var k = 0u; k < H; k++) {
            let o = p.t_ih + k * 3u * D + j;
            let wr = wp[o];
            let wz = wp[o + D];
            let wn = wp[o + 2u * D];
            for (var r = 0u; r < R; r++) {
                let xv = sh[r * per + o_x + k];
                ir[r] += wr * xv;
                iz[r] += wz * xv;
                inn[r] += wn * xv;
            }
        }
        for (var k = 0u; k < D; k++) {
            let o = p.t_hh + k * 3u * D + j;
            let wr = wp[o];
            let wz = wp[o + D];
            let wn = wp[o + 2u * D];
            for (var r = 0u; r < R; r++) {
                let hv = sh[r * per + o_hc + k];
                hr[r] += wr * hv;
                hz[r] += wz * hv;
                hn[r] += wn * hv;
            }
        }
        for (var r = 0u; r < R; r++) {
            let rg = sigmoid(ir[r] + hr[r]);
            let zg = sigmoid(iz[r] + hz[r]);
            let ng = tanh_s(inn[r] + rg * hn[r]);
            let hv = (1.0 - zg) * ng + zg * sh[r * per + o_hc + j];
            sh[r * per + o_hn + j] = hv;
            let b = b0 + r;
            if SAVE && b < nrows {
                let g = (t * nrows + b) * 4u * D + j;
                gates[g] = rg;
                gates[g + D] = zg;
                gates[g + 2u * D] = ng;
                gates[g + 3u * D] = hn[r];
            }
        }
    }
}

// With SAVE, the tile's `width` floats at `src` into time-major row t * nrows + b of x (0),
// y_img (1) or prior (2).
fn save_rows(tid: u32, b0: u32, nrows: u32, t: u32, per: u32, width: u32, src: u32, dst: u32) {
    if !SAVE { return; }
    for (var i = tid; i < R * width; i += WGT) {
        let r = i / width;
        let j = i - r * width;
        if b0 + r < nrows {
            let q = (t * nrows + b0 + r) * width + j;
            let v = sh[r * per + src + j];
            switch dst {
                case 0u: { xs[q] = v; }
                case 1u: { y_img[q] = v; }
                default: { prior[q] = v; }
            }
        }
    }
}

// y = act(W [in1; in2] + b) for the tile, from workgroup memory into workgroup memory: the input
// is the concatenation of n1 floats at src1 and n2 at src2; wt is the offset of the weight in wp,
// transposed ([in, out]: neighbouring threads read neighbouring addresses).
fn tile_dense(tid: u32, per: u32, n_out: u32, wt: u32, bias: u32, src1: u32, n1: u32, src2: u32,
              n2: u32, dst: u32, use_elu: bool) {
    for (var j = tid; j < n_out; j += WGT) {
        var acc: array<f32, RMAX>;
        let bv = wp[bias + j];
        for (var r = 0u; r < R; r++) { acc[r] = bv; }
        for (var k = 0u; k < n1; k++) {
            let w = wp[wt + k * n_out + j];
            for (var r = 0u; r < R; r++) { acc[r] += w * sh[r * per + src1 + k]; }
        }
        for (var k = 0u; k < n2; k++) {
            let w = wp[wt + (n1 + k) * n_out + j];
            for (var r = 0u; r < R; r++) { acc[r] += w * sh[r * per + src2 + k]; }
        }
        for (var r = 0u; r < R; r++) {
            var v = acc[r];
            if use_elu { v = elu(v); }
            sh[r * per + dst + j] = v;
        }
    }
}

// The GRU's backward at step t for the tile: from g = dL/dh_t at o_dh (all paths), writes
// [dr | dz | dn | dn r] at o_dg and g z (the direct path to h_{t-1}) back at o_dh. Row b's
// saved gates and h_{t-1} are at time-major row t * nrows + b.
fn tile_gru_backward(tid: u32, b0: u32, nrows: u32, t: u32, per: u32, o_dg: u32, o_dh: u32) {
    let D = p.deter;
    for (var j = tid; j < D; j += WGT) {
        for (var r = 0u; r < R; r++) {
            let b = min(b0 + r, nrows - 1u);
            let tm = t * nrows + b;
            let gs = tm * 4u * D + j;
            let rg = gates[gs];
            let zg = gates[gs + D];
            let ng = gates[gs + 2u * D];
            let ghn = gates[gs + 3u * D];
            let hp = hprev[tm * D + j];
            let gv = sh[r * per + o_dh + j];
            let dn = gv * (1.0 - zg) * (1.0 - ng * ng);
            let dz = gv * (hp - ng) * zg * (1.0 - zg);
            let dr = dn * ghn * rg * (1.0 - rg);
            let o = r * per + o_dg;
            sh[o + j] = dr;
            sh[o + D + j] = dz;
            sh[o + 2u * D + j] = dn;
            sh[o + 3u * D + j] = dn * rg;
            sh[r * per + o_dh + j] = gv * zg;
        }
    }
}

// After tile_gru_backward and a barrier: dL/dh_{t-1} += W_hh^T dgh at o_dh (items j < D), and the
// pre-activation gradient of img_in, ELU'(x) W_ih^T dgi, into o_dx (items D..D+H).
fn tile_gru_input_backward(tid: u32, b0: u32, nrows: u32, t: u32, per: u32, o_dg: u32, o_dh: u32,
                           o_dx: u32) {
    let D = p.deter;
    let H = p.hidden;
    for (var j = tid; j < D + H; j += WGT) {
        var acc: array<f32, RMAX>;
        for (var r = 0u; r < R; r++) { acc[r] = 0.0; }
        if j < D {
            for (var k = 0u; k < 2u * D; k++) {
                let w = wp[p.w_hh + k * D + j];
                for (var r = 0u; r < R; r++) { acc[r] += w * sh[r * per + o_dg + k]; }
            }
            for (var k = 0u; k < D; k++) {
                let w = wp[p.w_hh + (2u * D + k) * D + j];
                for (var r = 0u; r < R; r++) { acc[r] += w * sh[r * per + o_dg + 3u * D + k]; }
            }
            for (var r = 0u; r < R; r++) { sh[r * per + o_dh + j] += acc[r]; }
        } else {
            let jj = j - D;
            for (var k = 0u; k < 3u * D; k++) {
                let w = wp[p.w_ih + k * H + jj];
                for (var r = 0u; r < R; r++) { acc[r] += w * sh[r * per + o_dg + k]; }
            }
            for (var r = 0u; r < R; r++) {
                let b = min(b0 + r, nrows - 1u);
                sh[r * per + o_dx + jj] = acc[r] * elu_grad(xs[(t * nrows + b) * H + jj]);
            }
        }
    }
}

// The backward's state between chunks of steps: dL/dh and dL/ds of the step before the chunk,
// `carry [rows, D + S]`; in workgroup memory they are contiguous at o_dh (dh [D] | ds [S]).
// Everything else starts at zero, and so do dh and ds before the last step (t1 == steps).
fn load_carry(tid: u32, b0: u32, nrows: u32, per: u32, o_dh: u32, steps: u32) {
    let DS = p.deter + p.stoch;
    for (var i = tid; i < R * per; i += WGT) {
        let r = i / per;
        let k = i - r * per;
        var v = 0.0;
        if p.t1 < steps && k >= o_dh && k < o_dh + DS {
            v = carry[min(b0 + r, nrows - 1u) * DS + k - o_dh];
        }
        sh[i] = v;
    }
}

// After the chunk's last step (and its barrier): dL/dh_{t0-1}, dL/ds_{t0-1} for the next chunk.
fn store_carry(tid: u32, b0: u32, nrows: u32, per: u32, o_dh: u32) {
    let DS = p.deter + p.stoch;
    if p.t0 == 0u { return; }
    for (var i = tid; i < R * DS; i += WGT) {
        let r = i / DS;
        let k = i - r * DS;
        if b0 + r < nrows { carry[(b0 + r) * DS + k] = sh[r * per + o_dh + k]; }
    }
}

// ---------------------------------------------------------------------------------------------
// Forward. Workgroup memory per row: s [S] | h0 [D] | h1 [D] | x [H] (later y_obs) | y [H] |
// st [2S] (the posterior's statistics).

@compute @workgroup_size(WGT)
fn observe_forward(@builtin(workgroup_id) wid: vec3<u32>,
                   @builtin(local_invocation_id) lid: vec3<u32>) {
    let S = p.stoch;
    let A = p.act;
    let D = p.deter;
    let H = p.hidden;
    let B = p.batch;
    let T = p.steps;
    let SA = S + A;
    let tid = lid.x;
    let b0 = wid.x * R;
    let per = 3u * S + 2u * D + 2u * H;
    let o_s = 0u;
    let o_h0 = S;
    let o_h1 = S + D;
    let o_x = S + 2u * D;
    let o_y = o_x + H;
    let o_st = o_y + H;
    // The state before step t0: zero, or what the previous chunk stored as h_{t0-1}, s_{t0-1}.
    let t0 = p.t0;
    let o_hstart = select(o_h0, o_h1, (t0 & 1u) == 1u);
    for (var i = tid; i < R * per; i += WGT) {
        let r = i / per;
        let k = i - r * per;
        let row = min(b0 + r, B - 1u) * T + t0 - 1u;
        var v = 0.0;
        if t0 > 0u && k < S {
            v = stoch[row * S + k];
        } else if t0 > 0u && k >= o_hstart && k < o_hstart + D {
            v = deter[row * D + k - o_hstart];
        }
        sh[i] = v;
    }
    workgroupBarrier();
    for (var t = t0; t < p.t1; t++) {
        let o_hc = select(o_h0, o_h1, (t & 1u) == 1u);
        let o_hn = select(o_h1, o_h0, (t & 1u) == 1u);
        // x = ELU(W_in [s; a] + b_in); save [s; a] and h_{t-1} for the weight gradients.
        for (var j = tid; j < H; j += WGT) {
            var acc: array<f32, RMAX>;
            let bias = wp[p.b_in + j];
            for (var r = 0u; r < R; r++) { acc[r] = bias; }
            for (var k = 0u; k < S; k++) {
                let w = wp[p.t_in + k * H + j];
                for (var r = 0u; r < R; r++) { acc[r] += w * sh[r * per + o_s + k]; }
            }
            for (var k = 0u; k < A; k++) {
                let w = wp[p.t_in + (S + k) * H + j];
                for (var r = 0u; r < R; r++) {
                    let b = min(b0 + r, B - 1u);
                    acc[r] += w * action[(b * T + t) * A + k];
                }
            }
            for (var r = 0u; r < R; r++) {
                let v = elu(acc[r]);
                sh[r * per + o_x + j] = v;
                let b = b0 + r;
                if SAVE && b < B { xs[(t * B + b) * H + j] = v; }
            }
        }
        for (var i = tid; i < R * SA; i += WGT) {
            let r = i / SA;
            let k = i - r * SA;
            let b = b0 + r;
            if SAVE && b < B {
                var v = 0.0;
                if k < S { v = sh[r * per + o_s + k]; } else { v = action[(b * T + t) * A + k - S]; }
                inp_in[(t * B + b) * SA + k] = v;
            }
        }
        for (var i = tid; i < R * D; i += WGT) {
            let r = i / D;
            let j = i - r * D;
            let b = b0 + r;
            if SAVE && b < B { hprev[(t * B + b) * D + j] = sh[r * per + o_hc + j]; }
        }
        workgroupBarrier();
        // GRU cell.
        tile_gru(tid, b0, B, t, per, o_x, o_hc, o_hn);
        workgroupBarrier();
        // h_t out: after the barrier, since unit j of row r may come from another thread.
        for (var i = tid; i < R * D; i += WGT) {
            let r = i / D;
            let b = b0 + r;
            if b < B { deter[(b * T + t) * D + i - r * D] = sh[r * per + o_hn + i - r * D]; }
        }
        // y_img = ELU(W_io h + b_io), y_obs = ELU(xe + W_oh h) (into x's place: x is dead).
        for (var j = tid; j < H; j += WGT) {
            var ai: array<f32, RMAX>;
            var ao: array<f32, RMAX>;
            let bio = wp[p.b_io + j];
            for (var r = 0u; r < R; r++) {
                let b = min(b0 + r, B - 1u);
                ai[r] = bio;
                ao[r] = xe[(b * T + t) * H + j];
            }
            for (var k = 0u; k < D; k++) {
                let wi = wp[p.t_io + k * H + j];
                let wo = wp[p.t_oh + k * H + j];
                for (var r = 0u; r < R; r++) {
                    let hv = sh[r * per + o_hn + k];
                    ai[r] += wi * hv;
                    ao[r] += wo * hv;
                }
            }
            for (var r = 0u; r < R; r++) {
                let vi = elu(ai[r]);
                let vo = elu(ao[r]);
                sh[r * per + o_y + j] = vi;
                sh[r * per + o_x + j] = vo;
                let b = b0 + r;
                if SAVE && b < B {
                    y_img[(b * T + t) * H + j] = vi;
                    y_obs[(b * T + t) * H + j] = vo;
                }
            }
        }
        workgroupBarrier();
        // Prior and posterior statistics: items k < 2S are the prior's, the rest the posterior's.
        let S2 = 2u * S;
        for (var k = tid; k < 2u * S2; k += WGT) {
            var acc: array<f32, RMAX>;
            let is_post = k >= S2;
            let kk = select(k, k - S2, is_post);
            let wo = select(p.t_is, p.t_os, is_post);
            let src = select(o_y, o_x, is_post);
            let bias = wp[select(p.b_is, p.b_os, is_post) + kk];
            for (var r = 0u; r < R; r++) { acc[r] = bias; }
            for (var i = 0u; i < H; i++) {
                let w = wp[wo + i * S2 + kk];
                for (var r = 0u; r < R; r++) { acc[r] += w * sh[r * per + src + i]; }
            }
            for (var r = 0u; r < R; r++) {
                let b = b0 + r;
                if is_post {
                    sh[r * per + o_st + kk] = acc[r];
                    if b < B { post[(b * T + t) * S2 + kk] = acc[r]; }
                } else if b < B {
                    prior[(b * T + t) * S2 + kk] = acc[r];
                }
            }
        }
        workgroupBarrier();
        // The posterior sample.
        for (var i = tid; i < R * S; i += WGT) {
            let r = i / S;
            let j = i - r * S;
            let b = b0 + r;
            let bc = min(b, B - 1u);
            let mean = sh[r * per + o_st + j];
            let sd = softplus(sh[r * per + o_st + S + j]) + p.min_std;
            let v = mean + sd * eps[(bc * T + t) * S + j];
            sh[r * per + o_s + j] = v;
            if b < B { stoch[(b * T + t) * S + j] = v; }
        }
        workgroupBarrier();
    }
}

// ---------------------------------------------------------------------------------------------
// Backward through time. Workgroup memory per row: dpost [2S] | dprior [2S] | dyo [H] (later
// d_img_in) | dyi [H] | dg [4D] = [dr | dz | dn | dn*r] | dh [D] (dL/dh_t from later steps) |
// ds [S] (dL/ds_t from the next step's img_in).

@compute @workgroup_size(WGT)
fn observe_backward(@builtin(workgroup_id) wid: vec3<u32>,
                    @builtin(local_invocation_id) lid: vec3<u32>) {
    let S = p.stoch;
    let A = p.act;
    let D = p.deter;
    let H = p.hidden;
    let B = p.batch;
    let T = p.steps;
    let SA = S + A;
    let S2 = 2u * S;
    let tid = lid.x;
    let b0 = wid.x * R;
    let per = 5u * S + 2u * H + 5u * D;
    let o_dpost = 0u;
    let o_dprior = S2;
    let o_dyo = 2u * S2;
    let o_dyi = o_dyo + H;
    let o_dg = o_dyi + H;
    let o_dh = o_dg + 4u * D;
    let o_ds = o_dh + D;
    let has_ddeter = (p.flags & HAS_DDETER) != 0u;
    let has_dstoch = (p.flags & HAS_DSTOCH) != 0u;
    let has_dpost = (p.flags & HAS_DPOST) != 0u;
    let has_dprior = (p.flags & HAS_DPRIOR) != 0u;
    load_carry(tid, b0, B, per, o_dh, T);
    workgroupBarrier();
    for (var tt = 0u; tt < p.t1 - p.t0; tt++) {
        let t = p.t1 - 1u - tt;
        // The statistics' gradients: the outside's plus, for the posterior, the sample's.
        for (var i = tid; i < R * S2; i += WGT) {
            let r = i / S2;
            let k = i - r * S2;
            let b = min(b0 + r, B - 1u);
            let row = b * T + t;
            var v = 0.0;
            if has_dpost { v = d_post[row * S2 + k]; }
            let j = select(k, k - S, k >= S);
            var ds = sh[r * per + o_ds + j];
            if has_dstoch { ds += d_stoch[row * S + j]; }
            if k < S {
                v += ds;
            } else {
                v += ds * eps[row * S + j] * sigmoid(post[row * S2 + k]);
            }
            sh[r * per + o_dpost + k] = v;
            var vp = 0.0;
            if has_dprior { vp = d_prior[row * S2 + k]; }
            sh[r * per + o_dprior + k] = vp;
            if b0 + r < B { d_post_pre[row * S2 + k] = v; }
        }
        workgroupBarrier();
        // Through obs_stats and img_stats, then ELU: the pre-activation gradients of obs_out and
        // img_out.
        for (var j = tid; j < H; j += WGT) {
            var ao: array<f32, RMAX>;
            var ai: array<f32, RMAX>;
            for (var r = 0u; r < R; r++) {
                ao[r] = 0.0;
                ai[r] = 0.0;
            }
            for (var k = 0u; k < S2; k++) {
                let wo = wp[p.w_os + k * H + j];
                let wi = wp[p.w_is + k * H + j];
                for (var r = 0u; r < R; r++) {
                    ao[r] += wo * sh[r * per + o_dpost + k];
                    ai[r] += wi * sh[r * per + o_dprior + k];
                }
            }
            for (var r = 0u; r < R; r++) {
                let b = min(b0 + r, B - 1u);
                let row = b * T + t;
                let vo = ao[r] * elu_grad(y_obs[row * H + j]);
                let vi = ai[r] * elu_grad(y_img[row * H + j]);
                sh[r * per + o_dyo + j] = vo;
                sh[r * per + o_dyi + j] = vi;
                if b0 + r < B {
                    d_obs_out[row * H + j] = vo;
                    d_img_out[row * H + j] = vi;
                }
            }
        }
        workgroupBarrier();
        // dL/dh_t from every path, then the GRU cell's backward.
        for (var j = tid; j < D; j += WGT) {
            var g: array<f32, RMAX>;
            for (var r = 0u; r < R; r++) {
                let b = min(b0 + r, B - 1u);
                g[r] = sh[r * per + o_dh + j];
                if has_ddeter { g[r] += d_deter[(b * T + t) * D + j]; }
            }
            for (var i = 0u; i < H; i++) {
                let wo = wp[p.w_oh + i * D + j];
                let wi = wp[p.w_io + i * D + j];
                for (var r = 0u; r < R; r++) {
                    g[r] += wo * sh[r * per + o_dyo + i] + wi * sh[r * per + o_dyi + i];
                }
            }
            for (var r = 0u; r < R; r++) { sh[r * per + o_dh + j] = g[r]; }
        }
        tile_gru_backward(tid, b0, B, t, per, o_dg, o_dh);
        // The same threads own the same units: store the gate gradients without a barrier.
        for (var j = tid; j < D; j += WGT) {
            for (var r = 0u; r < R; r++) {
                if b0 + r < B {
                    let q = (t * B + b0 + r) * 3u * D + j;
                    let o = r * per + o_dg;
                    dgi[q] = sh[o + j];
                    dgi[q + D] = sh[o + D + j];
                    dgi[q + 2u * D] = sh[o + 2u * D + j];
                    dgh[q] = sh[o + j];
                    dgh[q + D] = sh[o + D + j];
                    dgh[q + 2u * D] = sh[o + 3u * D + j];
                }
            }
        }
        workgroupBarrier();
        // dL/dh_{t-1} += W_hh^T dgh; d_img_in = ELU'(x) W_ih^T dgi (into dyo's place: dead).
        tile_gru_input_backward(tid, b0, B, t, per, o_dg, o_dh, o_dyo);
        for (var j = tid; j < D + H; j += WGT) {
            if j >= D {
                for (var r = 0u; r < R; r++) {
                    if b0 + r < B { d_img_in[(t * B + b0 + r) * H + j - D] = sh[r * per + o_dyo + j - D]; }
                }
            }
        }
        workgroupBarrier();
        // dL/ds_{t-1} = W_in[:, :S]^T d_img_in.
        for (var j = tid; j < S; j += WGT) {
            var acc: array<f32, RMAX>;
            for (var r = 0u; r < R; r++) { acc[r] = 0.0; }
            for (var i = 0u; i < H; i++) {
                let w = wp[p.w_in + i * SA + j];
                for (var r = 0u; r < R; r++) { acc[r] += w * sh[r * per + o_dyo + i]; }
            }
            for (var r = 0u; r < R; r++) { sh[r * per + o_ds + j] = acc[r]; }
        }
        workgroupBarrier();
    }
    store_carry(tid, b0, B, per, o_dh);
}

// ---------------------------------------------------------------------------------------------
// Imagination (`src/ops/imagine.rs`; the per-op rollout of `src/agent/imagine.rs` is its
// reference). Each workgroup owns a tile of R start states and runs all H steps:
//   a_t   = tanh(5 tanh(m / 5) + (softplus(r + init_std) + act_min_std) eps_t), [m | r] = actor(feat_t)
//           (the actor's mode without the noise term; or read from `action` with ACT_GIVEN)
//   x     = ELU(W_in [s_t, a_t] + b_in), h_{t+1} = GRU(x, h_t), y = ELU(W_io h_{t+1} + b_io)
//   prior = W_is y + b_is,  s_{t+1} = prior_mean + (softplus(prior_raw) + min_std) eps'_t
// and writes feat_{t+1} = [s_{t+1}, h_{t+1}] time-major. The actor's weights are packed
// transposed into wp beside the RSSM's (`pack_actor`). Its backward runs through the frozen
// dynamics only, in reverse time, and writes dL/da_t: the actor sees its input through a
// stop-gradient, so its own backward is a batched one over all H N rows (on the tape).
//   pack_actor:       47-51 the actor's weights [out, in], 52-56 its biases, 33 wp.
//   imagine_forward:  1 wp, 40 start_h [N,D], 41 start_s [N,S], 42 act_eps [H,N,A], 4 eps (the
//     prior's) [H,N,S], 3 action (ACT_GIVEN) [H,N,A], 43 feats [H+1,N,S+D], 44 actions [H,N,A];
//     with SAVE: 12 hprev [H,N,D], 10 x [H,N,hidden], 11 gates [H,N,4D], 13 y_img [H,N,hidden],
//     8 prior [H,N,2S].
//   imagine_backward: 1 wp, 4 eps, 8 prior, 10 x, 11 gates, 12 hprev, 13 y_img, 45 d_feats
//     [H+1,N,S+D], 46 d_actions [H,N,A], 57 carry [N,D+S]. p.batch is N; p.horizon is H.

fn actor_dims(l: u32) -> vec2<u32> {
    switch l {
        case 0u: { return vec2<u32>(p.units, p.stoch + p.deter); }
        case 4u: { return vec2<u32>(2u * p.act, p.units); }
        default: { return vec2<u32>(p.units, p.units); }
    }
}

fn actor_w(l: u32, i: u32) -> f32 {
    switch l {
        case 0u: { return aw0[i]; }
        case 1u: { return aw1[i]; }
        case 2u: { return aw2[i]; }
        case 3u: { return aw3[i]; }
        default: { return aw4[i]; }
    }
}

fn actor_b(l: u32, i: u32) -> f32 {
    switch l {
        case 0u: { return ab0[i]; }
        case 1u: { return ab1[i]; }
        case 2u: { return ab2[i]; }
        case 3u: { return ab3[i]; }
        default: { return ab4[i]; }
    }
}

fn actor_offsets(l: u32) -> vec2<u32> {
    switch l {
        case 0u: { return vec2<u32>(p.a_w0, p.a_b0); }
        case 1u: { return vec2<u32>(p.a_w1, p.a_b1); }
        case 2u: { return vec2<u32>(p.a_w2, p.a_b2); }
        case 3u: { return vec2<u32>(p.a_w3, p.a_b3); }
        default: { return vec2<u32>(p.a_w4, p.a_b4); }
    }
}

@compute @workgroup_size(WG)
fn pack_actor(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
              @builtin(local_invocation_id) lid: vec3<u32>) {
    var i = flat_id(wid, nwg, lid);
    if i >= p.n_pack_actor { return; }
    // The five weights (transposed), then the five biases.
    for (var l = 0u; l < 5u; l++) {
        let d = actor_dims(l);
        if i < d.x * d.y {
            let row = i / d.y;
            let col = i - row * d.y;
            wp_out[actor_offsets(l).x + col * d.x + row] = actor_w(l, i);
            return;
        }
        i -= d.x * d.y;
    }
    for (var l = 0u; l < 5u; l++) {
        let n = actor_dims(l).x;
        if i < n {
            wp_out[actor_offsets(l).y + i] = actor_b(l, i);
            return;
        }
        i -= n;
    }
}

// Workgroup memory per row: s [S] | h0 [D] | h1 [D] | u0 [M] | u1 [M] | st [2S] | ao [2A] | a [A],
// M = max(units, hidden).
@compute @workgroup_size(WGT)
fn imagine_forward(@builtin(workgroup_id) wid: vec3<u32>,
                   @builtin(local_invocation_id) lid: vec3<u32>) {
    let S = p.stoch;
    let A = p.act;
    let D = p.deter;
    let H = p.hidden;
    let U = p.units;
    let N = p.batch;
    let HZ = p.horizon;
    let F = S + D;
    let M = max(U, H);
    let tid = lid.x;
    let b0 = wid.x * R;
    let per = 3u * S + 2u * D + 2u * M + 3u * A;
    let o_s = 0u;
    let o_h0 = S;
    let o_h1 = S + D;
    let o_u0 = S + 2u * D;
    let o_u1 = o_u0 + M;
    let o_st = o_u1 + M;
    let o_ao = o_st + 2u * S;
    let o_a = o_ao + 2u * A;
    let given = (p.flags & ACT_GIVEN) != 0u;
    let mode = (p.flags & ACT_MODE) != 0u;
    let pmean = (p.flags & PRIOR_MEAN) != 0u;
    let bm = (p.flags & BATCH_MAJOR) != 0u;
    // The state before step t0: the start states (written as feature row 0), or the features
    // the previous chunk wrote after step t0 - 1.
    let t0 = p.t0;
    let o_hstart = select(o_h0, o_h1, (t0 & 1u) == 1u);
    for (var i = tid; i < R * F; i += WGT) {
        let r = i / F;
        let k = i - r * F;
        let b = min(b0 + r, N - 1u);
        var v = 0.0;
        if t0 > 0u {
            v = feats[select(t0 * N + b, b * HZ + t0 - 1u, bm) * F + k];
        } else if k < S {
            v = start_s[b * S + k];
        } else {
            v = start_h[b * D + k - S];
        }
        if k < S {
            sh[r * per + o_s + k] = v;
        } else {
            sh[r * per + o_hstart + k - S] = v;
        }
        if t0 == 0u && b0 + r < N && !bm { feats[b * F + k] = v; }
    }
    workgroupBarrier();
    for (var t = t0; t < p.t1; t++) {
        let o_hc = select(o_h0, o_h1, (t & 1u) == 1u);
        let o_hn = select(o_h1, o_h0, (t & 1u) == 1u);
        if !given {
            // The actor on feat_t = [s, h]: four ELU layers, then [m | r].
            tile_dense(tid, per, U, p.a_w0, p.a_b0, o_s, S, o_hc, D, o_u0, true);
            workgroupBarrier();
            tile_dense(tid, per, U, p.a_w1, p.a_b1, o_u0, U, 0u, 0u, o_u1, true);
            workgroupBarrier();
            tile_dense(tid, per, U, p.a_w2, p.a_b2, o_u1, U, 0u, 0u, o_u0, true);
            workgroupBarrier();
            tile_dense(tid, per, U, p.a_w3, p.a_b3, o_u0, U, 0u, 0u, o_u1, true);
            workgroupBarrier();
            tile_dense(tid, per, 2u * A, p.a_w4, p.a_b4, o_u1, U, 0u, 0u, o_ao, false);
            workgroupBarrier();
        }
        for (var i = tid; i < R * A; i += WGT) {
            let r = i / A;
            let c = i - r * A;
            let b = min(b0 + r, N - 1u);
            let q = select(t * N + b, b * HZ + t, bm) * A + c;
            var a = 0.0;
            if given {
                a = action[q];
            } else {
                var x = 5.0 * tanh_s(sh[r * per + o_ao + c] / 5.0);
                if !mode {
                    let sd = softplus(sh[r * per + o_ao + A + c] + p.init_std) + p.act_min_std;
                    x += sd * act_eps[q];
                }
                a = tanh_s(x);
            }
            sh[r * per + o_a + c] = a;
            if b0 + r < N { actions[q] = a; }
        }
        for (var i = tid; i < R * D; i += WGT) {
            let r = i / D;
            let j = i - r * D;
            if SAVE && b0 + r < N { hprev[(t * N + b0 + r) * D + j] = sh[r * per + o_hc + j]; }
        }
        workgroupBarrier();
        // img_in, then the GRU, img_out and the prior's statistics. Each piece's output is saved
        // during the next piece, which only reads it, row by row (contiguous stores).
        tile_dense(tid, per, H, p.t_in, p.b_in, o_s, S, o_a, A, o_u0, true);
        workgroupBarrier();
        tile_gru(tid, b0, N, t, per, o_u0, o_hc, o_hn);
        save_rows(tid, b0, N, t, per, H, o_u0, 0u);
        workgroupBarrier();
        tile_dense(tid, per, H, p.t_io, p.b_io, o_hn, D, 0u, 0u, o_u1, true);
        workgroupBarrier();
        tile_dense(tid, per, 2u * S, p.t_is, p.b_is, o_u1, H, 0u, 0u, o_st, false);
        save_rows(tid, b0, N, t, per, H, o_u1, 1u);
        workgroupBarrier();
        save_rows(tid, b0, N, t, per, 2u * S, o_st, 2u);
        // The prior sample; feature row t + 1.
        for (var i = tid; i < R * F; i += WGT) {
            let r = i / F;
            let k = i - r * F;
            let b = min(b0 + r, N - 1u);
            var v = 0.0;
            if k < S {
                v = sh[r * per + o_st + k];
                if !pmean {
                    v += (softplus(sh[r * per + o_st + S + k]) + p.min_std) * eps[(t * N + b) * S + k];
                }
                sh[r * per + o_s + k] = v;
            } else {
                v = sh[r * per + o_hn + k - S];
            }
            let row = select((t + 1u) * N + b, b * HZ + t, bm);
            if b0 + r < N { feats[row * F + k] = v; }
        }
        workgroupBarrier();
    }
}

// Workgroup memory per row: dst [2S] | dy [hidden] (later dx) | dg [4D] | dh [D] | ds [S].
@compute @workgroup_size(WGT)
fn imagine_backward(@builtin(workgroup_id) wid: vec3<u32>,
                    @builtin(local_invocation_id) lid: vec3<u32>) {
    let S = p.stoch;
    let A = p.act;
    let D = p.deter;
    let H = p.hidden;
    let N = p.batch;
    let HZ = p.horizon;
    let F = S + D;
    let SA = S + A;
    let tid = lid.x;
    let b0 = wid.x * R;
    let per = 3u * S + H + 5u * D;
    let o_dst = 0u;
    let o_dy = 2u * S;
    let o_dg = o_dy + H;
    let o_dh = o_dg + 4u * D;
    let o_ds = o_dh + D;
    let pmean = (p.flags & PRIOR_MEAN) != 0u;
    load_carry(tid, b0, N, per, o_dh, HZ);
    workgroupBarrier();
    for (var tt = 0u; tt < p.t1 - p.t0; tt++) {
        let t = p.t1 - 1u - tt;
        // dL/ds_{t+1} (from the feature and from step t+1's img_in), through the prior sample.
        for (var i = tid; i < R * 2u * S; i += WGT) {
            let r = i / (2u * S);
            let k = i - r * 2u * S;
            let b = min(b0 + r, N - 1u);
            let j = select(k, k - S, k >= S);
            let ds = sh[r * per + o_ds + j] + d_feats[((t + 1u) * N + b) * F + j];
            var v = ds;
            if k >= S {
                v = 0.0;
                if !pmean {
                    v = ds * eps[(t * N + b) * S + j] * sigmoid(prior[(t * N + b) * 2u * S + k]);
                }
            }
            sh[r * per + o_dst + k] = v;
        }
        workgroupBarrier();
        // Through img_stats and ELU: img_out's pre-activation gradient.
        for (var j = tid; j < H; j += WGT) {
            var acc: array<f32, RMAX>;
            for (var r = 0u; r < R; r++) { acc[r] = 0.0; }
            for (var k = 0u; k < 2u * S; k++) {
                let w = wp[p.w_is + k * H + j];
                for (var r = 0u; r < R; r++) { acc[r] += w * sh[r * per + o_dst + k]; }
            }
            for (var r = 0u; r < R; r++) {
                let b = min(b0 + r, N - 1u);
                sh[r * per + o_dy + j] = acc[r] * elu_grad(y_img[(t * N + b) * H + j]);
            }
        }
        workgroupBarrier();
        // dL/dh_{t+1} from every path, then the GRU cell's backward.
        for (var j = tid; j < D; j += WGT) {
            var g: array<f32, RMAX>;
            for (var r = 0u; r < R; r++) {
                let b = min(b0 + r, N - 1u);
                g[r] = sh[r * per + o_dh + j] + d_feats[((t + 1u) * N + b) * F + S + j];
            }
            for (var i = 0u; i < H; i++) {
                let w = wp[p.w_io + i * D + j];
                for (var r = 0u; r < R; r++) { g[r] += w * sh[r * per + o_dy + i]; }
            }
            for (var r = 0u; r < R; r++) { sh[r * per + o_dh + j] = g[r]; }
        }
        tile_gru_backward(tid, b0, N, t, per, o_dg, o_dh);
        workgroupBarrier();
        tile_gru_input_backward(tid, b0, N, t, per, o_dg, o_dh, o_dy);
        workgroupBarrier();
        // d[s_t, a_t] = W_in^T dx: dL/ds_t is carried, dL/da_t written.
        for (var j = tid; j < SA; j += WGT) {
            var acc: array<f32, RMAX>;
            for (var r = 0u; r < R; r++) { acc[r] = 0.0; }
            for (var i = 0u; i < H; i++) {
                let w = wp[p.w_in + i * SA + j];
                for (var r = 0u; r < R; r++) { acc[r] += w * sh[r * per + o_dy + i]; }
            }
            for (var r = 0u; r < R; r++) {
                if j < S {
                    sh[r * per + o_ds + j] = acc[r];
                } else if b0 + r < N {
                    d_actions[(t * N + b0 + r) * A + j - S] = acc[r];
                }
            }
        }
        workgroupBarrier();
    }
    store_carry(tid, b0, N, per, o_dh);
}
