// conv_wgrad.wgsl: the weight-gradient pass of conv.wgsl, compiled after it as the `conv` family
// (gpu::shaders::COMPOSED); the `conv_lanes` family has the subgroup variant `wgrad_lanes`
// (conv_wgrad_lanes.wgsl) instead.
//
// Entry point `wgrad`: see conv.wgsl's header (workgroup (64,1,1), one tile of 16 rows x NCOL
// columns per invocation).

// wgrad: v holds rows a_rel..a_rel+3 of one column; rows past na are not stored.
fn store_col(idx: u32, a_rel: u32, na: u32, v: vec4<f32>) {
    if a_rel < na { out[idx] = v.x; }
    if a_rel + 1u < na { out[idx + p.c] = v.y; }
    if a_rel + 2u < na { out[idx + 2u * p.c] = v.z; }
    if a_rel + 3u < na { out[idx + 3u * p.c] = v.w; }
}

@compute @workgroup_size(64)
fn wgrad(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
         @builtin(local_invocation_id) lid: vec3<u32>) {
    let tile = wid.x * 64u + lid.x;
    let split = fold_yz(wid, nwg);
    let ctiles = (p.c + NCOL - 1u) / NCOL;
    if tile >= ctiles * ((p.a + 15u) / 16u) { return; }
    let a0 = (tile / ctiles) * 16u;
    let c0 = (tile % ctiles) * NCOL;
    let shw = p.ih * p.iw;
    let lhw = p.oh * p.ow;
    let khw = p.kh * p.kw;
    // Rows: 16 channels of the small image; columns: NCOL (channel, ky, kx) of the large one
    // (both clamped: the extra ones are computed but not stored).
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
    var co: array<u32, 16>;
    { let c = min(c0 + 0u, p.c - 1u); let b = c / khw; let k = c - b * khw; let ky = k / p.kw; co[0] = b * lhw + ky * p.ow + (k - ky * p.kw); }
    { let c = min(c0 + 1u, p.c - 1u); let b = c / khw; let k = c - b * khw; let ky = k / p.kw; co[1] = b * lhw + ky * p.ow + (k - ky * p.kw); }
    { let c = min(c0 + 2u, p.c - 1u); let b = c / khw; let k = c - b * khw; let ky = k / p.kw; co[2] = b * lhw + ky * p.ow + (k - ky * p.kw); }
    { let c = min(c0 + 3u, p.c - 1u); let b = c / khw; let k = c - b * khw; let ky = k / p.kw; co[3] = b * lhw + ky * p.ow + (k - ky * p.kw); }
    { let c = min(c0 + 4u, p.c - 1u); let b = c / khw; let k = c - b * khw; let ky = k / p.kw; co[4] = b * lhw + ky * p.ow + (k - ky * p.kw); }
    { let c = min(c0 + 5u, p.c - 1u); let b = c / khw; let k = c - b * khw; let ky = k / p.kw; co[5] = b * lhw + ky * p.ow + (k - ky * p.kw); }
    { let c = min(c0 + 6u, p.c - 1u); let b = c / khw; let k = c - b * khw; let ky = k / p.kw; co[6] = b * lhw + ky * p.ow + (k - ky * p.kw); }
    { let c = min(c0 + 7u, p.c - 1u); let b = c / khw; let k = c - b * khw; let ky = k / p.kw; co[7] = b * lhw + ky * p.ow + (k - ky * p.kw); }
    { let c = min(c0 + 8u, p.c - 1u); let b = c / khw; let k = c - b * khw; let ky = k / p.kw; co[8] = b * lhw + ky * p.ow + (k - ky * p.kw); }
    { let c = min(c0 + 9u, p.c - 1u); let b = c / khw; let k = c - b * khw; let ky = k / p.kw; co[9] = b * lhw + ky * p.ow + (k - ky * p.kw); }
    { let c = min(c0 + 10u, p.c - 1u); let b = c / khw; let k = c - b * khw; let ky = k / p.kw; co[10] = b * lhw + ky * p.ow + (k - ky * p.kw); }
    { let c = min(c0 + 11u, p.c - 1u); let b = c / khw; let k = c - b * khw; let ky = k / p.kw; co[11] = b * lhw + ky * p.ow + (k - ky * p.kw); }
    { let c = min(c0 + 12u, p.c - 1u); let b = c / khw; let k = c - b * khw; let ky = k / p.kw; co[12] = b * lhw + ky * p.ow + (k - ky * p.kw); }
    { let c = min(c0 + 13u, p.c - 1u); let b = c / khw; let k = c - b * khw; let ky = k / p.kw; co[13] = b * lhw + ky * p.ow + (k - ky * p.kw); }
    { let c = min(c0 + 14u, p.c - 1u); let b = c / khw; let k = c - b * khw; let ky = k / p.kw; co[14] = b * lhw + ky * p.ow + (k - ky * p.kw); }
    { let c = min(c0 + 15u, p.c - 1u); let b = c / khw; let k = c - b * khw; let ky = k / p.kw; co[15] = b * lhw + ky * p.ow + (k - ky * p.kw); }
    // Accumulators: a<column>_<row vec4>.
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
    var l2 = vec4<f32>(0.0);
    var l3 = vec4<f32>(0.0);
    // One loop over the split's (image, y, x): zs indexes the small image, zl the large one.
    let n0 = split * p.imgs;
    let count = (min(n0 + p.imgs, p.n) - n0) * shw;
    var zw = ZWalk(n0 * p.a * shw, n0 * p.b * lhw, 0u, 0u);
    let zg = zwalk_geom(shw, lhw);
    for (var t = 0u; t < count; t++) {
        // Rows a0..a0+3, +4..+7, +8..+11, +12..+15.
        let s0 = vec4<f32>(inp[zw.zs + ao[0]], inp[zw.zs + ao[1]], inp[zw.zs + ao[2]], inp[zw.zs + ao[3]]);
        let s1 = vec4<f32>(inp[zw.zs + ao[4]], inp[zw.zs + ao[5]], inp[zw.zs + ao[6]], inp[zw.zs + ao[7]]);
        let s2 = vec4<f32>(inp[zw.zs + ao[8]], inp[zw.zs + ao[9]], inp[zw.zs + ao[10]], inp[zw.zs + ao[11]]);
        let s3 = vec4<f32>(inp[zw.zs + ao[12]], inp[zw.zs + ao[13]], inp[zw.zs + ao[14]], inp[zw.zs + ao[15]]);
        let l0 = vec4<f32>(inp2[zw.zl + co[0]], inp2[zw.zl + co[1]], inp2[zw.zl + co[2]], inp2[zw.zl + co[3]]);
        let l1 = vec4<f32>(inp2[zw.zl + co[4]], inp2[zw.zl + co[5]], inp2[zw.zl + co[6]], inp2[zw.zl + co[7]]);
        a0_0 += l0.x * s0; a0_1 += l0.x * s1; a0_2 += l0.x * s2; a0_3 += l0.x * s3;
        a1_0 += l0.y * s0; a1_1 += l0.y * s1; a1_2 += l0.y * s2; a1_3 += l0.y * s3;
        a2_0 += l0.z * s0; a2_1 += l0.z * s1; a2_2 += l0.z * s2; a2_3 += l0.z * s3;
        a3_0 += l0.w * s0; a3_1 += l0.w * s1; a3_2 += l0.w * s2; a3_3 += l0.w * s3;
        a4_0 += l1.x * s0; a4_1 += l1.x * s1; a4_2 += l1.x * s2; a4_3 += l1.x * s3;
        a5_0 += l1.y * s0; a5_1 += l1.y * s1; a5_2 += l1.y * s2; a5_3 += l1.y * s3;
        a6_0 += l1.z * s0; a6_1 += l1.z * s1; a6_2 += l1.z * s2; a6_3 += l1.z * s3;
        a7_0 += l1.w * s0; a7_1 += l1.w * s1; a7_2 += l1.w * s2; a7_3 += l1.w * s3;
        if NCOL > 8u {
            l2 = vec4<f32>(inp2[zw.zl + co[8]], inp2[zw.zl + co[9]], inp2[zw.zl + co[10]], inp2[zw.zl + co[11]]);
            l3 = vec4<f32>(inp2[zw.zl + co[12]], inp2[zw.zl + co[13]], inp2[zw.zl + co[14]], inp2[zw.zl + co[15]]);
            a8_0 += l2.x * s0; a8_1 += l2.x * s1; a8_2 += l2.x * s2; a8_3 += l2.x * s3;
            a9_0 += l2.y * s0; a9_1 += l2.y * s1; a9_2 += l2.y * s2; a9_3 += l2.y * s3;
            a10_0 += l2.z * s0; a10_1 += l2.z * s1; a10_2 += l2.z * s2; a10_3 += l2.z * s3;
            a11_0 += l2.w * s0; a11_1 += l2.w * s1; a11_2 += l2.w * s2; a11_3 += l2.w * s3;
            a12_0 += l3.x * s0; a12_1 += l3.x * s1; a12_2 += l3.x * s2; a12_3 += l3.x * s3;
            a13_0 += l3.y * s0; a13_1 += l3.y * s1; a13_2 += l3.y * s2; a13_3 += l3.y * s3;
            a14_0 += l3.z * s0; a14_1 += l3.z * s1; a14_2 += l3.z * s2; a14_3 += l3.z * s3;
            a15_0 += l3.w * s0; a15_1 += l3.w * s1; a15_2 += l3.w * s2; a15_3 += l3.w * s3;
        }
        zwalk_next(&zw, zg);
    }
    // partial[split][a][c]
    let out0 = split * p.a * p.c;
    let na = min(p.a - a0, 16u);
    let nc = min(p.c - c0, NCOL);
    {
        store_col(out0 + (a0 + 0u) * p.c + c0 + 0u, 0u, na, a0_0);
        store_col(out0 + (a0 + 4u) * p.c + c0 + 0u, 4u, na, a0_1);
        store_col(out0 + (a0 + 8u) * p.c + c0 + 0u, 8u, na, a0_2);
        store_col(out0 + (a0 + 12u) * p.c + c0 + 0u, 12u, na, a0_3);
    }
    if nc > 1u {
        store_col(out0 + (a0 + 0u) * p.c + c0 + 1u, 0u, na, a1_0);
        store_col(out0 + (a0 + 4u) * p.c + c0 + 1u, 4u, na, a1_1);
        store_col(out0 + (a0 + 8u) * p.c + c0 + 1u, 8u, na, a1_2);
        store_col(out0 + (a0 + 12u) * p.c + c0 + 1u, 12u, na, a1_3);
    }
    if nc > 2u {
        store_col(out0 + (a0 + 0u) * p.c + c0 + 2u, 0u, na, a2_0);
        store_col(out0 + (a0 + 4u) * p.c + c0 + 2u, 4u, na, a2_1);
        store_col(out0 + (a0 + 8u) * p.c + c0 + 2u, 8u, na, a2_2);
        store_col(out0 + (a0 + 12u) * p.c + c0 + 2u, 12u, na, a2_3);
    }
    if nc > 3u {
        store_col(out0 + (a0 + 0u) * p.c + c0 + 3u, 0u, na, a3_0);
        store_col(out0 + (a0 + 4u) * p.c + c0 + 3u, 4u, na, a3_1);
        store_col(out0 + (a0 + 8u) * p.c + c0 + 3u, 8u, na, a3_2);
        store_col(out0 + (a0 + 12u) * p.c + c0 + 3u, 12u, na, a3_3);
    }
    if nc > 4u {
        store_col(out0 + (a0 + 0u) * p.c + c0 + 4u, 0u, na, a4_0);
        store_col(out0 + (a0 + 4u) * p.c + c0 + 4u, 4u, na, a4_1);
        store_col(out0 + (a0 + 8u) * p.c + c0 + 4u, 8u, na, a4_2);
        store_col(out0 + (a0 + 12u) * p.c + c0 + 4u, 12u, na, a4_3);
    }
    if nc > 5u {
        store_col(out0 + (a0 + 0u) * p.c + c0 + 5u, 0u, na, a5_0);
        store_col(out0 + (a0 + 4u) * p.c + c0 + 5u, 4u, na, a5_1);
        store_col(out0 + (a0 + 8u) * p.c + c0 + 5u, 8u, na, a5_2);
        store_col(out0 + (a0 + 12u) * p.c + c0 + 5u, 12u, na, a5_3);
    }
    if nc > 6u {
        store_col(out0 + (a0 + 0u) * p.c + c0 + 6u, 0u, na, a6_0);
        store_col(out0 + (a0 + 4u) * p.c + c0 + 6u, 4u, na, a6_1);
        store_col(out0 + (a0 + 8u) * p.c + c0 + 6u, 8u, na, a6_2);
        store_col(out0 + (a0 + 12u) * p.c + c0 + 6u, 12u, na, a6_3);
    }
    if nc > 7u {
        store_col(out0 + (a0 + 0u) * p.c + c0 + 7u, 0u, na, a7_0);
        store_col(out0 + (a0 + 4u) * p.c + c0 + 7u, 4u, na, a7_1);
        store_col(out0 + (a0 + 8u) * p.c + c0 + 7u, 8u, na, a7_2);
        store_col(out0 + (a0 + 12u) * p.c + c0 + 7u, 12u, na, a7_3);
    }
    if nc > 8u {
        store_col(out0 + (a0 + 0u) * p.c + c0 + 8u, 0u, na, a8_0);
        store_col(out0 + (a0 + 4u) * p.c + c0 + 8u, 4u, na, a8_1);
        store_col(out0 + (a0 + 8u) * p.c + c0 + 8u, 8u, na, a8_2);
        store_col(out0 + (a0 + 12u) * p.c + c0 + 8u, 12u, na, a8_3);
    }
    if nc > 9u {
        store_col(out0 + (a0 + 0u) * p.c + c0 + 9u, 0u, na, a9_0);
        store_col(out0 + (a0 + 4u) * p.c + c0 + 9u, 4u, na, a9_1);
        store_col(out0 + (a0 + 8u) * p.c + c0 + 9u, 8u, na, a9_2);
        store_col(out0 + (a0 + 12u) * p.c + c0 + 9u, 12u, na, a9_3);
    }
    if nc > 10u {
        store_col(out0 + (a0 + 0u) * p.c + c0 + 10u, 0u, na, a10_0);
        store_col(out0 + (a0 + 4u) * p.c + c0 + 10u, 4u, na, a10_1);
        store_col(out0 + (a0 + 8u) * p.c + c0 + 10u, 8u, na, a10_2);
        store_col(out0 + (a0 + 12u) * p.c + c0 + 10u, 12u, na, a10_3);
    }
    if nc > 11u {
        store_col(out0 + (a0 + 0u) * p.c + c0 + 11u, 0u, na, a11_0);
        store_col(out0 + (a0 + 4u) * p.c + c0 + 11u, 4u, na, a11_1);
        store_col(out0 + (a0 + 8u) * p.c + c0 + 11u, 8u, na, a11_2);
        store_col(out0 + (a0 + 12u) * p.c + c0 + 11u, 12u, na, a11_3);
    }
    if nc > 12u {
        store_col(out0 + (a0 + 0u) * p.c + c0 + 12u, 0u, na, a12_0);
        store_col(out0 + (a0 + 4u) * p.c + c0 + 12u, 4u, na, a12_1);
        store_col(out0 + (a0 + 8u) * p.c + c0 + 12u, 8u, na, a12_2);
        store_col(out0 + (a0 + 12u) * p.c + c0 + 12u, 12u, na, a12_3);
    }
    if nc > 13u {
        store_col(out0 + (a0 + 0u) * p.c + c0 + 13u, 0u, na, a13_0);
        store_col(out0 + (a0 + 4u) * p.c + c0 + 13u, 4u, na, a13_1);
        store_col(out0 + (a0 + 8u) * p.c + c0 + 13u, 8u, na, a13_2);
        store_col(out0 + (a0 + 12u) * p.c + c0 + 13u, 12u, na, a13_3);
    }
    if nc > 14u {
        store_col(out0 + (a0 + 0u) * p.c + c0 + 14u, 0u, na, a14_0);
        store_col(out0 + (a0 + 4u) * p.c + c0 + 14u, 4u, na, a14_1);
        store_col(out0 + (a0 + 8u) * p.c + c0 + 14u, 8u, na, a14_2);
        store_col(out0 + (a0 + 12u) * p.c + c0 + 14u, 12u, na, a14_3);
    }
    if nc > 15u {
        store_col(out0 + (a0 + 0u) * p.c + c0 + 15u, 0u, na, a15_0);
        store_col(out0 + (a0 + 4u) * p.c + c0 + 15u, 4u, na, a15_1);
        store_col(out0 + (a0 + 8u) * p.c + c0 + 15u, 8u, na, a15_2);
        store_col(out0 + (a0 + 12u) * p.c + c0 + 15u, 12u, na, a15_3);
    }
}
