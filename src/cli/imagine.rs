//! `rssm imagine`: decode a long imagined rollout from a real start, as a PNG strip.
//!
//! A random-policy episode of the environment gives the start: `--context` real frames are
//! observed with the posterior, then the prior imagines `--steps` more from actions — the
//! actor's mode when the checkpoint folder has one (`actor.safetensors`, from `rssm dreamer`),
//! else seeded uniform random actions. Both run on the fused kernels where the device allows
//! them (`ops::rssm`, `ops::imagine`): the whole dream, however long, is a few dispatches,
//! then one batched decode.

use std::path::PathBuf;

use rand::{Rng, SeedableRng};
use rssm::agent::{dream, Behaviour, BehaviourConfig, DreamActions};
use rssm::envs::collect::{collect_episode_with_limit, RandomPolicy};
use rssm::envs::make_env;
use rssm::gpu::GpuOptions;
use rssm::model::{Checkpoint, Config, WorldModel};
use rssm::ops::{self};
use rssm::tensor::{Tape, Tensor};
use rssm::{Error, Result};

use crate::cli::common::{flag, open_gpu};
use crate::cli::dreamer::run_action_repeat;
use crate::cli::picture::write_frames_png;

#[derive(clap::Args, Debug)]
pub struct ImagineArgs {
    /// A checkpoint folder written by `train` or `dreamer` (its configuration is read from
    /// `optimizer.safetensors`), or a weights file together with `--config`.
    #[arg(long)]
    pub checkpoint: PathBuf,
    /// Configuration, when `--checkpoint` is a weights file.
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Imagined steps after the context.
    #[arg(long, default_value_t = 100, value_parser = flag::at_least_one::<usize>())]
    pub steps: usize,
    /// Real frames observed before imagining.
    #[arg(long, default_value_t = 5, value_parser = flag::at_least_one::<usize>())]
    pub context: usize,
    #[arg(long, default_value = "pendulum")]
    pub env: String,
    /// Physics steps per action. Default: the dreamer run's (read from the
    /// `dreamer_state.json` beside the checkpoint folder), else the environment's own.
    #[arg(long, value_parser = flag::at_least_one::<usize>())]
    pub action_repeat: Option<usize>,
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Frames per row of the picture.
    #[arg(long, default_value_t = 15, value_parser = flag::at_least_one::<usize>())]
    pub cols: usize,
    #[arg(long, default_value = "imagine.png")]
    pub out: PathBuf,
}

pub fn run(opts: &GpuOptions, args: ImagineArgs) -> Result<()> {
    let gpu = open_gpu(opts)?;
    let (cfg, weights, actor_dir) = if args.checkpoint.is_dir() {
        let ckpt = Checkpoint::new(&args.checkpoint);
        (
            ckpt.config()?,
            ckpt.weights(),
            ckpt.has_part("actor").then_some(args.checkpoint.clone()),
        )
    } else {
        let path = args
            .config
            .as_ref()
            .ok_or_else(|| Error::Invalid("--checkpoint is a file: give --config too".into()))?;
        (Config::from_file(path)?, args.checkpoint.clone(), None)
    };
    if args.context == 0 || args.steps == 0 {
        return Err(Error::Invalid(
            "--context and --steps must be positive".into(),
        ));
    }
    let model = WorldModel::new(&gpu, &cfg)?;
    model
        .params
        .load_host(&rssm::nn::load_file(&weights)?)
        .map_err(|e| Error::File {
            path: weights.clone(),
            msg: e.to_string(),
        })?;
    let mut beh = None;
    if let Some(dir) = &actor_dir {
        let mut b = Behaviour::new(&gpu, &cfg, BehaviourConfig::default())?;
        b.actor.opt.load(dir, "actor")?;
        beh = Some(b);
    }
    let repeat = args.action_repeat.or_else(|| {
        actor_dir
            .as_ref()
            .and_then(|_| run_action_repeat(&args.checkpoint))
    });
    let mut env = make_env(&args.env, repeat)?;
    if env.action_dim() != cfg.action_dim {
        return Err(Error::Invalid(format!(
            "env '{}' has {} actions, the model {}",
            args.env,
            env.action_dim(),
            cfg.action_dim
        )));
    }
    let mut policy = RandomPolicy::new(cfg.action_dim, args.seed);
    let ep = collect_episode_with_limit(env.as_mut(), &mut policy, args.seed, Some(args.context))?;
    let c = args.context.min(ep.len());
    let mut obs = vec![0f32; c * 3 * 64 * 64];
    for t in 0..c {
        rssm::data::frame_to_chw(
            ep.frame(t),
            &mut obs[t * 3 * 64 * 64..(t + 1) * 3 * 64 * 64],
        )?;
    }
    let a = cfg.action_dim;
    let mut actions = vec![0f32; c * a];
    for t in 0..c {
        actions[t * a..(t + 1) * a].copy_from_slice(ep.action_at(t));
    }
    let mut rng = rand::rngs::StdRng::seed_from_u64(args.seed ^ 0x1a9);
    let random: Vec<f32> = (0..args.steps * a)
        .map(|_| rng.random_range(-1.0..1.0))
        .collect();

    // The context through the posterior (its mean: zero noise), then the dream from the last
    // state: the fused kernels where the device allows them, a handful of dispatches in all.
    let t = Tape::no_grad(&gpu);
    let p = model.params.bind_frozen(&t);
    let img = t.constant(&Tensor::from_vec(&gpu, &[c, 3, 64, 64], &obs)?);
    let embed = model.encode(&t, &p, img)?;
    let embed = ops::reshape(&t, embed, &[1, c, cfg.embed()])?;
    let act_v = t.constant(&Tensor::from_vec(&gpu, &[1, c, a], &actions)?);
    let observed = model.observe(
        &t,
        &p,
        embed,
        act_v,
        &Tensor::zeros(&gpu, &[1, c, cfg.stoch])?,
    )?;
    let (h, s) = observed.last_state(&t)?;
    let feat = ops::concat_last(&t, &[observed.stoch, observed.deter])?;
    let feat = ops::reshape(&t, feat, &[c, cfg.feat()])?;
    let context = t.value(model.decode(&t, &p, feat)?);
    let rand_v = Tensor::from_vec(&gpu, &[1, args.steps, a], &random)?;
    let source = match &beh {
        Some(b) => DreamActions::Actor(&b.actor),
        None => DreamActions::Given(&rand_v),
    };
    let dreamed = dream(&model, &t.value(h), &t.value(s), source, args.steps)?;
    let mut frames = context.to_vec()?;
    frames.extend(dreamed.to_vec()?);
    let n = c + args.steps;
    write_frames_png(&args.out, &frames, n, args.cols)?;
    println!(
        "wrote {} ({c} observed + {} imagined frames, actions from {})",
        args.out.display(),
        args.steps,
        if beh.is_some() {
            "the actor"
        } else {
            "a random policy"
        }
    );
    Ok(())
}
