//! Ops: one module per kernel family. Each holds the op's forward, its backward and a
//! plain-Rust reference (`reference`, for the tests) side by side, the Rust twin of its
//! `shaders/<family>.wgsl`.
//!
//! Two levels per family: `*_forward`-style functions on [`Tensor`](crate::tensor::Tensor)s that
//! only record kernels, and tape-level functions on [`Var`](crate::tensor::Var)s that also
//! record the backward closure.

pub mod adam;
pub mod conv;
pub mod elementwise;
pub mod gaussian;
pub mod gru;
pub mod imagine;
pub mod kernels;
pub mod kl;
pub mod loss;
pub mod matmul;
pub mod reduce;
pub mod returns;
pub mod rssm;
pub mod shape;

pub use elementwise::{add, elu, mul, relu, scale, sigmoid, softplus, sub, tanh, Binary, Unary};
pub use matmul::{linear, matmul, mlp, Act};
pub use reduce::{mean_all, sum_all, sum_leading, sum_rows};
pub use shape::{concat_last, reshape, slice_time, split_last, stack_time};

use crate::gpu::Gpu;

/// Shorthand used by every op: a 1-D grid of `gpu::WG_1D`-wide workgroups.
pub(crate) fn grid(gpu: &Gpu, n: usize) -> [u32; 3] {
    gpu.grid_1d(n, crate::gpu::WG_1D)
}

/// `(first row, rows)` of each slice when `rows` rows run `per` at a time (see
/// [`Gpu::rows_per_binding`]); one slice of all rows when `per >= rows`.
pub(crate) fn slices(rows: usize, per: usize) -> impl Iterator<Item = (usize, usize)> {
    let per = per.max(1);
    (0..rows.div_ceil(per)).map(move |i| (i * per, per.min(rows - i * per)))
}
