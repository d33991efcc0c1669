//! Built-in environments (plain Rust, no GPU types).
//!
//! Two swing-up tasks modelled on the DeepMind Control Suite, rendered to 64x64 RGB frames by a
//! small anti-aliased software rasterizer ([`raster`]):
//!
//! | name | physics | default action repeat | episode | per-physics-step reward in [0, 1] |
//! | --- | --- | --- | --- | --- |
//! | `pendulum` (default) | dt 0.02 s, 1000 steps (20 s) | 2 (25 Hz control) | 500 actions | upright: 1 within 30 degrees of vertical, linear in height outside it, 0 hanging down |
//! | `cartpole` | dt 0.01 s, 1000 steps (10 s) | 4 (25 Hz control) | 250 actions | dm_control's smooth swing-up reward: upright x centred x small control x small velocity |
//!
//! Conventions shared by every [`Env`]:
//! - Observations are 64x64 RGB `u8` images, HWC (`[64, 64, 3]`), rendered from the state.
//! - Actions are continuous; each component is clipped to `[-1, 1]`. A wrong number of
//!   components or a NaN/infinite component is an error, not a panic.
//! - With action repeat `k`, one [`Env::step`] advances `k` physics steps with the same action
//!   and returns the **sum** of their rewards (so a step's reward lies in `[0, k]`, and an
//!   episode's return is comparable across repeats: at most 1000 for both tasks, as in
//!   dm_control). This is DreamerV1's `ActionRepeat` convention.
//! - The time limit is counted in physics steps; an episode lasts `time_limit / k` actions
//!   (rounded down, at least 1). Reaching it sets `done` but not `terminal`: a time-limit end is
//!   not a terminal state, so its discount stays 1.
//! - [`Env::reset`] with a seed fully determines the episode: the only randomness is the initial
//!   state noise, drawn from `StdRng::seed_from_u64(seed)`, and the dynamics are deterministic.

pub mod cartpole;
pub mod collect;
pub mod pendulum;
pub mod raster;
pub mod rewards;

use rand::Rng;

use crate::data::DataError;

pub use cartpole::CartPole;
pub use collect::{collect_episode, collect_episode_with_limit, Policy, RandomPolicy};
pub use pendulum::Pendulum;
pub use raster::Canvas;

/// An observation: a 64x64 RGB image, `[64, 64, 3]` `u8`, HWC order.
pub type Observation = Vec<u8>;

/// The result of one [`Env::step`].
#[derive(Clone, Debug, PartialEq)]
pub struct Step {
    /// The observation reached.
    pub obs: Observation,
    /// Reward summed over the repeated physics steps.
    pub reward: f32,
    /// The episode is over (time limit reached or terminal state); call [`Env::reset`].
    pub done: bool,
    /// The state reached is terminal (no future reward, discount 0). A time-limit end is
    /// `done` but not `terminal`. The built-in tasks never terminate.
    pub terminal: bool,
}

/// A pixel-observation, continuous-action environment.
pub trait Env: Send {
    /// The registry name, e.g. `"pendulum"`.
    fn name(&self) -> &'static str;
    /// Number of action components; each is clipped to `[-1, 1]`.
    fn action_dim(&self) -> usize;
    /// Physics steps per [`Env::step`].
    fn action_repeat(&self) -> usize;
    /// Number of [`Env::step`] calls before the time limit ends an episode.
    fn max_steps(&self) -> usize;
    /// Starts a new episode, deterministically from `seed`, and returns the first observation.
    fn reset(&mut self, seed: u64) -> Observation;
    /// Applies `action` for `action_repeat` physics steps.
    ///
    /// Errors (leaving the state unchanged) if the env was never reset, the episode is over,
    /// the action has the wrong length, or a component is NaN or infinite.
    fn step(&mut self, action: &[f32]) -> Result<Step, EnvError>;
    /// Renders the current state.
    fn render(&self) -> Observation;
}

impl<E: Env + ?Sized> Env for Box<E> {
    fn name(&self) -> &'static str {
        (**self).name()
    }
    fn action_dim(&self) -> usize {
        (**self).action_dim()
    }
    fn action_repeat(&self) -> usize {
        (**self).action_repeat()
    }
    fn max_steps(&self) -> usize {
        (**self).max_steps()
    }
    fn reset(&mut self, seed: u64) -> Observation {
        (**self).reset(seed)
    }
    fn step(&mut self, action: &[f32]) -> Result<Step, EnvError> {
        (**self).step(action)
    }
    fn render(&self) -> Observation {
        (**self).render()
    }
}

/// Names accepted by [`make_env`], default first.
pub const ENV_NAMES: &[&str] = &["pendulum", "cartpole"];

/// The environment used when none is named.
pub const DEFAULT_ENV: &str = "pendulum";

/// Everything that can go wrong in the environment layer.
#[derive(Debug, thiserror::Error)]
pub enum EnvError {
    /// [`make_env`] was given a name it does not know.
    #[error("unknown env '{name}', available: {}", ENV_NAMES.join(", "))]
    UnknownEnv {
        /// The name asked for.
        name: String,
    },
    /// A construction parameter is out of range.
    #[error("invalid configuration for env '{env}': {reason}")]
    InvalidConfig {
        /// The environment.
        env: &'static str,
        /// What is wrong.
        reason: String,
    },
    /// `step` before the first `reset`.
    #[error("env '{env}': step() called before reset()")]
    NotReset {
        /// The environment.
        env: &'static str,
    },
    /// `step` after the episode ended.
    #[error("env '{env}': step() called after the episode ended; call reset() first")]
    EpisodeOver {
        /// The environment.
        env: &'static str,
    },
    /// The action has the wrong number of components.
    #[error("env '{env}': action has {got} component(s), expected {expected}")]
    ActionDim {
        /// The environment.
        env: &'static str,
        /// The environment's action dimension.
        expected: usize,
        /// Components received.
        got: usize,
    },
    /// An action component is NaN or infinite.
    #[error("env '{env}': action[{index}] is {value} (not finite)")]
    NonFiniteAction {
        /// The environment.
        env: &'static str,
        /// Component index.
        index: usize,
        /// The value received.
        value: f32,
    },
    /// Recording the episode failed.
    #[error(transparent)]
    Data(#[from] DataError),
}

/// Builds a built-in environment by name (case-insensitive, surrounding spaces ignored).
///
/// `action_repeat` overrides the task's default (see the module docs); it must be at least 1
/// and at most the task's time limit in physics steps.
pub fn make_env(name: &str, action_repeat: Option<usize>) -> Result<Box<dyn Env>, EnvError> {
    match name.trim().to_ascii_lowercase().as_str() {
        "pendulum" => Ok(Box::new(Pendulum::new(
            action_repeat.unwrap_or(pendulum::DEFAULT_ACTION_REPEAT),
        )?)),
        "cartpole" => Ok(Box::new(CartPole::new(
            action_repeat.unwrap_or(cartpole::DEFAULT_ACTION_REPEAT),
        )?)),
        _ => Err(EnvError::UnknownEnv {
            name: name.to_string(),
        }),
    }
}

/// Checks an action's length and finiteness and returns it clipped to `[-1, 1]`.
pub(crate) fn checked_action<const N: usize>(
    env: &'static str,
    action: &[f32],
) -> Result<[f64; N], EnvError> {
    if action.len() != N {
        return Err(EnvError::ActionDim {
            env,
            expected: N,
            got: action.len(),
        });
    }
    let mut out = [0.0; N];
    for (i, (&a, o)) in action.iter().zip(out.iter_mut()).enumerate() {
        if !a.is_finite() {
            return Err(EnvError::NonFiniteAction {
                env,
                index: i,
                value: a,
            });
        }
        *o = f64::from(a.clamp(-1.0, 1.0));
    }
    Ok(out)
}

/// Validates an action repeat against a time limit (both in physics steps).
pub(crate) fn check_repeat(
    env: &'static str,
    action_repeat: usize,
    time_limit: usize,
) -> Result<(), EnvError> {
    if action_repeat == 0 || action_repeat > time_limit {
        return Err(EnvError::InvalidConfig {
            env,
            reason: format!(
                "action repeat must be between 1 and the time limit ({time_limit} physics steps), got {action_repeat}"
            ),
        });
    }
    Ok(())
}

/// A standard normal sample (Box-Muller), so initial-state noise needs no extra crate.
pub(crate) fn standard_normal<R: Rng + ?Sized>(rng: &mut R) -> f64 {
    // u1 in (0, 1] so the logarithm is finite.
    let u1: f64 = 1.0 - rng.random::<f64>();
    let u2: f64 = rng.random::<f64>();
    (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
}

/// Wraps an angle to `(-pi, pi]`.
pub(crate) fn wrap_angle(a: f64) -> f64 {
    let w = a.rem_euclid(std::f64::consts::TAU);
    if w > std::f64::consts::PI {
        w - std::f64::consts::TAU
    } else {
        w
    }
}

/// One classic fourth-order Runge-Kutta step of `dt` for `ds/dt = f(s)`.
pub(crate) fn rk4<const N: usize>(
    s: [f64; N],
    dt: f64,
    f: impl Fn(&[f64; N]) -> [f64; N],
) -> [f64; N] {
    let add = |a: &[f64; N], b: &[f64; N], k: f64| {
        let mut o = *a;
        for i in 0..N {
            o[i] += k * b[i];
        }
        o
    };
    let k1 = f(&s);
    let k2 = f(&add(&s, &k1, dt / 2.0));
    let k3 = f(&add(&s, &k2, dt / 2.0));
    let k4 = f(&add(&s, &k3, dt));
    let mut o = s;
    for i in 0..N {
        o[i] += dt / 6.0 * (k1[i] + 2.0 * k2[i] + 2.0 * k3[i] + k4[i]);
    }
    o
}
