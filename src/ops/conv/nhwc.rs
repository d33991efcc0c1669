//! Convolutions over channels-innermost (NHWC) images: `shaders/conv_nhwc.wgsl`, the u64
//! matmul's body with one position's 8 input channels at one tap as a lane's A piece, on CPU
//! drivers with 8-lane subgroups and 64-bit integers.
//!
//! - Without gradients (the observe-only forward, acting): the encoder after its first layer
//!   ([`conv2d_forward_to_nhwc`], [`conv2d_nhwc_forward`]); about 1.4x `conv_main_lanes` on
//!   its passes.
//! - Training: the tape ops [`conv2d_nhwc`] and [`conv_transpose2d_nhwc`] run every pass of a
//!   stack's middle layers NHWC: the gather (`conv_nhwc`), the scatter as one gather over the
//!   phase grid with a row phase's column phases folded into the columns
//!   (`conv_nhwc_scatter`) and the weight gradient (`wgrad_nhwc`: rows = (tap, channel of the
//!   large image), k = positions, a lane's A piece 8 channels of one position). The ends of a
//!   stack keep the NCHW kernels, whose 3-channel images no 8-channel load covers:
//!   [`conv2d_to_nhwc`] (the encoder's first layer: NHWC store, its weight gradient reading
//!   the NHWC gradient) and [`conv_transpose2d_from_nhwc`] (the decoder's last: its folded
//!   scatter and its weight gradient read the NHWC input, its input gradient is stored NHWC),
//!   with [`to_nhwc`] / [`to_nchw`] (`conv.wgsl`'s `relayout`) where a layout must change.
//!   About 1.4x on the world-model update's convolutions (README).

use super::{
    bias_grad_into, conv2d_shape, conv_transpose2d_shape, lanes_mode, main_into_layout,
    record_layer, reduce_splits, ConvShape, Layout, Params, Pass, WgradGeom,
};
use crate::error::{shape_err, Error, Result};
use crate::gpu::pipelines::{kernel_sig, KernelSig};
use crate::gpu::Gpu;
use crate::ops::matmul::Act;
use crate::ops::{grid, slices};
use crate::tensor::{Tape, Tensor, Var};

// The kernels this module dispatches: entry points and the storage buffers they bind, in order.

/// `conv_nhwc::conv_nhwc`.
pub const CONV_NHWC: KernelSig = kernel_sig!(
    NhwcParams,
    "conv_nhwc",
    "conv_nhwc",
    [],
    ["x8", "w8", "bias", "y8"]
);

/// `conv_nhwc::conv_nhwc_to_nchw`.
pub const CONV_NHWC_TO_NCHW: KernelSig = kernel_sig!(
    NhwcParams,
    "conv_nhwc",
    "conv_nhwc_to_nchw",
    [],
    ["x8", "w8", "bias", "y"]
);

/// `conv_nhwc::conv_nhwc_scatter`.
pub const CONV_NHWC_SCATTER: KernelSig = kernel_sig!(
    NhwcParams,
    "conv_nhwc",
    "conv_nhwc_scatter",
    [],
    ["x8", "w8", "bias", "y8"]
);

/// `conv_nhwc::wgrad_nhwc`.
pub const WGRAD_NHWC: KernelSig =
    kernel_sig!(NhwcParams, "conv_nhwc", "wgrad_nhwc", [], ["x8", "w8", "y"]);

/// `conv::relayout`.
pub const RELAYOUT: KernelSig = kernel_sig!(
    crate::ops::conv::Params,
    "conv",
    "relayout",
    ["TO_NHWC"],
    ["inp", "out"]
);

/// Whether the encoder takes the NHWC kernels on this device: the tuning's `layout=nhwc`
/// (which holds only where they can run, see [`conv2d_nhwc_forward`]).
pub fn available(gpu: &Gpu) -> Result<bool> {
    Ok(gpu.tuning().nhwc && missing_feature(gpu).is_none())
}

/// The convolutions' layout on this device, for reports and benchmarks.
pub fn layout_choice(gpu: &Gpu) -> Result<String> {
    Ok(if available(gpu)? {
        "channels innermost (conv_nhwc) between the 3-channel ends, where channels are \
         multiples of 8"
            .into()
    } else {
        "NCHW".into()
    })
}

/// What the device lacks for `conv_nhwc`, if anything: 8-lane subgroups, 64-bit integers.
fn missing_feature(gpu: &Gpu) -> Option<&'static str> {
    let r = gpu.report();
    if r.subgroup_lanes != Some(8) {
        Some("8-lane subgroups")
    } else if !r.int64 {
        Some("64-bit integers")
    } else {
        None
    }
}

/// Whether a stack of stride-`stride` convolutions of `input [N, C, H, W]` with weights of
/// these shapes (`[O, C, kh, kw]`) runs NHWC on `gpu` after its first layer: the first layer
/// (any input channels) must take the subgroup gather, which can store channels innermost, and
/// every later one needs input and output channels that are multiples of 8.
pub fn stack_runs_nhwc(
    gpu: &Gpu,
    input: &[usize],
    weights: &[&[usize]],
    stride: usize,
) -> Result<bool> {
    if weights.len() < 2 || !available(gpu)? {
        return Ok(false);
    }
    let cs = conv2d_shape(input, weights[0], None, stride)?;
    if lanes_mode(gpu, &Pass::gather(&cs))?.is_none_or(|m| m.fold) {
        return Ok(false);
    }
    Ok(weights[1..]
        .iter()
        .all(|w| w[0].is_multiple_of(8) && w[1].is_multiple_of(8)))
}

/// Whether layers with weights of these shapes (`[O, C, kh, kw]` or `[C, O, kh, kw]`) train
/// channels innermost on `gpu` ([`conv2d_nhwc`], [`conv_transpose2d_nhwc`]): the kernels run
/// there (see [`available`]) and every channel count is a multiple of 8.
pub fn trains_nhwc(gpu: &Gpu, weights: &[Vec<usize>]) -> Result<bool> {
    Ok(!weights.is_empty()
        && available(gpu)?
        && weights
            .iter()
            .all(|w| w.len() == 4 && w[0].is_multiple_of(8) && w[1].is_multiple_of(8)))
}

/// `y = act(conv2d(x, w) + b)` for an NCHW `x [N, C, H, W]`, stored channels innermost:
/// `y [N, OH, OW, O]` (the subgroup gather's NHWC store, O a multiple of 4; errors where it
/// does not apply).
pub fn conv2d_forward_to_nhwc(
    x: &Tensor,
    w: &Tensor,
    b: Option<&Tensor>,
    stride: usize,
    act: Act,
) -> Result<Tensor> {
    let cs = conv2d_shape(x.shape(), w.shape(), b.map(|b| b.shape()), stride)?;
    let y = Tensor::empty(x.gpu(), &[cs.n, cs.oh, cs.ow, cs.co])?;
    main_into_layout(x, w, b, &y, Pass::gather(&cs), act, false, Layout::NhwcOut)?;
    Ok(y)
}

/// `y = act(conv2d(x, w) + b)` for a channels-innermost `x [N, H, W, C]` (C a multiple of 8)
/// and `w [O, C, kh, kw]` (O a multiple of 8): `y [N, OH, OW, O]`, or with `nchw_out`
/// `y [N, O, OH, OW]`.
pub fn conv2d_nhwc_forward(
    x: &Tensor,
    w: &Tensor,
    b: Option<&Tensor>,
    stride: usize,
    act: Act,
    nchw_out: bool,
) -> Result<Tensor> {
    let gpu = x.gpu();
    let &[n, h, wd, c] = x.shape() else {
        return shape_err(
            "conv2d_nhwc",
            format!("x {:?} is not [N, H, W, C]", x.shape()),
        );
    };
    let cs = conv2d_shape(&[n, c, h, wd], w.shape(), b.map(|b| b.shape()), stride)?;
    let o = cs.co;
    if !c.is_multiple_of(8) || !o.is_multiple_of(8) {
        return shape_err(
            "conv2d_nhwc",
            format!("{c} input and {o} output channels: both must be multiples of 8"),
        );
    }
    if let Some(missing) = missing_feature(gpu) {
        return Err(Error::Invalid(format!(
            "conv2d_nhwc needs 8-lane subgroups and 64-bit integers; {} has no {missing}",
            gpu.report().name
        )));
    }
    let ps = NhwcPass::forward(&cs, false);
    let packed = pack(w, &ps, c * cs.kh * cs.kw, cs.kh * cs.kw)?;
    let shape = if nchw_out {
        [n, o, cs.oh, cs.ow]
    } else {
        [n, cs.oh, cs.ow, o]
    };
    let y = Tensor::empty(gpu, &shape)?;
    pass_into(x, &packed, b, &y, ps, act, false, nchw_out)?;
    Ok(y)
}

/// shaders/conv_nhwc.wgsl's `Params`.
#[repr(C)]
#[derive(Clone, Copy, Default, bytemuck::Pod, bytemuck::Zeroable)]
pub(crate) struct NhwcParams {
    n: u32,
    ih: u32,
    iw: u32,
    c: u32,
    oh: u32,
    ow: u32,
    o: u32,
    kh: u32,
    kw: u32,
    s: u32,
    act: u32,
    has_bias: u32,
    acc: u32,
    imgs: u32,
}

// ---- Training channels innermost: every pass of a stack's middle layers in NHWC ----------

/// The weights `w(o, r, tap) = w[o * ws_o + r * ws_r + tap]` packed for an NHWC pass: a
/// gather's `[kh][kw][R][O]` (conv.wgsl's `pack_w` with rows of exactly O), a scatter's
/// `[ceil(kh/s)][ceil(kw/s)][R][s*s phases][O]` (conv_main_lanes.wgsl's `pack_w_fold`, zero
/// for the taps past the kernel).
fn pack(w: &Tensor, ps: &NhwcPass, ws_o: usize, ws_r: usize) -> Result<Tensor> {
    let gpu = w.gpu();
    let (taps, cols) = if ps.scatter {
        (
            ps.kh.div_ceil(ps.s) * ps.kw.div_ceil(ps.s),
            ps.s * ps.s * ps.o,
        )
    } else {
        (ps.kh * ps.kw, ps.o)
    };
    let len = taps * ps.c * cols;
    gpu.rows_per_binding("a convolution's weights", 1, &[], &[w.len(), len])?;
    let packed = Tensor::empty(gpu, &[len])?;
    let k = if ps.scatter {
        gpu.kernel(&crate::ops::conv::PACK_W_FOLD, &[("PAIR", 0.0)])?
    } else {
        gpu.kernel(&crate::ops::conv::PACK_W, &[])?
    };
    let pp = Params {
        kh: ps.kh as u32,
        kw: ps.kw as u32,
        s: ps.s as u32,
        r: ps.c as u32,
        o: ps.o as u32,
        opad4: (cols / 4) as u32,
        ws_o: ws_o as u32,
        ws_r: ws_r as u32,
        ..Default::default()
    };
    gpu.dispatch(&k, &pp, &[w.buf(), packed.buf()], grid(gpu, len / 4));
    Ok(packed)
}

/// One gather or scatter pass over NHWC images (see conv.wgsl's header for the two sums):
/// `x [n, ih, iw, c]` into `out [n, oh, ow, o]`.
#[derive(Clone, Copy, Debug)]
struct NhwcPass {
    n: usize,
    ih: usize,
    iw: usize,
    c: usize,
    oh: usize,
    ow: usize,
    o: usize,
    kh: usize,
    kw: usize,
    s: usize,
    scatter: bool,
}

impl NhwcPass {
    /// A layer's forward pass: a gather (Conv2d) or a scatter (ConvTranspose2d).
    fn forward(cs: &ConvShape, scatter: bool) -> NhwcPass {
        NhwcPass {
            n: cs.n,
            ih: cs.h,
            iw: cs.w,
            c: cs.ci,
            oh: cs.oh,
            ow: cs.ow,
            o: cs.co,
            kh: cs.kh,
            kw: cs.kw,
            s: cs.s,
            scatter,
        }
    }

    /// The same layer's input-gradient pass: from the output gradient to the input's shape,
    /// the other of the two sums.
    fn input_grad(&self) -> NhwcPass {
        NhwcPass {
            ih: self.oh,
            iw: self.ow,
            c: self.o,
            oh: self.ih,
            ow: self.iw,
            o: self.c,
            scatter: !self.scatter,
            ..*self
        }
    }
}

/// Record `out (+)= act(pass(x, packed) + bias)`, over slices of images that fit a binding;
/// `nchw_out`: a gather's output stored `[N, O, OH, OW]` (not with `acc`).
#[allow(clippy::too_many_arguments)]
fn pass_into(
    x: &Tensor,
    packed: &Tensor,
    bias: Option<&Tensor>,
    out: &Tensor,
    ps: NhwcPass,
    act: Act,
    acc: bool,
    nchw_out: bool,
) -> Result<()> {
    let gpu = x.gpu();
    let kernel = match (ps.scatter, nchw_out) {
        (false, false) => gpu.kernel(&CONV_NHWC, &[])?,
        (false, true) if !acc => gpu.kernel(&CONV_NHWC_TO_NCHW, &[])?,
        (true, false) => gpu.kernel(&CONV_NHWC_SCATTER, &[])?,
        _ => {
            return Err(Error::Invalid(
                "conv_nhwc stores NCHW only from a gather, without accumulation".into(),
            ))
        }
    };
    let (in_img, out_img) = (ps.ih * ps.iw * ps.c, ps.oh * ps.ow * ps.o);
    let per = gpu.rows_per_binding(
        "a convolution's images",
        ps.n,
        &[in_img, out_img],
        &[packed.len(), ps.o],
    )?;
    let cb = ps.o.div_ceil(64);
    for (first, imgs) in slices(ps.n, per) {
        let p = NhwcParams {
            n: imgs as u32,
            ih: ps.ih as u32,
            iw: ps.iw as u32,
            c: ps.c as u32,
            oh: ps.oh as u32,
            ow: ps.ow as u32,
            o: ps.o as u32,
            kh: ps.kh as u32,
            kw: ps.kw as u32,
            s: ps.s as u32,
            act: act.code() as u32,
            has_bias: bias.is_some() as u32,
            acc: acc as u32,
            imgs: 0,
        };
        // The scatter: columns = row phases x (column phases x channels), rows = the phase
        // grid.
        let grid = if ps.scatter {
            let rows = imgs * ps.oh.div_ceil(ps.s) * ps.ow.div_ceil(ps.s);
            gpu.grid_2d(ps.s * (ps.s * ps.o).div_ceil(64), rows.div_ceil(32))
        } else {
            gpu.grid_2d(cb, (imgs * ps.oh * ps.ow).div_ceil(32))
        };
        let x_r = x.buf().range(first * in_img, imgs * in_img);
        let bias_r = bias.map_or(x_r, |b| b.buf().whole());
        gpu.dispatch_ranges(
            &kernel,
            &p,
            &[
                x_r,
                packed.buf().whole(),
                bias_r,
                out.buf().range(first * out_img, imgs * out_img),
            ],
            grid,
        );
    }
    Ok(())
}

/// Positions of the small image per weight-gradient split: long enough that the partial sums
/// stay few, short enough that a split's rows stay in cache.
const WGRAD_SPLIT_POSITIONS: usize = 4096;

/// Record `gw (+)= wgrad(small, large)` over NHWC images (`WgradGeom`'s sum: gw[a][b][ky][kx]
/// with a the small image's channels and b the large one's), split over images into partial
/// sums and over slices of images that fit one binding.
fn wgrad_into(small: &Tensor, large: &Tensor, gw: &Tensor, g: WgradGeom, acc: bool) -> Result<()> {
    let gpu = gw.gpu();
    let (small_img, large_img) = (g.sh * g.sw * g.a, g.lh * g.lw * g.b);
    let out_len = g.a * g.b * g.kh * g.kw;
    let per = gpu.rows_per_binding(
        "a convolution's weight gradient",
        g.n,
        &[small_img, large_img],
        &[out_len],
    )?;
    let k = gpu.kernel(&WGRAD_NHWC, &[])?;
    let rows = g.kh * g.kw * g.b;
    let cb = g.a.div_ceil(64);
    for (i, (first, n)) in slices(g.n, per).enumerate() {
        let acc = acc || i > 0;
        let imgs = (WGRAD_SPLIT_POSITIONS / (g.sh * g.sw).max(1))
            .max(1)
            .max(n.div_ceil((super::max_partial(gpu) / out_len).max(1)));
        let splits = n.div_ceil(imgs);
        let p = NhwcParams {
            n: n as u32,
            ih: g.sh as u32,
            iw: g.sw as u32,
            c: g.b as u32,
            oh: g.lh as u32,
            ow: g.lw as u32,
            o: g.a as u32,
            kh: g.kh as u32,
            kw: g.kw as u32,
            s: g.s as u32,
            acc: (acc && splits == 1) as u32,
            imgs: imgs as u32,
            ..Default::default()
        };
        let grid = [(cb * splits) as u32, rows.div_ceil(32) as u32, 1];
        let (large_r, small_r) = (
            large.buf().range(first * large_img, n * large_img),
            small.buf().range(first * small_img, n * small_img),
        );
        if splits == 1 {
            gpu.dispatch_ranges(&k, &p, &[large_r, small_r, gw.buf().whole()], grid);
            continue;
        }
        gpu.check_len(splits * out_len, "conv weight-gradient partial sums")?;
        let partial = Tensor::empty(gpu, &[splits * out_len])?;
        gpu.dispatch_ranges(&k, &p, &[large_r, small_r, partial.buf().whole()], grid);
        reduce_splits(&partial, gw, out_len, splits, acc)?;
    }
    Ok(())
}

/// Record `out (+)= x` in the other layout: `x [n, c, hw]` as `[n, hw, c]` (`to_nhwc`) or
/// back, over slices of images that fit one binding.
fn relayout_into(
    x: &Tensor,
    out: &Tensor,
    n: usize,
    c: usize,
    hw: usize,
    to_nhwc: bool,
    acc: bool,
) -> Result<()> {
    let gpu = x.gpu();
    let k = gpu.kernel(&RELAYOUT, &[("TO_NHWC", to_nhwc as u32 as f64)])?;
    let img = c * hw;
    let per = gpu.rows_per_binding("a layout change's images", n, &[img], &[])?;
    for (first, imgs) in slices(n, per) {
        let p = Params {
            n: imgs as u32,
            r: c as u32,
            len: hw as u32,
            acc: acc as u32,
            ..Default::default()
        };
        gpu.dispatch_ranges(
            &k,
            &p,
            &[
                x.buf().range(first * img, imgs * img),
                out.buf().range(first * img, imgs * img),
            ],
            gpu.grid_2d(hw.div_ceil(crate::gpu::WG_1D as usize), imgs),
        );
    }
    Ok(())
}

/// `[N, C, H, W] -> [N, H, W, C]` on the tape (its backward the way back).
pub fn to_nhwc(t: &Tape, x: Var) -> Result<Var> {
    relayout(t, x, true)
}

/// `[N, H, W, C] -> [N, C, H, W]` on the tape (its backward the way back).
pub fn to_nchw(t: &Tape, x: Var) -> Result<Var> {
    relayout(t, x, false)
}

fn relayout(t: &Tape, x: Var, to_nhwc: bool) -> Result<Var> {
    let xv = t.value(x);
    let &[n, a, b, c] = xv.shape() else {
        return shape_err("relayout", format!("{:?} is not 4-d", xv.shape()));
    };
    // (channels, pixels) of the input, and the output's shape.
    let (ch, hw, shape) = if to_nhwc {
        (a, b * c, [n, b, c, a])
    } else {
        (c, a * b, [n, c, a, b])
    };
    let y = Tensor::empty(xv.gpu(), &shape)?;
    relayout_into(&xv, &y, n, ch, hw, to_nhwc, false)?;
    let (xshape, gpu) = (xv.shape().to_vec(), xv.gpu().clone());
    Ok(t.record(y, &[x], move |g, gy| {
        let (gx, acc) = g.target(x, &xshape, &gpu)?;
        relayout_into(gy, &gx, n, ch, hw, !to_nhwc, acc)
    }))
}

/// Validated NHWC operands of a middle layer: `x [N, H, W, C]` and weights whose channels are
/// multiples of 8, on a device that runs the kernels.
fn check_nhwc(op: &'static str, x: &Tensor, c: usize, o: usize) -> Result<()> {
    if !c.is_multiple_of(8) || !o.is_multiple_of(8) {
        return shape_err(
            op,
            format!("{c} input and {o} output channels: both must be multiples of 8"),
        );
    }
    if let Some(missing) = missing_feature(x.gpu()) {
        return Err(Error::Invalid(format!(
            "{op} needs 8-lane subgroups and 64-bit integers; {} has no {missing}",
            x.gpu().report().name
        )));
    }
    Ok(())
}

/// `x [N, H, W, C]` as the NCHW shape `[N, C, H, W]` for the shape checks.
fn nchw_shape(op: &'static str, x: &Tensor) -> Result<[usize; 4]> {
    match *x.shape() {
        [n, h, w, c] => Ok([n, c, h, w]),
        _ => shape_err(op, format!("x {:?} is not [N, H, W, C]", x.shape())),
    }
}

/// `act(conv2d(x, w) + b)` on the tape, channels innermost: `x [N, H, W, C]`, `w [O, C, kh,
/// kw]` (PyTorch's layout), `b [O]` -> `[N, OH, OW, O]`. Backward: the input gradient as an
/// NHWC scatter, the weight gradient as `wgrad_nhwc`, the bias gradient a column sum.
pub fn conv2d_nhwc(t: &Tape, x: Var, w: Var, b: Var, stride: usize, act: Act) -> Result<Var> {
    let (xv, wv, bv) = (t.value(x), t.value(w), t.value(b));
    let cs = conv2d_shape(
        &nchw_shape("conv2d_nhwc", &xv)?,
        wv.shape(),
        Some(bv.shape()),
        stride,
    )?;
    check_nhwc("conv2d_nhwc", &xv, cs.ci, cs.co)?;
    let kk = cs.kh * cs.kw;
    let fwd = NhwcPass::forward(&cs, false);
    let y = Tensor::empty(xv.gpu(), &[cs.n, cs.oh, cs.ow, cs.co])?;
    let packed = pack(&wv, &fwd, cs.ci * kk, kk)?;
    pass_into(&xv, &packed, Some(&bv), &y, fwd, act, false, false)?;
    // Backward: the input gradient scatters g [N, OH, OW, O] through w viewed as [O][C].
    let bwd = fwd.input_grad();
    let geom = WgradGeom::conv2d(&cs, false);
    Ok(record_layer(
        t,
        [x, w, b],
        [xv, wv],
        y,
        (cs.co, true),
        act,
        move |xv, wv, gpre, gx, gw, _| {
            if let Some((gx, acc)) = gx {
                let packed = pack(wv, &bwd, kk, cs.ci * kk)?;
                pass_into(gpre, &packed, None, gx, bwd, Act::None, acc, false)?;
            }
            if let Some((gw, acc)) = gw {
                wgrad_into(gpre, xv, gw, geom, acc)?;
            }
            Ok(())
        },
    ))
}

/// `act(conv_transpose2d(x, w) + b)` on the tape, channels innermost: `x [N, H, W, C]`,
/// `w [C, O, kh, kw]` (PyTorch's layout), `b [O]` -> `[N, OH, OW, O]`. Forward an NHWC
/// scatter; backward: the input gradient as an NHWC gather, the weight gradient as
/// `wgrad_nhwc`, the bias gradient a column sum.
pub fn conv_transpose2d_nhwc(
    t: &Tape,
    x: Var,
    w: Var,
    b: Var,
    stride: usize,
    act: Act,
) -> Result<Var> {
    let (xv, wv, bv) = (t.value(x), t.value(w), t.value(b));
    let cs = conv_transpose2d_shape(
        &nchw_shape("conv_transpose2d_nhwc", &xv)?,
        wv.shape(),
        Some(bv.shape()),
        stride,
    )?;
    check_nhwc("conv_transpose2d_nhwc", &xv, cs.ci, cs.co)?;
    let kk = cs.kh * cs.kw;
    let fwd = NhwcPass::forward(&cs, true);
    let y = Tensor::empty(xv.gpu(), &[cs.n, cs.oh, cs.ow, cs.co])?;
    let packed = pack(&wv, &fwd, kk, cs.co * kk)?;
    pass_into(&xv, &packed, Some(&bv), &y, fwd, act, false, false)?;
    // Backward: the input gradient gathers g [N, OH, OW, O] through w viewed as [C][O].
    let bwd = fwd.input_grad();
    let geom = WgradGeom::conv_transpose2d(&cs, false);
    Ok(record_layer(
        t,
        [x, w, b],
        [xv, wv],
        y,
        (cs.co, true),
        act,
        move |xv, wv, gpre, gx, gw, _| {
            if let Some((gx, acc)) = gx {
                let packed = pack(wv, &bwd, cs.co * kk, kk)?;
                pass_into(gpre, &packed, None, gx, bwd, Act::None, acc, false)?;
            }
            if let Some((gw, acc)) = gw {
                wgrad_into(xv, gpre, gw, geom, acc)?;
            }
            Ok(())
        },
    ))
}

/// The first layer of a channels-innermost stack on the tape: `act(conv2d(x, w) + b)` for an
/// NCHW `x [N, C, H, W]` (any C: the images), stored `[N, OH, OW, O]` by the subgroup gather
/// (see [`conv2d_forward_to_nhwc`]). Backward: the weight gradient reads the NHWC gradient
/// (`wgrad_lanes`), the bias gradient is a column sum; an input gradient, where one is wanted,
/// goes through NCHW.
pub fn conv2d_to_nhwc(t: &Tape, x: Var, w: Var, b: Var, stride: usize, act: Act) -> Result<Var> {
    let (xv, wv, bv) = (t.value(x), t.value(w), t.value(b));
    let y = conv2d_forward_to_nhwc(&xv, &wv, Some(&bv), stride, act)?;
    let cs = conv2d_shape(xv.shape(), wv.shape(), None, stride)?;
    let geom = WgradGeom::conv2d(&cs, true);
    Ok(record_layer(
        t,
        [x, w, b],
        [xv, wv],
        y,
        (cs.co, true),
        act,
        move |xv, wv, gpre, gx, gw, _| {
            if let Some((gx, acc)) = gx {
                let g = Tensor::empty(xv.gpu(), &[cs.n, cs.co, cs.oh, cs.ow])?;
                relayout_into(gpre, &g, cs.n, cs.co, cs.oh * cs.ow, false, false)?;
                super::conv2d_backward(xv, wv, &g, stride, Some((gx, acc)), None, None)?;
            }
            if let Some((gw, acc)) = gw {
                super::wgrad_into(gpre, xv, gw, geom, acc)?;
            }
            Ok(())
        },
    ))
}

/// The last layer of a channels-innermost stack on the tape: `act(conv_transpose2d(x, w) +
/// b)` for an NHWC `x [N, H, W, C]`, `w [C, O, kh, kw]`, with the NCHW output `[N, O, OH, OW]`
/// (the image: any O). Where the subgroup scatter takes the layer, it reads x channels
/// innermost and the weight gradient does too, so x is never copied; elsewhere x is changed to
/// NCHW for the NCHW kernels. Backward: the input gradient is stored channels innermost by the
/// subgroup gather where it applies.
pub fn conv_transpose2d_from_nhwc(
    t: &Tape,
    x: Var,
    w: Var,
    b: Var,
    stride: usize,
    act: Act,
) -> Result<Var> {
    let (xv, wv, bv) = (t.value(x), t.value(w), t.value(b));
    let [n, c, h, wd] = nchw_shape("conv_transpose2d_from_nhwc", &xv)?;
    let cs = conv_transpose2d_shape(&[n, c, h, wd], wv.shape(), Some(bv.shape()), stride)?;
    let gpu = xv.gpu().clone();
    let fwd = Pass::transpose_forward(&cs);
    // A 1x1 input is a matmul in the NCHW op (and NHWC and NCHW are the same there).
    let reads_nhwc = (h, wd) != (1, 1) && lanes_mode(&gpu, &fwd)?.is_some();
    let (x_saved, y) = if reads_nhwc {
        let y = Tensor::empty(&gpu, &[n, cs.co, cs.oh, cs.ow])?;
        main_into_layout(&xv, &wv, Some(&bv), &y, fwd, act, false, Layout::NhwcIn)?;
        (xv, y)
    } else {
        let x_nchw = Tensor::empty(&gpu, &[n, c, h, wd])?;
        relayout_into(&xv, &x_nchw, n, c, h * wd, false, false)?;
        let y = super::conv_transpose2d_forward(&x_nchw, &wv, Some(&bv), stride, act)?;
        (x_nchw, y)
    };
    let ps = Pass::transpose_input_grad(&cs);
    let direct = c.is_multiple_of(4) && lanes_mode(&gpu, &ps)?.is_some_and(|m| !m.fold);
    Ok(record_layer(
        t,
        [x, w, b],
        [x_saved, wv],
        y,
        (cs.co, false),
        act,
        move |x_saved, wv, gpre, gx, gw, gb| {
            if let Some((gx, acc)) = gx {
                if direct {
                    main_into_layout(gpre, wv, None, gx, ps, Act::None, acc, Layout::NhwcOut)?;
                } else {
                    let g = Tensor::empty(gpre.gpu(), &[n, c, h, wd])?;
                    super::main_into(gpre, wv, None, &g, ps, Act::None, false)?;
                    relayout_into(&g, gx, n, c, h * wd, true, acc)?;
                }
            }
            if !reads_nhwc {
                return super::conv_transpose2d_backward(x_saved, wv, gpre, stride, None, gw, gb);
            }
            if let Some((gw, acc)) = gw {
                let geom = WgradGeom::conv_transpose2d(&cs, true);
                super::wgrad_into(x_saved, gpre, gw, geom, acc)?;
            }
            if let Some((gb, acc)) = gb {
                bias_grad_into(gpre, gb, n, cs.co, cs.oh * cs.ow, acc)?;
            }
            Ok(())
        },
    ))
}
