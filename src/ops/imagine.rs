//! Latent imagination fused over the horizon (`shaders/rssm.wgsl`, `imagine_*`): H imagined
//! steps from N start states in one persistent dispatch, and the backward through the frozen
//! dynamics in one more, instead of ~26 dispatches per step forward and ~47 backward on the
//! per-op path (`agent::imagine`, which stays as the reference these kernels are tested against
//! and as the fallback). Where the driver limits a shader's loops (lavapipe,
//! [`Gpu::loop_limit`]) each kernel runs as several dispatches of consecutive steps
//! ([`FusedPlan`]), as `ops::rssm`'s do.
//!
//! Forward (3-4 dispatches): pack the RSSM's weights (`ops::rssm`'s two pack kernels), pack the
//! actor's five layers transposed into the same buffer (`pack_actor`, when the actor acts), then
//! `imagine_forward`: per step the actor on `feat_t`, its tanh-Gaussian action, `img_in`, the GRU,
//! `img_out`, the prior's statistics and its sample, all in workgroup memory.
//!
//! Backward: `imagine_backward` carries dL/dh and dL/ds back through the dynamics and writes
//! dL/da_t for every step. The actor sees its input through a stop-gradient
//! (`a_t = actor(sg(feat_t))`, the specification's behaviour learning), so nothing flows from
//! a_t into feat_t: the actor's own backward is an ordinary batched one over all H N rows, on
//! the tape (see [`rollout`]), where each weight gradient is one GEMM.
//!
//! Layouts are time-major: `feats [H+1, N, stoch + deter]` (row 0 the start states),
//! `actions [H, N, A]`, noises `[H, N, .]`.

use crate::error::{shape_err, Error, Result};
use crate::gpu::pipelines::{kernel_sig, KernelSig};
use crate::gpu::Gpu;
use crate::ops::grid;
use crate::ops::rssm::{
    kernel_consts, step_chunks, tile_plan, FusedPlan, LoopCount, ObserveDims, Params, RssmParams,
    StepIterations,
};
use crate::tensor::{Tape, Tensor, Var};

// The kernels this module dispatches: entry points and the storage buffers they bind, in order.

/// `rssm::pack_actor`.
pub const PACK_ACTOR: KernelSig = kernel_sig!(
    crate::ops::rssm::Params,
    "rssm",
    "pack_actor",
    [],
    ["wp_out", "aw0", "aw1", "aw2", "aw3", "aw4", "ab0", "ab1", "ab2", "ab3", "ab4"]
);

/// `rssm::imagine_forward`.
pub const IMAGINE_FORWARD: KernelSig = kernel_sig!(
    crate::ops::rssm::Params,
    "rssm",
    "imagine_forward",
    ["R", "WGT", "SH", "SAVE"],
    [
        "wp", "action", "eps", "prior", "xs", "gates", "hprev", "y_img", "start_h", "start_s",
        "act_eps", "feats", "actions"
    ]
);

/// `rssm::imagine_backward`.
pub const IMAGINE_BACKWARD: KernelSig = kernel_sig!(
    crate::ops::rssm::Params,
    "rssm",
    "imagine_backward",
    ["R", "WGT", "SH"],
    [
        "wp",
        "eps",
        "prior",
        "xs",
        "gates",
        "hprev",
        "y_img",
        "d_feats",
        "d_actions",
        "carry"
    ]
);

/// Storage buffers the forward kernel binds (the most of the three).
pub const STORAGE_BUFFERS_NEEDED: u32 = 13;

// Flags shared with the shader.
const ACT_GIVEN: u32 = 16;
const ACT_MODE: u32 = 32;
const PRIOR_MEAN: u32 = 64;
const BATCH_MAJOR: u32 = 128;

/// Sizes of one fused imagination.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ImagineDims {
    /// Start states N.
    pub starts: usize,
    /// Imagined steps H.
    pub horizon: usize,
    pub stoch: usize,
    pub action: usize,
    pub deter: usize,
    pub hidden: usize,
    /// The embedding's width (the packed RSSM weights include `obs_out`).
    pub embed: usize,
    /// The actor's width (0 when the actions are given).
    pub units: usize,
}

impl ImagineDims {
    /// Workgroup floats per row: forward, backward.
    fn per_row(&self) -> (usize, usize) {
        let (s, a, dd, hd) = (self.stoch, self.action, self.deter, self.hidden);
        let m = self.units.max(hd);
        (3 * s + 2 * dd + 2 * m + 3 * a, 3 * s + hd + 5 * dd)
    }

    /// Loop iterations one invocation runs per step and once per dispatch, loop by loop as in
    /// `imagine_forward` / `imagine_backward` (see [`LoopCount`]).
    fn loop_iterations(&self, c: LoopCount) -> StepIterations {
        let (s, a, dd, hd, u) = (self.stoch, self.action, self.deter, self.hidden, self.units);
        let f = s + dd;
        let actor = if u > 0 {
            c.dense(u, f) + 3 * c.dense(u, u) + c.dense(2 * a, u)
        } else {
            0
        };
        let fwd = actor
            + c.rows(a)
            + c.rows(dd)
            + c.dense(hd, s + a)
            + c.dense(dd, hd + dd)
            + 2 * c.rows(hd)
            + c.dense(hd, dd)
            + c.dense(2 * s, hd)
            + c.rows(2 * s)
            + c.rows(f);
        let bwd = c.rows(2 * s)
            + c.dense(hd, 2 * s)
            + c.dense(dd, hd)
            + c.dense(dd, 0)
            + c.dense(dd + hd, 3 * dd)
            + c.dense(s + a, hd);
        let (_, pb) = self.per_row();
        StepIterations {
            per_step: (fwd, bwd),
            setup: (c.rows(f), c.rows(pb) + c.rows(dd + s)),
        }
    }

    fn observe_dims(&self) -> ObserveDims {
        ObserveDims {
            batch: self.starts,
            steps: self.horizon,
            stoch: self.stoch,
            action: self.action,
            deter: self.deter,
            hidden: self.hidden,
            embed: self.embed,
        }
    }

    /// The uniform block and the packed buffer's length.
    fn params(&self, min_std: f32) -> (Params, usize) {
        let (mut p, mut off) = Params::new(&self.observe_dims(), min_std);
        p.horizon = self.horizon as u32;
        p.units = self.units as u32;
        if self.units > 0 {
            let f = self.stoch + self.deter;
            let u = self.units;
            let shapes = [(u, f), (u, u), (u, u), (u, u), (2 * self.action, u)];
            let mut n = 0;
            for (l, (o, i)) in shapes.iter().enumerate() {
                p.aw[l] = off as u32;
                off += o * i;
                n += o * i;
            }
            for (l, (o, _)) in shapes.iter().enumerate() {
                p.ab[l] = off as u32;
                off += o;
                n += o;
            }
            p.n_pack_actor = n as u32;
        }
        (p, off)
    }
}

/// Whether the fused imagination runs on this device for `d`, and its tiling.
pub fn imagine_plan(gpu: &Gpu, d: &ImagineDims) -> std::result::Result<FusedPlan, String> {
    let (n, h) = (d.starts, d.horizon);
    let packed = d.params(0.0).1;
    let largest = ((h + 1) * n * (d.stoch + d.deter))
        .max(h * n * (4 * d.deter).max(d.hidden))
        .max(packed);
    let iters = |c: LoopCount| d.loop_iterations(c);
    tile_plan(
        gpu,
        (n, h),
        d.per_row(),
        STORAGE_BUFFERS_NEEDED,
        largest,
        &iters,
        d,
    )
}

/// The actor's parameters in layer order (`actor.l0..l3` and `actor.out`, weights `[out, in]`)
/// and its action distribution: `std = softplus(r + std_shift) + min_std`.
#[derive(Clone, Copy)]
pub struct ActorWeights<'a> {
    pub weights: [&'a Tensor; 5],
    pub biases: [&'a Tensor; 5],
    pub std_shift: f32,
    pub min_std: f32,
}

/// Where the imagined actions come from.
#[derive(Clone, Copy)]
pub enum Actions<'a> {
    /// The actor on each imagined feature: sampled with `eps [H, N, A]`, or its mode
    /// `tanh(5 tanh(m / 5))` with `None`.
    Actor(ActorWeights<'a>, Option<&'a Tensor>),
    /// Given actions `[H, N, A]` (batch-major: `[N, H, A]`).
    Given(&'a Tensor),
}

/// What the backward reads.
#[derive(Clone, Debug)]
pub struct ImagineSaved {
    wp: Tensor,
    prior_eps: Tensor,
    x: Tensor,
    gates: Tensor,
    hprev: Tensor,
    y_img: Tensor,
}

/// The fused imagination's outputs.
#[derive(Clone, Debug)]
pub struct ImagineOut {
    /// `[H+1, N, stoch + deter]`: `feat_t = [s_t, h_t]`, row 0 the start states
    /// ([`Actions::GivenBatchMajor`]: `[N, H, stoch + deter]`, steps 1..H).
    pub feats: Tensor,
    /// `a_t` `[H, N, A]` (batch-major: `[N, H, A]`).
    pub actions: Tensor,
    /// The prior's statistics `[mean | raw]` `[H, N, 2 stoch]` of step t+1 (with `save`).
    pub prior: Option<Tensor>,
    dims: ImagineDims,
    flags: u32,
    min_std: f32,
    saved: Option<ImagineSaved>,
}

impl ImagineOut {
    pub fn dims(&self) -> ImagineDims {
        self.dims
    }
}

/// Record the fused imagination of `horizon` steps from `start_h [N, deter]`, `start_s
/// [N, stoch]` with the world model's RSSM weights `w` (spec shapes; `embed` is the width of
/// `obs_out`'s embedding columns), actions from `actions`, and the prior sampled with
/// `prior_eps [H, N, stoch]` or its mean (`None`). 3 dispatches with given actions, 4 with the
/// actor; `save` keeps what [`imagine_backward`] needs.
#[allow(clippy::too_many_arguments)]
pub fn imagine_forward(
    start_h: &Tensor,
    start_s: &Tensor,
    w: &RssmParams<&Tensor>,
    embed: usize,
    actions: Actions,
    prior_eps: Option<&Tensor>,
    horizon: usize,
    min_std: f32,
    save: bool,
    batch_major: bool,
) -> Result<ImagineOut> {
    let gpu = start_h.gpu();
    let (hs, ss) = (start_h.shape(), start_s.shape());
    let s = w.obs_stats_w.shape().first().copied().unwrap_or(0) / 2;
    let dd = w.w_hh.shape().get(1).copied().unwrap_or(0);
    let hd = w.img_out_w.shape().first().copied().unwrap_or(0);
    let a = w
        .img_in_w
        .shape()
        .get(1)
        .copied()
        .unwrap_or(0)
        .saturating_sub(s);
    if hs.len() != 2 || ss.len() != 2 || hs[0] != ss[0] || hs[0] == 0 || hs[1] != dd || ss[1] != s {
        return shape_err(
            "imagine",
            format!("starts must be h [N, {dd}] and s [N, {s}], got {hs:?} and {ss:?}"),
        );
    }
    if horizon == 0 || a == 0 {
        return shape_err("imagine", format!("horizon {horizon}, action_dim {a}"));
    }
    let n = hs[0];
    let units = match &actions {
        Actions::Actor(aw, _) => aw.weights[0].shape().first().copied().unwrap_or(0),
        Actions::Given(_) => 0,
    };
    let d = ImagineDims {
        starts: n,
        horizon,
        stoch: s,
        action: a,
        deter: dd,
        hidden: hd,
        embed,
        units,
    };
    // Every operand's shape, so that a mismatch is an error here and not a read past a buffer.
    let lay = |w: usize| {
        if batch_major {
            vec![n, horizon, w]
        } else {
            vec![horizon, n, w]
        }
    };
    let mut want: Vec<(String, &Tensor, Vec<usize>)> = Vec::new();
    if let Some(e) = prior_eps {
        want.push(("prior noise".into(), e, vec![horizon, n, s]));
    }
    match &actions {
        Actions::Given(x) => want.push(("actions".into(), x, lay(a))),
        Actions::Actor(aw, eps) => {
            if let Some(e) = eps {
                want.push(("actor noise".into(), e, lay(a)));
            }
            let ins = [s + dd, units, units, units, units];
            let outs = [units, units, units, units, 2 * a];
            for l in 0..5 {
                want.push((
                    format!("actor layer {l} weight"),
                    aw.weights[l],
                    vec![outs[l], ins[l]],
                ));
                want.push((format!("actor layer {l} bias"), aw.biases[l], vec![outs[l]]));
            }
        }
    }
    for (name, tns, shape) in &want {
        if tns.shape() != shape.as_slice() {
            return shape_err(
                "imagine",
                format!("{name} must be {shape:?}, got {:?}", tns.shape()),
            );
        }
    }
    let plan = imagine_plan(gpu, &d).map_err(|e| Error::Invalid(format!("fused imagine: {e}")))?;
    let (mut p, packed) = d.params(min_std);
    let wp = Tensor::empty(gpu, &[packed])?;
    crate::ops::rssm::pack_rssm(&p, w, &wp)?;
    let dummy = Tensor::empty(gpu, &[1])?;
    let (act_in, act_eps) = match &actions {
        Actions::Given(x) => {
            p.flags |= ACT_GIVEN;
            (*x, &dummy)
        }
        Actions::Actor(aw, eps) => {
            p.init_std = aw.std_shift;
            p.act_min_std = aw.min_std;
            let k = gpu.kernel(&PACK_ACTOR, &[])?;
            let mut bufs = vec![wp.buf()];
            bufs.extend(aw.weights.iter().map(|t| t.buf()));
            bufs.extend(aw.biases.iter().map(|t| t.buf()));
            gpu.dispatch(&k, &p, &bufs, grid(gpu, p.n_pack_actor as usize));
            if eps.is_none() {
                p.flags |= ACT_MODE;
            }
            (&dummy, eps.unwrap_or(&dummy))
        }
    };
    if prior_eps.is_none() {
        p.flags |= PRIOR_MEAN;
    }
    let bm = batch_major;
    if bm {
        p.flags |= BATCH_MAJOR;
    }
    if bm && save {
        return Err(Error::Invalid(
            "fused imagine: batch-major dreams have no backward".into(),
        ));
    }
    let feats = if bm {
        Tensor::empty(gpu, &[n, horizon, s + dd])?
    } else {
        Tensor::empty(gpu, &[horizon + 1, n, s + dd])?
    };
    let acts = if bm {
        Tensor::empty(gpu, &[n, horizon, a])?
    } else {
        Tensor::empty(gpu, &[horizon, n, a])?
    };
    let buf = |shape: &[usize]| -> Result<Tensor> {
        if save {
            Tensor::empty(gpu, shape)
        } else {
            Tensor::empty(gpu, &[1])
        }
    };
    let prior = buf(&[horizon, n, 2 * s])?;
    let x = buf(&[horizon, n, hd])?;
    let gates = buf(&[horizon, n, 4 * dd])?;
    let hprev = buf(&[horizon, n, dd])?;
    let y_img = buf(&[horizon, n, hd])?;
    let prior_eps = prior_eps.cloned().unwrap_or_else(|| dummy.clone());
    let mut consts = kernel_consts(plan.rows_fwd, plan.threads, d.per_row().0).to_vec();
    consts.push(("SAVE", save as u32 as f64));
    let k = gpu.kernel(&IMAGINE_FORWARD, &consts)?;
    for (t0, t1) in step_chunks(horizon, plan.steps_fwd) {
        (p.t0, p.t1) = (t0, t1);
        gpu.dispatch(
            &k,
            &p,
            &[
                wp.buf(),
                act_in.buf(),
                prior_eps.buf(),
                prior.buf(),
                x.buf(),
                gates.buf(),
                hprev.buf(),
                y_img.buf(),
                start_h.buf(),
                start_s.buf(),
                act_eps.buf(),
                feats.buf(),
                acts.buf(),
            ],
            [n.div_ceil(plan.rows_fwd) as u32, 1, 1],
        );
    }
    Ok(ImagineOut {
        feats,
        actions: acts,
        prior: save.then(|| prior.clone()),
        dims: d,
        flags: p.flags,
        min_std,
        saved: save.then_some(ImagineSaved {
            wp,
            prior_eps,
            x,
            gates,
            hprev,
            y_img,
        }),
    })
}

/// Record the backward through the imagined dynamics: from `d_feats [H+1, N, stoch + deter]`
/// (the gradient of `out.feats`), dL/da_t `[H, N, A]` for every step. One dispatch (one per
/// chunk of steps where the driver limits loops, see [`FusedPlan`]).
pub fn imagine_backward(out: &ImagineOut, d_feats: &Tensor) -> Result<Tensor> {
    let saved = out.saved.as_ref().ok_or_else(|| {
        Error::Tape("fused imagine backward: the forward ran without saving".into())
    })?;
    if d_feats.len() != out.feats.len() {
        return shape_err(
            "imagine backward",
            format!(
                "gradient {:?} for features {:?}",
                d_feats.shape(),
                out.feats.shape()
            ),
        );
    }
    let d = out.dims;
    let gpu = d_feats.gpu();
    let plan = imagine_plan(gpu, &d).map_err(|e| Error::Invalid(format!("fused imagine: {e}")))?;
    let (mut p, _) = d.params(out.min_std);
    p.flags = out.flags;
    let d_actions = Tensor::empty(gpu, &[d.horizon, d.starts, d.action])?;
    let k = gpu.kernel(
        &IMAGINE_BACKWARD,
        &kernel_consts(plan.rows_bwd, plan.threads, d.per_row().1),
    )?;
    let prior = out.prior.as_ref().expect("saved with the forward");
    // dL/dh and dL/ds between chunks of steps.
    let carry = if plan.steps_bwd < d.horizon {
        Tensor::empty(gpu, &[d.starts, d.deter + d.stoch])?
    } else {
        Tensor::empty(gpu, &[1])?
    };
    for (t0, t1) in step_chunks(d.horizon, plan.steps_bwd)
        .collect::<Vec<_>>()
        .into_iter()
        .rev()
    {
        (p.t0, p.t1) = (t0, t1);
        gpu.dispatch(
            &k,
            &p,
            &[
                saved.wp.buf(),
                saved.prior_eps.buf(),
                prior.buf(),
                saved.x.buf(),
                saved.gates.buf(),
                saved.hprev.buf(),
                saved.y_img.buf(),
                d_feats.buf(),
                d_actions.buf(),
                carry.buf(),
            ],
            [d.starts.div_ceil(plan.rows_bwd) as u32, 1, 1],
        );
    }
    Ok(d_actions)
}

/// The imagined dynamics on the tape, as a function of the actions: records `out.feats`
/// (`[(H+1) N, stoch + deter]`, time-major rows) with input `actions` (`[H N, A]` or
/// `[H, N, A]`, the same values as `out.actions`, e.g. the actor recomputed batched on the
/// tape from the detached features), whose backward is [`imagine_backward`]. The world
/// model's weights are constants here (frozen in behaviour learning).
pub fn rollout(t: &Tape, actions: Var, out: ImagineOut) -> Result<Var> {
    let d = out.dims;
    if t.shape(actions).iter().product::<usize>() != d.horizon * d.starts * d.action {
        return shape_err(
            "rollout",
            format!(
                "actions {:?} for H {} x N {} x A {}",
                t.shape(actions),
                d.horizon,
                d.starts,
                d.action
            ),
        );
    }
    let feats = out
        .feats
        .reshape(&[(d.horizon + 1) * d.starts, d.stoch + d.deter])?;
    let ashape = t.shape(actions);
    Ok(t.record(feats, &[actions], move |grads, g| {
        let da = imagine_backward(&out, g)?;
        grads.add(actions, da.reshape(&ashape)?)
    }))
}
