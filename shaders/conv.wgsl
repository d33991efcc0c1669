// conv.wgsl: experimental

struct Params {
    n: u32,
    r: u32,
    o: u32,
    ih: u32,
    iw: u32,
    oh: u32,
    ow: u32,
    ws_o: u32,
    ws_r: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> inp: array<f32>;
@group(0) @binding(2) var<storage, read> w: array<f32>;
@group(0) @binding(3) var<storage, read> bias: array<f32>;
@group(0) @binding(4) var<storage, read_write> out: array<f32>;

override KH: u32 = 4u;
override KW: u32 = 4u;
override S: u32 = 2u;
override HAS_BIAS: bool = false;
override ACC: bool = false;
override ACT: u32 = 0u;

const WGX: u32 = 64u;

@compute @workgroup_size(64)
fn conv_fwd(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
            @builtin(local_invocation_id) lid: vec3<u32>) {
    let ob = wid.x * 4u;
    let m0 = fold_yz(wid, nwg) * (WGX * 4u) + lid.x;
    let ohw = p.oh * p.ow;
    let ihw = p.ih * p.iw;
    let mtot = p.n * ohw;
    if m0 >= mtot { return; }
    var base = vec4<u32>(0u);
    var obase = vec4<u32>(0u);
    for (var i = 0u; i < 4u; i++) {
        let m = min(m0 + i * WGX, mtot - 1u);
        let n = m / ohw;
        let rem = m - n * ohw;
        let oy = rem / p.ow;
        let ox = rem - oy * p.ow;
        base[i] = n * p.r * ihw + oy * S * p.iw + ox * S;
        obase[i] = n * p.o * ohw + rem;
    }
    let oc = min(vec4<u32>(ob, ob + 1u, ob + 2u, ob + 3u), vec4<u32>(p.o - 1u));
    let wb = oc * p.ws_o;
    var acc0 = vec4<f32>(0.0);
    var acc1 = vec4<f32>(0.0);
    var acc2 = vec4<f32>(0.0);
    var acc3 = vec4<f32>(0.0);
    for (var r = 0u; r < p.r; r++) {
        let xr = r * ihw;
        let wr = r * p.ws_r;
        for (var ky = 0u; ky < KH; ky++) {
            for (var kx = 0u; kx < KW; kx++) {
                let off = xr + ky * p.iw + kx;
                let xv = vec4<f32>(inp[base.x + off], inp[base.y + off], inp[base.z + off], inp[base.w + off]);
                let k = wr + ky * KW + kx;
                let wv = vec4<f32>(w[wb.x + k], w[wb.y + k], w[wb.z + k], w[wb.w + k]);
                acc0 += xv.x * wv;
                acc1 += xv.y * wv;
                acc2 += xv.z * wv;
                acc3 += xv.w * wv;
            }
        }
    }
    var bv = vec4<f32>(0.0);
    if HAS_BIAS { bv = vec4<f32>(bias[oc.x], bias[oc.y], bias[oc.z], bias[oc.w]); }
    let rows = array<vec4<f32>, 4>(acc0 + bv, acc1 + bv, acc2 + bv, acc3 + bv);
    for (var i = 0u; i < 4u; i++) {
        if m0 + i * WGX >= mtot { break; }
        for (var j = 0u; j < 4u; j++) {
            if ob + j >= p.o { break; }
            let idx = obase[i] + (ob + j) * ohw;
            let v = activate(rows[i][j], ACT);
            if ACC { out[idx] += v; } else { out[idx] = v; }
        }
    }
}

@group(0) @binding(5) var<storage, read> wp: array<vec4<f32>>;
@group(0) @binding(6) var<storage, read_write> wp_out: array<vec4<f32>>;


// wp[((r*KH + ky)*KW + kx)*opad4 + o4] = w[o*ws_o + r*ws_r + ky*KW + kx] for o in 4*o4..
@compute @workgroup_size(WG)
fn pack_w(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
          @builtin(local_invocation_id) lid: vec3<u32>) {
    let i = flat_id(wid, nwg, lid);
    if i >= p.n { return; }
    let o4 = i % p.o;
    let rk = i / p.o;
    let kk = rk % (KH * KW);
    let r = rk / (KH * KW);
    var v = vec4<f32>(0.0);
    for (var c = 0u; c < 4u; c++) {
        let o = o4 * 4u + c;
        if o < p.ws_o { v[c] = inp[o * p.ih + r * p.iw + kk]; }
    }
    wp_out[i] = v;
}



fn st1(idx: u32, o: u32, v: f32) {
    if o >= p.o { return; }
    let y = activate(v, ACT);
    let ohw = p.oh * p.ow;
    if ACC { out[idx + o * ohw] += y; } else { out[idx + o * ohw] = y; }
}
fn st8(idx: u32, o: u32, b0: vec4<f32>, b1: vec4<f32>, a0: vec4<f32>, a1: vec4<f32>) {
    let v0 = a0 + b0;
    let v1 = a1 + b1;
    st1(idx, o, v0.x); st1(idx, o + 1u, v0.y); st1(idx, o + 2u, v0.z); st1(idx, o + 3u, v0.w);
    st1(idx, o + 4u, v1.x); st1(idx, o + 5u, v1.y); st1(idx, o + 6u, v1.z); st1(idx, o + 7u, v1.w);
}
fn load_bias(o: u32) -> f32 {
    if HAS_BIAS { return bias[min(o, p.o - 1u)]; }
    return 0.0;
}



fn st4(idx: u32, o: u32, b: vec4<f32>, a: vec4<f32>) {
    let v = a + b;
    st1(idx, o, v.x); st1(idx, o + 1u, v.y); st1(idx, o + 2u, v.z); st1(idx, o + 3u, v.w);
}


@compute @workgroup_size(64)
fn v_p8c4s0_8(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
            @builtin(local_invocation_id) lid: vec3<u32>) {
    let ob4 = wid.x * 4u;
    let nrb = (p.ow + 8u - 1u) / 8u;
    let total = p.n * p.oh * nrb;
    let blk = fold_yz(wid, nwg) * 64u + lid.x;
    if blk >= total { return; }
    let n = blk / (p.oh * nrb);
    let rem = blk - n * p.oh * nrb;
    let oy = rem / nrb;
    let ox0 = (rem - oy * nrb) * 8u;
    let npos = min(p.ow - ox0, 8u);
    let jmax = (npos - 1u) * S + KW - 1u;
    let ihw = p.ih * p.iw;
    let opad4 = p.ws_o;
    var a0_0 = vec4<f32>(0.0);
    var a0_1 = vec4<f32>(0.0);
    var a0_2 = vec4<f32>(0.0);
    var a0_3 = vec4<f32>(0.0);
    var a1_0 = vec4<f32>(0.0);
    var a1_1 = vec4<f32>(0.0);
    var a1_2 = vec4<f32>(0.0);
    var a1_3 = vec4<f32>(0.0);
    var a2_0 = vec4<f32>(0.0);
    var a2_1 = vec4<f32>(0.0);
    var a2_2 = vec4<f32>(0.0);
    var a2_3 = vec4<f32>(0.0);
    var a3_0 = vec4<f32>(0.0);
    var a3_1 = vec4<f32>(0.0);
    var a3_2 = vec4<f32>(0.0);
    var a3_3 = vec4<f32>(0.0);
    var a4_0 = vec4<f32>(0.0);
    var a4_1 = vec4<f32>(0.0);
    var a4_2 = vec4<f32>(0.0);
    var a4_3 = vec4<f32>(0.0);
    var a5_0 = vec4<f32>(0.0);
    var a5_1 = vec4<f32>(0.0);
    var a5_2 = vec4<f32>(0.0);
    var a5_3 = vec4<f32>(0.0);
    var a6_0 = vec4<f32>(0.0);
    var a6_1 = vec4<f32>(0.0);
    var a6_2 = vec4<f32>(0.0);
    var a6_3 = vec4<f32>(0.0);
    var a7_0 = vec4<f32>(0.0);
    var a7_1 = vec4<f32>(0.0);
    var a7_2 = vec4<f32>(0.0);
    var a7_3 = vec4<f32>(0.0);
    var xrow = n * p.r * ihw + oy * S * p.iw + ox0 * S;
    var wrow = ob4;

    for (var r = 0u; r < p.r; r++) {
        for (var ky = 0u; ky < KH; ky++) {
            for (var kx = 0u; kx < KW; kx++) {
                    let w0 = wp[wrow + 0u];
                    let w1 = wp[wrow + 1u];
                    let w2 = wp[wrow + 2u];
                    let w3 = wp[wrow + 3u];
                    let x0 = inp[xrow + min(kx + 0u * S, jmax)];
                    let x1 = inp[xrow + min(kx + 1u * S, jmax)];
                    let x2 = inp[xrow + min(kx + 2u * S, jmax)];
                    let x3 = inp[xrow + min(kx + 3u * S, jmax)];
                    let x4 = inp[xrow + min(kx + 4u * S, jmax)];
                    let x5 = inp[xrow + min(kx + 5u * S, jmax)];
                    let x6 = inp[xrow + min(kx + 6u * S, jmax)];
                    let x7 = inp[xrow + min(kx + 7u * S, jmax)];
                    a0_0 += x0 * w0;
                    a0_1 += x0 * w1;
                    a0_2 += x0 * w2;
                    a0_3 += x0 * w3;
                    a1_0 += x1 * w0;
                    a1_1 += x1 * w1;
                    a1_2 += x1 * w2;
                    a1_3 += x1 * w3;
                    a2_0 += x2 * w0;
                    a2_1 += x2 * w1;
                    a2_2 += x2 * w2;
                    a2_3 += x2 * w3;
                    a3_0 += x3 * w0;
                    a3_1 += x3 * w1;
                    a3_2 += x3 * w2;
                    a3_3 += x3 * w3;
                    a4_0 += x4 * w0;
                    a4_1 += x4 * w1;
                    a4_2 += x4 * w2;
                    a4_3 += x4 * w3;
                    a5_0 += x5 * w0;
                    a5_1 += x5 * w1;
                    a5_2 += x5 * w2;
                    a5_3 += x5 * w3;
                    a6_0 += x6 * w0;
                    a6_1 += x6 * w1;
                    a6_2 += x6 * w2;
                    a6_3 += x6 * w3;
                    a7_0 += x7 * w0;
                    a7_1 += x7 * w1;
                    a7_2 += x7 * w2;
                    a7_3 += x7 * w3;
                    wrow += opad4;
            }
            xrow += p.iw;
        }
        xrow += ihw - KH * p.iw;
    }
    let o0 = ob4 * 4u;
    let bv0 = vec4<f32>(load_bias(o0 + 0u), load_bias(o0 + 1u), load_bias(o0 + 2u), load_bias(o0 + 3u));
    let bv1 = vec4<f32>(load_bias(o0 + 4u), load_bias(o0 + 5u), load_bias(o0 + 6u), load_bias(o0 + 7u));
    let bv2 = vec4<f32>(load_bias(o0 + 8u), load_bias(o0 + 9u), load_bias(o0 + 10u), load_bias(o0 + 11u));
    let bv3 = vec4<f32>(load_bias(o0 + 12u), load_bias(o0 + 13u), load_bias(o0 + 14u), load_bias(o0 + 15u));
    let obase = n * p.o * p.oh * p.ow + oy * p.ow + ox0;
    if 0u < npos { st4(obase + 0u, o0 + 0u, bv0, a0_0); }
    if 0u < npos { st4(obase + 0u, o0 + 4u, bv1, a0_1); }
    if 0u < npos { st4(obase + 0u, o0 + 8u, bv2, a0_2); }
    if 0u < npos { st4(obase + 0u, o0 + 12u, bv3, a0_3); }
    if 1u < npos { st4(obase + 1u, o0 + 0u, bv0, a1_0); }
    if 1u < npos { st4(obase + 1u, o0 + 4u, bv1, a1_1); }
    if 1u < npos { st4(obase + 1u, o0 + 8u, bv2, a1_2); }
    if 1u < npos { st4(obase + 1u, o0 + 12u, bv3, a1_3); }
    if 2u < npos { st4(obase + 2u, o0 + 0u, bv0, a2_0); }
    if 2u < npos { st4(obase + 2u, o0 + 4u, bv1, a2_1); }
    if 2u < npos { st4(obase + 2u, o0 + 8u, bv2, a2_2); }
    if 2u < npos { st4(obase + 2u, o0 + 12u, bv3, a2_3); }
    if 3u < npos { st4(obase + 3u, o0 + 0u, bv0, a3_0); }
    if 3u < npos { st4(obase + 3u, o0 + 4u, bv1, a3_1); }
    if 3u < npos { st4(obase + 3u, o0 + 8u, bv2, a3_2); }
    if 3u < npos { st4(obase + 3u, o0 + 12u, bv3, a3_3); }
    if 4u < npos { st4(obase + 4u, o0 + 0u, bv0, a4_0); }
    if 4u < npos { st4(obase + 4u, o0 + 4u, bv1, a4_1); }
    if 4u < npos { st4(obase + 4u, o0 + 8u, bv2, a4_2); }
    if 4u < npos { st4(obase + 4u, o0 + 12u, bv3, a4_3); }
    if 5u < npos { st4(obase + 5u, o0 + 0u, bv0, a5_0); }
    if 5u < npos { st4(obase + 5u, o0 + 4u, bv1, a5_1); }
    if 5u < npos { st4(obase + 5u, o0 + 8u, bv2, a5_2); }
    if 5u < npos { st4(obase + 5u, o0 + 12u, bv3, a5_3); }
    if 6u < npos { st4(obase + 6u, o0 + 0u, bv0, a6_0); }
    if 6u < npos { st4(obase + 6u, o0 + 4u, bv1, a6_1); }
    if 6u < npos { st4(obase + 6u, o0 + 8u, bv2, a6_2); }
    if 6u < npos { st4(obase + 6u, o0 + 12u, bv3, a6_3); }
    if 7u < npos { st4(obase + 7u, o0 + 0u, bv0, a7_0); }
    if 7u < npos { st4(obase + 7u, o0 + 4u, bv1, a7_1); }
    if 7u < npos { st4(obase + 7u, o0 + 8u, bv2, a7_2); }
    if 7u < npos { st4(obase + 7u, o0 + 12u, bv3, a7_3); }
}


@compute @workgroup_size(64)
fn gv_p8c4_8(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
            @builtin(local_invocation_id) lid: vec3<u32>) {
    let ob4 = wid.x * 4u;
    let ohw = p.oh * p.ow;
    let mt = p.n * ohw;
    let m0 = (fold_yz(wid, nwg) * 64u + lid.x) * 8u;
    if m0 >= mt { return; }
    let ihw = p.ih * p.iw;
    let opad4 = p.ws_o;
    let mm0 = min(m0 + 0u, mt - 1u); let n0 = mm0 / ohw; let q0 = mm0 - n0 * ohw; let y0 = q0 / p.ow; let xo0 = q0 - y0 * p.ow;
    let off0 = n0 * p.r * ihw + y0 * S * p.iw + xo0 * S; let obs0 = n0 * p.o * ohw + q0;
    let mm1 = min(m0 + 1u, mt - 1u); let n1 = mm1 / ohw; let q1 = mm1 - n1 * ohw; let y1 = q1 / p.ow; let xo1 = q1 - y1 * p.ow;
    let off1 = n1 * p.r * ihw + y1 * S * p.iw + xo1 * S; let obs1 = n1 * p.o * ohw + q1;
    let mm2 = min(m0 + 2u, mt - 1u); let n2 = mm2 / ohw; let q2 = mm2 - n2 * ohw; let y2 = q2 / p.ow; let xo2 = q2 - y2 * p.ow;
    let off2 = n2 * p.r * ihw + y2 * S * p.iw + xo2 * S; let obs2 = n2 * p.o * ohw + q2;
    let mm3 = min(m0 + 3u, mt - 1u); let n3 = mm3 / ohw; let q3 = mm3 - n3 * ohw; let y3 = q3 / p.ow; let xo3 = q3 - y3 * p.ow;
    let off3 = n3 * p.r * ihw + y3 * S * p.iw + xo3 * S; let obs3 = n3 * p.o * ohw + q3;
    let mm4 = min(m0 + 4u, mt - 1u); let n4 = mm4 / ohw; let q4 = mm4 - n4 * ohw; let y4 = q4 / p.ow; let xo4 = q4 - y4 * p.ow;
    let off4 = n4 * p.r * ihw + y4 * S * p.iw + xo4 * S; let obs4 = n4 * p.o * ohw + q4;
    let mm5 = min(m0 + 5u, mt - 1u); let n5 = mm5 / ohw; let q5 = mm5 - n5 * ohw; let y5 = q5 / p.ow; let xo5 = q5 - y5 * p.ow;
    let off5 = n5 * p.r * ihw + y5 * S * p.iw + xo5 * S; let obs5 = n5 * p.o * ohw + q5;
    let mm6 = min(m0 + 6u, mt - 1u); let n6 = mm6 / ohw; let q6 = mm6 - n6 * ohw; let y6 = q6 / p.ow; let xo6 = q6 - y6 * p.ow;
    let off6 = n6 * p.r * ihw + y6 * S * p.iw + xo6 * S; let obs6 = n6 * p.o * ohw + q6;
    let mm7 = min(m0 + 7u, mt - 1u); let n7 = mm7 / ohw; let q7 = mm7 - n7 * ohw; let y7 = q7 / p.ow; let xo7 = q7 - y7 * p.ow;
    let off7 = n7 * p.r * ihw + y7 * S * p.iw + xo7 * S; let obs7 = n7 * p.o * ohw + q7;
    var a0_0 = vec4<f32>(0.0);
    var a0_1 = vec4<f32>(0.0);
    var a0_2 = vec4<f32>(0.0);
    var a0_3 = vec4<f32>(0.0);
    var a1_0 = vec4<f32>(0.0);
    var a1_1 = vec4<f32>(0.0);
    var a1_2 = vec4<f32>(0.0);
    var a1_3 = vec4<f32>(0.0);
    var a2_0 = vec4<f32>(0.0);
    var a2_1 = vec4<f32>(0.0);
    var a2_2 = vec4<f32>(0.0);
    var a2_3 = vec4<f32>(0.0);
    var a3_0 = vec4<f32>(0.0);
    var a3_1 = vec4<f32>(0.0);
    var a3_2 = vec4<f32>(0.0);
    var a3_3 = vec4<f32>(0.0);
    var a4_0 = vec4<f32>(0.0);
    var a4_1 = vec4<f32>(0.0);
    var a4_2 = vec4<f32>(0.0);
    var a4_3 = vec4<f32>(0.0);
    var a5_0 = vec4<f32>(0.0);
    var a5_1 = vec4<f32>(0.0);
    var a5_2 = vec4<f32>(0.0);
    var a5_3 = vec4<f32>(0.0);
    var a6_0 = vec4<f32>(0.0);
    var a6_1 = vec4<f32>(0.0);
    var a6_2 = vec4<f32>(0.0);
    var a6_3 = vec4<f32>(0.0);
    var a7_0 = vec4<f32>(0.0);
    var a7_1 = vec4<f32>(0.0);
    var a7_2 = vec4<f32>(0.0);
    var a7_3 = vec4<f32>(0.0);
    var wrow = ob4;
    for (var r = 0u; r < p.r; r++) {
        for (var ky = 0u; ky < KH; ky++) {
            for (var kx = 0u; kx < KW; kx++) {
                    let rk = r * ihw + ky * p.iw + kx;
                    let w0 = wp[wrow + 0u];
                    let w1 = wp[wrow + 1u];
                    let w2 = wp[wrow + 2u];
                    let w3 = wp[wrow + 3u];
                    let x0 = inp[off0 + rk];
                    let x1 = inp[off1 + rk];
                    let x2 = inp[off2 + rk];
                    let x3 = inp[off3 + rk];
                    let x4 = inp[off4 + rk];
                    let x5 = inp[off5 + rk];
                    let x6 = inp[off6 + rk];
                    let x7 = inp[off7 + rk];
                    a0_0 += x0 * w0;
                    a0_1 += x0 * w1;
                    a0_2 += x0 * w2;
                    a0_3 += x0 * w3;
                    a1_0 += x1 * w0;
                    a1_1 += x1 * w1;
                    a1_2 += x1 * w2;
                    a1_3 += x1 * w3;
                    a2_0 += x2 * w0;
                    a2_1 += x2 * w1;
                    a2_2 += x2 * w2;
                    a2_3 += x2 * w3;
                    a3_0 += x3 * w0;
                    a3_1 += x3 * w1;
                    a3_2 += x3 * w2;
                    a3_3 += x3 * w3;
                    a4_0 += x4 * w0;
                    a4_1 += x4 * w1;
                    a4_2 += x4 * w2;
                    a4_3 += x4 * w3;
                    a5_0 += x5 * w0;
                    a5_1 += x5 * w1;
                    a5_2 += x5 * w2;
                    a5_3 += x5 * w3;
                    a6_0 += x6 * w0;
                    a6_1 += x6 * w1;
                    a6_2 += x6 * w2;
                    a6_3 += x6 * w3;
                    a7_0 += x7 * w0;
                    a7_1 += x7 * w1;
                    a7_2 += x7 * w2;
                    a7_3 += x7 * w3;
                    wrow += opad4;
            }
        }
    }
    let o0 = ob4 * 4u;
    let bv0 = vec4<f32>(load_bias(o0 + 0u), load_bias(o0 + 1u), load_bias(o0 + 2u), load_bias(o0 + 3u));
    let bv1 = vec4<f32>(load_bias(o0 + 4u), load_bias(o0 + 5u), load_bias(o0 + 6u), load_bias(o0 + 7u));
    let bv2 = vec4<f32>(load_bias(o0 + 8u), load_bias(o0 + 9u), load_bias(o0 + 10u), load_bias(o0 + 11u));
    let bv3 = vec4<f32>(load_bias(o0 + 12u), load_bias(o0 + 13u), load_bias(o0 + 14u), load_bias(o0 + 15u));
    if m0 + 0u < mt { st4(obs0, o0 + 0u, bv0, a0_0); }
    if m0 + 0u < mt { st4(obs0, o0 + 4u, bv1, a0_1); }
    if m0 + 0u < mt { st4(obs0, o0 + 8u, bv2, a0_2); }
    if m0 + 0u < mt { st4(obs0, o0 + 12u, bv3, a0_3); }
    if m0 + 1u < mt { st4(obs1, o0 + 0u, bv0, a1_0); }
    if m0 + 1u < mt { st4(obs1, o0 + 4u, bv1, a1_1); }
    if m0 + 1u < mt { st4(obs1, o0 + 8u, bv2, a1_2); }
    if m0 + 1u < mt { st4(obs1, o0 + 12u, bv3, a1_3); }
    if m0 + 2u < mt { st4(obs2, o0 + 0u, bv0, a2_0); }
    if m0 + 2u < mt { st4(obs2, o0 + 4u, bv1, a2_1); }
    if m0 + 2u < mt { st4(obs2, o0 + 8u, bv2, a2_2); }
    if m0 + 2u < mt { st4(obs2, o0 + 12u, bv3, a2_3); }
    if m0 + 3u < mt { st4(obs3, o0 + 0u, bv0, a3_0); }
    if m0 + 3u < mt { st4(obs3, o0 + 4u, bv1, a3_1); }
    if m0 + 3u < mt { st4(obs3, o0 + 8u, bv2, a3_2); }
    if m0 + 3u < mt { st4(obs3, o0 + 12u, bv3, a3_3); }
    if m0 + 4u < mt { st4(obs4, o0 + 0u, bv0, a4_0); }
    if m0 + 4u < mt { st4(obs4, o0 + 4u, bv1, a4_1); }
    if m0 + 4u < mt { st4(obs4, o0 + 8u, bv2, a4_2); }
    if m0 + 4u < mt { st4(obs4, o0 + 12u, bv3, a4_3); }
    if m0 + 5u < mt { st4(obs5, o0 + 0u, bv0, a5_0); }
    if m0 + 5u < mt { st4(obs5, o0 + 4u, bv1, a5_1); }
    if m0 + 5u < mt { st4(obs5, o0 + 8u, bv2, a5_2); }
    if m0 + 5u < mt { st4(obs5, o0 + 12u, bv3, a5_3); }
    if m0 + 6u < mt { st4(obs6, o0 + 0u, bv0, a6_0); }
    if m0 + 6u < mt { st4(obs6, o0 + 4u, bv1, a6_1); }
    if m0 + 6u < mt { st4(obs6, o0 + 8u, bv2, a6_2); }
    if m0 + 6u < mt { st4(obs6, o0 + 12u, bv3, a6_3); }
    if m0 + 7u < mt { st4(obs7, o0 + 0u, bv0, a7_0); }
    if m0 + 7u < mt { st4(obs7, o0 + 4u, bv1, a7_1); }
    if m0 + 7u < mt { st4(obs7, o0 + 8u, bv2, a7_2); }
    if m0 + 7u < mt { st4(obs7, o0 + 12u, bv3, a7_3); }
}


@compute @workgroup_size(64)
fn ga_p8c4_8(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
            @builtin(local_invocation_id) lid: vec3<u32>) {
    let ob4 = wid.x * 4u;
    let ohw = p.oh * p.ow;
    let mt = p.n * ohw;
    let m0 = (fold_yz(wid, nwg) * 64u + lid.x) * 8u;
    if m0 >= mt { return; }
    let ihw = p.ih * p.iw;
    let opad4 = p.ws_o;
    let mm0 = min(m0 + 0u, mt - 1u); let n0 = mm0 / ohw; let q0 = mm0 - n0 * ohw; let y0 = q0 / p.ow; let xo0 = q0 - y0 * p.ow;
    let off0 = n0 * p.r * ihw + y0 * S * p.iw + xo0 * S; let obs0 = n0 * p.o * ohw + q0;
    let mm1 = min(m0 + 1u, mt - 1u); let n1 = mm1 / ohw; let q1 = mm1 - n1 * ohw; let y1 = q1 / p.ow; let xo1 = q1 - y1 * p.ow;
    let off1 = n1 * p.r * ihw + y1 * S * p.iw + xo1 * S; let obs1 = n1 * p.o * ohw + q1;
    let mm2 = min(m0 + 2u, mt - 1u); let n2 = mm2 / ohw; let q2 = mm2 - n2 * ohw; let y2 = q2 / p.ow; let xo2 = q2 - y2 * p.ow;
    let off2 = n2 * p.r * ihw + y2 * S * p.iw + xo2 * S; let obs2 = n2 * p.o * ohw + q2;
    let mm3 = min(m0 + 3u, mt - 1u); let n3 = mm3 / ohw; let q3 = mm3 - n3 * ohw; let y3 = q3 / p.ow; let xo3 = q3 - y3 * p.ow;
    let off3 = n3 * p.r * ihw + y3 * S * p.iw + xo3 * S; let obs3 = n3 * p.o * ohw + q3;
    let mm4 = min(m0 + 4u, mt - 1u); let n4 = mm4 / ohw; let q4 = mm4 - n4 * ohw; let y4 = q4 / p.ow; let xo4 = q4 - y4 * p.ow;
    let off4 = n4 * p.r * ihw + y4 * S * p.iw + xo4 * S; let obs4 = n4 * p.o * ohw + q4;
    let mm5 = min(m0 + 5u, mt - 1u); let n5 = mm5 / ohw; let q5 = mm5 - n5 * ohw; let y5 = q5 / p.ow; let xo5 = q5 - y5 * p.ow;
    let off5 = n5 * p.r * ihw + y5 * S * p.iw + xo5 * S; let obs5 = n5 * p.o * ohw + q5;
    let mm6 = min(m0 + 6u, mt - 1u); let n6 = mm6 / ohw; let q6 = mm6 - n6 * ohw; let y6 = q6 / p.ow; let xo6 = q6 - y6 * p.ow;
    let off6 = n6 * p.r * ihw + y6 * S * p.iw + xo6 * S; let obs6 = n6 * p.o * ohw + q6;
    let mm7 = min(m0 + 7u, mt - 1u); let n7 = mm7 / ohw; let q7 = mm7 - n7 * ohw; let y7 = q7 / p.ow; let xo7 = q7 - y7 * p.ow;
    let off7 = n7 * p.r * ihw + y7 * S * p.iw + xo7 * S; let obs7 = n7 * p.o * ohw + q7;

    var acc: array<array<vec4<f32>, 4>, 8>;
    var x: array<f32, 8>;
    var w: array<vec4<f32>, 4>;
    var wrow = ob4;
    for (var r = 0u; r < p.r; r++) {
        for (var ky = 0u; ky < KH; ky++) {
            for (var kx = 0u; kx < KW; kx++) {
                    let rk = r * ihw + ky * p.iw + kx;
                    w[0] = wp[wrow + 0u];
                    w[1] = wp[wrow + 1u];
                    w[2] = wp[wrow + 2u];
                    w[3] = wp[wrow + 3u];
                    x[0] = inp[off0 + rk];
                    x[1] = inp[off1 + rk];
                    x[2] = inp[off2 + rk];
                    x[3] = inp[off3 + rk];
                    x[4] = inp[off4 + rk];
                    x[5] = inp[off5 + rk];
                    x[6] = inp[off6 + rk];
                    x[7] = inp[off7 + rk];
                    acc[0][0] += x[0] * w[0];
                    acc[0][1] += x[0] * w[1];
                    acc[0][2] += x[0] * w[2];
                    acc[0][3] += x[0] * w[3];
                    acc[1][0] += x[1] * w[0];
                    acc[1][1] += x[1] * w[1];
                    acc[1][2] += x[1] * w[2];
                    acc[1][3] += x[1] * w[3];
                    acc[2][0] += x[2] * w[0];
                    acc[2][1] += x[2] * w[1];
                    acc[2][2] += x[2] * w[2];
                    acc[2][3] += x[2] * w[3];
                    acc[3][0] += x[3] * w[0];
                    acc[3][1] += x[3] * w[1];
                    acc[3][2] += x[3] * w[2];
                    acc[3][3] += x[3] * w[3];
                    acc[4][0] += x[4] * w[0];
                    acc[4][1] += x[4] * w[1];
                    acc[4][2] += x[4] * w[2];
                    acc[4][3] += x[4] * w[3];
                    acc[5][0] += x[5] * w[0];
                    acc[5][1] += x[5] * w[1];
                    acc[5][2] += x[5] * w[2];
                    acc[5][3] += x[5] * w[3];
                    acc[6][0] += x[6] * w[0];
                    acc[6][1] += x[6] * w[1];
                    acc[6][2] += x[6] * w[2];
                    acc[6][3] += x[6] * w[3];
                    acc[7][0] += x[7] * w[0];
                    acc[7][1] += x[7] * w[1];
                    acc[7][2] += x[7] * w[2];
                    acc[7][3] += x[7] * w[3];
                    wrow += opad4;
            }
        }
    }
    let o0 = ob4 * 4u;
    let bv0 = vec4<f32>(load_bias(o0 + 0u), load_bias(o0 + 1u), load_bias(o0 + 2u), load_bias(o0 + 3u));
    let bv1 = vec4<f32>(load_bias(o0 + 4u), load_bias(o0 + 5u), load_bias(o0 + 6u), load_bias(o0 + 7u));
    let bv2 = vec4<f32>(load_bias(o0 + 8u), load_bias(o0 + 9u), load_bias(o0 + 10u), load_bias(o0 + 11u));
    let bv3 = vec4<f32>(load_bias(o0 + 12u), load_bias(o0 + 13u), load_bias(o0 + 14u), load_bias(o0 + 15u));
    if m0 + 0u < mt { st4(obs0, o0 + 0u, bv0, acc[0][0]); }
    if m0 + 0u < mt { st4(obs0, o0 + 4u, bv1, acc[0][1]); }
    if m0 + 0u < mt { st4(obs0, o0 + 8u, bv2, acc[0][2]); }
    if m0 + 0u < mt { st4(obs0, o0 + 12u, bv3, acc[0][3]); }
    if m0 + 1u < mt { st4(obs1, o0 + 0u, bv0, acc[1][0]); }
    if m0 + 1u < mt { st4(obs1, o0 + 4u, bv1, acc[1][1]); }
    if m0 + 1u < mt { st4(obs1, o0 + 8u, bv2, acc[1][2]); }
    if m0 + 1u < mt { st4(obs1, o0 + 12u, bv3, acc[1][3]); }
    if m0 + 2u < mt { st4(obs2, o0 + 0u, bv0, acc[2][0]); }
    if m0 + 2u < mt { st4(obs2, o0 + 4u, bv1, acc[2][1]); }
    if m0 + 2u < mt { st4(obs2, o0 + 8u, bv2, acc[2][2]); }
    if m0 + 2u < mt { st4(obs2, o0 + 12u, bv3, acc[2][3]); }
    if m0 + 3u < mt { st4(obs3, o0 + 0u, bv0, acc[3][0]); }
    if m0 + 3u < mt { st4(obs3, o0 + 4u, bv1, acc[3][1]); }
    if m0 + 3u < mt { st4(obs3, o0 + 8u, bv2, acc[3][2]); }
    if m0 + 3u < mt { st4(obs3, o0 + 12u, bv3, acc[3][3]); }
    if m0 + 4u < mt { st4(obs4, o0 + 0u, bv0, acc[4][0]); }
    if m0 + 4u < mt { st4(obs4, o0 + 4u, bv1, acc[4][1]); }
    if m0 + 4u < mt { st4(obs4, o0 + 8u, bv2, acc[4][2]); }
    if m0 + 4u < mt { st4(obs4, o0 + 12u, bv3, acc[4][3]); }
    if m0 + 5u < mt { st4(obs5, o0 + 0u, bv0, acc[5][0]); }
    if m0 + 5u < mt { st4(obs5, o0 + 4u, bv1, acc[5][1]); }
    if m0 + 5u < mt { st4(obs5, o0 + 8u, bv2, acc[5][2]); }
    if m0 + 5u < mt { st4(obs5, o0 + 12u, bv3, acc[5][3]); }
    if m0 + 6u < mt { st4(obs6, o0 + 0u, bv0, acc[6][0]); }
    if m0 + 6u < mt { st4(obs6, o0 + 4u, bv1, acc[6][1]); }
    if m0 + 6u < mt { st4(obs6, o0 + 8u, bv2, acc[6][2]); }
    if m0 + 6u < mt { st4(obs6, o0 + 12u, bv3, acc[6][3]); }
    if m0 + 7u < mt { st4(obs7, o0 + 0u, bv0, acc[7][0]); }
    if m0 + 7u < mt { st4(obs7, o0 + 4u, bv1, acc[7][1]); }
    if m0 + 7u < mt { st4(obs7, o0 + 8u, bv2, acc[7][2]); }
    if m0 + 7u < mt { st4(obs7, o0 + 12u, bv3, acc[7][3]); }
}
