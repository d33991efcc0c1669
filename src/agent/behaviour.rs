//! Dreamer's behaviour learning: imagine from the posterior states of a batch, lambda-returns,
//! the actor and critic losses, both backward passes and both Adam steps in one submit.
//!
//! # Two tapes
//! The tape's `backward` consumes it and returns gradients for every parameter on it, so the
//! two losses use two tapes, recorded one after the other into the same command stream:
//!
//! 1. actor tape: start states as constants (stop-gradient), world model and critic bound
//!    frozen (constants), actor bound as parameters; imagination, reward/continue/value heads
//!    on the imagined features, lambda-returns, discount weights (a plain tensor: stop-gradient)
//!    and `actor_loss = -mean(weight_t R_t)`. Its gradient reaches only the actor, through the
//!    frozen dynamics, the reward and continue heads and the frozen critic.
//! 2. critic tape: the imagined features of steps 0..H-1 (a buffer copy of the actor tape's
//!    values, so detached), the returns and the weights as constants, the critic bound as
//!    parameters: `critic_loss = 0.5 mean(weight_t (v_t - sg(R_t))^2)`.
//!
//! Both losses see the critic before this update (its Adam step is recorded last), as in
//! DreamerV1, where both losses are computed before either optimiser steps.
//!
//! # Dispatches
//! With the fused imagination (`ops::imagine`, the default where the device allows it), a
//! whole update is 97 dispatches at H = 5 and at H = 15 (`tests/fused_imagine.rs` asserts that
//! it does not grow with H and stays at most 100); at the `dreamer` sizes on a CPU driver, whose
//! MLPs pad the 230-wide features to 232 with a few copies, 116. Of these, the rollout is
//! 6 (pack the RSSM's and the actor's weights, two noise draws, the rollout kernel) and its
//! backward 1; the actor is recomputed on all H N detached features at once (one `ops::mlp`:
//! 5 matmuls and the action head forward, as many GEMMs and column sums backward, the ELU
//! gradients fused into them); the heads, lambda-returns, losses, both Adam steps and the
//! metrics make the rest. The critic's objective reuses the actor objective's critic pass. On
//! the per-op path (the reference) the rollout is about 50 dispatches per imagined step: 335
//! per update at H = 5, 865 at H = 15 (the same test). One submit, one readback either way.
//!
//! # Noise
//! Update `u` imagines with the Philox key [`Behaviour::noise_seed`]`(u)`, a hash of the
//! configuration's seed and `u`; steps use streams `2t` (actor) and `2t + 1` (prior), so a
//! behaviour update is reproducible from `(seed, u)` and independent of the world model's
//! noise streams.

use rand::SeedableRng;
use serde::{Deserialize, Serialize};

use crate::error::{shape_err, Error, Result};
use crate::gpu::Gpu;
use crate::model::{Config, LossOut, WorldModel};
use crate::nn::Bound;
use crate::ops::loss::mse_nll;
use crate::ops::matmul::MlpForward;
use crate::ops::{self};
use crate::tensor::{Tape, Tensor, Var};

use super::actor::{Actor, Critic};
use super::imagine::{imagine_with_actor_inputs, ImagineNoise, Imagined, Policy};
use super::returns::{discount_weights, lambda_return};

/// Behaviour-learning settings (the specification's defaults).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct BehaviourConfig {
    /// Imagination horizon H.
    pub horizon: usize,
    /// Discount (times the continue probability).
    pub gamma: f32,
    /// Lambda of the lambda-returns.
    pub lambda: f32,
    pub actor_lr: f32,
    pub critic_lr: f32,
    /// Global-norm gradient clip of both optimisers.
    pub grad_clip: f32,
}

impl Default for BehaviourConfig {
    fn default() -> Self {
        BehaviourConfig {
            horizon: 15,
            gamma: 0.99,
            lambda: 0.95,
            actor_lr: 8e-5,
            critic_lr: 8e-5,
            grad_clip: 100.0,
        }
    }
}

impl BehaviourConfig {
    /// Reject settings that cannot work.
    pub fn validate(&self) -> Result<()> {
        let ok = self.horizon >= 1
            && self.gamma > 0.0
            && self.gamma <= 1.0
            && (0.0..=1.0).contains(&self.lambda)
            && self.actor_lr > 0.0
            && self.critic_lr > 0.0
            && self.grad_clip > 0.0;
        if ok {
            Ok(())
        } else {
            Err(Error::Invalid(format!(
                "behaviour config {self:?}: needs horizon >= 1, 0 < gamma <= 1, 0 <= lambda <= 1, positive learning rates and clip"
            )))
        }
    }
}

/// The start states of imagination, `h [N, deter]` and `s [N, stoch]` (plain tensors:
/// gradients stopped). From a training batch: the posterior states of all B*T steps.
#[derive(Clone, Debug)]
pub struct Starts {
    pub h: Tensor,
    pub s: Tensor,
}

impl Starts {
    /// From `h [..., deter]` and `s [..., stoch]` with the same leading shape (e.g. `[B, T, .]`
    /// from `observe`), viewed as `[N, .]` (no copy).
    pub fn new(h: &Tensor, s: &Tensor) -> Result<Starts> {
        let (hl, sl) = (h.last_dim(), s.last_dim());
        let lead = |x: &Tensor| x.shape()[..x.shape().len().saturating_sub(1)].to_vec();
        if h.shape().len() < 2 || lead(h) != lead(s) || h.rows() == 0 {
            return shape_err(
                "Starts",
                format!(
                    "h {:?} and s {:?} must share their leading shape",
                    h.shape(),
                    s.shape()
                ),
            );
        }
        Ok(Starts {
            h: h.reshape(&[h.rows(), hl])?,
            s: s.reshape(&[s.rows(), sl])?,
        })
    }

    /// The posterior states of every step of a world-model batch (`LossOut::deter` and
    /// `LossOut::stoch`, `[B, T, .]`): B*T starts.
    pub fn from_loss(out: &LossOut) -> Result<Starts> {
        Starts::new(&out.deter, &out.stoch)
    }

    /// Number of start states N.
    pub fn len(&self) -> usize {
        self.h.rows()
    }

    /// True without start states (never, for a value built by [`Starts::new`]).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// The actor's objective on one tape.
pub struct ActorObjective {
    /// The actor's parameters on the tape (their gradients are the actor's).
    pub actor_params: Bound,
    pub imagined: Imagined,
    /// The frozen critic on every imagined state, `[H+1, N]`.
    pub values: Var,
    /// `R_t`, `[H, N]`.
    pub returns: Var,
    /// `weight_t = prod_{k<t} gamma_k`, `[H, N]` (stop-gradient).
    pub weights: Tensor,
    /// `-mean(weight_t R_t)`, `[1]`.
    pub loss: Var,
    /// The critic's forward pass on the imagined features (`values`), which the critic's
    /// objective reuses for steps 0..H-1 (same features, same weights).
    pub critic_forward: MlpForward,
}

/// The critic's objective on one tape.
pub struct CriticObjective {
    pub critic_params: Bound,
    /// `v_t` on the detached features, `[H, N]`.
    pub values: Var,
    /// `0.5 mean(weight_t (v_t - R_t)^2)`, `[1]`.
    pub loss: Var,
}

/// What one behaviour update reports (read back together, once).
#[derive(Clone, Debug, Serialize)]
pub struct BehaviourMetrics {
    /// Updates done so far, this one included.
    pub update: u64,
    pub actor_loss: f32,
    pub critic_loss: f32,
    /// Mean lambda-return over the N x H returns.
    pub mean_return: f32,
    /// Mean critic value on imagined steps 0..H-1 (before this update).
    pub mean_value: f32,
    /// Mean predicted reward on imagined steps 1..H.
    pub mean_reward: f32,
    /// Mean continue probability on imagined steps 1..H.
    pub mean_cont: f32,
    /// Gradient norms before clipping.
    pub actor_grad_norm: f32,
    pub critic_grad_norm: f32,
    /// Root mean square of the actor's pre-squash mean on the start states (before this
    /// update): near 5 the policy is saturated and its gradient vanishes.
    pub actor_mean_rms: f32,
    /// Mean of the actor's std on the start states (5 at initialisation).
    pub actor_std: f32,
}

/// Actor, critic, their settings and the update counter.
pub struct Behaviour {
    pub cfg: BehaviourConfig,
    pub actor: Actor,
    pub critic: Critic,
    /// The run's seed (the world model's `Config::seed`).
    pub seed: u64,
    /// Behaviour updates done.
    pub updates: u64,
}

fn splitmix64(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// Salts of the agent's random streams (weights, imagination noise).
const SALT_WEIGHTS: u64 = 0xA9E7_0000_0000_0001;
const SALT_NOISE: u64 = 0xA9E7_0000_0000_0002;

/// `mean(x)` of a plain tensor as a `[1]` tensor (recorded on a no-grad tape).
fn mean_of(x: &Tensor) -> Result<Tensor> {
    let nt = Tape::no_grad(x.gpu());
    let c = nt.constant(x);
    Ok(nt.value(ops::mean_all(&nt, c)?))
}

/// Rows `[from, from + rows)` of a `[R, C]`-viewed tensor, as a new `[rows, C]` tensor (one
/// buffer copy, no dispatch).
fn rows_of(x: &Tensor, cols: usize, from: usize, rows: usize) -> Result<Tensor> {
    let out = Tensor::empty(x.gpu(), &[rows, cols])?;
    x.gpu()
        .copy(x.buf(), from * cols, out.buf(), 0, rows * cols);
    Ok(out)
}

impl Behaviour {
    /// Actor and critic for the world model's configuration `cfg` (weights seeded by
    /// `cfg.seed`, independently of the world model's).
    pub fn new(gpu: &Gpu, cfg: &Config, bcfg: BehaviourConfig) -> Result<Behaviour> {
        cfg.validate()?;
        bcfg.validate()?;
        let mut rng = rand::rngs::StdRng::seed_from_u64(splitmix64(cfg.seed ^ SALT_WEIGHTS));
        let clip = bcfg.grad_clip as f64;
        let actor = Actor::new(gpu, cfg, bcfg.actor_lr as f64, clip, &mut rng)?;
        let critic = Critic::new(gpu, cfg, bcfg.critic_lr as f64, clip, &mut rng)?;
        Ok(Behaviour {
            cfg: bcfg,
            actor,
            critic,
            seed: cfg.seed,
            updates: 0,
        })
    }

    /// The Philox key of update `update`'s imagination noise.
    pub fn noise_seed(&self, update: u64) -> u64 {
        splitmix64(splitmix64(self.seed ^ SALT_NOISE) ^ update)
    }

    /// Record the actor's objective on `t`: imagination from `starts` with noise key `seed`,
    /// heads, lambda-returns and `-mean(weight_t R_t)`. The weights are computed from the
    /// imagined continue logits, or taken from `fixed_weights` `[H, N]` (for finite-difference
    /// checks of the gradient, which treats them as constants).
    pub fn actor_objective(
        &self,
        t: &Tape,
        wm: &WorldModel,
        starts: &Starts,
        seed: u64,
        fixed_weights: Option<&Tensor>,
    ) -> Result<ActorObjective> {
        self.actor_objective_fixed(
            t,
            wm,
            starts,
            &ImagineNoise::Seeded(seed),
            fixed_weights,
            None,
        )
    }

    /// [`Behaviour::actor_objective`] with the actor's inputs also fixed (`[N, feat]` per step,
    /// see [`imagine_with_actor_inputs`]): what finite differences of the actor's parameters
    /// must hold constant to see the stop-gradient on its input; and the noise given either way.
    pub fn actor_objective_fixed(
        &self,
        t: &Tape,
        wm: &WorldModel,
        starts: &Starts,
        noise: &ImagineNoise,
        fixed_weights: Option<&Tensor>,
        fixed_actor_inputs: Option<&[Tensor]>,
    ) -> Result<ActorObjective> {
        let (h, n) = (self.cfg.horizon, starts.len());
        let wm_p = wm.params.bind_frozen(t);
        let critic_p = self.critic.bind_frozen(t);
        let actor_p = self.actor.bind(t);
        let policy = Policy {
            actor: &self.actor,
            params: &actor_p,
            deterministic: false,
        };
        let (sh, ss) = (t.constant(&starts.h), t.constant(&starts.s));
        let im =
            imagine_with_actor_inputs(t, wm, &wm_p, policy, sh, ss, h, noise, fixed_actor_inputs)?;
        let (values, critic_forward) = self.critic.net.forward_keep(t, &critic_p, im.feat_all)?;
        let values = ops::reshape(t, values, &[h + 1, n])?;
        let gammas = ops::scale(t, im.conts, self.cfg.gamma, 0.0)?;
        let returns = lambda_return(t, im.rewards, gammas, values, self.cfg.lambda)?;
        let weights = match fixed_weights {
            Some(w) if w.shape() == [h, n] => w.clone(),
            Some(w) => {
                return shape_err(
                    "actor_objective",
                    format!("fixed weights {:?} for [{h}, {n}]", w.shape()),
                )
            }
            None => discount_weights(&t.value(im.cont_logits), self.cfg.gamma)?,
        };
        let wr = ops::mul(t, t.constant(&weights), returns)?;
        let loss = ops::scale(t, ops::mean_all(t, wr)?, -1.0, 0.0)?;
        Ok(ActorObjective {
            actor_params: actor_p,
            imagined: im,
            values,
            returns,
            weights,
            loss,
            critic_forward,
        })
    }

    /// Record the critic's objective on `t`: `0.5 mean(weight_t (v(feat_t) - R_t)^2)` for
    /// `feats [H N, stoch + deter]` (time-major, steps 0..H-1), `targets` and `weights` `[H, N]`,
    /// all constants.
    pub fn critic_objective(
        &self,
        t: &Tape,
        feats: &Tensor,
        targets: &Tensor,
        weights: &Tensor,
    ) -> Result<CriticObjective> {
        self.critic_objective_from(t, feats, None, targets, weights)
    }

    /// [`Behaviour::critic_objective`] with the critic's forward pass taken from `forward`
    /// (the actor objective's [`ActorObjective::critic_forward`], whose first H N rows are
    /// `feats` under the same weights) instead of computed again: the same values and
    /// gradients, one MLP forward fewer.
    pub fn critic_objective_from(
        &self,
        t: &Tape,
        feats: &Tensor,
        forward: Option<&MlpForward>,
        targets: &Tensor,
        weights: &Tensor,
    ) -> Result<CriticObjective> {
        let ts = targets.shape().to_vec();
        if ts.len() != 2 || weights.shape() != ts.as_slice() || feats.rows() != ts[0] * ts[1] {
            return shape_err(
                "critic_objective",
                format!(
                    "feats {:?}, targets {ts:?}, weights {:?}",
                    feats.shape(),
                    weights.shape()
                ),
            );
        }
        let critic_p = self.critic.bind(t);
        let x = t.constant(feats);
        let v = match forward {
            Some(f) => self.critic.net.forward_from(t, &critic_p, x, f)?,
            None => self.critic.forward(t, &critic_p, x)?,
        };
        let nll = mse_nll(t, v, t.constant(targets), 1)?; // 0.5 (R - v)^2 per row, [H N]
        let weighted = ops::mul(t, t.constant(&weights.reshape(&[ts[0] * ts[1]])?), nll)?;
        let loss = ops::mean_all(t, weighted)?;
        Ok(CriticObjective {
            critic_params: critic_p,
            values: ops::reshape(t, v, &ts)?,
            loss,
        })
    }

    /// One behaviour update from `starts`: records imagination, both losses, both backward
    /// passes and both Adam steps, then reads the metrics back (one submit). The world model
    /// is not changed.
    pub fn update(&mut self, wm: &WorldModel, starts: &Starts) -> Result<BehaviourMetrics> {
        self.record_update(wm, starts)?.read()
    }

    /// Record an update without submitting it: the first half of [`Behaviour::update`], for
    /// benchmarks that time the host's recording apart from the device's work.
    /// [`PendingUpdate::read`] submits and reads the metrics.
    pub fn record_update(&mut self, wm: &WorldModel, starts: &Starts) -> Result<PendingUpdate> {
        let gpu = wm.gpu().clone();
        let (h, n) = (self.cfg.horizon, starts.len());
        let seed = self.noise_seed(self.updates);

        // 1. The actor.
        let ta = Tape::new(&gpu);
        let obj = self.actor_objective(&ta, wm, starts, seed, None)?;
        let returns = ta.value(obj.returns);
        let feat_all = ta.value(obj.imagined.feat_all);
        let rewards = ta.value(obj.imagined.rewards);
        let conts = ta.value(obj.imagined.conts);
        let actor_loss = ta.value(obj.loss);
        let first_mean = obj.imagined.first_mean.clone();
        let first_std = obj.imagined.first_std.clone();
        let weights = obj.weights.clone();
        let critic_forward = obj.critic_forward.clone();
        // The critic's inputs: the features of steps 0..H-1 (a constant on its tape, so
        // detached), viewed rather than copied: the critic's node reuses the actor tape's pass
        // on them, which reads only their shape.
        let feats = feat_all.leading_rows(h * n)?;
        drop(feat_all);
        let actor_p = obj.actor_params;
        let grads = ta.backward(obj.loss)?;
        self.actor.opt.step(&actor_p, &grads)?;
        drop(grads);

        // 2. The critic.
        let tb = Tape::new(&gpu);
        let cobj =
            self.critic_objective_from(&tb, &feats, Some(&critic_forward), &returns, &weights)?;
        drop(critic_forward);
        let critic_loss = tb.value(cobj.loss);
        let mean_value = mean_of(&tb.value(cobj.values))?;
        let critic_p = cobj.critic_params;
        let grads = tb.backward(cobj.loss)?;
        self.critic.opt.step(&critic_p, &grads)?;
        drop(grads);

        // 3. Metrics, one readback.
        let mean_return = mean_of(&returns)?;
        let mean_reward = mean_of(&rows_of(&rewards, n, 1, h)?)?;
        let mean_cont = mean_of(&rows_of(&conts, n, 1, h)?)?;
        let mean_sq = {
            let nt = Tape::no_grad(&gpu);
            let m = nt.constant(&first_mean);
            nt.value(ops::mul(&nt, m, m)?)
        };
        let mean_sq = mean_of(&mean_sq)?;
        // The objective always samples; a deterministic policy would have std 0.
        let mean_std = match &first_std {
            Some(s) => mean_of(s)?,
            None => Tensor::zeros(&gpu, &[1])?,
        };
        let an = self
            .actor
            .opt
            .adam
            .last_norm()
            .cloned()
            .unwrap_or_else(|| actor_loss.clone());
        let cn = self
            .critic
            .opt
            .adam
            .last_norm()
            .cloned()
            .unwrap_or_else(|| critic_loss.clone());
        self.updates += 1;
        Ok(PendingUpdate {
            update: self.updates,
            scalars: [
                actor_loss,
                critic_loss,
                mean_return,
                mean_value,
                mean_reward,
                mean_cont,
                an,
                cn,
                mean_sq,
                mean_std,
            ],
        })
    }
}

/// A recorded behaviour update whose metrics are not read yet (see
/// [`Behaviour::record_update`]).
pub struct PendingUpdate {
    update: u64,
    /// actor_loss, critic_loss, mean_return, mean_value, mean_reward, mean_cont, the two
    /// gradient norms, the mean squared actor mean and the mean actor std: `[1]` tensors.
    scalars: [Tensor; 10],
}

impl PendingUpdate {
    /// Submit what [`Behaviour::record_update`] recorded (if not yet submitted) and read back
    /// its metrics.
    pub fn read(self) -> Result<BehaviourMetrics> {
        let s = &self.scalars;
        let gpu = s[0].gpu().clone();
        let bufs: Vec<_> = s.iter().map(|t| t.buf()).collect();
        let vals = gpu.read_many(&bufs)?;
        Ok(BehaviourMetrics {
            update: self.update,
            actor_loss: vals[0][0],
            critic_loss: vals[1][0],
            mean_return: vals[2][0],
            mean_value: vals[3][0],
            mean_reward: vals[4][0],
            mean_cont: vals[5][0],
            actor_grad_norm: vals[6][0],
            critic_grad_norm: vals[7][0],
            actor_mean_rms: vals[8][0].max(0.0).sqrt(),
            actor_std: vals[9][0],
        })
    }
}

/// [`Behaviour::update`] as a function: one behaviour update of `behaviour` from `starts`
/// with the world model `wm` frozen.
pub fn behaviour_update(
    behaviour: &mut Behaviour,
    wm: &WorldModel,
    starts: &Starts,
) -> Result<BehaviourMetrics> {
    behaviour.update(wm, starts)
}
