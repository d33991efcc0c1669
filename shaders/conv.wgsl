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



@compute @workgroup_size(64)
fn fwd_a(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
            @builtin(local_invocation_id) lid: vec3<u32>) {
    let ob4 = wid.x * 2u;
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
    var a00 = vec4<f32>(0.0);
    var a01 = vec4<f32>(0.0);
    var a10 = vec4<f32>(0.0);
    var a11 = vec4<f32>(0.0);
    var a20 = vec4<f32>(0.0);
    var a21 = vec4<f32>(0.0);
    var a30 = vec4<f32>(0.0);
    var a31 = vec4<f32>(0.0);
    var a40 = vec4<f32>(0.0);
    var a41 = vec4<f32>(0.0);
    var a50 = vec4<f32>(0.0);
    var a51 = vec4<f32>(0.0);
    var a60 = vec4<f32>(0.0);
    var a61 = vec4<f32>(0.0);
    var a70 = vec4<f32>(0.0);
    var a71 = vec4<f32>(0.0);
    var xrow = n * p.r * ihw + oy * S * p.iw + ox0 * S;
    var wrow = ob4;
    for (var r = 0u; r < p.r; r++) {
        for (var ky = 0u; ky < KH; ky++) {
            for (var kx = 0u; kx < KW; kx++) {
                    let b = xrow + kx;
                    let w0 = wp[wrow];
                    let w1 = wp[wrow + 1u];
                    let x0 = inp[b + min(kx + 0u * S, jmax) - kx];
                    let x1 = inp[b + min(kx + 1u * S, jmax) - kx];
                    let x2 = inp[b + min(kx + 2u * S, jmax) - kx];
                    let x3 = inp[b + min(kx + 3u * S, jmax) - kx];
                    let x4 = inp[b + min(kx + 4u * S, jmax) - kx];
                    let x5 = inp[b + min(kx + 5u * S, jmax) - kx];
                    let x6 = inp[b + min(kx + 6u * S, jmax) - kx];
                    let x7 = inp[b + min(kx + 7u * S, jmax) - kx];
                    a00 += x0 * w0;
                    a01 += x0 * w1;
                    a10 += x1 * w0;
                    a11 += x1 * w1;
                    a20 += x2 * w0;
                    a21 += x2 * w1;
                    a30 += x3 * w0;
                    a31 += x3 * w1;
                    a40 += x4 * w0;
                    a41 += x4 * w1;
                    a50 += x5 * w0;
                    a51 += x5 * w1;
                    a60 += x6 * w0;
                    a61 += x6 * w1;
                    a70 += x7 * w0;
                    a71 += x7 * w1;
                    wrow += opad4;
            }
            xrow += p.iw;
        }
        xrow += ihw - KH * p.iw;
    }

    let o0 = ob4 * 4u;
    let bv0 = vec4<f32>(load_bias(o0), load_bias(o0 + 1u), load_bias(o0 + 2u), load_bias(o0 + 3u));
    let bv1 = vec4<f32>(load_bias(o0 + 4u), load_bias(o0 + 5u), load_bias(o0 + 6u), load_bias(o0 + 7u));
    let obase = n * p.o * p.oh * p.ow + oy * p.ow + ox0;
    if 0u < npos { st8(obase + 0u, o0, bv0, bv1, a00, a01); }
    if 1u < npos { st8(obase + 1u, o0, bv0, bv1, a10, a11); }
    if 2u < npos { st8(obase + 2u, o0, bv0, bv1, a20, a21); }
    if 3u < npos { st8(obase + 3u, o0, bv0, bv1, a30, a31); }
    if 4u < npos { st8(obase + 4u, o0, bv0, bv1, a40, a41); }
    if 5u < npos { st8(obase + 5u, o0, bv0, bv1, a50, a51); }
    if 6u < npos { st8(obase + 6u, o0, bv0, bv1, a60, a61); }
    if 7u < npos { st8(obase + 7u, o0, bv0, bv1, a70, a71); }
}


@compute @workgroup_size(64)
fn fwd_b(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
            @builtin(local_invocation_id) lid: vec3<u32>) {
    let ob4 = wid.x * 2u;
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
    var a00 = vec4<f32>(0.0);
    var a01 = vec4<f32>(0.0);
    var a10 = vec4<f32>(0.0);
    var a11 = vec4<f32>(0.0);
    var a20 = vec4<f32>(0.0);
    var a21 = vec4<f32>(0.0);
    var a30 = vec4<f32>(0.0);
    var a31 = vec4<f32>(0.0);
    var a40 = vec4<f32>(0.0);
    var a41 = vec4<f32>(0.0);
    var a50 = vec4<f32>(0.0);
    var a51 = vec4<f32>(0.0);
    var a60 = vec4<f32>(0.0);
    var a61 = vec4<f32>(0.0);
    var a70 = vec4<f32>(0.0);
    var a71 = vec4<f32>(0.0);
    var xrow = n * p.r * ihw + oy * S * p.iw + ox0 * S;
    var wrow = ob4;
    for (var r = 0u; r < p.r; r++) {
        for (var ky = 0u; ky < KH; ky++) {
            for (var par = 0u; par < S; par++) {
                let b = xrow;
                var x0 = inp[b + min(0u * S + par, jmax)];
                var x1 = inp[b + min(1u * S + par, jmax)];
                var x2 = inp[b + min(2u * S + par, jmax)];
                var x3 = inp[b + min(3u * S + par, jmax)];
                var x4 = inp[b + min(4u * S + par, jmax)];
                var x5 = inp[b + min(5u * S + par, jmax)];
                var x6 = inp[b + min(6u * S + par, jmax)];
                var x7 = inp[b + min(7u * S + par, jmax)];
                for (var kx = par; kx < KW; kx += S) {
                    let w0 = wp[wrow + kx * opad4];
                    let w1 = wp[wrow + kx * opad4 + 1u];
                    a00 += x0 * w0;
                    a01 += x0 * w1;
                    a10 += x1 * w0;
                    a11 += x1 * w1;
                    a20 += x2 * w0;
                    a21 += x2 * w1;
                    a30 += x3 * w0;
                    a31 += x3 * w1;
                    a40 += x4 * w0;
                    a41 += x4 * w1;
                    a50 += x5 * w0;
                    a51 += x5 * w1;
                    a60 += x6 * w0;
                    a61 += x6 * w1;
                    a70 += x7 * w0;
                    a71 += x7 * w1;
                    x0 = x1;
                    x1 = x2;
                    x2 = x3;
                    x3 = x4;
                    x4 = x5;
                    x5 = x6;
                    x6 = x7;
                    x7 = inp[b + min(7u * S + kx + S, jmax)];
                }
            }
            xrow += p.iw;
            wrow += KW * opad4;
        }
        xrow += ihw - KH * p.iw;
    }

    let o0 = ob4 * 4u;
    let bv0 = vec4<f32>(load_bias(o0), load_bias(o0 + 1u), load_bias(o0 + 2u), load_bias(o0 + 3u));
    let bv1 = vec4<f32>(load_bias(o0 + 4u), load_bias(o0 + 5u), load_bias(o0 + 6u), load_bias(o0 + 7u));
    let obase = n * p.o * p.oh * p.ow + oy * p.ow + ox0;
    if 0u < npos { st8(obase + 0u, o0, bv0, bv1, a00, a01); }
    if 1u < npos { st8(obase + 1u, o0, bv0, bv1, a10, a11); }
    if 2u < npos { st8(obase + 2u, o0, bv0, bv1, a20, a21); }
    if 3u < npos { st8(obase + 3u, o0, bv0, bv1, a30, a31); }
    if 4u < npos { st8(obase + 4u, o0, bv0, bv1, a40, a41); }
    if 5u < npos { st8(obase + 5u, o0, bv0, bv1, a50, a51); }
    if 6u < npos { st8(obase + 6u, o0, bv0, bv1, a60, a61); }
    if 7u < npos { st8(obase + 7u, o0, bv0, bv1, a70, a71); }
}
