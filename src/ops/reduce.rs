//! Sums along the last axis, over the leading axes, and to a scalar (`shaders/reduce.wgsl`).
//! Every backward is one `expand` dispatch (a broadcast of the output gradient).

use crate::error::{shape_err, Result};
use crate::gpu::pipelines::{kernel_sig, KernelSig};
use crate::gpu::WG_1D;
use crate::ops::{grid, slices};
use crate::tensor::{Tape, Tensor, Var};

// The kernels this module dispatches: entry points and the storage buffers they bind, in order.

/// `reduce::sum_rows`.
pub const SUM_ROWS: KernelSig = kernel_sig!(Params, "reduce", "sum_rows", [], ["x", "y"]);

/// `reduce::sum_leading`.
pub const SUM_LEADING: KernelSig =
    kernel_sig!(Params, "reduce", "sum_leading", ["ACC"], ["x", "y"]);

/// `reduce::expand`.
pub const EXPAND: KernelSig = kernel_sig!(Params, "reduce", "expand", ["ACC"], ["x", "y"]);

#[repr(C)]
#[derive(Clone, Copy, Default, bytemuck::Pod, bytemuck::Zeroable)]
pub(crate) struct Params {
    n: u32,
    rows: u32,
    cols: u32,
    div: u32,
    modulo: u32,
    alpha: f32,
    /// First row of the dispatch in the per-row vector (bound whole), see the shader.
    row0: u32,
}

/// Record `y[r] = alpha * sum of x's r-th run of `cols` values` (the last run may be short).
fn sum_rows_into(x: &Tensor, cols: usize, alpha: f32, y: &Tensor) -> Result<()> {
    let gpu = x.gpu();
    let rows = x.len().div_ceil(cols.max(1));
    let k = gpu.kernel(&SUM_ROWS, &[])?;
    // Slices of whole rows that fit one binding (the last row may be short); `y` is bound
    // whole and written from row `row0`.
    let per = gpu.rows_per_binding("a row sum", rows, &[cols], &[y.len()])?;
    for (first, n) in slices(rows, per) {
        let start = first * cols;
        let len = (n * cols).min(x.len() - start);
        let p = Params {
            n: len as u32,
            rows: n as u32,
            cols: cols as u32,
            alpha,
            row0: first as u32,
            ..Default::default()
        };
        gpu.dispatch_ranges(
            &k,
            &p,
            &[x.buf().range(start, len), y.buf().whole()],
            gpu.grid_1d(n * WG_1D as usize, WG_1D),
        );
    }
    Ok(())
}

/// Rows one thread of `sum_leading` sums: runs of this many rows are summed into partial sums,
/// then the partials the same way (see `shaders/reduce.wgsl`).
pub const SUM_LEADING_RUN: usize = 1024;

/// Record `y[c] (+)= sum over rows of x[r, c]` for `x` viewed as `[rows, y.len()]`.
pub fn sum_leading_into(x: &Tensor, y: &Tensor, acc: bool) -> Result<()> {
    let gpu = x.gpu();
    let cols = y.len();
    if cols == 0 || !x.len().is_multiple_of(cols) {
        return shape_err(
            "sum_leading",
            format!("{:?} into {:?}", x.shape(), y.shape()),
        );
    }
    let rows = x.len() / cols;
    // Slices of rows that fit one binding; every slice after the first adds to `y`.
    let per = gpu.rows_per_binding("a column sum", rows, &[cols], &[cols])?;
    for (i, (first, n)) in slices(rows, per).enumerate() {
        let add = acc || i > 0;
        let runs = n.div_ceil(SUM_LEADING_RUN);
        let p = Params {
            n: (n * cols) as u32,
            rows: n as u32,
            cols: cols as u32,
            div: SUM_LEADING_RUN as u32,
            alpha: 1.0,
            ..Default::default()
        };
        let xs = x.buf().range(first * cols, n * cols);
        if runs == 1 {
            let k = gpu.kernel(&SUM_LEADING, &[("ACC", add as u32 as f64)])?;
            gpu.dispatch_ranges(&k, &p, &[xs, y.buf().whole()], grid(gpu, cols));
        } else {
            let partial = Tensor::empty(gpu, &[runs, cols])?;
            let k = gpu.kernel(&SUM_LEADING, &[("ACC", 0.0)])?;
            gpu.dispatch_ranges(&k, &p, &[xs, partial.buf().whole()], grid(gpu, runs * cols));
            sum_leading_into(&partial, y, add)?;
        }
    }
    Ok(())
}

/// Record `y[i] (+)= alpha * x[(i / div) % modulo]`.
pub(crate) fn expand_into(
    x: &Tensor,
    y: &Tensor,
    div: usize,
    modulo: usize,
    alpha: f32,
    acc: bool,
) -> Result<()> {
    let gpu = x.gpu();
    let k = gpu.kernel(&EXPAND, &[("ACC", acc as u32 as f64)])?;
    let (div, modulo) = (div.max(1), modulo.max(1));
    let len = y.len();
    // `y[i] = alpha * x[(row0 + i / div) % modulo]` over slices of `y` that fit one binding,
    // `x` bound whole: slices of `x`'s broadcast copies when `div` is 1 or `x` is one value,
    // else of rows of `div` values starting at row `row0` (the `sum_rows` backward).
    let (unit, rows_of_div) = if modulo == 1 {
        (1, false)
    } else if div == 1 {
        (modulo, false)
    } else {
        (div, true)
    };
    let units = len.div_ceil(unit);
    let per = gpu.rows_per_binding("a broadcast", units, &[unit], &[x.len()])?;
    for (first, n) in slices(units, per) {
        let start = first * unit;
        let count = (n * unit).min(len - start);
        let p = Params {
            n: count as u32,
            div: div as u32,
            modulo: modulo as u32,
            alpha,
            row0: if rows_of_div { first as u32 } else { 0 },
            ..Default::default()
        };
        gpu.dispatch_ranges(
            &k,
            &p,
            &[x.buf().whole(), y.buf().range(start, count)],
            grid(gpu, count),
        );
    }
    Ok(())
}

/// Sum (or mean) over the last axis: `[..., C] -> [...]`.
pub fn sum_rows(t: &Tape, x: Var, mean: bool) -> Result<Var> {
    let xv = t.value(x);
    let cols = xv.last_dim();
    if xv.shape().is_empty() || cols == 0 {
        return shape_err(
            "sum_rows",
            format!("needs a last axis, got {:?}", xv.shape()),
        );
    }
    let shape = &xv.shape()[..xv.shape().len() - 1];
    let y = Tensor::empty(xv.gpu(), shape)?;
    let alpha = if mean { 1.0 / cols as f32 } else { 1.0 };
    sum_rows_into(&xv, cols, alpha, &y)?;
    let (xshape, rows) = (xv.shape().to_vec(), xv.rows());
    let gpu = xv.gpu().clone();
    drop(xv);
    Ok(t.record(y, &[x], move |g, gy| {
        let (gx, acc) = g.target(x, &xshape, &gpu)?;
        expand_into(gy, &gx, cols, rows, alpha, acc)
    }))
}

/// Sum over every axis but the last: `[..., C] -> [C]` (a bias gradient).
pub fn sum_leading(t: &Tape, x: Var) -> Result<Var> {
    let xv = t.value(x);
    let cols = xv.last_dim();
    let y = Tensor::empty(xv.gpu(), &[cols])?;
    sum_leading_into(&xv, &y, false)?;
    let xshape = xv.shape().to_vec();
    let gpu = xv.gpu().clone();
    Ok(t.record(y, &[x], move |g, gy| {
        let (gx, acc) = g.target(x, &xshape, &gpu)?;
        expand_into(gy, &gx, 1, cols, 1.0, acc)
    }))
}

/// Two-pass reduction of all of `x` to one value times `alpha`: chunks of 4096, then the partials.
fn reduce_all(x: &Tensor, alpha: f32) -> Result<Tensor> {
    let gpu = x.gpu();
    // Values per first-pass row: 4096, or fewer when 8 rows would not fit one binding.
    let chunk = 4096.min((gpu.binding_limit() / 32).max(1) as usize);
    let out = Tensor::empty(gpu, &[1])?;
    if x.len() <= chunk {
        sum_rows_into(x, chunk, alpha, &out)?;
    } else {
        let partial = Tensor::empty(gpu, &[x.len().div_ceil(chunk)])?;
        sum_rows_into(x, chunk, 1.0, &partial)?;
        sum_rows_into(&partial, partial.len(), alpha, &out)?;
    }
    Ok(out)
}

fn all(t: &Tape, x: Var, mean: bool) -> Result<Var> {
    let xv = t.value(x);
    if xv.is_empty() {
        return shape_err("sum_all", "empty tensor");
    }
    let alpha = if mean { 1.0 / xv.len() as f32 } else { 1.0 };
    let y = reduce_all(&xv, alpha)?;
    let (xshape, n) = (xv.shape().to_vec(), xv.len());
    let gpu = xv.gpu().clone();
    Ok(t.record(y, &[x], move |g, gy| {
        let (gx, acc) = g.target(x, &xshape, &gpu)?;
        expand_into(gy, &gx, n, 1, alpha, acc)
    }))
}

/// Sum of all elements: shape `[1]`.
pub fn sum_all(t: &Tape, x: Var) -> Result<Var> {
    all(t, x, false)
}

/// Mean of all elements: shape `[1]`.
pub fn mean_all(t: &Tape, x: Var) -> Result<Var> {
    all(t, x, true)
}

/// Plain-Rust references.
pub mod reference {
    /// Sum of each run of `cols` values.
    pub fn sum_rows(x: &[f32], cols: usize) -> Vec<f32> {
        x.chunks(cols)
            .map(|c| c.iter().map(|v| *v as f64).sum::<f64>() as f32)
            .collect()
    }
    /// Column sums of `x` viewed as `[rows, cols]`.
    pub fn sum_leading(x: &[f32], cols: usize) -> Vec<f32> {
        let mut s = vec![0f64; cols];
        for (i, v) in x.iter().enumerate() {
            s[i % cols] += *v as f64;
        }
        s.into_iter().map(|v| v as f32).collect()
    }
}
