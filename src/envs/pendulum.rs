//! Pendulum swing-up, after dm_control's `pendulum-swingup`.
//!
//! A point mass of 1 kg on a massless 0.5 m pole (plus the 5 cm bob's own inertia), hinge
//! damping 0.1, gravity 9.81, torque `u` in `[-1, 1]` N m. Gravity's torque reaches 4.9 N m,
//! so the pendulum cannot be lifted directly: the agent has to pump energy by swinging.
//!
//! - State: angle `theta` (0 = upright, pi = hanging down, positive to the right on screen) and
//!   angular velocity `omega`. Dynamics `I theta'' = m g l sin(theta) - b omega + u`,
//!   integrated with RK4 at 0.02 s per physics step (dm_control's timestep).
//! - Start: hanging down with small noise, `theta = pi + 0.1 N(0,1)`, `omega = 0.1 N(0,1)`
//!   (dm_control starts at a uniformly random angle; starting at the bottom makes this a true
//!   swing-up task).
//! - Reward per physics step: `tolerance(cos(theta), bounds = [cos 30 deg, 1],
//!   margin = 1 + cos 30 deg, linear, value_at_margin = 0)`: exactly dm_control's reward
//!   (1 within 30 degrees of upright) inside the cone, plus a fall-off outside it that is linear
//!   in the bob's height, from 0.54 at horizontal to 0 hanging straight down, so progress is
//!   visible before the first successful swing-up. (A Gaussian fall-off in `cos(theta)` is
//!   nearly flat low down: 0.01 to 0.04 across every swing a random policy makes, too little
//!   for a learned reward model to tell apart, and imagined returns carry no signal.)
//! - Time limit: 1000 physics steps (20 s). Default action repeat 2 (25 Hz control), so an
//!   episode is 500 actions, as in DreamerV1's dm_control setup. (`rssm dreamer` runs it at 4:
//!   its 15 imagined steps then span most of a swing.)

use rand::rngs::StdRng;
use rand::SeedableRng;

use super::raster::Canvas;
use super::rewards::{tolerance, Sigmoid};
use super::{check_repeat, checked_action, rk4, standard_normal, Env, EnvError, Observation, Step};

/// Physics step in seconds.
pub const PHYSICS_DT: f64 = 0.02;
/// Default time limit in physics steps (20 s).
pub const DEFAULT_TIME_LIMIT: usize = 1000;
/// Default action repeat (25 Hz control, 500 actions per episode).
pub const DEFAULT_ACTION_REPEAT: usize = 2;

const NAME: &str = "pendulum";
const GRAVITY: f64 = 9.81;
const MASS: f64 = 1.0;
const LENGTH: f64 = 0.5;
const BOB_RADIUS: f64 = 0.05;
const DAMPING: f64 = 0.1;
const MAX_TORQUE: f64 = 1.0;
/// cos(30 degrees): the edge of dm_control's "upright" cone.
const COS_30: f64 = 0.866_025_403_784_438_6;

/// The pendulum swing-up task. See the module docs.
#[derive(Clone, Debug)]
pub struct Pendulum {
    theta: f64,
    omega: f64,
    action_repeat: usize,
    time_limit: usize,
    steps: usize,
    started: bool,
}

impl Pendulum {
    /// A pendulum with the given action repeat and the default 20 s time limit.
    pub fn new(action_repeat: usize) -> Result<Self, EnvError> {
        check_repeat(NAME, action_repeat, DEFAULT_TIME_LIMIT)?;
        Ok(Pendulum {
            theta: std::f64::consts::PI,
            omega: 0.0,
            action_repeat,
            time_limit: DEFAULT_TIME_LIMIT,
            steps: 0,
            started: false,
        })
    }

    /// Replaces the time limit (in physics steps), e.g. for short test episodes.
    pub fn with_time_limit(mut self, physics_steps: usize) -> Result<Self, EnvError> {
        check_repeat(NAME, self.action_repeat, physics_steps)?;
        self.time_limit = physics_steps;
        Ok(self)
    }

    /// `(theta, omega)`: angle from upright (radians) and angular velocity (rad/s).
    pub fn state(&self) -> (f64, f64) {
        (self.theta, self.omega)
    }

    /// Places the pendulum in a given state and starts a fresh episode from it (for tests,
    /// demonstrations and evaluation from chosen states).
    pub fn set_state(&mut self, theta: f64, omega: f64) {
        self.theta = if theta.is_finite() { theta } else { 0.0 };
        self.omega = if omega.is_finite() { omega } else { 0.0 };
        self.steps = 0;
        self.started = true;
    }

    /// The per-physics-step reward of a pendulum at angle `theta` (see the module docs).
    pub fn reward_at(theta: f64) -> f64 {
        tolerance(theta.cos(), COS_30, 1.0, 1.0 + COS_30, Sigmoid::Linear, 0.0)
    }

    fn physics_step(&mut self, torque: f64) {
        let inertia = MASS * LENGTH * LENGTH + 0.4 * MASS * BOB_RADIUS * BOB_RADIUS;
        let [theta, omega] = rk4([self.theta, self.omega], PHYSICS_DT, |s| {
            [
                s[1],
                (MASS * GRAVITY * LENGTH * s[0].sin() - DAMPING * s[1] + torque) / inertia,
            ]
        });
        // Keep the angle bounded so long episodes do not lose precision.
        self.theta = super::wrap_angle(theta);
        self.omega = omega;
    }
}

impl Env for Pendulum {
    fn name(&self) -> &'static str {
        NAME
    }

    fn action_dim(&self) -> usize {
        1
    }

    fn action_repeat(&self) -> usize {
        self.action_repeat
    }

    fn max_steps(&self) -> usize {
        (self.time_limit / self.action_repeat).max(1)
    }

    fn reset(&mut self, seed: u64) -> Observation {
        let mut rng = StdRng::seed_from_u64(seed);
        let theta = std::f64::consts::PI + 0.1 * standard_normal(&mut rng);
        let omega = 0.1 * standard_normal(&mut rng);
        self.set_state(super::wrap_angle(theta), omega);
        self.render()
    }

    fn step(&mut self, action: &[f32]) -> Result<Step, EnvError> {
        if !self.started {
            return Err(EnvError::NotReset { env: NAME });
        }
        if self.steps >= self.max_steps() {
            return Err(EnvError::EpisodeOver { env: NAME });
        }
        let [u] = checked_action::<1>(NAME, action)?;
        let mut reward = 0.0;
        for _ in 0..self.action_repeat {
            self.physics_step(u * MAX_TORQUE);
            reward += Self::reward_at(self.theta);
        }
        self.steps += 1;
        Ok(Step {
            obs: self.render(),
            reward: reward as f32,
            done: self.steps >= self.max_steps(),
            terminal: false,
        })
    }

    fn render(&self) -> Observation {
        const BACKGROUND: [u8; 3] = [22, 26, 38];
        const POLE: [u8; 3] = [205, 175, 115];
        const BOB: [u8; 3] = [230, 90, 60];
        const PIVOT: [u8; 3] = [150, 150, 160];
        // 0.5 m of pole spans 24 px from the centre, leaving room for the bob at any angle. The
        // pole and bob are drawn thick: a world model learns what covers many pixels first.
        let scale = 48.0_f32;
        let (cx, cy) = (32.0_f32, 32.0_f32);
        let (s, c) = (self.theta as f32).sin_cos();
        let tip_x = cx + scale * LENGTH as f32 * s;
        let tip_y = cy - scale * LENGTH as f32 * c;
        let mut canvas = Canvas::new(BACKGROUND);
        canvas.fill_capsule(cx, cy, tip_x, tip_y, 3.0, POLE);
        canvas.fill_circle(cx, cy, 2.2, PIVOT);
        canvas.fill_circle(tip_x, tip_y, 6.0, BOB);
        canvas.into_bytes()
    }
}
