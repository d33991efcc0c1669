//! Sums along the last axis, over the leading axes, and to a scalar (`shaders/reduce.wgsl`).
//! Every backward is one `expand` dispatch (a broadcast of the output gradient).

use crate::error::{shape_err, Result};
use crate::gpu::WG_1D;
use crate::ops::grid;
use crate::tensor::{Tape, Tensor, Var};

#[repr(C)]
#[derive(Clone, Copy, Default, bytemuck::Pod, bytemuck::Zeroable)]
pub(crate) struct Params {
    n: u32,
    rows: u32,
    cols: u32,
    div: u32,
    modulo: u32,
    alpha: f32,
}

/// Record `y[r] = alpha * sum of x's r-th run of `cols` values` (the last run may be short).
fn sum_rows_into(x: &Tensor, cols: usize, alpha: f32, y: &Tensor) -> Result<()> {
    let gpu = x.gpu();
    let rows = x.len().div_ceil(cols.max(1));
    let k = gpu.kernel("reduce", "sum_rows", &[])?;
    let p = Params {
        n: x.len() as u32,
        rows: rows as u32,
        cols: cols as u32,
        alpha,
        ..Default::default()
    };
    gpu.dispatch(
        &k,
        &p,
        &[x.buf(), y.buf()],
        gpu.grid_1d(rows * WG_1D as usize, WG_1D),
    );
    Ok(())
}

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
    let p = Params {
        n: x.len() as u32,
        rows: (x.len() / cols) as u32,
        cols: cols as u32,
        alpha: 1.0,
        ..Default::default()
    };
    let k = gpu.kernel("reduce", "sum_leading", &[("ACC", acc as u32 as f64)])?;
    gpu.dispatch(&k, &p, &[x.buf(), y.buf()], grid(gpu, cols));
    Ok(())
}

/// Record `y[i] (+)= alpha * x[(i / div) % modulo]`.
fn expand_into(
    x: &Tensor,
    y: &Tensor,
    div: usize,
    modulo: usize,
    alpha: f32,
    acc: bool,
) -> Result<()> {
    let gpu = x.gpu();
    let k = gpu.kernel("reduce", "expand", &[("ACC", acc as u32 as f64)])?;
    let p = Params {
        n: y.len() as u32,
        div: div.max(1) as u32,
        modulo: modulo.max(1) as u32,
        alpha,
        ..Default::default()
    };
    gpu.dispatch(&k, &p, &[x.buf(), y.buf()], grid(gpu, y.len()));
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
    const CHUNK: usize = 4096;
    let gpu = x.gpu();
    let out = Tensor::empty(gpu, &[1])?;
    if x.len() <= CHUNK {
        sum_rows_into(x, CHUNK, alpha, &out)?;
    } else {
        let partial = Tensor::empty(gpu, &[x.len().div_ceil(CHUNK)])?;
        sum_rows_into(x, CHUNK, 1.0, &partial)?;
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
