//! Bring your own environment: implement [`Env`] (64x64 RGB observations, continuous actions
//! in [-1, 1]) and run a short Dreamer loop on it — random prefill, then rounds of world-model
//! and actor-critic training and an episode collected by the actor.
//!
//! ```sh
//! cargo run --release --example your_own_env -- 3    # rounds (default 2)
//! ```

use rssm::agent::{act, AgentState, Behaviour, BehaviourConfig, Starts};
use rssm::data::{EpisodeBuilder, ReplayBuffer, FRAME_LEN};
use rssm::envs::collect::{collect_episode, RandomPolicy};
use rssm::envs::{Env, EnvError, Observation, Step};
use rssm::gpu::{Gpu, GpuOptions};
use rssm::model::{Config, DeviceBatch, Trainer};

/// A dot on a line; the action moves it; the reward is being near the middle.
struct Dot {
    x: f32,
    t: usize,
}

impl Env for Dot {
    fn name(&self) -> &'static str {
        "dot"
    }
    fn action_dim(&self) -> usize {
        1
    }
    fn action_repeat(&self) -> usize {
        1
    }
    fn max_steps(&self) -> usize {
        40
    }
    fn reset(&mut self, seed: u64) -> Observation {
        self.x = (seed % 7) as f32 / 7.0 * 2.0 - 1.0;
        self.t = 0;
        self.render()
    }
    fn step(&mut self, action: &[f32]) -> Result<Step, EnvError> {
        let a = match action {
            [a] if a.is_finite() => a.clamp(-1.0, 1.0),
            [a] => {
                return Err(EnvError::NonFiniteAction {
                    env: "dot",
                    index: 0,
                    value: *a,
                })
            }
            _ => {
                return Err(EnvError::ActionDim {
                    env: "dot",
                    expected: 1,
                    got: action.len(),
                })
            }
        };
        self.x = (self.x + 0.2 * a).clamp(-1.0, 1.0);
        self.t += 1;
        Ok(Step {
            obs: self.render(),
            reward: 1.0 - self.x.abs(),
            done: self.t >= self.max_steps(),
            terminal: false,
        })
    }
    fn render(&self) -> Observation {
        let mut frame = vec![0u8; FRAME_LEN];
        let cx = ((self.x + 1.0) * 0.5 * 56.0) as usize;
        for y in 28..36 {
            for x in cx..cx + 8 {
                frame[(y * 64 + x) * 3..(y * 64 + x) * 3 + 3].fill(255);
            }
        }
        frame
    }
}

fn main() -> rssm::Result<()> {
    let rounds: usize = std::env::args()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(2);
    let gpu = Gpu::new(&GpuOptions::default())?;
    let mut env = Dot { x: 0.0, t: 0 };
    let cfg = Config {
        action_dim: env.action_dim(),
        batch: 4,
        seq_len: 10,
        ..Config::small()
    };
    let mut trainer = Trainer::new(&gpu, &cfg)?;
    let mut behaviour = Behaviour::new(&gpu, &cfg, BehaviourConfig::default())?;
    let mut replay = ReplayBuffer::new(100_000)?;
    let mut random = RandomPolicy::new(env.action_dim(), 0);
    for seed in 0..3 {
        replay.push(collect_episode(&mut env, &mut random, seed)?)?;
    }
    for round in 0..rounds {
        // Learn the world, then behaviour in imagination from the posterior states.
        for _ in 0..10 {
            let seed = trainer.step;
            let batch = replay.sample_with_seed(cfg.batch, cfg.seq_len, seed)?;
            let m = trainer.train_step(&DeviceBatch::upload(&gpu, &batch)?)?;
            let (h, s) = trainer.last_posterior.clone().expect("set by train_step");
            let b = behaviour.update(&trainer.model, &Starts::new(&h, &s)?)?;
            if trainer.step % 5 == 0 {
                println!(
                    "round {round} step {}: world-model loss {:.1}, critic {:.3}, imagined return {:.2}",
                    m.step, m.loss, b.critic_loss, b.mean_return
                );
            }
        }
        // Act: the actor's mode, observing each frame.
        let seed = 100 + round as u64;
        let mut obs = env.reset(seed);
        let mut state = AgentState::new(&gpu, &trainer.model)?;
        let mut episode = EpisodeBuilder::new(&obs, env.action_dim())?;
        loop {
            let a = act(
                &trainer.model,
                &behaviour.actor,
                &mut state,
                &obs,
                false,
                0.0,
                seed,
            )?;
            let step = env.step(&a)?;
            episode.push(&a, step.reward, &step.obs, step.terminal)?;
            obs = step.obs;
            if step.done {
                break;
            }
        }
        let episode = episode.finish();
        println!(
            "round {round}: the actor's return {:.1}",
            episode.total_reward()
        );
        replay.push(episode)?;
    }
    Ok(())
}
