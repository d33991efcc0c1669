// Written by shaders/gen/conv_wgrad_lanes.py: edit that script, not this file.
//
// conv_wgrad_lanes.wgsl: the subgroup variant of the convolution weight gradient (conv.wgsl's
// `wgrad` sum), compiled after conv.wgsl in the `conv_lanes` family (gpu::shaders::COMPOSED)
// for devices with 8-lane subgroups (CPU drivers: lavapipe loads storage values lane by lane,
// see matmul_lanes.wgsl).
//
//   partial[split][a][c] = sum over the split's (image, y, x) of
//                          small[n, a, y, x] * large[n, b, y*s + ky, x*s + kx],  c = (b*kh + ky)*kw + kx
//
// Laid out like matmul_lanes.wgsl: the 8 lanes of a subgroup share 32 rows (channels a of the
// small image) and split 64 columns (c), 8 per lane. Per step lane l loads rows l, l+8, l+16,
// l+24 of the small image (one vec4; the subgroup broadcasts them) and its own 8 columns of the
// large one: 12 loads for 256 FMAs per lane (`wgrad` in conv_wgrad.wgsl: 32).
//
// Entry point `wgrad_lanes`: workgroup (8,1,1) = one subgroup of exactly 8 lanes. Grid: x = row
// blocks of 32 x column blocks of 64 (column blocks fastest), y = splits (folds into z). Lane l
// holds 32 rows x columns 8l..8l+7 of its block (acc<row>_<column quad>, 64 vec4). Rows and
// columns past the end are clamped on load and not stored. Uses 1 small (`inp`), 4 partial
// (`out`), 5 large (`inp2`), and the params a, b, c, kh, kw, s, ih/iw (small image), oh/ow
// (large image), n and imgs (images per split).

// Offsets in one large image of columns cv (clamped to the last column).
fn lanes_col_offsets(cv: vec4<u32>) -> vec4<u32> {
    let c = min(cv, vec4<u32>(p.c - 1u));
    let khw = p.kh * p.kw;
    let b = c / khw;
    let k = c - b * khw;
    let ky = k / p.kw;
    return b * (p.oh * p.ow) + ky * p.ow + (k - ky * p.kw);
}

// partial[idx0 + row * c + col..col+3] = v, for the row and the columns that exist.
fn lanes_store_cols(idx0: u32, row: u32, col: u32, v: vec4<f32>) {
    if row >= p.a { return; }
    let idx = idx0 + row * p.c + col;
    if col < p.c { out[idx] = v.x; }
    if col + 1u < p.c { out[idx + 1u] = v.y; }
    if col + 2u < p.c { out[idx + 2u] = v.z; }
    if col + 3u < p.c { out[idx + 3u] = v.w; }
}

@compute @workgroup_size(8, 1, 1)
fn wgrad_lanes(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
               @builtin(subgroup_invocation_id) lane: u32) {
    let split = fold_yz(wid, nwg);
    let cblocks = (p.c + 63u) / 64u;
    if wid.x >= cblocks * ((p.a + 31u) / 32u) { return; }
    let a0 = (wid.x / cblocks) * 32u;
    let cl = (wid.x % cblocks) * 64u + lane * 8u;
    let shw = p.ih * p.iw;
    let lhw = p.oh * p.ow;
    // The small-image rows this lane loads, and its 8 columns' offsets in the large image.
    let ar = min(vec4<u32>(a0 + lane) + vec4<u32>(0u, 8u, 16u, 24u), vec4<u32>(p.a - 1u)) * shw;
    let co0 = lanes_col_offsets(vec4<u32>(cl) + vec4<u32>(0u, 1u, 2u, 3u));
    let co1 = lanes_col_offsets(vec4<u32>(cl) + vec4<u32>(4u, 5u, 6u, 7u));

    var acc0_0 = vec4<f32>(0.0); var acc0_1 = vec4<f32>(0.0);
    var acc1_0 = vec4<f32>(0.0); var acc1_1 = vec4<f32>(0.0);
    var acc2_0 = vec4<f32>(0.0); var acc2_1 = vec4<f32>(0.0);
    var acc3_0 = vec4<f32>(0.0); var acc3_1 = vec4<f32>(0.0);
    var acc4_0 = vec4<f32>(0.0); var acc4_1 = vec4<f32>(0.0);
    var acc5_0 = vec4<f32>(0.0); var acc5_1 = vec4<f32>(0.0);
    var acc6_0 = vec4<f32>(0.0); var acc6_1 = vec4<f32>(0.0);
    var acc7_0 = vec4<f32>(0.0); var acc7_1 = vec4<f32>(0.0);
    var acc8_0 = vec4<f32>(0.0); var acc8_1 = vec4<f32>(0.0);
    var acc9_0 = vec4<f32>(0.0); var acc9_1 = vec4<f32>(0.0);
    var acc10_0 = vec4<f32>(0.0); var acc10_1 = vec4<f32>(0.0);
    var acc11_0 = vec4<f32>(0.0); var acc11_1 = vec4<f32>(0.0);
    var acc12_0 = vec4<f32>(0.0); var acc12_1 = vec4<f32>(0.0);
    var acc13_0 = vec4<f32>(0.0); var acc13_1 = vec4<f32>(0.0);
    var acc14_0 = vec4<f32>(0.0); var acc14_1 = vec4<f32>(0.0);
    var acc15_0 = vec4<f32>(0.0); var acc15_1 = vec4<f32>(0.0);
    var acc16_0 = vec4<f32>(0.0); var acc16_1 = vec4<f32>(0.0);
    var acc17_0 = vec4<f32>(0.0); var acc17_1 = vec4<f32>(0.0);
    var acc18_0 = vec4<f32>(0.0); var acc18_1 = vec4<f32>(0.0);
    var acc19_0 = vec4<f32>(0.0); var acc19_1 = vec4<f32>(0.0);
    var acc20_0 = vec4<f32>(0.0); var acc20_1 = vec4<f32>(0.0);
    var acc21_0 = vec4<f32>(0.0); var acc21_1 = vec4<f32>(0.0);
    var acc22_0 = vec4<f32>(0.0); var acc22_1 = vec4<f32>(0.0);
    var acc23_0 = vec4<f32>(0.0); var acc23_1 = vec4<f32>(0.0);
    var acc24_0 = vec4<f32>(0.0); var acc24_1 = vec4<f32>(0.0);
    var acc25_0 = vec4<f32>(0.0); var acc25_1 = vec4<f32>(0.0);
    var acc26_0 = vec4<f32>(0.0); var acc26_1 = vec4<f32>(0.0);
    var acc27_0 = vec4<f32>(0.0); var acc27_1 = vec4<f32>(0.0);
    var acc28_0 = vec4<f32>(0.0); var acc28_1 = vec4<f32>(0.0);
    var acc29_0 = vec4<f32>(0.0); var acc29_1 = vec4<f32>(0.0);
    var acc30_0 = vec4<f32>(0.0); var acc30_1 = vec4<f32>(0.0);
    var acc31_0 = vec4<f32>(0.0); var acc31_1 = vec4<f32>(0.0);
    // One loop over the split's (image, y, x): zw.zs indexes the small image, zl the large one.
    let n0 = split * p.imgs;
    let count = (min(n0 + p.imgs, p.n) - n0) * shw;
    var zw = ZWalk(n0 * p.a * shw, n0 * p.b * lhw, 0u, 0u);
    let zg = zwalk_geom(shw, lhw);
    for (var t = 0u; t < count; t++) {
        let sv = vec4<f32>(inp[zw.zs + ar.x], inp[zw.zs + ar.y], inp[zw.zs + ar.z], inp[zw.zs + ar.w]);
        // Lane j's vec4 holds rows j, j+8, j+16, j+24 (constant lane ids).
        let v0 = subgroupBroadcast(sv, 0u);
        let v1 = subgroupBroadcast(sv, 1u);
        let v2 = subgroupBroadcast(sv, 2u);
        let v3 = subgroupBroadcast(sv, 3u);
        let v4 = subgroupBroadcast(sv, 4u);
        let v5 = subgroupBroadcast(sv, 5u);
        let v6 = subgroupBroadcast(sv, 6u);
        let v7 = subgroupBroadcast(sv, 7u);
        let l0 = vec4<f32>(inp2[zw.zl + co0.x], inp2[zw.zl + co0.y], inp2[zw.zl + co0.z], inp2[zw.zl + co0.w]);
        let l1 = vec4<f32>(inp2[zw.zl + co1.x], inp2[zw.zl + co1.y], inp2[zw.zl + co1.z], inp2[zw.zl + co1.w]);
        acc0_0 += v0.x * l0; acc0_1 += v0.x * l1;
        acc1_0 += v1.x * l0; acc1_1 += v1.x * l1;
        acc2_0 += v2.x * l0; acc2_1 += v2.x * l1;
        acc3_0 += v3.x * l0; acc3_1 += v3.x * l1;
        acc4_0 += v4.x * l0; acc4_1 += v4.x * l1;
        acc5_0 += v5.x * l0; acc5_1 += v5.x * l1;
        acc6_0 += v6.x * l0; acc6_1 += v6.x * l1;
        acc7_0 += v7.x * l0; acc7_1 += v7.x * l1;
        acc8_0 += v0.y * l0; acc8_1 += v0.y * l1;
        acc9_0 += v1.y * l0; acc9_1 += v1.y * l1;
        acc10_0 += v2.y * l0; acc10_1 += v2.y * l1;
        acc11_0 += v3.y * l0; acc11_1 += v3.y * l1;
        acc12_0 += v4.y * l0; acc12_1 += v4.y * l1;
        acc13_0 += v5.y * l0; acc13_1 += v5.y * l1;
        acc14_0 += v6.y * l0; acc14_1 += v6.y * l1;
        acc15_0 += v7.y * l0; acc15_1 += v7.y * l1;
        acc16_0 += v0.z * l0; acc16_1 += v0.z * l1;
        acc17_0 += v1.z * l0; acc17_1 += v1.z * l1;
        acc18_0 += v2.z * l0; acc18_1 += v2.z * l1;
        acc19_0 += v3.z * l0; acc19_1 += v3.z * l1;
        acc20_0 += v4.z * l0; acc20_1 += v4.z * l1;
        acc21_0 += v5.z * l0; acc21_1 += v5.z * l1;
        acc22_0 += v6.z * l0; acc22_1 += v6.z * l1;
        acc23_0 += v7.z * l0; acc23_1 += v7.z * l1;
        acc24_0 += v0.w * l0; acc24_1 += v0.w * l1;
        acc25_0 += v1.w * l0; acc25_1 += v1.w * l1;
        acc26_0 += v2.w * l0; acc26_1 += v2.w * l1;
        acc27_0 += v3.w * l0; acc27_1 += v3.w * l1;
        acc28_0 += v4.w * l0; acc28_1 += v4.w * l1;
        acc29_0 += v5.w * l0; acc29_1 += v5.w * l1;
        acc30_0 += v6.w * l0; acc30_1 += v6.w * l1;
        acc31_0 += v7.w * l0; acc31_1 += v7.w * l1;
        zwalk_next(&zw, zg);
    }
    let out0 = split * p.a * p.c;
    lanes_store_cols(out0, a0 + 0u, cl, acc0_0); lanes_store_cols(out0, a0 + 0u, cl + 4u, acc0_1);
    lanes_store_cols(out0, a0 + 1u, cl, acc1_0); lanes_store_cols(out0, a0 + 1u, cl + 4u, acc1_1);
    lanes_store_cols(out0, a0 + 2u, cl, acc2_0); lanes_store_cols(out0, a0 + 2u, cl + 4u, acc2_1);
    lanes_store_cols(out0, a0 + 3u, cl, acc3_0); lanes_store_cols(out0, a0 + 3u, cl + 4u, acc3_1);
    lanes_store_cols(out0, a0 + 4u, cl, acc4_0); lanes_store_cols(out0, a0 + 4u, cl + 4u, acc4_1);
    lanes_store_cols(out0, a0 + 5u, cl, acc5_0); lanes_store_cols(out0, a0 + 5u, cl + 4u, acc5_1);
    lanes_store_cols(out0, a0 + 6u, cl, acc6_0); lanes_store_cols(out0, a0 + 6u, cl + 4u, acc6_1);
    lanes_store_cols(out0, a0 + 7u, cl, acc7_0); lanes_store_cols(out0, a0 + 7u, cl + 4u, acc7_1);
    lanes_store_cols(out0, a0 + 8u, cl, acc8_0); lanes_store_cols(out0, a0 + 8u, cl + 4u, acc8_1);
    lanes_store_cols(out0, a0 + 9u, cl, acc9_0); lanes_store_cols(out0, a0 + 9u, cl + 4u, acc9_1);
    lanes_store_cols(out0, a0 + 10u, cl, acc10_0); lanes_store_cols(out0, a0 + 10u, cl + 4u, acc10_1);
    lanes_store_cols(out0, a0 + 11u, cl, acc11_0); lanes_store_cols(out0, a0 + 11u, cl + 4u, acc11_1);
    lanes_store_cols(out0, a0 + 12u, cl, acc12_0); lanes_store_cols(out0, a0 + 12u, cl + 4u, acc12_1);
    lanes_store_cols(out0, a0 + 13u, cl, acc13_0); lanes_store_cols(out0, a0 + 13u, cl + 4u, acc13_1);
    lanes_store_cols(out0, a0 + 14u, cl, acc14_0); lanes_store_cols(out0, a0 + 14u, cl + 4u, acc14_1);
    lanes_store_cols(out0, a0 + 15u, cl, acc15_0); lanes_store_cols(out0, a0 + 15u, cl + 4u, acc15_1);
    lanes_store_cols(out0, a0 + 16u, cl, acc16_0); lanes_store_cols(out0, a0 + 16u, cl + 4u, acc16_1);
    lanes_store_cols(out0, a0 + 17u, cl, acc17_0); lanes_store_cols(out0, a0 + 17u, cl + 4u, acc17_1);
    lanes_store_cols(out0, a0 + 18u, cl, acc18_0); lanes_store_cols(out0, a0 + 18u, cl + 4u, acc18_1);
    lanes_store_cols(out0, a0 + 19u, cl, acc19_0); lanes_store_cols(out0, a0 + 19u, cl + 4u, acc19_1);
    lanes_store_cols(out0, a0 + 20u, cl, acc20_0); lanes_store_cols(out0, a0 + 20u, cl + 4u, acc20_1);
    lanes_store_cols(out0, a0 + 21u, cl, acc21_0); lanes_store_cols(out0, a0 + 21u, cl + 4u, acc21_1);
    lanes_store_cols(out0, a0 + 22u, cl, acc22_0); lanes_store_cols(out0, a0 + 22u, cl + 4u, acc22_1);
    lanes_store_cols(out0, a0 + 23u, cl, acc23_0); lanes_store_cols(out0, a0 + 23u, cl + 4u, acc23_1);
    lanes_store_cols(out0, a0 + 24u, cl, acc24_0); lanes_store_cols(out0, a0 + 24u, cl + 4u, acc24_1);
    lanes_store_cols(out0, a0 + 25u, cl, acc25_0); lanes_store_cols(out0, a0 + 25u, cl + 4u, acc25_1);
    lanes_store_cols(out0, a0 + 26u, cl, acc26_0); lanes_store_cols(out0, a0 + 26u, cl + 4u, acc26_1);
    lanes_store_cols(out0, a0 + 27u, cl, acc27_0); lanes_store_cols(out0, a0 + 27u, cl + 4u, acc27_1);
    lanes_store_cols(out0, a0 + 28u, cl, acc28_0); lanes_store_cols(out0, a0 + 28u, cl + 4u, acc28_1);
    lanes_store_cols(out0, a0 + 29u, cl, acc29_0); lanes_store_cols(out0, a0 + 29u, cl + 4u, acc29_1);
    lanes_store_cols(out0, a0 + 30u, cl, acc30_0); lanes_store_cols(out0, a0 + 30u, cl + 4u, acc30_1);
    lanes_store_cols(out0, a0 + 31u, cl, acc31_0); lanes_store_cols(out0, a0 + 31u, cl + 4u, acc31_1);
}
