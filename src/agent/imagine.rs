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
//! Per imagined step, in dispatches: `concat(s, h)` (2), the actor's 5 linears, its action
//! head (10, see `agent::actor`), `img_step` (concat 2, `img_in` 1, GRU 3, `img_out` 1,
//! `img_stats` 1) and the prior sample (1): 26. Then, once for the whole trajectory, the
//! features are stacked time-major (H+1 copies) and the reward head (3), the continue head (4)
//! and a sigmoid (1) run on all `(H+1) N` rows at once, instead of 8 dispatches per step.

use crate::error::{shape_err, Result};
use crate::model::WorldModel;
use crate::nn::Bound;
use crate::ops::gaussian::{gaussian_head, Noise};
use crate::ops::{self};
use crate::tensor::{Tape, Tensor, Var};

use super::actor::Actor;

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
    /// `feat_t = concat(s_t, h_t)` `[N, stoch + deter]` for t = 0..H (t = 0: the start).
    pub feats: Vec<Var>,
    /// `a_t` `[N, A]` taken in state t, t = 0..H-1.
    pub actions: Vec<Var>,
    /// All features stacked time-major, `[(H+1) N, stoch + deter]` (row `t * N + n`).
    pub feat_all: Var,
    /// The reward head's mean, `[H+1, N]`.
    pub rewards: Var,
    /// The continue head's logit, `[H+1, N]`.
    pub cont_logits: Var,
    /// `sigmoid(cont_logits)`, `[H+1, N]`.
    pub conts: Var,
    /// The actor's pre-squash mean `5 tanh(m / 5)` and its std (when sampling) at step 0,
    /// `[N, A]`: what the policy looks like on the start states.
    pub first_mean: Var,
    pub first_std: Option<Var>,
}

impl Imagined {
    /// The horizon H.
    pub fn horizon(&self) -> usize {
        self.actions.len()
    }
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
        t, wm, wm_params, policy, start_h, start_s, horizon, seed, None,
    )
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
    seed: u64,
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
    let (mut h, mut s) = (start_h, start_s);
    let mut feats = Vec::with_capacity(horizon + 1);
    let mut actions = Vec::with_capacity(horizon);
    let mut first = None;
    feats.push(ops::concat_last(t, &[s, h])?);
    for step in 0..horizon {
        let (actor_off, prior_off) = noise_offsets(step);
        let noise = (!policy.deterministic).then_some(Noise::Seeded {
            seed,
            offset: actor_off,
        });
        // Stop-gradient on the actor's input (the specification's behaviour learning).
        let actor_in = match actor_inputs {
            Some(xs) => t.constant(&xs[step]),
            None => t.detach(feats[step]),
        };
        let head = policy.actor.act(t, policy.params, actor_in, noise)?;
        let a = head.action;
        if step == 0 {
            first = Some((head.mean, head.std));
        }
        let (h_new, prior) = wm.img_step(t, wm_params, s, a, h)?;
        s = gaussian_head(
            t,
            prior,
            cfg.min_std,
            Noise::Seeded {
                seed,
                offset: prior_off,
            },
        )?
        .sample;
        h = h_new;
        actions.push(a);
        feats.push(ops::concat_last(t, &[s, h])?);
    }
    // Time-major stack: each [N, F] as one row of [1, N F], stacked into [1, H+1, N F].
    let rows: Vec<Var> = feats
        .iter()
        .map(|f| ops::reshape(t, *f, &[1, n * cfg.feat()]))
        .collect::<Result<_>>()?;
    let feat_all = ops::reshape(
        t,
        ops::stack_time(t, &rows)?,
        &[(horizon + 1) * n, cfg.feat()],
    )?;
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
    let (first_mean, first_std) = first.expect("horizon >= 1");
    Ok(Imagined {
        feats,
        actions,
        feat_all,
        rewards,
        cont_logits,
        conts,
        first_mean,
        first_std,
    })
}
