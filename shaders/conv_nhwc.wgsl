// Written by shaders/gen/matmul_lanes.py: edit that script, not this file.
//
// conv_nhwc.wgsl: y = act(conv2d(x, w) + b), stride s, no padding, as an implicit GEMM over a
// channels-innermost input x [N, IH, IW, C], for CPU drivers with 8-lane subgroups and 64-bit
// integers (the `conv_nhwc` family: lanes64.wgsl, then this file). The body is
// matmul_lanes64.wgsl's, generated from the same script: rows = output positions (image, row,
// column), columns = output channels, k = (tap, input channel), 8 k per step.
//
// Why: conv_main_lanes reads NCHW, where a lane's positions are not adjacent in memory, so it
// loads pixels one by one. With the channels innermost a lane's A piece is one position's 8
// channels at one tap, a single vec4<u64>: the loads of the u64 matmul, 12 per 2,048 FMAs per
// lane. About 1.4x conv_main_lanes on the encoder's passes (README). Only where no gradient is
// needed (the observe-only encoder): training keeps NCHW, which its backward passes read.
//
// Params: n, ih, iw, c (input channels, a multiple of 8), oh, ow, o (output channels, a
// multiple of 8), kh, kw, s, act (0 none, 1 ReLU, 2 ELU, after the bias), has_bias.
// Bindings: 0 params, 1 x8 (the input as vec4<u64>, bound at a multiple of 32 bytes), 2 w8 (the
// weights packed [kh][kw][C][O] by conv.wgsl's `pack_w`, as vec4<u64>), 3 bias [O] (bound even
// without one), 4 y (NCHW output, f32), 5 y8 (NHWC output, vec4<u64>).
// Entry points: `conv_nhwc` (uses 1, 2, 3, 5: output [N, OH, OW, O], 8 channels per store) and
// `conv_nhwc_to_nchw` (uses 1, 2, 3, 4: output [N, O, OH, OW], one value per store).
// Workgroup (8,1,1) = one subgroup of exactly 8 lanes; a workgroup computes 32 positions x 64
// output channels, lane l channels 8l..8l+7 of them. Grid: x = ceil(O/64), y = ceil(N*OH*OW/32)
// (y folds into z). Positions past the end are clamped on load and not stored.

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
    y8[(pos * p.o + c0) / 8u] = pack8(x0, x1);
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
