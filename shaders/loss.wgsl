// loss.wgsl: per-row losses of a [rows, cols] view, each summed over the row's cols, and their
// backward passes.
//
//   KIND 0, mse_nll:          y[r] = 0.5 * sum_c (b[r,c] - a[r,c])^2        (a pred, b target)
//                             (Gaussian negative log-likelihood, unit variance, constant dropped)
//   KIND 1, bce_with_logits:  y[r] = sum_c max(a,0) - a*b + log(1 + exp(-|a|))  (a logit, b target)
//                             (exp only of non-positive arguments: finite for any finite logit)
//
// Bindings: 0 params (uniform), 1 a (read), 2 b (read), 3 gy (read), 4 out (read_write).
// Entry points:
//   row_loss_wg        out[r] = loss of row r. One workgroup (WG,1,1) per row (groups folded by
//                      Gpu::grid_1d): strided coalesced loads, then a shared-memory tree. For long
//                      rows (the image NLL: 12,288 values per row). Uses 1 a, 2 b, 4 out.
//   row_loss_thread    out[r] = loss of row r, one thread per row, serial loop over the cols. For
//                      short rows (reward, continue: cols = 1). Workgroup (WG,1,1). Uses 1, 2, 4.
//   row_loss_backward  [backward] out[i] (+)= gy[i / cols] * d loss / d(a or b)[i], one thread per
//                      element, workgroup (WG,1,1). Grid: ROW2D false, 1-D folded by
//                      Gpu::grid_1d (short rows); ROW2D true, Gpu::grid_2d(column tiles, rows)
//                      (long rows: no integer division per element). Uses 1, 2, 3, 4.
//                      mse: d/da = a - b, d/db = b - a; bce: d/da = sigmoid(a) - b, d/db = -a.
// Overrides: KIND (0 mse, 1 bce), WHICH (backward: 0 gradient of a, 1 gradient of b),
//            ACC (backward adds into out instead of overwriting it), ROW2D (backward grid).

struct Params {
    rows: u32,
    cols: u32,
    n: u32, // rows * cols
    // First row of this dispatch in y / gy (bound whole) when the op runs over slices of
    // operands larger than one binding.
    row0: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> a: array<f32>;
@group(0) @binding(2) var<storage, read> b: array<f32>;
@group(0) @binding(3) var<storage, read> gy: array<f32>;
@group(0) @binding(4) var<storage, read_write> out: array<f32>;

override KIND: u32 = 0u;
override WHICH: u32 = 0u;
override ACC: bool = false;
override ROW2D: bool = false;

var<workgroup> partial: array<f32, WG>;

// log(1 + e) for e in [0, 1]: the series where 1 + e would round away most of e's digits
// (relative error below 1e-9 there), the plain formula elsewhere.
fn log1p_small(e: f32) -> f32 {
    return select(log(1.0 + e), e * (1.0 - e * (0.5 - e * (1.0 / 3.0))), e < 1e-3);
}

// The loss of one element, without mse's factor 0.5 (applied once per row).
fn elem_loss(x: f32, y: f32) -> f32 {
    if KIND == 0u {
        let d = y - x;
        return d * d;
    }
    return max(x, 0.0) - x * y + log1p_small(exp(-abs(x)));
}

fn row_scale() -> f32 {
    return select(1.0, 0.5, KIND == 0u);
}

@compute @workgroup_size(WG)
fn row_loss_wg(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
               @builtin(local_invocation_id) lid: vec3<u32>) {
    let r = flat_group(wid, nwg);
    // Uniform control flow: every invocation reaches the barriers.
    var s = 0.0;
    if r < p.rows {
        let start = r * p.cols;
        let end = start + p.cols;
        for (var i = start + lid.x; i < end; i += WG) {
            s += elem_loss(a[i], b[i]);
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
        out[p.row0 + r] = row_scale() * partial[0];
    }
}

@compute @workgroup_size(WG)
fn row_loss_thread(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                   @builtin(local_invocation_id) lid: vec3<u32>) {
    let r = flat_id(wid, nwg, lid);
    if r >= p.rows { return; }
    var s = 0.0;
    let start = r * p.cols;
    for (var i = start; i < start + p.cols; i++) {
        s += elem_loss(a[i], b[i]);
    }
    out[p.row0 + r] = row_scale() * s;
}

@compute @workgroup_size(WG)
fn row_loss_backward(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                     @builtin(local_invocation_id) lid: vec3<u32>) {
    var i: u32;
    var r: u32;
    if ROW2D {
        // x: column tiles of WG, y (folded into z): rows. No integer division per element.
        r = fold_yz(wid, nwg);
        let c = wid.x * WG + lid.x;
        if r >= p.rows || c >= p.cols { return; }
        i = r * p.cols + c;
    } else {
        i = flat_id(wid, nwg, lid);
        if i >= p.n { return; }
        r = i / p.cols;
    }
    let x = a[i];
    let y = b[i];
    var d: f32;
    if KIND == 0u {
        d = select(y - x, x - y, WHICH == 0u);
    } else {
        d = select(-x, sigmoid(x) - y, WHICH == 0u);
    }
    let g = gy[p.row0 + r] * d;
    if ACC { out[i] += g; } else { out[i] = g; }
}
