// Written by shaders/gen/matmul_lanes64.py (from lanes_matmul_body.py): edit those, not this
// file.
//
// matmul_lanes64.wgsl: matmul_lanes.wgsl's `matmul_lanes` with each load 8 floats wide, read as a
// vec4<u64> (wgpu::Features::SHADER_INT64) and split into two vec4<f32> by bitcasts (lanes64.wgsl);
// composed after matmul_lanes.wgsl and lanes64.wgsl (the `matmul_lanes64` family), whose params,
// bindings, biases and store it uses.
//
// Why: lavapipe loads a storage value in an 8-step loop over the lanes, with a bounds check per
// component, so a load costs about its loop: a vec4<u64> costs ~1.1x a vec4<f32> for twice the
// floats (`rssm bench` matmul, 10 x 512^3: see the README). Each step covers 8 k: lane l loads
// row l's 8 k of A (or with TRANS_A k-step l of 8 rows) and its 8 columns of B at each of the 8
// k (or with TRANS_B each column's 8 k): 4 + 8 loads per 32 rows instead of 2 x (4 + 8).
//
// Entry points (workgroup, grid and overrides as `matmul_lanes`):
// - `matmul_lanes_u64` (uses 3, 4, 7, 8): K a multiple of 8, M too with TRANS_A, N too without
//   TRANS_B, and A and B bound at multiples of 32 bytes. Stores as `matmul_lanes`.
// - `matmul_lanes_u64_store8` (uses 3, 7, 8, 9, 10): the same with N a multiple of 8 and C (and
//   Y) bound at multiples of 32 bytes too, so that a lane's 8 columns of a row are all inside
//   or all outside and are stored (and Y loaded, and C read when accumulating) 8 at a time: the
//   epilogue's scalar stores cost as much as a sixth of the kernel.

@group(0) @binding(7) var<storage, read> a8: array<vec4<u64>>;
@group(0) @binding(8) var<storage, read> b8: array<vec4<u64>>;
// store8: Y (GRAD_ACT; bound to the bias slot as well) and C, 8 floats per element.
@group(0) @binding(9) var<storage, read> y8: array<vec4<u64>>;
@group(0) @binding(10) var<storage, read_write> c8: array<vec4<u64>>;

fn act4(x: vec4<f32>) -> vec4<f32> {
    return vec4<f32>(activate(x.x, ACT), activate(x.y, ACT), activate(x.z, ACT), activate(x.w, ACT));
}

fn act_grad4(y: vec4<f32>) -> vec4<f32> {
    return vec4<f32>(activate_grad(y.x, GRAD_ACT), activate_grad(y.y, GRAD_ACT),
                     activate_grad(y.z, GRAD_ACT), activate_grad(y.w, GRAD_ACT));
}

// Add the biases, apply the activation (or the activation derivative at Y) and store (or add
// to) row `row`, columns c0..c0+7 (N a multiple of 8: all inside or all outside).
fn store8(row: u32, c0: u32, lo: vec4<f32>, hi: vec4<f32>) {
    if row >= p.m || c0 >= p.n { return; }
    var x0 = lo;
    var x1 = hi;
    if HAS_BIAS {
        x0 += bias_lo;
        x1 += bias_hi;
    }
    x0 = act4(x0);
    x1 = act4(x1);
    let idx = (row * p.n + c0) / 8u;
    if GRAD_ACT != 0u {
        let y = y8[idx];
        x0 *= act_grad4(lo4(y));
        x1 *= act_grad4(hi4(y));
    }
    if ACC {
        let old = c8[idx];
        x0 += lo4(old);
        x1 += hi4(old);
    }
    c8[idx] = pack8(x0, x1);
}

// This lane's A piece for the 8 rows from r0 at k = 8kq..8kq+7: row r0 + lane's 8 k, or with
// TRANS_A (A stored [K,M]) rows r0..r0+7 at k = 8kq + lane.
fn lane_a8(r0: u32, lane: u32, kq: u32, m: u32, k8: u32, m8: u32) -> vec4<u64> {
    if TRANS_A {
        return a8[(kq * 8u + lane) * m8 + min(r0 / 8u, m8 - 1u)];
    }
    return a8[min(r0 + lane, m - 1u) * k8 + kq];
}

// B at k = 8kq + t for this lane's 8 columns from c0 (TRANS_B: column c0 + t at the 8 k).
fn lane_b8(c0: u32, t: u32, kq: u32, n: u32, k8: u32, n8: u32) -> vec4<u64> {
    if TRANS_B {
        return b8[min(c0 + t, n - 1u) * k8 + kq];
    }
    return b8[(kq * 8u + t) * n8 + min(c0 / 8u, n8 - 1u)];
}

@compute @workgroup_size(8, 1, 1)
fn matmul_lanes_u64(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                    @builtin(subgroup_invocation_id) lane: u32) {
    let r0 = fold_yz(wid, nwg) * ROWS;
    let c0 = wid.x * 64u + lane * 8u;
    let m = p.m;
    let n = p.n;
    let k8 = p.k / 8u;
    let m8 = m / 8u;
    let n8 = n / 8u;
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
    for (var kq = 0u; kq < k8; kq++) {
        let q0 = lane_b8(c0, 0u, kq, n, k8, n8);
        let q1 = lane_b8(c0, 1u, kq, n, k8, n8);
        let q2 = lane_b8(c0, 2u, kq, n, k8, n8);
        let q3 = lane_b8(c0, 3u, kq, n, k8, n8);
        let q4 = lane_b8(c0, 4u, kq, n, k8, n8);
        let q5 = lane_b8(c0, 5u, kq, n, k8, n8);
        let q6 = lane_b8(c0, 6u, kq, n, k8, n8);
        let q7 = lane_b8(c0, 7u, kq, n, k8, n8);
        // bKH: columns c0 + 4H.., k-steps 4K..4K + 3 (column t of the matrix is k-step t).
        var b00 = mat4x4<f32>(lo4(q0), lo4(q1), lo4(q2), lo4(q3));
        var b01 = mat4x4<f32>(hi4(q0), hi4(q1), hi4(q2), hi4(q3));
        var b10 = mat4x4<f32>(lo4(q4), lo4(q5), lo4(q6), lo4(q7));
        var b11 = mat4x4<f32>(hi4(q4), hi4(q5), hi4(q6), hi4(q7));
        if TRANS_B {
            b00 = transpose(mat4x4<f32>(lo4(q0), lo4(q1), lo4(q2), lo4(q3)));
            b01 = transpose(mat4x4<f32>(lo4(q4), lo4(q5), lo4(q6), lo4(q7)));
            b10 = transpose(mat4x4<f32>(hi4(q0), hi4(q1), hi4(q2), hi4(q3)));
            b11 = transpose(mat4x4<f32>(hi4(q4), hi4(q5), hi4(q6), hi4(q7)));
        }
        {
        let aq = lane_a8(r0, lane, kq, m, k8, m8);
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
        if TRANS_A {
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
            let aq = lane_a8(r0 + 8u, lane, kq, m, k8, m8);
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
            if TRANS_A {
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
            let aq = lane_a8(r0 + 16u, lane, kq, m, k8, m8);
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
            if TRANS_A {
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
            let aq = lane_a8(r0 + 24u, lane, kq, m, k8, m8);
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
            if TRANS_A {
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
    if HAS_BIAS { load_bias8(c0); }
    store4(r0, c0, acc0_0);
    store4(r0, c0 + 4u, acc0_1);
    store4(r0 + 1u, c0, acc1_0);
    store4(r0 + 1u, c0 + 4u, acc1_1);
    store4(r0 + 2u, c0, acc2_0);
    store4(r0 + 2u, c0 + 4u, acc2_1);
    store4(r0 + 3u, c0, acc3_0);
    store4(r0 + 3u, c0 + 4u, acc3_1);
    store4(r0 + 4u, c0, acc4_0);
    store4(r0 + 4u, c0 + 4u, acc4_1);
    store4(r0 + 5u, c0, acc5_0);
    store4(r0 + 5u, c0 + 4u, acc5_1);
    store4(r0 + 6u, c0, acc6_0);
    store4(r0 + 6u, c0 + 4u, acc6_1);
    store4(r0 + 7u, c0, acc7_0);
    store4(r0 + 7u, c0 + 4u, acc7_1);
    if ROWS > 8u {
        store4(r0 + 8u, c0, acc8_0);
        store4(r0 + 8u, c0 + 4u, acc8_1);
        store4(r0 + 9u, c0, acc9_0);
        store4(r0 + 9u, c0 + 4u, acc9_1);
        store4(r0 + 10u, c0, acc10_0);
        store4(r0 + 10u, c0 + 4u, acc10_1);
        store4(r0 + 11u, c0, acc11_0);
        store4(r0 + 11u, c0 + 4u, acc11_1);
        store4(r0 + 12u, c0, acc12_0);
        store4(r0 + 12u, c0 + 4u, acc12_1);
        store4(r0 + 13u, c0, acc13_0);
        store4(r0 + 13u, c0 + 4u, acc13_1);
        store4(r0 + 14u, c0, acc14_0);
        store4(r0 + 14u, c0 + 4u, acc14_1);
        store4(r0 + 15u, c0, acc15_0);
        store4(r0 + 15u, c0 + 4u, acc15_1);
    }
    if ROWS > 16u {
        store4(r0 + 16u, c0, acc16_0);
        store4(r0 + 16u, c0 + 4u, acc16_1);
        store4(r0 + 17u, c0, acc17_0);
        store4(r0 + 17u, c0 + 4u, acc17_1);
        store4(r0 + 18u, c0, acc18_0);
        store4(r0 + 18u, c0 + 4u, acc18_1);
        store4(r0 + 19u, c0, acc19_0);
        store4(r0 + 19u, c0 + 4u, acc19_1);
        store4(r0 + 20u, c0, acc20_0);
        store4(r0 + 20u, c0 + 4u, acc20_1);
        store4(r0 + 21u, c0, acc21_0);
        store4(r0 + 21u, c0 + 4u, acc21_1);
        store4(r0 + 22u, c0, acc22_0);
        store4(r0 + 22u, c0 + 4u, acc22_1);
        store4(r0 + 23u, c0, acc23_0);
        store4(r0 + 23u, c0 + 4u, acc23_1);
    }
    if ROWS > 24u {
        store4(r0 + 24u, c0, acc24_0);
        store4(r0 + 24u, c0 + 4u, acc24_1);
        store4(r0 + 25u, c0, acc25_0);
        store4(r0 + 25u, c0 + 4u, acc25_1);
        store4(r0 + 26u, c0, acc26_0);
        store4(r0 + 26u, c0 + 4u, acc26_1);
        store4(r0 + 27u, c0, acc27_0);
        store4(r0 + 27u, c0 + 4u, acc27_1);
        store4(r0 + 28u, c0, acc28_0);
        store4(r0 + 28u, c0 + 4u, acc28_1);
        store4(r0 + 29u, c0, acc29_0);
        store4(r0 + 29u, c0 + 4u, acc29_1);
        store4(r0 + 30u, c0, acc30_0);
        store4(r0 + 30u, c0 + 4u, acc30_1);
        store4(r0 + 31u, c0, acc31_0);
        store4(r0 + 31u, c0 + 4u, acc31_1);
    }
}

@compute @workgroup_size(8, 1, 1)
fn matmul_lanes_u64_store8(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                           @builtin(subgroup_invocation_id) lane: u32) {
    let r0 = fold_yz(wid, nwg) * ROWS;
    let c0 = wid.x * 64u + lane * 8u;
    let m = p.m;
    let n = p.n;
    let k8 = p.k / 8u;
    let m8 = m / 8u;
    let n8 = n / 8u;
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
    for (var kq = 0u; kq < k8; kq++) {
        let q0 = lane_b8(c0, 0u, kq, n, k8, n8);
        let q1 = lane_b8(c0, 1u, kq, n, k8, n8);
        let q2 = lane_b8(c0, 2u, kq, n, k8, n8);
        let q3 = lane_b8(c0, 3u, kq, n, k8, n8);
        let q4 = lane_b8(c0, 4u, kq, n, k8, n8);
        let q5 = lane_b8(c0, 5u, kq, n, k8, n8);
        let q6 = lane_b8(c0, 6u, kq, n, k8, n8);
        let q7 = lane_b8(c0, 7u, kq, n, k8, n8);
        // bKH: columns c0 + 4H.., k-steps 4K..4K + 3 (column t of the matrix is k-step t).
        var b00 = mat4x4<f32>(lo4(q0), lo4(q1), lo4(q2), lo4(q3));
        var b01 = mat4x4<f32>(hi4(q0), hi4(q1), hi4(q2), hi4(q3));
        var b10 = mat4x4<f32>(lo4(q4), lo4(q5), lo4(q6), lo4(q7));
        var b11 = mat4x4<f32>(hi4(q4), hi4(q5), hi4(q6), hi4(q7));
        if TRANS_B {
            b00 = transpose(mat4x4<f32>(lo4(q0), lo4(q1), lo4(q2), lo4(q3)));
            b01 = transpose(mat4x4<f32>(lo4(q4), lo4(q5), lo4(q6), lo4(q7)));
            b10 = transpose(mat4x4<f32>(hi4(q0), hi4(q1), hi4(q2), hi4(q3)));
            b11 = transpose(mat4x4<f32>(hi4(q4), hi4(q5), hi4(q6), hi4(q7)));
        }
        {
        let aq = lane_a8(r0, lane, kq, m, k8, m8);
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
        if TRANS_A {
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
            let aq = lane_a8(r0 + 8u, lane, kq, m, k8, m8);
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
            if TRANS_A {
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
            let aq = lane_a8(r0 + 16u, lane, kq, m, k8, m8);
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
            if TRANS_A {
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
            let aq = lane_a8(r0 + 24u, lane, kq, m, k8, m8);
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
            if TRANS_A {
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
    if HAS_BIAS { load_bias8(c0); }
    store8(r0, c0, acc0_0, acc0_1);
    store8(r0 + 1u, c0, acc1_0, acc1_1);
    store8(r0 + 2u, c0, acc2_0, acc2_1);
    store8(r0 + 3u, c0, acc3_0, acc3_1);
    store8(r0 + 4u, c0, acc4_0, acc4_1);
    store8(r0 + 5u, c0, acc5_0, acc5_1);
    store8(r0 + 6u, c0, acc6_0, acc6_1);
    store8(r0 + 7u, c0, acc7_0, acc7_1);
    if ROWS > 8u {
        store8(r0 + 8u, c0, acc8_0, acc8_1);
        store8(r0 + 9u, c0, acc9_0, acc9_1);
        store8(r0 + 10u, c0, acc10_0, acc10_1);
        store8(r0 + 11u, c0, acc11_0, acc11_1);
        store8(r0 + 12u, c0, acc12_0, acc12_1);
        store8(r0 + 13u, c0, acc13_0, acc13_1);
        store8(r0 + 14u, c0, acc14_0, acc14_1);
        store8(r0 + 15u, c0, acc15_0, acc15_1);
    }
    if ROWS > 16u {
        store8(r0 + 16u, c0, acc16_0, acc16_1);
        store8(r0 + 17u, c0, acc17_0, acc17_1);
        store8(r0 + 18u, c0, acc18_0, acc18_1);
        store8(r0 + 19u, c0, acc19_0, acc19_1);
        store8(r0 + 20u, c0, acc20_0, acc20_1);
        store8(r0 + 21u, c0, acc21_0, acc21_1);
        store8(r0 + 22u, c0, acc22_0, acc22_1);
        store8(r0 + 23u, c0, acc23_0, acc23_1);
    }
    if ROWS > 24u {
        store8(r0 + 24u, c0, acc24_0, acc24_1);
        store8(r0 + 25u, c0, acc25_0, acc25_1);
        store8(r0 + 26u, c0, acc26_0, acc26_1);
        store8(r0 + 27u, c0, acc27_0, acc27_1);
        store8(r0 + 28u, c0, acc28_0, acc28_1);
        store8(r0 + 29u, c0, acc29_0, acc29_1);
        store8(r0 + 30u, c0, acc30_0, acc30_1);
        store8(r0 + 31u, c0, acc31_0, acc31_1);
    }
}
