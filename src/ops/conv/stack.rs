//! Stacks of convolutions, in the layout the device runs best: the world model's encoder (a
//! Conv2d stack) and decoder (a ConvTranspose2d stack) are one call each, and the choice of
//! layout, the boundary layers between layouts and the path without gradients live here.
//!
//! - NCHW throughout: every layer `conv2d` / `conv_transpose2d`.
//! - Channels innermost (`nhwc`, where the device's tuning has `layout=nhwc` and the channel
//!   counts are multiples of 8): the encoder's first layer stores NHWC (any input channels),
//!   its later layers run NHWC and the last stores NCHW again; the decoder's first layer (a
//!   matmul on a 1x1 input) is followed by a relayout, its middle layers run NHWC and the last
//!   (3 channels) reads NHWC and stores NCHW. The results are the same in both layouts.
//! - Without gradients (a tape that records no backward), the encoder's NHWC layers run as
//!   plain forwards off the tape.

use super::nhwc;
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

fn weight_shapes(t: &Tape, layers: &[StackLayer]) -> Vec<Vec<usize>> {
    layers.iter().map(|l| t.shape(l.weight)).collect()
}

/// `images [N, C, H, W] -> [N, C', H', W']`: the Conv2d `layers`, each of stride `stride`
/// (weights `[O, C, kh, kw]`), NCHW in and out.
pub fn conv2d_stack(t: &Tape, images: Var, layers: &[StackLayer], stride: usize) -> Result<Var> {
    let ws = weight_shapes(t, layers);
    let ws: Vec<&[usize]> = ws.iter().map(|w| w.as_slice()).collect();
    let x = t.value(images);
    let channels_innermost = nhwc::stack_runs_nhwc(t.gpu(), x.shape(), &ws, stride)?;
    if !channels_innermost {
        let mut x = images;
        for l in layers {
            x = super::conv2d(t, x, l.weight, l.bias, stride, l.act)?;
        }
        return Ok(x);
    }
    let last = layers.len() - 1;
    if !t.grad_enabled() {
        // Plain forwards, off the tape; the last layer stores NCHW again.
        let value = |v: Var| t.value(v);
        let l0 = &layers[0];
        let mut y = nhwc::conv2d_forward_to_nhwc(
            &x,
            &value(l0.weight),
            Some(&value(l0.bias)),
            stride,
            l0.act,
        )?;
        for (i, l) in layers.iter().enumerate().skip(1) {
            y = nhwc::conv2d_nhwc_forward(
                &y,
                &value(l.weight),
                Some(&value(l.bias)),
                stride,
                l.act,
                i == last,
            )?;
        }
        return Ok(t.constant(&y));
    }
    let mut x = images;
    for (i, l) in layers.iter().enumerate() {
        x = if i == 0 {
            nhwc::conv2d_to_nhwc(t, x, l.weight, l.bias, stride, l.act)?
        } else {
            nhwc::conv2d_nhwc(t, x, l.weight, l.bias, stride, l.act)?
        };
    }
    nhwc::to_nchw(t, x)
}

/// `x [N, C, H, W] -> [N, C', H', W']`: the ConvTranspose2d `layers`, each of stride `stride`
/// (weights `[C, O, kh, kw]`), NCHW in and out.
pub fn conv_transpose2d_stack(
    t: &Tape,
    x: Var,
    layers: &[StackLayer],
    stride: usize,
) -> Result<Var> {
    let last = layers.len().saturating_sub(1);
    // Channels innermost between the first layer (a matmul on the decoder's 1x1 input) and the
    // last (3 channels), when training.
    let channels_innermost = last >= 2
        && t.grad_enabled()
        && nhwc::trains_nhwc(t.gpu(), &weight_shapes(t, &layers[1..last]))?;
    let mut x = x;
    for (i, l) in layers.iter().enumerate() {
        let (w, b, act) = (l.weight, l.bias, l.act);
        x = match (channels_innermost, i) {
            (true, 0) => {
                let y = super::conv_transpose2d(t, x, w, b, stride, act)?;
                nhwc::to_nhwc(t, y)?
            }
            (true, i) if i == last => nhwc::conv_transpose2d_from_nhwc(t, x, w, b, stride, act)?,
            (true, _) => nhwc::conv_transpose2d_nhwc(t, x, w, b, stride, act)?,
            (false, _) => super::conv_transpose2d(t, x, w, b, stride, act)?,
        };
    }
    Ok(x)
}
