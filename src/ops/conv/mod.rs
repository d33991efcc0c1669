//! Conv2d and ConvTranspose2d (PyTorch layouts, NCHW, no padding) with a fused bias and
//! activation, and their backward passes (`shaders/conv.wgsl`).
//!
//! Layouts: images `[N, C, H, W]`; Conv2d weight `[out_c, in_c, kh, kw]`; ConvTranspose2d weight
//! `[in_c, out_c, kh, kw]`; bias `[out_c]`. Output size `(H - k) / s + 1` (Conv2d) and
//! `(H - 1) * s + k` (ConvTranspose2d).
//!
//! Every pass is an implicit GEMM (nothing is unfolded into an im2col buffer), built from three
//! sums in the shader: *gather* (Conv2d forward, ConvTranspose2d input gradient), *scatter*
//! computed as a gather over the taps reaching each output pixel (ConvTranspose2d forward,
//! Conv2d input gradient) and *wgrad* (both weight gradients: a GEMM whose reduction runs over
//! images x pixels, split across workgroups into partial sums and then reduced). A
//! ConvTranspose2d on a 1x1 input (the decoder's first layer) is a plain GEMM: it runs as a 1x1
//! gather with `O = out_c * kh * kw` output channels. The weights are repacked before each
//! gather/scatter pass (one small dispatch) so that output channels are contiguous.
//!
//! Fused: bias and activation into the forward store; gradient accumulation into every backward
//! store (`grads.target` says whether a gradient already exists; the kernels then add). The
//! activation's backward is one elementwise dispatch from the saved output (as in `linear`), so
//! the three gradient passes read a plain pre-activation gradient.
//!
//! Dispatches per layer: forward 2 (pack, conv); backward 1 for the activation, 2 for the input
//! gradient, 1 or 2 for the weight gradient (partial sums, their reduction) and 2 for the bias.
//! Pipelines: the conv kernel has override variants only for gather/scatter and the
//! output-channel block, so a whole encoder + decoder compiles about ten; kernel size and
//! stride are runtime parameters.

use crate::error::{shape_err, Result};
use crate::gpu::pipelines::{kernel_sig, KernelSig};
use crate::gpu::{BufRange, Gpu};
pub use stack::{conv2d_stack, conv_transpose2d_stack, StackLayer};

use crate::ops::matmul::{act_backward, matmul_into, Act, MatmulSpec};
use crate::ops::reduce::expand_into;
use crate::ops::{grid, slices};
use crate::tensor::{Tape, Tensor, Var};

// The kernels this module dispatches: entry points and the storage buffers they bind, in order.

/// `conv::pack_w`.
pub const PACK_W: KernelSig = kernel_sig!(Params, "conv", "pack_w", [], ["inp", "wp_out"]);

/// `conv::conv_main`.
pub const CONV_MAIN: KernelSig = kernel_sig!(
    Params,
    "conv",
    "conv_main",
    ["SCATTER", "CB4", "NPOS"],
    ["inp", "wp", "bias", "out"]
);

/// `conv::reduce_splits`.
pub const REDUCE_SPLITS: KernelSig =
    kernel_sig!(Params, "conv", "reduce_splits", [], ["inp", "out"]);

/// `conv::wgrad`.
pub const WGRAD: KernelSig = kernel_sig!(Params, "conv", "wgrad", ["NCOL"], ["inp", "out", "inp2"]);

/// `conv_lanes::wgrad_lanes`.
pub const WGRAD_LANES: KernelSig = kernel_sig!(
    Params,
    "conv_lanes",
    "wgrad_lanes",
    [],
    ["inp", "out", "inp2"]
);

/// `conv_lanes::conv_main_lanes`.
pub const CONV_MAIN_LANES: KernelSig = kernel_sig!(
    Params,
    "conv_lanes",
    "conv_main_lanes",
    ["SCATTER", "CB4L", "FOLD", "PAIR"],
    ["inp", "wp", "bias", "out"]
);

/// `conv_lanes::pack_w_fold`.
pub const PACK_W_FOLD: KernelSig = kernel_sig!(
    Params,
    "conv_lanes",
    "pack_w_fold",
    ["PAIR"],
    ["inp", "wp_out"]
);

/// `conv::bias_grad`.
pub const BIAS_GRAD: KernelSig = kernel_sig!(Params, "conv", "bias_grad", [], ["inp", "out"]);

#[repr(C)]
#[derive(Clone, Copy, Default, bytemuck::Pod, bytemuck::Zeroable)]
pub(crate) struct Params {
    n: u32,
    r: u32,
    o: u32,
    ih: u32,
    iw: u32,
    oh: u32,
    ow: u32,
    kh: u32,
    kw: u32,
    s: u32,
    opad4: u32,
    bias_div: u32,
    has_bias: u32,
    act: u32,
    acc: u32,
    a: u32,
    b: u32,
    c: u32,
    imgs: u32,
    ws_o: u32,
    ws_r: u32,
    len: u32,
    splits: u32,
}

/// Invocations per workgroup of `conv_main` and `wgrad`.
const WG_MAIN: usize = 64;
/// Weight-gradient tile rows per invocation (channels of the small image).
const WG_TILE_A: usize = 16;
/// Invocations the split reductions aim for: enough to fill a GPU, few enough that the partial
/// sums stay small.
const TARGET_INVOCATIONS: usize = 16384;
/// Cap on a weight-gradient partial-sum buffer, in f32.
const MAX_PARTIAL: usize = 1 << 25;

/// One `conv_main` pass: `out[n, o, ., .] = sum over r and taps of inp[n, r, ., .] * w(o, r, ky, kx)`
/// with `w(o, r, ky, kx) = w[o * ws_o + r * ws_r + ky * kw + kx]`.
#[derive(Clone, Copy, Debug)]
struct Pass {
    n: usize,
    r: usize,
    o: usize,
    ih: usize,
    iw: usize,
    oh: usize,
    ow: usize,
    kh: usize,
    kw: usize,
    s: usize,
    scatter: bool,
    ws_o: usize,
    ws_r: usize,
    bias_div: usize,
}

impl Pass {
    /// A ConvTranspose2d's input gradient, a gather over the output gradient's channels:
    /// `gx[n, ci, iy, ix] = sum_{co, ky, kx} g[n, co, iy*s + ky, ix*s + kx] * w[ci, co, ky, kx]`.
    fn transpose_input_grad(cs: &ConvShape) -> Pass {
        let kk = cs.kh * cs.kw;
        Pass {
            n: cs.n,
            r: cs.co,
            o: cs.ci,
            ih: cs.oh,
            iw: cs.ow,
            oh: cs.h,
            ow: cs.w,
            kh: cs.kh,
            kw: cs.kw,
            s: cs.s,
            scatter: false,
            ws_o: cs.co * kk,
            ws_r: kk,
            bias_div: 1,
        }
    }

    /// A Conv2d's forward pass: a gather over the input's channels, weights `[O, C, kh, kw]`.
    fn gather(cs: &ConvShape) -> Pass {
        let kk = cs.kh * cs.kw;
        Pass {
            n: cs.n,
            r: cs.ci,
            o: cs.co,
            ih: cs.h,
            iw: cs.w,
            oh: cs.oh,
            ow: cs.ow,
            kh: cs.kh,
            kw: cs.kw,
            s: cs.s,
            scatter: false,
            ws_o: cs.ci * kk,
            ws_r: kk,
            bias_div: 1,
        }
    }

    /// A ConvTranspose2d's forward pass: a scatter over the input's channels, weights
    /// `[C, O, kh, kw]`.
    /// (The gather's geometry, scattered, with the weights' channel axes swapped.)
    fn transpose_forward(cs: &ConvShape) -> Pass {
        let kk = cs.kh * cs.kw;
        Pass {
            scatter: true,
            ws_o: kk,
            ws_r: cs.co * kk,
            ..Pass::gather(cs)
        }
    }
}

/// Register-block size ([`Tuning::conv_block`](crate::gpu::Tuning)): output positions per
/// `conv_main` invocation and (channel, ky, kx) columns per `wgrad` invocation. 16 on CPU
/// drivers, where a larger block means fewer lane-by-lane loads per FMA; 8 on GPUs, where
/// 16 x 16 accumulators per invocation would not fit the register file.
fn block(gpu: &Gpu) -> usize {
    gpu.tuning().conv_block as usize
}

/// Output-channel vec4s per invocation: fewer for narrow outputs (the decoder's 3 channels).
fn cb4_for(o: usize) -> usize {
    if o <= 4 {
        1
    } else if o <= 8 {
        2
    } else {
        4
    }
}

/// How `conv_main_lanes` (shaders/conv_main_lanes.wgsl) takes a pass.
#[derive(Clone, Copy, Debug)]
struct LanesMode {
    /// Output-channel vec4s per lane (CB4L).
    cb4l: usize,
    /// The scatter's phases folded into the channels (FOLD).
    fold: bool,
    /// Folded, and two output columns per position as well (PAIR).
    pair: bool,
}

impl LanesMode {
    /// Output channels, virtual ones when folded.
    fn channels(&self, ps: &Pass) -> usize {
        match (self.fold, self.pair) {
            (false, _) => ps.o,
            (true, false) => ps.s * ps.s * ps.o,
            (true, true) => 2 * ps.s * ps.s * ps.o,
        }
    }
}

/// How `conv_main_lanes` takes a pass, or `None` for the plain `conv_main`. A subgroup covers
/// 32 * CB4L channels, so a narrow output (16 channels or fewer) would be mostly padding there:
/// a scatter folds its s*s phases into the channels instead (the decoder's last layer: 3
/// channels x 4 phases), and pairs of output columns too where that still fits 32 channels (24
/// for that layer); a gather keeps the plain kernel.
fn lanes_mode(gpu: &Gpu, ps: &Pass) -> Result<Option<LanesMode>> {
    if !gpu.tuning().lanes {
        return Ok(None);
    }
    let fold = ps.scatter && ps.o <= 16 && ps.s > 1;
    let pair = fold && 2 * ps.s * ps.s * ps.o <= 32;
    let mut mode = LanesMode {
        cb4l: 1,
        fold,
        pair,
    };
    let o = mode.channels(ps);
    if !fold && o <= 16 {
        return Ok(None);
    }
    mode.cb4l = if o <= 32 { 1 } else { 2 };
    Ok(Some(mode))
}

fn flag(b: bool) -> f64 {
    b as u32 as f64
}

/// Record `out (+)= act(pass(inp, w) + bias)`.
fn main_into(
    inp: &Tensor,
    w: &Tensor,
    bias: Option<&Tensor>,
    out: &Tensor,
    ps: Pass,
    act: Act,
    acc: bool,
) -> Result<()> {
    let gpu = inp.gpu();
    let lanes = lanes_mode(gpu, &ps)?;
    let fold = lanes.is_some_and(|m| m.fold);
    let pair = lanes.is_some_and(|m| m.pair);
    // Output channels (virtual ones when folded), per workgroup (grid x), positions per
    // workgroup (grid y), and the taps of the packed weights.
    let o_eff = lanes.map_or(ps.o, |m| m.channels(&ps));
    let (cb4, ch_block, pos_block) = match lanes {
        Some(m) => (m.cb4l, 32 * m.cb4l, 64 / m.cb4l),
        None => {
            let cb4 = cb4_for(ps.o);
            (cb4, 4 * cb4, block(gpu) * WG_MAIN)
        }
    };
    let taps = if fold {
        ps.kh.div_ceil(ps.s) * (ps.kw.div_ceil(ps.s) + pair as usize)
    } else {
        ps.kh * ps.kw
    };
    let opad4 = o_eff.div_ceil(ch_block) * ch_block / 4;
    let npos = block(gpu);
    // Repack the weights: [tap][r][output channels], zero-padded to the channel block.
    let packed_len = taps * ps.r * opad4;
    gpu.check_len(packed_len * 4, "packed conv weights")?;
    let packed = Tensor::empty(gpu, &[packed_len * 4])?;
    let pack = if fold {
        gpu.kernel(&PACK_W_FOLD, &[("PAIR", flag(pair))])?
    } else {
        gpu.kernel(&PACK_W, &[])?
    };
    let pp = Params {
        kh: ps.kh as u32,
        kw: ps.kw as u32,
        r: ps.r as u32,
        o: ps.o as u32,
        s: ps.s as u32,
        opad4: opad4 as u32,
        ws_o: ps.ws_o as u32,
        ws_r: ps.ws_r as u32,
        ..Default::default()
    };
    gpu.dispatch(&pack, &pp, &[w.buf(), packed.buf()], grid(gpu, packed_len));

    let kernel = match lanes {
        Some(m) => gpu.kernel(
            &CONV_MAIN_LANES,
            &[
                ("SCATTER", flag(ps.scatter)),
                ("CB4L", m.cb4l as f64),
                ("FOLD", flag(m.fold)),
                ("PAIR", flag(m.pair)),
            ],
        )?,
        None => gpu.kernel(
            &CONV_MAIN,
            &[
                ("SCATTER", flag(ps.scatter)),
                ("CB4", cb4 as f64),
                ("NPOS", npos as f64),
            ],
        )?,
    };
    let p = Params {
        n: ps.n as u32,
        r: ps.r as u32,
        o: ps.o as u32,
        ih: ps.ih as u32,
        iw: ps.iw as u32,
        oh: ps.oh as u32,
        ow: ps.ow as u32,
        kh: ps.kh as u32,
        kw: ps.kw as u32,
        s: ps.s as u32,
        opad4: opad4 as u32,
        bias_div: ps.bias_div.max(1) as u32,
        has_bias: bias.is_some() as u32,
        act: act.code() as u32,
        acc: acc as u32,
        ..Default::default()
    };
    // Positions per phase: the scatter's phase (0, 0) is the largest (folded: all phases).
    let (qh, qw, phases) = if ps.scatter {
        let phases = if fold { 1 } else { ps.s * ps.s };
        // PAIR: a position per pair of columns.
        let qw = ps.ow.div_ceil(ps.s).div_ceil(1 + pair as usize);
        (ps.oh.div_ceil(ps.s), qw, phases)
    } else {
        (ps.oh, ps.ow, 1)
    };
    // Images per dispatch: input and output slices must each fit one storage binding.
    let (in_img, out_img) = (ps.r * ps.ih * ps.iw, ps.o * ps.oh * ps.ow);
    let per = gpu.rows_per_binding(
        "a convolution's images",
        ps.n,
        &[in_img, out_img],
        &[packed_len * 4, ps.o],
    )?;
    for (first, n) in slices(ps.n, per) {
        // The subgroup kernel's scatter gives each row of a phase its own workgroups (see
        // shaders/conv_main_lanes.wgsl).
        let groups = if lanes.is_some() && ps.scatter {
            qh * (n * qw).div_ceil(pos_block) * phases
        } else {
            (n * qh * qw).div_ceil(pos_block) * phases
        };
        let grid = gpu.grid_2d(o_eff.div_ceil(ch_block), groups);
        let p = Params { n: n as u32, ..p };
        let inp_r = inp.buf().range(first * in_img, n * in_img);
        // The bias binding is part of the layout even without a bias: bind the input there.
        let bias_r = bias.map_or(inp_r, |b| b.buf().whole());
        let out_r = out.buf().range(first * out_img, n * out_img);
        let bufs = [inp_r, packed.buf().whole(), bias_r, out_r];
        gpu.dispatch_ranges(&kernel, &p, &bufs, grid);
    }
    Ok(())
}

/// Record `out[i] (+)= sum_s partial[s * len + i]`.
fn reduce_splits(
    partial: &Tensor,
    out: &Tensor,
    len: usize,
    splits: usize,
    acc: bool,
) -> Result<()> {
    let gpu = partial.gpu();
    let k = gpu.kernel(&REDUCE_SPLITS, &[])?;
    let p = Params {
        acc: acc as u32,
        len: len as u32,
        splits: splits as u32,
        ..Default::default()
    };
    gpu.dispatch(&k, &p, &[partial.buf(), out.buf()], grid(gpu, len));
    Ok(())
}

/// Images per split and number of splits for a reduction over `n` images with `parallel`
/// independent outputs (invocations) per split and `out_len` values of partial output per split;
/// the partial sums stay within `max_partial` values.
fn split_images(n: usize, parallel: usize, out_len: usize, max_partial: usize) -> (usize, usize) {
    let want = (TARGET_INVOCATIONS / parallel.max(1))
        .min(max_partial / out_len.max(1))
        .clamp(1, n.max(1));
    let imgs = n.div_ceil(want).max(1);
    (imgs, n.div_ceil(imgs).max(1))
}

/// Geometry of a weight gradient: `gw[a, b, ky, kx] = sum_{n, y, x} small[n, a, y, x] *
/// large[n, b, y*s + ky, x*s + kx]`.
#[derive(Clone, Copy, Debug)]
struct WgradGeom {
    n: usize,
    a: usize,
    b: usize,
    sh: usize,
    sw: usize,
    lh: usize,
    lw: usize,
    kh: usize,
    kw: usize,
    s: usize,
}

impl WgradGeom {
    /// A Conv2d's weight gradient: small = the output gradient, large = the input.
    fn conv2d(cs: &ConvShape) -> WgradGeom {
        WgradGeom {
            n: cs.n,
            a: cs.co,
            b: cs.ci,
            sh: cs.oh,
            sw: cs.ow,
            lh: cs.h,
            lw: cs.w,
            kh: cs.kh,
            kw: cs.kw,
            s: cs.s,
        }
    }

    /// A ConvTranspose2d's weight gradient: small = the input, large = the output gradient.
    fn conv_transpose2d(cs: &ConvShape) -> WgradGeom {
        WgradGeom {
            n: cs.n,
            a: cs.ci,
            b: cs.co,
            sh: cs.h,
            sw: cs.w,
            lh: cs.oh,
            lw: cs.ow,
            kh: cs.kh,
            kw: cs.kw,
            s: cs.s,
        }
    }
}

/// Partial-sum buffers stay within [`MAX_PARTIAL`] values and one storage binding.
fn max_partial(gpu: &Gpu) -> usize {
    MAX_PARTIAL.min((gpu.binding_limit() / 4) as usize)
}

/// Record `gw (+)= wgrad(small, large)`, split over images into partial sums when that gives
/// more parallelism, and over slices of images that fit one storage binding (each slice adds
/// to `gw`).
fn wgrad_into(small: &Tensor, large: &Tensor, gw: &Tensor, g: WgradGeom, acc: bool) -> Result<()> {
    let gpu = small.gpu();
    let (small_img, large_img) = (g.a * g.sh * g.sw, g.b * g.lh * g.lw);
    let per = gpu.rows_per_binding(
        "a convolution's weight gradient",
        g.n,
        &[small_img, large_img],
        &[gw.len()],
    )?;
    for (i, (first, n)) in slices(g.n, per).enumerate() {
        wgrad_slice(
            small.buf().range(first * small_img, n * small_img),
            large.buf().range(first * large_img, n * large_img),
            gw,
            WgradGeom { n, ..g },
            acc || i > 0,
        )?;
    }
    Ok(())
}

fn wgrad_slice(
    small: BufRange<'_>,
    large: BufRange<'_>,
    gw: &Tensor,
    g: WgradGeom,
    acc: bool,
) -> Result<()> {
    let gpu = gw.gpu();
    let c = g.b * g.kh * g.kw;
    let out_len = g.a * c;
    let ncol = block(gpu);
    // The subgroup variant (`wgrad_lanes`, shaders/conv_wgrad_lanes.wgsl): one 8-lane
    // workgroup per tile of 32 rows x 64 columns. The plain one: one invocation per tile of 16
    // rows x `ncol` columns, 64 invocations per workgroup.
    let lanes = gpu.tuning().lanes;
    let (invocations, groups) = if lanes {
        let tiles = g.a.div_ceil(32) * c.div_ceil(64);
        (8 * tiles, tiles)
    } else {
        let tiles = g.a.div_ceil(WG_TILE_A) * c.div_ceil(ncol);
        (tiles, tiles.div_ceil(WG_MAIN))
    };
    let (imgs, splits) = split_images(g.n, invocations, out_len, max_partial(gpu));
    let k = if lanes {
        gpu.kernel(&WGRAD_LANES, &[])?
    } else {
        gpu.kernel(&WGRAD, &[("NCOL", ncol as f64)])?
    };
    let p = Params {
        n: g.n as u32,
        kh: g.kh as u32,
        kw: g.kw as u32,
        s: g.s as u32,
        ih: g.sh as u32,
        iw: g.sw as u32,
        oh: g.lh as u32,
        ow: g.lw as u32,
        a: g.a as u32,
        b: g.b as u32,
        c: c as u32,
        imgs: imgs as u32,
        ..Default::default()
    };
    let grid = gpu.grid_2d(groups, splits);
    if splits == 1 && !acc {
        gpu.dispatch_ranges(&k, &p, &[small, gw.buf().whole(), large], grid);
        return Ok(());
    }
    gpu.check_len(splits * out_len, "conv weight-gradient partial sums")?;
    let partial = Tensor::empty(gpu, &[splits * out_len])?;
    gpu.dispatch_ranges(&k, &p, &[small, partial.buf().whole(), large], grid);
    reduce_splits(&partial, gw, out_len, splits, acc)
}

/// Record `gb (+)= sum over images and pixels of g[n, o, :, :]`, over slices of images that fit
/// one storage binding.
fn bias_grad_into(g: &Tensor, gb: &Tensor, n: usize, o: usize, hw: usize, acc: bool) -> Result<()> {
    let gpu = g.gpu();
    let per = gpu.rows_per_binding("a convolution's bias gradient", n, &[o * hw], &[o])?;
    for (i, (first, cnt)) in slices(n, per).enumerate() {
        let (imgs, splits) = split_images(cnt, o, o, max_partial(gpu));
        let partial = Tensor::empty(gpu, &[splits * o])?;
        let k = gpu.kernel(&BIAS_GRAD, &[])?;
        let p = Params {
            n: cnt as u32,
            o: o as u32,
            imgs: imgs as u32,
            len: hw as u32,
            splits: splits as u32,
            ..Default::default()
        };
        gpu.dispatch_ranges(
            &k,
            &p,
            &[
                g.buf().range(first * o * hw, cnt * o * hw),
                partial.buf().whole(),
            ],
            grid(gpu, splits * o),
        );
        reduce_splits(&partial, gb, o, splits, acc || i > 0)?;
    }
    Ok(())
}

/// Validated sizes of a convolution: `x [n, ci, h, w]`, kernel `kh x kw`, stride `s`, and the
/// output image `oh x ow`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ConvShape {
    pub n: usize,
    pub ci: usize,
    pub co: usize,
    pub h: usize,
    pub w: usize,
    pub kh: usize,
    pub kw: usize,
    pub s: usize,
    pub oh: usize,
    pub ow: usize,
}

impl ConvShape {
    /// Multiply-adds of the forward pass (each backward pass has as many).
    /// (Every kernel tap meets every pixel of the smaller image once: the output of a Conv2d,
    /// the input of a ConvTranspose2d.)
    pub fn macs(&self) -> usize {
        let small_hw = (self.oh * self.ow).min(self.h * self.w);
        self.n * small_hw * self.ci * self.co * self.kh * self.kw
    }
}

fn check_common(
    op: &'static str,
    x: &[usize],
    w: &[usize],
    b: Option<&[usize]>,
    stride: usize,
    transposed: bool,
) -> Result<ConvShape> {
    if x.len() != 4 {
        return shape_err(op, format!("input must be [N, C, H, W], got {x:?}"));
    }
    let layout = if transposed {
        "[in_c, out_c, kh, kw]"
    } else {
        "[out_c, in_c, kh, kw]"
    };
    if w.len() != 4 {
        return shape_err(op, format!("weight must be {layout}, got {w:?}"));
    }
    if stride == 0 {
        return shape_err(op, "stride must be at least 1");
    }
    let (ci, co) = if transposed {
        (w[0], w[1])
    } else {
        (w[1], w[0])
    };
    let (kh, kw) = (w[2], w[3]);
    if x[1] != ci {
        return shape_err(
            op,
            format!(
                "input {x:?} has {} channels but the weight {w:?} ({layout}) expects {ci}",
                x[1]
            ),
        );
    }
    if kh == 0 || kw == 0 || ci == 0 || co == 0 || x[0] == 0 {
        return shape_err(op, format!("empty input {x:?} or weight {w:?}"));
    }
    if let Some(b) = b {
        if b != [co] {
            return shape_err(op, format!("bias must be [{co}], got {b:?}"));
        }
    }
    let (h, wd) = (x[2], x[3]);
    let (oh, ow) = if transposed {
        if h == 0 || wd == 0 {
            return shape_err(op, format!("empty image {x:?}"));
        }
        ((h - 1) * stride + kh, (wd - 1) * stride + kw)
    } else {
        if h < kh || wd < kw {
            return shape_err(
                op,
                format!(
                    "image {h}x{wd} of {x:?} is smaller than the {kh}x{kw} kernel (no padding)"
                ),
            );
        }
        ((h - kh) / stride + 1, (wd - kw) / stride + 1)
    };
    Ok(ConvShape {
        n: x[0],
        ci,
        co,
        h,
        w: wd,
        kh,
        kw,
        s: stride,
        oh,
        ow,
    })
}

/// Check and size a Conv2d: `x [N, in_c, H, W]`, `w [out_c, in_c, kh, kw]`, `b [out_c]`.
pub fn conv2d_shape(
    x: &[usize],
    w: &[usize],
    b: Option<&[usize]>,
    stride: usize,
) -> Result<ConvShape> {
    check_common("conv2d", x, w, b, stride, false)
}

/// Check and size a ConvTranspose2d: `x [N, in_c, H, W]`, `w [in_c, out_c, kh, kw]`, `b [out_c]`.
pub fn conv_transpose2d_shape(
    x: &[usize],
    w: &[usize],
    b: Option<&[usize]>,
    stride: usize,
) -> Result<ConvShape> {
    check_common("conv_transpose2d", x, w, b, stride, true)
}

fn check_len(t: &Tensor, shape: &[usize], op: &'static str, what: &str) -> Result<()> {
    if t.len() != shape.iter().product::<usize>() {
        return shape_err(op, format!("{what} {:?} should be {shape:?}", t.shape()));
    }
    Ok(())
}

/// Record `y = act(conv2d(x, w) + b)`: `x [N, in_c, H, W]`, `w [out_c, in_c, kh, kw]`.
pub fn conv2d_forward(
    x: &Tensor,
    w: &Tensor,
    b: Option<&Tensor>,
    stride: usize,
    act: Act,
) -> Result<Tensor> {
    let cs = conv2d_shape(x.shape(), w.shape(), b.map(|b| b.shape()), stride)?;
    let y = Tensor::empty(x.gpu(), &[cs.n, cs.co, cs.oh, cs.ow])?;
    conv2d_forward_into(x, w, b, &y, stride, act, false)?;
    Ok(y)
}

/// Record `y (+)= act(conv2d(x, w) + b)` into an existing `y [N, out_c, OH, OW]`.
pub fn conv2d_forward_into(
    x: &Tensor,
    w: &Tensor,
    b: Option<&Tensor>,
    y: &Tensor,
    stride: usize,
    act: Act,
    acc: bool,
) -> Result<()> {
    let cs = conv2d_shape(x.shape(), w.shape(), b.map(|b| b.shape()), stride)?;
    check_len(y, &[cs.n, cs.co, cs.oh, cs.ow], "conv2d", "output")?;
    main_into(x, w, b, y, Pass::gather(&cs), act, acc)
}

/// Record the gradients of `y = conv2d(x, w) + b` from the pre-activation gradient `g
/// [N, out_c, OH, OW]` into `gx`, `gw`, `gb` where given (adding when the flag says so).
pub fn conv2d_backward(
    x: &Tensor,
    w: &Tensor,
    g: &Tensor,
    stride: usize,
    gx: Option<(&Tensor, bool)>,
    gw: Option<(&Tensor, bool)>,
    gb: Option<(&Tensor, bool)>,
) -> Result<()> {
    let cs = conv2d_shape(x.shape(), w.shape(), None, stride)?;
    check_len(
        g,
        &[cs.n, cs.co, cs.oh, cs.ow],
        "conv2d backward",
        "output gradient",
    )?;
    let kk = cs.kh * cs.kw;
    if let Some((gx, acc)) = gx {
        check_len(gx, x.shape(), "conv2d backward", "input gradient")?;
        // gx[n, ci] = sum over (co, taps reaching the pixel) of g[n, co] * w[co, ci]
        let ps = Pass {
            n: cs.n,
            r: cs.co,
            o: cs.ci,
            ih: cs.oh,
            iw: cs.ow,
            oh: cs.h,
            ow: cs.w,
            kh: cs.kh,
            kw: cs.kw,
            s: cs.s,
            scatter: true,
            ws_o: kk,
            ws_r: cs.ci * kk,
            bias_div: 1,
        };
        main_into(g, w, None, gx, ps, Act::None, acc)?;
    }
    if let Some((gw, acc)) = gw {
        check_len(gw, w.shape(), "conv2d backward", "weight gradient")?;
        let geom = WgradGeom::conv2d(&cs);
        wgrad_into(g, x, gw, geom, acc)?;
    }
    if let Some((gb, acc)) = gb {
        check_len(gb, &[cs.co], "conv2d backward", "bias gradient")?;
        bias_grad_into(g, gb, cs.n, cs.co, cs.oh * cs.ow, acc)?;
    }
    Ok(())
}

/// Record `y = act(conv_transpose2d(x, w) + b)`: `x [N, in_c, H, W]`, `w [in_c, out_c, kh, kw]`.
pub fn conv_transpose2d_forward(
    x: &Tensor,
    w: &Tensor,
    b: Option<&Tensor>,
    stride: usize,
    act: Act,
) -> Result<Tensor> {
    let cs = conv_transpose2d_shape(x.shape(), w.shape(), b.map(|b| b.shape()), stride)?;
    let y = Tensor::empty(x.gpu(), &[cs.n, cs.co, cs.oh, cs.ow])?;
    conv_transpose2d_forward_into(x, w, b, &y, stride, act, false)?;
    Ok(y)
}

/// Record `y (+)= act(conv_transpose2d(x, w) + b)` into an existing `y [N, out_c, OH, OW]`.
pub fn conv_transpose2d_forward_into(
    x: &Tensor,
    w: &Tensor,
    b: Option<&Tensor>,
    y: &Tensor,
    stride: usize,
    act: Act,
    acc: bool,
) -> Result<()> {
    let cs = conv_transpose2d_shape(x.shape(), w.shape(), b.map(|b| b.shape()), stride)?;
    check_len(
        y,
        &[cs.n, cs.co, cs.oh, cs.ow],
        "conv_transpose2d",
        "output",
    )?;
    let kk = cs.kh * cs.kw;
    if cs.h == 1 && cs.w == 1 && !(acc && act != Act::None) {
        // A 1x1 input (the decoder's first layer): y[n, (co, ky, kx)] = sum_ci x[n, ci] *
        // w[ci, (co, ky, kx)] is a GEMM, [N, in_c] x [in_c, out_c*kh*kw], with each bias
        // repeated over its kh*kw columns: the matmul kernels, which run it at about 1.7x a
        // 1x1 gather convolution's rate on lavapipe and need no weight packing.
        let gpu = x.gpu();
        let bias = match b {
            Some(b) => {
                let e = Tensor::empty(gpu, &[cs.co * kk])?;
                expand_into(b, &e, kk, cs.co, 1.0, false)?;
                Some(e)
            }
            None => None,
        };
        let spec = MatmulSpec {
            m: cs.n,
            n: cs.co * kk,
            k: cs.ci,
            trans_a: false,
            trans_b: false,
            act,
            acc,
        };
        return matmul_into(x, w, bias.as_ref(), y, spec);
    }
    let ps = if cs.h == 1 && cs.w == 1 {
        // The same product with a fused activation added into y: a 1x1 gather with
        // out_c * kh * kw output channels sharing out_c biases.
        Pass {
            n: cs.n,
            r: cs.ci,
            o: cs.co * kk,
            ih: 1,
            iw: 1,
            oh: 1,
            ow: 1,
            kh: 1,
            kw: 1,
            s: 1,
            scatter: false,
            ws_o: 1,
            ws_r: cs.co * kk,
            bias_div: kk,
        }
    } else {
        Pass::transpose_forward(&cs)
    };
    main_into(x, w, b, y, ps, act, acc)
}

/// Record the gradients of `y = conv_transpose2d(x, w) + b` from the pre-activation gradient
/// `g [N, out_c, OH, OW]` into `gx`, `gw`, `gb` where given (adding when the flag says so).
pub fn conv_transpose2d_backward(
    x: &Tensor,
    w: &Tensor,
    g: &Tensor,
    stride: usize,
    gx: Option<(&Tensor, bool)>,
    gw: Option<(&Tensor, bool)>,
    gb: Option<(&Tensor, bool)>,
) -> Result<()> {
    let cs = conv_transpose2d_shape(x.shape(), w.shape(), None, stride)?;
    check_len(
        g,
        &[cs.n, cs.co, cs.oh, cs.ow],
        "conv_transpose2d backward",
        "output gradient",
    )?;
    let kk = cs.kh * cs.kw;
    if cs.h == 1 && cs.w == 1 {
        // The GEMM of the forward (see there): gx = g w^T, gw = x^T g.
        if let Some((gx, acc)) = gx {
            check_len(gx, x.shape(), "conv_transpose2d backward", "input gradient")?;
            let spec = MatmulSpec {
                m: cs.n,
                n: cs.ci,
                k: cs.co * kk,
                trans_a: false,
                trans_b: true,
                act: Act::None,
                acc,
            };
            matmul_into(g, w, None, gx, spec)?;
        }
        if let Some((gw, acc)) = gw {
            check_len(
                gw,
                w.shape(),
                "conv_transpose2d backward",
                "weight gradient",
            )?;
            let spec = MatmulSpec {
                m: cs.ci,
                n: cs.co * kk,
                k: cs.n,
                trans_a: true,
                trans_b: false,
                act: Act::None,
                acc,
            };
            matmul_into(x, g, None, gw, spec)?;
        }
        if let Some((gb, acc)) = gb {
            check_len(gb, &[cs.co], "conv_transpose2d backward", "bias gradient")?;
            bias_grad_into(g, gb, cs.n, cs.co, kk, acc)?;
        }
        return Ok(());
    }
    if let Some((gx, acc)) = gx {
        check_len(gx, x.shape(), "conv_transpose2d backward", "input gradient")?;
        main_into(
            g,
            w,
            None,
            gx,
            Pass::transpose_input_grad(&cs),
            Act::None,
            acc,
        )?;
    }
    if let Some((gw, acc)) = gw {
        check_len(
            gw,
            w.shape(),
            "conv_transpose2d backward",
            "weight gradient",
        )?;
        let geom = WgradGeom::conv_transpose2d(&cs);
        wgrad_into(x, g, gw, geom, acc)?;
    }
    if let Some((gb, acc)) = gb {
        check_len(gb, &[cs.co], "conv_transpose2d backward", "bias gradient")?;
        bias_grad_into(g, gb, cs.n, cs.co, cs.oh * cs.ow, acc)?;
    }
    Ok(())
}

/// The Tensor-level backward of one of the two ops.
type BackwardFn = fn(
    &Tensor,
    &Tensor,
    &Tensor,
    usize,
    Option<(&Tensor, bool)>,
    Option<(&Tensor, bool)>,
    Option<(&Tensor, bool)>,
) -> Result<()>;

/// Record a conv layer `y = act(op(x, w) + b)`: its backward gets the saved x and w values,
/// the pre-activation gradient and the targets of x, w and b that want one.
#[allow(clippy::too_many_arguments)]
fn record(
    t: &Tape,
    x: Var,
    w: Var,
    b: Var,
    xv: Tensor,
    wv: Tensor,
    y: Tensor,
    stride: usize,
    act: Act,
    backward: BackwardFn,
) -> Var {
    let co = y.shape()[1];
    let saved_y = act.unary().map(|_| y.clone());
    t.record(y, &[x, w, b], move |g, gy| {
        let gpu = xv.gpu().clone();
        let gpre = act_backward(act, saved_y.as_ref(), gy)?;
        let gx = g.wanted_target(x, xv.shape(), &gpu)?;
        let gw = g.wanted_target(w, wv.shape(), &gpu)?;
        let gb = g.wanted_target(b, &[co], &gpu)?;
        backward(
            &xv,
            &wv,
            &gpre,
            stride,
            gx.as_ref().map(|(t, acc)| (t, *acc)),
            gw.as_ref().map(|(t, acc)| (t, *acc)),
            gb.as_ref().map(|(t, acc)| (t, *acc)),
        )
    })
}

/// `act(conv2d(x, w) + b)` on the tape (PyTorch `nn.Conv2d`, no padding): `x [N, in_c, H, W]`,
/// `w [out_c, in_c, kh, kw]`, `b [out_c]` -> `[N, out_c, (H - kh) / stride + 1, (W - kw) / stride + 1]`.
/// One packing and one conv dispatch forward; backward: the activation's gradient, then one
/// dispatch (two with the packing) per wanted input gradient and two for each of `w` and `b`.
pub fn conv2d(t: &Tape, x: Var, w: Var, b: Var, stride: usize, act: Act) -> Result<Var> {
    let (xv, wv, bv) = (t.value(x), t.value(w), t.value(b));
    let y = conv2d_forward(&xv, &wv, Some(&bv), stride, act)?;
    Ok(record(t, x, w, b, xv, wv, y, stride, act, conv2d_backward))
}

/// `act(conv_transpose2d(x, w) + b)` on the tape (PyTorch `nn.ConvTranspose2d`, no padding):
/// `x [N, in_c, H, W]`, `w [in_c, out_c, kh, kw]`, `b [out_c]` ->
/// `[N, out_c, (H - 1) * stride + kh, (W - 1) * stride + kw]`.
pub fn conv_transpose2d(t: &Tape, x: Var, w: Var, b: Var, stride: usize, act: Act) -> Result<Var> {
    let (xv, wv, bv) = (t.value(x), t.value(w), t.value(b));
    let y = conv_transpose2d_forward(&xv, &wv, Some(&bv), stride, act)?;
    Ok(record(
        t,
        x,
        w,
        b,
        xv,
        wv,
        y,
        stride,
        act,
        conv_transpose2d_backward,
    ))
}

/// Plain-Rust references (direct loops, f64 accumulation), for the tests.
pub mod reference;
pub mod stack;

#[cfg(test)]
mod tests {
    use super::split_images;

    #[test]
    fn splits_cover_all_images() {
        for &(n, par, len) in &[
            (1, 1, 1),
            (800, 12, 1536),
            (800, 25600, 3_276_800),
            (3, 100_000, 10),
            (2500, 3, 3),
        ] {
            let (imgs, splits) = split_images(n, par, len, super::MAX_PARTIAL);
            assert!(imgs >= 1 && splits >= 1);
            assert!(
                imgs * splits >= n && imgs * (splits - 1) < n,
                "{n} {par} {len}: {imgs} x {splits}"
            );
        }
    }
}
