//! Pieces the commands share: the device, the configuration, the data, batches on the device.

use std::path::PathBuf;

use rssm::data::replay::ReplayBuffer;
use rssm::envs::collect::{collect_episode, RandomPolicy};
use rssm::envs::make_env;
use rssm::gpu::{Gpu, GpuOptions};
use rssm::model::Config;
use rssm::tune::{self, Source, TuneMode, TuneSettings};
use rssm::{Error, Result};

/// Open the device and say which one it is.
pub fn open_gpu(opts: &GpuOptions) -> Result<Gpu> {
    let gpu = Gpu::new(opts)?;
    eprintln!("adapter: {}", gpu.report().short());
    Ok(gpu)
}

/// `gpu` with the kernel choices for `cfg` (imagining `horizon` steps): the cached
/// measurements where there are some (`auto`), measured now (`force`, within the default
/// budget) or the device's rules (`off`); the forced choices over them. Says which on stderr,
/// with any note about the cache. `tune` is the `--tune` flag, where given (it beats
/// `RSSM_TUNE`).
pub fn tuned_gpu(
    gpu: &Gpu,
    opts: &GpuOptions,
    tune: Option<TuneMode>,
    cfg: &Config,
    horizon: usize,
) -> Result<Gpu> {
    let settings = TuneSettings::from_env(opts, tune)?;
    let mut last = "";
    let mut progress = |p: &tune::Progress| {
        if p.decision != last {
            eprintln!(
                "tune: {:.0}/{:.0} s {}: {}",
                p.elapsed_s, p.budget_s, p.decision, p.what
            );
        }
        last = p.decision;
    };
    let t = tune::tuned(gpu, cfg, horizon, &settings, &mut progress)?;
    for n in &t.notes {
        eprintln!("note: {n}");
    }
    if !matches!(t.source, Source::Off) {
        eprintln!("tuning: {} ({})", t.gpu.tuning(), t.source.describe());
    }
    Ok(t.gpu)
}

/// `--config FILE` beats `--preset NAME`; otherwise the preset for the adapter type.
/// `--config` / `--preset`: which model to build (shared by the commands that build one).
#[derive(clap::Args, Debug)]
pub struct ModelChoice {
    /// Configuration file (.json or .toml) with the spec's keys.
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Preset: dreamer (the spec's sizes), small (for CPU devices) or tiny (tests)
    /// [default: small on a CPU device, dreamer on a GPU].
    #[arg(long)]
    pub preset: Option<String>,
}

impl ModelChoice {
    /// The configuration chosen (see [`ModelChoice::choose`]), said on stderr.
    pub fn resolve(&self, gpu: &Gpu) -> Result<Config> {
        let (name, cfg) = Config::default_for(gpu.report().is_cpu());
        let (what, cfg) = self.choose(gpu, name, cfg)?;
        eprintln!("{}", config_line(&what, &cfg));
        Ok(cfg)
    }

    /// `--config FILE`, else `--preset NAME`, else `default` (named `default_name`, the default
    /// for `gpu`'s device type); with words that say which, e.g. "preset 'small' (default for
    /// a Cpu device)". Prints nothing.
    pub fn choose(
        &self,
        gpu: &Gpu,
        default_name: &str,
        default: Config,
    ) -> Result<(String, Config)> {
        Ok(match (&self.config, &self.preset) {
            (Some(path), _) => (
                format!("config file {}", path.display()),
                Config::from_file(path)?,
            ),
            (None, Some(p)) => (format!("preset '{p}'"), Config::preset(p)?),
            (None, None) => (
                format!(
                    "preset '{default_name}' (default for a {} device)",
                    gpu.report().device_type
                ),
                default,
            ),
        })
    }
}

/// The sizes of `cfg`, after `what` (see [`ModelChoice::choose`]).
pub fn config_line(what: &str, cfg: &Config) -> String {
    format!(
        "config: {what}: deter {} stoch {} hidden {} depth {} units {} batch {}x{} lr {}",
        cfg.deter, cfg.stoch, cfg.hidden, cfg.depth, cfg.units, cfg.batch, cfg.seq_len, cfg.lr
    )
}

/// Where the training data comes from.
pub enum DataSource {
    Env { name: String, episodes: usize },
    Dir(PathBuf),
}

/// Fill a replay buffer: random-policy episodes from a built-in environment (deterministic in
/// `seed`, so a resumed run sees the same data), or every readable `.npz` of a folder (bad
/// files are reported by name and skipped).
pub fn load_data(src: &DataSource, seed: u64) -> Result<ReplayBuffer> {
    let mut replay = ReplayBuffer::new(2_000_000)?;
    match src {
        DataSource::Env { name, episodes } => {
            let mut env = make_env(name, None)?;
            let mut policy = RandomPolicy::new(env.action_dim(), seed);
            for i in 0..*episodes {
                let ep = collect_episode(
                    env.as_mut(),
                    &mut policy,
                    seed.wrapping_mul(1000).wrapping_add(i as u64),
                )?;
                replay.push(ep)?;
            }
            eprintln!(
                "data: {episodes} random-policy episodes of '{name}', {} steps",
                replay.total_steps()
            );
        }
        DataSource::Dir(dir) => {
            let (eps, failed) = rssm::data::npz::load_dir(dir)?;
            for f in &failed {
                eprintln!("warning: skipped {}", f.1);
            }
            if eps.is_empty() {
                return Err(Error::Invalid(format!(
                    "no readable .npz episodes in {}",
                    dir.display()
                )));
            }
            let n = eps.len();
            replay.extend(eps)?;
            eprintln!(
                "data: {n} episodes from {}, {} steps",
                dir.display(),
                replay.total_steps()
            );
        }
    }
    Ok(replay)
}

/// Range checks of numeric flags, for clap's `value_parser`: a bad value is refused before
/// anything runs, by a message that names the flag (clap adds `for '--flag <VALUE>'`).
pub mod flag {
    use clap::builder::RangedU64ValueParser;

    /// An integer >= 1 (counts, intervals, sizes).
    pub fn at_least_one<T>() -> RangedU64ValueParser<T>
    where
        T: TryFrom<u64> + Clone + Send + Sync + 'static,
        <T as TryFrom<u64>>::Error: std::fmt::Display + Send + Sync + 'static,
    {
        RangedU64ValueParser::<T>::new().range(1..)
    }

    fn float(s: &str) -> Result<f64, String> {
        let v: f64 = s
            .trim()
            .parse()
            .map_err(|_| format!("'{s}' is not a number"))?;
        if v.is_finite() {
            Ok(v)
        } else {
            Err(format!("{s} is not a finite number"))
        }
    }

    /// A finite number > 0 (learning rates).
    pub fn positive_f32(s: &str) -> Result<f32, String> {
        let v = float(s)?;
        if v > 0.0 && v <= f32::MAX as f64 {
            Ok(v as f32)
        } else {
            Err(format!("{s} must be > 0"))
        }
    }

    /// A finite number > 0 (seconds).
    pub fn positive_f64(s: &str) -> Result<f64, String> {
        let v = float(s)?;
        if v > 0.0 {
            Ok(v)
        } else {
            Err(format!("{s} must be > 0"))
        }
    }

    /// A finite number >= 0 (noise scales).
    pub fn non_negative_f32(s: &str) -> Result<f32, String> {
        let v = float(s)?;
        if (0.0..=f32::MAX as f64).contains(&v) {
            Ok(v as f32)
        } else {
            Err(format!("{s} must be >= 0"))
        }
    }

    /// A finite number >= 1 (mean hold lengths).
    pub fn at_least_one_f64(s: &str) -> Result<f64, String> {
        let v = float(s)?;
        if v >= 1.0 {
            Ok(v)
        } else {
            Err(format!("{s} must be >= 1"))
        }
    }

    #[cfg(test)]
    mod tests {
        use super::*;

        #[test]
        fn floats_are_range_checked() {
            assert_eq!(positive_f32("1e-4"), Ok(1e-4));
            for bad in ["0", "-1", "nan", "inf", "x", "1e300"] {
                assert!(positive_f32(bad).is_err(), "{bad}");
            }
            assert_eq!(non_negative_f32("0"), Ok(0.0));
            assert!(non_negative_f32("-0.1").is_err());
            assert_eq!(at_least_one_f64("1"), Ok(1.0));
            assert!(at_least_one_f64("0.5").is_err());
        }
    }
}
