"""Writes shaders/matmul_lanes.wgsl: the subgroup matmul, with its register blocks written out
(WGSL has no macros, and lavapipe neither unrolls loops nor keeps a dynamically indexed private
array in registers). The two entry points differ only in how a lane loads its operands (vec4
loads for aligned operands, scalar loads for any sizes); both bodies come from `entry` below.
Edit this script, not the .wgsl file, then run it:

    python3 shaders/gen/matmul_lanes.py          # rewrite the shader
    python3 shaders/gen/matmul_lanes.py --check  # exit 1 if it differs (tests/shaders_validate.rs)
"""

from write_shader import write_or_check


L = []
w = L.append
w("""// Written by shaders/gen/matmul_lanes.py: edit that script, not this file.
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
}""")


def entry(name, sizes, steps, load_a, load_b):
    """One entry point: `sizes` the lines that set the loop's sizes, `steps` its trip count,
    load_a(rows) / load_b(cols) the expressions that load a lane's A and B pieces."""
    pad = " " * (len(name) + 4)
    w("")
    w("@compute @workgroup_size(8, 1, 1)")
    w("fn %s(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>," % name)
    w("%s@builtin(subgroup_invocation_id) lane: u32) {" % pad)
    w("    let r0 = fold_yz(wid, nwg) * ROWS;")
    w("    let c0 = wid.x * 64u + lane * 8u;")
    for line in sizes:
        w("    " + line)
    w("    // acc_i_h: row r0 + i, columns c0 + 4h..c0 + 4h + 3.")
    for i in range(32):
        for h in range(2):
            w("    var acc%d_%d = vec4<f32>(0.0);" % (i, h))
    w("    for (var kq = 0u; kq < %s; kq++) {" % steps)
    w("        let av = %s;" % load_a("r0"))
    w("        let b0 = %s;" % load_b("c0"))
    w("        let b1 = %s;" % load_b("c0 + 4u"))
    w("        // Every lane's piece, in every lane (constant ids: an extract and a splat each).")
    for j in range(8):
        w("        let v%d = subgroupBroadcast(av, %du);" % (j, j))
    w("        // Row i's A at the four k: lane i's vec4, or with TRANS_A gathered from the lanes that")
    w("        // hold k-step t (lanes 2t and 2t + 1, rows 0-3 and 4-7).")
    w("        var lo = mat4x4<f32>(v0, v1, v2, v3);")
    w("        var hi = mat4x4<f32>(v4, v5, v6, v7);")
    w("        if TRANS_A {")
    w("            lo = transpose(mat4x4<f32>(v0, v2, v4, v6));")
    w("            hi = transpose(mat4x4<f32>(v1, v3, v5, v7));")
    w("        }")
    for i in range(8):
        half = "lo" if i < 4 else "hi"
        w("        acc%d_0 += b0 * %s[%d];" % (i, half, i % 4))
        w("        acc%d_1 += b1 * %s[%d];" % (i, half, i % 4))
    for blk in range(1, 4):
        w("        if ROWS > %du {" % (8 * blk))
        w("            let aw = %s;" % load_a("r0 + %du" % (8 * blk)))
        for j in range(8):
            w("            let u%d = subgroupBroadcast(aw, %du);" % (j, j))
        w("            var lo2 = mat4x4<f32>(u0, u1, u2, u3);")
        w("            var hi2 = mat4x4<f32>(u4, u5, u6, u7);")
        w("            if TRANS_A {")
        w("                lo2 = transpose(mat4x4<f32>(u0, u2, u4, u6));")
        w("                hi2 = transpose(mat4x4<f32>(u1, u3, u5, u7));")
        w("            }")
        for i in range(8):
            half = "lo2" if i < 4 else "hi2"
            row = 8 * blk + i
            w("            acc%d_0 += b0 * %s[%d];" % (row, half, i % 4))
            w("            acc%d_1 += b1 * %s[%d];" % (row, half, i % 4))
        w("        }")
    w("    }")
    w("    if HAS_BIAS { load_bias8(c0); }")

    def stores(rows, indent):
        for i in rows:
            r = "r0" if i == 0 else "r0 + %du" % i
            w(indent + "store4(%s, c0, acc%d_0);" % (r, i))
            w(indent + "store4(%s, c0 + 4u, acc%d_1);" % (r, i))

    stores(range(8), "    ")
    for blk in range(1, 4):
        w("    if ROWS > %du {" % (8 * blk))
        stores(range(8 * blk, 8 * blk + 8), "        ")
        w("    }")
    w("}")


entry(
    "matmul_lanes",
    ["let m = p.m;", "let n = p.n;", "let k4 = p.k / 4u;", "let m4 = m / 4u;", "let n4 = n / 4u;"],
    "k4",
    lambda r: "lane_a(%s, lane, kq, m, k4, m4)" % r,
    lambda c: "lane_b(%s, kq, n, k4, n4)" % c,
)
entry(
    "matmul_lanes_any",
    ["let m = p.m;", "let n = p.n;", "let k = p.k;", "// Steps of four k; the last one may be partial."],
    "(k + 3u) / 4u",
    lambda r: "lane_a_any(%s, lane, kq, m, k)" % r,
    lambda c: "lane_b_any(%s, kq, n, k)" % c,
)
write_or_check("matmul_lanes.wgsl", "\n".join(L) + "\n")
