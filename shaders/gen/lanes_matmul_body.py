"""The shared generator of shaders/matmul_lanes.wgsl, matmul_lanes64.wgsl and conv_nhwc.wgsl (one
matmul body with its register blocks written out, as a matmul and as a convolution); each file
is written by the script named after it (matmul_lanes.py, matmul_lanes64.py, conv_nhwc.py),
which imports this module. Register blocks are written out
(WGSL has no macros, and lavapipe neither unrolls loops nor keeps a dynamically indexed private
array in registers). matmul_lanes.wgsl's two entry points differ only in how a lane loads its
operands (vec4 loads for
aligned operands, scalar loads for any sizes); both bodies come from `entry` below. Edit this
script, not the .wgsl file, then run it:

    python3 shaders/gen/matmul_lanes.py          # rewrite the shader (likewise matmul_lanes64.py,
    python3 shaders/gen/matmul_lanes.py --check  # conv_nhwc.py); --check: exit 1 if it differs
"""

import pathlib
import sys


def write_or_check(file_name, text):
    """Write shaders/<file_name>, or with --check exit 1 if it differs from `text`."""
    path = pathlib.Path(__file__).resolve().parent.parent / file_name
    if "--check" in sys.argv:
        if path.read_text() != text:
            script = file_name.replace(".wgsl", ".py")
            sys.exit(f"shaders/{file_name} differs from what shaders/gen/{script} writes")
        return
    path.write_text(text)


# The text of each file, by name (the scripts named after the files write them).
TEXTS = {}


L = []
w = L.append
w("""// Written by shaders/gen/matmul_lanes.py (from lanes_matmul_body.py): edit those, not this
// file.
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
TEXTS["matmul_lanes.wgsl"] = "\n".join(L) + "\n"

# matmul_lanes64.wgsl: the same kernel with 8-float loads (composed after matmul_lanes.wgsl).
L = []
w = L.append
w("""// Written by shaders/gen/matmul_lanes64.py (from lanes_matmul_body.py): edit those, not this
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
}""")


def step64(ind, load_b, load_a, trans_a, trans_b):
    """One step of 8 k of the 8-float-load body, at indentation `ind`: each lane's 8 B pieces
    (`load_b(t)`, t = 0..7) and, per block of 8 rows from r0 + 8*blk, its A piece
    (`load_a(rows)`), broadcast to the subgroup and multiplied into acc<row>_<half>.
    `trans_a` / `trans_b`: WGSL expressions, the layouts of A and B (matmul_lanes.wgsl)."""
    for t in range(8):
        w(ind + "let q%d = %s;" % (t, load_b(t)))
    w(ind + "// bKH: columns c0 + 4H.., k-steps 4K..4K + 3 (column t of the matrix is k-step t).")
    w(ind + "var b00 = mat4x4<f32>(lo4(q0), lo4(q1), lo4(q2), lo4(q3));")
    w(ind + "var b01 = mat4x4<f32>(hi4(q0), hi4(q1), hi4(q2), hi4(q3));")
    w(ind + "var b10 = mat4x4<f32>(lo4(q4), lo4(q5), lo4(q6), lo4(q7));")
    w(ind + "var b11 = mat4x4<f32>(hi4(q4), hi4(q5), hi4(q6), hi4(q7));")
    if trans_b != "false":
        w(ind + "if %s {" % trans_b)
        w(ind + "    b00 = transpose(mat4x4<f32>(lo4(q0), lo4(q1), lo4(q2), lo4(q3)));")
        w(ind + "    b01 = transpose(mat4x4<f32>(lo4(q4), lo4(q5), lo4(q6), lo4(q7)));")
        w(ind + "    b10 = transpose(mat4x4<f32>(hi4(q0), hi4(q1), hi4(q2), hi4(q3)));")
        w(ind + "    b11 = transpose(mat4x4<f32>(hi4(q4), hi4(q5), hi4(q6), hi4(q7)));")
        w(ind + "}")
    for blk in range(4):
        inner = ind if blk == 0 else ind + "    "
        if blk > 0:
            w(ind + "if ROWS > %du {" % (8 * blk))
        else:
            w(ind + "{")
        r = "r0" if blk == 0 else "r0 + %du" % (8 * blk)
        w(inner + "let aq = %s;" % load_a(blk, r))
        w(inner + "let al = lo4(aq);")
        w(inner + "let ah = hi4(aq);")
        for j in range(8):
            w(inner + "let v%d = subgroupBroadcast(al, %du);" % (j, j))
            w(inner + "let u%d = subgroupBroadcast(ah, %du);" % (j, j))
        w(inner + "// xRK: rows 4R..4R + 3 at k-steps 4K.. (entry i is row 4R + i's four k).")
        w(inner + "var x00 = mat4x4<f32>(v0, v1, v2, v3);")
        w(inner + "var x10 = mat4x4<f32>(v4, v5, v6, v7);")
        w(inner + "var x01 = mat4x4<f32>(u0, u1, u2, u3);")
        w(inner + "var x11 = mat4x4<f32>(u4, u5, u6, u7);")
        if trans_a != "false":
            w(inner + "if %s {" % trans_a)
            w(inner + "    // Lane t holds k-step t: rows 0-3 in al, 4-7 in ah.")
            w(inner + "    x00 = transpose(mat4x4<f32>(v0, v1, v2, v3));")
            w(inner + "    x01 = transpose(mat4x4<f32>(v4, v5, v6, v7));")
            w(inner + "    x10 = transpose(mat4x4<f32>(u0, u1, u2, u3));")
            w(inner + "    x11 = transpose(mat4x4<f32>(u4, u5, u6, u7));")
            w(inner + "}")
        for i in range(8):
            R = i // 4
            row = 8 * blk + i
            w(inner + "acc%d_0 += b00 * x%d0[%d] + b10 * x%d1[%d];" % (row, R, i % 4, R, i % 4))
            w(inner + "acc%d_1 += b01 * x%d0[%d] + b11 * x%d1[%d];" % (row, R, i % 4, R, i % 4))
        w(ind + "}")


def accumulators():
    w("    // acc_i_h: row r0 + i, columns c0 + 4h..c0 + 4h + 3.")
    for i in range(32):
        for h in range(2):
            w("    var acc%d_%d = vec4<f32>(0.0);" % (i, h))


def stores64(store):
    """The epilogue: `store(row_expr, i)` the line that stores row r0 + i."""
    for blk in range(4):
        ind = "    " if blk == 0 else "        "
        if blk > 0:
            w("    if ROWS > %du {" % (8 * blk))
        for i in range(8 * blk, 8 * blk + 8):
            r = "r0" if i == 0 else "r0 + %du" % i
            for line in store(r, i):
                w(ind + line)
        if blk > 0:
            w("    }")


def entry64(name, wide_store):
    """The 8-float-load entry point; `wide_store`: its epilogue stores 8 floats at a time."""
    w("")
    w("@compute @workgroup_size(8, 1, 1)")
    w("fn %s(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>," % name)
    w("%s@builtin(subgroup_invocation_id) lane: u32) {" % (" " * (len(name) + 4)))
    w("    let r0 = fold_yz(wid, nwg) * ROWS;")
    w("    let c0 = wid.x * 64u + lane * 8u;")
    w("    let m = p.m;")
    w("    let n = p.n;")
    w("    let k8 = p.k / 8u;")
    w("    let m8 = m / 8u;")
    w("    let n8 = n / 8u;")
    accumulators()
    w("    for (var kq = 0u; kq < k8; kq++) {")
    step64("        ", lambda t: "lane_b8(c0, %du, kq, n, k8, n8)" % t,
           lambda blk, r: "lane_a8(%s, lane, kq, m, k8, m8)" % r, "TRANS_A", "TRANS_B")
    w("    }")
    w("    if HAS_BIAS { load_bias8(c0); }")
    if wide_store:
        stores64(lambda r, i: ["store8(%s, c0, acc%d_0, acc%d_1);" % (r, i, i)])
    else:
        stores64(lambda r, i: ["store4(%s, c0, acc%d_0);" % (r, i),
                               "store4(%s, c0 + 4u, acc%d_1);" % (r, i)])
    w("}")


entry64("matmul_lanes_u64", False)
entry64("matmul_lanes_u64_store8", True)
TEXTS["matmul_lanes64.wgsl"] = "\n".join(L) + "\n"

# conv_nhwc.wgsl: the 8-float-load body as a convolution over a channels-innermost input.
L = []
w = L.append
w("""// Written by shaders/gen/conv_nhwc.py (from lanes_matmul_body.py): edit those, not this file.
//
// conv_nhwc.wgsl: convolutions over channels-innermost images (NHWC) as implicit GEMMs, for CPU
// drivers with 8-lane subgroups and 64-bit integers (the `conv_nhwc` family: lanes64.wgsl,
// then this file). The body is matmul_lanes64.wgsl's, generated from the same script: 8 k per
// step, a lane's A piece one position's 8 channels at one tap (a single vec4<u64>).
//
// Why: conv_main_lanes reads NCHW, where a lane's positions are not adjacent in memory, so it
// loads pixels one by one. With the channels innermost every load is the u64 matmul's: 12 per
// 2,048 FMAs per lane. About 1.4x conv_main_lanes on the encoder's and decoder's middle
// layers (README).
//
// The three sums of conv.wgsl (no padding, stride s; C and O multiples of 8):
//   conv_nhwc, conv_nhwc_to_nchw  gather: y[n, oy, ox, o] = act(sum x[n, oy*s+ky, ox*s+kx, c]
//                 w(o, c, ky, kx) + b[o]) (+ y with acc). Rows = output positions, columns =
//                 output channels, k = (tap, c). Weights packed [kh][kw][C][O] by conv.wgsl's
//                 `pack_w`. `conv_nhwc_to_nchw` stores [N, O, OH, OW], one value per store.
//                 Grid: x = ceil(O/64), y = ceil(N*OH*OW/32).
//   conv_nhwc_scatter  scatter: y[n, Y, X, o] = act(sum over the taps with Y = iy*s+ky,
//                 X = ix*s+kx of x[n, iy, ix, c] w(o, c, ky, kx) + b[o]) (+ y with acc).
//                 Rows = the phase grid (n, qy, qx), qy < ceil(OH/s); row (qy, qx) reads
//                 x[qy - ty, qx - tx] (zero outside) at phase tap (ty, tx); a workgroup's
//                 columns are one row phase py's s column phases px x O, so those share each
//                 A load, a narrow O still fills the 64 columns, and py runs only its own
//                 ceil((kh - py)/s) tap rows; column (py, px, o) stores output pixel
//                 (qy*s + py, qx*s + px) where that lies inside. Weights packed
//                 [ceil(kh/s)][ceil(kw/s)][C][s*s][O] by conv_main_lanes.wgsl's `pack_w_fold`
//                 (zero past the kernel). Grid: x = s * ceil(s*O/64), y = ceil(N*qh*qw/32).
//   wgrad_nhwc    weight gradient: out[split][b][a][ky][kx] (+= with acc) = sum over the
//                 split's images and small-image positions (y, x) of
//                 large[n, y*s+ky, x*s+kx, a] * small[n, y, x, b]. Rows = (tap, a), columns
//                 = b, k = positions (TRANS_A: lane t loads position t's 8 channels of a).
//                 Conv2d: large = x, small = dy; ConvTranspose2d: large = dy, small = x; both
//                 store PyTorch's weight layout. Grid: x = splits x ceil(b/64), y =
//                 ceil(kh*kw*a/32); partial sums reduced by conv.wgsl's `reduce_splits`.
//
// Params: n, ih, iw, c (input channels; wgrad: the small image's ih x iw, the large one's c),
// oh, ow, o (output channels; wgrad: the large image's oh x ow, the small one's channels b),
// kh, kw, s, act (0 none, 1 ReLU, 2 ELU, after the bias), has_bias, acc (add into the
// output), imgs (wgrad: images per split).
// Bindings: 0 params, 1 x8 (the input, wgrad's large image, as vec4<u64>; bound at a multiple
// of 32 bytes), 2 w8 (packed weights; wgrad's small image), 3 bias [O] (bound even without
// one), 4 y (f32 output: NCHW, wgrad's), 5 y8 (NHWC output, vec4<u64>).
// Entry points use: conv_nhwc and conv_nhwc_scatter 1, 2, 3, 5; conv_nhwc_to_nchw 1, 2, 3, 4;
// wgrad_nhwc 1, 2, 4.
// Workgroup (8,1,1) = one subgroup of exactly 8 lanes; a workgroup computes 32 rows x 64
// columns, lane l columns 8l..8l+7 of them (y folds into z). Rows past the end are clamped on
// load and not stored.

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
    acc: u32,
    imgs: u32,
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
    put8((pos * p.o + c0) / 8u, x0, x1);
}

// y8[i] = (or += with acc) the eight floats.
fn put8(i: u32, x0: vec4<f32>, x1: vec4<f32>) {
    if p.acc != 0u {
        let old = y8[i];
        y8[i] = pack8(lo4(old) + x0, hi4(old) + x1);
    } else {
        y8[i] = pack8(x0, x1);
    }
}

// The scatter's row `r` of phase (py, px) (clamped to the last): image, qy, qx.
fn phase_row(r: u32, nq: u32, qh: u32, qw: u32) -> vec3<u32> {
    let q0 = min(r, nq - 1u);
    let img = q0 / (qh * qw);
    let q = q0 - img * qh * qw;
    let qy = q / qw;
    return vec3<u32>(img, qy, q - qy * qw);
}

// Where row `q` (image, qy, qx) reads at phase tap (ty, tx): its input pixel iy = qy - ty,
// ix = qx - tx in 8-float units, or 0xffffffff where that lies outside the image.
fn scatter_src(q: vec3<u32>, ty: u32, tx: u32) -> u32 {
    let iy = i32(q.y) - i32(ty);
    let ix = i32(q.z) - i32(tx);
    if iy < 0 || ix < 0 || iy >= i32(p.ih) || ix >= i32(p.iw) {
        return 0xffffffffu;
    }
    return ((q.x * p.ih + u32(iy)) * p.iw + u32(ix)) * (p.c / 8u);
}

// A piece of the scatter: input pixel `src` (scatter_src) at channel block cc, zero outside.
fn scatter_a8(src: u32, cc: u32) -> vec4<u64> {
    let out = src == 0xffffffffu;
    return select(x8[select(src, 0u, out) + cc], vec4<u64>(), out);
}

// The scatter's store: row `q` (image, qy, qx) at columns c0..c0+7 = phase (py, px) x
// channels, into output pixel (qy*s + py, qx*s + px) (NHWC; none past the image's edge).
fn store_phases(q: vec3<u32>, ok: bool, c0: u32, lo: vec4<f32>, hi: vec4<f32>,
                b: array<f32, 8>) {
    if !ok || c0 >= p.s * p.s * p.o { return; }
    let ph = c0 / p.o;
    let oc = c0 - ph * p.o;
    let py = ph / p.s;
    let oy = q.y * p.s + py;
    let ox = q.z * p.s + ph - py * p.s;
    if oy >= p.oh || ox >= p.ow { return; }
    let pos = (q.x * p.oh + oy) * p.ow + ox;
    let x0 = act8(lo, vec4<f32>(b[0], b[1], b[2], b[3]));
    let x1 = act8(hi, vec4<f32>(b[4], b[5], b[6], b[7]));
    put8((pos * p.o + oc) / 8u, x0, x1);
}

// The weight gradient's large pixel for small position `pos` (image, y, x): its first pixel
// (y*s, x*s) in 8-float units of x8 (whose images are OH x OW with C channels).
fn wgrad_pixel8(pos: u32) -> u32 {
    let shw = p.ih * p.iw;
    let img = pos / shw;
    let q = pos - img * shw;
    let y = q / p.iw;
    let x = q - y * p.iw;
    return ((img * p.oh + y * p.s) * p.ow + x * p.s) * (p.c / 8u);
}

// Row m = (tap, a) of the weight gradient, its columns c0..c0+7 = b: into
// y[split * len + (b * C + a) * kh * kw + tap] (the weights' [b][a][kh][kw]; += with acc).
fn store_wgrad(m: u32, c0: u32, base: u32, lo: vec4<f32>, hi: vec4<f32>) {
    let kk = p.kh * p.kw;
    if m >= kk * p.c || c0 >= p.o { return; }
    let tap = m / p.c;
    let a = m - tap * p.c;
    let v = array<f32, 8>(lo.x, lo.y, lo.z, lo.w, hi.x, hi.y, hi.z, hi.w);
    for (var j = 0u; j < 8u; j++) {
        let i = base + ((c0 + j) * p.c + a) * kk + tap;
        if p.acc != 0u {
            y[i] += v[j];
        } else {
            y[i] = v[j];
        }
    }
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
}""")


def conv_entry(name, store):
    w("")
    w("@compute @workgroup_size(8, 1, 1)")
    w("fn %s(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>," % name)
    w("%s@builtin(subgroup_invocation_id) lane: u32) {" % (" " * (len(name) + 4)))
    w("    let r0 = fold_yz(wid, nwg) * ROWS;")
    w("    let c0 = wid.x * 64u + lane * 8u;")
    w("    let c8 = p.c / 8u;")
    w("    let o8 = p.o / 8u;")
    w("    let cq = min(c0 / 8u, o8 - 1u);")
    w("    // The first input pixel of each position this lane loads (r0 + lane + 8 * block).")
    for blk in range(4):
        w("    let px%d = pixel8(r0 + lane + %du);" % (blk, 8 * blk))
    accumulators()
    w("    for (var ky = 0u; ky < p.kh; ky++) {")
    w("    for (var kx = 0u; kx < p.kw; kx++) {")
    w("    // Tap (ky, kx): its pixel's offset from a position's first, and its first k step.")
    w("    let toff = (ky * p.iw + kx) * c8;")
    w("    let tap = (ky * p.kw + kx) * c8;")
    w("    for (var cc = 0u; cc < c8; cc++) {")
    w("        let kq = tap + cc;")
    step64("        ", lambda t: "w8[(kq * 8u + %du) * o8 + cq]" % t,
           lambda blk, r: "x8[px%d + toff + cc]" % blk, "false", "false")
    w("    }")
    w("    }")
    w("    }")
    w("    let b = bias8(c0);")
    stores64(lambda r, i: ["%s(%s, c0, acc%d_0, acc%d_1, b);" % (store, r, i, i)])
    w("}")


def scatter_entry():
    """The scatter (ConvTranspose2d forward, Conv2d input gradient) as one gather over the
    phase grid: row (image, qy, qx) takes the input pixels (qy - ty, qx - tx), and its columns
    are one row phase py's s column phases x O channels (the weights packed by
    conv_main_lanes.wgsl's `pack_w_fold` for all s*s phases), so the column phases share their
    A loads, a narrow O still fills the columns, and each row phase runs only its own taps."""
    w("")
    w("@compute @workgroup_size(8, 1, 1)")
    w("fn conv_nhwc_scatter(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,")
    w("                     @builtin(subgroup_invocation_id) lane: u32) {")
    w("    let nf = p.s * p.s * p.o;")
    w("    let qh = (p.oh + p.s - 1u) / p.s;")
    w("    let qw = (p.ow + p.s - 1u) / p.s;")
    w("    let nq = p.n * qh * qw;")
    w("    let r0 = fold_yz(wid, nwg) * ROWS;")
    w("    // Grid x: row phases x blocks of 64 of the row phase's s * O columns.")
    w("    let rs = p.s * p.o;")
    w("    let cbx = (rs + 63u) / 64u;")
    w("    let py = wid.x / cbx;")
    w("    let cl = (wid.x - py * cbx) * 64u + lane * 8u;")
    w("    let c0 = py * rs + cl;")
    w("    let c8 = p.c / 8u;")
    w("    let f8 = nf / 8u;")
    w("    let cq = min(c0 / 8u, f8 - 1u);")
    w("    // Row phase py's taps ky = py + s * ty (none past the kernel).")
    w("    let th = select((p.kh - py + p.s - 1u) / p.s, 0u, py >= p.kh);")
    w("    let tw = (p.kw + p.s - 1u) / p.s;")
    for blk in range(4):
        w("    let q%d = phase_row(r0 + lane + %du, nq, qh, qw);" % (blk, 8 * blk))
    accumulators()
    w("    for (var ty = 0u; ty < th; ty++) {")
    w("    for (var tx = 0u; tx < tw; tx++) {")
    w("    let tap = (ty * tw + tx) * c8;")
    for blk in range(4):
        w("    let s%d = scatter_src(q%d, ty, tx);" % (blk, blk))
    w("    for (var cc = 0u; cc < c8; cc++) {")
    w("        let kq = tap + cc;")
    step64("        ", lambda t: "w8[(kq * 8u + %du) * f8 + cq]" % t,
           lambda blk, r: "scatter_a8(s%d, cc)" % blk, "false", "false")
    w("    }")
    w("    }")
    w("    }")
    w("    let b = bias8(c0 % p.o);")
    stores64(lambda r, i: ["store_phases(phase_row(%s, nq, qh, qw), %s < nq && cl < rs, c0, acc%d_0, acc%d_1, b);"
                           % (r, r, i, i)])
    w("}")


def wgrad_entry():
    """The weight gradient: rows (tap, a) of the large image, columns b of the small one, k =
    the small image's positions of one split of the images."""
    w("")
    w("@compute @workgroup_size(8, 1, 1)")
    w("fn wgrad_nhwc(@builtin(workgroup_id) wid: vec3<u32>, @builtin(subgroup_invocation_id) lane: u32) {")
    w("    // Grid x: split-major blocks of 64 columns; y: blocks of ROWS rows.")
    w("    let cb = (p.o + 63u) / 64u;")
    w("    let split = wid.x / cb;")
    w("    let c0 = (wid.x - split * cb) * 64u + lane * 8u;")
    w("    let r0 = wid.y * ROWS;")
    w("    let shw = p.ih * p.iw;")
    w("    let first = split * p.imgs * shw;")
    w("    let end = min(p.n, (split + 1u) * p.imgs) * shw;")
    w("    let c8 = p.c / 8u;")
    w("    let o8 = p.o / 8u;")
    w("    let cq = min(c0 / 8u, o8 - 1u);")
    w("    let rows = p.kh * p.kw * p.c;")
    w("    // Each block of 8 rows is one tap's 8 channels: its offset from a position's pixel.")
    for blk in range(4):
        w("    let m%d = min(r0 + %du, rows - 8u);" % (blk, 8 * blk))
        w("    let t%d = m%d / p.c;" % (blk, blk))
        w("    let ky%d = t%d / p.kw;" % (blk, blk))
        w("    let off%d = (ky%d * p.ow + t%d - ky%d * p.kw) * c8 + (m%d - t%d * p.c) / 8u;"
          % (blk, blk, blk, blk, blk, blk))
    accumulators()
    w("    for (var k = first; k < end; k += 8u) {")
    w("        // Lane t: position k + t of the large image (clamped; its B is zero past the end).")
    w("        let pix = wgrad_pixel8(min(k + lane, end - 1u));")
    step64("        ", lambda t: "select(vec4<u64>(), w8[min(k + %du, end - 1u) * o8 + cq], k + %du < end)" % (t, t),
           lambda blk, r: "x8[pix + off%d]" % blk, "true", "false")
    w("    }")
    w("    let base = split * rows * p.o;")
    stores64(lambda r, i: ["store_wgrad(%s, c0, base, acc%d_0, acc%d_1);" % (r, i, i)])
    w("}")


conv_entry("conv_nhwc", "store_nhwc")
conv_entry("conv_nhwc_to_nchw", "store_nchw")
scatter_entry()
wgrad_entry()
TEXTS["conv_nhwc.wgsl"] = "\n".join(L) + "\n"
