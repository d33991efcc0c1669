//! Latent imagination: roll the world model's prior forward from given start states with
//! actions from the actor, and predict reward and continuation along the way.
//!
//! Everything is only recorded on the caller's tape (no readback per step). The world model's
//! parameters are expected bound frozen (`ParamStore::bind_frozen`: constants), the actor's as
//! tape parameters, so the gradient of anything computed from the imagined features flows
//! back through the frozen dynamics (GRU, prior head, prior sample) into the actor. The actor
//! sees its input through a stop-gradient, as in DreamerV1/V2 (`a_t = actor(sg(feat_t))`): its
//! parameters get gradient through the actions it takes, never through its own later inputs.
//!
//! Two implementations, chosen like the world model's `observe` (`WorldModel::imagine_path`,
//! the device tuning's `path`: per-op on CPU drivers, faster there):
//! - fused (`ops::imagine`): the whole rollout, actor included, in one persistent dispatch; the
//!   actor then recomputed on the tape on all H N detached features at once (the same values,
//!   so the same actions), feeding a node whose backward runs the frozen dynamics in reverse in
//!   one dispatch and hands dL/da to the batched actor. A handful of dispatches whatever H is.
//! - per-op (the reference and the fallback): per imagined step `concat(s, h)` (2), the actor's
//!   5 linears, its action head (1), `img_step` (concat 2, `img_in` 1, GRU 3, `img_out` 1,
//!   `img_stats` 1) and the prior sample (1): 17, and about 30 backward.
//!
//! Either way the features are stacked time-major and the reward head (3), the continue head
//! (4) and a sigmoid (1) run once on all `(H+1) N` rows.

use crate::error::{shape_err, Result};
use crate::model::{RssmPath, WorldModel};
use crate::nn::Bound;
use crate::ops::gaussian::{gaussian_head, normal_noise_steps, Noise};
use crate::ops::imagine::{imagine_forward, rollout, Actions, ActorWeights};
use crate::ops::{self};
use crate::tensor::{Tape, Tensor, Var};

use super::actor::{init_std_raw, Actor, ACTOR_MIN_STD};

/// The actor, its parameters on the tape, and whether it samples (training) or acts with
/// `tanh(mean)` (evaluation).
#[derive(Clone, Copy)]
pub struct Policy<'a> {
    pub actor: &'a Actor,
    pub params: &'a Bound,
    pub deterministic: bool,
}

/// An imagined trajectory of H steps from N start states.
pub struct Imagined {
    /// The horizon H and the number of start states N.
    pub horizon: usize,
    pub starts: usize,
    /// Which implementation ran: the fused kernels or one op per step.
    pub path: RssmPath,
    /// `feat_t = concat(s_t, h_t)` for t = 0..H (t = 0: the start), stacked time-major,
    /// `[(H+1) N, stoch + deter]` (row `t * N + n`).
    pub feat_all: Var,
    /// `a_t` for t = 0..H-1, time-major `[H N, A]`.
    pub actions: Var,
    /// The reward head's mean, `[H+1, N]`.
    pub rewards: Var,
    /// The continue head's logit, `[H+1, N]`.
    pub cont_logits: Var,
    /// `sigmoid(cont_logits)`, `[H+1, N]`.
    pub conts: Var,
    /// The actor's pre-squash mean `5 tanh(m / 5)` and its std (when sampling) at step 0,
    /// `[N, A]`: what the policy looks like on the start states.
    pub first_mean: Tensor,
    pub first_std: Option<Tensor>,
}

impl Imagined {
    /// The horizon H.
    pub fn horizon(&self) -> usize {
        self.horizon
    }

    /// The features of each step t = 0..H, `[N, stoch + deter]` each (copies of the values).
    pub fn feat_values(&self, t: &Tape) -> Result<Vec<Tensor>> {
        let all = t.value(self.feat_all);
        (0..=self.horizon)
            .map(|k| rows_of(&all, k * self.starts, self.starts))
            .collect()
    }

    /// The actions of each step t = 0..H-1, `[N, A]` each (copies of the values).
    pub fn action_values(&self, t: &Tape) -> Result<Vec<Tensor>> {
        let all = t.value(self.actions);
        (0..self.horizon)
            .map(|k| rows_of(&all, k * self.starts, self.starts))
            .collect()
    }
}

/// Rows `[from, from + rows)` of a `[R, C]` tensor as a new `[rows, C]` tensor (a buffer copy,
/// no dispatch).
pub(crate) fn rows_of(x: &Tensor, from: usize, rows: usize) -> Result<Tensor> {
    let cols = x.last_dim();
    let out = Tensor::empty(x.gpu(), &[rows, cols])?;
    x.gpu()
        .copy(x.buf(), from * cols, out.buf(), 0, rows * cols);
    Ok(out)
}

/// The Philox stream offsets of step `step`'s noise: the actor's, then the prior's (key: the
/// `seed` given to [`imagine`]).
pub fn noise_offsets(step: usize) -> (u64, u64) {
    (2 * step as u64, 2 * step as u64 + 1)
}

/// Imagine `horizon` steps from `start_h [N, deter]`, `start_s [N, stoch]` (pass detached
/// values: the starts are not differentiated). At step t the actor's noise is the Philox
/// stream `(seed, 2t)` and the prior's `(seed, 2t + 1)`.
#[allow(clippy::too_many_arguments)]
pub fn imagine(
    t: &Tape,
    wm: &WorldModel,
    wm_params: &Bound,
    policy: Policy<'_>,
    start_h: Var,
    start_s: Var,
    horizon: usize,
    seed: u64,
) -> Result<Imagined> {
    imagine_with_actor_inputs(
        t,
        wm,
        wm_params,
        policy,
        start_h,
        start_s,
        horizon,
        &ImagineNoise::Seeded(seed),
        None,
    )
}

/// Where imagination's noise comes from.
#[derive(Clone, Debug)]
pub enum ImagineNoise {
    /// Philox key: step t's actor noise is the stream `(seed, 2t)`, its prior noise
    /// `(seed, 2t + 1)` (see [`noise_offsets`]).
    Seeded(u64),
    /// Given standard normals, time-major: the actor's `[H, N, A]`, the prior's `[H, N, stoch]`
    /// (to replay or to compare with another framework).
    Given { actor: Tensor, prior: Tensor },
}

impl ImagineNoise {
    /// `(actor [H, N, A], prior [H, N, S])` as tensors (drawn in two dispatches when seeded).
    fn tensors(
        &self,
        gpu: &crate::gpu::Gpu,
        h: usize,
        n: usize,
        a: usize,
        s: usize,
    ) -> Result<(Tensor, Tensor)> {
        match self {
            ImagineNoise::Seeded(seed) => Ok((
                normal_noise_steps(gpu, h, n * a, *seed, 0, 2)?.reshape(&[h, n, a])?,
                normal_noise_steps(gpu, h, n * s, *seed, 1, 2)?.reshape(&[h, n, s])?,
            )),
            ImagineNoise::Given { actor, prior } => {
                if actor.shape() != [h, n, a] || prior.shape() != [h, n, s] {
                    return shape_err(
                        "imagine",
                        format!(
                            "noise must be actor [{h}, {n}, {a}] and prior [{h}, {n}, {s}], got {:?} and {:?}",
                            actor.shape(),
                            prior.shape()
                        ),
                    );
                }
                Ok((actor.clone(), prior.clone()))
            }
        }
    }

    /// Step `step`'s actor and prior noise for the per-op path.
    fn step(&self, step: usize, n: usize) -> Result<(Noise, Noise)> {
        match self {
            ImagineNoise::Seeded(seed) => {
                let (actor_off, prior_off) = noise_offsets(step);
                Ok((
                    Noise::Seeded {
                        seed: *seed,
                        offset: actor_off,
                    },
                    Noise::Seeded {
                        seed: *seed,
                        offset: prior_off,
                    },
                ))
            }
            ImagineNoise::Given { actor, prior } => {
                let rows = |x: &Tensor| -> Result<Tensor> {
                    let w = x.last_dim();
                    rows_of(&x.reshape(&[x.len() / w, w])?, step * n, n)
                };
                Ok((Noise::Given(rows(actor)?), Noise::Given(rows(prior)?)))
            }
        }
    }
}

/// [`imagine`], with the actor's input at step t taken from `actor_inputs[t]` `[N, feat]`
/// instead of the imagined feature (both are constants to the actor). With the features of an
/// unperturbed rollout, finite differences of a perturbed actor see exactly the stop-gradient
/// semantics: only the path through the actions it takes.
#[allow(clippy::too_many_arguments)]
pub fn imagine_with_actor_inputs(
    t: &Tape,
    wm: &WorldModel,
    wm_params: &Bound,
    policy: Policy<'_>,
    start_h: Var,
    start_s: Var,
    horizon: usize,
    noise: &ImagineNoise,
    actor_inputs: Option<&[Tensor]>,
) -> Result<Imagined> {
    if let Some(xs) = actor_inputs {
        if xs.len() < horizon {
            return shape_err(
                "imagine",
                format!("{} actor inputs for horizon {horizon}", xs.len()),
            );
        }
    }
    let cfg = &wm.cfg;
    let (hs, ss) = (t.shape(start_h), t.shape(start_s));
    if hs.len() != 2
        || ss.len() != 2
        || hs[1] != cfg.deter
        || ss[1] != cfg.stoch
        || hs[0] != ss[0]
        || hs[0] == 0
    {
        return shape_err(
            "imagine",
            format!(
                "starts must be h [N, {}] and s [N, {}], got {hs:?} and {ss:?}",
                cfg.deter, cfg.stoch
            ),
        );
    }
    if horizon == 0 {
        return shape_err("imagine", "horizon must be at least 1");
    }
    if policy.actor.action_dim != cfg.action_dim {
        return shape_err(
            "imagine",
            format!(
                "actor has action_dim {}, the world model {}",
                policy.actor.action_dim, cfg.action_dim
            ),
        );
    }
    let n = hs[0];
    let (path, _) = wm.imagine_path(t.gpu(), n, horizon, t.grad_enabled());
    // The kernel runs the specification's actor: four hidden layers.
    let frozen = policy.actor.net.layers.len() == 4
        && wm
            .rssm_vars(wm_params)
            .to_array()
            .iter()
            .all(|v| !t.requires_grad(*v));
    let args = RolloutArgs {
        wm,
        wm_params,
        policy,
        start_h,
        start_s,
        horizon,
        noise,
        actor_inputs,
    };
    let (path, (feat_all, actions, first_mean, first_std)) = if path == RssmPath::Fused && frozen {
        (RssmPath::Fused, rollout_fused(t, &args)?)
    } else {
        (RssmPath::PerOp, rollout_per_op(t, &args)?)
    };
    let rewards = ops::reshape(
        t,
        wm.reward.forward(t, wm_params, feat_all)?,
        &[horizon + 1, n],
    )?;
    let cont_logits = ops::reshape(
        t,
        wm.cont.forward(t, wm_params, feat_all)?,
        &[horizon + 1, n],
    )?;
    let conts = ops::sigmoid(t, cont_logits)?;
    Ok(Imagined {
        horizon,
        starts: n,
        path,
        feat_all,
        actions,
        rewards,
        cont_logits,
        conts,
        first_mean,
        first_std,
    })
}

/// What both rollouts take.
#[derive(Clone, Copy)]
struct RolloutArgs<'a> {
    wm: &'a WorldModel,
    wm_params: &'a Bound,
    policy: Policy<'a>,
    start_h: Var,
    start_s: Var,
    horizon: usize,
    noise: &'a ImagineNoise,
    actor_inputs: Option<&'a [Tensor]>,
}

/// `(feat_all [(H+1) N, F], actions [H N, A], first mean, first std)` of a rollout.
type Rollout = (Var, Var, Tensor, Option<Tensor>);

/// One op per step (the reference): 17 dispatches per imagined step forward.
fn rollout_per_op(t: &Tape, args: &RolloutArgs<'_>) -> Result<Rollout> {
    let RolloutArgs {
        wm,
        wm_params,
        policy,
        start_h,
        start_s,
        horizon,
        noise,
        actor_inputs,
    } = *args;
    let cfg = &wm.cfg;
    let n = t.shape(start_h)[0];
    let (mut h, mut s) = (start_h, start_s);
    let mut feats = Vec::with_capacity(horizon + 1);
    let mut actions = Vec::with_capacity(horizon);
    let mut first = None;
    feats.push(ops::concat_last(t, &[s, h])?);
    for step in 0..horizon {
        let (actor_noise, prior_noise) = noise.step(step, n)?;
        let actor_noise = (!policy.deterministic).then_some(actor_noise);
        // Stop-gradient on the actor's input (the specification's behaviour learning).
        let actor_in = match actor_inputs {
            Some(xs) => t.constant(&xs[step]),
            None => t.detach(feats[step]),
        };
        let head = policy.actor.act(t, policy.params, actor_in, actor_noise)?;
        let a = head.action;
        if step == 0 {
            first = Some((t.value(head.mean), head.std.map(|v| t.value(v))));
        }
        let (h_new, prior) = wm.img_step(t, wm_params, s, a, h)?;
        s = gaussian_head(t, prior, cfg.min_std, prior_noise)?.sample;
        h = h_new;
        actions.push(a);
        feats.push(ops::concat_last(t, &[s, h])?);
    }
    // Time-major stacks: each [N, W] as one row of [1, N W], stacked into [1, K, N W].
    let stack = |xs: &[Var], w: usize| -> Result<Var> {
        let rows: Vec<Var> = xs
            .iter()
            .map(|f| ops::reshape(t, *f, &[1, n * w]))
            .collect::<Result<_>>()?;
        ops::reshape(t, ops::stack_time(t, &rows)?, &[xs.len() * n, w])
    };
    let feat_all = stack(&feats, cfg.feat())?;
    let actions = stack(&actions, cfg.action_dim)?;
    let (first_mean, first_std) = first.expect("horizon >= 1");
    Ok((feat_all, actions, first_mean, first_std))
}

/// The fused kernels (`ops::imagine`): the rollout in one dispatch; then the actor recomputed
/// on the tape on all H N detached features at once (the same values the kernel's actor saw,
/// so the same actions), whose actions feed the rollout's node: its backward runs the dynamics
/// in reverse in one dispatch and hands dL/da to the batched actor.
fn rollout_fused(t: &Tape, args: &RolloutArgs<'_>) -> Result<Rollout> {
    let RolloutArgs {
        wm,
        wm_params,
        policy,
        start_h,
        start_s,
        horizon,
        noise,
        actor_inputs,
    } = *args;
    let cfg = &wm.cfg;
    let gpu = t.gpu();
    let n = t.shape(start_h)[0];
    let (a, hn) = (cfg.action_dim, horizon * n);
    let (act_all, prior_eps) = noise.tensors(gpu, horizon, n, a, cfg.stoch)?;
    let act_eps = (!policy.deterministic).then_some(act_all);
    let w = wm.rssm_vars(wm_params).map(|v| t.value(v));
    let actor_vals: Vec<Tensor> = policy
        .actor
        .net
        .linears()
        .iter()
        .flat_map(|l| [policy.params.var(l.weight), policy.params.var(l.bias)])
        .map(|v| t.value(v))
        .collect();
    let aw = ActorWeights {
        weights: std::array::from_fn(|l| &actor_vals[2 * l]),
        biases: std::array::from_fn(|l| &actor_vals[2 * l + 1]),
        std_shift: init_std_raw(),
        min_std: ACTOR_MIN_STD,
    };
    let (sh, ss) = (t.value(start_h), t.value(start_s));
    let noise = act_eps
        .as_ref()
        .map(|e| -> Result<Noise> { Ok(Noise::Given(e.reshape(&[hn, a])?)) })
        .transpose()?;
    let (out, head) = match actor_inputs {
        None => {
            let out = imagine_forward(
                &sh,
                &ss,
                &w.as_ref(),
                cfg.embed(),
                Actions::Actor(aw, act_eps.as_ref()),
                Some(&prior_eps),
                horizon,
                cfg.min_std,
                t.grad_enabled(),
                false,
            )?;
            // Without gradients the actions are the kernel's; the actor runs again only on the
            // start states, for the first step's statistics.
            let rows = if t.grad_enabled() { hn } else { n };
            let feats = out.feats.reshape(&[(horizon + 1) * n, cfg.feat()])?;
            let actor_in = t.constant(&rows_of(&feats, 0, rows)?);
            let noise = match noise {
                Some(Noise::Given(e)) if rows < hn => Some(Noise::Given(rows_of(&e, 0, rows)?)),
                other => other,
            };
            let head = policy.actor.act(t, policy.params, actor_in, noise)?;
            (out, head)
        }
        Some(xs) => {
            let inputs = Tensor::empty(gpu, &[hn, cfg.feat()])?;
            for (k, x) in xs.iter().take(horizon).enumerate() {
                if x.shape() != [n, cfg.feat()] {
                    return shape_err(
                        "imagine",
                        format!("actor input {k} {:?} for [{n}, {}]", x.shape(), cfg.feat()),
                    );
                }
                gpu.copy(x.buf(), 0, inputs.buf(), k * n * cfg.feat(), n * cfg.feat());
            }
            let head = policy
                .actor
                .act(t, policy.params, t.constant(&inputs), noise)?;
            let given = t.value(head.action).reshape(&[horizon, n, a])?;
            let out = imagine_forward(
                &sh,
                &ss,
                &w.as_ref(),
                cfg.embed(),
                Actions::Given(&given),
                Some(&prior_eps),
                horizon,
                cfg.min_std,
                t.grad_enabled(),
                false,
            )?;
            (out, head)
        }
    };
    let first_mean = rows_of(&t.value(head.mean), 0, n)?;
    let first_std = head.std.map(|v| rows_of(&t.value(v), 0, n)).transpose()?;
    if t.grad_enabled() {
        let feat_all = rollout(t, head.action, out)?;
        Ok((feat_all, head.action, first_mean, first_std))
    } else {
        let feat_all = t.constant(&out.feats.reshape(&[(horizon + 1) * n, cfg.feat()])?);
        let actions = t.constant(&out.actions.reshape(&[hn, a])?);
        Ok((feat_all, actions, first_mean, first_std))
    }
}
