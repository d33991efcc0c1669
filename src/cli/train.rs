//! `rssm train`: learn a world model from pixels (built-in environment or `.npz` episodes).

use std::io::Write;
use std::path::{Path, PathBuf};

use indicatif::{ProgressBar, ProgressStyle};
use rssm::agent::BehaviourConfig;
use rssm::data::atomic as write;
use rssm::data::records::{self, Limits};
use rssm::gpu::{Gpu, GpuOptions};
use rssm::model::open_loop::open_loop;
use rssm::model::{Config, DeviceBatch, Trainer};
use rssm::tune::TuneMode;
use rssm::{Error, Result};

use crate::cli::common::{config_line, flag, load_data, tuned_gpu, DataSource, ModelChoice};
use crate::cli::picture::write_open_loop_png;
use crate::cli::plot::{write_charts_svg, Chart, Series};

/// What `rssm train` does when a flag is not given, by device type: the spec's sizes on a GPU;
/// on a CPU device (lavapipe, llvmpipe), where a step of the spec's sizes takes many seconds, a
/// run of the `small` preset that ends in minutes and shows an open-loop picture early.
/// The `--help` texts of [`TrainArgs`] quote these numbers (a test checks them).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct TrainDefaults {
    /// Device type, as the first line says it.
    pub device: &'static str,
    pub preset: &'static str,
    /// The learning rate of the default preset, when not the preset's own.
    pub lr: Option<f32>,
    pub steps: u64,
    pub save_every: u64,
    pub picture_every: u64,
}

/// A GPU's defaults: the spec's sizes (`dreamer`), 1000 steps, a checkpoint and a picture
/// every 250.
pub const GPU_DEFAULTS: TrainDefaults = TrainDefaults {
    device: "GPU",
    preset: "dreamer",
    lr: None,
    steps: 1000,
    save_every: 250,
    picture_every: 250,
};

/// A CPU device's defaults (see [`TrainDefaults`]); the README says how long they take.
/// At 3x the `small` preset's learning rate its open-loop picture after 300 steps is that of
/// 600 at the preset's own (lavapipe, seed 0).
pub const CPU_DEFAULTS: TrainDefaults = TrainDefaults {
    device: "CPU",
    preset: "small",
    lr: Some(3e-3),
    steps: 500,
    save_every: 100,
    picture_every: 50,
};

impl TrainDefaults {
    pub fn for_device(is_cpu: bool) -> TrainDefaults {
        if is_cpu {
            CPU_DEFAULTS
        } else {
            GPU_DEFAULTS
        }
    }

    /// The command that runs the full configuration (the spec's sizes, a GPU's defaults).
    fn full_run() -> String {
        format!(
            "rssm train --preset {} --steps {}",
            GPU_DEFAULTS.preset, GPU_DEFAULTS.steps
        )
    }
}

/// Seconds per training step of the CPU default (`small`, B8 T16) on a 2-core CPU through
/// lavapipe, measured with `rssm train` (pictures and checkpoints included; 2.6-2.8 steps/s
/// on a quiet machine, about half while another build shares the cores), and of its first
/// step, which also compiles the pipelines.
const CPU_SMALL_SECS_PER_STEP: f64 = 0.4;
const CPU_FIRST_STEP_SECS: f64 = 8.0;

/// Flags left out take the device's [`TrainDefaults`] (decided once the adapter is open).
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
    /// Training steps, in total (counting those of a resumed run)
    /// [default: 500 on a CPU device, 1000 on a GPU]
    #[arg(long)]
    pub steps: Option<u64>,
    /// Adam learning rate, instead of the configuration's [default: 0.003 on a CPU device
    /// with the default preset; else the preset's or the config file's]
    #[arg(long, value_parser = flag::positive_f32)]
    pub lr: Option<f32>,
    /// Folder for metrics, checkpoints and pictures.
    #[arg(long, default_value = "runs/train")]
    pub logdir: PathBuf,
    /// Continue from the checkpoint in the logdir.
    #[arg(long)]
    pub resume: bool,
    /// Steps between checkpoints, each with an open-loop picture
    /// [default: 100 on a CPU device, 250 on a GPU]
    #[arg(long, value_parser = flag::at_least_one::<u64>())]
    pub save_every: Option<u64>,
    /// Steps between open-loop pictures (besides those at checkpoints and at the end)
    /// [default: 50 on a CPU device, 250 on a GPU]
    #[arg(long, value_parser = flag::at_least_one::<u64>())]
    pub picture_every: Option<u64>,
}

/// "1h 05m", "3m 20s", "45s".
fn duration_words(secs: f64) -> String {
    let s = secs.max(0.0).round() as u64;
    match s {
        0..=59 => format!("{s}s"),
        60..=3599 => format!("{}m {:02}s", s / 60, s % 60),
        _ => format!("{}h {:02}m", s / 3600, s % 3600 / 60),
    }
}

/// Whole minutes, rounded up ("about 4 min").
fn minutes(secs: f64) -> u64 {
    (secs / 60.0).ceil().max(1.0) as u64
}

/// The first line `rssm train` prints: the device, the model, the steps, how long it should
/// take and how to run the full configuration.
fn first_line(
    adapter: &str,
    defaults: &TrainDefaults,
    model: &str,
    steps: u64,
    estimate: Option<f64>,
) -> String {
    let time = match estimate {
        Some(per_step) => format!(
            "about {} min on a 2-core CPU",
            minutes(CPU_FIRST_STEP_SECS + steps as f64 * per_step)
        ),
        None => "the time left is shown once the first steps are measured".into(),
    };
    let full = TrainDefaults::full_run();
    let full = if defaults == &GPU_DEFAULTS {
        format!("GPU defaults: the full configuration ({full})")
    } else {
        format!(
            "{} defaults; the full configuration (the spec's sizes, a GPU's default, hours on a CPU): {full}",
            defaults.device
        )
    };
    format!("rssm train on {adapter}: {model}, {steps} steps, {time}. {full}")
}

/// Steps per second of this process's steps after its first (which compiles the pipelines),
/// and the time left at that rate.
struct Rate {
    /// When the first step of this process ended, and the step it reached.
    after_first: Option<(std::time::Instant, u64)>,
}

impl Rate {
    fn steps_per_sec(&self, step: u64) -> Option<f64> {
        let (t, s0) = self.after_first?;
        let secs = t.elapsed().as_secs_f64();
        (step > s0 && secs > 0.0).then(|| (step - s0) as f64 / secs)
    }

    /// "2.61 steps/s, 3m 12s left" (or "measuring" before the second step).
    fn words(&self, step: u64, steps: u64) -> String {
        match self.steps_per_sec(step) {
            Some(r) => format!(
                "{r:.2} steps/s, {} left",
                duration_words(steps.saturating_sub(step) as f64 / r)
            ),
            None => "measuring the rate".into(),
        }
    }
}

pub fn run(opts: &GpuOptions, tune: Option<TuneMode>, args: TrainArgs) -> Result<()> {
    let gpu = Gpu::new(opts)?;
    let is_cpu = gpu.report().is_cpu();
    let defaults = TrainDefaults::for_device(is_cpu);
    let steps = args.steps.unwrap_or(defaults.steps);
    let save_every = args.save_every.unwrap_or(defaults.save_every);
    let picture_every = args.picture_every.unwrap_or(defaults.picture_every);
    let mut default = Config::preset(defaults.preset)?;
    default.lr = defaults.lr.unwrap_or(default.lr);
    let (mut what, mut cfg) = args.model.choose(&gpu, defaults.preset, default)?;
    let chosen_lr = match args.lr {
        Some(lr) => Some(lr),
        None if args.model.config.is_none() && args.model.preset.is_none() => defaults.lr,
        None => None,
    };
    // The model in a few words, for the first line.
    let mut model = match (&args.model.config, &args.model.preset) {
        (Some(path), _) => format!("config {}", path.display()),
        (None, Some(p)) => format!("preset {p}"),
        (None, None) => format!("preset {}", defaults.preset),
    };
    if let Some(lr) = chosen_lr {
        cfg.lr = lr;
        what = format!("{what} with lr {lr}");
        model = format!("{model}, lr {lr}");
    }
    // The per-step time was measured for the CPU default's sizes only (and a resumed run's
    // steps left are known once its checkpoint is read).
    let sized_as = |c: &Config| {
        (
            c.deter, c.stoch, c.hidden, c.depth, c.units, c.batch, c.seq_len,
        )
    };
    let estimate = (is_cpu
        && !args.resume
        && sized_as(&cfg) == sized_as(&Config::preset(CPU_DEFAULTS.preset)?))
    .then_some(CPU_SMALL_SECS_PER_STEP);
    let ckpt = args.logdir.join("checkpoint");
    // The first line: what runs, where, for how long, and how to run the full configuration.
    eprintln!(
        "{}",
        first_line(&gpu.report().short(), &defaults, &model, steps, estimate)
    );
    eprintln!(
        "{}; checkpoint every {save_every} steps, open-loop picture every {picture_every}",
        config_line(&what, &cfg)
    );
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
    let gpu = tuned_gpu(&gpu, opts, tune, &cfg, BehaviourConfig::default().horizon)?;
    let mut trainer = Trainer::new(&gpu, &cfg)?;
    eprintln!(
        "model: {} parameters in {} tensors",
        trainer.model.params.num_values(),
        trainer.model.params.len()
    );
    std::fs::create_dir_all(&args.logdir)?;
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
    let pb = ProgressBar::new(steps);
    pb.set_style(ProgressStyle::with_template("{bar:30} {pos}/{len} {msg}").unwrap());
    pb.set_position(trainer.step);
    let say = |msg: String| {
        if pb.is_hidden() {
            eprintln!("{msg}");
        } else {
            pb.println(msg);
        }
    };
    let start = std::time::Instant::now();
    let first = trainer.step;
    let mut rate = Rate { after_first: None };
    // Once the rate is measured (10 steps after the first), the estimate is said again.
    let refine_at = first + 11;
    let mut last_saved = trainer.step;
    while trainer.step < steps {
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
        if trainer.step == first + 1 {
            rate.after_first = Some((std::time::Instant::now(), trainer.step));
        }
        let line = format!(
            "loss {:.1} image {:.1} reward {:.3} cont {:.3} kl {:.2} | {}",
            m.loss,
            m.image_nll,
            m.reward_nll,
            m.cont_nll,
            m.kl,
            rate.words(trainer.step, steps)
        );
        pb.set_position(trainer.step);
        if pb.is_hidden() {
            // Not a terminal (a log file, CI): a plain line now and then instead of the bar.
            if trainer.step % 10 == 0 || trainer.step == first + 1 || trainer.step == steps {
                eprintln!("step {}/{steps}: {line}", trainer.step);
            }
        } else {
            pb.set_message(line);
        }
        if trainer.step == refine_at && trainer.step < steps {
            if let Some(r) = rate.steps_per_sec(trainer.step) {
                say(format!(
                    "measured {r:.2} steps/s: the {} steps left take about {}",
                    steps - trainer.step,
                    duration_words((steps - trainer.step) as f64 / r)
                ));
            }
        }
        let checkpoint = trainer.step % save_every == 0 || trainer.step == steps;
        if checkpoint || trainer.step % picture_every == 0 {
            // The picture and the chart before the checkpoint: a run killed while writing
            // them resumes from an earlier checkpoint and writes them again.
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
            write_loss_chart(&metrics_path, &chart)?;
            let mut wrote = format!("{} and {}", path.display(), chart.display());
            if checkpoint {
                write::write_folder_atomically(&ckpt, |d| trainer.save(d))?;
                last_saved = trainer.step;
                wrote = format!("checkpoint, {wrote}");
            }
            say(format!("step {}: {wrote}", trainer.step));
        }
    }
    pb.finish();
    eprintln!(
        "done: {} steps in {}",
        trainer.step - first,
        duration_words(start.elapsed().as_secs_f64())
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

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn help_quotes_the_defaults_of_both_device_types() {
        let mut cli = crate::cli::Cli::command();
        let help = cli
            .find_subcommand_mut("train")
            .unwrap()
            .render_help()
            .to_string();
        let help = help.split_whitespace().collect::<Vec<_>>().join(" ");
        for (flag, cpu, gpu) in [
            (
                "--preset",
                CPU_DEFAULTS.preset.to_string(),
                GPU_DEFAULTS.preset.to_string(),
            ),
            (
                "--steps",
                CPU_DEFAULTS.steps.to_string(),
                GPU_DEFAULTS.steps.to_string(),
            ),
            (
                "--save-every",
                CPU_DEFAULTS.save_every.to_string(),
                GPU_DEFAULTS.save_every.to_string(),
            ),
            (
                "--picture-every",
                CPU_DEFAULTS.picture_every.to_string(),
                GPU_DEFAULTS.picture_every.to_string(),
            ),
        ] {
            let want = format!("[default: {cpu} on a CPU device, {gpu}");
            let line = help
                .split(" --")
                .find(|l| l.starts_with(&flag[2..]))
                .unwrap_or_else(|| panic!("{flag} missing: {help}"));
            assert!(line.contains(&want), "{flag}: want {want:?} in {line:?}");
        }
        let lr = format!("[default: {} on a CPU device", CPU_DEFAULTS.lr.unwrap());
        assert!(help.contains(&lr), "want {lr:?} in {help}");
        assert_eq!(GPU_DEFAULTS.lr, None);
        // The preset the commands share picks the same by device type.
        assert_eq!(Config::default_for(true).0, CPU_DEFAULTS.preset);
        assert_eq!(Config::default_for(false).0, GPU_DEFAULTS.preset);
    }

    #[test]
    fn the_first_line_says_device_model_steps_time_and_the_full_run() {
        let line = first_line(
            "llvmpipe (Vulkan, Cpu)",
            &CPU_DEFAULTS,
            "preset small, lr 0.003",
            500,
            Some(0.4),
        );
        for part in [
            "llvmpipe",
            "preset small, lr 0.003",
            "CPU defaults",
            "500 steps",
            "about 4 min on a 2-core CPU",
            "rssm train --preset dreamer --steps 1000",
        ] {
            assert!(line.contains(part), "{part:?} not in {line:?}");
        }
        let line = first_line(
            "NVIDIA (Vulkan, DiscreteGpu)",
            &GPU_DEFAULTS,
            "preset dreamer",
            1000,
            None,
        );
        assert!(
            line.contains("shown once the first steps are measured"),
            "{line}"
        );
        assert!(
            line.contains("GPU defaults: the full configuration"),
            "{line}"
        );
        assert_eq!(duration_words(45.2), "45s");
        assert_eq!(duration_words(200.0), "3m 20s");
        assert_eq!(duration_words(3900.0), "1h 05m");
    }
}
