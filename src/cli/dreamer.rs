//! `rssm dreamer`: the full Dreamer loop on a built-in environment — prefill with random
//! episodes, then alternate collecting with the current actor (with exploration noise) and
//! training the world model and the behaviour; periodic evaluation episodes; returns as JSON
//! lines and an SVG learning curve; checkpoints of every part; `--resume`.

use std::io::Write;
use std::path::{Path, PathBuf};

use rssm::agent::{act, AgentState, Behaviour, BehaviourConfig, Starts};
use rssm::data::episode::EpisodeBuilder;
use rssm::data::replay::ReplayBuffer;
use rssm::data::Episode;
use rssm::envs::collect::{collect_episode, RandomPolicy};
use rssm::envs::{make_env, Env};
use rssm::gpu::GpuOptions;
use rssm::model::{DeviceBatch, Trainer};
use rssm::{Error, Result};
use serde::{Deserialize, Serialize};

use crate::cli::common::{flag, open_gpu, ModelChoice};
use crate::cli::plot::{write_charts_svg, Chart, Series};

#[derive(clap::Args, Debug)]
pub struct DreamerArgs {
    #[command(flatten)]
    pub model: ModelChoice,
    /// Built-in environment.
    #[arg(long, default_value = "pendulum")]
    pub env: String,
    /// Physics steps per agent action [default: 4]. At 4 the 15 imagined steps span 1.2 s,
    /// most of a pendulum swing (at 2, under half of one), and the actor finds swinging after
    /// fewer agent steps.
    #[arg(long, value_parser = flag::at_least_one::<usize>())]
    pub action_repeat: Option<usize>,
    /// Environment steps (agent actions) to collect in total, prefill included.
    #[arg(long, default_value_t = 7_500, value_parser = flag::at_least_one::<usize>())]
    pub env_steps: usize,
    #[arg(long, default_value = "runs/dreamer")]
    pub logdir: PathBuf,
    /// Continue the run in the logdir.
    #[arg(long)]
    pub resume: bool,
    /// Random-policy episodes before training starts.
    #[arg(long, default_value_t = 5, value_parser = flag::at_least_one::<usize>())]
    pub prefill: usize,
    /// Mean number of steps the prefill policy holds each random action (1: a fresh uniform
    /// action every step). Held actions swing an oscillator far further than per-step noise.
    #[arg(long, default_value_t = 4.0, value_parser = flag::at_least_one_f64)]
    pub prefill_hold: f64,
    /// World-model + behaviour updates after each collected episode.
    #[arg(long, default_value_t = 100)]
    pub train_steps: usize,
    /// Collected episodes between evaluation episodes.
    #[arg(long, default_value_t = 1, value_parser = flag::at_least_one::<usize>())]
    pub eval_every: usize,
    /// Std of the Gaussian exploration noise added to the actor's sampled action.
    #[arg(long, default_value_t = 0.3, value_parser = flag::non_negative_f32)]
    pub expl_noise: f32,
    /// Cap on the actions of one episode (default: the environment's time limit).
    #[arg(long, value_parser = flag::at_least_one::<usize>())]
    pub episode_len: Option<usize>,
    /// Actor learning rate (the spec's 8e-5 by default).
    #[arg(long, value_parser = flag::positive_f32)]
    pub actor_lr: Option<f32>,
    /// Critic learning rate (the spec's 8e-5 by default).
    #[arg(long, value_parser = flag::positive_f32)]
    pub critic_lr: Option<f32>,
    /// World-model steps before the first behaviour update. An actor trained on an untrained
    /// reward model exploits its errors: in runs without the warm-up its mean saturated the
    /// tanh within 100 updates and never recovered.
    #[arg(long, default_value_t = 300)]
    pub behaviour_warmup: u64,
    /// Imagination horizon (the spec's 15 by default).
    #[arg(long, value_parser = flag::at_least_one::<usize>())]
    pub horizon: Option<usize>,
}

/// The loop's action repeat unless `--action-repeat` says otherwise.
const DREAMER_ACTION_REPEAT: usize = 4;
/// Seeds of evaluation episodes start here (the random baseline uses the first ones).
const EVAL_SEED: u64 = 0xE7A1;
/// Episodes of the uniform random policy behind the baseline return.
const RANDOM_BASELINE_EPISODES: usize = 5;

/// What a resumed run needs besides the checkpoints and the episodes.
#[derive(Default, Serialize, Deserialize)]
struct LoopState {
    env_steps: usize,
    episodes: usize,
    /// Mean return of the uniform random policy (a fresh action every step), the baseline.
    random_return: f64,
    /// Mean return of the prefill episodes.
    #[serde(default)]
    prefill_return: f64,
    /// The environment's action repeat (a resumed run must keep it).
    #[serde(default)]
    action_repeat: usize,
    /// Behaviour updates done (they select the imagination noise).
    #[serde(default)]
    behaviour_updates: u64,
    evals: Vec<(usize, f64)>,
}

fn run_episode(
    env: &mut dyn Env,
    trainer: &Trainer,
    beh: &Behaviour,
    seed: u64,
    explore: bool,
    expl_noise: f32,
    limit: Option<usize>,
) -> Result<Episode> {
    let gpu = trainer.flat.flat().gpu().clone();
    let obs = env.reset(seed);
    let mut state = AgentState::new(&gpu, &trainer.model)?;
    let mut ep = EpisodeBuilder::new(&obs, env.action_dim())?;
    let mut frame = obs;
    let max = limit.unwrap_or(usize::MAX).min(env.max_steps());
    for _ in 0..max {
        let a = act(
            &trainer.model,
            &beh.actor,
            &mut state,
            &frame,
            explore,
            expl_noise,
            seed,
        )?;
        let step = env.step(&a)?;
        ep.push(&a, step.reward, &step.obs, step.terminal)?;
        frame = step.obs;
        if step.done {
            break;
        }
    }
    Ok(ep.finish())
}

/// Evaluation return against environment steps, beside the uniform random policy's.
fn write_returns_chart(path: &Path, st: &LoopState) -> Result<()> {
    let evals: Vec<(f64, f64)> = st.evals.iter().map(|(s, r)| (*s as f64, *r)).collect();
    let baseline: Vec<(f64, f64)> = evals.iter().map(|(s, _)| (*s, st.random_return)).collect();
    let chart = Chart {
        caption: "Dreamer: evaluation return",
        x_label: "environment steps (agent actions)",
        y_label: "return per episode",
        series: vec![
            Series {
                name: "actor (mode, no noise)",
                points: evals,
            },
            Series {
                name: "uniform random policy",
                points: baseline,
            },
        ],
    };
    write_charts_svg(path, &[chart], 1)
}

fn save_episode(dir: &Path, index: usize, ep: &Episode) -> Result<()> {
    std::fs::create_dir_all(dir)?;
    rssm::data::save_npz(dir.join(format!("episode_{index:06}.npz")), ep)?;
    Ok(())
}

pub fn run(opts: &GpuOptions, args: DreamerArgs) -> Result<()> {
    let gpu = open_gpu(opts)?;
    let mut cfg = args.model.resolve(&gpu)?;
    let mut env = make_env(
        &args.env,
        Some(args.action_repeat.unwrap_or(DREAMER_ACTION_REPEAT)),
    )?;
    cfg.action_dim = env.action_dim();
    let mut trainer = Trainer::new(&gpu, &cfg)?;
    let defaults = BehaviourConfig::default();
    let beh_cfg = BehaviourConfig {
        actor_lr: args.actor_lr.unwrap_or(defaults.actor_lr),
        critic_lr: args.critic_lr.unwrap_or(defaults.critic_lr),
        horizon: args.horizon.unwrap_or(defaults.horizon),
        ..defaults
    };
    let mut beh = Behaviour::new(&gpu, &cfg, beh_cfg)?;
    let (ckpt, ep_dir) = (args.logdir.join("checkpoint"), args.logdir.join("episodes"));
    let state_path = args.logdir.join("dreamer_state.json");
    std::fs::create_dir_all(&args.logdir)?;
    let mut replay = ReplayBuffer::new(2_000_000)?;
    let mut st = LoopState::default();
    if args.resume {
        trainer.load(&ckpt)?;
        beh.actor.opt.load(&ckpt, "actor")?;
        beh.critic.opt.load(&ckpt, "critic")?;
        let text = std::fs::read_to_string(&state_path).map_err(|e| Error::File {
            path: state_path.clone(),
            msg: e.to_string(),
        })?;
        st = serde_json::from_str(&text).map_err(|e| Error::File {
            path: state_path.clone(),
            msg: e.to_string(),
        })?;
        if st.action_repeat != 0 && st.action_repeat != env.action_repeat() {
            if args.action_repeat.is_some() {
                return Err(Error::Invalid(format!(
                    "cannot resume with action repeat {}: the run in {} uses {}",
                    env.action_repeat(),
                    args.logdir.display(),
                    st.action_repeat
                )));
            }
            env = make_env(&args.env, Some(st.action_repeat))?;
        }
        beh.updates = st.behaviour_updates;
        let (eps, failed) = rssm::data::npz::load_dir(&ep_dir)?;
        if let Some(f) = failed.first() {
            return Err(Error::Invalid(format!("cannot resume: {}", f.1)));
        }
        replay.extend(eps)?;
        eprintln!(
            "resumed at {} env steps, {} episodes, world-model step {}",
            st.env_steps, st.episodes, trainer.step
        );
    } else {
        st.action_repeat = env.action_repeat();
        // The baseline: the uniform random policy, on the evaluation seeds.
        let mut uniform = RandomPolicy::new(env.action_dim(), cfg.seed ^ 0xBA5E);
        let mut total = 0.0;
        for i in 0..RANDOM_BASELINE_EPISODES {
            let ep = rssm::envs::collect::collect_episode_with_limit(
                env.as_mut(),
                &mut uniform,
                EVAL_SEED + i as u64,
                args.episode_len,
            )?;
            total += ep.total_reward();
        }
        st.random_return = total / RANDOM_BASELINE_EPISODES as f64;
        let mut policy = RandomPolicy::new(env.action_dim(), cfg.seed).with_hold(args.prefill_hold);
        let mut total = 0.0;
        for i in 0..args.prefill {
            let ep = collect_episode(
                env.as_mut(),
                &mut policy,
                cfg.seed.wrapping_mul(7919).wrapping_add(i as u64),
            )?;
            total += ep.total_reward();
            st.env_steps += ep.num_transitions();
            save_episode(&ep_dir, st.episodes, &ep)?;
            st.episodes += 1;
            replay.push(ep)?;
        }
        st.prefill_return = total / args.prefill.max(1) as f64;
        eprintln!(
            "prefill: {} random episodes (actions held {:.1} steps on average), mean return {:.1}; uniform random policy {:.1}",
            args.prefill, args.prefill_hold, st.prefill_return, st.random_return
        );
    }
    let mut log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(args.logdir.join("metrics.jsonl"))?;
    let start = std::time::Instant::now();
    while st.env_steps < args.env_steps {
        // Train on what we have.
        for _ in 0..args.train_steps {
            let host = replay.sample_with_seed(
                cfg.batch,
                cfg.seq_len,
                cfg.seed
                    .wrapping_add(trainer.step.wrapping_mul(0x9E37_79B9)),
            )?;
            let m = trainer.train_step(&DeviceBatch::upload(&gpu, &host)?)?;
            if !m.loss.is_finite() {
                return Err(Error::Invalid(format!(
                    "world-model loss became {} at step {}; the last good checkpoint is in {}",
                    m.loss,
                    m.step,
                    ckpt.display()
                )));
            }
            let b = if trainer.step > args.behaviour_warmup {
                let (h, s) = trainer.last_posterior.clone().expect("set by train_step");
                Some(beh.update(&trainer.model, &Starts::new(&h, &s)?)?)
            } else {
                None
            };
            if trainer.step % 10 == 0 {
                writeln!(
                    log,
                    "{}",
                    serde_json::json!({"kind": "train", "env_steps": st.env_steps, "world_model": m, "behaviour": b})
                )?;
                let behaviour = match &b {
                    Some(b) => format!(
                        "actor {:.3} (mean rms {:.2} std {:.2}) critic {:.3} return {:.2}",
                        b.actor_loss, b.actor_mean_rms, b.actor_std, b.critic_loss, b.mean_return
                    ),
                    None => format!("behaviour waits until step {}", args.behaviour_warmup),
                };
                eprintln!(
                    "step {} | wm loss {:.1} (image {:.1} kl {:.2}) | {behaviour} | {:.0} s",
                    m.step,
                    m.loss,
                    m.image_nll,
                    m.kl,
                    start.elapsed().as_secs_f64()
                );
            }
        }
        // Collect one episode with the current actor.
        let seed = cfg.seed.wrapping_mul(7919).wrapping_add(st.episodes as u64);
        let ep = run_episode(
            env.as_mut(),
            &trainer,
            &beh,
            seed,
            true,
            args.expl_noise,
            args.episode_len,
        )?;
        st.env_steps += ep.num_transitions();
        writeln!(
            log,
            "{}",
            serde_json::json!({"kind": "collect", "env_steps": st.env_steps, "return": ep.total_reward()})
        )?;
        save_episode(&ep_dir, st.episodes, &ep)?;
        st.episodes += 1;
        replay.push(ep)?;
        // Evaluate with the actor's mode.
        if st.episodes % args.eval_every.max(1) == 0 {
            let ep = run_episode(
                env.as_mut(),
                &trainer,
                &beh,
                EVAL_SEED + st.episodes as u64,
                false,
                0.0,
                args.episode_len,
            )?;
            let ret = ep.total_reward();
            st.evals.push((st.env_steps, ret));
            writeln!(
                log,
                "{}",
                serde_json::json!({"kind": "eval", "env_steps": st.env_steps, "return": ret, "random_return": st.random_return})
            )?;
            eprintln!(
                "eval at {} env steps: return {ret:.1} (random policy {:.1})",
                st.env_steps, st.random_return
            );
            write_returns_chart(&args.logdir.join("returns.svg"), &st)?;
        }
        trainer.save(&ckpt)?;
        beh.actor.opt.save(&ckpt, "actor")?;
        beh.critic.opt.save(&ckpt, "critic")?;
        st.behaviour_updates = beh.updates;
        let text = serde_json::to_string_pretty(&st).map_err(|e| Error::File {
            path: state_path.clone(),
            msg: format!("cannot encode the loop state: {e}"),
        })?;
        rssm::data::atomic::write_bytes_atomically(&state_path, text.as_bytes())?;
    }
    eprintln!(
        "done: {} env steps in {:.0} s",
        st.env_steps,
        start.elapsed().as_secs_f64()
    );
    Ok(())
}
