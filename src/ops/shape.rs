//! Concat and split along the last axis, slicing a time step out of `[B, T, ...]` and stacking
//! steps back, and reshape. All are the one strided-copy kernel `copy2d`
//! (`shaders/shape.wgsl`); each backward is the same copy in the other direction.

use crate::error::{shape_err, Result};
use crate::gpu::pipelines::{kernel_sig, KernelSig};
use crate::ops::grid;
use crate::tensor::{Tape, Tensor, Var};

// The kernels this module dispatches: entry points and the storage buffers they bind, in order.

/// `shape::copy2d`.
pub const COPY2D: KernelSig = kernel_sig!(Params, "shape", "copy2d", ["ACC"], ["src", "dst"]);

#[repr(C)]
#[derive(Clone, Copy, Default, bytemuck::Pod, bytemuck::Zeroable)]
pub(crate) struct Params {
    rows: u32,
    cols: u32,
    src_off: u32,
    src_stride: u32,
    dst_off: u32,
    dst_stride: u32,
}

/// A block of `rows x cols` values: where it starts and the row stride, in one buffer.
#[derive(Clone, Copy, Debug)]
pub struct Block {
    pub offset: usize,
    pub stride: usize,
}

/// Record `dst[block] (+)= src[block]` for a `rows x cols` block.
pub fn copy2d(
    src: &Tensor,
    s: Block,
    dst: &Tensor,
    d: Block,
    rows: usize,
    cols: usize,
    acc: bool,
) -> Result<()> {
    let last = |b: Block| {
        if rows == 0 {
            0
        } else {
            b.offset + (rows - 1) * b.stride + cols
        }
    };
    if last(s) > src.len() || last(d) > dst.len() {
        return shape_err(
            "copy2d",
            format!("block out of range: {rows}x{cols} {s:?} -> {d:?}"),
        );
    }
    let gpu = src.gpu();
    let k = gpu.kernel(&COPY2D, &[("ACC", acc as u32 as f64)])?;
    let p = Params {
        rows: rows as u32,
        cols: cols as u32,
        src_off: s.offset as u32,
        src_stride: s.stride as u32,
        dst_off: d.offset as u32,
        dst_stride: d.stride as u32,
    };
    gpu.dispatch(&k, &p, &[src.buf(), dst.buf()], grid(gpu, rows * cols));
    Ok(())
}

/// Concatenate along the last axis; all inputs share the leading shape.
pub fn concat_last(t: &Tape, xs: &[Var]) -> Result<Var> {
    let vals: Vec<Tensor> = xs.iter().map(|v| t.value(*v)).collect();
    let Some(first) = vals.first() else {
        return shape_err("concat", "no inputs");
    };
    let lead = &first.shape()[..first.shape().len().saturating_sub(1)];
    for v in &vals {
        if v.shape().len() != first.shape().len() || &v.shape()[..lead.len()] != lead {
            return shape_err(
                "concat",
                format!(
                    "leading shapes differ: {:?} vs {:?}",
                    first.shape(),
                    v.shape()
                ),
            );
        }
    }
    let widths: Vec<usize> = vals.iter().map(|v| v.last_dim()).collect();
    let total: usize = widths.iter().sum();
    let rows = first.rows();
    let mut shape = lead.to_vec();
    shape.push(total);
    let y = Tensor::empty(first.gpu(), &shape)?;
    let mut off = 0;
    for (v, w) in vals.iter().zip(&widths) {
        copy2d(
            v,
            Block {
                offset: 0,
                stride: *w,
            },
            &y,
            Block {
                offset: off,
                stride: total,
            },
            rows,
            *w,
            false,
        )?;
        off += w;
    }
    let shapes: Vec<Vec<usize>> = vals.iter().map(|v| v.shape().to_vec()).collect();
    let gpu = first.gpu().clone();
    let xs = xs.to_vec();
    Ok(t.record(y, &xs.clone(), move |g, gy| {
        let mut off = 0;
        for ((x, w), shape) in xs.iter().zip(&widths).zip(&shapes) {
            if g.wants(*x) {
                let (gx, acc) = g.target(*x, shape, &gpu)?;
                copy2d(
                    gy,
                    Block {
                        offset: off,
                        stride: total,
                    },
                    &gx,
                    Block {
                        offset: 0,
                        stride: *w,
                    },
                    rows,
                    *w,
                    acc,
                )?;
            }
            off += w;
        }
        Ok(())
    }))
}

/// Split along the last axis into pieces of the given widths (which must add up).
pub fn split_last(t: &Tape, x: Var, widths: &[usize]) -> Result<Vec<Var>> {
    let xv = t.value(x);
    let total = xv.last_dim();
    if widths.iter().sum::<usize>() != total || xv.shape().is_empty() {
        return shape_err("split", format!("widths {widths:?} for {:?}", xv.shape()));
    }
    let rows = xv.rows();
    let lead = xv.shape()[..xv.shape().len() - 1].to_vec();
    let mut out = Vec::with_capacity(widths.len());
    let mut off = 0;
    for &w in widths {
        let mut shape = lead.clone();
        shape.push(w);
        let y = Tensor::empty(xv.gpu(), &shape)?;
        copy2d(
            &xv,
            Block {
                offset: off,
                stride: total,
            },
            &y,
            Block {
                offset: 0,
                stride: w,
            },
            rows,
            w,
            false,
        )?;
        let (xshape, gpu, o) = (xv.shape().to_vec(), xv.gpu().clone(), off);
        out.push(t.record(y, &[x], move |g, gy| {
            let (gx, acc) = g.target(x, &xshape, &gpu)?;
            if !acc {
                // Only this piece's columns get written: the others must start at zero.
                gpu.clear(gx.buf());
            }
            copy2d(
                gy,
                Block {
                    offset: 0,
                    stride: w,
                },
                &gx,
                Block {
                    offset: o,
                    stride: total,
                },
                rows,
                w,
                true,
            )
        }));
        off += w;
    }
    Ok(out)
}

/// Time step `step` of `x [B, T, ...]`: `[B, ...]`.
pub fn slice_time(t: &Tape, x: Var, step: usize) -> Result<Var> {
    let xv = t.value(x);
    let s = xv.shape().to_vec();
    if s.len() < 2 || step >= s[1] {
        return shape_err(
            "slice_time",
            format!("step {step} of {s:?} (needs [B, T, ...])"),
        );
    }
    let (b, tt) = (s[0], s[1]);
    let f: usize = s[2..].iter().product();
    let mut shape = vec![b];
    shape.extend_from_slice(&s[2..]);
    let y = Tensor::empty(xv.gpu(), &shape)?;
    copy2d(
        &xv,
        Block {
            offset: step * f,
            stride: tt * f,
        },
        &y,
        Block {
            offset: 0,
            stride: f,
        },
        b,
        f,
        false,
    )?;
    let gpu = xv.gpu().clone();
    Ok(t.record(y, &[x], move |g, gy| {
        let (gx, acc) = g.target(x, &s, &gpu)?;
        if !acc {
            gpu.clear(gx.buf());
        }
        copy2d(
            gy,
            Block {
                offset: 0,
                stride: f,
            },
            &gx,
            Block {
                offset: step * f,
                stride: tt * f,
            },
            b,
            f,
            true,
        )
    }))
}

/// Stack `T` tensors of shape `[B, ...]` into `[B, T, ...]`.
pub fn stack_time(t: &Tape, xs: &[Var]) -> Result<Var> {
    let vals: Vec<Tensor> = xs.iter().map(|v| t.value(*v)).collect();
    let Some(first) = vals.first() else {
        return shape_err("stack_time", "no inputs");
    };
    let s = first.shape().to_vec();
    if s.is_empty() || vals.iter().any(|v| v.shape() != s.as_slice()) {
        return shape_err("stack_time", "inputs must share one shape [B, ...]");
    }
    let (b, tt) = (s[0], vals.len());
    let f: usize = s[1..].iter().product();
    let mut shape = vec![b, tt];
    shape.extend_from_slice(&s[1..]);
    let y = Tensor::empty(first.gpu(), &shape)?;
    for (step, v) in vals.iter().enumerate() {
        copy2d(
            v,
            Block {
                offset: 0,
                stride: f,
            },
            &y,
            Block {
                offset: step * f,
                stride: tt * f,
            },
            b,
            f,
            false,
        )?;
    }
    let gpu = first.gpu().clone();
    let xs = xs.to_vec();
    Ok(t.record(y, &xs.clone(), move |g, gy| {
        for (step, x) in xs.iter().enumerate() {
            if g.wants(*x) {
                let (gx, acc) = g.target(*x, &s, &gpu)?;
                copy2d(
                    gy,
                    Block {
                        offset: step * f,
                        stride: tt * f,
                    },
                    &gx,
                    Block {
                        offset: 0,
                        stride: f,
                    },
                    b,
                    f,
                    acc,
                )?;
            }
        }
        Ok(())
    }))
}

/// A new shape over the same values (no copy; the gradient is reshaped back).
pub fn reshape(t: &Tape, x: Var, shape: &[usize]) -> Result<Var> {
    let xv = t.value(x);
    let y = xv.reshape(shape)?;
    let xshape = xv.shape().to_vec();
    Ok(t.record(y, &[x], move |g, gy| g.add(x, gy.reshape(&xshape)?)))
}
