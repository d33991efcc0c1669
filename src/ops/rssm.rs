//! The RSSM's `observe` fused over time (`shaders/rssm.wgsl`): the whole sequence's forward in
//! one persistent dispatch and its backward through time in one more, instead of ~16 dispatches
//! per step forward and ~37 backward on the per-op path (`model::WorldModel::observe_per_op`,
//! which stays as the reference these kernels are tested against and as the fallback).
//!
//! One training step's RSSM is then:
//! - forward (5 dispatches): pack the loop's weights (two kernels: every matrix transposed for
//!   the forward and as is for the backward, and the biases, into one buffer), copy `obs_out`'s
//!   embedding columns out, the embedding's half of `obs_out` as ONE GEMM over all B*T rows
//!   (`xe = embed W_oe^T + b_oo`, the step's largest matmul), then `observe_forward`;
//! - backward: `observe_backward` in reverse time writes every step's pre-activation gradients;
//!   then each weight gradient is one GEMM over all B*T rows (`dW = dPre^T X`) and each bias
//!   gradient one column sum, accumulated in place, plus one GEMM for the embedding's gradient.
//!
//! The action's half of `img_in` is computed inside the loop rather than as a GEMM before it:
//! it is `action_dim` (1-6) multiply-adds per unit, less than reading a precomputed value.
//!
//! Layouts: the outputs are `[B, T, ...]` like the per-op path's; the arrays whose weight
//! gradient pairs step t with step t-1 (GRU and `img_in`) are saved time-major `[T, B, ...]` so
//! that every GEMM operand is one contiguous block of rows.
//!
//! Where the driver ends a shader's loops after a fixed number of iterations (lavapipe:
//! 65,535 per invocation, [`Gpu::loop_limit`]), `observe_forward` and `observe_backward` each
//! run as several dispatches of consecutive steps ([`FusedPlan`]'s `steps_fwd` / `steps_bwd`),
//! their state crossing between them; elsewhere one dispatch each.

use crate::gpu::pipelines::{kernel_sig, KernelSig};
use std::cell::RefCell;
use std::rc::Rc;

use crate::error::{shape_err, Error, Result};
use crate::gpu::Gpu;
use crate::ops::grid;
use crate::ops::matmul::{matmul_into, Act, MatmulSpec};
use crate::ops::reduce::sum_leading_into;
use crate::ops::shape::{copy2d, Block};
use crate::tensor::{Grads, Tape, Tensor, Var};

// The kernels this module dispatches: entry points and the storage buffers they bind, in order.

/// `rssm::pack_weights`.
pub const PACK_WEIGHTS: KernelSig = kernel_sig!(
    Params,
    "rssm",
    "pack_weights",
    [],
    ["m_in", "m_ih", "m_hh", "m_io", "m_is", "m_oo", "m_os", "wp_out"]
);

/// `rssm::pack_biases`.
pub const PACK_BIASES: KernelSig = kernel_sig!(
    Params,
    "rssm",
    "pack_biases",
    [],
    ["wp_out", "v_in", "v_ih", "v_hh", "v_io", "v_is", "v_os"]
);

/// `rssm::observe_forward`.
pub const OBSERVE_FORWARD: KernelSig = kernel_sig!(
    Params,
    "rssm",
    "observe_forward",
    ["R", "WGT", "SH", "SAVE"],
    [
        "wp", "xe", "action", "eps", "deter", "stoch", "post", "prior", "inp_in", "xs", "gates",
        "hprev", "y_img", "y_obs"
    ]
);

/// `rssm::observe_backward`.
pub const OBSERVE_BACKWARD: KernelSig = kernel_sig!(
    Params,
    "rssm",
    "observe_backward",
    ["R", "WGT", "SH"],
    [
        "wp",
        "eps",
        "post",
        "xs",
        "gates",
        "hprev",
        "y_img",
        "y_obs",
        "d_deter",
        "d_stoch",
        "d_post",
        "d_prior",
        "dgi",
        "dgh",
        "d_img_in",
        "d_img_out",
        "d_obs_out",
        "d_post_pre",
        "carry"
    ]
);

/// Rows per workgroup the kernels can hold at most (`RMAX` in the shader).
pub const MAX_TILE_ROWS: usize = 8;
/// Storage buffers the backward kernel binds (the most of the family).
pub const STORAGE_BUFFERS_NEEDED: u32 = 19;

/// Whether `gpu` gets the GPU tiling (many workgroups of 256 threads) rather than the CPU
/// drivers' (the tuning's `tiling`).
pub fn gpu_tiling(gpu: &Gpu) -> bool {
    gpu.tuning().tiling == crate::gpu::Tiling::Gpu
}

/// The RSSM's fourteen parameters (spec names in the comments), generic over what holds them
/// (tensors, tape variables, gradient targets).
#[derive(Clone, Copy, Debug)]
pub struct RssmParams<T> {
    /// `rssm.img_in.weight [hidden, stoch + action]`
    pub img_in_w: T,
    /// `rssm.img_in.bias [hidden]`
    pub img_in_b: T,
    /// `rssm.gru.weight_ih [3 deter, hidden]`
    pub w_ih: T,
    /// `rssm.gru.weight_hh [3 deter, deter]`
    pub w_hh: T,
    /// `rssm.gru.bias_ih [3 deter]`
    pub b_ih: T,
    /// `rssm.gru.bias_hh [3 deter]`
    pub b_hh: T,
    /// `rssm.img_out.weight [hidden, deter]`
    pub img_out_w: T,
    /// `rssm.img_out.bias [hidden]`
    pub img_out_b: T,
    /// `rssm.img_stats.weight [2 stoch, hidden]`
    pub img_stats_w: T,
    /// `rssm.img_stats.bias [2 stoch]`
    pub img_stats_b: T,
    /// `rssm.obs_out.weight [hidden, deter + embed]`
    pub obs_out_w: T,
    /// `rssm.obs_out.bias [hidden]`
    pub obs_out_b: T,
    /// `rssm.obs_stats.weight [2 stoch, hidden]`
    pub obs_stats_w: T,
    /// `rssm.obs_stats.bias [2 stoch]`
    pub obs_stats_b: T,
}

impl<T> RssmParams<T> {
    /// All fourteen, in the field order.
    pub fn to_array(self) -> [T; 14] {
        [
            self.img_in_w,
            self.img_in_b,
            self.w_ih,
            self.w_hh,
            self.b_ih,
            self.b_hh,
            self.img_out_w,
            self.img_out_b,
            self.img_stats_w,
            self.img_stats_b,
            self.obs_out_w,
            self.obs_out_b,
            self.obs_stats_w,
            self.obs_stats_b,
        ]
    }

    /// Apply `f` to each.
    pub fn map<U>(self, mut f: impl FnMut(T) -> U) -> RssmParams<U> {
        RssmParams {
            img_in_w: f(self.img_in_w),
            img_in_b: f(self.img_in_b),
            w_ih: f(self.w_ih),
            w_hh: f(self.w_hh),
            b_ih: f(self.b_ih),
            b_hh: f(self.b_hh),
            img_out_w: f(self.img_out_w),
            img_out_b: f(self.img_out_b),
            img_stats_w: f(self.img_stats_w),
            img_stats_b: f(self.img_stats_b),
            obs_out_w: f(self.obs_out_w),
            obs_out_b: f(self.obs_out_b),
            obs_stats_w: f(self.obs_stats_w),
            obs_stats_b: f(self.obs_stats_b),
        }
    }

    /// Borrow each.
    pub fn as_ref(&self) -> RssmParams<&T> {
        RssmParams {
            img_in_w: &self.img_in_w,
            img_in_b: &self.img_in_b,
            w_ih: &self.w_ih,
            w_hh: &self.w_hh,
            b_ih: &self.b_ih,
            b_hh: &self.b_hh,
            img_out_w: &self.img_out_w,
            img_out_b: &self.img_out_b,
            img_stats_w: &self.img_stats_w,
            img_stats_b: &self.img_stats_b,
            obs_out_w: &self.obs_out_w,
            obs_out_b: &self.obs_out_b,
            obs_stats_w: &self.obs_stats_w,
            obs_stats_b: &self.obs_stats_b,
        }
    }
}

/// Sizes of one fused `observe`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ObserveDims {
    pub batch: usize,
    pub steps: usize,
    pub stoch: usize,
    pub action: usize,
    pub deter: usize,
    pub hidden: usize,
    pub embed: usize,
}

impl ObserveDims {
    /// Check every operand's shape: `embed [B,T,E]`, `action [B,T,A]`, `eps [B,T,S]` and the
    /// parameters' spec shapes.
    pub fn of(
        embed: &Tensor,
        action: &Tensor,
        eps: &Tensor,
        w: &RssmParams<&Tensor>,
    ) -> Result<ObserveDims> {
        let es = embed.shape();
        if es.len() != 3 || es.contains(&0) {
            return shape_err("rssm observe", format!("embed must be [B,T,E], got {es:?}"));
        }
        let (b, t, e) = (es[0], es[1], es[2]);
        let ws = w.obs_stats_w.shape();
        if ws.len() != 2 || !ws[0].is_multiple_of(2) {
            return shape_err(
                "rssm observe",
                format!("obs_stats weight must be [2S, hidden], got {ws:?}"),
            );
        }
        let (s, hd) = (ws[0] / 2, ws[1]);
        let dd = w.w_hh.shape().get(1).copied().unwrap_or(0);
        let a = action.shape().get(2).copied().unwrap_or(0);
        let d = ObserveDims {
            batch: b,
            steps: t,
            stoch: s,
            action: a,
            deter: dd,
            hidden: hd,
            embed: e,
        };
        let want: [(&str, &Tensor, Vec<usize>); 17] = [
            ("action", action, vec![b, t, a]),
            ("eps", eps, vec![b, t, s]),
            ("embed", embed, vec![b, t, e]),
            ("rssm.img_in.weight", w.img_in_w, vec![hd, s + a]),
            ("rssm.img_in.bias", w.img_in_b, vec![hd]),
            ("rssm.gru.weight_ih", w.w_ih, vec![3 * dd, hd]),
            ("rssm.gru.weight_hh", w.w_hh, vec![3 * dd, dd]),
            ("rssm.gru.bias_ih", w.b_ih, vec![3 * dd]),
            ("rssm.gru.bias_hh", w.b_hh, vec![3 * dd]),
            ("rssm.img_out.weight", w.img_out_w, vec![hd, dd]),
            ("rssm.img_out.bias", w.img_out_b, vec![hd]),
            ("rssm.img_stats.weight", w.img_stats_w, vec![2 * s, hd]),
            ("rssm.img_stats.bias", w.img_stats_b, vec![2 * s]),
            ("rssm.obs_out.weight", w.obs_out_w, vec![hd, dd + e]),
            ("rssm.obs_out.bias", w.obs_out_b, vec![hd]),
            ("rssm.obs_stats.weight", w.obs_stats_w, vec![2 * s, hd]),
            ("rssm.obs_stats.bias", w.obs_stats_b, vec![2 * s]),
        ];
        for (name, tns, shape) in want {
            if tns.shape() != shape.as_slice() {
                return shape_err(
                    "rssm observe",
                    format!("{name} must be {shape:?}, got {:?}", tns.shape()),
                );
            }
        }
        if s == 0 || dd == 0 || hd == 0 || a == 0 {
            return shape_err("rssm observe", format!("empty sizes {d:?}"));
        }
        Ok(d)
    }

    /// Workgroup floats per row: forward, backward.
    fn per_row(&self) -> (usize, usize) {
        let (s, dd, hd) = (self.stoch, self.deter, self.hidden);
        (3 * s + 2 * dd + 2 * hd, 5 * s + 2 * hd + 5 * dd)
    }

    /// Loop iterations one invocation runs per step (forward, backward) and once per dispatch
    /// (forward, backward), loop by loop as in `observe_forward` / `observe_backward`.
    fn loop_iterations(&self, c: LoopCount) -> StepIterations {
        let (s, a, dd, hd) = (self.stoch, self.action, self.deter, self.hidden);
        let (pf, pb) = self.per_row();
        let fwd = c.dense(hd, s + a)
            + c.rows(s + a)
            + c.rows(dd)
            + c.dense(dd, hd + dd)
            + c.rows(dd)
            + c.dense(hd, dd)
            + c.dense(4 * s, hd)
            + c.rows(s);
        let bwd = c.rows(2 * s)
            + c.dense(hd, 2 * s)
            + c.dense(dd, hd)
            + 2 * c.dense(dd, 0)
            + c.dense(dd + hd, 3 * dd)
            + c.dense(dd + hd, 0)
            + c.dense(s, hd);
        StepIterations {
            per_step: (fwd, bwd),
            setup: (c.rows(pf), c.rows(pb) + c.rows(dd + s)),
        }
    }
}

/// Counts the loop iterations of one invocation of a fused kernel, for drivers that stop a
/// shader's loops after a fixed total (`Gpu::loop_limit`): `threads` per workgroup, `rows` per
/// tile. A loop over the tile's rows inside a dot product (a few multiply-adds per row, `R` a
/// constant) is unrolled by such a driver (lavapipe unrolls a constant 8-trip loop: measured
/// with `shaders/probe.wgsl`); the ones around larger bodies are counted.
#[derive(Clone, Copy, Debug)]
pub(crate) struct LoopCount {
    pub(crate) threads: usize,
    pub(crate) rows: usize,
}

impl LoopCount {
    /// One output unit per thread and pass, each a dot product over `n_in` inputs for every row.
    pub(crate) fn dense(&self, n_out: usize, n_in: usize) -> usize {
        n_out.div_ceil(self.threads) * (1 + n_in + 2 * self.rows)
    }
    /// A loop over `n` values of each of the tile's rows, spread over the threads.
    pub(crate) fn rows(&self, n: usize) -> usize {
        (self.rows * n).div_ceil(self.threads)
    }
}

/// Loop iterations per step and once per dispatch, `(forward, backward)` each.
#[derive(Clone, Copy, Debug)]
pub(crate) struct StepIterations {
    pub(crate) per_step: (usize, usize),
    pub(crate) setup: (usize, usize),
}

/// How the fused kernels run on this device: rows per workgroup (forward, backward), threads
/// per workgroup, and steps per dispatch (forward, backward): all of them, unless the driver
/// stops a shader's loops after a fixed number of iterations (`Gpu::loop_limit`), where the
/// steps run in chunks whose loops stay within half that number.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FusedPlan {
    pub rows_fwd: usize,
    pub rows_bwd: usize,
    pub threads: u32,
    pub steps_fwd: usize,
    pub steps_bwd: usize,
}

/// The `(t0, t1)` step ranges of the dispatches that run `steps` steps, `per` at a time.
pub(crate) fn step_chunks(steps: usize, per: usize) -> impl Iterator<Item = (u32, u32)> {
    crate::ops::slices(steps, per).map(|(t0, n)| (t0 as u32, (t0 + n) as u32))
}

/// Rows per workgroup that fit the device's workgroup memory, or why the fused kernels cannot
/// run here (then the per-op path does).
pub fn fused_plan(gpu: &Gpu, d: &ObserveDims) -> std::result::Result<FusedPlan, String> {
    // The kernels bind whole tensors: the largest must fit one binding (else the per-op path,
    // whose ops run over slices that fit).
    let (b, t, s, dd, hd, e) = (d.batch, d.steps, d.stoch, d.deter, d.hidden, d.embed);
    let packed = Params::new(d, 0.0).1;
    let largest = (b * t * (4 * dd).max(e).max(hd).max(2 * s + d.action)).max(packed);
    let (pf, pb) = d.per_row();
    let iters = |c: LoopCount| d.loop_iterations(c);
    tile_plan(
        gpu,
        (b, t),
        (pf, pb),
        STORAGE_BUFFERS_NEEDED,
        largest,
        &iters,
        d,
    )
}

/// The tiling of a persistent RSSM kernel pair over `rows` independent rows whose forward and
/// backward need `per` workgroup floats per row, or why the device cannot run it: too few
/// storage buffers per stage, threads per workgroup or workgroup memory, or an operand of
/// `largest` floats past one binding.
pub(crate) fn tile_plan(
    gpu: &Gpu,
    (rows, steps): (usize, usize),
    per: (usize, usize),
    storage: u32,
    largest: usize,
    iterations: &dyn Fn(LoopCount) -> StepIterations,
    sizes: &dyn std::fmt::Debug,
) -> std::result::Result<FusedPlan, String> {
    let lim = gpu.limits();
    if lim.max_storage_buffers_per_shader_stage < storage {
        return Err(format!(
            "the device allows {} storage buffers per shader stage, the fused kernels need {storage}",
            lim.max_storage_buffers_per_shader_stage
        ));
    }
    // A GPU wants many workgroups of many threads (each workgroup runs on one core and the
    // recurrence is serial); a CPU driver runs a workgroup's threads as a loop on one core
    // and pays per barrier, so it wants few, large tiles.
    let on_gpu = gpu_tiling(gpu);
    let threads: u32 = if on_gpu { 256 } else { 64 };
    if lim.max_compute_invocations_per_workgroup < threads
        || lim.max_compute_workgroup_size_x < threads
    {
        return Err(format!(
            "the device allows fewer than {threads} threads per workgroup"
        ));
    }
    let largest = largest as u64 * 4;
    if largest > gpu.binding_limit() {
        return Err(format!(
            "a {largest}-byte operand exceeds the device's {}-byte storage binding",
            gpu.binding_limit()
        ));
    }
    let floats = lim.max_compute_workgroup_storage_size as usize / 4;
    // More rows per tile reuse each weight read more; but keep enough workgroups busy.
    let groups = if on_gpu { 32 } else { 2 };
    let cap = MAX_TILE_ROWS.min(rows.div_ceil(groups).max(1));
    // ... unless the tuning names the rows per tile (measured by `rssm tune`).
    let cap = match gpu.tuning().tile_rows {
        Some(r) => (r as usize).clamp(1, MAX_TILE_ROWS).min(rows.max(1)),
        None => cap,
    };
    let fit = |per: usize| (floats / per).min(cap);
    let (rf, rb) = (fit(per.0), fit(per.1));
    if rf == 0 || rb == 0 {
        return Err(format!(
            "one row needs {} bytes of workgroup memory ({sizes:?}), the device has {}",
            4 * per.0.max(per.1),
            4 * floats
        ));
    }
    let threads_n = threads as usize;
    let fwd = iterations(LoopCount {
        threads: threads_n,
        rows: rf,
    });
    let bwd = iterations(LoopCount {
        threads: threads_n,
        rows: rb,
    });
    let chunk = |per_step: usize, setup: usize| -> std::result::Result<usize, String> {
        let Some(limit) = gpu.loop_limit() else {
            return Ok(steps.max(1));
        };
        // Half the driver's count: the estimate is of this code's loops, not of the
        // compiler's.
        let budget = (limit / 2) as usize;
        let n = budget.saturating_sub(setup + 1) / (per_step + 1);
        if n == 0 {
            return Err(format!(
                "one step needs about {} loop iterations per invocation ({sizes:?}) and the \
                 driver stops a shader's loops after {limit}",
                per_step + setup
            ));
        }
        Ok(n.min(steps.max(1)))
    };
    Ok(FusedPlan {
        rows_fwd: rf,
        rows_bwd: rb,
        threads,
        steps_fwd: chunk(fwd.per_step.0, fwd.setup.0)?,
        steps_bwd: chunk(bwd.per_step.1, bwd.setup.1)?,
    })
}

#[repr(C)]
#[derive(Clone, Copy, Default, bytemuck::Pod, bytemuck::Zeroable)]
pub(crate) struct Params {
    pub(crate) batch: u32,
    pub(crate) steps: u32,
    stoch: u32,
    act: u32,
    deter: u32,
    hidden: u32,
    pub(crate) min_std: f32,
    pub(crate) flags: u32,
    t: [u32; 7],
    w: [u32; 7],
    b: [u32; 6],
    obs_in: u32,
    n_pack: u32,
    // Imagination only (`ops::imagine`).
    pub(crate) units: u32,
    pub(crate) horizon: u32,
    pub(crate) act_min_std: f32,
    pub(crate) init_std: f32,
    pub(crate) aw: [u32; 5],
    pub(crate) ab: [u32; 5],
    pub(crate) n_pack_actor: u32,
    /// The steps `[t0, t1)` one dispatch of a time loop runs.
    pub(crate) t0: u32,
    pub(crate) t1: u32,
}

const HAS_DDETER: u32 = 1;
const HAS_DSTOCH: u32 = 2;
const HAS_DPOST: u32 = 4;
const HAS_DPRIOR: u32 = 8;

impl Params {
    /// Sizes and the packed buffer's layout; returns the packed length too.
    pub(crate) fn new(d: &ObserveDims, min_std: f32) -> (Params, usize) {
        let (s, a, dd, hd) = (d.stoch, d.action, d.deter, d.hidden);
        // [out, in] of the seven matrices, in the shader's order.
        let mats = [
            (hd, s + a),
            (3 * dd, hd),
            (3 * dd, dd),
            (hd, dd),
            (2 * s, hd),
            (hd, dd),
            (2 * s, hd),
        ];
        let mut off = 0usize;
        let mut p = Params {
            batch: d.batch as u32,
            steps: d.steps as u32,
            stoch: s as u32,
            act: a as u32,
            deter: dd as u32,
            hidden: hd as u32,
            min_std,
            obs_in: (dd + d.embed) as u32,
            ..Default::default()
        };
        let mut n_pack = 0;
        for (i, (o, n)) in mats.iter().enumerate() {
            p.t[i] = off as u32;
            off += o * n;
            p.w[i] = off as u32;
            off += o * n;
            n_pack += o * n;
        }
        p.n_pack = n_pack as u32;
        let biases = [hd, 3 * dd, 3 * dd, hd, 2 * s, 2 * s];
        for (i, n) in biases.iter().enumerate() {
            p.b[i] = off as u32;
            off += n;
        }
        (p, off)
    }
}

/// What the forward saved for the backward.
#[derive(Clone, Debug)]
pub struct ObserveSaved {
    wp: Tensor,
    /// `obs_out`'s embedding columns `[hidden, embed]`.
    we: Tensor,
    inp_in: Tensor,
    x: Tensor,
    gates: Tensor,
    hprev: Tensor,
    y_img: Tensor,
    y_obs: Tensor,
}

/// The fused forward's outputs, all `[B, T, ...]`.
#[derive(Clone, Debug)]
pub struct ObserveOut {
    /// `h_t` `[B,T,deter]`
    pub deter: Tensor,
    /// `s_t` `[B,T,stoch]`, sampled from the posterior with the given noise
    pub stoch: Tensor,
    /// posterior `[mean | raw]` `[B,T,2 stoch]`
    pub post: Tensor,
    /// prior `[mean | raw]` `[B,T,2 stoch]`
    pub prior: Tensor,
    /// For the backward (with `save`).
    pub saved: Option<ObserveSaved>,
}

pub(crate) fn kernel_consts(rows: usize, threads: u32, per: usize) -> [(&'static str, f64); 3] {
    [
        ("R", rows as f64),
        ("WGT", threads as f64),
        ("SH", (rows * per) as f64),
    ]
}

/// Pack the RSSM's seven matrices (transposed and as is) and six biases into `wp` at the
/// offsets of `p`: two dispatches.
pub(crate) fn pack_rssm(p: &Params, w: &RssmParams<&Tensor>, wp: &Tensor) -> Result<()> {
    let gpu = wp.gpu();
    let (s, dd, hd) = (p.stoch as usize, p.deter as usize, p.hidden as usize);
    let k = gpu.kernel(&PACK_WEIGHTS, &[])?;
    gpu.dispatch(
        &k,
        p,
        &[
            w.img_in_w.buf(),
            w.w_ih.buf(),
            w.w_hh.buf(),
            w.img_out_w.buf(),
            w.img_stats_w.buf(),
            w.obs_out_w.buf(),
            w.obs_stats_w.buf(),
            wp.buf(),
        ],
        grid(gpu, p.n_pack as usize),
    );
    let k = gpu.kernel(&PACK_BIASES, &[])?;
    gpu.dispatch(
        &k,
        p,
        &[
            wp.buf(),
            w.img_in_b.buf(),
            w.b_ih.buf(),
            w.b_hh.buf(),
            w.img_out_b.buf(),
            w.img_stats_b.buf(),
            w.obs_stats_b.buf(),
        ],
        grid(gpu, 2 * hd + 6 * dd + 4 * s),
    );
    Ok(())
}

/// Record the fused forward of `observe` from a zero state: 5 dispatches whatever T is (one
/// more per further chunk of steps where the driver limits loops, see [`FusedPlan`]).
pub fn observe_forward(
    embed: &Tensor,
    action: &Tensor,
    eps: &Tensor,
    w: &RssmParams<&Tensor>,
    min_std: f32,
    save: bool,
) -> Result<ObserveOut> {
    let d = ObserveDims::of(embed, action, eps, w)?;
    let gpu = embed.gpu();
    let plan = fused_plan(gpu, &d).map_err(|e| Error::Invalid(format!("fused RSSM: {e}")))?;
    let (b, t, s, a, dd, hd, e) = (
        d.batch, d.steps, d.stoch, d.action, d.deter, d.hidden, d.embed,
    );
    let n = b * t;
    let (p, packed) = Params::new(&d, min_std);
    let wp = Tensor::empty(gpu, &[packed])?;
    pack_rssm(&p, w, &wp)?;
    // xe = embed W_oe^T + b_oo over all B*T rows.
    let we = Tensor::empty(gpu, &[hd, e])?;
    copy2d(
        w.obs_out_w,
        Block {
            offset: dd,
            stride: dd + e,
        },
        &we,
        Block {
            offset: 0,
            stride: e,
        },
        hd,
        e,
        false,
    )?;
    let xe = Tensor::empty(gpu, &[b, t, hd])?;
    matmul_into(
        embed,
        &we,
        Some(w.obs_out_b),
        &xe,
        MatmulSpec {
            m: n,
            n: hd,
            k: e,
            trans_a: false,
            trans_b: true,
            act: Act::None,
            acc: false,
        },
    )?;
    let deter = Tensor::empty(gpu, &[b, t, dd])?;
    let stoch = Tensor::empty(gpu, &[b, t, s])?;
    let post = Tensor::empty(gpu, &[b, t, 2 * s])?;
    let prior = Tensor::empty(gpu, &[b, t, 2 * s])?;
    let buf = |shape: &[usize]| -> Result<Tensor> {
        if save {
            Tensor::empty(gpu, shape)
        } else {
            Tensor::empty(gpu, &[1])
        }
    };
    let inp_in = buf(&[t, b, s + a])?;
    let x = buf(&[t, b, hd])?;
    let gates = buf(&[t, b, 4 * dd])?;
    let hprev = buf(&[t, b, dd])?;
    let y_img = buf(&[b, t, hd])?;
    let y_obs = buf(&[b, t, hd])?;
    let (per_f, _) = d.per_row();
    let mut consts = kernel_consts(plan.rows_fwd, plan.threads, per_f).to_vec();
    consts.push(("SAVE", save as u32 as f64));
    let k = gpu.kernel(&OBSERVE_FORWARD, &consts)?;
    let mut p = p;
    for (t0, t1) in step_chunks(t, plan.steps_fwd) {
        (p.t0, p.t1) = (t0, t1);
        gpu.dispatch(
            &k,
            &p,
            &[
                wp.buf(),
                xe.buf(),
                action.buf(),
                eps.buf(),
                deter.buf(),
                stoch.buf(),
                post.buf(),
                prior.buf(),
                inp_in.buf(),
                x.buf(),
                gates.buf(),
                hprev.buf(),
                y_img.buf(),
                y_obs.buf(),
            ],
            [b.div_ceil(plan.rows_fwd) as u32, 1, 1],
        );
    }
    Ok(ObserveOut {
        deter,
        stoch,
        post,
        prior,
        saved: save.then_some(ObserveSaved {
            wp,
            we,
            inp_in,
            x,
            gates,
            hprev,
            y_img,
            y_obs,
        }),
    })
}

/// Gradients arriving at the fused forward's outputs (`None`: that output got none).
#[derive(Clone, Copy, Default)]
pub struct ObserveOutGrads<'a> {
    pub deter: Option<&'a Tensor>,
    pub stoch: Option<&'a Tensor>,
    pub post: Option<&'a Tensor>,
    pub prior: Option<&'a Tensor>,
}

/// Where the input gradients go: `(tensor, acc)` for each wanted one (`acc`: add to it).
pub struct ObserveGradTargets<'a> {
    pub embed: Option<(&'a Tensor, bool)>,
    pub params: RssmParams<Option<(&'a Tensor, bool)>>,
}

/// `target (+)= dPre^T X` over all rows: a weight gradient `[out, in]` from the pre-activation
/// gradients `[rows, out]` and the layer's inputs `[rows, in]`.
fn weight_grad(dpre: &Tensor, x: &Tensor, target: (&Tensor, bool)) -> Result<()> {
    let (out_f, in_f) = (dpre.last_dim(), x.last_dim());
    matmul_into(
        dpre,
        x,
        None,
        target.0,
        MatmulSpec {
            m: out_f,
            n: in_f,
            k: dpre.rows(),
            trans_a: true,
            trans_b: false,
            act: Act::None,
            acc: target.1,
        },
    )
}

/// Record the fused backward: one persistent dispatch in reverse time (one per chunk of steps
/// where the driver limits loops), then one GEMM per wanted
/// weight gradient, one column sum per wanted bias and one GEMM for the embedding's gradient.
pub fn observe_backward(
    embed: &Tensor,
    action: &Tensor,
    eps: &Tensor,
    w: &RssmParams<&Tensor>,
    out: &ObserveOut,
    g: &ObserveOutGrads,
    targets: &ObserveGradTargets,
) -> Result<()> {
    let d = ObserveDims::of(embed, action, eps, w)?;
    let saved = out
        .saved
        .as_ref()
        .ok_or_else(|| Error::Tape("fused RSSM backward: the forward ran without saving".into()))?;
    let gpu = embed.gpu();
    let plan = fused_plan(gpu, &d).map_err(|e| Error::Invalid(format!("fused RSSM: {e}")))?;
    let (b, t, s, dd, hd, e) = (d.batch, d.steps, d.stoch, d.deter, d.hidden, d.embed);
    let (mut p, _) = Params::new(&d, 0.0);
    let check = |name: &str, x: Option<&Tensor>, like: &Tensor| -> Result<()> {
        match x {
            Some(x) if x.len() != like.len() => shape_err(
                "rssm observe backward",
                format!(
                    "gradient of {name} {:?} for an output of shape {:?}",
                    x.shape(),
                    like.shape()
                ),
            ),
            _ => Ok(()),
        }
    };
    check("deter", g.deter, &out.deter)?;
    check("stoch", g.stoch, &out.stoch)?;
    check("post", g.post, &out.post)?;
    check("prior", g.prior, &out.prior)?;
    let dummy = Tensor::empty(gpu, &[1])?;
    let mut flag = |x: Option<&Tensor>, bit: u32| {
        if x.is_some() {
            p.flags |= bit;
        }
    };
    flag(g.deter, HAS_DDETER);
    flag(g.stoch, HAS_DSTOCH);
    flag(g.post, HAS_DPOST);
    flag(g.prior, HAS_DPRIOR);
    fn or_dummy<'a>(x: Option<&'a Tensor>, dummy: &'a Tensor) -> &'a crate::gpu::GpuBuffer {
        x.unwrap_or(dummy).buf()
    }
    let dgi = Tensor::empty(gpu, &[t, b, 3 * dd])?;
    let dgh = Tensor::empty(gpu, &[t, b, 3 * dd])?;
    let d_img_in = Tensor::empty(gpu, &[t, b, hd])?;
    let d_img_out = Tensor::empty(gpu, &[b, t, hd])?;
    let d_obs_out = Tensor::empty(gpu, &[b, t, hd])?;
    let d_post = Tensor::empty(gpu, &[b, t, 2 * s])?;
    // dL/dh and dL/ds between chunks of steps.
    let carry = if plan.steps_bwd < t {
        Tensor::empty(gpu, &[b, dd + s])?
    } else {
        dummy.clone()
    };
    let (_, per_b) = d.per_row();
    let k = gpu.kernel(
        &OBSERVE_BACKWARD,
        &kernel_consts(plan.rows_bwd, plan.threads, per_b),
    )?;
    let bufs = [
        saved.wp.buf(),
        eps.buf(),
        out.post.buf(),
        saved.x.buf(),
        saved.gates.buf(),
        saved.hprev.buf(),
        saved.y_img.buf(),
        saved.y_obs.buf(),
        or_dummy(g.deter, &dummy),
        or_dummy(g.stoch, &dummy),
        or_dummy(g.post, &dummy),
        or_dummy(g.prior, &dummy),
        dgi.buf(),
        dgh.buf(),
        d_img_in.buf(),
        d_img_out.buf(),
        d_obs_out.buf(),
        d_post.buf(),
        carry.buf(),
    ];
    for (t0, t1) in step_chunks(t, plan.steps_bwd)
        .collect::<Vec<_>>()
        .into_iter()
        .rev()
    {
        (p.t0, p.t1) = (t0, t1);
        gpu.dispatch(&k, &p, &bufs, [b.div_ceil(plan.rows_bwd) as u32, 1, 1]);
    }

    let tg = &targets.params;
    let bias = |dpre: &Tensor, target: Option<(&Tensor, bool)>| -> Result<()> {
        match target {
            Some((y, acc)) => sum_leading_into(dpre, y, acc),
            None => Ok(()),
        }
    };
    let wgrad = |dpre: &Tensor, x: &Tensor, target: Option<(&Tensor, bool)>| -> Result<()> {
        match target {
            Some(tg) => weight_grad(dpre, x, tg),
            None => Ok(()),
        }
    };
    // img_in and the GRU: time-major rows.
    wgrad(&d_img_in, &saved.inp_in, tg.img_in_w)?;
    bias(&d_img_in, tg.img_in_b)?;
    wgrad(&dgi, &saved.x, tg.w_ih)?;
    bias(&dgi, tg.b_ih)?;
    wgrad(&dgh, &saved.hprev, tg.w_hh)?;
    bias(&dgh, tg.b_hh)?;
    // img_out, img_stats, obs_stats: batch-major rows.
    wgrad(&d_img_out, &out.deter, tg.img_out_w)?;
    bias(&d_img_out, tg.img_out_b)?;
    if let Some(dprior) = g.prior {
        wgrad(dprior, &saved.y_img, tg.img_stats_w)?;
        bias(dprior, tg.img_stats_b)?;
    } else {
        for (y, acc) in [tg.img_stats_w, tg.img_stats_b].into_iter().flatten() {
            if !acc {
                gpu.clear(y.buf());
            }
        }
    }
    wgrad(&d_post, &saved.y_obs, tg.obs_stats_w)?;
    bias(&d_post, tg.obs_stats_b)?;
    // obs_out: its deter columns from h, its embedding columns from the embedding; each GEMM
    // into a temporary, then a strided copy into the weight gradient's columns.
    if let Some((gw, acc)) = tg.obs_out_w {
        for (x, width, col) in [(&out.deter, dd, 0), (embed, e, dd)] {
            let part = Tensor::empty(gpu, &[hd, width])?;
            weight_grad(&d_obs_out, x, (&part, false))?;
            copy2d(
                &part,
                Block {
                    offset: 0,
                    stride: width,
                },
                gw,
                Block {
                    offset: col,
                    stride: dd + e,
                },
                hd,
                width,
                acc,
            )?;
        }
    }
    bias(&d_obs_out, tg.obs_out_b)?;
    if let Some((ge, acc)) = targets.embed {
        matmul_into(
            &d_obs_out,
            &saved.we,
            None,
            ge,
            MatmulSpec {
                m: b * t,
                n: e,
                k: hd,
                trans_a: false,
                trans_b: false,
                act: Act::None,
                acc,
            },
        )?;
    }
    Ok(())
}

/// The fused observe's outputs on the tape.
#[derive(Clone, Copy, Debug)]
pub struct ObserveVars {
    pub deter: Var,
    pub stoch: Var,
    pub post: Var,
    pub prior: Var,
}

/// Fused `observe` on the tape: `embed [B,T,E]` (differentiable), `action [B,T,A]` and the
/// posterior noise `eps [B,T,S]` (constants), the fourteen RSSM parameters. Like
/// [`crate::ops::gaussian::gaussian_head`], the four outputs are recorded over one hidden node
/// whose backward runs once, after all four have stashed their gradients.
pub fn observe(
    t: &Tape,
    embed: Var,
    action: &Tensor,
    eps: &Tensor,
    params: RssmParams<Var>,
    min_std: f32,
) -> Result<ObserveVars> {
    let ev = t.value(embed);
    let wv = params.map(|v| t.value(v));
    let out = observe_forward(&ev, action, eps, &wv.as_ref(), min_std, t.grad_enabled())?;
    let stash: Rc<RefCell<[Option<Tensor>; 4]>> = Rc::default();
    let st = stash.clone();
    let gpu = ev.gpu().clone();
    let (action, eps) = (action.clone(), eps.clone());
    let mut inputs = vec![embed];
    inputs.extend(params.to_array());
    let saved_out = out.clone();
    let hub = t.record(
        out.deter.clone(),
        &inputs,
        move |grads: &mut Grads, _token| {
            let [gd, gs, gq, gp] = std::mem::take(&mut *st.borrow_mut());
            let g = ObserveOutGrads {
                deter: gd.as_ref(),
                stoch: gs.as_ref(),
                post: gq.as_ref(),
                prior: gp.as_ref(),
            };
            let embed_t = grads.wanted_target(embed, ev.shape(), &gpu)?;
            let mut param_t: Vec<Option<(Tensor, bool)>> = Vec::with_capacity(14);
            for (v, val) in params.to_array().into_iter().zip(wv.as_ref().to_array()) {
                param_t.push(grads.wanted_target(v, val.shape(), &gpu)?);
            }
            let pt: Vec<Option<(&Tensor, bool)>> = param_t
                .iter()
                .map(|o| o.as_ref().map(|(x, acc)| (x, *acc)))
                .collect();
            let targets = ObserveGradTargets {
                embed: embed_t.as_ref().map(|(x, acc)| (x, *acc)),
                params: RssmParams {
                    img_in_w: pt[0],
                    img_in_b: pt[1],
                    w_ih: pt[2],
                    w_hh: pt[3],
                    b_ih: pt[4],
                    b_hh: pt[5],
                    img_out_w: pt[6],
                    img_out_b: pt[7],
                    img_stats_w: pt[8],
                    img_stats_b: pt[9],
                    obs_out_w: pt[10],
                    obs_out_b: pt[11],
                    obs_stats_w: pt[12],
                    obs_stats_b: pt[13],
                },
            };
            observe_backward(&ev, &action, &eps, &wv.as_ref(), &saved_out, &g, &targets)
        },
    );
    let mut vars = [hub; 4];
    for (k, value) in [out.deter, out.stoch, out.post, out.prior]
        .into_iter()
        .enumerate()
    {
        let st = stash.clone();
        let gpu = t.gpu().clone();
        vars[k] = t.record(value, &[hub], move |grads, g| {
            st.borrow_mut()[k] = Some(g.clone());
            // A token gradient so that the hidden node's backward runs; no dispatch.
            grads.target(hub, &[1], &gpu)?;
            Ok(())
        });
    }
    Ok(ObserveVars {
        deter: vars[0],
        stoch: vars[1],
        post: vars[2],
        prior: vars[3],
    })
}
