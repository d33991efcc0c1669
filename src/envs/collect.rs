//! Running a policy in an environment to record an [`Episode`].

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use super::{Env, EnvError};
use crate::data::{Episode, EpisodeBuilder};

/// Something that chooses actions from observations.
///
/// Closures `FnMut(&[u8]) -> Vec<f32>` are policies. Stateful policies (a recurrent agent)
/// override [`Policy::reset`], which is called at the start of every episode.
pub trait Policy {
    /// The action for observation `obs` (`[64, 64, 3]` `u8`, HWC). Components outside `[-1, 1]`
    /// are clipped before they are applied and recorded.
    fn act(&mut self, obs: &[u8]) -> Vec<f32>;

    /// Called before the first `act` of each episode. Does nothing by default.
    fn reset(&mut self) {}
}

impl<F: FnMut(&[u8]) -> Vec<f32>> Policy for F {
    fn act(&mut self, obs: &[u8]) -> Vec<f32> {
        self(obs)
    }
}

/// Uniform random actions in `[-1, 1]`, reproducible from a seed (the usual policy for the
/// first, exploratory episodes).
///
/// By default every step draws a fresh action. [`RandomPolicy::with_hold`] keeps each draw for
/// a random number of steps instead (geometric, mean `hold`): temporally correlated noise
/// that, unlike per-step noise, can pump energy into an oscillator and so shows the world
/// model states far from rest.
#[derive(Clone, Debug)]
pub struct RandomPolicy {
    rng: StdRng,
    action_dim: usize,
    /// Probability of drawing a fresh action at a step (1 / mean hold).
    redraw: f64,
    current: Option<Vec<f32>>,
}

impl RandomPolicy {
    /// A random policy for `action_dim` components, drawing from `StdRng::seed_from_u64(seed)`.
    pub fn new(action_dim: usize, seed: u64) -> Self {
        RandomPolicy {
            rng: StdRng::seed_from_u64(seed),
            action_dim,
            redraw: 1.0,
            current: None,
        }
    }

    /// Holds each action for a geometric number of steps with mean `hold` (values below 1
    /// mean 1: a fresh action every step).
    pub fn with_hold(mut self, hold: f64) -> Self {
        self.redraw = if hold.is_finite() && hold > 1.0 {
            1.0 / hold
        } else {
            1.0
        };
        self
    }
}

impl Policy for RandomPolicy {
    fn act(&mut self, _obs: &[u8]) -> Vec<f32> {
        let fresh = self.current.is_none() || self.redraw >= 1.0 || {
            let u: f64 = self.rng.random();
            u < self.redraw
        };
        if fresh {
            let a: Vec<f32> = (0..self.action_dim)
                .map(|_| self.rng.random_range(-1.0f32..=1.0))
                .collect();
            self.current = Some(a);
        }
        self.current.clone().unwrap_or_default()
    }

    fn reset(&mut self) {
        self.current = None;
    }
}

/// Resets `env` with `seed` and runs `policy` until the episode ends, returning the recorded
/// episode (`T = actions + 1` steps, see [`crate::data::episode`] for the conventions).
///
/// Actions are recorded as applied, i.e. clipped to `[-1, 1]`. A policy returning the wrong
/// number of components or a non-finite value is an error naming the problem.
pub fn collect_episode<E, P>(env: &mut E, policy: &mut P, seed: u64) -> Result<Episode, EnvError>
where
    E: Env + ?Sized,
    P: Policy + ?Sized,
{
    collect_episode_with_limit(env, policy, seed, None)
}

/// Like [`collect_episode`], but stops after at most `max_actions` actions if given. A run cut
/// short this way is truncated, not terminal: its last discount is 1.
pub fn collect_episode_with_limit<E, P>(
    env: &mut E,
    policy: &mut P,
    seed: u64,
    max_actions: Option<usize>,
) -> Result<Episode, EnvError>
where
    E: Env + ?Sized,
    P: Policy + ?Sized,
{
    let limit = max_actions.unwrap_or(usize::MAX).min(env.max_steps());
    let obs = env.reset(seed);
    policy.reset();
    let mut builder = EpisodeBuilder::new(&obs, env.action_dim())?;
    let mut obs = obs;
    for _ in 0..limit {
        let mut action = policy.act(&obs);
        for a in &mut action {
            // NaN passes through (clamp keeps it) and is rejected by the env with its index.
            *a = a.clamp(-1.0, 1.0);
        }
        let step = env.step(&action)?;
        builder.push(&action, step.reward, &step.obs, step.terminal)?;
        obs = step.obs;
        if step.done {
            break;
        }
    }
    Ok(builder.finish())
}
