//! Per-row losses (`shaders/loss.wgsl`): the Gaussian NLL with unit variance (`mse_nll`) and the
//! binary cross-entropy with logits (`bce_with_logits`), each summed over the columns of a
//! `[rows, cols]` view, with their backward passes.
//!
//! Forward: one dispatch. Long rows (the image NLL: `rows = B*T = 2500`, `cols = 3*64*64 =
//! 12288`) get one workgroup per row (strided coalesced loads, then a shared-memory tree), so
//! the whole image loss is a single pass over prediction and target; short rows (reward and
//! continue, `cols = 1`) get one thread per row. Backward: one elementwise dispatch per input
//! that wants a gradient, accumulating in place (`ACC`) when the input already has one.
//!
//! The world-model loss `mean_bt(image_nll + reward_nll + cont_nll)` is [`mean_of_sum`]: the
//! existing `ops::elementwise::add` and `ops::reduce::mean_all` on `[B*T]` vectors (three small
//! dispatches next to the image loss's pass over 30M values, so a fused kernel would gain
//! nothing measurable).

use crate::error::{shape_err, Result};
use crate::gpu::pipelines::{kernel_sig, KernelSig};
use crate::gpu::WG_1D;
use crate::ops::elementwise::add;
use crate::ops::reduce::mean_all;
use crate::ops::{grid, slices};
use crate::tensor::{Tape, Tensor, Var};

// The kernels this module dispatches: entry points and the storage buffers they bind, in order.

/// `loss::row_loss_thread`.
pub const ROW_LOSS_THREAD: KernelSig = kernel_sig!(
    Params,
    "loss",
    "row_loss_thread",
    ["KIND"],
    ["a", "b", "out"]
);

/// `loss::row_loss_wg`.
pub const ROW_LOSS_WG: KernelSig =
    kernel_sig!(Params, "loss", "row_loss_wg", ["KIND"], ["a", "b", "out"]);

/// `loss::row_loss_backward`.
pub const ROW_LOSS_BACKWARD: KernelSig = kernel_sig!(
    Params,
    "loss",
    "row_loss_backward",
    ["KIND", "WHICH", "ACC", "ROW2D"],
    ["a", "b", "gy", "out"]
);

#[repr(C)]
#[derive(Clone, Copy, Default, bytemuck::Pod, bytemuck::Zeroable)]
pub(crate) struct Params {
    rows: u32,
    cols: u32,
    n: u32,
    /// First row of the dispatch in the per-row vector (bound whole).
    row0: u32,
}

/// Which loss. Codes match `KIND` in the shader.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RowLoss {
    /// `0.5 * (target - pred)^2`, operands (pred, target).
    Mse,
    /// `max(x, 0) - x*y + log(1 + exp(-|x|))`, operands (logit x, target y).
    Bce,
}

impl RowLoss {
    fn code(self) -> f64 {
        match self {
            RowLoss::Mse => 0.0,
            RowLoss::Bce => 1.0,
        }
    }
}

/// Rows at most this wide are reduced by one thread each; wider rows by a workgroup each.
const THREAD_PER_ROW_MAX_COLS: usize = 64;

fn check(op: &'static str, a: &Tensor, b: &Tensor, cols: usize) -> Result<usize> {
    if a.len() != b.len() {
        return shape_err(
            op,
            format!(
                "operands {:?} and {:?} differ in size",
                a.shape(),
                b.shape()
            ),
        );
    }
    if cols == 0 || a.is_empty() || !a.len().is_multiple_of(cols) {
        return shape_err(
            op,
            format!(
                "cannot view {:?} ({} values) as rows of {cols}",
                a.shape(),
                a.len()
            ),
        );
    }
    Ok(a.len() / cols)
}

fn params(rows: usize, cols: usize, row0: usize) -> Params {
    Params {
        rows: rows as u32,
        cols: cols as u32,
        n: (rows * cols) as u32,
        row0: row0 as u32,
    }
}

/// Record `y[r] = sum over row r of the loss of (a, b)` for `a`, `b` viewed as `[rows, cols]`;
/// returns `y` of shape `[rows]`.
pub fn row_loss_forward(a: &Tensor, b: &Tensor, cols: usize, kind: RowLoss) -> Result<Tensor> {
    let rows = check("row_loss", a, b, cols)?;
    let gpu = a.gpu();
    let y = Tensor::empty(gpu, &[rows])?;
    let consts = [("KIND", kind.code())];
    // Rows per dispatch: every operand's slice must fit one storage binding.
    // (The per-row output is bound whole: the kernel writes from row `row0`.)
    let per = gpu.rows_per_binding("a row loss", rows, &[cols, cols], &[rows])?;
    for (first, n) in slices(rows, per) {
        let bufs = [
            a.buf().range(first * cols, n * cols),
            b.buf().range(first * cols, n * cols),
            y.buf().whole(),
        ];
        let p = params(n, cols, first);
        if cols <= THREAD_PER_ROW_MAX_COLS {
            let k = gpu.kernel(&ROW_LOSS_THREAD, &consts)?;
            gpu.dispatch_ranges(&k, &p, &bufs, grid(gpu, n));
        } else {
            let k = gpu.kernel(&ROW_LOSS_WG, &consts)?;
            let groups = gpu.grid_1d(n * WG_1D as usize, WG_1D);
            gpu.dispatch_ranges(&k, &p, &bufs, groups);
        }
    }
    Ok(y)
}

/// Record `out (+)= gy[row] * d loss / d a` (`which = 0`) or `/ d b` (`which = 1`), where `gy`
/// holds one gradient per row. `out` has the size of `a`.
#[allow(clippy::too_many_arguments)]
pub fn row_loss_backward(
    a: &Tensor,
    b: &Tensor,
    gy: &Tensor,
    out: &Tensor,
    cols: usize,
    kind: RowLoss,
    which: u32,
    acc: bool,
) -> Result<()> {
    let rows = check("row_loss_backward", a, b, cols)?;
    if gy.len() != rows || out.len() != a.len() || which > 1 {
        return shape_err(
            "row_loss_backward",
            format!(
                "gy {:?} / out {:?} / which {which} for {rows} rows of {cols}",
                gy.shape(),
                out.shape()
            ),
        );
    }
    let gpu = a.gpu();
    // Long rows: a 2-D grid (column tiles x rows) so no thread divides by cols.
    let tiles = cols.div_ceil(WG_1D as usize);
    let row2d = cols > THREAD_PER_ROW_MAX_COLS
        && tiles <= gpu.limits().max_compute_workgroups_per_dimension as usize;
    let k = gpu.kernel(
        &ROW_LOSS_BACKWARD,
        &[
            ("KIND", kind.code()),
            ("WHICH", which as f64),
            ("ACC", acc as u32 as f64),
            ("ROW2D", row2d as u32 as f64),
        ],
    )?;
    let per = gpu.rows_per_binding("a row loss's gradient", rows, &[cols, cols, cols], &[rows])?;
    for (first, n) in slices(rows, per) {
        let groups = if row2d {
            gpu.grid_2d(tiles, n)
        } else {
            grid(gpu, n * cols)
        };
        let (start, len) = (first * cols, n * cols);
        let bufs = [
            a.buf().range(start, len),
            b.buf().range(start, len),
            gy.buf().whole(),
            out.buf().range(start, len),
        ];
        gpu.dispatch_ranges(&k, &params(n, cols, first), &bufs, groups);
    }
    Ok(())
}

fn row_loss(t: &Tape, a: Var, b: Var, cols: usize, kind: RowLoss) -> Result<Var> {
    let (av, bv) = (t.value(a), t.value(b));
    let y = row_loss_forward(&av, &bv, cols, kind)?;
    Ok(t.record(y, &[a, b], move |g, gy| {
        for (which, v, shape) in [(0u32, a, av.shape()), (1, b, bv.shape())] {
            if g.wants(v) {
                let (out, acc) = g.target(v, shape, av.gpu())?;
                row_loss_backward(&av, &bv, gy, &out, cols, kind, which, acc)?;
            }
        }
        Ok(())
    }))
}

/// Gaussian negative log-likelihood with unit variance, constant dropped:
/// `y[r] = 0.5 * sum_c (target[r,c] - pred[r,c])^2` for `pred` and `target` (same number of
/// values; their shapes may differ) viewed as `[rows, cols]`. Returns `[rows]`. Gradients flow
/// to `pred` (`pred - target`) and to `target` when it requires one.
pub fn mse_nll(t: &Tape, pred: Var, target: Var, cols: usize) -> Result<Var> {
    row_loss(t, pred, target, cols, RowLoss::Mse)
}

/// Binary cross-entropy with logits summed over the last axis:
/// `y[r] = sum_c max(x,0) - x*y + log(1 + exp(-|x|))` for `logits` viewed as
/// `[rows, last_dim]` (a 1-D input is one row). Returns `[rows]`. Finite for any finite logit
/// (tested up to |x| = 1e4). Gradient `sigmoid(x) - y` to the logits and `-x` to the target
/// when it requires one.
pub fn bce_with_logits(t: &Tape, logits: Var, target: Var) -> Result<Var> {
    let cols = t.value(logits).last_dim();
    row_loss(t, logits, target, cols, RowLoss::Bce)
}

/// `mean(terms[0] + terms[1] + ...)` as a `[1]` scalar: the world model's
/// `mean_bt(image_nll + reward_nll + cont_nll)`. The terms must have equal sizes (or broadcast
/// as `ops::elementwise::add` allows). Built from `add` and `mean_all`.
pub fn mean_of_sum(t: &Tape, terms: &[Var]) -> Result<Var> {
    let Some((&first, rest)) = terms.split_first() else {
        return shape_err("mean_of_sum", "no terms");
    };
    let mut sum = first;
    for &v in rest {
        sum = add(t, sum, v)?;
    }
    mean_all(t, sum)
}

/// Plain-Rust f64 references for the tests.
pub mod reference {
    /// `0.5 * (y - x)^2` summed over each row of `cols`.
    pub fn mse_nll(pred: &[f32], target: &[f32], cols: usize) -> Vec<f64> {
        rows(pred, target, cols, |x, y| 0.5 * (y - x) * (y - x))
    }

    /// `max(x,0) - x*y + ln(1 + exp(-|x|))` summed over each row of `cols`.
    pub fn bce_with_logits(logits: &[f32], target: &[f32], cols: usize) -> Vec<f64> {
        rows(logits, target, cols, bce)
    }

    /// The elementwise binary cross-entropy with logits.
    pub fn bce(x: f64, y: f64) -> f64 {
        x.max(0.0) - x * y + (-x.abs()).exp().ln_1p()
    }

    /// `d bce / d x = sigmoid(x) - y`.
    pub fn bce_grad(x: f64, y: f64) -> f64 {
        let s = if x >= 0.0 {
            1.0 / (1.0 + (-x).exp())
        } else {
            let e = x.exp();
            e / (1.0 + e)
        };
        s - y
    }

    fn rows(a: &[f32], b: &[f32], cols: usize, f: impl Fn(f64, f64) -> f64) -> Vec<f64> {
        a.chunks(cols)
            .zip(b.chunks(cols))
            .map(|(ra, rb)| {
                ra.iter()
                    .zip(rb)
                    .map(|(x, y)| f(*x as f64, *y as f64))
                    .sum()
            })
            .collect()
    }
}
