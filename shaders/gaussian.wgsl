// gaussian.wgsl: the diagonal Gaussian head of the RSSM and its counter-based noise.
//
//   gaussian_forward   stats [rows, 2S] = [mean | raw]  ->  mean, std = softplus(raw) + min_std,
//                      sample = mean + std * eps, all [rows, S], in one pass. With SEEDED, eps is
//                      generated here (and written out, so the backward and callers reuse it);
//                      otherwise it is read from the eps binding (given noise).
//   normal             eps[i] ~ N(0, 1): the same numbers the head draws for the same (seed, offset).
//   normal_steps       [steps, s] normals, row i from stream (seed, offset + i * stride).
//   random_bits        the raw Philox 4x32-10 output words (for tests: bit-exact against the CPU).
//   with TANH (the actor's action head, `agent::actor`): mean = scale tanh(m / scale),
//                      std = softplus(raw + shift) + min_std, sample = tanh(mean + std * eps).
//   gaussian_backward  [backward] d stats (+)= [d mean | d raw] from any of the gradients of mean,
//                      std and sample (HAS_GMEAN, HAS_GSTD, HAS_GSAMPLE):
//                      d mean = g_mean + g_sample,
//                      d raw  = (g_std + g_sample * eps) * sigmoid(raw)   (softplus' = sigmoid).
//
// Noise: Philox 4x32-10 (Salmon et al., 2011) with key = (seed lo, seed hi) and counter
// (i / 4, 0, offset lo, offset hi): element i of a stream uses word i % 4 of block i / 4, so
// any thread can compute any element and the stream never depends on the grid. Each word w
// becomes a uniform u = ((w >> 9) + 0.5) / 2^23 in (0, 1), exact in f32 on every adapter.
// Box-Muller on the pairs (u0, u1), (u2, u3) of a block: rad = sqrt(-2 ln u_even),
// theta = pi (2 u_odd - 1) (in (-pi, pi), where sin/cos are most accurate),
// eps = rad cos theta (even i), rad sin theta (odd i). The words are bit-identical to the CPU
// reference; the normals agree to the precision of the adapter's log, sin and cos.
//
// Bindings: 0 params
//   forward:  1 stats (read), 2 mean (rw), 3 std (rw), 4 sample (rw), 5 eps (rw: written with
//             SEEDED, read otherwise)
//   normal, normal_steps: 5 eps (rw)            random_bits: 6 bits (rw, u32)
//   backward: 1 stats (read), 7 eps (read), 8 g_mean (read), 9 g_std (read), 10 g_sample (read),
//             11 d_stats (rw). An absent gradient's binding gets `stats` (read-only twice).
// Workgroup (WG,1,1), grids folded by Gpu::grid_1d. Forward, normal and random_bits: one thread
// per Philox block (4 consecutive elements, the 4 words of one generator call); backward: one
// thread per element of [rows, S].
// Overrides: SEEDED (forward), HAS_GMEAN, HAS_GSTD, HAS_GSAMPLE, ACC (backward adds into d_stats).

struct Params {
    n: u32,        // rows * S (forward, backward, normal); number of words (random_bits)
    s: u32,        // S
    min_std: f32,
    seed_lo: u32,
    seed_hi: u32,
    off_lo: u32,
    off_hi: u32,
    // normal_steps: offsets between consecutive steps' streams.
    stride: u32,
    // TANH (the actor's action head): raw is shifted by `shift` before the softplus, the mean
    // bounded to scale * tanh(m / scale).
    shift: f32,
    scale: f32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> stats: array<f32>;
@group(0) @binding(2) var<storage, read_write> mean: array<f32>;
@group(0) @binding(3) var<storage, read_write> stdv: array<f32>;
@group(0) @binding(4) var<storage, read_write> sample: array<f32>;
@group(0) @binding(5) var<storage, read_write> eps: array<f32>;
@group(0) @binding(6) var<storage, read_write> bits: array<u32>;
@group(0) @binding(7) var<storage, read> eps_in: array<f32>;
@group(0) @binding(8) var<storage, read> g_mean: array<f32>;
@group(0) @binding(9) var<storage, read> g_std: array<f32>;
@group(0) @binding(10) var<storage, read> g_sample: array<f32>;
@group(0) @binding(11) var<storage, read_write> d_stats: array<f32>;

override SEEDED: bool = true;
override HAS_GMEAN: bool = false;
override HAS_GSTD: bool = false;
override HAS_GSAMPLE: bool = false;
override ACC: bool = false;
// The actor's tanh-Gaussian: mean = scale tanh(m / scale), std = softplus(r + shift) + min_std,
// sample = tanh(mean + std eps) (the squashed action; its gradient goes through the tanh).
override TANH: bool = false;

const PHILOX_M0: u32 = 0xD2511F53u;
const PHILOX_M1: u32 = 0xCD9E8D57u;
const PHILOX_W0: u32 = 0x9E3779B9u;
const PHILOX_W1: u32 = 0xBB67AE85u;
const PI: f32 = 3.14159265358979;

// (high, low) words of the 64-bit product a * b, from 16-bit halves (WGSL has no mul-hi).
fn mulhilo(a: u32, b: u32) -> vec2<u32> {
    let al = a & 0xFFFFu;
    let ah = a >> 16u;
    let bl = b & 0xFFFFu;
    let bh = b >> 16u;
    let ll = al * bl;
    let lh = al * bh;
    let hl = ah * bl;
    let hh = ah * bh;
    let mid = (ll >> 16u) + (lh & 0xFFFFu) + (hl & 0xFFFFu);
    let hi = hh + (lh >> 16u) + (hl >> 16u) + (mid >> 16u);
    return vec2<u32>(hi, a * b);
}

// Philox 4x32 with 10 rounds (the key is bumped before every round but the first).
fn philox(ctr: vec4<u32>, key: vec2<u32>) -> vec4<u32> {
    var c = ctr;
    var k = key;
    for (var rnd = 0u; rnd < 10u; rnd++) {
        if rnd > 0u {
            k += vec2<u32>(PHILOX_W0, PHILOX_W1);
        }
        let p0 = mulhilo(PHILOX_M0, c.x);
        let p1 = mulhilo(PHILOX_M1, c.z);
        c = vec4<u32>(p1.x ^ c.y ^ k.x, p1.y, p0.x ^ c.w ^ k.y, p0.y);
    }
    return c;
}

// The 4 words of block `blk` of the stream (seed, offset).
fn block_words(blk: u32) -> vec4<u32> {
    return block_words_at(blk, vec2<u32>(p.off_lo, p.off_hi));
}

// The 4 words of block `blk` of the stream (seed, off), off = (lo, hi).
fn block_words_at(blk: u32, off: vec2<u32>) -> vec4<u32> {
    return philox(vec4<u32>(blk, 0u, off.x, off.y), vec2<u32>(p.seed_lo, p.seed_hi));
}

// A word to a uniform in (0, 1): 23 bits, centred in their interval; exact in f32.
fn uniform01(w: u32) -> f32 {
    return (f32(w >> 9u) + 0.5) * (1.0 / 8388608.0);
}

// The 4 standard normals of block `blk`.
fn block_normals(blk: u32) -> vec4<f32> {
    return block_normals_at(blk, vec2<u32>(p.off_lo, p.off_hi));
}

// The 4 standard normals of block `blk` of stream (seed, off).
fn block_normals_at(blk: u32, off: vec2<u32>) -> vec4<f32> {
    let w = block_words_at(blk, off);
    let r0 = sqrt(-2.0 * log(uniform01(w.x)));
    let t0 = PI * (2.0 * uniform01(w.y) - 1.0);
    let r1 = sqrt(-2.0 * log(uniform01(w.z)));
    let t1 = PI * (2.0 * uniform01(w.w) - 1.0);
    return vec4<f32>(r0 * cos(t0), r0 * sin(t0), r1 * cos(t1), r1 * sin(t1));
}

@compute @workgroup_size(WG)
fn gaussian_forward(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                    @builtin(local_invocation_id) lid: vec3<u32>) {
    let blk = flat_id(wid, nwg, lid);
    let first = blk * 4u;
    if first >= p.n { return; }
    var z = vec4<f32>(0.0);
    if SEEDED { z = block_normals(blk); }
    for (var j = 0u; j < 4u; j++) {
        let e = first + j;
        if e >= p.n { break; }
        let row = e / p.s;
        let col = e - row * p.s;
        var m = stats[row * 2u * p.s + col];
        if TANH { m = p.scale * tanh_s(m / p.scale); }
        let sd = softplus(stats[row * 2u * p.s + p.s + col] + p.shift) + p.min_std;
        var ep: f32;
        if SEEDED {
            ep = z[j];
            eps[e] = ep;
        } else {
            ep = eps[e];
        }
        mean[e] = m;
        stdv[e] = sd;
        var x = m + sd * ep;
        if TANH { x = tanh_s(x); }
        sample[e] = x;
    }
}

@compute @workgroup_size(WG)
fn normal(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
          @builtin(local_invocation_id) lid: vec3<u32>) {
    let blk = flat_id(wid, nwg, lid);
    let first = blk * 4u;
    if first >= p.n { return; }
    let z = block_normals(blk);
    for (var j = 0u; j < 4u; j++) {
        if first + j >= p.n { break; }
        eps[first + j] = z[j];
    }
}

// [steps, s] normals: row i is the first s normals of stream (seed, offset + i * stride), the
// same numbers `normal` draws for that stream (one dispatch for a whole rollout's noise).
@compute @workgroup_size(WG)
fn normal_steps(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                @builtin(local_invocation_id) lid: vec3<u32>) {
    let id = flat_id(wid, nwg, lid);
    let per_step = (p.s + 3u) / 4u;
    let step = id / per_step;
    let blk = id - step * per_step;
    if step * p.s >= p.n { return; }
    let lo = p.off_lo + step * p.stride;
    let hi = p.off_hi + select(0u, 1u, lo < p.off_lo);
    let z = block_normals_at(blk, vec2<u32>(lo, hi));
    for (var j = 0u; j < 4u; j++) {
        let i = blk * 4u + j;
        if i >= p.s { break; }
        eps[step * p.s + i] = z[j];
    }
}

@compute @workgroup_size(WG)
fn random_bits(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
               @builtin(local_invocation_id) lid: vec3<u32>) {
    let blk = flat_id(wid, nwg, lid);
    let first = blk * 4u;
    if first >= p.n { return; }
    let w = block_words(blk);
    for (var j = 0u; j < 4u; j++) {
        if first + j >= p.n { break; }
        bits[first + j] = w[j];
    }
}

@compute @workgroup_size(WG)
fn gaussian_backward(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                     @builtin(local_invocation_id) lid: vec3<u32>) {
    let e = flat_id(wid, nwg, lid);
    if e >= p.n { return; }
    let row = e / p.s;
    let col = e - row * p.s;
    let im = row * 2u * p.s + col;
    let ir = im + p.s;
    let raw = stats[ir] + p.shift;
    var dm = 0.0;
    var dr = 0.0;
    if HAS_GMEAN { dm += g_mean[e]; }
    if HAS_GSAMPLE {
        var gs = g_sample[e];
        if TANH {
            // Through the squashing tanh, recomputed from the statistics and the noise.
            let m = p.scale * tanh_s(stats[im] / p.scale);
            let a = tanh_s(m + (softplus(raw) + p.min_std) * eps_in[e]);
            gs *= 1.0 - a * a;
        }
        dm += gs;
        dr += gs * eps_in[e];
    }
    if HAS_GSTD { dr += g_std[e]; }
    if TANH {
        let u = tanh_s(stats[im] / p.scale);
        dm *= 1.0 - u * u;
    }
    dr *= sigmoid(raw);
    if ACC {
        d_stats[im] += dm;
        d_stats[ir] += dr;
    } else {
        d_stats[im] = dm;
        d_stats[ir] = dr;
    }
}
