//! Cart-pole swing-up, after dm_control's `cartpole-swingup`.
//!
//! Physical constants follow dm_control's `cartpole.xml`: cart 1 kg on a frictionless rail
//! limited to `|x| <= 1.8` m, a uniform 1 m pole of 0.1 kg hinged on the cart, gravity 9.81,
//! force `10 u` N with `u` in `[-1, 1]`.
//!
//! - State `(x, x_dot, theta, theta_dot)`, `theta = 0` upright, `pi` hanging down, positive
//!   leaning to `+x`. Exact rigid-body equations of a cart with a uniform rod, integrated with
//!   RK4 at 0.01 s per physics step (dm_control's timestep and integrator). At a rail end the cart
//!   stops inelastically and the pole receives the matching impulse
//!   (`theta_dot += 3 cos(theta) x_dot / (4 l)`, conserving the pole's generalized momentum),
//!   standing in for MuJoCo's joint limit.
//! - Start (dm_control's swing-up): `x = 0.01 N`, `theta = pi + 0.01 N`, velocities `0.01 N`.
//! - Reward per physics step, dm_control's smooth swing-up reward, in `[0, 1]`:
//!   `upright * centered * small_control * small_velocity` with
//!   `upright = (cos(theta) + 1) / 2`,
//!   `centered = (1 + tolerance(x, 0, margin 2, gaussian)) / 2`,
//!   `small_control = (4 + tolerance(u, 0, margin 1, quadratic, 0)) / 5`,
//!   `small_velocity = (1 + tolerance(theta_dot, 0, margin 5, gaussian)) / 2`.
//!   Hanging still gives 0; balanced, centred, still and unforced gives 1.
//! - Time limit: 1000 physics steps (10 s). Default action repeat 4 (25 Hz control, like the
//!   pendulum), so an episode is 250 actions. (PlaNet used 8, DreamerV1 2; 4 balances
//!   imagination-horizon reach against control authority.)

use rand::rngs::StdRng;
use rand::SeedableRng;

use super::raster::Canvas;
use super::rewards::{tolerance, Sigmoid};
use super::{check_repeat, checked_action, rk4, standard_normal, Env, EnvError, Observation, Step};

/// Physics step in seconds.
pub const PHYSICS_DT: f64 = 0.01;
/// Default time limit in physics steps (10 s).
pub const DEFAULT_TIME_LIMIT: usize = 1000;
/// Default action repeat (25 Hz control, 250 actions per episode).
pub const DEFAULT_ACTION_REPEAT: usize = 4;
/// Rail half-length in metres: the cart's position is limited to `[-1.8, 1.8]`.
pub const RAIL_LIMIT: f64 = 1.8;

const NAME: &str = "cartpole";
const GRAVITY: f64 = 9.81;
const CART_MASS: f64 = 1.0;
const POLE_MASS: f64 = 0.1;
/// Half the pole's length (pivot to centre of mass).
const HALF_LENGTH: f64 = 0.5;
const FORCE_SCALE: f64 = 10.0;

/// The cart-pole swing-up task. See the module docs.
#[derive(Clone, Debug)]
pub struct CartPole {
    /// `[x, x_dot, theta, theta_dot]`.
    state: [f64; 4],
    action_repeat: usize,
    time_limit: usize,
    steps: usize,
    started: bool,
}

impl CartPole {
    /// A cart-pole with the given action repeat and the default 10 s time limit.
    pub fn new(action_repeat: usize) -> Result<Self, EnvError> {
        check_repeat(NAME, action_repeat, DEFAULT_TIME_LIMIT)?;
        Ok(CartPole {
            state: [0.0, 0.0, std::f64::consts::PI, 0.0],
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

    /// `[x, x_dot, theta, theta_dot]` (metres, m/s, radians from upright, rad/s).
    pub fn state(&self) -> [f64; 4] {
        self.state
    }

    /// Places the system in a given state (the cart clamped to the rail; non-finite values
    /// become 0) and starts a fresh episode from it.
    pub fn set_state(&mut self, state: [f64; 4]) {
        let mut s = state.map(|v| if v.is_finite() { v } else { 0.0 });
        s[0] = s[0].clamp(-RAIL_LIMIT, RAIL_LIMIT);
        s[2] = super::wrap_angle(s[2]);
        self.state = s;
        self.steps = 0;
        self.started = true;
    }

    /// The per-physics-step reward for a state and control `u` (see the module docs).
    pub fn reward_at(state: [f64; 4], u: f64) -> f64 {
        let [x, _, theta, theta_dot] = state;
        let upright = (theta.cos() + 1.0) / 2.0;
        let centered = (1.0 + tolerance(x, 0.0, 0.0, 2.0, Sigmoid::Gaussian, 0.1)) / 2.0;
        let small_control = (4.0 + tolerance(u, 0.0, 0.0, 1.0, Sigmoid::Quadratic, 0.0)) / 5.0;
        let small_velocity =
            (1.0 + tolerance(theta_dot, 0.0, 0.0, 5.0, Sigmoid::Gaussian, 0.1)) / 2.0;
        upright * centered * small_control * small_velocity
    }

    fn physics_step(&mut self, force: f64) {
        let total = CART_MASS + POLE_MASS;
        let ml = POLE_MASS * HALF_LENGTH;
        let mut s = rk4(self.state, PHYSICS_DT, |s| {
            let [_, x_dot, theta, theta_dot] = *s;
            let (sin, cos) = theta.sin_cos();
            let temp = (force + ml * theta_dot * theta_dot * sin) / total;
            let theta_acc = (GRAVITY * sin - cos * temp)
                / (HALF_LENGTH * (4.0 / 3.0 - POLE_MASS * cos * cos / total));
            let x_acc = temp - ml * theta_acc * cos / total;
            [x_dot, x_acc, theta_dot, theta_acc]
        });
        // Rail ends: inelastic stop of the cart, with the impulse's effect on the pole.
        if s[0].abs() > RAIL_LIMIT {
            s[0] = s[0].clamp(-RAIL_LIMIT, RAIL_LIMIT);
            if s[0] * s[1] > 0.0 {
                s[3] += 3.0 * s[2].cos() * s[1] / (4.0 * HALF_LENGTH);
                s[1] = 0.0;
            }
        }
        s[2] = super::wrap_angle(s[2]);
        self.state = s;
    }
}

impl Env for CartPole {
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
        let mut noise = || 0.01 * standard_normal(&mut rng);
        let state = [noise(), noise(), std::f64::consts::PI + noise(), noise()];
        self.set_state(state);
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
            self.physics_step(FORCE_SCALE * u);
            reward += Self::reward_at(self.state, u);
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
        const RAIL: [u8; 3] = [95, 95, 108];
        const CART: [u8; 3] = [80, 140, 220];
        const POLE: [u8; 3] = [230, 170, 80];
        const PIVOT: [u8; 3] = [235, 235, 235];
        // 14 px per metre: the whole rail (+-1.8 m) plus the cart fits in the 64 px width; the
        // 1 m pole spans 14 px.
        let scale = 14.0_f32;
        let (cx, rail_y) = (32.0_f32, 36.0_f32);
        let [x, _, theta, _] = self.state;
        let to_px = |m: f64| cx + scale * m as f32;
        let mut canvas = Canvas::new(BACKGROUND);
        let cart_half_w = 0.25_f32;
        let rail_end = RAIL_LIMIT as f32 + cart_half_w;
        canvas.fill_capsule(
            to_px(-rail_end as f64),
            rail_y,
            to_px(rail_end as f64),
            rail_y,
            0.6,
            RAIL,
        );
        // End stops and a centre tick, so position relative to the rail is visible.
        for end in [-rail_end, rail_end] {
            let ex = to_px(end as f64);
            canvas.fill_rect(ex - 0.75, rail_y - 3.0, ex + 0.75, rail_y + 3.0, RAIL);
        }
        canvas.fill_rect(cx - 0.5, rail_y + 1.0, cx + 0.5, rail_y + 3.0, RAIL);
        let px = to_px(x);
        canvas.fill_rect(
            px - scale * cart_half_w,
            rail_y - 2.0,
            px + scale * cart_half_w,
            rail_y + 2.0,
            CART,
        );
        let (s, c) = (theta as f32).sin_cos();
        let pole_len = scale * (2.0 * HALF_LENGTH) as f32;
        canvas.fill_capsule(
            px,
            rail_y,
            px + pole_len * s,
            rail_y - pole_len * c,
            1.2,
            POLE,
        );
        canvas.fill_circle(px, rail_y, 1.2, PIVOT);
        canvas.into_bytes()
    }
}
