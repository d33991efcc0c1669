// matmul.wgsl: C[M,N] (+)= act(op(A) op(B) + bias), register-blocked.
//
// op(A) is A [M,K] or, with TRANS_A, A stored [K,M]; op(B) is B [K,N] or, with TRANS_B,
// B stored [N,K] (the nn.Linear case: y = x W^T with W [out,in]).
// Bindings: 0 params (m, n, k), 1 A (read), 2 B (read), 3 bias [N] (read, only with HAS_BIAS;
//           Y [M,N] with GRAD_ACT), 4 C (read_write), 5 A as vec4 (read), 6 B as vec4 (read).
// Entry points: `matmul` (any sizes, scalar loads), `matvec` and `matvec_vec4` (N = 1 or
// M = 1, below) and
// `matmul_vec4` (uses 3, 4, 5, 6; for
// operands whose contiguous axis is a multiple of 4: K % 4 == 0, M % 4 == 0 when TRANS_A,
// N % 4 == 0 unless TRANS_B): each step of its K loop loads 4x4 blocks of A and of B with
// four vec4 loads each and multiplies them as mat4x4; with WIDE, 8x8 blocks per invocation.
// Workgroup (8,8,1); each invocation computes a 4x4 (or, WIDE, 8x8) block of C held in
// registers, so one workgroup covers a 32x32 (64x64) tile. Grid: x = ceil(N/tile),
// y = ceil(M/tile) (y folds into z).
//
// Why no shared memory: on CPU drivers (lavapipe) a workgroup barrier costs more than the
// loads it saves (16x16 shared tiles ran at 1.2 GFLOP/s there, register blocks at 17+), while
// on GPUs the 4x4 register block still gives 8 loads per 16 FMAs and the caches serve the
// reuse across the tile. Out-of-range rows/columns are clamped on load (no branches in the K
// loop) and masked on store.
// Overrides: TRANS_A, TRANS_B, HAS_BIAS, ACC (add into C: gradient accumulation),
//            ACT (0 none, 1 ReLU, 2 ELU applied after the bias; not combined with ACC),
//            GRAD_ACT (0 none, 1 ReLU, 2 ELU: multiply each result by that activation's
//            derivative at Y[i, j], read from binding 3 laid out like C; not combined with
//            HAS_BIAS). A layer's input gradient times the previous layer's activation
//            derivative, in one pass: an MLP's backward needs no elementwise dispatch.
// Backward passes are matmuls too (dA = dC op(B)^T, dB = op(A)^T dC), recorded from Rust.
//
// `matvec`: a product with a single output column (N = 1: C[i] = sum_k op(A)[i,k] B[k]) or a
// single output row (M = 1: C[j] = sum_k A[k] op(B)[k,j]), e.g. a critic's 1-wide last layer
// and its weight gradient. A block kernel would compute 63 of its 64 columns (or rows) for
// nothing there; here each invocation computes one output over the whole K. Workgroup (WG),
// one output per invocation, grid over max(M, N) outputs (Gpu::grid_1d). Uses 1, 2, 3, 4.

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
// WIDE: each invocation computes an 8x8 block instead of 4x4 (in the vec4 kernel, four 4x4
// products per K step: 16 vec4 loads for 256 FMAs instead of 8 for 64), a 64x64 tile per
// workgroup. CPU drivers run this at about twice the rate of 4x4 blocks (they pay per load);
// GPUs prefer the 4x4 blocks' smaller tiles and register footprint.
override WIDE: bool = false;

// The sizes are passed in rather than read from the uniform block inside the K loop: CPU
// drivers (lavapipe) reload a uniform at every use.
fn load_a(r: u32, kk: u32, m: u32, k: u32) -> f32 {
    if TRANS_A { return a[kk * m + r]; }
    return a[r * k + kk];
}

fn load_b(kk: u32, col: u32, n: u32, k: u32) -> f32 {
    if TRANS_B { return b[col * k + kk]; }
    return b[kk * n + col];
}

// A[rows row0..row0+3, kk] (rows clamped into range: the store masks them).
fn a_col(row0: u32, kk: u32, m: u32, k: u32) -> vec4<f32> {
    let r = min(vec4<u32>(row0, row0 + 1u, row0 + 2u, row0 + 3u), vec4<u32>(m - 1u));
    return vec4<f32>(load_a(r.x, kk, m, k), load_a(r.y, kk, m, k), load_a(r.z, kk, m, k),
                     load_a(r.w, kk, m, k));
}

// B[kk, cols col0..col0+3] (columns clamped into range).
fn b_row(kk: u32, col0: u32, n: u32, k: u32) -> vec4<f32> {
    let c = min(vec4<u32>(col0, col0 + 1u, col0 + 2u, col0 + 3u), vec4<u32>(n - 1u));
    return vec4<f32>(load_b(kk, c.x, n, k), load_b(kk, c.y, n, k), load_b(kk, c.z, n, k),
                     load_b(kk, c.w, n, k));
}

// The outer product a b^T as a matrix whose column j is a * b[j].
fn outer(av: vec4<f32>, bv: vec4<f32>) -> mat4x4<f32> {
    return mat4x4<f32>(av * bv.x, av * bv.y, av * bv.z, av * bv.w);
}

@compute @workgroup_size(8, 8, 1)
fn matmul(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
          @builtin(local_invocation_id) lid: vec3<u32>) {
    let rb = select(4u, 8u, WIDE);
    let row0 = (fold_yz(wid, nwg) * 8u + lid.y) * rb;
    let col0 = (wid.x * 8u + lid.x) * rb;
    let m = p.m;
    let n = p.n;
    let k = p.k;
    if row0 >= m || col0 >= n { return; }
    let zero = mat4x4<f32>(vec4<f32>(0.0), vec4<f32>(0.0), vec4<f32>(0.0), vec4<f32>(0.0));
    var acc00 = zero;
    var acc01 = zero;
    var acc10 = zero;
    var acc11 = zero;
    for (var kk = 0u; kk < k; kk++) {
        let av0 = a_col(row0, kk, m, k);
        let bv0 = b_row(kk, col0, n, k);
        acc00 += outer(av0, bv0);
        if WIDE {
            let av1 = a_col(row0 + 4u, kk, m, k);
            let bv1 = b_row(kk, col0 + 4u, n, k);
            acc01 += outer(av0, bv1);
            acc10 += outer(av1, bv0);
            acc11 += outer(av1, bv1);
        }
    }
    store_mat(row0, col0, acc00);
    if WIDE {
        store_mat(row0, col0 + 4u, acc01);
        store_mat(row0 + 4u, col0, acc10);
        store_mat(row0 + 4u, col0 + 4u, acc11);
    }
}

// Add the bias, apply the activation and store (or accumulate) the in-range part of a 4x4
// block whose rows are `acc[i]` (columns col0..col0+3).
fn store_block(row0: u32, col0: u32, cc: vec4<u32>, acc: array<vec4<f32>, 4>) {
    var bv = vec4<f32>(0.0);
    if HAS_BIAS { bv = vec4<f32>(bias[cc.x], bias[cc.y], bias[cc.z], bias[cc.w]); }
    let rows = array<vec4<f32>, 4>(acc[0] + bv, acc[1] + bv, acc[2] + bv, acc[3] + bv);
    for (var i = 0u; i < 4u; i++) {
        let row = row0 + i;
        if row >= p.m { break; }
        for (var j = 0u; j < 4u; j++) {
            let col = col0 + j;
            if col >= p.n { break; }
            var v = activate(rows[i][j], ACT);
            let idx = row * p.n + col;
            if GRAD_ACT != 0u { v *= activate_grad(bias[idx], GRAD_ACT); }
            if ACC { c[idx] += v; } else { c[idx] = v; }
        }
    }
}

// The 4x4 block of A at rows row0.. (a multiple of 4) and k = 4 kq..: column p = A[rows, 4kq+p].
fn a_block(row0: u32, kq: u32, m: u32, k4: u32, m4: u32) -> mat4x4<f32> {
    let kk = kq * 4u;
    if TRANS_A {
        let rb = min(row0 / 4u, m4 - 1u);
        return mat4x4<f32>(a4[kk * m4 + rb], a4[(kk + 1u) * m4 + rb],
                           a4[(kk + 2u) * m4 + rb], a4[(kk + 3u) * m4 + rb]);
    }
    let r = min(vec4<u32>(row0, row0 + 1u, row0 + 2u, row0 + 3u), vec4<u32>(m - 1u));
    return transpose(mat4x4<f32>(a4[r.x * k4 + kq], a4[r.y * k4 + kq],
                                 a4[r.z * k4 + kq], a4[r.w * k4 + kq]));
}

// The 4x4 block of B at k = 4 kq.. and columns col0..: column j = B[4kq.., col0+j].
fn b_block(kq: u32, col0: u32, n: u32, k4: u32, n4: u32) -> mat4x4<f32> {
    let kk = kq * 4u;
    if TRANS_B {
        let cc = min(vec4<u32>(col0, col0 + 1u, col0 + 2u, col0 + 3u), vec4<u32>(n - 1u));
        return mat4x4<f32>(b4[cc.x * k4 + kq], b4[cc.y * k4 + kq],
                           b4[cc.z * k4 + kq], b4[cc.w * k4 + kq]);
    }
    let cb = min(col0 / 4u, n4 - 1u);
    return transpose(mat4x4<f32>(b4[kk * n4 + cb], b4[(kk + 1u) * n4 + cb],
                                 b4[(kk + 2u) * n4 + cb], b4[(kk + 3u) * n4 + cb]));
}

fn store_mat(row0: u32, col0: u32, acc: mat4x4<f32>) {
    if row0 >= p.m || col0 >= p.n { return; }
    let cc = min(vec4<u32>(col0, col0 + 1u, col0 + 2u, col0 + 3u), vec4<u32>(p.n - 1u));
    let t = transpose(acc);
    store_block(row0, col0, cc, array<vec4<f32>, 4>(t[0], t[1], t[2], t[3]));
}

@compute @workgroup_size(8, 8, 1)
fn matmul_vec4(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
               @builtin(local_invocation_id) lid: vec3<u32>) {
    let rb = select(4u, 8u, WIDE);
    let row0 = (fold_yz(wid, nwg) * 8u + lid.y) * rb;
    let col0 = (wid.x * 8u + lid.x) * rb;
    let m = p.m;
    let n = p.n;
    if row0 >= m || col0 >= n { return; }
    let k4 = p.k / 4u;
    let m4 = m / 4u;
    let n4 = n / 4u;
    // accXY[j] = column j of the 4x4 sub-block X (rows), Y (columns).
    let zero = mat4x4<f32>(vec4<f32>(0.0), vec4<f32>(0.0), vec4<f32>(0.0), vec4<f32>(0.0));
    var acc00 = zero;
    var acc01 = zero;
    var acc10 = zero;
    var acc11 = zero;
    for (var kq = 0u; kq < k4; kq++) {
        let am0 = a_block(row0, kq, m, k4, m4);
        let bm0 = b_block(kq, col0, n, k4, n4);
        acc00 += am0 * bm0;
        if WIDE {
            let am1 = a_block(row0 + 4u, kq, m, k4, m4);
            let bm1 = b_block(kq, col0 + 4u, n, k4, n4);
            acc01 += am0 * bm1;
            acc10 += am1 * bm0;
            acc11 += am1 * bm1;
        }
    }
    store_mat(row0, col0, acc00);
    if WIDE {
        store_mat(row0, col0 + 4u, acc01);
        store_mat(row0 + 4u, col0, acc10);
        store_mat(row0 + 4u, col0 + 4u, acc11);
    }
}

@compute @workgroup_size(WG)
fn matvec(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
          @builtin(local_invocation_id) lid: vec3<u32>) {
    let i = flat_id(wid, nwg, lid);
    let m = p.m;
    let n = p.n;
    let k = p.k;
    let col = n == 1u;
    if i >= select(n, m, col) { return; }
    // The matrix's element (i, kk) is mat[i * si + kk * sk]; the vector is B (N = 1) or A.
    var si = 1u;
    var sk = 1u;
    if col {
        if TRANS_A { sk = m; } else { si = k; }
    } else {
        if TRANS_B { si = k; } else { sk = n; }
    }
    var acc = 0.0;
    var off = i * si;
    for (var kk = 0u; kk < k; kk++) {
        if col {
            acc += a[off] * b[kk];
        } else {
            acc += b[off] * a[kk];
        }
        off += sk;
    }
    matvec_store(i, col, acc);
}

// Output i of a matvec: bias, activation, activation gradient, store or accumulate.
fn matvec_store(i: u32, col: bool, sum: f32) {
    var acc = sum;
    if HAS_BIAS { acc += bias[select(i, 0u, col)]; }
    var y = activate(acc, ACT);
    if GRAD_ACT != 0u { y *= activate_grad(bias[i], GRAD_ACT); }
    if ACC { c[i] += y; } else { c[i] = y; }
}

// `matvec` where the matrix's rows run along k (N = 1 without TRANS_A, M = 1 with TRANS_B) and
// K is a multiple of 4: vec4 loads, a quarter of the loads (CPU drivers pay per load). Uses
// 3, 4, 5, 6.
@compute @workgroup_size(WG)
fn matvec_vec4(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
               @builtin(local_invocation_id) lid: vec3<u32>) {
    let i = flat_id(wid, nwg, lid);
    let col = p.n == 1u;
    if i >= select(p.n, p.m, col) { return; }
    let k4 = p.k / 4u;
    let off = i * k4;
    var acc = vec4<f32>(0.0);
    for (var kq = 0u; kq < k4; kq++) {
        if col {
            acc += a4[off + kq] * b4[kq];
        } else {
            acc += b4[off + kq] * a4[kq];
        }
    }
    matvec_store(i, col, acc.x + acc.y + acc.z + acc.w);
}
