//! Stacks of convolutions: the world model's encoder (a Conv2d stack) and decoder (a
//! ConvTranspose2d stack) are one call each, so how a stack runs is this module's business
//! alone. Today every layer runs NCHW on the tape; a channels-innermost layout was tried here
//! and removed for gaining nothing on the default CPU job (docs/performance.md).

use crate::error::Result;
use crate::ops::matmul::Act;
use crate::tensor::{Tape, Var};

/// One layer of a stack: its weight and bias (tape variables) and its activation.
#[derive(Clone, Copy, Debug)]
pub struct StackLayer {
    pub weight: Var,
    pub bias: Var,
    pub act: Act,
}

/// `images [N, C, H, W] -> [N, C', H', W']`: the Conv2d `layers`, each of stride `stride`
/// (weights `[O, C, kh, kw]`).
pub fn conv2d_stack(t: &Tape, images: Var, layers: &[StackLayer], stride: usize) -> Result<Var> {
    let mut x = images;
    for l in layers {
        x = super::conv2d(t, x, l.weight, l.bias, stride, l.act)?;
    }
    Ok(x)
}

/// `x [N, C, H, W] -> [N, C', H', W']`: the ConvTranspose2d `layers`, each of stride `stride`
/// (weights `[C, O, kh, kw]`).
pub fn conv_transpose2d_stack(
    t: &Tape,
    x: Var,
    layers: &[StackLayer],
    stride: usize,
) -> Result<Var> {
    let mut x = x;
    for l in layers {
        x = super::conv_transpose2d(t, x, l.weight, l.bias, stride, l.act)?;
    }
    Ok(x)
}
