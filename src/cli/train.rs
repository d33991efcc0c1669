//! `rssm train`: learn a world model from pixels (built-in environment or `.npz` episodes).

use std::io::Write;
use std::path::{Path, PathBuf};

use indicatif::{ProgressBar, ProgressStyle};
use rssm::agent::BehaviourConfig;
use rssm::data::atomic as write;
use rssm::data::records::{self, Limits};
use rssm::gpu::GpuOptions;
use rssm::model::open_loop::open_loop;
use rssm::model::{DeviceBatch, Trainer};
use rssm::{Error, Result};

use crate::cli::common::{flag, load_data, open_gpu, tuned_gpu, DataSource, ModelChoice};
use crate::cli::picture::write_open_loop_png;
use crate::cli::plot::{write_charts_svg, Chart, Series};

#[derive(clap::Args, Debug)]
pub struct TrainArgs {
    #[command(flatten)]
    pub model: ModelChoice,
    /// Built-in environment to collect random-policy episodes from.
    #[arg(long, default_value = "pendulum")]
    pub env: String,
    /// Train offline on the `.npz` episodes of this folder instead of an environment.
    #[arg(long)]
    pub data: Option<PathBuf>,
    /// Random-policy episodes to collect from the environment.
    #[arg(long, default_value_t = 20, value_parser = flag::at_least_one::<usize>())]
    pub episodes: usize,
    /// Training steps (in total, counting those of a resumed run).
    #[arg(long, default_value_t = 1000)]
    pub steps: u64,
    /// Folder for metrics, checkpoints and pictures.
    #[arg(long, default_value = "runs/train")]
    pub logdir: PathBuf,
    /// Continue from the checkpoint in the logdir.
    #[arg(long)]
    pub resume: bool,
    /// Steps between checkpoints (and open-loop pictures).
    #[arg(long, default_value_t = 250, value_parser = flag::at_least_one::<u64>())]
    pub save_every: u64,
}

pub fn run(opts: &GpuOptions, args: TrainArgs) -> Result<()> {
    let gpu = open_gpu(opts)?;
    let mut cfg = args.model.resolve(&gpu)?;
    let src = match &args.data {
        Some(d) => DataSource::Dir(d.clone()),
        None => DataSource::Env {
            name: args.env.clone(),
            episodes: args.episodes,
        },
    };
    let replay = load_data(&src, cfg.seed)?;
    let action_dim = replay.action_dim().unwrap_or(0);
    // Presets take the action size from the data; a config file that names one must match.
    if args.model.config.is_some() && cfg.action_dim != 0 && cfg.action_dim != action_dim {
        return Err(Error::Invalid(format!(
            "config action_dim {} but the data has {action_dim}",
            cfg.action_dim
        )));
    }
    cfg.action_dim = action_dim;
    // The kernel choices measured for this configuration (`rssm tune`), if any: the
    // behaviour learner's default horizon is part of the shapes they were measured at.
    let gpu = tuned_gpu(&gpu, opts, &cfg, BehaviourConfig::default().horizon)?;
    let mut trainer = Trainer::new(&gpu, &cfg)?;
    eprintln!(
        "model: {} parameters in {} tensors",
        trainer.model.params.num_values(),
        trainer.model.params.len()
    );
    std::fs::create_dir_all(&args.logdir)?;
    let ckpt = args.logdir.join("checkpoint");
    if args.resume {
        write::recover_folder(&ckpt)?;
        trainer.load(&ckpt)?;
        eprintln!("resumed from {} at step {}", ckpt.display(), trainer.step);
    }
    // Resumed, the records a killed run wrote after its checkpoint are cut back to it;
    // started afresh, the file starts empty.
    let resumed_at = Limits::new([("/step", trainer.step)]);
    let metrics_path = args.logdir.join("metrics.jsonl");
    let mut metrics = records::open_run_records(&metrics_path, args.resume.then_some(&resumed_at))?;
    if args.resume && std::fs::metadata(&metrics_path).is_ok_and(|m| m.len() > 0) {
        // Drawn again from the records cut back (a kill may have come before the chart).
        write_loss_chart(&metrics_path, &args.logdir.join("losses.svg"))?;
    }
    // Held-out pictures: a fixed sample (its own seed), never a training batch.
    let pic_batch =
        replay.sample_with_seed(4.min(cfg.batch), cfg.seq_len.max(10), cfg.seed ^ 0xfeed)?;
    let pb = ProgressBar::new(args.steps);
    pb.set_style(ProgressStyle::with_template("{bar:30} {pos}/{len} {msg}").unwrap());
    pb.set_position(trainer.step);
    let start = std::time::Instant::now();
    let first = trainer.step;
    let mut last_saved = trainer.step;
    while trainer.step < args.steps {
        let host = replay.sample_with_seed(
            cfg.batch,
            cfg.seq_len,
            cfg.seed
                .wrapping_add(trainer.step.wrapping_mul(0x9E37_79B9)),
        )?;
        let batch = DeviceBatch::upload(&gpu, &host)?;
        let m = trainer.train_step(&batch)?;
        if !m.loss.is_finite() {
            pb.abandon();
            return Err(Error::Invalid(format!(
                "the loss became {} at step {} (image {} reward {} cont {} kl {}); stopping. The last good checkpoint (step {last_saved}) is in {}",
                m.loss, m.step, m.image_nll, m.reward_nll, m.cont_nll, m.kl, ckpt.display()
            )));
        }
        let line = serde_json::to_string(&m).map_err(|e| Error::Invalid(e.to_string()))?;
        writeln!(metrics, "{line}")?;
        let rate = (trainer.step - first) as f64 / start.elapsed().as_secs_f64();
        let line = format!(
            "loss {:.1} image {:.1} reward {:.3} cont {:.3} kl {:.2} | {rate:.2} steps/s",
            m.loss, m.image_nll, m.reward_nll, m.cont_nll, m.kl
        );
        pb.set_position(trainer.step);
        if pb.is_hidden() {
            // Not a terminal (a log file, CI): a plain line now and then instead of the bar.
            if trainer.step % 10 == 0 || trainer.step == first + 1 {
                eprintln!("step {}/{}: {line}", trainer.step, args.steps);
            }
        } else {
            pb.set_message(line);
        }
        if trainer.step % args.save_every == 0 || trainer.step == args.steps {
            write::write_folder_atomically(&ckpt, |d| trainer.save(d))?;
            last_saved = trainer.step;
            let pics = DeviceBatch::upload(&gpu, &pic_batch)?;
            let pred = open_loop(&trainer.model, &pics, 5)?;
            let path = args
                .logdir
                .join(format!("open_loop_{:06}.png", trainer.step));
            write_open_loop_png(
                &path,
                &pic_batch.obs,
                &pred.to_vec()?,
                pic_batch.batch_size,
                pic_batch.seq_len,
            )?;
            let chart = args.logdir.join("losses.svg");
            write_loss_chart(&args.logdir.join("metrics.jsonl"), &chart)?;
            let msg = format!(
                "step {}: checkpoint, {} and {}",
                trainer.step,
                path.display(),
                chart.display()
            );
            if pb.is_hidden() {
                eprintln!("{msg}");
            } else {
                pb.println(msg);
            }
        }
    }
    pb.finish();
    eprintln!(
        "done: {} steps in {:.1} s",
        trainer.step - first,
        start.elapsed().as_secs_f64()
    );
    Ok(())
}

/// The loss terms of every step in `metrics` (this run's and, resumed, the earlier ones'),
/// one panel per term, against the step.
fn write_loss_chart(metrics: &Path, out: &Path) -> Result<()> {
    const TERMS: [(&str, &str); 6] = [
        ("loss", "total loss"),
        ("image_nll", "image NLL"),
        ("reward_nll", "reward NLL"),
        ("cont_nll", "continue NLL"),
        ("kl", "KL (nats, before free nats)"),
        ("grad_norm", "gradient norm (before clipping)"),
    ];
    let text = std::fs::read_to_string(metrics).map_err(|e| Error::File {
        path: metrics.to_path_buf(),
        msg: e.to_string(),
    })?;
    let mut curves: Vec<Vec<(f64, f64)>> = vec![Vec::new(); TERMS.len()];
    // A line that does not parse (a run killed mid-write) is skipped, not fatal.
    for value in text
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
    {
        let Some(step) = value["step"].as_f64() else {
            continue;
        };
        for (curve, (key, _)) in curves.iter_mut().zip(TERMS) {
            if let Some(v) = value[key].as_f64() {
                curve.push((step, v));
            }
        }
    }
    let charts: Vec<Chart> = curves
        .into_iter()
        .zip(TERMS)
        .map(|(points, (key, caption))| Chart {
            caption,
            x_label: "training step",
            y_label: key,
            series: vec![Series { name: key, points }],
        })
        .collect();
    write_charts_svg(out, &charts, 3)
}
