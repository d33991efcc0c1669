//! Convolutions over channels-innermost (NHWC) images, for the encoder where no gradient is
//! needed (the observe-only forward, acting): `shaders/conv_nhwc.wgsl`, the u64 matmul's body
//! with one position's 8 input channels at one tap as a lane's A piece. On CPU drivers with
//! 8-lane subgroups and 64-bit integers; about 1.4x `conv_main_lanes` on the encoder's passes.
//! Training keeps NCHW: its backward passes read that layout.

use super::{conv2d_shape, lanes_mode, main_into_layout, Params, Pass};
use crate::error::{shape_err, Error, Result};
use crate::gpu::Gpu;
use crate::ops::matmul::Act;
use crate::ops::{env_choice, grid, slices, use_lanes, Force};
use crate::tensor::Tensor;

static NHWC: Force = Force::new();

/// Force the NHWC encoder on (`Some(true)`, where the device has 8-lane subgroups and 64-bit
/// integers) or off (`Some(false)`) instead of the default (on wherever it runs): lets the
/// tests compare it with the NCHW path.
pub fn set_nhwc(on: Option<bool>) {
    NHWC.set(on);
}

/// `RSSM_NHWC`: `auto` or `on` (the default) or `off`; read once.
pub const NHWC_ENV: &str = "RSSM_NHWC";

/// Whether the encoder takes the NHWC kernels on this device: they can run there (see
/// [`conv2d_nhwc_forward`]) and the subgroup kernels are in use, unless turned off by
/// [`set_nhwc`] or [`NHWC_ENV`].
pub fn available(gpu: &Gpu) -> Result<bool> {
    static ENV: std::sync::OnceLock<std::result::Result<Option<bool>, String>> =
        std::sync::OnceLock::new();
    let on = match NHWC.get() {
        Some(on) => on,
        None => env_choice(NHWC_ENV, &ENV)?.unwrap_or(true),
    };
    Ok(on && missing_feature(gpu).is_none() && use_lanes(gpu)?)
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

/// `y = act(conv2d(x, w) + b)` for an NCHW `x [N, C, H, W]`, stored channels innermost:
/// `y [N, OH, OW, O]` (the subgroup gather's NHWC store; errors where it does not apply).
pub fn conv2d_forward_to_nhwc(
    x: &Tensor,
    w: &Tensor,
    b: Option<&Tensor>,
    stride: usize,
    act: Act,
) -> Result<Tensor> {
    let cs = conv2d_shape(x.shape(), w.shape(), b.map(|b| b.shape()), stride)?;
    let y = Tensor::empty(x.gpu(), &[cs.n, cs.oh, cs.ow, cs.co])?;
    main_into_layout(x, w, b, &y, Pass::gather(&cs), act, false, true)?;
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
    // The weights as [kh][kw][C][O] (conv.wgsl's `pack_w` with rows of exactly O).
    let packed_len = cs.kh * cs.kw * c * o;
    let packed = Tensor::empty(gpu, &[packed_len])?;
    let pack = gpu.kernel("conv", "pack_w", &[])?;
    let pp = Params {
        kh: cs.kh as u32,
        kw: cs.kw as u32,
        r: c as u32,
        o: o as u32,
        opad4: (o / 4) as u32,
        ws_o: (c * cs.kh * cs.kw) as u32,
        ws_r: (cs.kh * cs.kw) as u32,
        ..Default::default()
    };
    gpu.dispatch(
        &pack,
        &pp,
        &[w.buf(), packed.buf()],
        grid(gpu, packed_len / 4),
    );

    let shape = if nchw_out {
        [n, o, cs.oh, cs.ow]
    } else {
        [n, cs.oh, cs.ow, o]
    };
    let y = Tensor::empty(gpu, &shape)?;
    let kernel = if nchw_out {
        gpu.kernel("conv_nhwc", "conv_nhwc_to_nchw", &[])?
    } else {
        gpu.kernel("conv_nhwc", "conv_nhwc", &[])?
    };
    // Images per dispatch: input and output slices must each fit one storage binding (both
    // start at multiples of 32 bytes: C and O are multiples of 8).
    let (in_img, out_img) = (h * wd * c, o * cs.oh * cs.ow);
    let per = gpu.rows_per_binding(
        "a convolution's images",
        n,
        &[in_img, out_img],
        &[packed_len, o],
    )?;
    for (first, imgs) in slices(n, per) {
        let p = NhwcParams {
            n: imgs as u32,
            ih: h as u32,
            iw: wd as u32,
            c: c as u32,
            oh: cs.oh as u32,
            ow: cs.ow as u32,
            o: o as u32,
            kh: cs.kh as u32,
            kw: cs.kw as u32,
            s: cs.s as u32,
            act: act.code() as u32,
            has_bias: b.is_some() as u32,
        };
        let x_r = x.buf().range(first * in_img, imgs * in_img);
        // The bias binding is part of the layout even without a bias: bind the input there.
        let bias_r = b.map_or(x_r, |b| b.buf().whole());
        let grid = gpu.grid_2d(o.div_ceil(64), (imgs * cs.oh * cs.ow).div_ceil(32));
        gpu.dispatch_ranges(
            &kernel,
            &p,
            &[
                x_r,
                packed.buf().whole(),
                bias_r,
                y.buf().range(first * out_img, imgs * out_img),
            ],
            grid,
        );
    }
    Ok(y)
}

/// shaders/conv_nhwc.wgsl's `Params`.
#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
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
}
