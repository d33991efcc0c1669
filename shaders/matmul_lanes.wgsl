// Written by shaders/gen/matmul_lanes.py: edit that script, not this file.
//
// matmul_lanes.wgsl: C[M,N] (+)= act(op(A) op(B) + bias) for CPU drivers with 8-lane subgroups
// (lavapipe on AVX2): the lanes of a subgroup share the loads of A through subgroupBroadcast.
//
// Why: lavapipe runs the 8 invocations of a subgroup as the lanes of one SIMD register, but it
// loads every storage-buffer value lane by lane (an 8-step loop with a bounds check per lane
// and component), so a kernel there costs what its loads cost; FMAs are almost free. In
// matmul.wgsl's 8x8 blocks each lane loads its own rows of A and columns of B: 16 vec4 loads
// for 256 FMAs. Here all 8 lanes work on the same ROWS rows: per 8 rows, lane l loads one vec4
// of A (row l at four k, or with TRANS_A four rows at one k), the subgroup broadcasts them (an
// extract + splat in registers), and each lane loads only its own 8 columns of B (8 vec4 for
// four k). ROWS = 32: 12 vec4 loads for 1,024 FMAs. Its own file because subgroup operations
// need the device feature (wgpu::Features::SUBGROUP), which the other matmul kernels must not
// depend on.
//
// Same operands, overrides and bindings as matmul.wgsl (TRANS_A, TRANS_B, HAS_BIAS, ACC, ACT,
// GRAD_ACT: the activation derivative at Y, read from binding 3, multiplies each result).
// Bindings: 0 params (m, n, k), 1 A and 2 B as f32, 3 bias [N] (only with HAS_BIAS; Y [M,N]
// with GRAD_ACT), 4 C (read_write), 5 A and 6 B as vec4. Override ROWS: rows per workgroup, 8,
// 16 or 32 (ROWS / 8 A loads per lane and step, 2 * ROWS vec4 accumulators per lane).
// Entry points:
// - `matmul_lanes` (uses 3, 4, 5, 6): every contiguous axis a multiple of 4 (K, M when
//   TRANS_A, N unless TRANS_B), as matmul.wgsl's `matmul_vec4`.
// - `matmul_lanes_any` (uses 1, 2, 3, 4): any sizes (e.g. the 230-wide features, a K = 1
//   outer product). The same four-k steps from scalar loads, which cost lavapipe what a vec4
//   load costs (it loads a vec4 component by component); k past the end reads as zero.
// Workgroup (8,1,1) = one subgroup of exactly 8 lanes (the Rust side uses this kernel only on
// adapters whose subgroups are 8 wide); a workgroup computes ROWS rows x 64 columns of C, each
// lane the ROWS rows x its 8 columns. Grid: x = ceil(N/64), y = ceil(M/ROWS) (y folds into z).
// Out-of-range rows and columns are clamped on load and masked on store. The blocks of 8 rows
// are written out (acc<row>_<column quad>): lavapipe neither unrolls loops nor keeps a
// dynamically indexed private array in registers.

struct Params {
    m: u32,
    n: u32,
    k: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> a: array<f32>;
@group(0) @binding(2) var<storage, read> b: array<f32>;
@group(0) @binding(3) var<storage, read> bias: array<f32>;
@group(0) @binding(4) var<storage, read_write> c: array<f32>;
@group(0) @binding(5) var<storage, read> a4: array<vec4<f32>>;
@group(0) @binding(6) var<storage, read> b4: array<vec4<f32>>;

override TRANS_A: bool = false;
override TRANS_B: bool = false;
override HAS_BIAS: bool = false;
override ACC: bool = false;
override ACT: u32 = 0u;
override GRAD_ACT: u32 = 0u;
// ROWS: rows per workgroup, 8, 16 or 32 (ROWS / 8 A loads per lane, ROWS * 2 vec4
// accumulators): 9, 10 or 12 vec4 loads for 256, 512 or 1024 FMAs.
override ROWS: u32 = 8u;

// This lane's piece of the 8 rows' A at k = 4kq..4kq+3. Without TRANS_A: row r0 + lane, four
// k. With TRANS_A (A stored [K,M]): k = 4kq + lane/2, rows r0 + 4(lane%2)..+3.
fn lane_a(r0: u32, lane: u32, kq: u32, m: u32, k4: u32, m4: u32) -> vec4<f32> {
    if TRANS_A {
        let rq = min(r0 / 4u + (lane & 1u), m4 - 1u);
        return a4[(kq * 4u + (lane >> 1u)) * m4 + rq];
    }
    return a4[min(r0 + lane, m - 1u) * k4 + kq];
}

// Four columns c0..c0+3 of B at k = 4kq..: column t of the result is k-step t, its entries the
// four columns (so `m * a_row` adds sum_t a_row[t] * B[4kq+t, cols]).
fn lane_b(c0: u32, kq: u32, n: u32, k4: u32, n4: u32) -> mat4x4<f32> {
    if TRANS_B {
        let cc = min(vec4<u32>(c0, c0 + 1u, c0 + 2u, c0 + 3u), vec4<u32>(n - 1u));
        return transpose(mat4x4<f32>(b4[cc.x * k4 + kq], b4[cc.y * k4 + kq],
                                     b4[cc.z * k4 + kq], b4[cc.w * k4 + kq]));
    }
    let cq = min(c0 / 4u, n4 - 1u);
    let kk = kq * 4u;
    return mat4x4<f32>(b4[kk * n4 + cq], b4[(kk + 1u) * n4 + cq], b4[(kk + 2u) * n4 + cq],
                       b4[(kk + 3u) * n4 + cq]);
}

// `lane_a` from scalar loads, for any M and K: rows and k clamped on load, k >= K zero.
fn lane_a_any(r0: u32, lane: u32, kq: u32, m: u32, k: u32) -> vec4<f32> {
    if TRANS_A {
        let kk = kq * 4u + (lane >> 1u);
        let rr = min(vec4<u32>(r0 + 4u * (lane & 1u)) + vec4<u32>(0u, 1u, 2u, 3u), vec4<u32>(m - 1u));
        let base = min(kk, k - 1u) * m;
        let v = vec4<f32>(a[base + rr.x], a[base + rr.y], a[base + rr.z], a[base + rr.w]);
        return select(vec4<f32>(0.0), v, kk < k);
    }
    let kv = vec4<u32>(kq * 4u) + vec4<u32>(0u, 1u, 2u, 3u);
    let kc = min(kv, vec4<u32>(k - 1u));
    let base = min(r0 + lane, m - 1u) * k;
    let v = vec4<f32>(a[base + kc.x], a[base + kc.y], a[base + kc.z], a[base + kc.w]);
    return select(vec4<f32>(0.0), v, kv < vec4<u32>(k));
}

// `lane_b` from scalar loads, for any N and K (columns and k clamped on load, k >= K zero, so
// that a clamped copy of an infinite entry cannot turn a zero product into NaN).
fn lane_b_any(c0: u32, kq: u32, n: u32, k: u32) -> mat4x4<f32> {
    let cc = min(vec4<u32>(c0) + vec4<u32>(0u, 1u, 2u, 3u), vec4<u32>(n - 1u));
    let kv = vec4<u32>(kq * 4u) + vec4<u32>(0u, 1u, 2u, 3u);
    let kc = min(kv, vec4<u32>(k - 1u));
    let live = kv < vec4<u32>(k);
    let z = vec4<f32>(0.0);
    if TRANS_B {
        // B stored [N,K]: row j of this block is column cc[j] at the four k.
        let r0 = cc.x * k;
        let r1 = cc.y * k;
        let r2 = cc.z * k;
        let r3 = cc.w * k;
        return transpose(mat4x4<f32>(
            select(z, vec4<f32>(b[r0 + kc.x], b[r0 + kc.y], b[r0 + kc.z], b[r0 + kc.w]), live),
            select(z, vec4<f32>(b[r1 + kc.x], b[r1 + kc.y], b[r1 + kc.z], b[r1 + kc.w]), live),
            select(z, vec4<f32>(b[r2 + kc.x], b[r2 + kc.y], b[r2 + kc.z], b[r2 + kc.w]), live),
            select(z, vec4<f32>(b[r3 + kc.x], b[r3 + kc.y], b[r3 + kc.z], b[r3 + kc.w]), live)));
    }
    let k0 = kc.x * n;
    let k1 = kc.y * n;
    let k2 = kc.z * n;
    let k3 = kc.w * n;
    return mat4x4<f32>(
        select(z, vec4<f32>(b[k0 + cc.x], b[k0 + cc.y], b[k0 + cc.z], b[k0 + cc.w]), live.x),
        select(z, vec4<f32>(b[k1 + cc.x], b[k1 + cc.y], b[k1 + cc.z], b[k1 + cc.w]), live.y),
        select(z, vec4<f32>(b[k2 + cc.x], b[k2 + cc.y], b[k2 + cc.z], b[k2 + cc.w]), live.z),
        select(z, vec4<f32>(b[k3 + cc.x], b[k3 + cc.y], b[k3 + cc.z], b[k3 + cc.w]), live.w));
}

// This lane's 8 columns' biases, loaded once (HAS_BIAS): columns c0..c0+3 and c0+4..c0+7.
var<private> bias_lo: vec4<f32>;
var<private> bias_hi: vec4<f32>;

fn load_bias8(c0: u32) {
    let last = vec4<u32>(p.n - 1u);
    let lo = min(vec4<u32>(c0) + vec4<u32>(0u, 1u, 2u, 3u), last);
    let hi = min(vec4<u32>(c0) + vec4<u32>(4u, 5u, 6u, 7u), last);
    bias_lo = vec4<f32>(bias[lo.x], bias[lo.y], bias[lo.z], bias[lo.w]);
    bias_hi = vec4<f32>(bias[hi.x], bias[hi.y], bias[hi.z], bias[hi.w]);
}

// Add the bias, apply the activation and store (or accumulate) row `row`, columns col0..+3
// (col0 is c0 or c0 + 4).
fn store4(row: u32, col0: u32, v: vec4<f32>) {
    if row >= p.m { return; }
    let bv = select(bias_hi, bias_lo, (col0 & 7u) == 0u);
    for (var j = 0u; j < 4u; j++) {
        let col = col0 + j;
        if col >= p.n { return; }
        var x = v[j];
        if HAS_BIAS { x += bv[j]; }
        x = activate(x, ACT);
        let idx = row * p.n + col;
        if GRAD_ACT != 0u { x *= activate_grad(bias[idx], GRAD_ACT); }
        if ACC { c[idx] += x; } else { c[idx] = x; }
    }
}

@compute @workgroup_size(8, 1, 1)
fn matmul_lanes(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                @builtin(subgroup_invocation_id) lane: u32) {
    let r0 = fold_yz(wid, nwg) * ROWS;
    let c0 = wid.x * 64u + lane * 8u;
    let m = p.m;
    let n = p.n;
    let k4 = p.k / 4u;
    let m4 = m / 4u;
    let n4 = n / 4u;
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
    for (var kq = 0u; kq < k4; kq++) {
        let av = lane_a(r0, lane, kq, m, k4, m4);
        let b0 = lane_b(c0, kq, n, k4, n4);
        let b1 = lane_b(c0 + 4u, kq, n, k4, n4);
        // Every lane's piece, in every lane (constant ids: an extract and a splat each).
        let v0 = subgroupBroadcast(av, 0u);
        let v1 = subgroupBroadcast(av, 1u);
        let v2 = subgroupBroadcast(av, 2u);
        let v3 = subgroupBroadcast(av, 3u);
        let v4 = subgroupBroadcast(av, 4u);
        let v5 = subgroupBroadcast(av, 5u);
        let v6 = subgroupBroadcast(av, 6u);
        let v7 = subgroupBroadcast(av, 7u);
        // Row i's A at the four k: lane i's vec4, or with TRANS_A gathered from the lanes that
        // hold k-step t (lanes 2t and 2t + 1, rows 0-3 and 4-7).
        var lo = mat4x4<f32>(v0, v1, v2, v3);
        var hi = mat4x4<f32>(v4, v5, v6, v7);
        if TRANS_A {
            lo = transpose(mat4x4<f32>(v0, v2, v4, v6));
            hi = transpose(mat4x4<f32>(v1, v3, v5, v7));
        }
        acc0_0 += b0 * lo[0];
        acc0_1 += b1 * lo[0];
        acc1_0 += b0 * lo[1];
        acc1_1 += b1 * lo[1];
        acc2_0 += b0 * lo[2];
        acc2_1 += b1 * lo[2];
        acc3_0 += b0 * lo[3];
        acc3_1 += b1 * lo[3];
        acc4_0 += b0 * hi[0];
        acc4_1 += b1 * hi[0];
        acc5_0 += b0 * hi[1];
        acc5_1 += b1 * hi[1];
        acc6_0 += b0 * hi[2];
        acc6_1 += b1 * hi[2];
        acc7_0 += b0 * hi[3];
        acc7_1 += b1 * hi[3];
        if ROWS > 8u {
            let aw = lane_a(r0 + 8u, lane, kq, m, k4, m4);
            let u0 = subgroupBroadcast(aw, 0u);
            let u1 = subgroupBroadcast(aw, 1u);
            let u2 = subgroupBroadcast(aw, 2u);
            let u3 = subgroupBroadcast(aw, 3u);
            let u4 = subgroupBroadcast(aw, 4u);
            let u5 = subgroupBroadcast(aw, 5u);
            let u6 = subgroupBroadcast(aw, 6u);
            let u7 = subgroupBroadcast(aw, 7u);
            var lo2 = mat4x4<f32>(u0, u1, u2, u3);
            var hi2 = mat4x4<f32>(u4, u5, u6, u7);
            if TRANS_A {
                lo2 = transpose(mat4x4<f32>(u0, u2, u4, u6));
                hi2 = transpose(mat4x4<f32>(u1, u3, u5, u7));
            }
            acc8_0 += b0 * lo2[0];
            acc8_1 += b1 * lo2[0];
            acc9_0 += b0 * lo2[1];
            acc9_1 += b1 * lo2[1];
            acc10_0 += b0 * lo2[2];
            acc10_1 += b1 * lo2[2];
            acc11_0 += b0 * lo2[3];
            acc11_1 += b1 * lo2[3];
            acc12_0 += b0 * hi2[0];
            acc12_1 += b1 * hi2[0];
            acc13_0 += b0 * hi2[1];
            acc13_1 += b1 * hi2[1];
            acc14_0 += b0 * hi2[2];
            acc14_1 += b1 * hi2[2];
            acc15_0 += b0 * hi2[3];
            acc15_1 += b1 * hi2[3];
        }
        if ROWS > 16u {
            let aw = lane_a(r0 + 16u, lane, kq, m, k4, m4);
            let u0 = subgroupBroadcast(aw, 0u);
            let u1 = subgroupBroadcast(aw, 1u);
            let u2 = subgroupBroadcast(aw, 2u);
            let u3 = subgroupBroadcast(aw, 3u);
            let u4 = subgroupBroadcast(aw, 4u);
            let u5 = subgroupBroadcast(aw, 5u);
            let u6 = subgroupBroadcast(aw, 6u);
            let u7 = subgroupBroadcast(aw, 7u);
            var lo2 = mat4x4<f32>(u0, u1, u2, u3);
            var hi2 = mat4x4<f32>(u4, u5, u6, u7);
            if TRANS_A {
                lo2 = transpose(mat4x4<f32>(u0, u2, u4, u6));
                hi2 = transpose(mat4x4<f32>(u1, u3, u5, u7));
            }
            acc16_0 += b0 * lo2[0];
            acc16_1 += b1 * lo2[0];
            acc17_0 += b0 * lo2[1];
            acc17_1 += b1 * lo2[1];
            acc18_0 += b0 * lo2[2];
            acc18_1 += b1 * lo2[2];
            acc19_0 += b0 * lo2[3];
            acc19_1 += b1 * lo2[3];
            acc20_0 += b0 * hi2[0];
            acc20_1 += b1 * hi2[0];
            acc21_0 += b0 * hi2[1];
            acc21_1 += b1 * hi2[1];
            acc22_0 += b0 * hi2[2];
            acc22_1 += b1 * hi2[2];
            acc23_0 += b0 * hi2[3];
            acc23_1 += b1 * hi2[3];
        }
        if ROWS > 24u {
            let aw = lane_a(r0 + 24u, lane, kq, m, k4, m4);
            let u0 = subgroupBroadcast(aw, 0u);
            let u1 = subgroupBroadcast(aw, 1u);
            let u2 = subgroupBroadcast(aw, 2u);
            let u3 = subgroupBroadcast(aw, 3u);
            let u4 = subgroupBroadcast(aw, 4u);
            let u5 = subgroupBroadcast(aw, 5u);
            let u6 = subgroupBroadcast(aw, 6u);
            let u7 = subgroupBroadcast(aw, 7u);
            var lo2 = mat4x4<f32>(u0, u1, u2, u3);
            var hi2 = mat4x4<f32>(u4, u5, u6, u7);
            if TRANS_A {
                lo2 = transpose(mat4x4<f32>(u0, u2, u4, u6));
                hi2 = transpose(mat4x4<f32>(u1, u3, u5, u7));
            }
            acc24_0 += b0 * lo2[0];
            acc24_1 += b1 * lo2[0];
            acc25_0 += b0 * lo2[1];
            acc25_1 += b1 * lo2[1];
            acc26_0 += b0 * lo2[2];
            acc26_1 += b1 * lo2[2];
            acc27_0 += b0 * lo2[3];
            acc27_1 += b1 * lo2[3];
            acc28_0 += b0 * hi2[0];
            acc28_1 += b1 * hi2[0];
            acc29_0 += b0 * hi2[1];
            acc29_1 += b1 * hi2[1];
            acc30_0 += b0 * hi2[2];
            acc30_1 += b1 * hi2[2];
            acc31_0 += b0 * hi2[3];
            acc31_1 += b1 * hi2[3];
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
fn matmul_lanes_any(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                    @builtin(subgroup_invocation_id) lane: u32) {
    let r0 = fold_yz(wid, nwg) * ROWS;
    let c0 = wid.x * 64u + lane * 8u;
    let m = p.m;
    let n = p.n;
    let k = p.k;
    // Steps of four k; the last one may be partial.
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
    for (var kq = 0u; kq < (k + 3u) / 4u; kq++) {
        let av = lane_a_any(r0, lane, kq, m, k);
        let b0 = lane_b_any(c0, kq, n, k);
        let b1 = lane_b_any(c0 + 4u, kq, n, k);
        // Every lane's piece, in every lane (constant ids: an extract and a splat each).
        let v0 = subgroupBroadcast(av, 0u);
        let v1 = subgroupBroadcast(av, 1u);
        let v2 = subgroupBroadcast(av, 2u);
        let v3 = subgroupBroadcast(av, 3u);
        let v4 = subgroupBroadcast(av, 4u);
        let v5 = subgroupBroadcast(av, 5u);
        let v6 = subgroupBroadcast(av, 6u);
        let v7 = subgroupBroadcast(av, 7u);
        // Row i's A at the four k: lane i's vec4, or with TRANS_A gathered from the lanes that
        // hold k-step t (lanes 2t and 2t + 1, rows 0-3 and 4-7).
        var lo = mat4x4<f32>(v0, v1, v2, v3);
        var hi = mat4x4<f32>(v4, v5, v6, v7);
        if TRANS_A {
            lo = transpose(mat4x4<f32>(v0, v2, v4, v6));
            hi = transpose(mat4x4<f32>(v1, v3, v5, v7));
        }
        acc0_0 += b0 * lo[0];
        acc0_1 += b1 * lo[0];
        acc1_0 += b0 * lo[1];
        acc1_1 += b1 * lo[1];
        acc2_0 += b0 * lo[2];
        acc2_1 += b1 * lo[2];
        acc3_0 += b0 * lo[3];
        acc3_1 += b1 * lo[3];
        acc4_0 += b0 * hi[0];
        acc4_1 += b1 * hi[0];
        acc5_0 += b0 * hi[1];
        acc5_1 += b1 * hi[1];
        acc6_0 += b0 * hi[2];
        acc6_1 += b1 * hi[2];
        acc7_0 += b0 * hi[3];
        acc7_1 += b1 * hi[3];
        if ROWS > 8u {
            let aw = lane_a_any(r0 + 8u, lane, kq, m, k);
            let u0 = subgroupBroadcast(aw, 0u);
            let u1 = subgroupBroadcast(aw, 1u);
            let u2 = subgroupBroadcast(aw, 2u);
            let u3 = subgroupBroadcast(aw, 3u);
            let u4 = subgroupBroadcast(aw, 4u);
            let u5 = subgroupBroadcast(aw, 5u);
            let u6 = subgroupBroadcast(aw, 6u);
            let u7 = subgroupBroadcast(aw, 7u);
            var lo2 = mat4x4<f32>(u0, u1, u2, u3);
            var hi2 = mat4x4<f32>(u4, u5, u6, u7);
            if TRANS_A {
                lo2 = transpose(mat4x4<f32>(u0, u2, u4, u6));
                hi2 = transpose(mat4x4<f32>(u1, u3, u5, u7));
            }
            acc8_0 += b0 * lo2[0];
            acc8_1 += b1 * lo2[0];
            acc9_0 += b0 * lo2[1];
            acc9_1 += b1 * lo2[1];
            acc10_0 += b0 * lo2[2];
            acc10_1 += b1 * lo2[2];
            acc11_0 += b0 * lo2[3];
            acc11_1 += b1 * lo2[3];
            acc12_0 += b0 * hi2[0];
            acc12_1 += b1 * hi2[0];
            acc13_0 += b0 * hi2[1];
            acc13_1 += b1 * hi2[1];
            acc14_0 += b0 * hi2[2];
            acc14_1 += b1 * hi2[2];
            acc15_0 += b0 * hi2[3];
            acc15_1 += b1 * hi2[3];
        }
        if ROWS > 16u {
            let aw = lane_a_any(r0 + 16u, lane, kq, m, k);
            let u0 = subgroupBroadcast(aw, 0u);
            let u1 = subgroupBroadcast(aw, 1u);
            let u2 = subgroupBroadcast(aw, 2u);
            let u3 = subgroupBroadcast(aw, 3u);
            let u4 = subgroupBroadcast(aw, 4u);
            let u5 = subgroupBroadcast(aw, 5u);
            let u6 = subgroupBroadcast(aw, 6u);
            let u7 = subgroupBroadcast(aw, 7u);
            var lo2 = mat4x4<f32>(u0, u1, u2, u3);
            var hi2 = mat4x4<f32>(u4, u5, u6, u7);
            if TRANS_A {
                lo2 = transpose(mat4x4<f32>(u0, u2, u4, u6));
                hi2 = transpose(mat4x4<f32>(u1, u3, u5, u7));
            }
            acc16_0 += b0 * lo2[0];
            acc16_1 += b1 * lo2[0];
            acc17_0 += b0 * lo2[1];
            acc17_1 += b1 * lo2[1];
            acc18_0 += b0 * lo2[2];
            acc18_1 += b1 * lo2[2];
            acc19_0 += b0 * lo2[3];
            acc19_1 += b1 * lo2[3];
            acc20_0 += b0 * hi2[0];
            acc20_1 += b1 * hi2[0];
            acc21_0 += b0 * hi2[1];
            acc21_1 += b1 * hi2[1];
            acc22_0 += b0 * hi2[2];
            acc22_1 += b1 * hi2[2];
            acc23_0 += b0 * hi2[3];
            acc23_1 += b1 * hi2[3];
        }
        if ROWS > 24u {
            let aw = lane_a_any(r0 + 24u, lane, kq, m, k);
            let u0 = subgroupBroadcast(aw, 0u);
            let u1 = subgroupBroadcast(aw, 1u);
            let u2 = subgroupBroadcast(aw, 2u);
            let u3 = subgroupBroadcast(aw, 3u);
            let u4 = subgroupBroadcast(aw, 4u);
            let u5 = subgroupBroadcast(aw, 5u);
            let u6 = subgroupBroadcast(aw, 6u);
            let u7 = subgroupBroadcast(aw, 7u);
            var lo2 = mat4x4<f32>(u0, u1, u2, u3);
            var hi2 = mat4x4<f32>(u4, u5, u6, u7);
            if TRANS_A {
                lo2 = transpose(mat4x4<f32>(u0, u2, u4, u6));
                hi2 = transpose(mat4x4<f32>(u1, u3, u5, u7));
            }
            acc24_0 += b0 * lo2[0];
            acc24_1 += b1 * lo2[0];
            acc25_0 += b0 * lo2[1];
            acc25_1 += b1 * lo2[1];
            acc26_0 += b0 * lo2[2];
            acc26_1 += b1 * lo2[2];
            acc27_0 += b0 * lo2[3];
            acc27_1 += b1 * lo2[3];
            acc28_0 += b0 * hi2[0];
            acc28_1 += b1 * hi2[0];
            acc29_0 += b0 * hi2[1];
            acc29_1 += b1 * hi2[1];
            acc30_0 += b0 * hi2[2];
            acc30_1 += b1 * hi2[2];
            acc31_0 += b0 * hi2[3];
            acc31_1 += b1 * hi2[3];
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
