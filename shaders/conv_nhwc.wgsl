// Written by shaders/gen/conv_nhwc.py (from lanes_matmul_body.py): edit those, not this file.
//
// conv_nhwc.wgsl: convolutions over channels-innermost images (NHWC) as implicit GEMMs, for CPU
// drivers with 8-lane subgroups and 64-bit integers (the `conv_nhwc` family: lanes64.wgsl,
// then this file). The body is matmul_lanes64.wgsl's, generated from the same script: 8 k per
// step, a lane's A piece one position's 8 channels at one tap (a single vec4<u64>).
//
// Why: conv_main_lanes reads NCHW, where a lane's positions are not adjacent in memory, so it
// loads pixels one by one. With the channels innermost every load is the u64 matmul's: 12 per
// 2,048 FMAs per lane. About 1.4x conv_main_lanes on the encoder's and decoder's middle
// layers (README).
//
// The three sums of conv.wgsl (no padding, stride s; C and O multiples of 8):
//   conv_nhwc, conv_nhwc_to_nchw  gather: y[n, oy, ox, o] = act(sum x[n, oy*s+ky, ox*s+kx, c]
//                 w(o, c, ky, kx) + b[o]) (+ y with acc). Rows = output positions, columns =
//                 output channels, k = (tap, c). Weights packed [kh][kw][C][O] by conv.wgsl's
//                 `pack_w`. `conv_nhwc_to_nchw` stores [N, O, OH, OW], one value per store.
//                 Grid: x = ceil(O/64), y = ceil(N*OH*OW/32).
//   conv_nhwc_scatter  scatter: y[n, Y, X, o] = act(sum over the taps with Y = iy*s+ky,
//                 X = ix*s+kx of x[n, iy, ix, c] w(o, c, ky, kx) + b[o]) (+ y with acc).
//                 Rows = the phase grid (n, qy, qx), qy < ceil(OH/s); row (qy, qx) reads
//                 x[qy - ty, qx - tx] (zero outside) at phase tap (ty, tx); a workgroup's
//                 columns are one row phase py's s column phases px x O, so those share each
//                 A load, a narrow O still fills the 64 columns, and py runs only its own
//                 ceil((kh - py)/s) tap rows; column (py, px, o) stores output pixel
//                 (qy*s + py, qx*s + px) where that lies inside. Weights packed
//                 [ceil(kh/s)][ceil(kw/s)][C][s*s][O] by conv_main_lanes.wgsl's `pack_w_fold`
//                 (zero past the kernel). Grid: x = s * ceil(s*O/64), y = ceil(N*qh*qw/32).
//   wgrad_nhwc    weight gradient: out[split][b][a][ky][kx] (+= with acc) = sum over the
//                 split's images and small-image positions (y, x) of
//                 large[n, y*s+ky, x*s+kx, a] * small[n, y, x, b]. Rows = (tap, a), columns
//                 = b, k = positions (TRANS_A: lane t loads position t's 8 channels of a).
//                 Conv2d: large = x, small = dy; ConvTranspose2d: large = dy, small = x; both
//                 store PyTorch's weight layout. Grid: x = splits x ceil(b/64), y =
//                 ceil(kh*kw*a/32); partial sums reduced by conv.wgsl's `reduce_splits`.
//
// Params: n, ih, iw, c (input channels; wgrad: the small image's ih x iw, the large one's c),
// oh, ow, o (output channels; wgrad: the large image's oh x ow, the small one's channels b),
// kh, kw, s, act (0 none, 1 ReLU, 2 ELU, after the bias), has_bias, acc (add into the
// output), imgs (wgrad: images per split).
// Bindings: 0 params, 1 x8 (the input, wgrad's large image, as vec4<u64>; bound at a multiple
// of 32 bytes), 2 w8 (packed weights; wgrad's small image), 3 bias [O] (bound even without
// one), 4 y (f32 output: NCHW, wgrad's), 5 y8 (NHWC output, vec4<u64>).
// Entry points use: conv_nhwc and conv_nhwc_scatter 1, 2, 3, 5; conv_nhwc_to_nchw 1, 2, 3, 4;
// wgrad_nhwc 1, 2, 4.
// Workgroup (8,1,1) = one subgroup of exactly 8 lanes; a workgroup computes 32 rows x 64
// columns, lane l columns 8l..8l+7 of them (y folds into z). Rows past the end are clamped on
// load and not stored.

struct Params {
    n: u32,
    ih: u32,
    iw: u32,
    c: u32,
    oh: u32,
    ow: u32,
    o: u32,
    kh: u32,
    kw: u32,
    s: u32,
    act: u32,
    has_bias: u32,
    acc: u32,
    imgs: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x8: array<vec4<u64>>;
@group(0) @binding(2) var<storage, read> w8: array<vec4<u64>>;
@group(0) @binding(3) var<storage, read> bias: array<f32>;
@group(0) @binding(4) var<storage, read_write> y: array<f32>;
@group(0) @binding(5) var<storage, read_write> y8: array<vec4<u64>>;

// Positions per workgroup (the body's blocks of 8 rows test it).
const ROWS: u32 = 32u;

// Position `pos`'s (clamped to the last) first input pixel, in 8-float units of x8.
fn pixel8(pos: u32) -> u32 {
    let ohw = p.oh * p.ow;
    let q0 = min(pos, p.n * ohw - 1u);
    let img = q0 / ohw;
    let q = q0 - img * ohw;
    let oy = q / p.ow;
    let ox = q - oy * p.ow;
    return ((img * p.ih + oy * p.s) * p.iw + ox * p.s) * (p.c / 8u);
}

// This lane's 8 channels' biases from c0 (zero without a bias; clamped past O).
fn bias8(c0: u32) -> array<f32, 8> {
    var b: array<f32, 8>;
    if p.has_bias != 0u {
        for (var j = 0u; j < 8u; j++) {
            b[j] = bias[min(c0 + j, p.o - 1u)];
        }
    }
    return b;
}

fn act8(v: vec4<f32>, b: vec4<f32>) -> vec4<f32> {
    let x = v + b;
    return vec4<f32>(activate(x.x, p.act), activate(x.y, p.act), activate(x.z, p.act),
                     activate(x.w, p.act));
}

// Position `pos`, channels c0..c0+7 (O a multiple of 8: all inside or all outside), NHWC.
fn store_nhwc(pos: u32, c0: u32, lo: vec4<f32>, hi: vec4<f32>, b: array<f32, 8>) {
    if pos >= p.n * p.oh * p.ow || c0 >= p.o { return; }
    let x0 = act8(lo, vec4<f32>(b[0], b[1], b[2], b[3]));
    let x1 = act8(hi, vec4<f32>(b[4], b[5], b[6], b[7]));
    put8((pos * p.o + c0) / 8u, x0, x1);
}

// y8[i] = (or += with acc) the eight floats.
fn put8(i: u32, x0: vec4<f32>, x1: vec4<f32>) {
    if p.acc != 0u {
        let old = y8[i];
        y8[i] = pack8(lo4(old) + x0, hi4(old) + x1);
    } else {
        y8[i] = pack8(x0, x1);
    }
}

// The scatter's row `r` of phase (py, px) (clamped to the last): image, qy, qx.
fn phase_row(r: u32, nq: u32, qh: u32, qw: u32) -> vec3<u32> {
    let q0 = min(r, nq - 1u);
    let img = q0 / (qh * qw);
    let q = q0 - img * qh * qw;
    let qy = q / qw;
    return vec3<u32>(img, qy, q - qy * qw);
}

// Where row `q` (image, qy, qx) reads at phase tap (ty, tx): its input pixel iy = qy - ty,
// ix = qx - tx in 8-float units, or 0xffffffff where that lies outside the image.
fn scatter_src(q: vec3<u32>, ty: u32, tx: u32) -> u32 {
    let iy = i32(q.y) - i32(ty);
    let ix = i32(q.z) - i32(tx);
    if iy < 0 || ix < 0 || iy >= i32(p.ih) || ix >= i32(p.iw) {
        return 0xffffffffu;
    }
    return ((q.x * p.ih + u32(iy)) * p.iw + u32(ix)) * (p.c / 8u);
}

// A piece of the scatter: input pixel `src` (scatter_src) at channel block cc, zero outside.
fn scatter_a8(src: u32, cc: u32) -> vec4<u64> {
    let out = src == 0xffffffffu;
    return select(x8[select(src, 0u, out) + cc], vec4<u64>(), out);
}

// The scatter's store: row `q` (image, qy, qx) at columns c0..c0+7 = phase (py, px) x
// channels, into output pixel (qy*s + py, qx*s + px) (NHWC; none past the image's edge).
fn store_phases(q: vec3<u32>, ok: bool, c0: u32, lo: vec4<f32>, hi: vec4<f32>,
                b: array<f32, 8>) {
    if !ok || c0 >= p.s * p.s * p.o { return; }
    let ph = c0 / p.o;
    let oc = c0 - ph * p.o;
    let py = ph / p.s;
    let oy = q.y * p.s + py;
    let ox = q.z * p.s + ph - py * p.s;
    if oy >= p.oh || ox >= p.ow { return; }
    let pos = (q.x * p.oh + oy) * p.ow + ox;
    let x0 = act8(lo, vec4<f32>(b[0], b[1], b[2], b[3]));
    let x1 = act8(hi, vec4<f32>(b[4], b[5], b[6], b[7]));
    put8((pos * p.o + oc) / 8u, x0, x1);
}

// The weight gradient's large pixel for small position `pos` (image, y, x): its first pixel
// (y*s, x*s) in 8-float units of x8 (whose images are OH x OW with C channels).
fn wgrad_pixel8(pos: u32) -> u32 {
    let shw = p.ih * p.iw;
    let img = pos / shw;
    let q = pos - img * shw;
    let y = q / p.iw;
    let x = q - y * p.iw;
    return ((img * p.oh + y * p.s) * p.ow + x * p.s) * (p.c / 8u);
}

// Row m = (tap, a) of the weight gradient, its columns c0..c0+7 = b: into
// y[split * len + (b * C + a) * kh * kw + tap] (the weights' [b][a][kh][kw]; += with acc).
fn store_wgrad(m: u32, c0: u32, base: u32, lo: vec4<f32>, hi: vec4<f32>) {
    let kk = p.kh * p.kw;
    if m >= kk * p.c || c0 >= p.o { return; }
    let tap = m / p.c;
    let a = m - tap * p.c;
    let v = array<f32, 8>(lo.x, lo.y, lo.z, lo.w, hi.x, hi.y, hi.z, hi.w);
    for (var j = 0u; j < 8u; j++) {
        let i = base + ((c0 + j) * p.c + a) * kk + tap;
        if p.acc != 0u {
            y[i] += v[j];
        } else {
            y[i] = v[j];
        }
    }
}

// The same into an NCHW output: channel o of position (img, q) at (img*O + o)*OH*OW + q.
fn store_nchw(pos: u32, c0: u32, lo: vec4<f32>, hi: vec4<f32>, b: array<f32, 8>) {
    let ohw = p.oh * p.ow;
    if pos >= p.n * ohw || c0 >= p.o { return; }
    let img = pos / ohw;
    let base = (img * p.o + c0) * ohw + pos - img * ohw;
    let x0 = act8(lo, vec4<f32>(b[0], b[1], b[2], b[3]));
    let x1 = act8(hi, vec4<f32>(b[4], b[5], b[6], b[7]));
    y[base] = x0.x;
    y[base + ohw] = x0.y;
    y[base + 2u * ohw] = x0.z;
    y[base + 3u * ohw] = x0.w;
    y[base + 4u * ohw] = x1.x;
    y[base + 5u * ohw] = x1.y;
    y[base + 6u * ohw] = x1.z;
    y[base + 7u * ohw] = x1.w;
}

@compute @workgroup_size(8, 1, 1)
fn conv_nhwc(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
             @builtin(subgroup_invocation_id) lane: u32) {
    let r0 = fold_yz(wid, nwg) * ROWS;
    let c0 = wid.x * 64u + lane * 8u;
    let c8 = p.c / 8u;
    let o8 = p.o / 8u;
    let cq = min(c0 / 8u, o8 - 1u);
    // The first input pixel of each position this lane loads (r0 + lane + 8 * block).
    let px0 = pixel8(r0 + lane + 0u);
    let px1 = pixel8(r0 + lane + 8u);
    let px2 = pixel8(r0 + lane + 16u);
    let px3 = pixel8(r0 + lane + 24u);
    // acc_i_h: row r0 + i, columns c0 + 4h..c0 + 4h + 3.
    var acc0_0 = vec4<f32>(0.0);
    var acc0_1 = vec4<f32>(0.0);
    var acc1_0 = vec4<f32>(0.0);
    var acc1_1 = vec4<f32>(0.0);
    var acc2_0 = vec4<f32>(0.0);
    var acc2_1 = vec4<f32>(0.0);
    var acc3_0 = vec4<f32>(0.0);
    var acc3_1 = vec4<f32>(0.0);
    var acc4_0 = vec4<f32>(0.0);
    var acc4_1 = vec4<f32>(0.0);
    var acc5_0 = vec4<f32>(0.0);
    var acc5_1 = vec4<f32>(0.0);
    var acc6_0 = vec4<f32>(0.0);
    var acc6_1 = vec4<f32>(0.0);
    var acc7_0 = vec4<f32>(0.0);
    var acc7_1 = vec4<f32>(0.0);
    var acc8_0 = vec4<f32>(0.0);
    var acc8_1 = vec4<f32>(0.0);
    var acc9_0 = vec4<f32>(0.0);
    var acc9_1 = vec4<f32>(0.0);
    var acc10_0 = vec4<f32>(0.0);
    var acc10_1 = vec4<f32>(0.0);
    var acc11_0 = vec4<f32>(0.0);
    var acc11_1 = vec4<f32>(0.0);
    var acc12_0 = vec4<f32>(0.0);
    var acc12_1 = vec4<f32>(0.0);
    var acc13_0 = vec4<f32>(0.0);
    var acc13_1 = vec4<f32>(0.0);
    var acc14_0 = vec4<f32>(0.0);
    var acc14_1 = vec4<f32>(0.0);
    var acc15_0 = vec4<f32>(0.0);
    var acc15_1 = vec4<f32>(0.0);
    var acc16_0 = vec4<f32>(0.0);
    var acc16_1 = vec4<f32>(0.0);
    var acc17_0 = vec4<f32>(0.0);
    var acc17_1 = vec4<f32>(0.0);
    var acc18_0 = vec4<f32>(0.0);
    var acc18_1 = vec4<f32>(0.0);
    var acc19_0 = vec4<f32>(0.0);
    var acc19_1 = vec4<f32>(0.0);
    var acc20_0 = vec4<f32>(0.0);
    var acc20_1 = vec4<f32>(0.0);
    var acc21_0 = vec4<f32>(0.0);
    var acc21_1 = vec4<f32>(0.0);
    var acc22_0 = vec4<f32>(0.0);
    var acc22_1 = vec4<f32>(0.0);
    var acc23_0 = vec4<f32>(0.0);
    var acc23_1 = vec4<f32>(0.0);
    var acc24_0 = vec4<f32>(0.0);
    var acc24_1 = vec4<f32>(0.0);
    var acc25_0 = vec4<f32>(0.0);
    var acc25_1 = vec4<f32>(0.0);
    var acc26_0 = vec4<f32>(0.0);
    var acc26_1 = vec4<f32>(0.0);
    var acc27_0 = vec4<f32>(0.0);
    var acc27_1 = vec4<f32>(0.0);
    var acc28_0 = vec4<f32>(0.0);
    var acc28_1 = vec4<f32>(0.0);
    var acc29_0 = vec4<f32>(0.0);
    var acc29_1 = vec4<f32>(0.0);
    var acc30_0 = vec4<f32>(0.0);
    var acc30_1 = vec4<f32>(0.0);
    var acc31_0 = vec4<f32>(0.0);
    var acc31_1 = vec4<f32>(0.0);
    for (var ky = 0u; ky < p.kh; ky++) {
    for (var kx = 0u; kx < p.kw; kx++) {
    // Tap (ky, kx): its pixel's offset from a position's first, and its first k step.
    let toff = (ky * p.iw + kx) * c8;
    let tap = (ky * p.kw + kx) * c8;
    for (var cc = 0u; cc < c8; cc++) {
        let kq = tap + cc;
        let q0 = w8[(kq * 8u + 0u) * o8 + cq];
        let q1 = w8[(kq * 8u + 1u) * o8 + cq];
        let q2 = w8[(kq * 8u + 2u) * o8 + cq];
        let q3 = w8[(kq * 8u + 3u) * o8 + cq];
        let q4 = w8[(kq * 8u + 4u) * o8 + cq];
        let q5 = w8[(kq * 8u + 5u) * o8 + cq];
        let q6 = w8[(kq * 8u + 6u) * o8 + cq];
        let q7 = w8[(kq * 8u + 7u) * o8 + cq];
        // bKH: columns c0 + 4H.., k-steps 4K..4K + 3 (column t of the matrix is k-step t).
        var b00 = mat4x4<f32>(lo4(q0), lo4(q1), lo4(q2), lo4(q3));
        var b01 = mat4x4<f32>(hi4(q0), hi4(q1), hi4(q2), hi4(q3));
        var b10 = mat4x4<f32>(lo4(q4), lo4(q5), lo4(q6), lo4(q7));
        var b11 = mat4x4<f32>(hi4(q4), hi4(q5), hi4(q6), hi4(q7));
        {
        let aq = x8[px0 + toff + cc];
        let al = lo4(aq);
        let ah = hi4(aq);
        let v0 = subgroupBroadcast(al, 0u);
        let u0 = subgroupBroadcast(ah, 0u);
        let v1 = subgroupBroadcast(al, 1u);
        let u1 = subgroupBroadcast(ah, 1u);
        let v2 = subgroupBroadcast(al, 2u);
        let u2 = subgroupBroadcast(ah, 2u);
        let v3 = subgroupBroadcast(al, 3u);
        let u3 = subgroupBroadcast(ah, 3u);
        let v4 = subgroupBroadcast(al, 4u);
        let u4 = subgroupBroadcast(ah, 4u);
        let v5 = subgroupBroadcast(al, 5u);
        let u5 = subgroupBroadcast(ah, 5u);
        let v6 = subgroupBroadcast(al, 6u);
        let u6 = subgroupBroadcast(ah, 6u);
        let v7 = subgroupBroadcast(al, 7u);
        let u7 = subgroupBroadcast(ah, 7u);
        // xRK: rows 4R..4R + 3 at k-steps 4K.. (entry i is row 4R + i's four k).
        var x00 = mat4x4<f32>(v0, v1, v2, v3);
        var x10 = mat4x4<f32>(v4, v5, v6, v7);
        var x01 = mat4x4<f32>(u0, u1, u2, u3);
        var x11 = mat4x4<f32>(u4, u5, u6, u7);
        acc0_0 += b00 * x00[0] + b10 * x01[0];
        acc0_1 += b01 * x00[0] + b11 * x01[0];
        acc1_0 += b00 * x00[1] + b10 * x01[1];
        acc1_1 += b01 * x00[1] + b11 * x01[1];
        acc2_0 += b00 * x00[2] + b10 * x01[2];
        acc2_1 += b01 * x00[2] + b11 * x01[2];
        acc3_0 += b00 * x00[3] + b10 * x01[3];
        acc3_1 += b01 * x00[3] + b11 * x01[3];
        acc4_0 += b00 * x10[0] + b10 * x11[0];
        acc4_1 += b01 * x10[0] + b11 * x11[0];
        acc5_0 += b00 * x10[1] + b10 * x11[1];
        acc5_1 += b01 * x10[1] + b11 * x11[1];
        acc6_0 += b00 * x10[2] + b10 * x11[2];
        acc6_1 += b01 * x10[2] + b11 * x11[2];
        acc7_0 += b00 * x10[3] + b10 * x11[3];
        acc7_1 += b01 * x10[3] + b11 * x11[3];
        }
        if ROWS > 8u {
            let aq = x8[px1 + toff + cc];
            let al = lo4(aq);
            let ah = hi4(aq);
            let v0 = subgroupBroadcast(al, 0u);
            let u0 = subgroupBroadcast(ah, 0u);
            let v1 = subgroupBroadcast(al, 1u);
            let u1 = subgroupBroadcast(ah, 1u);
            let v2 = subgroupBroadcast(al, 2u);
            let u2 = subgroupBroadcast(ah, 2u);
            let v3 = subgroupBroadcast(al, 3u);
            let u3 = subgroupBroadcast(ah, 3u);
            let v4 = subgroupBroadcast(al, 4u);
            let u4 = subgroupBroadcast(ah, 4u);
            let v5 = subgroupBroadcast(al, 5u);
            let u5 = subgroupBroadcast(ah, 5u);
            let v6 = subgroupBroadcast(al, 6u);
            let u6 = subgroupBroadcast(ah, 6u);
            let v7 = subgroupBroadcast(al, 7u);
            let u7 = subgroupBroadcast(ah, 7u);
            // xRK: rows 4R..4R + 3 at k-steps 4K.. (entry i is row 4R + i's four k).
            var x00 = mat4x4<f32>(v0, v1, v2, v3);
            var x10 = mat4x4<f32>(v4, v5, v6, v7);
            var x01 = mat4x4<f32>(u0, u1, u2, u3);
            var x11 = mat4x4<f32>(u4, u5, u6, u7);
            acc8_0 += b00 * x00[0] + b10 * x01[0];
            acc8_1 += b01 * x00[0] + b11 * x01[0];
            acc9_0 += b00 * x00[1] + b10 * x01[1];
            acc9_1 += b01 * x00[1] + b11 * x01[1];
            acc10_0 += b00 * x00[2] + b10 * x01[2];
            acc10_1 += b01 * x00[2] + b11 * x01[2];
            acc11_0 += b00 * x00[3] + b10 * x01[3];
            acc11_1 += b01 * x00[3] + b11 * x01[3];
            acc12_0 += b00 * x10[0] + b10 * x11[0];
            acc12_1 += b01 * x10[0] + b11 * x11[0];
            acc13_0 += b00 * x10[1] + b10 * x11[1];
            acc13_1 += b01 * x10[1] + b11 * x11[1];
            acc14_0 += b00 * x10[2] + b10 * x11[2];
            acc14_1 += b01 * x10[2] + b11 * x11[2];
            acc15_0 += b00 * x10[3] + b10 * x11[3];
            acc15_1 += b01 * x10[3] + b11 * x11[3];
        }
        if ROWS > 16u {
            let aq = x8[px2 + toff + cc];
            let al = lo4(aq);
            let ah = hi4(aq);
            let v0 = subgroupBroadcast(al, 0u);
            let u0 = subgroupBroadcast(ah, 0u);
            let v1 = subgroupBroadcast(al, 1u);
            let u1 = subgroupBroadcast(ah, 1u);
            let v2 = subgroupBroadcast(al, 2u);
            let u2 = subgroupBroadcast(ah, 2u);
            let v3 = subgroupBroadcast(al, 3u);
            let u3 = subgroupBroadcast(ah, 3u);
            let v4 = subgroupBroadcast(al, 4u);
            let u4 = subgroupBroadcast(ah, 4u);
            let v5 = subgroupBroadcast(al, 5u);
            let u5 = subgroupBroadcast(ah, 5u);
            let v6 = subgroupBroadcast(al, 6u);
            let u6 = subgroupBroadcast(ah, 6u);
            let v7 = subgroupBroadcast(al, 7u);
            let u7 = subgroupBroadcast(ah, 7u);
            // xRK: rows 4R..4R + 3 at k-steps 4K.. (entry i is row 4R + i's four k).
            var x00 = mat4x4<f32>(v0, v1, v2, v3);
            var x10 = mat4x4<f32>(v4, v5, v6, v7);
            var x01 = mat4x4<f32>(u0, u1, u2, u3);
            var x11 = mat4x4<f32>(u4, u5, u6, u7);
            acc16_0 += b00 * x00[0] + b10 * x01[0];
            acc16_1 += b01 * x00[0] + b11 * x01[0];
            acc17_0 += b00 * x00[1] + b10 * x01[1];
            acc17_1 += b01 * x00[1] + b11 * x01[1];
            acc18_0 += b00 * x00[2] + b10 * x01[2];
            acc18_1 += b01 * x00[2] + b11 * x01[2];
            acc19_0 += b00 * x00[3] + b10 * x01[3];
            acc19_1 += b01 * x00[3] + b11 * x01[3];
            acc20_0 += b00 * x10[0] + b10 * x11[0];
            acc20_1 += b01 * x10[0] + b11 * x11[0];
            acc21_0 += b00 * x10[1] + b10 * x11[1];
            acc21_1 += b01 * x10[1] + b11 * x11[1];
            acc22_0 += b00 * x10[2] + b10 * x11[2];
            acc22_1 += b01 * x10[2] + b11 * x11[2];
            acc23_0 += b00 * x10[3] + b10 * x11[3];
            acc23_1 += b01 * x10[3] + b11 * x11[3];
        }
        if ROWS > 24u {
            let aq = x8[px3 + toff + cc];
            let al = lo4(aq);
            let ah = hi4(aq);
            let v0 = subgroupBroadcast(al, 0u);
            let u0 = subgroupBroadcast(ah, 0u);
            let v1 = subgroupBroadcast(al, 1u);
            let u1 = subgroupBroadcast(ah, 1u);
            let v2 = subgroupBroadcast(al, 2u);
            let u2 = subgroupBroadcast(ah, 2u);
            let v3 = subgroupBroadcast(al, 3u);
            let u3 = subgroupBroadcast(ah, 3u);
            let v4 = subgroupBroadcast(al, 4u);
            let u4 = subgroupBroadcast(ah, 4u);
            let v5 = subgroupBroadcast(al, 5u);
            let u5 = subgroupBroadcast(ah, 5u);
            let v6 = subgroupBroadcast(al, 6u);
            let u6 = subgroupBroadcast(ah, 6u);
            let v7 = subgroupBroadcast(al, 7u);
            let u7 = subgroupBroadcast(ah, 7u);
            // xRK: rows 4R..4R + 3 at k-steps 4K.. (entry i is row 4R + i's four k).
            var x00 = mat4x4<f32>(v0, v1, v2, v3);
            var x10 = mat4x4<f32>(v4, v5, v6, v7);
            var x01 = mat4x4<f32>(u0, u1, u2, u3);
            var x11 = mat4x4<f32>(u4, u5, u6, u7);
            acc24_0 += b00 * x00[0] + b10 * x01[0];
            acc24_1 += b01 * x00[0] + b11 * x01[0];
            acc25_0 += b00 * x00[1] + b10 * x01[1];
            acc25_1 += b01 * x00[1] + b11 * x01[1];
            acc26_0 += b00 * x00[2] + b10 * x01[2];
            acc26_1 += b01 * x00[2] + b11 * x01[2];
            acc27_0 += b00 * x00[3] + b10 * x01[3];
            acc27_1 += b01 * x00[3] + b11 * x01[3];
            acc28_0 += b00 * x10[0] + b10 * x11[0];
            acc28_1 += b01 * x10[0] + b11 * x11[0];
            acc29_0 += b00 * x10[1] + b10 * x11[1];
            acc29_1 += b01 * x10[1] + b11 * x11[1];
            acc30_0 += b00 * x10[2] + b10 * x11[2];
            acc30_1 += b01 * x10[2] + b11 * x11[2];
            acc31_0 += b00 * x10[3] + b10 * x11[3];
            acc31_1 += b01 * x10[3] + b11 * x11[3];
        }
    }
    }
    }
    let b = bias8(c0);
    store_nhwc(r0, c0, acc0_0, acc0_1, b);
    store_nhwc(r0 + 1u, c0, acc1_0, acc1_1, b);
    store_nhwc(r0 + 2u, c0, acc2_0, acc2_1, b);
    store_nhwc(r0 + 3u, c0, acc3_0, acc3_1, b);
    store_nhwc(r0 + 4u, c0, acc4_0, acc4_1, b);
    store_nhwc(r0 + 5u, c0, acc5_0, acc5_1, b);
    store_nhwc(r0 + 6u, c0, acc6_0, acc6_1, b);
    store_nhwc(r0 + 7u, c0, acc7_0, acc7_1, b);
    if ROWS > 8u {
        store_nhwc(r0 + 8u, c0, acc8_0, acc8_1, b);
        store_nhwc(r0 + 9u, c0, acc9_0, acc9_1, b);
        store_nhwc(r0 + 10u, c0, acc10_0, acc10_1, b);
        store_nhwc(r0 + 11u, c0, acc11_0, acc11_1, b);
        store_nhwc(r0 + 12u, c0, acc12_0, acc12_1, b);
        store_nhwc(r0 + 13u, c0, acc13_0, acc13_1, b);
        store_nhwc(r0 + 14u, c0, acc14_0, acc14_1, b);
        store_nhwc(r0 + 15u, c0, acc15_0, acc15_1, b);
    }
    if ROWS > 16u {
        store_nhwc(r0 + 16u, c0, acc16_0, acc16_1, b);
        store_nhwc(r0 + 17u, c0, acc17_0, acc17_1, b);
        store_nhwc(r0 + 18u, c0, acc18_0, acc18_1, b);
        store_nhwc(r0 + 19u, c0, acc19_0, acc19_1, b);
        store_nhwc(r0 + 20u, c0, acc20_0, acc20_1, b);
        store_nhwc(r0 + 21u, c0, acc21_0, acc21_1, b);
        store_nhwc(r0 + 22u, c0, acc22_0, acc22_1, b);
        store_nhwc(r0 + 23u, c0, acc23_0, acc23_1, b);
    }
    if ROWS > 24u {
        store_nhwc(r0 + 24u, c0, acc24_0, acc24_1, b);
        store_nhwc(r0 + 25u, c0, acc25_0, acc25_1, b);
        store_nhwc(r0 + 26u, c0, acc26_0, acc26_1, b);
        store_nhwc(r0 + 27u, c0, acc27_0, acc27_1, b);
        store_nhwc(r0 + 28u, c0, acc28_0, acc28_1, b);
        store_nhwc(r0 + 29u, c0, acc29_0, acc29_1, b);
        store_nhwc(r0 + 30u, c0, acc30_0, acc30_1, b);
        store_nhwc(r0 + 31u, c0, acc31_0, acc31_1, b);
    }
}

@compute @workgroup_size(8, 1, 1)
fn conv_nhwc_to_nchw(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                     @builtin(subgroup_invocation_id) lane: u32) {
    let r0 = fold_yz(wid, nwg) * ROWS;
    let c0 = wid.x * 64u + lane * 8u;
    let c8 = p.c / 8u;
    let o8 = p.o / 8u;
    let cq = min(c0 / 8u, o8 - 1u);
    // The first input pixel of each position this lane loads (r0 + lane + 8 * block).
    let px0 = pixel8(r0 + lane + 0u);
    let px1 = pixel8(r0 + lane + 8u);
    let px2 = pixel8(r0 + lane + 16u);
    let px3 = pixel8(r0 + lane + 24u);
    // acc_i_h: row r0 + i, columns c0 + 4h..c0 + 4h + 3.
    var acc0_0 = vec4<f32>(0.0);
    var acc0_1 = vec4<f32>(0.0);
    var acc1_0 = vec4<f32>(0.0);
    var acc1_1 = vec4<f32>(0.0);
    var acc2_0 = vec4<f32>(0.0);
    var acc2_1 = vec4<f32>(0.0);
    var acc3_0 = vec4<f32>(0.0);
    var acc3_1 = vec4<f32>(0.0);
    var acc4_0 = vec4<f32>(0.0);
    var acc4_1 = vec4<f32>(0.0);
    var acc5_0 = vec4<f32>(0.0);
    var acc5_1 = vec4<f32>(0.0);
    var acc6_0 = vec4<f32>(0.0);
    var acc6_1 = vec4<f32>(0.0);
    var acc7_0 = vec4<f32>(0.0);
    var acc7_1 = vec4<f32>(0.0);
    var acc8_0 = vec4<f32>(0.0);
    var acc8_1 = vec4<f32>(0.0);
    var acc9_0 = vec4<f32>(0.0);
    var acc9_1 = vec4<f32>(0.0);
    var acc10_0 = vec4<f32>(0.0);
    var acc10_1 = vec4<f32>(0.0);
    var acc11_0 = vec4<f32>(0.0);
    var acc11_1 = vec4<f32>(0.0);
    var acc12_0 = vec4<f32>(0.0);
    var acc12_1 = vec4<f32>(0.0);
    var acc13_0 = vec4<f32>(0.0);
    var acc13_1 = vec4<f32>(0.0);
    var acc14_0 = vec4<f32>(0.0);
    var acc14_1 = vec4<f32>(0.0);
    var acc15_0 = vec4<f32>(0.0);
    var acc15_1 = vec4<f32>(0.0);
    var acc16_0 = vec4<f32>(0.0);
    var acc16_1 = vec4<f32>(0.0);
    var acc17_0 = vec4<f32>(0.0);
    var acc17_1 = vec4<f32>(0.0);
    var acc18_0 = vec4<f32>(0.0);
    var acc18_1 = vec4<f32>(0.0);
    var acc19_0 = vec4<f32>(0.0);
    var acc19_1 = vec4<f32>(0.0);
    var acc20_0 = vec4<f32>(0.0);
    var acc20_1 = vec4<f32>(0.0);
    var acc21_0 = vec4<f32>(0.0);
    var acc21_1 = vec4<f32>(0.0);
    var acc22_0 = vec4<f32>(0.0);
    var acc22_1 = vec4<f32>(0.0);
    var acc23_0 = vec4<f32>(0.0);
    var acc23_1 = vec4<f32>(0.0);
    var acc24_0 = vec4<f32>(0.0);
    var acc24_1 = vec4<f32>(0.0);
    var acc25_0 = vec4<f32>(0.0);
    var acc25_1 = vec4<f32>(0.0);
    var acc26_0 = vec4<f32>(0.0);
    var acc26_1 = vec4<f32>(0.0);
    var acc27_0 = vec4<f32>(0.0);
    var acc27_1 = vec4<f32>(0.0);
    var acc28_0 = vec4<f32>(0.0);
    var acc28_1 = vec4<f32>(0.0);
    var acc29_0 = vec4<f32>(0.0);
    var acc29_1 = vec4<f32>(0.0);
    var acc30_0 = vec4<f32>(0.0);
    var acc30_1 = vec4<f32>(0.0);
    var acc31_0 = vec4<f32>(0.0);
    var acc31_1 = vec4<f32>(0.0);
    for (var ky = 0u; ky < p.kh; ky++) {
    for (var kx = 0u; kx < p.kw; kx++) {
    // Tap (ky, kx): its pixel's offset from a position's first, and its first k step.
    let toff = (ky * p.iw + kx) * c8;
    let tap = (ky * p.kw + kx) * c8;
    for (var cc = 0u; cc < c8; cc++) {
        let kq = tap + cc;
        let q0 = w8[(kq * 8u + 0u) * o8 + cq];
        let q1 = w8[(kq * 8u + 1u) * o8 + cq];
        let q2 = w8[(kq * 8u + 2u) * o8 + cq];
        let q3 = w8[(kq * 8u + 3u) * o8 + cq];
        let q4 = w8[(kq * 8u + 4u) * o8 + cq];
        let q5 = w8[(kq * 8u + 5u) * o8 + cq];
        let q6 = w8[(kq * 8u + 6u) * o8 + cq];
        let q7 = w8[(kq * 8u + 7u) * o8 + cq];
        // bKH: columns c0 + 4H.., k-steps 4K..4K + 3 (column t of the matrix is k-step t).
        var b00 = mat4x4<f32>(lo4(q0), lo4(q1), lo4(q2), lo4(q3));
        var b01 = mat4x4<f32>(hi4(q0), hi4(q1), hi4(q2), hi4(q3));
        var b10 = mat4x4<f32>(lo4(q4), lo4(q5), lo4(q6), lo4(q7));
        var b11 = mat4x4<f32>(hi4(q4), hi4(q5), hi4(q6), hi4(q7));
        {
        let aq = x8[px0 + toff + cc];
        let al = lo4(aq);
        let ah = hi4(aq);
        let v0 = subgroupBroadcast(al, 0u);
        let u0 = subgroupBroadcast(ah, 0u);
        let v1 = subgroupBroadcast(al, 1u);
        let u1 = subgroupBroadcast(ah, 1u);
        let v2 = subgroupBroadcast(al, 2u);
        let u2 = subgroupBroadcast(ah, 2u);
        let v3 = subgroupBroadcast(al, 3u);
        let u3 = subgroupBroadcast(ah, 3u);
        let v4 = subgroupBroadcast(al, 4u);
        let u4 = subgroupBroadcast(ah, 4u);
        let v5 = subgroupBroadcast(al, 5u);
        let u5 = subgroupBroadcast(ah, 5u);
        let v6 = subgroupBroadcast(al, 6u);
        let u6 = subgroupBroadcast(ah, 6u);
        let v7 = subgroupBroadcast(al, 7u);
        let u7 = subgroupBroadcast(ah, 7u);
        // xRK: rows 4R..4R + 3 at k-steps 4K.. (entry i is row 4R + i's four k).
        var x00 = mat4x4<f32>(v0, v1, v2, v3);
        var x10 = mat4x4<f32>(v4, v5, v6, v7);
        var x01 = mat4x4<f32>(u0, u1, u2, u3);
        var x11 = mat4x4<f32>(u4, u5, u6, u7);
        acc0_0 += b00 * x00[0] + b10 * x01[0];
        acc0_1 += b01 * x00[0] + b11 * x01[0];
        acc1_0 += b00 * x00[1] + b10 * x01[1];
        acc1_1 += b01 * x00[1] + b11 * x01[1];
        acc2_0 += b00 * x00[2] + b10 * x01[2];
        acc2_1 += b01 * x00[2] + b11 * x01[2];
        acc3_0 += b00 * x00[3] + b10 * x01[3];
        acc3_1 += b01 * x00[3] + b11 * x01[3];
        acc4_0 += b00 * x10[0] + b10 * x11[0];
        acc4_1 += b01 * x10[0] + b11 * x11[0];
        acc5_0 += b00 * x10[1] + b10 * x11[1];
        acc5_1 += b01 * x10[1] + b11 * x11[1];
        acc6_0 += b00 * x10[2] + b10 * x11[2];
        acc6_1 += b01 * x10[2] + b11 * x11[2];
        acc7_0 += b00 * x10[3] + b10 * x11[3];
        acc7_1 += b01 * x10[3] + b11 * x11[3];
        }
        if ROWS > 8u {
            let aq = x8[px1 + toff + cc];
            let al = lo4(aq);
            let ah = hi4(aq);
            let v0 = subgroupBroadcast(al, 0u);
            let u0 = subgroupBroadcast(ah, 0u);
            let v1 = subgroupBroadcast(al, 1u);
            let u1 = subgroupBroadcast(ah, 1u);
            let v2 = subgroupBroadcast(al, 2u);
            let u2 = subgroupBroadcast(ah, 2u);
            let v3 = subgroupBroadcast(al, 3u);
            let u3 = subgroupBroadcast(ah, 3u);
            let v4 = subgroupBroadcast(al, 4u);
            let u4 = subgroupBroadcast(ah, 4u);
            let v5 = subgroupBroadcast(al, 5u);
            let u5 = subgroupBroadcast(ah, 5u);
            let v6 = subgroupBroadcast(al, 6u);
            let u6 = subgroupBroadcast(ah, 6u);
            let v7 = subgroupBroadcast(al, 7u);
            let u7 = subgroupBroadcast(ah, 7u);
            // xRK: rows 4R..4R + 3 at k-steps 4K.. (entry i is row 4R + i's four k).
            var x00 = mat4x4<f32>(v0, v1, v2, v3);
            var x10 = mat4x4<f32>(v4, v5, v6, v7);
            var x01 = mat4x4<f32>(u0, u1, u2, u3);
            var x11 = mat4x4<f32>(u4, u5, u6, u7);
            acc8_0 += b00 * x00[0] + b10 * x01[0];
            acc8_1 += b01 * x00[0] + b11 * x01[0];
            acc9_0 += b00 * x00[1] + b10 * x01[1];
            acc9_1 += b01 * x00[1] + b11 * x01[1];
            acc10_0 += b00 * x00[2] + b10 * x01[2];
            acc10_1 += b01 * x00[2] + b11 * x01[2];
            acc11_0 += b00 * x00[3] + b10 * x01[3];
            acc11_1 += b01 * x00[3] + b11 * x01[3];
            acc12_0 += b00 * x10[0] + b10 * x11[0];
            acc12_1 += b01 * x10[0] + b11 * x11[0];
            acc13_0 += b00 * x10[1] + b10 * x11[1];
            acc13_1 += b01 * x10[1] + b11 * x11[1];
            acc14_0 += b00 * x10[2] + b10 * x11[2];
            acc14_1 += b01 * x10[2] + b11 * x11[2];
            acc15_0 += b00 * x10[3] + b10 * x11[3];
            acc15_1 += b01 * x10[3] + b11 * x11[3];
        }
        if ROWS > 16u {
            let aq = x8[px2 + toff + cc];
            let al = lo4(aq);
            let ah = hi4(aq);
            let v0 = subgroupBroadcast(al, 0u);
            let u0 = subgroupBroadcast(ah, 0u);
            let v1 = subgroupBroadcast(al, 1u);
            let u1 = subgroupBroadcast(ah, 1u);
            let v2 = subgroupBroadcast(al, 2u);
            let u2 = subgroupBroadcast(ah, 2u);
            let v3 = subgroupBroadcast(al, 3u);
            let u3 = subgroupBroadcast(ah, 3u);
            let v4 = subgroupBroadcast(al, 4u);
            let u4 = subgroupBroadcast(ah, 4u);
            let v5 = subgroupBroadcast(al, 5u);
            let u5 = subgroupBroadcast(ah, 5u);
            let v6 = subgroupBroadcast(al, 6u);
            let u6 = subgroupBroadcast(ah, 6u);
            let v7 = subgroupBroadcast(al, 7u);
            let u7 = subgroupBroadcast(ah, 7u);
            // xRK: rows 4R..4R + 3 at k-steps 4K.. (entry i is row 4R + i's four k).
            var x00 = mat4x4<f32>(v0, v1, v2, v3);
            var x10 = mat4x4<f32>(v4, v5, v6, v7);
            var x01 = mat4x4<f32>(u0, u1, u2, u3);
            var x11 = mat4x4<f32>(u4, u5, u6, u7);
            acc16_0 += b00 * x00[0] + b10 * x01[0];
            acc16_1 += b01 * x00[0] + b11 * x01[0];
            acc17_0 += b00 * x00[1] + b10 * x01[1];
            acc17_1 += b01 * x00[1] + b11 * x01[1];
            acc18_0 += b00 * x00[2] + b10 * x01[2];
            acc18_1 += b01 * x00[2] + b11 * x01[2];
            acc19_0 += b00 * x00[3] + b10 * x01[3];
            acc19_1 += b01 * x00[3] + b11 * x01[3];
            acc20_0 += b00 * x10[0] + b10 * x11[0];
            acc20_1 += b01 * x10[0] + b11 * x11[0];
            acc21_0 += b00 * x10[1] + b10 * x11[1];
            acc21_1 += b01 * x10[1] + b11 * x11[1];
            acc22_0 += b00 * x10[2] + b10 * x11[2];
            acc22_1 += b01 * x10[2] + b11 * x11[2];
            acc23_0 += b00 * x10[3] + b10 * x11[3];
            acc23_1 += b01 * x10[3] + b11 * x11[3];
        }
        if ROWS > 24u {
            let aq = x8[px3 + toff + cc];
            let al = lo4(aq);
            let ah = hi4(aq);
            let v0 = subgroupBroadcast(al, 0u);
            let u0 = subgroupBroadcast(ah, 0u);
            let v1 = subgroupBroadcast(al, 1u);
            let u1 = subgroupBroadcast(ah, 1u);
            let v2 = subgroupBroadcast(al, 2u);
            let u2 = subgroupBroadcast(ah, 2u);
            let v3 = subgroupBroadcast(al, 3u);
            let u3 = subgroupBroadcast(ah, 3u);
            let v4 = subgroupBroadcast(al, 4u);
            let u4 = subgroupBroadcast(ah, 4u);
            let v5 = subgroupBroadcast(al, 5u);
            let u5 = subgroupBroadcast(ah, 5u);
            let v6 = subgroupBroadcast(al, 6u);
            let u6 = subgroupBroadcast(ah, 6u);
            let v7 = subgroupBroadcast(al, 7u);
            let u7 = subgroupBroadcast(ah, 7u);
            // xRK: rows 4R..4R + 3 at k-steps 4K.. (entry i is row 4R + i's four k).
            var x00 = mat4x4<f32>(v0, v1, v2, v3);
            var x10 = mat4x4<f32>(v4, v5, v6, v7);
            var x01 = mat4x4<f32>(u0, u1, u2, u3);
            var x11 = mat4x4<f32>(u4, u5, u6, u7);
            acc24_0 += b00 * x00[0] + b10 * x01[0];
            acc24_1 += b01 * x00[0] + b11 * x01[0];
            acc25_0 += b00 * x00[1] + b10 * x01[1];
            acc25_1 += b01 * x00[1] + b11 * x01[1];
            acc26_0 += b00 * x00[2] + b10 * x01[2];
            acc26_1 += b01 * x00[2] + b11 * x01[2];
            acc27_0 += b00 * x00[3] + b10 * x01[3];
            acc27_1 += b01 * x00[3] + b11 * x01[3];
            acc28_0 += b00 * x10[0] + b10 * x11[0];
            acc28_1 += b01 * x10[0] + b11 * x11[0];
            acc29_0 += b00 * x10[1] + b10 * x11[1];
            acc29_1 += b01 * x10[1] + b11 * x11[1];
            acc30_0 += b00 * x10[2] + b10 * x11[2];
            acc30_1 += b01 * x10[2] + b11 * x11[2];
            acc31_0 += b00 * x10[3] + b10 * x11[3];
            acc31_1 += b01 * x10[3] + b11 * x11[3];
        }
    }
    }
    }
    let b = bias8(c0);
    store_nchw(r0, c0, acc0_0, acc0_1, b);
    store_nchw(r0 + 1u, c0, acc1_0, acc1_1, b);
    store_nchw(r0 + 2u, c0, acc2_0, acc2_1, b);
    store_nchw(r0 + 3u, c0, acc3_0, acc3_1, b);
    store_nchw(r0 + 4u, c0, acc4_0, acc4_1, b);
    store_nchw(r0 + 5u, c0, acc5_0, acc5_1, b);
    store_nchw(r0 + 6u, c0, acc6_0, acc6_1, b);
    store_nchw(r0 + 7u, c0, acc7_0, acc7_1, b);
    if ROWS > 8u {
        store_nchw(r0 + 8u, c0, acc8_0, acc8_1, b);
        store_nchw(r0 + 9u, c0, acc9_0, acc9_1, b);
        store_nchw(r0 + 10u, c0, acc10_0, acc10_1, b);
        store_nchw(r0 + 11u, c0, acc11_0, acc11_1, b);
        store_nchw(r0 + 12u, c0, acc12_0, acc12_1, b);
        store_nchw(r0 + 13u, c0, acc13_0, acc13_1, b);
        store_nchw(r0 + 14u, c0, acc14_0, acc14_1, b);
        store_nchw(r0 + 15u, c0, acc15_0, acc15_1, b);
    }
    if ROWS > 16u {
        store_nchw(r0 + 16u, c0, acc16_0, acc16_1, b);
        store_nchw(r0 + 17u, c0, acc17_0, acc17_1, b);
        store_nchw(r0 + 18u, c0, acc18_0, acc18_1, b);
        store_nchw(r0 + 19u, c0, acc19_0, acc19_1, b);
        store_nchw(r0 + 20u, c0, acc20_0, acc20_1, b);
        store_nchw(r0 + 21u, c0, acc21_0, acc21_1, b);
        store_nchw(r0 + 22u, c0, acc22_0, acc22_1, b);
        store_nchw(r0 + 23u, c0, acc23_0, acc23_1, b);
    }
    if ROWS > 24u {
        store_nchw(r0 + 24u, c0, acc24_0, acc24_1, b);
        store_nchw(r0 + 25u, c0, acc25_0, acc25_1, b);
        store_nchw(r0 + 26u, c0, acc26_0, acc26_1, b);
        store_nchw(r0 + 27u, c0, acc27_0, acc27_1, b);
        store_nchw(r0 + 28u, c0, acc28_0, acc28_1, b);
        store_nchw(r0 + 29u, c0, acc29_0, acc29_1, b);
        store_nchw(r0 + 30u, c0, acc30_0, acc30_1, b);
        store_nchw(r0 + 31u, c0, acc31_0, acc31_1, b);
    }
}

@compute @workgroup_size(8, 1, 1)
fn conv_nhwc_scatter(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                     @builtin(subgroup_invocation_id) lane: u32) {
    let nf = p.s * p.s * p.o;
    let qh = (p.oh + p.s - 1u) / p.s;
    let qw = (p.ow + p.s - 1u) / p.s;
    let nq = p.n * qh * qw;
    let r0 = fold_yz(wid, nwg) * ROWS;
    // Grid x: row phases x blocks of 64 of the row phase's s * O columns.
    let rs = p.s * p.o;
    let cbx = (rs + 63u) / 64u;
    let py = wid.x / cbx;
    let cl = (wid.x - py * cbx) * 64u + lane * 8u;
    let c0 = py * rs + cl;
    let c8 = p.c / 8u;
    let f8 = nf / 8u;
    let cq = min(c0 / 8u, f8 - 1u);
    // Row phase py's taps ky = py + s * ty (none past the kernel).
    let th = select((p.kh - py + p.s - 1u) / p.s, 0u, py >= p.kh);
    let tw = (p.kw + p.s - 1u) / p.s;
    let q0 = phase_row(r0 + lane + 0u, nq, qh, qw);
    let q1 = phase_row(r0 + lane + 8u, nq, qh, qw);
    let q2 = phase_row(r0 + lane + 16u, nq, qh, qw);
    let q3 = phase_row(r0 + lane + 24u, nq, qh, qw);
    // acc_i_h: row r0 + i, columns c0 + 4h..c0 + 4h + 3.
    var acc0_0 = vec4<f32>(0.0);
    var acc0_1 = vec4<f32>(0.0);
    var acc1_0 = vec4<f32>(0.0);
    var acc1_1 = vec4<f32>(0.0);
    var acc2_0 = vec4<f32>(0.0);
    var acc2_1 = vec4<f32>(0.0);
    var acc3_0 = vec4<f32>(0.0);
    var acc3_1 = vec4<f32>(0.0);
    var acc4_0 = vec4<f32>(0.0);
    var acc4_1 = vec4<f32>(0.0);
    var acc5_0 = vec4<f32>(0.0);
    var acc5_1 = vec4<f32>(0.0);
    var acc6_0 = vec4<f32>(0.0);
    var acc6_1 = vec4<f32>(0.0);
    var acc7_0 = vec4<f32>(0.0);
    var acc7_1 = vec4<f32>(0.0);
    var acc8_0 = vec4<f32>(0.0);
    var acc8_1 = vec4<f32>(0.0);
    var acc9_0 = vec4<f32>(0.0);
    var acc9_1 = vec4<f32>(0.0);
    var acc10_0 = vec4<f32>(0.0);
    var acc10_1 = vec4<f32>(0.0);
    var acc11_0 = vec4<f32>(0.0);
    var acc11_1 = vec4<f32>(0.0);
    var acc12_0 = vec4<f32>(0.0);
    var acc12_1 = vec4<f32>(0.0);
    var acc13_0 = vec4<f32>(0.0);
    var acc13_1 = vec4<f32>(0.0);
    var acc14_0 = vec4<f32>(0.0);
    var acc14_1 = vec4<f32>(0.0);
    var acc15_0 = vec4<f32>(0.0);
    var acc15_1 = vec4<f32>(0.0);
    var acc16_0 = vec4<f32>(0.0);
    var acc16_1 = vec4<f32>(0.0);
    var acc17_0 = vec4<f32>(0.0);
    var acc17_1 = vec4<f32>(0.0);
    var acc18_0 = vec4<f32>(0.0);
    var acc18_1 = vec4<f32>(0.0);
    var acc19_0 = vec4<f32>(0.0);
    var acc19_1 = vec4<f32>(0.0);
    var acc20_0 = vec4<f32>(0.0);
    var acc20_1 = vec4<f32>(0.0);
    var acc21_0 = vec4<f32>(0.0);
    var acc21_1 = vec4<f32>(0.0);
    var acc22_0 = vec4<f32>(0.0);
    var acc22_1 = vec4<f32>(0.0);
    var acc23_0 = vec4<f32>(0.0);
    var acc23_1 = vec4<f32>(0.0);
    var acc24_0 = vec4<f32>(0.0);
    var acc24_1 = vec4<f32>(0.0);
    var acc25_0 = vec4<f32>(0.0);
    var acc25_1 = vec4<f32>(0.0);
    var acc26_0 = vec4<f32>(0.0);
    var acc26_1 = vec4<f32>(0.0);
    var acc27_0 = vec4<f32>(0.0);
    var acc27_1 = vec4<f32>(0.0);
    var acc28_0 = vec4<f32>(0.0);
    var acc28_1 = vec4<f32>(0.0);
    var acc29_0 = vec4<f32>(0.0);
    var acc29_1 = vec4<f32>(0.0);
    var acc30_0 = vec4<f32>(0.0);
    var acc30_1 = vec4<f32>(0.0);
    var acc31_0 = vec4<f32>(0.0);
    var acc31_1 = vec4<f32>(0.0);
    for (var ty = 0u; ty < th; ty++) {
    for (var tx = 0u; tx < tw; tx++) {
    let tap = (ty * tw + tx) * c8;
    let s0 = scatter_src(q0, ty, tx);
    let s1 = scatter_src(q1, ty, tx);
    let s2 = scatter_src(q2, ty, tx);
    let s3 = scatter_src(q3, ty, tx);
    for (var cc = 0u; cc < c8; cc++) {
        let kq = tap + cc;
        let q0 = w8[(kq * 8u + 0u) * f8 + cq];
        let q1 = w8[(kq * 8u + 1u) * f8 + cq];
        let q2 = w8[(kq * 8u + 2u) * f8 + cq];
        let q3 = w8[(kq * 8u + 3u) * f8 + cq];
        let q4 = w8[(kq * 8u + 4u) * f8 + cq];
        let q5 = w8[(kq * 8u + 5u) * f8 + cq];
        let q6 = w8[(kq * 8u + 6u) * f8 + cq];
        let q7 = w8[(kq * 8u + 7u) * f8 + cq];
        // bKH: columns c0 + 4H.., k-steps 4K..4K + 3 (column t of the matrix is k-step t).
        var b00 = mat4x4<f32>(lo4(q0), lo4(q1), lo4(q2), lo4(q3));
        var b01 = mat4x4<f32>(hi4(q0), hi4(q1), hi4(q2), hi4(q3));
        var b10 = mat4x4<f32>(lo4(q4), lo4(q5), lo4(q6), lo4(q7));
        var b11 = mat4x4<f32>(hi4(q4), hi4(q5), hi4(q6), hi4(q7));
        {
        let aq = scatter_a8(s0, cc);
        let al = lo4(aq);
        let ah = hi4(aq);
        let v0 = subgroupBroadcast(al, 0u);
        let u0 = subgroupBroadcast(ah, 0u);
        let v1 = subgroupBroadcast(al, 1u);
        let u1 = subgroupBroadcast(ah, 1u);
        let v2 = subgroupBroadcast(al, 2u);
        let u2 = subgroupBroadcast(ah, 2u);
        let v3 = subgroupBroadcast(al, 3u);
        let u3 = subgroupBroadcast(ah, 3u);
        let v4 = subgroupBroadcast(al, 4u);
        let u4 = subgroupBroadcast(ah, 4u);
        let v5 = subgroupBroadcast(al, 5u);
        let u5 = subgroupBroadcast(ah, 5u);
        let v6 = subgroupBroadcast(al, 6u);
        let u6 = subgroupBroadcast(ah, 6u);
        let v7 = subgroupBroadcast(al, 7u);
        let u7 = subgroupBroadcast(ah, 7u);
        // xRK: rows 4R..4R + 3 at k-steps 4K.. (entry i is row 4R + i's four k).
        var x00 = mat4x4<f32>(v0, v1, v2, v3);
        var x10 = mat4x4<f32>(v4, v5, v6, v7);
        var x01 = mat4x4<f32>(u0, u1, u2, u3);
        var x11 = mat4x4<f32>(u4, u5, u6, u7);
        acc0_0 += b00 * x00[0] + b10 * x01[0];
        acc0_1 += b01 * x00[0] + b11 * x01[0];
        acc1_0 += b00 * x00[1] + b10 * x01[1];
        acc1_1 += b01 * x00[1] + b11 * x01[1];
        acc2_0 += b00 * x00[2] + b10 * x01[2];
        acc2_1 += b01 * x00[2] + b11 * x01[2];
        acc3_0 += b00 * x00[3] + b10 * x01[3];
        acc3_1 += b01 * x00[3] + b11 * x01[3];
        acc4_0 += b00 * x10[0] + b10 * x11[0];
        acc4_1 += b01 * x10[0] + b11 * x11[0];
        acc5_0 += b00 * x10[1] + b10 * x11[1];
        acc5_1 += b01 * x10[1] + b11 * x11[1];
        acc6_0 += b00 * x10[2] + b10 * x11[2];
        acc6_1 += b01 * x10[2] + b11 * x11[2];
        acc7_0 += b00 * x10[3] + b10 * x11[3];
        acc7_1 += b01 * x10[3] + b11 * x11[3];
        }
        if ROWS > 8u {
            let aq = scatter_a8(s1, cc);
            let al = lo4(aq);
            let ah = hi4(aq);
            let v0 = subgroupBroadcast(al, 0u);
            let u0 = subgroupBroadcast(ah, 0u);
            let v1 = subgroupBroadcast(al, 1u);
            let u1 = subgroupBroadcast(ah, 1u);
            let v2 = subgroupBroadcast(al, 2u);
            let u2 = subgroupBroadcast(ah, 2u);
            let v3 = subgroupBroadcast(al, 3u);
            let u3 = subgroupBroadcast(ah, 3u);
            let v4 = subgroupBroadcast(al, 4u);
            let u4 = subgroupBroadcast(ah, 4u);
            let v5 = subgroupBroadcast(al, 5u);
            let u5 = subgroupBroadcast(ah, 5u);
            let v6 = subgroupBroadcast(al, 6u);
            let u6 = subgroupBroadcast(ah, 6u);
            let v7 = subgroupBroadcast(al, 7u);
            let u7 = subgroupBroadcast(ah, 7u);
            // xRK: rows 4R..4R + 3 at k-steps 4K.. (entry i is row 4R + i's four k).
            var x00 = mat4x4<f32>(v0, v1, v2, v3);
            var x10 = mat4x4<f32>(v4, v5, v6, v7);
            var x01 = mat4x4<f32>(u0, u1, u2, u3);
            var x11 = mat4x4<f32>(u4, u5, u6, u7);
            acc8_0 += b00 * x00[0] + b10 * x01[0];
            acc8_1 += b01 * x00[0] + b11 * x01[0];
            acc9_0 += b00 * x00[1] + b10 * x01[1];
            acc9_1 += b01 * x00[1] + b11 * x01[1];
            acc10_0 += b00 * x00[2] + b10 * x01[2];
            acc10_1 += b01 * x00[2] + b11 * x01[2];
            acc11_0 += b00 * x00[3] + b10 * x01[3];
            acc11_1 += b01 * x00[3] + b11 * x01[3];
            acc12_0 += b00 * x10[0] + b10 * x11[0];
            acc12_1 += b01 * x10[0] + b11 * x11[0];
            acc13_0 += b00 * x10[1] + b10 * x11[1];
            acc13_1 += b01 * x10[1] + b11 * x11[1];
            acc14_0 += b00 * x10[2] + b10 * x11[2];
            acc14_1 += b01 * x10[2] + b11 * x11[2];
            acc15_0 += b00 * x10[3] + b10 * x11[3];
            acc15_1 += b01 * x10[3] + b11 * x11[3];
        }
        if ROWS > 16u {
            let aq = scatter_a8(s2, cc);
            let al = lo4(aq);
            let ah = hi4(aq);
            let v0 = subgroupBroadcast(al, 0u);
            let u0 = subgroupBroadcast(ah, 0u);
            let v1 = subgroupBroadcast(al, 1u);
            let u1 = subgroupBroadcast(ah, 1u);
            let v2 = subgroupBroadcast(al, 2u);
            let u2 = subgroupBroadcast(ah, 2u);
            let v3 = subgroupBroadcast(al, 3u);
            let u3 = subgroupBroadcast(ah, 3u);
            let v4 = subgroupBroadcast(al, 4u);
            let u4 = subgroupBroadcast(ah, 4u);
            let v5 = subgroupBroadcast(al, 5u);
            let u5 = subgroupBroadcast(ah, 5u);
            let v6 = subgroupBroadcast(al, 6u);
            let u6 = subgroupBroadcast(ah, 6u);
            let v7 = subgroupBroadcast(al, 7u);
            let u7 = subgroupBroadcast(ah, 7u);
            // xRK: rows 4R..4R + 3 at k-steps 4K.. (entry i is row 4R + i's four k).
            var x00 = mat4x4<f32>(v0, v1, v2, v3);
            var x10 = mat4x4<f32>(v4, v5, v6, v7);
            var x01 = mat4x4<f32>(u0, u1, u2, u3);
            var x11 = mat4x4<f32>(u4, u5, u6, u7);
            acc16_0 += b00 * x00[0] + b10 * x01[0];
            acc16_1 += b01 * x00[0] + b11 * x01[0];
            acc17_0 += b00 * x00[1] + b10 * x01[1];
            acc17_1 += b01 * x00[1] + b11 * x01[1];
            acc18_0 += b00 * x00[2] + b10 * x01[2];
            acc18_1 += b01 * x00[2] + b11 * x01[2];
            acc19_0 += b00 * x00[3] + b10 * x01[3];
            acc19_1 += b01 * x00[3] + b11 * x01[3];
            acc20_0 += b00 * x10[0] + b10 * x11[0];
            acc20_1 += b01 * x10[0] + b11 * x11[0];
            acc21_0 += b00 * x10[1] + b10 * x11[1];
            acc21_1 += b01 * x10[1] + b11 * x11[1];
            acc22_0 += b00 * x10[2] + b10 * x11[2];
            acc22_1 += b01 * x10[2] + b11 * x11[2];
            acc23_0 += b00 * x10[3] + b10 * x11[3];
            acc23_1 += b01 * x10[3] + b11 * x11[3];
        }
        if ROWS > 24u {
            let aq = scatter_a8(s3, cc);
            let al = lo4(aq);
            let ah = hi4(aq);
            let v0 = subgroupBroadcast(al, 0u);
            let u0 = subgroupBroadcast(ah, 0u);
            let v1 = subgroupBroadcast(al, 1u);
            let u1 = subgroupBroadcast(ah, 1u);
            let v2 = subgroupBroadcast(al, 2u);
            let u2 = subgroupBroadcast(ah, 2u);
            let v3 = subgroupBroadcast(al, 3u);
            let u3 = subgroupBroadcast(ah, 3u);
            let v4 = subgroupBroadcast(al, 4u);
            let u4 = subgroupBroadcast(ah, 4u);
            let v5 = subgroupBroadcast(al, 5u);
            let u5 = subgroupBroadcast(ah, 5u);
            let v6 = subgroupBroadcast(al, 6u);
            let u6 = subgroupBroadcast(ah, 6u);
            let v7 = subgroupBroadcast(al, 7u);
            let u7 = subgroupBroadcast(ah, 7u);
            // xRK: rows 4R..4R + 3 at k-steps 4K.. (entry i is row 4R + i's four k).
            var x00 = mat4x4<f32>(v0, v1, v2, v3);
            var x10 = mat4x4<f32>(v4, v5, v6, v7);
            var x01 = mat4x4<f32>(u0, u1, u2, u3);
            var x11 = mat4x4<f32>(u4, u5, u6, u7);
            acc24_0 += b00 * x00[0] + b10 * x01[0];
            acc24_1 += b01 * x00[0] + b11 * x01[0];
            acc25_0 += b00 * x00[1] + b10 * x01[1];
            acc25_1 += b01 * x00[1] + b11 * x01[1];
            acc26_0 += b00 * x00[2] + b10 * x01[2];
            acc26_1 += b01 * x00[2] + b11 * x01[2];
            acc27_0 += b00 * x00[3] + b10 * x01[3];
            acc27_1 += b01 * x00[3] + b11 * x01[3];
            acc28_0 += b00 * x10[0] + b10 * x11[0];
            acc28_1 += b01 * x10[0] + b11 * x11[0];
            acc29_0 += b00 * x10[1] + b10 * x11[1];
            acc29_1 += b01 * x10[1] + b11 * x11[1];
            acc30_0 += b00 * x10[2] + b10 * x11[2];
            acc30_1 += b01 * x10[2] + b11 * x11[2];
            acc31_0 += b00 * x10[3] + b10 * x11[3];
            acc31_1 += b01 * x10[3] + b11 * x11[3];
        }
    }
    }
    }
    let b = bias8(c0 % p.o);
    store_phases(phase_row(r0, nq, qh, qw), r0 < nq && cl < rs, c0, acc0_0, acc0_1, b);
    store_phases(phase_row(r0 + 1u, nq, qh, qw), r0 + 1u < nq && cl < rs, c0, acc1_0, acc1_1, b);
    store_phases(phase_row(r0 + 2u, nq, qh, qw), r0 + 2u < nq && cl < rs, c0, acc2_0, acc2_1, b);
    store_phases(phase_row(r0 + 3u, nq, qh, qw), r0 + 3u < nq && cl < rs, c0, acc3_0, acc3_1, b);
    store_phases(phase_row(r0 + 4u, nq, qh, qw), r0 + 4u < nq && cl < rs, c0, acc4_0, acc4_1, b);
    store_phases(phase_row(r0 + 5u, nq, qh, qw), r0 + 5u < nq && cl < rs, c0, acc5_0, acc5_1, b);
    store_phases(phase_row(r0 + 6u, nq, qh, qw), r0 + 6u < nq && cl < rs, c0, acc6_0, acc6_1, b);
    store_phases(phase_row(r0 + 7u, nq, qh, qw), r0 + 7u < nq && cl < rs, c0, acc7_0, acc7_1, b);
    if ROWS > 8u {
        store_phases(phase_row(r0 + 8u, nq, qh, qw), r0 + 8u < nq && cl < rs, c0, acc8_0, acc8_1, b);
        store_phases(phase_row(r0 + 9u, nq, qh, qw), r0 + 9u < nq && cl < rs, c0, acc9_0, acc9_1, b);
        store_phases(phase_row(r0 + 10u, nq, qh, qw), r0 + 10u < nq && cl < rs, c0, acc10_0, acc10_1, b);
        store_phases(phase_row(r0 + 11u, nq, qh, qw), r0 + 11u < nq && cl < rs, c0, acc11_0, acc11_1, b);
        store_phases(phase_row(r0 + 12u, nq, qh, qw), r0 + 12u < nq && cl < rs, c0, acc12_0, acc12_1, b);
        store_phases(phase_row(r0 + 13u, nq, qh, qw), r0 + 13u < nq && cl < rs, c0, acc13_0, acc13_1, b);
        store_phases(phase_row(r0 + 14u, nq, qh, qw), r0 + 14u < nq && cl < rs, c0, acc14_0, acc14_1, b);
        store_phases(phase_row(r0 + 15u, nq, qh, qw), r0 + 15u < nq && cl < rs, c0, acc15_0, acc15_1, b);
    }
    if ROWS > 16u {
        store_phases(phase_row(r0 + 16u, nq, qh, qw), r0 + 16u < nq && cl < rs, c0, acc16_0, acc16_1, b);
        store_phases(phase_row(r0 + 17u, nq, qh, qw), r0 + 17u < nq && cl < rs, c0, acc17_0, acc17_1, b);
        store_phases(phase_row(r0 + 18u, nq, qh, qw), r0 + 18u < nq && cl < rs, c0, acc18_0, acc18_1, b);
        store_phases(phase_row(r0 + 19u, nq, qh, qw), r0 + 19u < nq && cl < rs, c0, acc19_0, acc19_1, b);
        store_phases(phase_row(r0 + 20u, nq, qh, qw), r0 + 20u < nq && cl < rs, c0, acc20_0, acc20_1, b);
        store_phases(phase_row(r0 + 21u, nq, qh, qw), r0 + 21u < nq && cl < rs, c0, acc21_0, acc21_1, b);
        store_phases(phase_row(r0 + 22u, nq, qh, qw), r0 + 22u < nq && cl < rs, c0, acc22_0, acc22_1, b);
        store_phases(phase_row(r0 + 23u, nq, qh, qw), r0 + 23u < nq && cl < rs, c0, acc23_0, acc23_1, b);
    }
    if ROWS > 24u {
        store_phases(phase_row(r0 + 24u, nq, qh, qw), r0 + 24u < nq && cl < rs, c0, acc24_0, acc24_1, b);
        store_phases(phase_row(r0 + 25u, nq, qh, qw), r0 + 25u < nq && cl < rs, c0, acc25_0, acc25_1, b);
        store_phases(phase_row(r0 + 26u, nq, qh, qw), r0 + 26u < nq && cl < rs, c0, acc26_0, acc26_1, b);
        store_phases(phase_row(r0 + 27u, nq, qh, qw), r0 + 27u < nq && cl < rs, c0, acc27_0, acc27_1, b);
        store_phases(phase_row(r0 + 28u, nq, qh, qw), r0 + 28u < nq && cl < rs, c0, acc28_0, acc28_1, b);
        store_phases(phase_row(r0 + 29u, nq, qh, qw), r0 + 29u < nq && cl < rs, c0, acc29_0, acc29_1, b);
        store_phases(phase_row(r0 + 30u, nq, qh, qw), r0 + 30u < nq && cl < rs, c0, acc30_0, acc30_1, b);
        store_phases(phase_row(r0 + 31u, nq, qh, qw), r0 + 31u < nq && cl < rs, c0, acc31_0, acc31_1, b);
    }
}

@compute @workgroup_size(8, 1, 1)
fn wgrad_nhwc(@builtin(workgroup_id) wid: vec3<u32>, @builtin(subgroup_invocation_id) lane: u32) {
    // Grid x: split-major blocks of 64 columns; y: blocks of ROWS rows.
    let cb = (p.o + 63u) / 64u;
    let split = wid.x / cb;
    let c0 = (wid.x - split * cb) * 64u + lane * 8u;
    let r0 = wid.y * ROWS;
    let shw = p.ih * p.iw;
    let first = split * p.imgs * shw;
    let end = min(p.n, (split + 1u) * p.imgs) * shw;
    let c8 = p.c / 8u;
    let o8 = p.o / 8u;
    let cq = min(c0 / 8u, o8 - 1u);
    let rows = p.kh * p.kw * p.c;
    // Each block of 8 rows is one tap's 8 channels: its offset from a position's pixel.
    let m0 = min(r0 + 0u, rows - 8u);
    let t0 = m0 / p.c;
    let ky0 = t0 / p.kw;
    let off0 = (ky0 * p.ow + t0 - ky0 * p.kw) * c8 + (m0 - t0 * p.c) / 8u;
    let m1 = min(r0 + 8u, rows - 8u);
    let t1 = m1 / p.c;
    let ky1 = t1 / p.kw;
    let off1 = (ky1 * p.ow + t1 - ky1 * p.kw) * c8 + (m1 - t1 * p.c) / 8u;
    let m2 = min(r0 + 16u, rows - 8u);
    let t2 = m2 / p.c;
    let ky2 = t2 / p.kw;
    let off2 = (ky2 * p.ow + t2 - ky2 * p.kw) * c8 + (m2 - t2 * p.c) / 8u;
    let m3 = min(r0 + 24u, rows - 8u);
    let t3 = m3 / p.c;
    let ky3 = t3 / p.kw;
    let off3 = (ky3 * p.ow + t3 - ky3 * p.kw) * c8 + (m3 - t3 * p.c) / 8u;
    // acc_i_h: row r0 + i, columns c0 + 4h..c0 + 4h + 3.
    var acc0_0 = vec4<f32>(0.0);
    var acc0_1 = vec4<f32>(0.0);
    var acc1_0 = vec4<f32>(0.0);
    var acc1_1 = vec4<f32>(0.0);
    var acc2_0 = vec4<f32>(0.0);
    var acc2_1 = vec4<f32>(0.0);
    var acc3_0 = vec4<f32>(0.0);
    var acc3_1 = vec4<f32>(0.0);
    var acc4_0 = vec4<f32>(0.0);
    var acc4_1 = vec4<f32>(0.0);
    var acc5_0 = vec4<f32>(0.0);
    var acc5_1 = vec4<f32>(0.0);
    var acc6_0 = vec4<f32>(0.0);
    var acc6_1 = vec4<f32>(0.0);
    var acc7_0 = vec4<f32>(0.0);
    var acc7_1 = vec4<f32>(0.0);
    var acc8_0 = vec4<f32>(0.0);
    var acc8_1 = vec4<f32>(0.0);
    var acc9_0 = vec4<f32>(0.0);
    var acc9_1 = vec4<f32>(0.0);
    var acc10_0 = vec4<f32>(0.0);
    var acc10_1 = vec4<f32>(0.0);
    var acc11_0 = vec4<f32>(0.0);
    var acc11_1 = vec4<f32>(0.0);
    var acc12_0 = vec4<f32>(0.0);
    var acc12_1 = vec4<f32>(0.0);
    var acc13_0 = vec4<f32>(0.0);
    var acc13_1 = vec4<f32>(0.0);
    var acc14_0 = vec4<f32>(0.0);
    var acc14_1 = vec4<f32>(0.0);
    var acc15_0 = vec4<f32>(0.0);
    var acc15_1 = vec4<f32>(0.0);
    var acc16_0 = vec4<f32>(0.0);
    var acc16_1 = vec4<f32>(0.0);
    var acc17_0 = vec4<f32>(0.0);
    var acc17_1 = vec4<f32>(0.0);
    var acc18_0 = vec4<f32>(0.0);
    var acc18_1 = vec4<f32>(0.0);
    var acc19_0 = vec4<f32>(0.0);
    var acc19_1 = vec4<f32>(0.0);
    var acc20_0 = vec4<f32>(0.0);
    var acc20_1 = vec4<f32>(0.0);
    var acc21_0 = vec4<f32>(0.0);
    var acc21_1 = vec4<f32>(0.0);
    var acc22_0 = vec4<f32>(0.0);
    var acc22_1 = vec4<f32>(0.0);
    var acc23_0 = vec4<f32>(0.0);
    var acc23_1 = vec4<f32>(0.0);
    var acc24_0 = vec4<f32>(0.0);
    var acc24_1 = vec4<f32>(0.0);
    var acc25_0 = vec4<f32>(0.0);
    var acc25_1 = vec4<f32>(0.0);
    var acc26_0 = vec4<f32>(0.0);
    var acc26_1 = vec4<f32>(0.0);
    var acc27_0 = vec4<f32>(0.0);
    var acc27_1 = vec4<f32>(0.0);
    var acc28_0 = vec4<f32>(0.0);
    var acc28_1 = vec4<f32>(0.0);
    var acc29_0 = vec4<f32>(0.0);
    var acc29_1 = vec4<f32>(0.0);
    var acc30_0 = vec4<f32>(0.0);
    var acc30_1 = vec4<f32>(0.0);
    var acc31_0 = vec4<f32>(0.0);
    var acc31_1 = vec4<f32>(0.0);
    for (var k = first; k < end; k += 8u) {
        // Lane t: position k + t of the large image (clamped; its B is zero past the end).
        let pix = wgrad_pixel8(min(k + lane, end - 1u));
        let q0 = select(vec4<u64>(), w8[min(k + 0u, end - 1u) * o8 + cq], k + 0u < end);
        let q1 = select(vec4<u64>(), w8[min(k + 1u, end - 1u) * o8 + cq], k + 1u < end);
        let q2 = select(vec4<u64>(), w8[min(k + 2u, end - 1u) * o8 + cq], k + 2u < end);
        let q3 = select(vec4<u64>(), w8[min(k + 3u, end - 1u) * o8 + cq], k + 3u < end);
        let q4 = select(vec4<u64>(), w8[min(k + 4u, end - 1u) * o8 + cq], k + 4u < end);
        let q5 = select(vec4<u64>(), w8[min(k + 5u, end - 1u) * o8 + cq], k + 5u < end);
        let q6 = select(vec4<u64>(), w8[min(k + 6u, end - 1u) * o8 + cq], k + 6u < end);
        let q7 = select(vec4<u64>(), w8[min(k + 7u, end - 1u) * o8 + cq], k + 7u < end);
        // bKH: columns c0 + 4H.., k-steps 4K..4K + 3 (column t of the matrix is k-step t).
        var b00 = mat4x4<f32>(lo4(q0), lo4(q1), lo4(q2), lo4(q3));
        var b01 = mat4x4<f32>(hi4(q0), hi4(q1), hi4(q2), hi4(q3));
        var b10 = mat4x4<f32>(lo4(q4), lo4(q5), lo4(q6), lo4(q7));
        var b11 = mat4x4<f32>(hi4(q4), hi4(q5), hi4(q6), hi4(q7));
        {
        let aq = x8[pix + off0];
        let al = lo4(aq);
        let ah = hi4(aq);
        let v0 = subgroupBroadcast(al, 0u);
        let u0 = subgroupBroadcast(ah, 0u);
        let v1 = subgroupBroadcast(al, 1u);
        let u1 = subgroupBroadcast(ah, 1u);
        let v2 = subgroupBroadcast(al, 2u);
        let u2 = subgroupBroadcast(ah, 2u);
        let v3 = subgroupBroadcast(al, 3u);
        let u3 = subgroupBroadcast(ah, 3u);
        let v4 = subgroupBroadcast(al, 4u);
        let u4 = subgroupBroadcast(ah, 4u);
        let v5 = subgroupBroadcast(al, 5u);
        let u5 = subgroupBroadcast(ah, 5u);
        let v6 = subgroupBroadcast(al, 6u);
        let u6 = subgroupBroadcast(ah, 6u);
        let v7 = subgroupBroadcast(al, 7u);
        let u7 = subgroupBroadcast(ah, 7u);
        // xRK: rows 4R..4R + 3 at k-steps 4K.. (entry i is row 4R + i's four k).
        var x00 = mat4x4<f32>(v0, v1, v2, v3);
        var x10 = mat4x4<f32>(v4, v5, v6, v7);
        var x01 = mat4x4<f32>(u0, u1, u2, u3);
        var x11 = mat4x4<f32>(u4, u5, u6, u7);
        if true {
            // Lane t holds k-step t: rows 0-3 in al, 4-7 in ah.
            x00 = transpose(mat4x4<f32>(v0, v1, v2, v3));
            x01 = transpose(mat4x4<f32>(v4, v5, v6, v7));
            x10 = transpose(mat4x4<f32>(u0, u1, u2, u3));
            x11 = transpose(mat4x4<f32>(u4, u5, u6, u7));
        }
        acc0_0 += b00 * x00[0] + b10 * x01[0];
        acc0_1 += b01 * x00[0] + b11 * x01[0];
        acc1_0 += b00 * x00[1] + b10 * x01[1];
        acc1_1 += b01 * x00[1] + b11 * x01[1];
        acc2_0 += b00 * x00[2] + b10 * x01[2];
        acc2_1 += b01 * x00[2] + b11 * x01[2];
        acc3_0 += b00 * x00[3] + b10 * x01[3];
        acc3_1 += b01 * x00[3] + b11 * x01[3];
        acc4_0 += b00 * x10[0] + b10 * x11[0];
        acc4_1 += b01 * x10[0] + b11 * x11[0];
        acc5_0 += b00 * x10[1] + b10 * x11[1];
        acc5_1 += b01 * x10[1] + b11 * x11[1];
        acc6_0 += b00 * x10[2] + b10 * x11[2];
        acc6_1 += b01 * x10[2] + b11 * x11[2];
        acc7_0 += b00 * x10[3] + b10 * x11[3];
        acc7_1 += b01 * x10[3] + b11 * x11[3];
        }
        if ROWS > 8u {
            let aq = x8[pix + off1];
            let al = lo4(aq);
            let ah = hi4(aq);
            let v0 = subgroupBroadcast(al, 0u);
            let u0 = subgroupBroadcast(ah, 0u);
            let v1 = subgroupBroadcast(al, 1u);
            let u1 = subgroupBroadcast(ah, 1u);
            let v2 = subgroupBroadcast(al, 2u);
            let u2 = subgroupBroadcast(ah, 2u);
            let v3 = subgroupBroadcast(al, 3u);
            let u3 = subgroupBroadcast(ah, 3u);
            let v4 = subgroupBroadcast(al, 4u);
            let u4 = subgroupBroadcast(ah, 4u);
            let v5 = subgroupBroadcast(al, 5u);
            let u5 = subgroupBroadcast(ah, 5u);
            let v6 = subgroupBroadcast(al, 6u);
            let u6 = subgroupBroadcast(ah, 6u);
            let v7 = subgroupBroadcast(al, 7u);
            let u7 = subgroupBroadcast(ah, 7u);
            // xRK: rows 4R..4R + 3 at k-steps 4K.. (entry i is row 4R + i's four k).
            var x00 = mat4x4<f32>(v0, v1, v2, v3);
            var x10 = mat4x4<f32>(v4, v5, v6, v7);
            var x01 = mat4x4<f32>(u0, u1, u2, u3);
            var x11 = mat4x4<f32>(u4, u5, u6, u7);
            if true {
                // Lane t holds k-step t: rows 0-3 in al, 4-7 in ah.
                x00 = transpose(mat4x4<f32>(v0, v1, v2, v3));
                x01 = transpose(mat4x4<f32>(v4, v5, v6, v7));
                x10 = transpose(mat4x4<f32>(u0, u1, u2, u3));
                x11 = transpose(mat4x4<f32>(u4, u5, u6, u7));
            }
            acc8_0 += b00 * x00[0] + b10 * x01[0];
            acc8_1 += b01 * x00[0] + b11 * x01[0];
            acc9_0 += b00 * x00[1] + b10 * x01[1];
            acc9_1 += b01 * x00[1] + b11 * x01[1];
            acc10_0 += b00 * x00[2] + b10 * x01[2];
            acc10_1 += b01 * x00[2] + b11 * x01[2];
            acc11_0 += b00 * x00[3] + b10 * x01[3];
            acc11_1 += b01 * x00[3] + b11 * x01[3];
            acc12_0 += b00 * x10[0] + b10 * x11[0];
            acc12_1 += b01 * x10[0] + b11 * x11[0];
            acc13_0 += b00 * x10[1] + b10 * x11[1];
            acc13_1 += b01 * x10[1] + b11 * x11[1];
            acc14_0 += b00 * x10[2] + b10 * x11[2];
            acc14_1 += b01 * x10[2] + b11 * x11[2];
            acc15_0 += b00 * x10[3] + b10 * x11[3];
            acc15_1 += b01 * x10[3] + b11 * x11[3];
        }
        if ROWS > 16u {
            let aq = x8[pix + off2];
            let al = lo4(aq);
            let ah = hi4(aq);
            let v0 = subgroupBroadcast(al, 0u);
            let u0 = subgroupBroadcast(ah, 0u);
            let v1 = subgroupBroadcast(al, 1u);
            let u1 = subgroupBroadcast(ah, 1u);
            let v2 = subgroupBroadcast(al, 2u);
            let u2 = subgroupBroadcast(ah, 2u);
            let v3 = subgroupBroadcast(al, 3u);
            let u3 = subgroupBroadcast(ah, 3u);
            let v4 = subgroupBroadcast(al, 4u);
            let u4 = subgroupBroadcast(ah, 4u);
            let v5 = subgroupBroadcast(al, 5u);
            let u5 = subgroupBroadcast(ah, 5u);
            let v6 = subgroupBroadcast(al, 6u);
            let u6 = subgroupBroadcast(ah, 6u);
            let v7 = subgroupBroadcast(al, 7u);
            let u7 = subgroupBroadcast(ah, 7u);
            // xRK: rows 4R..4R + 3 at k-steps 4K.. (entry i is row 4R + i's four k).
            var x00 = mat4x4<f32>(v0, v1, v2, v3);
            var x10 = mat4x4<f32>(v4, v5, v6, v7);
            var x01 = mat4x4<f32>(u0, u1, u2, u3);
            var x11 = mat4x4<f32>(u4, u5, u6, u7);
            if true {
                // Lane t holds k-step t: rows 0-3 in al, 4-7 in ah.
                x00 = transpose(mat4x4<f32>(v0, v1, v2, v3));
                x01 = transpose(mat4x4<f32>(v4, v5, v6, v7));
                x10 = transpose(mat4x4<f32>(u0, u1, u2, u3));
                x11 = transpose(mat4x4<f32>(u4, u5, u6, u7));
            }
            acc16_0 += b00 * x00[0] + b10 * x01[0];
            acc16_1 += b01 * x00[0] + b11 * x01[0];
            acc17_0 += b00 * x00[1] + b10 * x01[1];
            acc17_1 += b01 * x00[1] + b11 * x01[1];
            acc18_0 += b00 * x00[2] + b10 * x01[2];
            acc18_1 += b01 * x00[2] + b11 * x01[2];
            acc19_0 += b00 * x00[3] + b10 * x01[3];
            acc19_1 += b01 * x00[3] + b11 * x01[3];
            acc20_0 += b00 * x10[0] + b10 * x11[0];
            acc20_1 += b01 * x10[0] + b11 * x11[0];
            acc21_0 += b00 * x10[1] + b10 * x11[1];
            acc21_1 += b01 * x10[1] + b11 * x11[1];
            acc22_0 += b00 * x10[2] + b10 * x11[2];
            acc22_1 += b01 * x10[2] + b11 * x11[2];
            acc23_0 += b00 * x10[3] + b10 * x11[3];
            acc23_1 += b01 * x10[3] + b11 * x11[3];
        }
        if ROWS > 24u {
            let aq = x8[pix + off3];
            let al = lo4(aq);
            let ah = hi4(aq);
            let v0 = subgroupBroadcast(al, 0u);
            let u0 = subgroupBroadcast(ah, 0u);
            let v1 = subgroupBroadcast(al, 1u);
            let u1 = subgroupBroadcast(ah, 1u);
            let v2 = subgroupBroadcast(al, 2u);
            let u2 = subgroupBroadcast(ah, 2u);
            let v3 = subgroupBroadcast(al, 3u);
            let u3 = subgroupBroadcast(ah, 3u);
            let v4 = subgroupBroadcast(al, 4u);
            let u4 = subgroupBroadcast(ah, 4u);
            let v5 = subgroupBroadcast(al, 5u);
            let u5 = subgroupBroadcast(ah, 5u);
            let v6 = subgroupBroadcast(al, 6u);
            let u6 = subgroupBroadcast(ah, 6u);
            let v7 = subgroupBroadcast(al, 7u);
            let u7 = subgroupBroadcast(ah, 7u);
            // xRK: rows 4R..4R + 3 at k-steps 4K.. (entry i is row 4R + i's four k).
            var x00 = mat4x4<f32>(v0, v1, v2, v3);
            var x10 = mat4x4<f32>(v4, v5, v6, v7);
            var x01 = mat4x4<f32>(u0, u1, u2, u3);
            var x11 = mat4x4<f32>(u4, u5, u6, u7);
            if true {
                // Lane t holds k-step t: rows 0-3 in al, 4-7 in ah.
                x00 = transpose(mat4x4<f32>(v0, v1, v2, v3));
                x01 = transpose(mat4x4<f32>(v4, v5, v6, v7));
                x10 = transpose(mat4x4<f32>(u0, u1, u2, u3));
                x11 = transpose(mat4x4<f32>(u4, u5, u6, u7));
            }
            acc24_0 += b00 * x00[0] + b10 * x01[0];
            acc24_1 += b01 * x00[0] + b11 * x01[0];
            acc25_0 += b00 * x00[1] + b10 * x01[1];
            acc25_1 += b01 * x00[1] + b11 * x01[1];
            acc26_0 += b00 * x00[2] + b10 * x01[2];
            acc26_1 += b01 * x00[2] + b11 * x01[2];
            acc27_0 += b00 * x00[3] + b10 * x01[3];
            acc27_1 += b01 * x00[3] + b11 * x01[3];
            acc28_0 += b00 * x10[0] + b10 * x11[0];
            acc28_1 += b01 * x10[0] + b11 * x11[0];
            acc29_0 += b00 * x10[1] + b10 * x11[1];
            acc29_1 += b01 * x10[1] + b11 * x11[1];
            acc30_0 += b00 * x10[2] + b10 * x11[2];
            acc30_1 += b01 * x10[2] + b11 * x11[2];
            acc31_0 += b00 * x10[3] + b10 * x11[3];
            acc31_1 += b01 * x10[3] + b11 * x11[3];
        }
    }
    let base = split * rows * p.o;
    store_wgrad(r0, c0, base, acc0_0, acc0_1);
    store_wgrad(r0 + 1u, c0, base, acc1_0, acc1_1);
    store_wgrad(r0 + 2u, c0, base, acc2_0, acc2_1);
    store_wgrad(r0 + 3u, c0, base, acc3_0, acc3_1);
    store_wgrad(r0 + 4u, c0, base, acc4_0, acc4_1);
    store_wgrad(r0 + 5u, c0, base, acc5_0, acc5_1);
    store_wgrad(r0 + 6u, c0, base, acc6_0, acc6_1);
    store_wgrad(r0 + 7u, c0, base, acc7_0, acc7_1);
    if ROWS > 8u {
        store_wgrad(r0 + 8u, c0, base, acc8_0, acc8_1);
        store_wgrad(r0 + 9u, c0, base, acc9_0, acc9_1);
        store_wgrad(r0 + 10u, c0, base, acc10_0, acc10_1);
        store_wgrad(r0 + 11u, c0, base, acc11_0, acc11_1);
        store_wgrad(r0 + 12u, c0, base, acc12_0, acc12_1);
        store_wgrad(r0 + 13u, c0, base, acc13_0, acc13_1);
        store_wgrad(r0 + 14u, c0, base, acc14_0, acc14_1);
        store_wgrad(r0 + 15u, c0, base, acc15_0, acc15_1);
    }
    if ROWS > 16u {
        store_wgrad(r0 + 16u, c0, base, acc16_0, acc16_1);
        store_wgrad(r0 + 17u, c0, base, acc17_0, acc17_1);
        store_wgrad(r0 + 18u, c0, base, acc18_0, acc18_1);
        store_wgrad(r0 + 19u, c0, base, acc19_0, acc19_1);
        store_wgrad(r0 + 20u, c0, base, acc20_0, acc20_1);
        store_wgrad(r0 + 21u, c0, base, acc21_0, acc21_1);
        store_wgrad(r0 + 22u, c0, base, acc22_0, acc22_1);
        store_wgrad(r0 + 23u, c0, base, acc23_0, acc23_1);
    }
    if ROWS > 24u {
        store_wgrad(r0 + 24u, c0, base, acc24_0, acc24_1);
        store_wgrad(r0 + 25u, c0, base, acc25_0, acc25_1);
        store_wgrad(r0 + 26u, c0, base, acc26_0, acc26_1);
        store_wgrad(r0 + 27u, c0, base, acc27_0, acc27_1);
        store_wgrad(r0 + 28u, c0, base, acc28_0, acc28_1);
        store_wgrad(r0 + 29u, c0, base, acc29_0, acc29_1);
        store_wgrad(r0 + 30u, c0, base, acc30_0, acc30_1);
        store_wgrad(r0 + 31u, c0, base, acc31_0, acc31_1);
    }
}
