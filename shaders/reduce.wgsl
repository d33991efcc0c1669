// reduce.wgsl: sums along an axis and to a scalar, and the broadcast that is their backward.
//
// Bindings: 0 params, 1 x (read), 4 y (read_write).
// Entry points:
//   sum_rows     y[row0 + r] = alpha * sum_{c < cols} x[r*cols + c] for r < rows (the last row may be
//                short: elements past n are skipped, which is how a sum to a scalar runs as
//                [ceil(n/cols), cols] then [1, partials]). One workgroup of WG threads per row
//                (groups folded by Gpu::grid_1d), strided loads then a shared-memory tree.
//   sum_leading  y[k * cols + c] = alpha * sum of x[r*cols + c] over the k-th run of `div` rows
//                (r < rows): one thread per column and run (consecutive threads read consecutive
//                addresses). Runs of at most 1,024 rows (src/ops/reduce.rs) keep every thread's
//                loop short, which a driver that ends long loops (lavapipe: 65,535 iterations)
//                needs, give a GPU many threads, and sum in two levels; their partial sums are
//                summed the same way. Workgroup (WG,1,1).
//   expand       y[i] (+)= alpha * x[(row0 + i / div) % modulo] for i < n: the backward of every sum above
//                (sum_rows: div = cols; sum_leading: div = 1, modulo = cols; scalar: div = n).
//                [backward] Workgroup (WG,1,1).
// Overrides: ACC (sum_leading and expand add into y: bias gradients accumulate in place).

struct Params {
    n: u32,
    rows: u32,
    cols: u32,
    div: u32,
    modulo: u32,
    alpha: f32,
    // First row of this dispatch in y (sum_rows) or x (expand), when an op runs over slices
    // of a tensor larger than one binding: the small per-row vector is bound whole.
    row0: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(4) var<storage, read_write> y: array<f32>;

override ACC: bool = false;

var<workgroup> partial: array<f32, WG>;

@compute @workgroup_size(WG)
fn sum_rows(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
            @builtin(local_invocation_id) lid: vec3<u32>) {
    let r = flat_group(wid, nwg);
    // Uniform control flow: every invocation of the workgroup reaches the barriers.
    var s = 0.0;
    if r < p.rows {
        let start = r * p.cols;
        let end = min(start + p.cols, p.n);
        for (var i = start + lid.x; i < end; i += WG) {
            s += x[i];
        }
    }
    partial[lid.x] = s;
    workgroupBarrier();
    for (var w = WG / 2u; w > 0u; w >>= 1u) {
        if lid.x < w {
            partial[lid.x] += partial[lid.x + w];
        }
        workgroupBarrier();
    }
    if lid.x == 0u && r < p.rows {
        y[p.row0 + r] = p.alpha * partial[0];
    }
}

@compute @workgroup_size(WG)
fn sum_leading(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
               @builtin(local_invocation_id) lid: vec3<u32>) {
    let i = flat_id(wid, nwg, lid);
    let k = i / p.cols;
    let c = i - k * p.cols;
    let r0 = k * p.div;
    if r0 >= p.rows { return; }
    let r1 = min(p.rows, r0 + p.div);
    var s = 0.0;
    for (var r = r0; r < r1; r++) {
        s += x[r * p.cols + c];
    }
    let o = k * p.cols + c;
    if ACC { y[o] += p.alpha * s; } else { y[o] = p.alpha * s; }
}

@compute @workgroup_size(WG)
fn expand(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
          @builtin(local_invocation_id) lid: vec3<u32>) {
    let i = flat_id(wid, nwg, lid);
    if i >= p.n { return; }
    let v = p.alpha * x[(p.row0 + i / p.div) % p.modulo];
    if ACC { y[i] += v; } else { y[i] = v; }
}
