// conv.wgsl: Conv2d and ConvTranspose2d (NCHW, no padding), forward and backward, as implicit
// GEMMs with register blocking and no shared memory. (The register blocks below are written out
// in full, one line per position or column: WGSL has no macros, and lavapipe neither unrolls
// loops nor keeps a dynamically indexed private array in registers.)
//
// Every pass of both ops is one of three sums (R: channels summed over, O: output channels,
// k: the kernel, s: the stride):
//   gather   out[n,o,y,x] = sum_{r,ky,kx} in[n,r,y*s+ky,x*s+kx] * w(o,r,ky,kx)
//            Conv2d forward; ConvTranspose2d input gradient.
//   scatter  out[n,o,Y,X] = sum over r and the taps with Y = iy*s+ky, X = ix*s+kx of
//            in[n,r,iy,ix] * w(o,r,ky,kx)
//            ConvTranspose2d forward; Conv2d input gradient. Computed as a gather per output
//            pixel over the taps that reach it (no atomics): the output splits into s*s phases
//            (Y % s, X % s); in a phase the taps are ky = Y%s + s*ty, kx = X%s + s*tx and read
//            the input pixel (Y/s - ty, X/s - tx), masked where that falls outside.
//   wgrad    gw[a,b,ky,kx] = sum_{n,y,x} small[n,a,y,x] * large[n,b,y*s+ky,x*s+kx]
//            Both weight gradients (Conv2d: small = dy, large = x; ConvTranspose2d: small = x,
//            large = dy): a GEMM whose reduction (images x pixels) is long and whose output is
//            small, so the images are split across workgroups into partial sums, then reduced.
// plus the bias gradient (a per-channel sum, also split) and the sum of the partials.
//
// Entry points ([backward]: used only by backward passes):
//   pack_w         wp[((ky*kw+kx)*R + r)*opad4 + o/4][o%4] = w[o*ws_o + r*ws_r + ky*kw + kx],
//                  0 for o >= O: output channels contiguous, so a vec4 load gives four of them.
//                  The strides cover both weight layouts ([O,R,kh,kw] and [R,O,kh,kw]).
//                  Workgroup (WG); uses 1 w, 6 wp_out.
//   conv_main      gather (SCATTER = false) or scatter (SCATTER = true) with fused bias
//                  (bias[o / bias_div]), activation (act) and accumulation (acc).
//                  Workgroup (64,1,1). Each invocation holds NPOS output positions x 4*CB4 output
//                  channels in registers (NPOS 16 x 16 channels = 64 vec4 on CPU drivers, 8 x 16
//                  on GPUs). Its positions are consecutive entries of the flattened (image, row,
//                  column) output grid (of one phase when scattering), so short rows and 1x1
//                  outputs waste nothing. Grid: x = output-channel blocks (so the weight loads
//                  are the same address for a whole workgroup), y = position groups (times the
//                  s*s phases when scattering; folds into z). Inner step: NPOS image loads and
//                  CB4 vec4 weight loads for 4*NPOS*CB4 FMAs. Uses 1 in, 2 wp, 3 bias, 4 out.
//   wgrad          (in conv_wgrad.wgsl, compiled after this file as the `conv` family; the
//                  `conv_lanes` family has `wgrad_lanes` in conv_wgrad_lanes.wgsl instead, and
//                  `conv_main_lanes` in conv_main_lanes.wgsl, see gpu::shaders::COMPOSED)
//                  [backward] partial[split][a][c] of a weight gradient, c = (b*kh + ky)*kw + kx,
//                  summed over one split's images. Workgroup (64,1,1); each invocation holds 16 a
//                  x NCOL c (NCOL 16 on CPU drivers, 8 on GPUs); inner step: 16 + NCOL loads for
//                  16*NCOL FMAs. Grid: x = tiles / 64, y = splits (folds into z). Uses 1 small,
//                  4 partial, 5 large.
//   bias_grad      [backward] partial[split][o] = sum over the split's images and pixels of
//                  g[n,o,:]. Workgroup (WG); uses 1 g, 4 partial.
//   reduce_splits  [backward] out[i] (+)= sum_s partial[s*len + i]. Workgroup (WG); uses 1
//                  partial, 4 out.
//
// Why this form: lavapipe (the CPU Vulkan driver) runs invocations as SIMD lanes but loads
// every storage-buffer value lane by lane, and a workgroup barrier costs more than the loads it
// would save. So: no shared memory, and as many FMAs per loaded value as registers allow (a
// 16x16 block does 8 per load; 4x4 does 2). On GPUs the same blocks read through L1 (the
// weights of a workgroup are one broadcast address), and the split reductions keep enough
// invocations busy when a weight gradient is small.
// Kernel size, stride, activation and accumulation are parameters, not overrides: they only
// steer loops and stores, and each override variant of these large kernels is a separate
// pipeline compile (about a second on lavapipe).
// Overrides: SCATTER, CB4 (1, 2 or 4 output-channel vec4s per invocation), NPOS (8 or 16
// positions per invocation), NCOL (8 or 16 weight-gradient columns per invocation).

struct Params {
    n: u32,        // images
    r: u32,        // conv_main, pack_w: channels summed over
    o: u32,        // conv_main, pack_w, bias_grad: output channels
    ih: u32,       // conv_main: input image; wgrad: the small image
    iw: u32,
    oh: u32,       // conv_main: output image; wgrad: the large image
    ow: u32,
    kh: u32,       // kernel
    kw: u32,
    s: u32,        // stride
    opad4: u32,    // conv_main, pack_w: vec4s per packed weight row (O rounded up to 4*CB4, / 4)
    bias_div: u32, // conv_main: output channel o uses bias[o / bias_div]
    has_bias: u32, // conv_main: 0 or 1
    act: u32,      // conv_main: 0 none, 1 ReLU, 2 ELU (after the bias)
    acc: u32,      // conv_main, reduce_splits: 1 adds into out
    a: u32,        // wgrad: channels of the small image
    b: u32,        // wgrad: channels of the large image
    c: u32,        // wgrad: b * kh * kw
    imgs: u32,     // wgrad, bias_grad: images per split
    ws_o: u32,     // pack_w: weight stride of an output channel
    ws_r: u32,     // pack_w: weight stride of a summed-over channel
    len: u32,      // bias_grad: pixels per channel; reduce_splits: values per split
    splits: u32,   // bias_grad, reduce_splits: number of splits
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> inp: array<f32>;
@group(0) @binding(2) var<storage, read> wp: array<vec4<f32>>;
@group(0) @binding(3) var<storage, read> bias: array<f32>;
@group(0) @binding(4) var<storage, read_write> out: array<f32>;
@group(0) @binding(5) var<storage, read> inp2: array<f32>;
@group(0) @binding(6) var<storage, read_write> wp_out: array<vec4<f32>>;

override SCATTER: bool = false;
override CB4: u32 = 4u;
override NPOS: u32 = 8u;
override NCOL: u32 = 8u;

fn load_bias4(o: u32) -> vec4<f32> {
    if p.has_bias == 0u { return vec4<f32>(0.0); }
    let last = p.o - 1u;
    return vec4<f32>(bias[min(o, last) / p.bias_div], bias[min(o + 1u, last) / p.bias_div],
                     bias[min(o + 2u, last) / p.bias_div], bias[min(o + 3u, last) / p.bias_div]);
}

// out[idx + o*OH*OW] (+)= act(v) for output channel o < O.
fn store1(idx: u32, o: u32, v: f32) {
    if o >= p.o { return; }
    let i = idx + o * p.oh * p.ow;
    let y = activate(v, p.act);
    if p.acc != 0u { out[i] += y; } else { out[i] = y; }
}

fn store4(idx: u32, o: u32, v: vec4<f32>) {
    store1(idx, o, v.x);
    store1(idx, o + 1u, v.y);
    store1(idx, o + 2u, v.z);
    store1(idx, o + 3u, v.w);
}

@compute @workgroup_size(WG)
fn pack_w(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
          @builtin(local_invocation_id) lid: vec3<u32>) {
    let i = flat_id(wid, nwg, lid);
    if i >= p.kh * p.kw * p.r * p.opad4 { return; }
    let o4 = i % p.opad4;
    let tr = i / p.opad4;
    let r = tr % p.r;
    let src = r * p.ws_r + tr / p.r;
    let o = o4 * 4u;
    var v = vec4<f32>(0.0);
    if o < p.o { v.x = inp[o * p.ws_o + src]; }
    if o + 1u < p.o { v.y = inp[(o + 1u) * p.ws_o + src]; }
    if o + 2u < p.o { v.z = inp[(o + 2u) * p.ws_o + src]; }
    if o + 3u < p.o { v.w = inp[(o + 3u) * p.ws_o + src]; }
    wp_out[i] = v;
}

// Where the (input channel, tap) loop of conv_main and conv_main_lanes stands: xo is added to
// each position's input offset, wi is the packed-weight index. Gather walks kx along a kernel
// row and tap over the kh x kw taps, then the next channel (r_off, r_wi). Scatter walks the
// channels r within a tap (tx, ty); when r wraps to 0 the caller recomputes the offsets, xo and
// wi for the new tap.
struct TapWalk {
    xo: u32,
    wi: u32,
    kx: u32,
    tap: u32,
    r_off: u32,
    r_wi: u32,
    r: u32,
    tx: u32,
    ty: u32,
}

// The walk's loop invariants (locals, not the uniform block: lavapipe reloads a uniform at
// every use).
struct TapGeom {
    kw: u32,
    taps: u32,      // kh * kw
    tap_step: u32,  // R * opad4: the weights of the next tap
    row_step: u32,  // iw - kw: from a kernel row's end to the next row's start
    ihw: u32,
    opad4: u32,
    nr: u32,
    ntx: u32,       // scatter: taps per row of this phase
}

fn tap_walk_next(t: ptr<function, TapWalk>, g: TapGeom) {
    if SCATTER {
        (*t).xo += g.ihw;
        (*t).wi += g.opad4;
        (*t).r += 1u;
        if (*t).r == g.nr {
            (*t).r = 0u;
            (*t).tx += 1u;
            if (*t).tx == g.ntx {
                (*t).tx = 0u;
                (*t).ty += 1u;
            }
        }
    } else {
        (*t).kx += 1u;
        (*t).tap += 1u;
        (*t).xo += 1u;
        (*t).wi += g.tap_step;
        if (*t).kx == g.kw {
            (*t).kx = 0u;
            (*t).xo += g.row_step;
        }
        if (*t).tap == g.taps {
            (*t).tap = 0u;
            (*t).r_off += g.ihw;
            (*t).r_wi += g.opad4;
            (*t).xo = (*t).r_off;
            (*t).wi = (*t).r_wi;
        }
    }
}

@compute @workgroup_size(64)
fn conv_main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
             @builtin(local_invocation_id) lid: vec3<u32>) {
    let ob4 = wid.x * CB4;
    var wy = fold_yz(wid, nwg);
    // This invocation's output positions: NPOS consecutive entries of the flattened (image,
    // row, column) grid of the output (gather) or of one phase of it (scatter).
    var py = 0u;
    var px = 0u;
    var qh = p.oh;
    var qw = p.ow;
    if SCATTER {
        let ph = wy % (p.s * p.s);
        wy = wy / (p.s * p.s);
        py = ph / p.s;
        px = ph % p.s;
        if py >= p.oh || px >= p.ow { return; }
        qh = (p.oh - py + p.s - 1u) / p.s;
        qw = (p.ow - px + p.s - 1u) / p.s;
    }
    let qhw = qh * qw;
    let mt = p.n * qhw;
    let m0 = (wy * 64u + lid.x) * NPOS;
    if m0 >= mt { return; }
    let ihw = p.ih * p.iw;
    let ohw = p.oh * p.ow;
    // Per position: image, row and column (phase units when scattering). Positions past the
    // end repeat the last one: their loads stay in range and they are not stored.
    var img: array<u32, 16>;
    var yy: array<u32, 16>;
    var xx: array<u32, 16>;
    { let m = min(m0 + 0u, mt - 1u); img[0] = m / qhw; let q = m - img[0] * qhw; yy[0] = q / qw; xx[0] = q - yy[0] * qw; }
    { let m = min(m0 + 1u, mt - 1u); img[1] = m / qhw; let q = m - img[1] * qhw; yy[1] = q / qw; xx[1] = q - yy[1] * qw; }
    { let m = min(m0 + 2u, mt - 1u); img[2] = m / qhw; let q = m - img[2] * qhw; yy[2] = q / qw; xx[2] = q - yy[2] * qw; }
    { let m = min(m0 + 3u, mt - 1u); img[3] = m / qhw; let q = m - img[3] * qhw; yy[3] = q / qw; xx[3] = q - yy[3] * qw; }
    { let m = min(m0 + 4u, mt - 1u); img[4] = m / qhw; let q = m - img[4] * qhw; yy[4] = q / qw; xx[4] = q - yy[4] * qw; }
    { let m = min(m0 + 5u, mt - 1u); img[5] = m / qhw; let q = m - img[5] * qhw; yy[5] = q / qw; xx[5] = q - yy[5] * qw; }
    { let m = min(m0 + 6u, mt - 1u); img[6] = m / qhw; let q = m - img[6] * qhw; yy[6] = q / qw; xx[6] = q - yy[6] * qw; }
    { let m = min(m0 + 7u, mt - 1u); img[7] = m / qhw; let q = m - img[7] * qhw; yy[7] = q / qw; xx[7] = q - yy[7] * qw; }
    { let m = min(m0 + 8u, mt - 1u); img[8] = m / qhw; let q = m - img[8] * qhw; yy[8] = q / qw; xx[8] = q - yy[8] * qw; }
    { let m = min(m0 + 9u, mt - 1u); img[9] = m / qhw; let q = m - img[9] * qhw; yy[9] = q / qw; xx[9] = q - yy[9] * qw; }
    { let m = min(m0 + 10u, mt - 1u); img[10] = m / qhw; let q = m - img[10] * qhw; yy[10] = q / qw; xx[10] = q - yy[10] * qw; }
    { let m = min(m0 + 11u, mt - 1u); img[11] = m / qhw; let q = m - img[11] * qhw; yy[11] = q / qw; xx[11] = q - yy[11] * qw; }
    { let m = min(m0 + 12u, mt - 1u); img[12] = m / qhw; let q = m - img[12] * qhw; yy[12] = q / qw; xx[12] = q - yy[12] * qw; }
    { let m = min(m0 + 13u, mt - 1u); img[13] = m / qhw; let q = m - img[13] * qhw; yy[13] = q / qw; xx[13] = q - yy[13] * qw; }
    { let m = min(m0 + 14u, mt - 1u); img[14] = m / qhw; let q = m - img[14] * qhw; yy[14] = q / qw; xx[14] = q - yy[14] * qw; }
    { let m = min(m0 + 15u, mt - 1u); img[15] = m / qhw; let q = m - img[15] * qhw; yy[15] = q / qw; xx[15] = q - yy[15] * qw; }
    // Gather: offset of the window's top-left input pixel; scatter: offset of the image.
    var base: array<u32, 16>;
    base[0] = img[0] * p.r * ihw + select(yy[0] * p.s * p.iw + xx[0] * p.s, 0u, SCATTER);
    base[1] = img[1] * p.r * ihw + select(yy[1] * p.s * p.iw + xx[1] * p.s, 0u, SCATTER);
    base[2] = img[2] * p.r * ihw + select(yy[2] * p.s * p.iw + xx[2] * p.s, 0u, SCATTER);
    base[3] = img[3] * p.r * ihw + select(yy[3] * p.s * p.iw + xx[3] * p.s, 0u, SCATTER);
    base[4] = img[4] * p.r * ihw + select(yy[4] * p.s * p.iw + xx[4] * p.s, 0u, SCATTER);
    base[5] = img[5] * p.r * ihw + select(yy[5] * p.s * p.iw + xx[5] * p.s, 0u, SCATTER);
    base[6] = img[6] * p.r * ihw + select(yy[6] * p.s * p.iw + xx[6] * p.s, 0u, SCATTER);
    base[7] = img[7] * p.r * ihw + select(yy[7] * p.s * p.iw + xx[7] * p.s, 0u, SCATTER);
    base[8] = img[8] * p.r * ihw + select(yy[8] * p.s * p.iw + xx[8] * p.s, 0u, SCATTER);
    base[9] = img[9] * p.r * ihw + select(yy[9] * p.s * p.iw + xx[9] * p.s, 0u, SCATTER);
    base[10] = img[10] * p.r * ihw + select(yy[10] * p.s * p.iw + xx[10] * p.s, 0u, SCATTER);
    base[11] = img[11] * p.r * ihw + select(yy[11] * p.s * p.iw + xx[11] * p.s, 0u, SCATTER);
    base[12] = img[12] * p.r * ihw + select(yy[12] * p.s * p.iw + xx[12] * p.s, 0u, SCATTER);
    base[13] = img[13] * p.r * ihw + select(yy[13] * p.s * p.iw + xx[13] * p.s, 0u, SCATTER);
    base[14] = img[14] * p.r * ihw + select(yy[14] * p.s * p.iw + xx[14] * p.s, 0u, SCATTER);
    base[15] = img[15] * p.r * ihw + select(yy[15] * p.s * p.iw + xx[15] * p.s, 0u, SCATTER);
    // Accumulators: a<position>_<output channel vec4>.
    var a0_0 = vec4<f32>(0.0); var a0_1 = vec4<f32>(0.0); var a0_2 = vec4<f32>(0.0); var a0_3 = vec4<f32>(0.0);
    var a1_0 = vec4<f32>(0.0); var a1_1 = vec4<f32>(0.0); var a1_2 = vec4<f32>(0.0); var a1_3 = vec4<f32>(0.0);
    var a2_0 = vec4<f32>(0.0); var a2_1 = vec4<f32>(0.0); var a2_2 = vec4<f32>(0.0); var a2_3 = vec4<f32>(0.0);
    var a3_0 = vec4<f32>(0.0); var a3_1 = vec4<f32>(0.0); var a3_2 = vec4<f32>(0.0); var a3_3 = vec4<f32>(0.0);
    var a4_0 = vec4<f32>(0.0); var a4_1 = vec4<f32>(0.0); var a4_2 = vec4<f32>(0.0); var a4_3 = vec4<f32>(0.0);
    var a5_0 = vec4<f32>(0.0); var a5_1 = vec4<f32>(0.0); var a5_2 = vec4<f32>(0.0); var a5_3 = vec4<f32>(0.0);
    var a6_0 = vec4<f32>(0.0); var a6_1 = vec4<f32>(0.0); var a6_2 = vec4<f32>(0.0); var a6_3 = vec4<f32>(0.0);
    var a7_0 = vec4<f32>(0.0); var a7_1 = vec4<f32>(0.0); var a7_2 = vec4<f32>(0.0); var a7_3 = vec4<f32>(0.0);
    var a8_0 = vec4<f32>(0.0); var a8_1 = vec4<f32>(0.0); var a8_2 = vec4<f32>(0.0); var a8_3 = vec4<f32>(0.0);
    var a9_0 = vec4<f32>(0.0); var a9_1 = vec4<f32>(0.0); var a9_2 = vec4<f32>(0.0); var a9_3 = vec4<f32>(0.0);
    var a10_0 = vec4<f32>(0.0); var a10_1 = vec4<f32>(0.0); var a10_2 = vec4<f32>(0.0); var a10_3 = vec4<f32>(0.0);
    var a11_0 = vec4<f32>(0.0); var a11_1 = vec4<f32>(0.0); var a11_2 = vec4<f32>(0.0); var a11_3 = vec4<f32>(0.0);
    var a12_0 = vec4<f32>(0.0); var a12_1 = vec4<f32>(0.0); var a12_2 = vec4<f32>(0.0); var a12_3 = vec4<f32>(0.0);
    var a13_0 = vec4<f32>(0.0); var a13_1 = vec4<f32>(0.0); var a13_2 = vec4<f32>(0.0); var a13_3 = vec4<f32>(0.0);
    var a14_0 = vec4<f32>(0.0); var a14_1 = vec4<f32>(0.0); var a14_2 = vec4<f32>(0.0); var a14_3 = vec4<f32>(0.0);
    var a15_0 = vec4<f32>(0.0); var a15_1 = vec4<f32>(0.0); var a15_2 = vec4<f32>(0.0); var a15_3 = vec4<f32>(0.0);
    var xv0 = vec4<f32>(0.0); var xv1 = vec4<f32>(0.0); var xv2 = vec4<f32>(0.0); var xv3 = vec4<f32>(0.0);
    // One loop over (input channel, tap) steps (nested loops cost more on lavapipe).
    // Gather: channels outer, the kh x kw taps inner (the window of one channel stays in cache
    // while its taps are read); the positions read in[off[i] + xo]. Scatter: the taps of this
    // phase outer, ky = py + s*ty, kx = px + s*tx, channels inner; at each new tap the offsets
    // and masks are recomputed (mask 0 where the input pixel (qy - ty, qx - tx) is outside).
    let s = p.s;
    let kw = p.kw;
    let nr = p.r;
    let opad4 = p.opad4;
    var off: array<u32, 16>;
    var mk: array<f32, 16>;
    var mk0 = vec4<f32>(1.0); var mk1 = vec4<f32>(1.0); var mk2 = vec4<f32>(1.0); var mk3 = vec4<f32>(1.0);
    var steps = nr * p.kh * kw;
    var nty = 0u;
    var ntx = 0u;
    if SCATTER {
        nty = (p.kh - min(py, p.kh) + s - 1u) / s;
        ntx = (p.kw - min(px, p.kw) + s - 1u) / s;
        steps = nty * ntx * nr;
    } else {
        off[0] = base[0];
        off[1] = base[1];
        off[2] = base[2];
        off[3] = base[3];
        off[4] = base[4];
        off[5] = base[5];
        off[6] = base[6];
        off[7] = base[7];
        off[8] = base[8];
        off[9] = base[9];
        off[10] = base[10];
        off[11] = base[11];
        off[12] = base[12];
        off[13] = base[13];
        off[14] = base[14];
        off[15] = base[15];
    }
    let tg = TapGeom(kw, p.kh * kw, nr * opad4, p.iw - kw, ihw, opad4, nr, ntx);
    var tw = TapWalk(0u, ob4, 0u, 0u, 0u, ob4, 0u, 0u, 0u);
    for (var it = 0u; it < steps; it++) {
        if SCATTER && tw.r == 0u {
            { let iy = yy[0] - tw.ty; let ix = xx[0] - tw.tx; let ok = yy[0] >= tw.ty && iy < p.ih && xx[0] >= tw.tx && ix < p.iw; off[0] = base[0] + select(0u, iy * p.iw + ix, ok); mk[0] = select(0.0, 1.0, ok); }
            { let iy = yy[1] - tw.ty; let ix = xx[1] - tw.tx; let ok = yy[1] >= tw.ty && iy < p.ih && xx[1] >= tw.tx && ix < p.iw; off[1] = base[1] + select(0u, iy * p.iw + ix, ok); mk[1] = select(0.0, 1.0, ok); }
            { let iy = yy[2] - tw.ty; let ix = xx[2] - tw.tx; let ok = yy[2] >= tw.ty && iy < p.ih && xx[2] >= tw.tx && ix < p.iw; off[2] = base[2] + select(0u, iy * p.iw + ix, ok); mk[2] = select(0.0, 1.0, ok); }
            { let iy = yy[3] - tw.ty; let ix = xx[3] - tw.tx; let ok = yy[3] >= tw.ty && iy < p.ih && xx[3] >= tw.tx && ix < p.iw; off[3] = base[3] + select(0u, iy * p.iw + ix, ok); mk[3] = select(0.0, 1.0, ok); }
            { let iy = yy[4] - tw.ty; let ix = xx[4] - tw.tx; let ok = yy[4] >= tw.ty && iy < p.ih && xx[4] >= tw.tx && ix < p.iw; off[4] = base[4] + select(0u, iy * p.iw + ix, ok); mk[4] = select(0.0, 1.0, ok); }
            { let iy = yy[5] - tw.ty; let ix = xx[5] - tw.tx; let ok = yy[5] >= tw.ty && iy < p.ih && xx[5] >= tw.tx && ix < p.iw; off[5] = base[5] + select(0u, iy * p.iw + ix, ok); mk[5] = select(0.0, 1.0, ok); }
            { let iy = yy[6] - tw.ty; let ix = xx[6] - tw.tx; let ok = yy[6] >= tw.ty && iy < p.ih && xx[6] >= tw.tx && ix < p.iw; off[6] = base[6] + select(0u, iy * p.iw + ix, ok); mk[6] = select(0.0, 1.0, ok); }
            { let iy = yy[7] - tw.ty; let ix = xx[7] - tw.tx; let ok = yy[7] >= tw.ty && iy < p.ih && xx[7] >= tw.tx && ix < p.iw; off[7] = base[7] + select(0u, iy * p.iw + ix, ok); mk[7] = select(0.0, 1.0, ok); }
            { let iy = yy[8] - tw.ty; let ix = xx[8] - tw.tx; let ok = yy[8] >= tw.ty && iy < p.ih && xx[8] >= tw.tx && ix < p.iw; off[8] = base[8] + select(0u, iy * p.iw + ix, ok); mk[8] = select(0.0, 1.0, ok); }
            { let iy = yy[9] - tw.ty; let ix = xx[9] - tw.tx; let ok = yy[9] >= tw.ty && iy < p.ih && xx[9] >= tw.tx && ix < p.iw; off[9] = base[9] + select(0u, iy * p.iw + ix, ok); mk[9] = select(0.0, 1.0, ok); }
            { let iy = yy[10] - tw.ty; let ix = xx[10] - tw.tx; let ok = yy[10] >= tw.ty && iy < p.ih && xx[10] >= tw.tx && ix < p.iw; off[10] = base[10] + select(0u, iy * p.iw + ix, ok); mk[10] = select(0.0, 1.0, ok); }
            { let iy = yy[11] - tw.ty; let ix = xx[11] - tw.tx; let ok = yy[11] >= tw.ty && iy < p.ih && xx[11] >= tw.tx && ix < p.iw; off[11] = base[11] + select(0u, iy * p.iw + ix, ok); mk[11] = select(0.0, 1.0, ok); }
            { let iy = yy[12] - tw.ty; let ix = xx[12] - tw.tx; let ok = yy[12] >= tw.ty && iy < p.ih && xx[12] >= tw.tx && ix < p.iw; off[12] = base[12] + select(0u, iy * p.iw + ix, ok); mk[12] = select(0.0, 1.0, ok); }
            { let iy = yy[13] - tw.ty; let ix = xx[13] - tw.tx; let ok = yy[13] >= tw.ty && iy < p.ih && xx[13] >= tw.tx && ix < p.iw; off[13] = base[13] + select(0u, iy * p.iw + ix, ok); mk[13] = select(0.0, 1.0, ok); }
            { let iy = yy[14] - tw.ty; let ix = xx[14] - tw.tx; let ok = yy[14] >= tw.ty && iy < p.ih && xx[14] >= tw.tx && ix < p.iw; off[14] = base[14] + select(0u, iy * p.iw + ix, ok); mk[14] = select(0.0, 1.0, ok); }
            { let iy = yy[15] - tw.ty; let ix = xx[15] - tw.tx; let ok = yy[15] >= tw.ty && iy < p.ih && xx[15] >= tw.tx && ix < p.iw; off[15] = base[15] + select(0u, iy * p.iw + ix, ok); mk[15] = select(0.0, 1.0, ok); }
            mk0 = vec4<f32>(mk[0], mk[1], mk[2], mk[3]);
            mk1 = vec4<f32>(mk[4], mk[5], mk[6], mk[7]);
            mk2 = vec4<f32>(mk[8], mk[9], mk[10], mk[11]);
            mk3 = vec4<f32>(mk[12], mk[13], mk[14], mk[15]);
            tw.wi = ((py + s * tw.ty) * kw + px + s * tw.tx) * nr * opad4 + ob4;
            tw.xo = 0u;
        }
        xv0 = vec4<f32>(inp[off[0] + tw.xo], inp[off[1] + tw.xo], inp[off[2] + tw.xo], inp[off[3] + tw.xo]);
        if SCATTER { xv0 *= mk0; }
        xv1 = vec4<f32>(inp[off[4] + tw.xo], inp[off[5] + tw.xo], inp[off[6] + tw.xo], inp[off[7] + tw.xo]);
        if SCATTER { xv1 *= mk1; }
        if NPOS > 8u {
            xv2 = vec4<f32>(inp[off[8] + tw.xo], inp[off[9] + tw.xo], inp[off[10] + tw.xo], inp[off[11] + tw.xo]);
            if SCATTER { xv2 *= mk2; }
            xv3 = vec4<f32>(inp[off[12] + tw.xo], inp[off[13] + tw.xo], inp[off[14] + tw.xo], inp[off[15] + tw.xo]);
            if SCATTER { xv3 *= mk3; }
        }
        let w0 = wp[tw.wi + 0u];
        a0_0 += xv0.x * w0;
        a1_0 += xv0.y * w0;
        a2_0 += xv0.z * w0;
        a3_0 += xv0.w * w0;
        a4_0 += xv1.x * w0;
        a5_0 += xv1.y * w0;
        a6_0 += xv1.z * w0;
        a7_0 += xv1.w * w0;
        if NPOS > 8u {
            a8_0 += xv2.x * w0;
            a9_0 += xv2.y * w0;
            a10_0 += xv2.z * w0;
            a11_0 += xv2.w * w0;
            a12_0 += xv3.x * w0;
            a13_0 += xv3.y * w0;
            a14_0 += xv3.z * w0;
            a15_0 += xv3.w * w0;
        }
        if CB4 > 1u {
            let w1 = wp[tw.wi + 1u];
            a0_1 += xv0.x * w1;
            a1_1 += xv0.y * w1;
            a2_1 += xv0.z * w1;
            a3_1 += xv0.w * w1;
            a4_1 += xv1.x * w1;
            a5_1 += xv1.y * w1;
            a6_1 += xv1.z * w1;
            a7_1 += xv1.w * w1;
            if NPOS > 8u {
                a8_1 += xv2.x * w1;
                a9_1 += xv2.y * w1;
                a10_1 += xv2.z * w1;
                a11_1 += xv2.w * w1;
                a12_1 += xv3.x * w1;
                a13_1 += xv3.y * w1;
                a14_1 += xv3.z * w1;
                a15_1 += xv3.w * w1;
            }
        }
        if CB4 > 2u {
            let w2 = wp[tw.wi + 2u];
            a0_2 += xv0.x * w2;
            a1_2 += xv0.y * w2;
            a2_2 += xv0.z * w2;
            a3_2 += xv0.w * w2;
            a4_2 += xv1.x * w2;
            a5_2 += xv1.y * w2;
            a6_2 += xv1.z * w2;
            a7_2 += xv1.w * w2;
            if NPOS > 8u {
                a8_2 += xv2.x * w2;
                a9_2 += xv2.y * w2;
                a10_2 += xv2.z * w2;
                a11_2 += xv2.w * w2;
                a12_2 += xv3.x * w2;
                a13_2 += xv3.y * w2;
                a14_2 += xv3.z * w2;
                a15_2 += xv3.w * w2;
            }
        }
        if CB4 > 3u {
            let w3 = wp[tw.wi + 3u];
            a0_3 += xv0.x * w3;
            a1_3 += xv0.y * w3;
            a2_3 += xv0.z * w3;
            a3_3 += xv0.w * w3;
            a4_3 += xv1.x * w3;
            a5_3 += xv1.y * w3;
            a6_3 += xv1.z * w3;
            a7_3 += xv1.w * w3;
            if NPOS > 8u {
                a8_3 += xv2.x * w3;
                a9_3 += xv2.y * w3;
                a10_3 += xv2.z * w3;
                a11_3 += xv2.w * w3;
                a12_3 += xv3.x * w3;
                a13_3 += xv3.y * w3;
                a14_3 += xv3.z * w3;
                a15_3 += xv3.w * w3;
            }
        }
        tap_walk_next(&tw, tg);
    }

    // Store: bias, activation, (accumulate).
    var ob: array<u32, 16>;
    ob[0] = img[0] * p.o * ohw + select(yy[0] * p.ow + xx[0], (py + p.s * yy[0]) * p.ow + px + p.s * xx[0], SCATTER);
    ob[1] = img[1] * p.o * ohw + select(yy[1] * p.ow + xx[1], (py + p.s * yy[1]) * p.ow + px + p.s * xx[1], SCATTER);
    ob[2] = img[2] * p.o * ohw + select(yy[2] * p.ow + xx[2], (py + p.s * yy[2]) * p.ow + px + p.s * xx[2], SCATTER);
    ob[3] = img[3] * p.o * ohw + select(yy[3] * p.ow + xx[3], (py + p.s * yy[3]) * p.ow + px + p.s * xx[3], SCATTER);
    ob[4] = img[4] * p.o * ohw + select(yy[4] * p.ow + xx[4], (py + p.s * yy[4]) * p.ow + px + p.s * xx[4], SCATTER);
    ob[5] = img[5] * p.o * ohw + select(yy[5] * p.ow + xx[5], (py + p.s * yy[5]) * p.ow + px + p.s * xx[5], SCATTER);
    ob[6] = img[6] * p.o * ohw + select(yy[6] * p.ow + xx[6], (py + p.s * yy[6]) * p.ow + px + p.s * xx[6], SCATTER);
    ob[7] = img[7] * p.o * ohw + select(yy[7] * p.ow + xx[7], (py + p.s * yy[7]) * p.ow + px + p.s * xx[7], SCATTER);
    ob[8] = img[8] * p.o * ohw + select(yy[8] * p.ow + xx[8], (py + p.s * yy[8]) * p.ow + px + p.s * xx[8], SCATTER);
    ob[9] = img[9] * p.o * ohw + select(yy[9] * p.ow + xx[9], (py + p.s * yy[9]) * p.ow + px + p.s * xx[9], SCATTER);
    ob[10] = img[10] * p.o * ohw + select(yy[10] * p.ow + xx[10], (py + p.s * yy[10]) * p.ow + px + p.s * xx[10], SCATTER);
    ob[11] = img[11] * p.o * ohw + select(yy[11] * p.ow + xx[11], (py + p.s * yy[11]) * p.ow + px + p.s * xx[11], SCATTER);
    ob[12] = img[12] * p.o * ohw + select(yy[12] * p.ow + xx[12], (py + p.s * yy[12]) * p.ow + px + p.s * xx[12], SCATTER);
    ob[13] = img[13] * p.o * ohw + select(yy[13] * p.ow + xx[13], (py + p.s * yy[13]) * p.ow + px + p.s * xx[13], SCATTER);
    ob[14] = img[14] * p.o * ohw + select(yy[14] * p.ow + xx[14], (py + p.s * yy[14]) * p.ow + px + p.s * xx[14], SCATTER);
    ob[15] = img[15] * p.o * ohw + select(yy[15] * p.ow + xx[15], (py + p.s * yy[15]) * p.ow + px + p.s * xx[15], SCATTER);
    let o0 = ob4 * 4u;
    let valid = min(mt - m0, NPOS);
    {
        let o = o0 + 0u;
        let bv = load_bias4(o);
        { store4(ob[0], o, a0_0 + bv); }
        if valid > 1u { store4(ob[1], o, a1_0 + bv); }
        if valid > 2u { store4(ob[2], o, a2_0 + bv); }
        if valid > 3u { store4(ob[3], o, a3_0 + bv); }
        if valid > 4u { store4(ob[4], o, a4_0 + bv); }
        if valid > 5u { store4(ob[5], o, a5_0 + bv); }
        if valid > 6u { store4(ob[6], o, a6_0 + bv); }
        if valid > 7u { store4(ob[7], o, a7_0 + bv); }
        if valid > 8u { store4(ob[8], o, a8_0 + bv); }
        if valid > 9u { store4(ob[9], o, a9_0 + bv); }
        if valid > 10u { store4(ob[10], o, a10_0 + bv); }
        if valid > 11u { store4(ob[11], o, a11_0 + bv); }
        if valid > 12u { store4(ob[12], o, a12_0 + bv); }
        if valid > 13u { store4(ob[13], o, a13_0 + bv); }
        if valid > 14u { store4(ob[14], o, a14_0 + bv); }
        if valid > 15u { store4(ob[15], o, a15_0 + bv); }
    }
    if CB4 > 1u {
        let o = o0 + 4u;
        let bv = load_bias4(o);
        { store4(ob[0], o, a0_1 + bv); }
        if valid > 1u { store4(ob[1], o, a1_1 + bv); }
        if valid > 2u { store4(ob[2], o, a2_1 + bv); }
        if valid > 3u { store4(ob[3], o, a3_1 + bv); }
        if valid > 4u { store4(ob[4], o, a4_1 + bv); }
        if valid > 5u { store4(ob[5], o, a5_1 + bv); }
        if valid > 6u { store4(ob[6], o, a6_1 + bv); }
        if valid > 7u { store4(ob[7], o, a7_1 + bv); }
        if valid > 8u { store4(ob[8], o, a8_1 + bv); }
        if valid > 9u { store4(ob[9], o, a9_1 + bv); }
        if valid > 10u { store4(ob[10], o, a10_1 + bv); }
        if valid > 11u { store4(ob[11], o, a11_1 + bv); }
        if valid > 12u { store4(ob[12], o, a12_1 + bv); }
        if valid > 13u { store4(ob[13], o, a13_1 + bv); }
        if valid > 14u { store4(ob[14], o, a14_1 + bv); }
        if valid > 15u { store4(ob[15], o, a15_1 + bv); }
    }
    if CB4 > 2u {
        let o = o0 + 8u;
        let bv = load_bias4(o);
        { store4(ob[0], o, a0_2 + bv); }
        if valid > 1u { store4(ob[1], o, a1_2 + bv); }
        if valid > 2u { store4(ob[2], o, a2_2 + bv); }
        if valid > 3u { store4(ob[3], o, a3_2 + bv); }
        if valid > 4u { store4(ob[4], o, a4_2 + bv); }
        if valid > 5u { store4(ob[5], o, a5_2 + bv); }
        if valid > 6u { store4(ob[6], o, a6_2 + bv); }
        if valid > 7u { store4(ob[7], o, a7_2 + bv); }
        if valid > 8u { store4(ob[8], o, a8_2 + bv); }
        if valid > 9u { store4(ob[9], o, a9_2 + bv); }
        if valid > 10u { store4(ob[10], o, a10_2 + bv); }
        if valid > 11u { store4(ob[11], o, a11_2 + bv); }
        if valid > 12u { store4(ob[12], o, a12_2 + bv); }
        if valid > 13u { store4(ob[13], o, a13_2 + bv); }
        if valid > 14u { store4(ob[14], o, a14_2 + bv); }
        if valid > 15u { store4(ob[15], o, a15_2 + bv); }
    }
    if CB4 > 3u {
        let o = o0 + 12u;
        let bv = load_bias4(o);
        { store4(ob[0], o, a0_3 + bv); }
        if valid > 1u { store4(ob[1], o, a1_3 + bv); }
        if valid > 2u { store4(ob[2], o, a2_3 + bv); }
        if valid > 3u { store4(ob[3], o, a3_3 + bv); }
        if valid > 4u { store4(ob[4], o, a4_3 + bv); }
        if valid > 5u { store4(ob[5], o, a5_3 + bv); }
        if valid > 6u { store4(ob[6], o, a6_3 + bv); }
        if valid > 7u { store4(ob[7], o, a7_3 + bv); }
        if valid > 8u { store4(ob[8], o, a8_3 + bv); }
        if valid > 9u { store4(ob[9], o, a9_3 + bv); }
        if valid > 10u { store4(ob[10], o, a10_3 + bv); }
        if valid > 11u { store4(ob[11], o, a11_3 + bv); }
        if valid > 12u { store4(ob[12], o, a12_3 + bv); }
        if valid > 13u { store4(ob[13], o, a13_3 + bv); }
        if valid > 14u { store4(ob[14], o, a14_3 + bv); }
        if valid > 15u { store4(ob[15], o, a15_3 + bv); }
    }
}

// Where a weight gradient's loop over a split's (image, y, x) stands (`wgrad`, `wgrad_lanes`):
// zs indexes the small image, zl the large one (at the window of (y, x), stride s); x counts
// along a small-image row and q over a small image.
struct ZWalk {
    zs: u32,
    zl: u32,
    x: u32,
    q: u32,
}

// The walk's loop invariants (locals: lavapipe reloads a uniform at every use).
struct ZGeom {
    s: u32,
    sw: u32,          // small-image row
    shw: u32,         // small image
    row_jump: u32,    // zl from a row's end to the next row's start
    img_jump_s: u32,  // zs from an image's end to the next image (the other channels)
    img_jump_l: u32,
}

fn zwalk_geom(shw: u32, lhw: u32) -> ZGeom {
    return ZGeom(p.s, p.iw, shw, p.s * p.ow - p.s * p.iw, (p.a - 1u) * shw,
                 p.b * lhw - p.s * p.ow * p.ih);
}

fn zwalk_next(z: ptr<function, ZWalk>, g: ZGeom) {
    (*z).x += 1u;
    (*z).q += 1u;
    (*z).zs += 1u;
    (*z).zl += g.s;
    if (*z).x == g.sw {
        (*z).x = 0u;
        (*z).zl += g.row_jump;
    }
    if (*z).q == g.shw {
        (*z).q = 0u;
        (*z).zs += g.img_jump_s;
        (*z).zl += g.img_jump_l;
    }
}

@compute @workgroup_size(WG)
fn bias_grad(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
             @builtin(local_invocation_id) lid: vec3<u32>) {
    let i = flat_id(wid, nwg, lid);
    if i >= p.splits * p.o { return; }
    let split = i / p.o;
    let ch = i - split * p.o;
    let n0 = split * p.imgs;
    let n1 = min(n0 + p.imgs, p.n);
    var s = 0.0;
    for (var n = n0; n < n1; n++) {
        let base = (n * p.o + ch) * p.len;
        for (var k = 0u; k < p.len; k++) {
            s += inp[base + k];
        }
    }
    out[i] = s;
}

@compute @workgroup_size(WG)
fn reduce_splits(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                 @builtin(local_invocation_id) lid: vec3<u32>) {
    let i = flat_id(wid, nwg, lid);
    if i >= p.len { return; }
    var s = 0.0;
    for (var k = 0u; k < p.splits; k++) {
        s += inp[k * p.len + i];
    }
    if p.acc != 0u { out[i] += s; } else { out[i] = s; }
}
