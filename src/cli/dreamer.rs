//! `rssm dreamer`: the full Dreamer loop on a built-in environment — prefill with random
//! episodes, then alternate collecting with the current actor (with exploration noise) and
//! training the world model and the behaviour; periodic evaluation episodes; returns as JSON
//! lines and an SVG learning curve; checkpoints of every part; `--resume`.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Instant;

use rssm::agent::{act, AgentState, Behaviour, BehaviourConfig, Dreamer, DreamerSettings};
use rssm::data::atomic as write;
use rssm::data::episode::EpisodeBuilder;
use rssm::data::records::{self, Limits};
use rssm::data::Episode;
use rssm::envs::collect::{collect_episode, RandomPolicy};
use rssm::envs::{make_env, Env};
use rssm::gpu::GpuOptions;
use rssm::model::Trainer;
use rssm::tune::TuneMode;
use rssm::{Error, Result};
use serde::{Deserialize, Serialize};

use crate::cli::common::{flag, open_gpu, tuned_gpu, ModelChoice};
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
/// Replay capacity in steps: more than any run of the loop collects.
const REPLAY_CAPACITY: usize = 2_000_000;

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
    /// World-model steps done at the checkpoint (absent in runs made before it was recorded).
    #[serde(default)]
    world_model_step: Option<u64>,
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
    rssm::data::save_npz(episode_path(dir, index), ep)?;
    Ok(())
}

/// The checkpoint folder in the logdir.
const CHECKPOINT_DIR: &str = "checkpoint";
/// The [`LoopState`], in the checkpoint folder (written with the weights, as one) and, as a
/// copy for readers, in the logdir beside it.
const STATE_FILE: &str = "dreamer_state.json";

/// The action repeat of the run whose checkpoint folder is `ckpt`, from the loop state in it or
/// beside it when there is one (a `rssm dreamer` run's): `rssm imagine` then steps the
/// environment as the actor learnt to.
pub fn run_action_repeat(ckpt: &Path) -> Option<usize> {
    let st = match LoopState::load(&ckpt.join(STATE_FILE)) {
        Ok(st) => st,
        Err(_) => LoopState::load(&ckpt.parent()?.join(STATE_FILE)).ok()?,
    };
    (st.action_repeat > 0).then_some(st.action_repeat)
}

/// The `.npz` file of episode `index` in `dir`.
fn episode_path(dir: &Path, index: usize) -> PathBuf {
    dir.join(format!("episode_{index:06}.npz"))
}

/// The index of an episode file (`episode_NNNNNN.npz`), `None` for any other name.
fn episode_index(name: &std::ffi::OsStr) -> Option<usize> {
    let digits = name
        .to_str()?
        .strip_prefix("episode_")?
        .strip_suffix(".npz")?;
    digits
        .bytes()
        .all(|b| b.is_ascii_digit())
        .then(|| digits.parse().ok())?
}

/// Where a run keeps its files in the logdir.
struct RunPaths {
    /// `checkpoint/`: the world model's, the actor's and the critic's weights and optimisers,
    /// and the [`LoopState`], replaced as a whole.
    ckpt: PathBuf,
    /// `episodes/`: every episode collected, prefill included (the replay of a resumed run).
    episodes: PathBuf,
    /// `dreamer_state.json`: a copy of the checkpoint's [`LoopState`].
    state: PathBuf,
    /// `metrics.jsonl`: train, collect and eval records, appended.
    metrics: PathBuf,
    /// `returns.svg`: the learning curve, redrawn at each evaluation.
    returns: PathBuf,
}

impl RunPaths {
    fn new(logdir: &Path) -> RunPaths {
        RunPaths {
            ckpt: logdir.join(CHECKPOINT_DIR),
            episodes: logdir.join("episodes"),
            state: logdir.join(STATE_FILE),
            metrics: logdir.join("metrics.jsonl"),
            returns: logdir.join("returns.svg"),
        }
    }
}

impl LoopState {
    fn load(path: &Path) -> Result<LoopState> {
        let text = std::fs::read_to_string(path).map_err(|e| Error::File {
            path: path.to_path_buf(),
            msg: e.to_string(),
        })?;
        serde_json::from_str(&text).map_err(|e| Error::File {
            path: path.to_path_buf(),
            msg: e.to_string(),
        })
    }

    fn save(&self, path: &Path) -> Result<()> {
        let text = serde_json::to_string_pretty(self).map_err(|e| Error::File {
            path: path.to_path_buf(),
            msg: format!("cannot encode the loop state: {e}"),
        })?;
        rssm::data::atomic::write_bytes_atomically(path, text.as_bytes())?;
        Ok(())
    }
}

/// The agent's settings from the flags (the library's defaults otherwise).
fn settings(args: &DreamerArgs) -> DreamerSettings {
    let defaults = BehaviourConfig::default();
    DreamerSettings {
        behaviour: BehaviourConfig {
            actor_lr: args.actor_lr.unwrap_or(defaults.actor_lr),
            critic_lr: args.critic_lr.unwrap_or(defaults.critic_lr),
            horizon: args.horizon.unwrap_or(defaults.horizon),
            ..defaults
        },
        behaviour_warmup: args.behaviour_warmup,
        expl_noise: args.expl_noise,
        replay_capacity: REPLAY_CAPACITY,
    }
}

/// Continue the run in the logdir: the checkpoint, the loop state and the episodes. The
/// environment is made again with the run's action repeat when no flag asked for one.
///
/// The checkpoint's loop state counts the episodes `0..episodes` (and their transitions as
/// `env_steps`): exactly those go into the replay. Episodes written after it (a killed run's)
/// are removed: the resumed run collects them again, the same (their seeds follow from their
/// index), so every episode is in the replay and on disk once.
fn resume(
    args: &DreamerArgs,
    paths: &RunPaths,
    agent: &mut Dreamer,
    env: &mut Box<dyn Env>,
) -> Result<LoopState> {
    write::recover_folder(&paths.ckpt)?;
    agent.load_weights(&paths.ckpt)?;
    // Runs made before the loop state went into the checkpoint folder have it beside it.
    let inside = paths.ckpt.join(STATE_FILE);
    let st = LoopState::load(if inside.exists() {
        &inside
    } else {
        &paths.state
    })?;
    if let Some(step) = st.world_model_step.filter(|s| *s != agent.trainer.step) {
        return Err(Error::Invalid(format!(
            "cannot resume: the loop state in {} is at world-model step {step}, the checkpoint at {}",
            args.logdir.display(),
            agent.trainer.step
        )));
    }
    if st.action_repeat != 0 && st.action_repeat != env.action_repeat() {
        if args.action_repeat.is_some() {
            return Err(Error::Invalid(format!(
                "cannot resume with action repeat {}: the run in {} uses {}",
                env.action_repeat(),
                args.logdir.display(),
                st.action_repeat
            )));
        }
        *env = make_env(&args.env, Some(st.action_repeat))?;
    }
    agent.behaviour.updates = st.behaviour_updates;
    let eps = checkpoint_episodes(paths, &st)?;
    agent.replay.extend(eps)?;
    eprintln!(
        "resumed at {} env steps, {} episodes, world-model step {}",
        st.env_steps, st.episodes, agent.trainer.step
    );
    Ok(st)
}

/// The episodes the loop state `st` counts, `episodes/episode_{0..episodes}.npz`, after
/// removing the later ones (and any temporary a kill left); their transitions must add up to
/// the state's `env_steps`.
fn checkpoint_episodes(paths: &RunPaths, st: &LoopState) -> Result<Vec<Episode>> {
    write::remove_stale_temporaries(&paths.episodes)?;
    let mut later = 0;
    if paths.episodes.is_dir() {
        for entry in std::fs::read_dir(&paths.episodes)? {
            let entry = entry?;
            if episode_index(&entry.file_name()).is_some_and(|i| i >= st.episodes) {
                std::fs::remove_file(entry.path())?;
                later += 1;
            }
        }
    }
    if later > 0 {
        eprintln!(
            "removed {later} episode(s) collected after the checkpoint: they are collected again"
        );
    }
    let mut eps = Vec::with_capacity(st.episodes);
    for i in 0..st.episodes {
        let path = episode_path(&paths.episodes, i);
        eps.push(
            rssm::data::load_npz(&path)
                .map_err(|e| Error::Invalid(format!("cannot resume: {e}")))?,
        );
    }
    let steps: usize = eps.iter().map(Episode::num_transitions).sum();
    if steps != st.env_steps {
        return Err(Error::Invalid(format!(
            "cannot resume: the {} episodes in {} hold {steps} steps, the loop state counts {}",
            st.episodes,
            paths.episodes.display(),
            st.env_steps
        )));
    }
    Ok(eps)
}

/// Start a run: the uniform random policy's return on the evaluation seeds (the baseline),
/// then the prefill episodes of the holding random policy into the replay and `episodes/`.
fn prefill(
    args: &DreamerArgs,
    paths: &RunPaths,
    agent: &mut Dreamer,
    env: &mut dyn Env,
) -> Result<LoopState> {
    // A kill of an earlier run may have left a temporary there.
    write::remove_stale_temporaries(&paths.episodes)?;
    let seed = agent.config().seed;
    let mut st = LoopState {
        action_repeat: env.action_repeat(),
        ..LoopState::default()
    };
    let mut uniform = RandomPolicy::new(env.action_dim(), seed ^ 0xBA5E);
    let mut total = 0.0;
    for i in 0..RANDOM_BASELINE_EPISODES {
        let ep = rssm::envs::collect::collect_episode_with_limit(
            env,
            &mut uniform,
            EVAL_SEED + i as u64,
            args.episode_len,
        )?;
        total += ep.total_reward();
    }
    st.random_return = total / RANDOM_BASELINE_EPISODES as f64;
    let mut policy = RandomPolicy::new(env.action_dim(), seed).with_hold(args.prefill_hold);
    let mut total = 0.0;
    for i in 0..args.prefill {
        let ep = collect_episode(
            env,
            &mut policy,
            seed.wrapping_mul(7919).wrapping_add(i as u64),
        )?;
        total += ep.total_reward();
        st.env_steps += ep.num_transitions();
        save_episode(&paths.episodes, st.episodes, &ep)?;
        st.episodes += 1;
        agent.replay.push(ep)?;
    }
    st.prefill_return = total / args.prefill.max(1) as f64;
    eprintln!(
        "prefill: {} random episodes (actions held {:.1} steps on average), mean return {:.1}; uniform random policy {:.1}",
        args.prefill, args.prefill_hold, st.prefill_return, st.random_return
    );
    Ok(st)
}

/// `--train-steps` updates of the world model and (past the warm-up) the behaviour, logged
/// every 10th world-model step.
fn train_round(
    args: &DreamerArgs,
    paths: &RunPaths,
    agent: &mut Dreamer,
    st: &LoopState,
    log: &mut std::fs::File,
    start: Instant,
) -> Result<()> {
    for _ in 0..args.train_steps {
        let m = agent.train_world_model()?;
        if !m.loss.is_finite() {
            return Err(Error::Invalid(format!(
                "world-model loss became {} at step {}; the last good checkpoint is in {}",
                m.loss,
                m.step,
                paths.ckpt.display()
            )));
        }
        let b = agent.train_behaviour()?;
        if agent.trainer.step.is_multiple_of(10) {
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
    Ok(())
}

/// Collect one episode with the current actor (sampled, plus exploration noise) into the
/// replay and `episodes/`; every `--eval-every` episodes, evaluate the actor's mode and redraw
/// `returns.svg`.
fn collect_and_evaluate(
    args: &DreamerArgs,
    paths: &RunPaths,
    agent: &mut Dreamer,
    env: &mut dyn Env,
    st: &mut LoopState,
    log: &mut std::fs::File,
) -> Result<()> {
    let seed = agent
        .config()
        .seed
        .wrapping_mul(7919)
        .wrapping_add(st.episodes as u64);
    let ep = run_episode(
        env,
        &agent.trainer,
        &agent.behaviour,
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
    save_episode(&paths.episodes, st.episodes, &ep)?;
    st.episodes += 1;
    agent.replay.push(ep)?;
    if st.episodes.is_multiple_of(args.eval_every.max(1)) {
        let ep = run_episode(
            env,
            &agent.trainer,
            &agent.behaviour,
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
        write_returns_chart(&paths.returns, st)?;
    }
    Ok(())
}

/// The checkpoint: the weights and the loop state in one folder, replaced as a whole (a resume
/// finds the new folder or the previous one, never a mix); then the loop state's copy beside it.
fn save_checkpoint(paths: &RunPaths, agent: &Dreamer, st: &mut LoopState) -> Result<()> {
    st.behaviour_updates = agent.behaviour.updates;
    st.world_model_step = Some(agent.trainer.step);
    write::write_folder_atomically(&paths.ckpt, |dir| {
        agent.save_weights(dir)?;
        st.save(&dir.join(STATE_FILE))
    })?;
    st.save(&paths.state)
}

pub fn run(opts: &GpuOptions, tune: Option<TuneMode>, args: DreamerArgs) -> Result<()> {
    let gpu = open_gpu(opts)?;
    let mut cfg = args.model.resolve(&gpu)?;
    let mut env = make_env(
        &args.env,
        Some(args.action_repeat.unwrap_or(DREAMER_ACTION_REPEAT)),
    )?;
    cfg.action_dim = env.action_dim();
    let settings = settings(&args);
    // The kernel choices measured for this configuration and horizon (`rssm tune`), if any.
    let gpu = tuned_gpu(&gpu, opts, tune, &cfg, settings.behaviour.horizon)?;
    let mut agent = Dreamer::new(&gpu, &cfg, settings)?;
    let paths = RunPaths::new(&args.logdir);
    std::fs::create_dir_all(&args.logdir)?;
    let mut st = if args.resume {
        resume(&args, &paths, &mut agent, &mut env)?
    } else {
        prefill(&args, &paths, &mut agent, env.as_mut())?
    };
    // Resumed, the records of a killed run are cut back to the checkpoint: train records by
    // their world-model step, collect and eval records by their environment steps (the
    // checkpoint's round wrote them at its `env_steps`, the next round's are past it).
    let resumed_at = Limits::new([
        ("/world_model/step", agent.trainer.step),
        ("/env_steps", st.env_steps as u64),
    ]);
    let mut log = records::open_run_records(&paths.metrics, args.resume.then_some(&resumed_at))?;
    if args.resume {
        // The copy and the chart may be from after the checkpoint.
        st.save(&paths.state)?;
        if !st.evals.is_empty() {
            write_returns_chart(&paths.returns, &st)?;
        }
    }
    let start = Instant::now();
    while st.env_steps < args.env_steps {
        train_round(&args, &paths, &mut agent, &st, &mut log, start)?;
        collect_and_evaluate(&args, &paths, &mut agent, env.as_mut(), &mut st, &mut log)?;
        save_checkpoint(&paths, &agent, &mut st)?;
    }
    eprintln!(
        "done: {} env steps in {:.0} s",
        st.env_steps,
        start.elapsed().as_secs_f64()
    );
    Ok(())
}
