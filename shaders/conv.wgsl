// conv.wgsl: Conv2d and ConvTranspose2d (NCHW, no padding), forward and backward, as implicit
// GEMMs with register blocking and no shared memory.
//
// Every pass of both ops is one of three sums (R: channels summed over, O: output channels):
//   gather   out[n,o,y,x]  = sum_{r,ky,kx} in[n,r,y*S+ky,x*S+kx] * w(o,r,ky,kx)
//            (Conv2d forward; ConvTranspose2d input gradient)
//   scatter  out[n,o,Y,X]  = sum_{r, ky,kx with Y = iy*S+ky, X = ix*S+kx} in[n,r,iy,ix] * w(o,r,ky,kx)
//            (ConvTranspose2d forward; Conv2d input gradient). Computed as a gather, per output
//            pixel, over the taps that reach it: no atomics. The output is split into S*S phases
//            (Y % S, X % S); within a phase the taps are ky = Y%S + S*ty, and the input pixel is
//            (Y/S - ty, X/S - tx), masked where it falls outside.
//   wgrad    gw[a,b,ky,kx] = sum_{n,y,x} small[n,a,y,x] * large[n,b,y*S+ky,x*S+kx]
//            (both weight gradients: Conv2d small = dy, large = x; transposed small = x, large = dy)
// plus the bias gradient (a per-channel sum) and a sum over the partial results of a split
// reduction.
//
// Entry points (all [backward] except pack_w and conv_main forward uses):
//   pack_w         wp[((ky*KW+kx)*R + r)*opad4 + o/4][o%4] = w[o*ws_o + r*ws_r + ky*KW + kx]
//                  (0 for o >= O): the weights of one tap and input channel, output channels
//                  contiguous, so one vec4 load gives four output channels. Both weight layouts
//                  ([O,R,kh,kw] and [R,O,kh,kw]) go through the strides. Workgroup (WG).
//                  Uses 1 w, 6 wp_out.
//   conv_main      gather (SCATTER = false) or scatter (SCATTER = true), with fused bias
//                  (bias[o / bias_div]), activation (ACT) and accumulation (ACC).
//                  Workgroup (64,1,1). Each invocation holds 8 output positions x 4*CB4 output
//                  channels in registers (32 vec4 accumulators at CB4 = 4). The positions are 8
//                  consecutive entries of the flattened (image, row, column) output grid (of one
//                  phase when scattering), so short rows and 1x1 outputs waste nothing. Grid:
//                  x = channel blocks (uniform in a workgroup: the weight loads are the same for
//                  all invocations), y = position groups of 512 (times S*S phases; folds into z).
//                  Inner loop, per tap and input channel: 8 image loads + CB4 vec4 weight loads
//                  for 32*CB4 FMAs. Uses 1 in, 2 wp, 3 bias, 4 out.
//   wgrad          partial[split][a][c] of the weight gradient, c = (b*KH + ky)*KW + kx, summed
//                  over the images of one split. Workgroup (64,1,1); each invocation holds 16 a x
//                  8 c in registers (16 + 8 loads for 128 FMAs per reduction step). Grid:
//                  x = tiles / 64, y = splits (folds into z). Uses 1 small, 4 partial, 5 large.
//   bias_grad      partial[split][o] = sum over the split's images and pixels of g[n,o,:].
//                  Workgroup (WG). Uses 1 g, 4 partial.
//   reduce_splits  out[i] (+)= sum_s partial[s*len + i]. Workgroup (WG). Uses 1 partial, 4 out.
//
// Why this form: lavapipe (the CPU Vulkan driver) runs a workgroup as SIMD lanes but loads every
// storage-buffer element lane by lane, and a workgroup barrier costs more than the loads it
// saves; so the kernels use no shared memory and maximise FMAs per loaded value with large
// register blocks. It also does not unroll loops, so the blocks are unrolled by hand, and
// private arrays are indexed by constants only (a dynamically indexed one lives in memory
// there). On GPUs the same blocks give 24 loads per 128 FMAs from L1, the weights of a
// workgroup are the same address for all its invocations, and the split reduction keeps enough
// invocations busy when the weight gradient is small and its reduction (images x pixels) long.
//
// Overrides: KH, KW (kernel), S (stride), SCATTER, CB4 (1, 2 or 4 output-channel vec4s per
// invocation), HAS_BIAS, ACT (0 none, 1 ReLU, 2 ELU, after the bias), ACC (add into out).

struct Params {
    n: u32,        // images
    r: u32,        // conv_main, pack_w: channels summed over
    o: u32,        // conv_main, pack_w, bias_grad: output channels
    ih: u32,       // conv_main: input image; wgrad: the small image
    iw: u32,
    oh: u32,       // conv_main: output image; wgrad: the large image
    ow: u32,
    opad4: u32,    // conv_main, pack_w: vec4s per packed weight row (O rounded up to 4*CB4, / 4)
    bias_div: u32, // conv_main: output channel o uses bias[o / bias_div]
    a: u32,        // wgrad: channels of the small image
    b: u32,        // wgrad: channels of the large image
    c: u32,        // wgrad: b * KH * KW
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

override KH: u32 = 4u;
override KW: u32 = 4u;
override S: u32 = 2u;
override SCATTER: bool = false;
override CB4: u32 = 4u;
override HAS_BIAS: bool = false;
override ACT: u32 = 0u;
override ACC: bool = false;

fn load_bias4(o: u32) -> vec4<f32> {
    if !HAS_BIAS { return vec4<f32>(0.0); }
    let last = p.o - 1u;
    return vec4<f32>(bias[min(o, last) / p.bias_div], bias[min(o + 1u, last) / p.bias_div],
                     bias[min(o + 2u, last) / p.bias_div], bias[min(o + 3u, last) / p.bias_div]);
}

// out[idx + o*OH*OW] (+)= act(v) for output channel o < O.
fn store1(idx: u32, o: u32, v: f32) {
    if o >= p.o { return; }
    let i = idx + o * p.oh * p.ow;
    let y = activate(v, ACT);
    if ACC { out[i] += y; } else { out[i] = y; }
}

fn store4(idx: u32, o: u32, v: vec4<f32>) {
    store1(idx, o, v.x);
    store1(idx, o + 1u, v.y);
    store1(idx, o + 2u, v.z);
    store1(idx, o + 3u, v.w);
}

// wgrad: v holds rows a_rel..a_rel+3 of one column; rows past na are not stored.
fn store_col(idx: u32, a_rel: u32, na: u32, v: vec4<f32>) {
    if a_rel < na { out[idx] = v.x; }
    if a_rel + 1u < na { out[idx + p.c] = v.y; }
    if a_rel + 2u < na { out[idx + 2u * p.c] = v.z; }
    if a_rel + 3u < na { out[idx + 3u * p.c] = v.w; }
}

@compute @workgroup_size(WG)
fn pack_w(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
          @builtin(local_invocation_id) lid: vec3<u32>) {
    let i = flat_id(wid, nwg, lid);
    if i >= KH * KW * p.r * p.opad4 { return; }
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

@compute @workgroup_size(64)
fn conv_main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
             @builtin(local_invocation_id) lid: vec3<u32>) {
    let ob4 = wid.x * CB4;
    var wy = fold_yz(wid, nwg);
    // Output positions this invocation computes: 8 consecutive ones of the flattened
    // (image, row, column) grid, of the whole output (gather) or of one phase (scatter).
    var py = 0u;
    var px = 0u;
    var qh = p.oh;
    var qw = p.ow;
    if SCATTER {
        let ph = wy % (S * S);
        wy = wy / (S * S);
        py = ph / S;
        px = ph % S;
        if py >= p.oh || px >= p.ow { return; }
        qh = (p.oh - py + S - 1u) / S;
        qw = (p.ow - px + S - 1u) / S;
    }
    let qhw = qh * qw;
    let mt = p.n * qhw;
    let m0 = (wy * 64u + lid.x) * 8u;
    if m0 >= mt { return; }
    let ihw = p.ih * p.iw;
    let ohw = p.oh * p.ow;
    // Per position: its image, row and column (in phase units when SCATTER); positions past
    // the end repeat the last one (loads stay in range; they are not stored).
    var img: array<u32, 8>;
    var yy: array<u32, 8>;
    var xx: array<u32, 8>;

    { let m = min(m0 + 0u, mt - 1u); img[0] = m / qhw; let q = m - img[0] * qhw; yy[0] = q / qw; xx[0] = q - yy[0] * qw; }
    { let m = min(m0 + 1u, mt - 1u); img[1] = m / qhw; let q = m - img[1] * qhw; yy[1] = q / qw; xx[1] = q - yy[1] * qw; }
    { let m = min(m0 + 2u, mt - 1u); img[2] = m / qhw; let q = m - img[2] * qhw; yy[2] = q / qw; xx[2] = q - yy[2] * qw; }
    { let m = min(m0 + 3u, mt - 1u); img[3] = m / qhw; let q = m - img[3] * qhw; yy[3] = q / qw; xx[3] = q - yy[3] * qw; }
    { let m = min(m0 + 4u, mt - 1u); img[4] = m / qhw; let q = m - img[4] * qhw; yy[4] = q / qw; xx[4] = q - yy[4] * qw; }
    { let m = min(m0 + 5u, mt - 1u); img[5] = m / qhw; let q = m - img[5] * qhw; yy[5] = q / qw; xx[5] = q - yy[5] * qw; }
    { let m = min(m0 + 6u, mt - 1u); img[6] = m / qhw; let q = m - img[6] * qhw; yy[6] = q / qw; xx[6] = q - yy[6] * qw; }
    { let m = min(m0 + 7u, mt - 1u); img[7] = m / qhw; let q = m - img[7] * qhw; yy[7] = q / qw; xx[7] = q - yy[7] * qw; }
    // Gather: offset of the window's top-left input pixel; scatter: offset of the image.
    var base: array<u32, 8>;
    base[0] = img[0] * p.r * ihw + select(yy[0] * S * p.iw + xx[0] * S, 0u, SCATTER);
    base[1] = img[1] * p.r * ihw + select(yy[1] * S * p.iw + xx[1] * S, 0u, SCATTER);
    base[2] = img[2] * p.r * ihw + select(yy[2] * S * p.iw + xx[2] * S, 0u, SCATTER);
    base[3] = img[3] * p.r * ihw + select(yy[3] * S * p.iw + xx[3] * S, 0u, SCATTER);
    base[4] = img[4] * p.r * ihw + select(yy[4] * S * p.iw + xx[4] * S, 0u, SCATTER);
    base[5] = img[5] * p.r * ihw + select(yy[5] * S * p.iw + xx[5] * S, 0u, SCATTER);
    base[6] = img[6] * p.r * ihw + select(yy[6] * S * p.iw + xx[6] * S, 0u, SCATTER);
    base[7] = img[7] * p.r * ihw + select(yy[7] * S * p.iw + xx[7] * S, 0u, SCATTER);
    var a00 = vec4<f32>(0.0);
    var a01 = vec4<f32>(0.0);
    var a02 = vec4<f32>(0.0);
    var a03 = vec4<f32>(0.0);
    var a10 = vec4<f32>(0.0);
    var a11 = vec4<f32>(0.0);
    var a12 = vec4<f32>(0.0);
    var a13 = vec4<f32>(0.0);
    var a20 = vec4<f32>(0.0);
    var a21 = vec4<f32>(0.0);
    var a22 = vec4<f32>(0.0);
    var a23 = vec4<f32>(0.0);
    var a30 = vec4<f32>(0.0);
    var a31 = vec4<f32>(0.0);
    var a32 = vec4<f32>(0.0);
    var a33 = vec4<f32>(0.0);
    var a40 = vec4<f32>(0.0);
    var a41 = vec4<f32>(0.0);
    var a42 = vec4<f32>(0.0);
    var a43 = vec4<f32>(0.0);
    var a50 = vec4<f32>(0.0);
    var a51 = vec4<f32>(0.0);
    var a52 = vec4<f32>(0.0);
    var a53 = vec4<f32>(0.0);
    var a60 = vec4<f32>(0.0);
    var a61 = vec4<f32>(0.0);
    var a62 = vec4<f32>(0.0);
    var a63 = vec4<f32>(0.0);
    var a70 = vec4<f32>(0.0);
    var a71 = vec4<f32>(0.0);
    var a72 = vec4<f32>(0.0);
    var a73 = vec4<f32>(0.0);
    // Taps: gather, every (ky, kx); scatter, the taps of this phase (ky = py + S*ty,
    // kx = px + S*tx), masked per position where the input pixel (qy - ty, qx - tx) is outside.
    var ntx = KW;
    var nty = KH;
    var step = 1u;
    if SCATTER {
        ntx = (KW - min(px, KW) + S - 1u) / S;
        nty = (KH - min(py, KH) + S - 1u) / S;
        step = S;
    }
    for (var ty = 0u; ty < nty; ty++) {
        for (var tx = 0u; tx < ntx; tx++) {
            let ky = py + ty * step;
            let kx = px + tx * step;
            var off: array<u32, 8>;
            var mk_lo = vec4<f32>(1.0);
            var mk_hi = vec4<f32>(1.0);
            if SCATTER {
                var mk: array<f32, 8>;
                { let iy = yy[0] - ty; let ix = xx[0] - tx; let ok = yy[0] >= ty && iy < p.ih && xx[0] >= tx && ix < p.iw; off[0] = base[0] + select(0u, iy * p.iw + ix, ok); mk[0] = select(0.0, 1.0, ok); }
                { let iy = yy[1] - ty; let ix = xx[1] - tx; let ok = yy[1] >= ty && iy < p.ih && xx[1] >= tx && ix < p.iw; off[1] = base[1] + select(0u, iy * p.iw + ix, ok); mk[1] = select(0.0, 1.0, ok); }
                { let iy = yy[2] - ty; let ix = xx[2] - tx; let ok = yy[2] >= ty && iy < p.ih && xx[2] >= tx && ix < p.iw; off[2] = base[2] + select(0u, iy * p.iw + ix, ok); mk[2] = select(0.0, 1.0, ok); }
                { let iy = yy[3] - ty; let ix = xx[3] - tx; let ok = yy[3] >= ty && iy < p.ih && xx[3] >= tx && ix < p.iw; off[3] = base[3] + select(0u, iy * p.iw + ix, ok); mk[3] = select(0.0, 1.0, ok); }
                { let iy = yy[4] - ty; let ix = xx[4] - tx; let ok = yy[4] >= ty && iy < p.ih && xx[4] >= tx && ix < p.iw; off[4] = base[4] + select(0u, iy * p.iw + ix, ok); mk[4] = select(0.0, 1.0, ok); }
                { let iy = yy[5] - ty; let ix = xx[5] - tx; let ok = yy[5] >= ty && iy < p.ih && xx[5] >= tx && ix < p.iw; off[5] = base[5] + select(0u, iy * p.iw + ix, ok); mk[5] = select(0.0, 1.0, ok); }
                { let iy = yy[6] - ty; let ix = xx[6] - tx; let ok = yy[6] >= ty && iy < p.ih && xx[6] >= tx && ix < p.iw; off[6] = base[6] + select(0u, iy * p.iw + ix, ok); mk[6] = select(0.0, 1.0, ok); }
                { let iy = yy[7] - ty; let ix = xx[7] - tx; let ok = yy[7] >= ty && iy < p.ih && xx[7] >= tx && ix < p.iw; off[7] = base[7] + select(0u, iy * p.iw + ix, ok); mk[7] = select(0.0, 1.0, ok); }
                mk_lo = vec4<f32>(mk[0], mk[1], mk[2], mk[3]);
                mk_hi = vec4<f32>(mk[4], mk[5], mk[6], mk[7]);
            } else {
                let t_off = ky * p.iw + kx;
                off[0] = base[0] + t_off;
                off[1] = base[1] + t_off;
                off[2] = base[2] + t_off;
                off[3] = base[3] + t_off;
                off[4] = base[4] + t_off;
                off[5] = base[5] + t_off;
                off[6] = base[6] + t_off;
                off[7] = base[7] + t_off;
            }
            var wi = (ky * KW + kx) * p.r * p.opad4 + ob4;
            var xo = 0u;
            for (var r = 0u; r < p.r; r++) {
                var xl = vec4<f32>(inp[off[0] + xo], inp[off[1] + xo], inp[off[2] + xo], inp[off[3] + xo]);
                var xh = vec4<f32>(inp[off[4] + xo], inp[off[5] + xo], inp[off[6] + xo], inp[off[7] + xo]);
                if SCATTER {
                    xl *= mk_lo;
                    xh *= mk_hi;
                }
                let w0 = wp[wi];
                a00 += xl.x * w0;
                a10 += xl.y * w0;
                a20 += xl.z * w0;
                a30 += xl.w * w0;
                a40 += xh.x * w0;
                a50 += xh.y * w0;
                a60 += xh.z * w0;
                a70 += xh.w * w0;
                if CB4 > 1u {
                    let w1 = wp[wi + 1u];
                    a01 += xl.x * w1;
                    a11 += xl.y * w1;
                    a21 += xl.z * w1;
                    a31 += xl.w * w1;
                    a41 += xh.x * w1;
                    a51 += xh.y * w1;
                    a61 += xh.z * w1;
                    a71 += xh.w * w1;
                }
                if CB4 > 2u {
                    let w2 = wp[wi + 2u];
                    a02 += xl.x * w2;
                    a12 += xl.y * w2;
                    a22 += xl.z * w2;
                    a32 += xl.w * w2;
                    a42 += xh.x * w2;
                    a52 += xh.y * w2;
                    a62 += xh.z * w2;
                    a72 += xh.w * w2;
                }
                if CB4 > 3u {
                    let w3 = wp[wi + 3u];
                    a03 += xl.x * w3;
                    a13 += xl.y * w3;
                    a23 += xl.z * w3;
                    a33 += xl.w * w3;
                    a43 += xh.x * w3;
                    a53 += xh.y * w3;
                    a63 += xh.z * w3;
                    a73 += xh.w * w3;
                }
                wi += p.opad4;
                xo += ihw;
            }
        }
    }
    // Store: bias, activation, (accumulate).
    var ob: array<u32, 8>;
    ob[0] = img[0] * p.o * ohw + select(yy[0] * p.ow + xx[0], (py + S * yy[0]) * p.ow + px + S * xx[0], SCATTER);
    ob[1] = img[1] * p.o * ohw + select(yy[1] * p.ow + xx[1], (py + S * yy[1]) * p.ow + px + S * xx[1], SCATTER);
    ob[2] = img[2] * p.o * ohw + select(yy[2] * p.ow + xx[2], (py + S * yy[2]) * p.ow + px + S * xx[2], SCATTER);
    ob[3] = img[3] * p.o * ohw + select(yy[3] * p.ow + xx[3], (py + S * yy[3]) * p.ow + px + S * xx[3], SCATTER);
    ob[4] = img[4] * p.o * ohw + select(yy[4] * p.ow + xx[4], (py + S * yy[4]) * p.ow + px + S * xx[4], SCATTER);
    ob[5] = img[5] * p.o * ohw + select(yy[5] * p.ow + xx[5], (py + S * yy[5]) * p.ow + px + S * xx[5], SCATTER);
    ob[6] = img[6] * p.o * ohw + select(yy[6] * p.ow + xx[6], (py + S * yy[6]) * p.ow + px + S * xx[6], SCATTER);
    ob[7] = img[7] * p.o * ohw + select(yy[7] * p.ow + xx[7], (py + S * yy[7]) * p.ow + px + S * xx[7], SCATTER);
    let o0 = ob4 * 4u;
    let valid = mt - m0;
    {
        let o = o0 + 0u;
        let bv = load_bias4(o);
        { store4(ob[0], o, a00 + bv); }
        if valid > 1u { store4(ob[1], o, a10 + bv); }
        if valid > 2u { store4(ob[2], o, a20 + bv); }
        if valid > 3u { store4(ob[3], o, a30 + bv); }
        if valid > 4u { store4(ob[4], o, a40 + bv); }
        if valid > 5u { store4(ob[5], o, a50 + bv); }
        if valid > 6u { store4(ob[6], o, a60 + bv); }
        if valid > 7u { store4(ob[7], o, a70 + bv); }
    }
    if CB4 > 1u {
        let o = o0 + 4u;
        let bv = load_bias4(o);
        { store4(ob[0], o, a01 + bv); }
        if valid > 1u { store4(ob[1], o, a11 + bv); }
        if valid > 2u { store4(ob[2], o, a21 + bv); }
        if valid > 3u { store4(ob[3], o, a31 + bv); }
        if valid > 4u { store4(ob[4], o, a41 + bv); }
        if valid > 5u { store4(ob[5], o, a51 + bv); }
        if valid > 6u { store4(ob[6], o, a61 + bv); }
        if valid > 7u { store4(ob[7], o, a71 + bv); }
    }
    if CB4 > 2u {
        let o = o0 + 8u;
        let bv = load_bias4(o);
        { store4(ob[0], o, a02 + bv); }
        if valid > 1u { store4(ob[1], o, a12 + bv); }
        if valid > 2u { store4(ob[2], o, a22 + bv); }
        if valid > 3u { store4(ob[3], o, a32 + bv); }
        if valid > 4u { store4(ob[4], o, a42 + bv); }
        if valid > 5u { store4(ob[5], o, a52 + bv); }
        if valid > 6u { store4(ob[6], o, a62 + bv); }
        if valid > 7u { store4(ob[7], o, a72 + bv); }
    }
    if CB4 > 3u {
        let o = o0 + 12u;
        let bv = load_bias4(o);
        { store4(ob[0], o, a03 + bv); }
        if valid > 1u { store4(ob[1], o, a13 + bv); }
        if valid > 2u { store4(ob[2], o, a23 + bv); }
        if valid > 3u { store4(ob[3], o, a33 + bv); }
        if valid > 4u { store4(ob[4], o, a43 + bv); }
        if valid > 5u { store4(ob[5], o, a53 + bv); }
        if valid > 6u { store4(ob[6], o, a63 + bv); }
        if valid > 7u { store4(ob[7], o, a73 + bv); }
    }
}

@compute @workgroup_size(64)
fn wgrad(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
         @builtin(local_invocation_id) lid: vec3<u32>) {
    let split = fold_yz(wid, nwg);
    let ctiles = (p.c + 7u) / 8u;
    let tile = wid.x * 64u + lid.x;
    if tile >= ctiles * ((p.a + 15u) / 16u) { return; }
    let a0 = (tile / ctiles) * 16u;
    let c0 = (tile % ctiles) * 8u;
    let shw = p.ih * p.iw;
    let lhw = p.oh * p.ow;
    let khw = KH * KW;
    // Rows: 16 channels of the small image (clamped); columns: 8 (channel, ky, kx) of the large one.
    var ao: array<u32, 16>;
    ao[0] = min(a0 + 0u, p.a - 1u) * shw;
    ao[1] = min(a0 + 1u, p.a - 1u) * shw;
    ao[2] = min(a0 + 2u, p.a - 1u) * shw;
    ao[3] = min(a0 + 3u, p.a - 1u) * shw;
    ao[4] = min(a0 + 4u, p.a - 1u) * shw;
    ao[5] = min(a0 + 5u, p.a - 1u) * shw;
    ao[6] = min(a0 + 6u, p.a - 1u) * shw;
    ao[7] = min(a0 + 7u, p.a - 1u) * shw;
    ao[8] = min(a0 + 8u, p.a - 1u) * shw;
    ao[9] = min(a0 + 9u, p.a - 1u) * shw;
    ao[10] = min(a0 + 10u, p.a - 1u) * shw;
    ao[11] = min(a0 + 11u, p.a - 1u) * shw;
    ao[12] = min(a0 + 12u, p.a - 1u) * shw;
    ao[13] = min(a0 + 13u, p.a - 1u) * shw;
    ao[14] = min(a0 + 14u, p.a - 1u) * shw;
    ao[15] = min(a0 + 15u, p.a - 1u) * shw;
    var co: array<u32, 8>;
    { let c = min(c0 + 0u, p.c - 1u); let b = c / khw; let k = c - b * khw; let ky = k / KW; co[0] = b * lhw + ky * p.ow + (k - ky * KW); }
    { let c = min(c0 + 1u, p.c - 1u); let b = c / khw; let k = c - b * khw; let ky = k / KW; co[1] = b * lhw + ky * p.ow + (k - ky * KW); }
    { let c = min(c0 + 2u, p.c - 1u); let b = c / khw; let k = c - b * khw; let ky = k / KW; co[2] = b * lhw + ky * p.ow + (k - ky * KW); }
    { let c = min(c0 + 3u, p.c - 1u); let b = c / khw; let k = c - b * khw; let ky = k / KW; co[3] = b * lhw + ky * p.ow + (k - ky * KW); }
    { let c = min(c0 + 4u, p.c - 1u); let b = c / khw; let k = c - b * khw; let ky = k / KW; co[4] = b * lhw + ky * p.ow + (k - ky * KW); }
    { let c = min(c0 + 5u, p.c - 1u); let b = c / khw; let k = c - b * khw; let ky = k / KW; co[5] = b * lhw + ky * p.ow + (k - ky * KW); }
    { let c = min(c0 + 6u, p.c - 1u); let b = c / khw; let k = c - b * khw; let ky = k / KW; co[6] = b * lhw + ky * p.ow + (k - ky * KW); }
    { let c = min(c0 + 7u, p.c - 1u); let b = c / khw; let k = c - b * khw; let ky = k / KW; co[7] = b * lhw + ky * p.ow + (k - ky * KW); }
    var a00 = vec4<f32>(0.0);
    var a01 = vec4<f32>(0.0);
    var a02 = vec4<f32>(0.0);
    var a03 = vec4<f32>(0.0);
    var a10 = vec4<f32>(0.0);
    var a11 = vec4<f32>(0.0);
    var a12 = vec4<f32>(0.0);
    var a13 = vec4<f32>(0.0);
    var a20 = vec4<f32>(0.0);
    var a21 = vec4<f32>(0.0);
    var a22 = vec4<f32>(0.0);
    var a23 = vec4<f32>(0.0);
    var a30 = vec4<f32>(0.0);
    var a31 = vec4<f32>(0.0);
    var a32 = vec4<f32>(0.0);
    var a33 = vec4<f32>(0.0);
    var a40 = vec4<f32>(0.0);
    var a41 = vec4<f32>(0.0);
    var a42 = vec4<f32>(0.0);
    var a43 = vec4<f32>(0.0);
    var a50 = vec4<f32>(0.0);
    var a51 = vec4<f32>(0.0);
    var a52 = vec4<f32>(0.0);
    var a53 = vec4<f32>(0.0);
    var a60 = vec4<f32>(0.0);
    var a61 = vec4<f32>(0.0);
    var a62 = vec4<f32>(0.0);
    var a63 = vec4<f32>(0.0);
    var a70 = vec4<f32>(0.0);
    var a71 = vec4<f32>(0.0);
    var a72 = vec4<f32>(0.0);
    var a73 = vec4<f32>(0.0);
    let n0 = split * p.imgs;
    let n1 = min(n0 + p.imgs, p.n);
    for (var n = n0; n < n1; n++) {
        var zs = n * p.a * shw;
        let zl0 = n * p.b * lhw;
        for (var y = 0u; y < p.ih; y++) {
            var zl = zl0 + y * S * p.ow;
            for (var x = 0u; x < p.iw; x++) {
                let s0 = vec4<f32>(inp[zs + ao[0]], inp[zs + ao[1]], inp[zs + ao[2]], inp[zs + ao[3]]);
                let s1 = vec4<f32>(inp[zs + ao[4]], inp[zs + ao[5]], inp[zs + ao[6]], inp[zs + ao[7]]);
                let s2 = vec4<f32>(inp[zs + ao[8]], inp[zs + ao[9]], inp[zs + ao[10]], inp[zs + ao[11]]);
                let s3 = vec4<f32>(inp[zs + ao[12]], inp[zs + ao[13]], inp[zs + ao[14]], inp[zs + ao[15]]);
                let l_lo = vec4<f32>(inp2[zl + co[0]], inp2[zl + co[1]], inp2[zl + co[2]], inp2[zl + co[3]]);
                let l_hi = vec4<f32>(inp2[zl + co[4]], inp2[zl + co[5]], inp2[zl + co[6]], inp2[zl + co[7]]);
                a00 += l_lo.x * s0;
                a01 += l_lo.x * s1;
                a02 += l_lo.x * s2;
                a03 += l_lo.x * s3;
                a10 += l_lo.y * s0;
                a11 += l_lo.y * s1;
                a12 += l_lo.y * s2;
                a13 += l_lo.y * s3;
                a20 += l_lo.z * s0;
                a21 += l_lo.z * s1;
                a22 += l_lo.z * s2;
                a23 += l_lo.z * s3;
                a30 += l_lo.w * s0;
                a31 += l_lo.w * s1;
                a32 += l_lo.w * s2;
                a33 += l_lo.w * s3;
                a40 += l_hi.x * s0;
                a41 += l_hi.x * s1;
                a42 += l_hi.x * s2;
                a43 += l_hi.x * s3;
                a50 += l_hi.y * s0;
                a51 += l_hi.y * s1;
                a52 += l_hi.y * s2;
                a53 += l_hi.y * s3;
                a60 += l_hi.z * s0;
                a61 += l_hi.z * s1;
                a62 += l_hi.z * s2;
                a63 += l_hi.z * s3;
                a70 += l_hi.w * s0;
                a71 += l_hi.w * s1;
                a72 += l_hi.w * s2;
                a73 += l_hi.w * s3;
                zs += 1u;
                zl += S;
            }
        }
    }
    // partial[split][a][c]
    let out0 = split * p.a * p.c;
    let na = min(p.a - a0, 16u);
    let nc = min(p.c - c0, 8u);
    {
        store_col(out0 + (a0 + 0u) * p.c + c0 + 0u, 0u, na, a00);
        store_col(out0 + (a0 + 4u) * p.c + c0 + 0u, 4u, na, a01);
        store_col(out0 + (a0 + 8u) * p.c + c0 + 0u, 8u, na, a02);
        store_col(out0 + (a0 + 12u) * p.c + c0 + 0u, 12u, na, a03);
    }
    if nc > 1u {
        store_col(out0 + (a0 + 0u) * p.c + c0 + 1u, 0u, na, a10);
        store_col(out0 + (a0 + 4u) * p.c + c0 + 1u, 4u, na, a11);
        store_col(out0 + (a0 + 8u) * p.c + c0 + 1u, 8u, na, a12);
        store_col(out0 + (a0 + 12u) * p.c + c0 + 1u, 12u, na, a13);
    }
    if nc > 2u {
        store_col(out0 + (a0 + 0u) * p.c + c0 + 2u, 0u, na, a20);
        store_col(out0 + (a0 + 4u) * p.c + c0 + 2u, 4u, na, a21);
        store_col(out0 + (a0 + 8u) * p.c + c0 + 2u, 8u, na, a22);
        store_col(out0 + (a0 + 12u) * p.c + c0 + 2u, 12u, na, a23);
    }
    if nc > 3u {
        store_col(out0 + (a0 + 0u) * p.c + c0 + 3u, 0u, na, a30);
        store_col(out0 + (a0 + 4u) * p.c + c0 + 3u, 4u, na, a31);
        store_col(out0 + (a0 + 8u) * p.c + c0 + 3u, 8u, na, a32);
        store_col(out0 + (a0 + 12u) * p.c + c0 + 3u, 12u, na, a33);
    }
    if nc > 4u {
        store_col(out0 + (a0 + 0u) * p.c + c0 + 4u, 0u, na, a40);
        store_col(out0 + (a0 + 4u) * p.c + c0 + 4u, 4u, na, a41);
        store_col(out0 + (a0 + 8u) * p.c + c0 + 4u, 8u, na, a42);
        store_col(out0 + (a0 + 12u) * p.c + c0 + 4u, 12u, na, a43);
    }
    if nc > 5u {
        store_col(out0 + (a0 + 0u) * p.c + c0 + 5u, 0u, na, a50);
        store_col(out0 + (a0 + 4u) * p.c + c0 + 5u, 4u, na, a51);
        store_col(out0 + (a0 + 8u) * p.c + c0 + 5u, 8u, na, a52);
        store_col(out0 + (a0 + 12u) * p.c + c0 + 5u, 12u, na, a53);
    }
    if nc > 6u {
        store_col(out0 + (a0 + 0u) * p.c + c0 + 6u, 0u, na, a60);
        store_col(out0 + (a0 + 4u) * p.c + c0 + 6u, 4u, na, a61);
        store_col(out0 + (a0 + 8u) * p.c + c0 + 6u, 8u, na, a62);
        store_col(out0 + (a0 + 12u) * p.c + c0 + 6u, 12u, na, a63);
    }
    if nc > 7u {
        store_col(out0 + (a0 + 0u) * p.c + c0 + 7u, 0u, na, a70);
        store_col(out0 + (a0 + 4u) * p.c + c0 + 7u, 4u, na, a71);
        store_col(out0 + (a0 + 8u) * p.c + c0 + 7u, 8u, na, a72);
        store_col(out0 + (a0 + 12u) * p.c + c0 + 7u, 12u, na, a73);
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
    if ACC { out[i] += s; } else { out[i] = s; }
}
