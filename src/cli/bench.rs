//! `rssm bench`: milliseconds per world-model train step, per observe-only forward and per
//! behaviour update, with dispatches per step, for the presets, on the current adapter.

use std::time::Instant;

use rssm::agent::{Behaviour, BehaviourConfig, Starts};
use rssm::gpu::{Gpu, GpuOptions};
use rssm::model::{Config, DeviceBatch, Trainer};
use rssm::ops;
use rssm::tensor::{Tape, Tensor};
use rssm::Result;

use crate::cli::common::{flag, open_gpu};

#[derive(clap::Args, Debug)]
pub struct BenchArgs {
    /// Presets to measure (default: small and dreamer).
    #[arg(long, value_delimiter = ',')]
    pub presets: Option<Vec<String>>,
    /// Timed repetitions after one warm-up step.
    #[arg(long, default_value_t = 3, value_parser = flag::at_least_one::<usize>())]
    pub reps: usize,
    /// Action size of the synthetic batch.
    #[arg(long, default_value_t = 1, value_parser = flag::at_least_one::<usize>())]
    pub action_dim: usize,
    /// Override the presets' batch size B (e.g. to fit a CPU device's binding limit).
    #[arg(long, value_parser = flag::at_least_one::<usize>())]
    pub batch: Option<usize>,
    /// Override the presets' sequence length T.
    #[arg(long, value_parser = flag::at_least_one::<usize>())]
    pub seq_len: Option<usize>,
    /// Imagination horizon of the behaviour update (from every one of the B*T posterior states).
    #[arg(long, default_value_t = 15, value_parser = flag::at_least_one::<usize>())]
    pub horizon: usize,
}

fn synthetic_batch(gpu: &Gpu, cfg: &Config) -> Result<DeviceBatch> {
    let (b, t, a) = (cfg.batch, cfg.seq_len, cfg.action_dim);
    Ok(DeviceBatch {
        obs: Tensor::full(gpu, &[b, t, 3, 64, 64], 0.1)?,
        action: Tensor::full(gpu, &[b, t, a], 0.5)?,
        reward: Tensor::full(gpu, &[b, t], 1.0)?,
        cont: Tensor::full(gpu, &[b, t], 1.0)?,
        eps: None,
    })
}

struct Row {
    preset: String,
    bt: String,
    train_ms: f64,
    observe_ms: f64,
    dispatches: u64,
    submits: u64,
    behaviour_ms: f64,
    behaviour_dispatches: u64,
}

fn measure(gpu: &Gpu, name: &str, cfg: &Config, reps: usize, horizon: usize) -> Result<Row> {
    let batch = synthetic_batch(gpu, cfg)?;
    let mut tr = Trainer::new(gpu, cfg)?;
    tr.train_step(&batch)?; // warm-up: pipelines and pool
    let s0 = gpu.stats();
    let t0 = Instant::now();
    for _ in 0..reps {
        tr.train_step(&batch)?;
    }
    let train_ms = t0.elapsed().as_secs_f64() * 1e3 / reps as f64;
    let s1 = gpu.stats();
    // Observe only: encoder + RSSM over the sequence, no heads, no backward.
    let observe = |tr: &Trainer| -> Result<()> {
        let t = Tape::no_grad(gpu);
        let p = tr.model.params.bind_frozen(&t);
        let n = cfg.batch * cfg.seq_len;
        let obs = t.constant(&batch.obs);
        let images = ops::reshape(&t, obs, &[n, 3, 64, 64])?;
        let embed = tr.model.encode(&t, &p, images)?;
        let embed = ops::reshape(&t, embed, &[cfg.batch, cfg.seq_len, cfg.embed()])?;
        let action = t.constant(&batch.action);
        let eps = Tensor::zeros(gpu, &[cfg.batch, cfg.seq_len, cfg.stoch])?;
        let o = tr.model.observe(&t, &p, embed, action, &eps)?;
        t.value(o.last_state(&t)?.0).to_vec()?;
        Ok(())
    };
    observe(&tr)?;
    let t1 = Instant::now();
    for _ in 0..reps {
        observe(&tr)?;
    }
    let observe_ms = t1.elapsed().as_secs_f64() * 1e3 / reps as f64;
    // Behaviour: imagination from all B*T posterior states of the last step.
    let bcfg = BehaviourConfig {
        horizon,
        ..BehaviourConfig::default()
    };
    let mut beh = Behaviour::new(gpu, cfg, bcfg)?;
    let (h, s) = tr.last_posterior.clone().expect("set by train_step");
    let starts = Starts::new(&h, &s)?;
    beh.update(&tr.model, &starts)?;
    let s2 = gpu.stats();
    let t2 = Instant::now();
    for _ in 0..reps {
        beh.update(&tr.model, &starts)?;
    }
    let behaviour_ms = t2.elapsed().as_secs_f64() * 1e3 / reps as f64;
    let behaviour_dispatches = (gpu.stats().dispatches - s2.dispatches) / reps as u64;
    Ok(Row {
        behaviour_ms,
        behaviour_dispatches,
        preset: name.to_string(),
        bt: format!("{}x{}", cfg.batch, cfg.seq_len),
        train_ms,
        observe_ms,
        dispatches: (s1.dispatches - s0.dispatches) / reps as u64,
        submits: (s1.submits - s0.submits) / reps as u64,
    })
}

pub fn run(opts: &GpuOptions, args: BenchArgs) -> Result<()> {
    let gpu = open_gpu(opts)?;
    let presets = args
        .presets
        .unwrap_or_else(|| vec!["small".into(), "dreamer".into()]);
    println!(
        "| preset | B x T | ms / train step | ms / observe fwd | dispatches / train step | submits / train step | ms / behaviour update (B*T starts, H={}) | dispatches / behaviour update |",
        args.horizon
    );
    println!("| --- | --- | --- | --- | --- | --- | --- | --- |");
    for name in presets {
        let mut cfg = Config::preset(&name)?;
        cfg.action_dim = args.action_dim;
        cfg.batch = args.batch.unwrap_or(cfg.batch);
        cfg.seq_len = args.seq_len.unwrap_or(cfg.seq_len);
        match measure(&gpu, &name, &cfg, args.reps.max(1), args.horizon) {
            Ok(r) => println!(
                "| {} | {} | {:.1} | {:.1} | {} | {} | {:.1} | {} |",
                r.preset,
                r.bt,
                r.train_ms,
                r.observe_ms,
                r.dispatches,
                r.submits,
                r.behaviour_ms,
                r.behaviour_dispatches
            ),
            Err(e) => println!(
                "| {name} | {}x{} | skipped: {e} | | | | | |",
                cfg.batch, cfg.seq_len
            ),
        }
        gpu.trim();
    }
    Ok(())
}
