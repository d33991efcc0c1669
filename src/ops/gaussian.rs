//! The diagonal Gaussian head (`shaders/gaussian.wgsl`): `[mean | raw]` -> mean,
//! `std = softplus(raw) + min_std` and the reparameterised sample `mean + std * eps`, with eps
//! from a counter-based generator (Philox 4x32-10 + Box-Muller, seeded by `(seed, offset)`, the
//! same numbers on every adapter and in [`reference`]) or given by the caller.
//!
//! Dispatches: the forward is one kernel for all outputs (split of `stats`, softplus, noise,
//! sample). The backward is one kernel for all three outputs' gradients: the tape has no
//! multi-output nodes, so `mean`, `std` and `sample` are recorded as three nodes over one hidden
//! "noise" node; their backward closures only stash their gradients and hand the hidden node a
//! token gradient (no dispatch), and the hidden node, visited after all three, runs the one
//! fused backward kernel with whichever gradients arrived.

use crate::gpu::pipelines::{kernel_sig, KernelSig};
use std::cell::RefCell;
use std::rc::Rc;

use crate::error::{shape_err, Result};
use crate::gpu::Gpu;
use crate::ops::grid;
use crate::tensor::{Tape, Tensor, Var};

// The kernels this module dispatches: entry points and the storage buffers they bind, in order.

/// `gaussian::gaussian_forward`.
pub const GAUSSIAN_FORWARD: KernelSig = kernel_sig!(
    Params,
    "gaussian",
    "gaussian_forward",
    ["SEEDED", "TANH"],
    ["stats", "mean", "stdv", "sample", "eps"]
);

/// `gaussian::gaussian_backward`.
pub const GAUSSIAN_BACKWARD: KernelSig = kernel_sig!(
    Params,
    "gaussian",
    "gaussian_backward",
    ["HAS_GMEAN", "HAS_GSTD", "HAS_GSAMPLE", "ACC", "TANH"],
    ["stats", "eps_in", "g_mean", "g_std", "g_sample", "d_stats"]
);

/// `gaussian::normal`.
pub const NORMAL: KernelSig = kernel_sig!(Params, "gaussian", "normal", [], ["eps"]);

/// `gaussian::normal_steps`.
pub const NORMAL_STEPS: KernelSig = kernel_sig!(Params, "gaussian", "normal_steps", [], ["eps"]);

/// `gaussian::random_bits`.
pub const RANDOM_BITS: KernelSig = kernel_sig!(Params, "gaussian", "random_bits", [], ["bits"]);

#[repr(C)]
#[derive(Clone, Copy, Default, bytemuck::Pod, bytemuck::Zeroable)]
pub(crate) struct Params {
    n: u32,
    s: u32,
    min_std: f32,
    seed_lo: u32,
    seed_hi: u32,
    off_lo: u32,
    off_hi: u32,
    stride: u32,
    shift: f32,
    scale: f32,
}

impl Params {
    fn new(n: usize, s: usize, min_std: f32, seed: u64, offset: u64) -> Params {
        Params {
            n: n as u32,
            s: s as u32,
            min_std,
            seed_lo: seed as u32,
            seed_hi: (seed >> 32) as u32,
            off_lo: offset as u32,
            off_hi: (offset >> 32) as u32,
            stride: 0,
            shift: 0.0,
            scale: 1.0,
        }
    }
}

/// Where the head's noise comes from.
#[derive(Clone, Debug)]
pub enum Noise {
    /// Standard normals from Philox 4x32-10 with key `seed`; `offset` selects an independent
    /// stream (e.g. a step counter). Element i of the `[rows, S]` output uses element i of
    /// [`normal_noise`]`(len, seed, offset)`.
    Seeded { seed: u64, offset: u64 },
    /// This tensor, shaped like the outputs `[..., S]` (for exact comparisons and replays).
    Given(Tensor),
}

/// The head's outputs as tensors, all `[..., S]`.
#[derive(Clone, Debug)]
pub struct GaussianTensors {
    pub mean: Tensor,
    pub std: Tensor,
    pub sample: Tensor,
    /// The noise used (generated, or the given tensor).
    pub eps: Tensor,
}

fn check_u32(n: usize, what: &'static str) -> Result<()> {
    if n > u32::MAX as usize / 2 {
        return shape_err(
            what,
            format!("{n} elements is more than one dispatch indexes"),
        );
    }
    Ok(())
}

/// Output shape `[..., S]` for `stats [..., 2S]`.
fn out_shape(stats: &Tensor) -> Result<Vec<usize>> {
    let s = stats.shape();
    if s.is_empty() || !stats.last_dim().is_multiple_of(2) || stats.last_dim() == 0 {
        return shape_err(
            "gaussian_head",
            format!("stats must be [..., 2S] = [mean | raw], got {s:?}"),
        );
    }
    let mut o = s.to_vec();
    *o.last_mut().unwrap() /= 2;
    Ok(o)
}

/// The actor's variant of the head (the `TANH` kernels): the mean bounded to
/// `scale tanh(m / scale)`, the std `softplus(raw + shift) + min_std`, the sample squashed,
/// `tanh(mean + std eps)`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct TanhHead {
    pub scale: f32,
    pub shift: f32,
}

impl Params {
    fn with_tanh(mut self, tanh: Option<TanhHead>) -> Params {
        if let Some(th) = tanh {
            self.scale = th.scale;
            self.shift = th.shift;
        }
        self
    }
}

/// Record the head's forward: one dispatch writes mean, std, sample (and the noise when seeded).
pub fn gaussian_forward(stats: &Tensor, min_std: f32, noise: &Noise) -> Result<GaussianTensors> {
    head_forward(stats, min_std, noise, None)
}

/// [`gaussian_forward`], or with `tanh` the actor's variant ([`TanhHead`]).
pub fn head_forward(
    stats: &Tensor,
    min_std: f32,
    noise: &Noise,
    tanh: Option<TanhHead>,
) -> Result<GaussianTensors> {
    let shape = out_shape(stats)?;
    let gpu = stats.gpu();
    let s = stats.last_dim() / 2;
    let n = stats.len() / 2;
    check_u32(n, "gaussian_head")?;
    let (eps, params, seeded) = match noise {
        Noise::Seeded { seed, offset } => (
            Tensor::empty(gpu, &shape)?,
            Params::new(n, s, min_std, *seed, *offset),
            true,
        ),
        Noise::Given(e) => {
            if e.shape() != shape.as_slice() {
                return shape_err(
                    "gaussian_head",
                    format!(
                        "given noise {:?} must have the output shape {shape:?} (stats {:?})",
                        e.shape(),
                        stats.shape()
                    ),
                );
            }
            (e.clone(), Params::new(n, s, min_std, 0, 0), false)
        }
    };
    let mean = Tensor::empty(gpu, &shape)?;
    let std = Tensor::empty(gpu, &shape)?;
    let sample = Tensor::empty(gpu, &shape)?;
    let k = gpu.kernel(
        &GAUSSIAN_FORWARD,
        &[
            ("SEEDED", seeded as u32 as f64),
            ("TANH", tanh.is_some() as u32 as f64),
        ],
    )?;
    gpu.dispatch(
        &k,
        &params.with_tanh(tanh),
        &[stats.buf(), mean.buf(), std.buf(), sample.buf(), eps.buf()],
        grid(gpu, n.div_ceil(4)),
    );
    Ok(GaussianTensors {
        mean,
        std,
        sample,
        eps,
    })
}

/// Gradients arriving at the head's outputs (any subset).
#[derive(Clone, Copy, Default)]
pub struct GaussianGrads<'a> {
    pub mean: Option<&'a Tensor>,
    pub std: Option<&'a Tensor>,
    pub sample: Option<&'a Tensor>,
}

/// Record `d_stats (+)= [g_mean + g_sample | (g_std + g_sample * eps) * sigmoid(raw)]`: one
/// dispatch, whatever subset of gradients is given (absent ones count as zero).
pub fn gaussian_backward(
    stats: &Tensor,
    eps: &Tensor,
    g: &GaussianGrads,
    d_stats: &Tensor,
    acc: bool,
) -> Result<()> {
    head_backward(stats, eps, g, d_stats, acc, 0.0, None)
}

/// [`gaussian_backward`], or with `tanh` the actor's variant ([`TanhHead`]; its backward needs
/// the forward's `min_std` to recompute the squashed sample).
pub fn head_backward(
    stats: &Tensor,
    eps: &Tensor,
    g: &GaussianGrads,
    d_stats: &Tensor,
    acc: bool,
    min_std: f32,
    tanh: Option<TanhHead>,
) -> Result<()> {
    let shape = out_shape(stats)?;
    let n = stats.len() / 2;
    for (name, t) in [
        ("eps", Some(eps)),
        ("g_mean", g.mean),
        ("g_std", g.std),
        ("g_sample", g.sample),
    ] {
        if let Some(t) = t {
            if t.len() != n {
                return shape_err(
                    "gaussian_backward",
                    format!("{name} {:?} for outputs of shape {shape:?}", t.shape()),
                );
            }
        }
    }
    if d_stats.len() != stats.len() {
        return shape_err(
            "gaussian_backward",
            format!(
                "d_stats {:?} for stats {:?}",
                d_stats.shape(),
                stats.shape()
            ),
        );
    }
    let gpu = stats.gpu();
    let k = gpu.kernel(
        &GAUSSIAN_BACKWARD,
        &[
            ("HAS_GMEAN", g.mean.is_some() as u32 as f64),
            ("HAS_GSTD", g.std.is_some() as u32 as f64),
            ("HAS_GSAMPLE", g.sample.is_some() as u32 as f64),
            ("ACC", acc as u32 as f64),
            ("TANH", tanh.is_some() as u32 as f64),
        ],
    )?;
    let p = Params::new(n, stats.last_dim() / 2, min_std, 0, 0).with_tanh(tanh);
    // An absent gradient's binding is filled with `stats` (bound read-only twice is allowed).
    let [gm, gs, gx] = [g.mean, g.std, g.sample].map(|t| t.unwrap_or(stats));
    gpu.dispatch(
        &k,
        &p,
        &[
            stats.buf(),
            eps.buf(),
            gm.buf(),
            gs.buf(),
            gx.buf(),
            d_stats.buf(),
        ],
        grid(gpu, n),
    );
    Ok(())
}

/// `len` standard normals from Philox 4x32-10 + Box-Muller, stream `(seed, offset)`. One dispatch.
pub fn normal_noise(gpu: &Gpu, len: usize, seed: u64, offset: u64) -> Result<Tensor> {
    check_u32(len, "normal_noise")?;
    let out = Tensor::empty(gpu, &[len])?;
    let k = gpu.kernel(&NORMAL, &[])?;
    gpu.dispatch(
        &k,
        &Params::new(len, 1, 0.0, seed, offset),
        &[out.buf()],
        grid(gpu, len.div_ceil(4)),
    );
    Ok(out)
}

/// `[steps, len]` standard normals: row i is [`normal_noise`]`(len, seed, offset + i * stride)`
/// (e.g. one noise stream per imagined step, all drawn in one dispatch).
pub fn normal_noise_steps(
    gpu: &Gpu,
    steps: usize,
    len: usize,
    seed: u64,
    offset: u64,
    stride: u64,
) -> Result<Tensor> {
    check_u32(steps * len, "normal_noise_steps")?;
    if stride > u32::MAX as u64 || offset.checked_add(stride * steps as u64).is_none() {
        return shape_err(
            "normal_noise_steps",
            format!("stream offsets {offset} + {steps} x {stride} out of range"),
        );
    }
    let out = Tensor::empty(gpu, &[steps, len])?;
    let k = gpu.kernel(&NORMAL_STEPS, &[])?;
    let mut p = Params::new(steps * len, len, 0.0, seed, offset);
    p.stride = stride as u32;
    gpu.dispatch(&k, &p, &[out.buf()], grid(gpu, steps * len.div_ceil(4)));
    Ok(out)
}

/// The first `len` raw Philox 4x32-10 words of stream `(seed, offset)`, stored as the bit
/// patterns of the f32 elements (read with `f32::to_bits`). For testing the generator.
pub fn random_bits(gpu: &Gpu, len: usize, seed: u64, offset: u64) -> Result<Tensor> {
    check_u32(len, "random_bits")?;
    let out = Tensor::empty(gpu, &[len])?;
    let k = gpu.kernel(&RANDOM_BITS, &[])?;
    gpu.dispatch(
        &k,
        &Params::new(len, 1, 0.0, seed, offset),
        &[out.buf()],
        grid(gpu, len.div_ceil(4)),
    );
    Ok(out)
}

/// The head's outputs on the tape.
#[derive(Clone, Debug)]
pub struct GaussianOut {
    pub mean: Var,
    pub std: Var,
    pub sample: Var,
    /// The noise used (generated or given); not differentiated.
    pub eps: Tensor,
}

/// `stats [..., 2S] = [mean | raw]` -> `N(mean, softplus(raw) + min_std)` and a reparameterised
/// sample. One dispatch forward; one backward dispatch for whatever gradients `mean`, `std` and
/// `sample` receive (the KL uses mean and std, the decoder the sample).
pub fn gaussian_head(t: &Tape, stats: Var, min_std: f32, noise: Noise) -> Result<GaussianOut> {
    head(t, stats, min_std, noise, None)
}

/// The actor's tanh-Gaussian action head on the tape ([`TanhHead`]): `out [..., 2A] = [m | r]`
/// -> mean `scale tanh(m / scale)`, std `softplus(r + shift) + min_std` and the reparameterised
/// squashed sample `tanh(mean + std eps)`. One dispatch forward, one backward.
pub fn tanh_gaussian_head(
    t: &Tape,
    out: Var,
    min_std: f32,
    tanh: TanhHead,
    noise: Noise,
) -> Result<GaussianOut> {
    head(t, out, min_std, noise, Some(tanh))
}

fn head(
    t: &Tape,
    stats: Var,
    min_std: f32,
    noise: Noise,
    tanh: Option<TanhHead>,
) -> Result<GaussianOut> {
    let sv = t.value(stats);
    let out = head_forward(&sv, min_std, &noise, tanh)?;
    let stash: Rc<RefCell<[Option<Tensor>; 3]>> = Rc::default();
    let eps = out.eps.clone();
    let gpu = sv.gpu().clone();
    let st = stash.clone();
    // The hidden node holding the noise; its backward runs after those of all three outputs
    // (it is recorded before them) and sees what they stashed.
    let hub = t.record(out.eps.clone(), &[stats], move |grads, _token| {
        let [gm, gs, gx] = std::mem::take(&mut *st.borrow_mut());
        let (ds, acc) = grads.target(stats, sv.shape(), &gpu)?;
        let g = GaussianGrads {
            mean: gm.as_ref(),
            std: gs.as_ref(),
            sample: gx.as_ref(),
        };
        head_backward(&sv, &eps, &g, &ds, acc, min_std, tanh)
    });
    let mut vars = [hub; 3];
    for (k, value) in [out.mean, out.std, out.sample].into_iter().enumerate() {
        let st = stash.clone();
        let gpu = t.gpu().clone();
        vars[k] = t.record(value, &[hub], move |grads, g| {
            st.borrow_mut()[k] = Some(g.clone());
            // A token gradient so that the hidden node's backward runs; no dispatch.
            grads.target(hub, &[1], &gpu)?;
            Ok(())
        });
    }
    Ok(GaussianOut {
        mean: vars[0],
        std: vars[1],
        sample: vars[2],
        eps: out.eps,
    })
}

/// Plain-Rust reference: the same generator, bit for bit, and the head in f64.
pub mod reference {
    const M0: u32 = 0xD251_1F53;
    const M1: u32 = 0xCD9E_8D57;
    const W0: u32 = 0x9E37_79B9;
    const W1: u32 = 0xBB67_AE85;

    /// Philox 4x32 with 10 rounds (Random123's `philox4x32_R(10, ctr, key)`).
    pub fn philox4x32_10(ctr: [u32; 4], key: [u32; 2]) -> [u32; 4] {
        let mut c = ctr;
        let mut k = key;
        for round in 0..10 {
            if round > 0 {
                k = [k[0].wrapping_add(W0), k[1].wrapping_add(W1)];
            }
            let p0 = M0 as u64 * c[0] as u64;
            let p1 = M1 as u64 * c[2] as u64;
            c = [
                (p1 >> 32) as u32 ^ c[1] ^ k[0],
                p1 as u32,
                (p0 >> 32) as u32 ^ c[3] ^ k[1],
                p0 as u32,
            ];
        }
        c
    }

    /// Block `blk` of stream `(seed, offset)`.
    pub fn block(blk: u32, seed: u64, offset: u64) -> [u32; 4] {
        philox4x32_10(
            [blk, 0, offset as u32, (offset >> 32) as u32],
            [seed as u32, (seed >> 32) as u32],
        )
    }

    /// The first `len` words of stream `(seed, offset)`.
    pub fn random_bits(len: usize, seed: u64, offset: u64) -> Vec<u32> {
        (0..len)
            .map(|i| block((i / 4) as u32, seed, offset)[i % 4])
            .collect()
    }

    /// A word to a uniform in (0, 1), exactly as the kernel does it.
    pub fn uniform01(w: u32) -> f32 {
        ((w >> 9) as f32 + 0.5) * (1.0 / 8_388_608.0)
    }

    /// The first `len` normals of stream `(seed, offset)` (Box-Muller in f64 from the same f32
    /// uniforms the kernel uses).
    pub fn normal_noise(len: usize, seed: u64, offset: u64) -> Vec<f32> {
        (0..len)
            .map(|i| {
                let w = block((i / 4) as u32, seed, offset);
                let pair = (i % 4) / 2;
                let u_r = uniform01(w[2 * pair]) as f64;
                let u_t = uniform01(w[2 * pair + 1]) as f64;
                let rad = (-2.0 * u_r.ln()).sqrt();
                let theta = std::f64::consts::PI * (2.0 * u_t - 1.0);
                (if i % 2 == 0 {
                    rad * theta.cos()
                } else {
                    rad * theta.sin()
                }) as f32
            })
            .collect()
    }

    fn softplus(x: f64) -> f64 {
        x.max(0.0) + (-x.abs()).exp().ln_1p()
    }

    /// `(mean, std, sample)` for `stats [rows, 2S]` and `eps [rows, S]`.
    pub fn gaussian(
        stats: &[f32],
        s: usize,
        min_std: f32,
        eps: &[f32],
    ) -> (Vec<f32>, Vec<f32>, Vec<f32>) {
        let rows = stats.len() / (2 * s);
        let (mut m, mut sd, mut x) = (Vec::new(), Vec::new(), Vec::new());
        for r in 0..rows {
            for c in 0..s {
                let mean = stats[r * 2 * s + c] as f64;
                let std = softplus(stats[r * 2 * s + s + c] as f64) + min_std as f64;
                m.push(mean as f32);
                sd.push(std as f32);
                x.push((mean + std * eps[r * s + c] as f64) as f32);
            }
        }
        (m, sd, x)
    }

    /// Gradient of `sum(gm * mean + gs * std + gx * sample)` with respect to `stats`.
    pub fn gaussian_backward(
        stats: &[f32],
        s: usize,
        eps: &[f32],
        gm: &[f32],
        gs: &[f32],
        gx: &[f32],
    ) -> Vec<f32> {
        let rows = stats.len() / (2 * s);
        let mut d = vec![0f32; stats.len()];
        for r in 0..rows {
            for c in 0..s {
                let e = r * s + c;
                let raw = stats[r * 2 * s + s + c] as f64;
                let sig = 1.0 / (1.0 + (-raw).exp());
                d[r * 2 * s + c] = (gm[e] as f64 + gx[e] as f64) as f32;
                d[r * 2 * s + s + c] = ((gs[e] as f64 + gx[e] as f64 * eps[e] as f64) * sig) as f32;
            }
        }
        d
    }
}
