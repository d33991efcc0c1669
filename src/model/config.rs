//! World-model configuration: the spec's sizes plus training settings, with presets and
//! JSON/TOML files whose keys are the spec's names.

use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// Every size and setting of a run. Keys are the specification's names.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// GRU state size.
    pub deter: usize,
    /// Gaussian latent size.
    pub stoch: usize,
    /// RSSM MLP width.
    pub hidden: usize,
    /// Conv channel multiplier (embed = 32 * depth).
    pub depth: usize,
    /// Head MLP width.
    pub units: usize,
    /// Floor on the latent std.
    pub min_std: f32,
    /// Continuous action size (set from the environment or the data when 0).
    pub action_dim: usize,
    pub free_nats: f32,
    pub kl_balance: f32,
    pub kl_scale: f32,
    /// Sequences per batch (B).
    pub batch: usize,
    /// Steps per sequence (T).
    pub seq_len: usize,
    /// Adam learning rate.
    pub lr: f32,
    /// Global-norm gradient clip.
    pub grad_clip: f32,
    /// Seed of the weights, the data sampling and the latent noise.
    pub seed: u64,
}

impl Default for Config {
    fn default() -> Self {
        Config::dreamer()
    }
}

impl Config {
    /// The specification's defaults (DreamerV1 on 64x64 pixels).
    pub fn dreamer() -> Config {
        Config {
            deter: 200,
            stoch: 30,
            hidden: 200,
            depth: 32,
            units: 400,
            min_std: 0.1,
            action_dim: 0,
            free_nats: 3.0,
            kl_balance: 0.8,
            kl_scale: 1.0,
            batch: 50,
            seq_len: 50,
            lr: 6e-4,
            grad_clip: 100.0,
            seed: 0,
        }
    }

    /// A smaller model and batch for CPU devices (lavapipe): the same architecture, a quarter
    /// of the channels and fewer, shorter sequences, so a step takes well under a second.
    pub fn small() -> Config {
        Config {
            deter: 100,
            stoch: 16,
            hidden: 100,
            depth: 8,
            units: 100,
            batch: 8,
            seq_len: 16,
            lr: 1e-3,
            ..Config::dreamer()
        }
    }

    /// A tiny configuration for tests (gradient checks of the whole loss).
    pub fn tiny() -> Config {
        Config {
            deter: 4,
            stoch: 3,
            hidden: 5,
            depth: 1,
            units: 6,
            batch: 2,
            seq_len: 3,
            action_dim: 2,
            ..Config::dreamer()
        }
    }

    /// A preset by name.
    pub fn preset(name: &str) -> Result<Config> {
        match name {
            "dreamer" => Ok(Config::dreamer()),
            "small" => Ok(Config::small()),
            "tiny" => Ok(Config::tiny()),
            other => Err(Error::Invalid(format!(
                "unknown preset '{other}'; available: dreamer, small, tiny"
            ))),
        }
    }

    /// The preset for an adapter: `small` on CPU devices, `dreamer` on GPUs.
    pub fn default_for(is_cpu: bool) -> (&'static str, Config) {
        if is_cpu {
            ("small", Config::small())
        } else {
            ("dreamer", Config::dreamer())
        }
    }

    /// Read a `.json` or `.toml` file; missing keys take the spec's defaults, unknown keys are
    /// an error (a typo must not silently train the wrong model).
    pub fn from_file(path: &Path) -> Result<Config> {
        let text = std::fs::read_to_string(path).map_err(|e| Error::File {
            path: path.to_path_buf(),
            msg: e.to_string(),
        })?;
        let cfg: Config = match path.extension().and_then(|e| e.to_str()) {
            Some("toml") => toml::from_str(&text).map_err(|e| Error::File {
                path: path.to_path_buf(),
                msg: format!("bad config: {e}"),
            })?,
            _ => serde_json::from_str(&text).map_err(|e| Error::File {
                path: path.to_path_buf(),
                msg: format!("bad config: {e}"),
            })?,
        };
        cfg.validate()?;
        Ok(cfg)
    }

    /// The encoder's output size.
    pub fn embed(&self) -> usize {
        32 * self.depth
    }

    /// feat = concat(s, h).
    pub fn feat(&self) -> usize {
        self.stoch + self.deter
    }

    /// Reject sizes that cannot work.
    pub fn validate(&self) -> Result<()> {
        let positive = [
            ("deter", self.deter),
            ("stoch", self.stoch),
            ("hidden", self.hidden),
            ("depth", self.depth),
            ("units", self.units),
            ("batch", self.batch),
            ("seq_len", self.seq_len),
        ];
        for (k, v) in positive {
            if v == 0 {
                return Err(Error::Invalid(format!("config: {k} must be positive")));
            }
        }
        let positive = |v: f32| v.is_finite() && v > 0.0;
        if !positive(self.min_std) || !positive(self.lr) || !(0.0..=1.0).contains(&self.kl_balance)
        {
            return Err(Error::Invalid(
                "config: min_std and lr must be positive, kl_balance in [0, 1]".into(),
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn files_use_the_spec_names_and_reject_typos() {
        let dir = std::env::temp_dir().join(format!("rssm-cfg-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let j = dir.join("c.json");
        std::fs::write(&j, r#"{"deter": 64, "stoch": 8, "batch": 4}"#).unwrap();
        let c = Config::from_file(&j).unwrap();
        assert_eq!((c.deter, c.stoch, c.batch, c.hidden), (64, 8, 4, 200));
        let t = dir.join("c.toml");
        std::fs::write(&t, "deter = 32\nkl_balance = 0.5\n").unwrap();
        let c = Config::from_file(&t).unwrap();
        assert_eq!((c.deter, c.kl_balance), (32, 0.5));
        std::fs::write(&j, r#"{"detr": 64}"#).unwrap();
        let e = Config::from_file(&j).unwrap_err().to_string();
        assert!(e.contains("detr"), "{e}");
        std::fs::remove_dir_all(&dir).ok();
    }
}
