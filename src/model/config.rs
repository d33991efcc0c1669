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
    /// an error (a typo must not silently train the wrong model). Every problem is reported at
    /// once, each naming its key: unknown keys, values of the wrong type and values out of
    /// range (see [`Config::validate`]).
    pub fn from_file(path: &Path) -> Result<Config> {
        let text = std::fs::read_to_string(path).map_err(|e| Error::File {
            path: path.to_path_buf(),
            msg: e.to_string(),
        })?;
        let bad = |msg: String| Error::File {
            path: path.to_path_buf(),
            msg,
        };
        let is_toml = path.extension().and_then(|e| e.to_str()) == Some("toml");
        Config::from_text(&text, is_toml).map_err(bad)
    }

    /// Parse the text of a config file (TOML when `is_toml`, else JSON): every problem, one
    /// per line, or the validated configuration.
    fn from_text(text: &str, is_toml: bool) -> std::result::Result<Config, String> {
        // First the file's syntax, into a plain map of keys to values ...
        let table: serde_json::Map<String, serde_json::Value> = if is_toml {
            let table: toml::Table =
                toml::from_str(text).map_err(|e| format!("not valid TOML: {e}"))?;
            match serde_json::to_value(table) {
                Ok(serde_json::Value::Object(map)) => map,
                _ => return Err("not a table of keys and values".into()),
            }
        } else {
            match serde_json::from_str(text).map_err(|e| format!("not valid JSON: {e}"))? {
                serde_json::Value::Object(map) => map,
                other => {
                    return Err(format!(
                        "expected a JSON object of keys and values, found {}",
                        json_kind(&other)
                    ))
                }
            }
        };
        // ... then each key on its own, so every wrong key is named, not only the first.
        let defaults = match serde_json::to_value(Config::default()) {
            Ok(serde_json::Value::Object(map)) => map,
            _ => unreachable!("Config serialises to an object"),
        };
        let mut problems = Vec::new();
        let mut merged = defaults.clone();
        for (key, value) in table {
            let Some(default) = defaults.get(&key) else {
                let known: Vec<&str> = defaults.keys().map(String::as_str).collect();
                problems.push(format!(
                    "unknown key '{key}' (the keys are: {})",
                    known.join(", ")
                ));
                continue;
            };
            let mut single = serde_json::Map::new();
            single.insert(key.clone(), value.clone());
            if let Err(e) = serde_json::from_value::<Config>(serde_json::Value::Object(single)) {
                problems.push(format!(
                    "key '{key}': {} (default {default})",
                    strip_position(&e.to_string())
                ));
                continue;
            }
            merged.insert(key, value);
        }
        if !problems.is_empty() {
            return Err(format!("bad config:\n  {}", problems.join("\n  ")));
        }
        let cfg: Config = serde_json::from_value(serde_json::Value::Object(merged))
            .map_err(|e| format!("bad config: {e}"))?;
        let problems = cfg.problems();
        if !problems.is_empty() {
            return Err(format!("bad config:\n  {}", problems.join("\n  ")));
        }
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

    /// Reject values that cannot work; the error names every offending key at once.
    pub fn validate(&self) -> Result<()> {
        let problems = self.problems();
        if problems.is_empty() {
            Ok(())
        } else {
            Err(Error::Invalid(format!(
                "bad config:\n  {}",
                problems.join("\n  ")
            )))
        }
    }

    /// Every value out of its range, as `key: what is wrong` lines (empty when all is well).
    /// The ranges are those of the key table in the README.
    pub fn problems(&self) -> Vec<String> {
        let mut out = Vec::new();
        let sizes = [
            ("deter", self.deter),
            ("stoch", self.stoch),
            ("hidden", self.hidden),
            ("depth", self.depth),
            ("units", self.units),
            ("batch", self.batch),
            ("seq_len", self.seq_len),
        ];
        for (key, v) in sizes {
            if v == 0 || v > MAX_SIZE {
                out.push(format!("{key} must be in 1..={MAX_SIZE}, got {v}"));
            }
        }
        if self.action_dim > MAX_SIZE {
            out.push(format!(
                "action_dim must be in 0..={MAX_SIZE} (0: from the environment or data), got {}",
                self.action_dim
            ));
        }
        let floats = [
            ("min_std", self.min_std, Bound::Positive),
            ("free_nats", self.free_nats, Bound::NonNegative),
            ("kl_balance", self.kl_balance, Bound::UnitInterval),
            ("kl_scale", self.kl_scale, Bound::NonNegative),
            ("lr", self.lr, Bound::Positive),
            ("grad_clip", self.grad_clip, Bound::Positive),
        ];
        for (key, v, bound) in floats {
            if !bound.holds(v) {
                out.push(format!("{key} must be {}, got {v}", bound.describe()));
            }
        }
        out
    }
}

/// Largest accepted size (`deter`, `batch`, ...): far above any model that fits a device,
/// low enough that products of sizes cannot overflow.
const MAX_SIZE: usize = 1 << 20;

/// The range of a floating-point setting.
#[derive(Clone, Copy)]
enum Bound {
    /// Finite and > 0.
    Positive,
    /// Finite and >= 0.
    NonNegative,
    /// In [0, 1].
    UnitInterval,
}

impl Bound {
    fn holds(self, v: f32) -> bool {
        v.is_finite()
            && match self {
                Bound::Positive => v > 0.0,
                Bound::NonNegative => v >= 0.0,
                Bound::UnitInterval => (0.0..=1.0).contains(&v),
            }
    }

    fn describe(self) -> &'static str {
        match self {
            Bound::Positive => "a finite number > 0",
            Bound::NonNegative => "a finite number >= 0",
            Bound::UnitInterval => "in [0, 1]",
        }
    }
}

/// serde_json's messages end in "at line 1 column 12", which points into the one-key object
/// built for the check, not into the user's file: drop it.
fn strip_position(msg: &str) -> String {
    match msg.rfind(" at line ") {
        Some(i) => msg[..i].to_string(),
        None => msg.to_string(),
    }
}

fn json_kind(v: &serde_json::Value) -> &'static str {
    match v {
        serde_json::Value::Null => "null",
        serde_json::Value::Bool(_) => "a boolean",
        serde_json::Value::Number(_) => "a number",
        serde_json::Value::String(_) => "a string",
        serde_json::Value::Array(_) => "an array",
        serde_json::Value::Object(_) => "an object",
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

    #[test]
    fn every_problem_is_named_at_once() {
        let e = Config::from_text(
            r#"{"deter": -5, "stoch": 1.5, "detr": 3, "lr": 0, "kl_balance": 1.5, "free_nats": -1, "kl_scale": -2, "grad_clip": 0, "batch": 0, "min_std": 0}"#,
            false,
        )
        .unwrap_err();
        // Type errors and unknown keys first (the values cannot be built) ...
        for key in ["'deter'", "'stoch'", "'detr'"] {
            assert!(e.contains(key), "{key} not named in: {e}");
        }
        assert!(!e.contains("at line 1"), "{e}");
        // ... then, with those fixed, every range problem.
        let e = Config::from_text(
            "lr = 0\nkl_balance = 1.5\nfree_nats = -1\nkl_scale = -2\ngrad_clip = 0\nbatch = 0\nmin_std = 0\n",
            true,
        )
        .unwrap_err();
        for key in [
            "lr ",
            "kl_balance ",
            "free_nats ",
            "kl_scale ",
            "grad_clip ",
            "batch ",
            "min_std ",
        ] {
            assert!(e.contains(key), "{key} not named in: {e}");
        }
        assert_eq!(e.lines().count(), 8, "{e}");
        let e = Config::from_text("deter = -5\n", true).unwrap_err();
        assert!(e.contains("'deter'") && e.contains("-5"), "{e}");
        let e = Config::from_text("[1, 2]", false).unwrap_err();
        assert!(e.contains("object"), "{e}");
        let e = Config::from_text(r#"{"lr": NaN}"#, false).unwrap_err();
        assert!(e.contains("JSON"), "{e}");
        assert!(Config::from_text("", true).unwrap() == Config::default());
        assert!(Config::from_text(r#"{"lr": 1}"#, false).unwrap().lr == 1.0);
    }

    #[test]
    fn presets_are_valid_and_bad_values_are_refused() {
        for name in ["dreamer", "small", "tiny"] {
            Config::preset(name).unwrap().validate().unwrap();
        }
        let bad = Config {
            lr: f32::NAN,
            kl_balance: -0.1,
            ..Config::tiny()
        };
        let e = bad.validate().unwrap_err().to_string();
        assert!(e.contains("lr") && e.contains("kl_balance"), "{e}");
    }
}
