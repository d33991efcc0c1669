"""Writes shaders/conv_wgrad_lanes.wgsl, whose register blocks are written out (WGSL has no macros,
and lavapipe neither unrolls loops nor keeps a dynamically indexed private array in
registers). Edit this script, not the .wgsl file, then run it:

    python3 shaders/gen/conv_wgrad_lanes.py          # rewrite the shader
    python3 shaders/gen/conv_wgrad_lanes.py --check  # exit 1 if the shader differs (tests/shaders_validate.rs)
"""

from write_shader import write_or_check

L = []
w = L.append
comp = "xyzw"
w("""// Written by shaders/gen/conv_wgrad_lanes.py: edit that script, not this file.
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
""")
for i in range(32):
    w("    var acc%d_0 = vec4<f32>(0.0); var acc%d_1 = vec4<f32>(0.0);" % (i, i))
w("""    // One loop over the split's (image, y, x): zw.zs indexes the small image, zl the large one.
    let n0 = split * p.imgs;
    let count = (min(n0 + p.imgs, p.n) - n0) * shw;
    var zw = ZWalk(n0 * p.a * shw, n0 * p.b * lhw, 0u, 0u);
    let zg = zwalk_geom(shw, lhw);
    for (var t = 0u; t < count; t++) {""")
w("        let sv = vec4<f32>(inp[zw.zs + ar.x], inp[zw.zs + ar.y], inp[zw.zs + ar.z], inp[zw.zs + ar.w]);")
w("        // Lane j's vec4 holds rows j, j+8, j+16, j+24 (constant lane ids).")
for j in range(8):
    w("        let v%d = subgroupBroadcast(sv, %du);" % (j, j))
w("        let l0 = vec4<f32>(inp2[zw.zl + co0.x], inp2[zw.zl + co0.y], inp2[zw.zl + co0.z], inp2[zw.zl + co0.w]);")
w("        let l1 = vec4<f32>(inp2[zw.zl + co1.x], inp2[zw.zl + co1.y], inp2[zw.zl + co1.z], inp2[zw.zl + co1.w]);")
for i in range(32):
    j, t = i % 8, i // 8
    w("        acc%d_0 += v%d.%s * l0; acc%d_1 += v%d.%s * l1;" % (i, j, comp[t], i, j, comp[t]))
w("""        zwalk_next(&zw, zg);
    }
    let out0 = split * p.a * p.c;""")
for i in range(32):
    w("    lanes_store_cols(out0, a0 + %du, cl, acc%d_0); lanes_store_cols(out0, a0 + %du, cl + 4u, acc%d_1);" % (i, i, i, i))
w("}")
write_or_check("conv_wgrad_lanes.wgsl", "\n".join(L) + "\n")
