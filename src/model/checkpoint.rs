//! The checkpoint folder: one layout for every writer and reader — [`Trainer::save`] /
//! [`Trainer::load`] (`rssm train`, the Python `WorldModel`), `rssm dreamer` and the library
//! agent (which add the actor's and the critic's files), `rssm imagine` and
//! [`CheckpointPolicy`](crate::agent::CheckpointPolicy).
//!
//! - `checkpoint.safetensors`: the world model's weights, with the specification's key names;
//! - `optimizer.safetensors`: Adam's moments, with the step count, Adam's step count and the
//!   configuration (JSON) in its metadata ([`TrainerMeta`]): a folder says what model it holds;
//! - `{part}.safetensors` / `{part}_optimizer.safetensors`: the same pair for the actor and the
//!   critic (`actor`, `critic`) of a Dreamer's folder.
//!
//! [`Trainer::save`]: crate::model::Trainer::save
//! [`Trainer::load`]: crate::model::Trainer::load

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use crate::data::safetensors_io::{load_safetensors, save_safetensors, HostTensor};
use crate::error::{Error, Result};
use crate::model::Config;

/// The world model's weights in a checkpoint folder.
pub const WEIGHTS_FILE: &str = "checkpoint.safetensors";
/// The world model's optimiser state (and the [`TrainerMeta`]) in a checkpoint folder.
pub const OPTIMIZER_FILE: &str = "optimizer.safetensors";

/// What the metadata of `optimizer.safetensors` holds (as strings in the file: the step
/// counts in decimal, the configuration as JSON).
#[derive(Clone, Debug, PartialEq)]
pub struct TrainerMeta {
    /// The configuration the weights were trained with.
    pub config: Config,
    /// World-model steps done.
    pub step: u64,
    /// Adam's step count (its bias correction).
    pub adam_t: u64,
}

/// The configuration in the metadata `meta` of the file `path`.
fn config_of(meta: &HashMap<String, String>, path: &Path) -> Result<Config> {
    let bad = |msg: String| Error::File {
        path: path.to_path_buf(),
        msg,
    };
    serde_json::from_str(
        meta.get("config")
            .ok_or_else(|| bad("no config in metadata".into()))?,
    )
    .map_err(|e| bad(format!("bad config in metadata: {e}")))
}

impl TrainerMeta {
    fn to_metadata(&self) -> Result<HashMap<String, String>> {
        Ok(HashMap::from([
            ("step".to_string(), self.step.to_string()),
            ("adam_t".to_string(), self.adam_t.to_string()),
            (
                "config".to_string(),
                serde_json::to_string(&self.config).map_err(|e| Error::Invalid(e.to_string()))?,
            ),
        ]))
    }

    fn from_metadata(meta: &HashMap<String, String>, path: &Path) -> Result<TrainerMeta> {
        let number = |key: &str| {
            meta.get(key)
                .and_then(|s| s.parse().ok())
                .ok_or_else(|| Error::File {
                    path: path.to_path_buf(),
                    msg: format!("no {key} in metadata"),
                })
        };
        Ok(TrainerMeta {
            config: config_of(meta, path)?,
            step: number("step")?,
            adam_t: number("adam_t")?,
        })
    }
}

/// A checkpoint folder (see the module's documentation for its files).
#[derive(Clone, Debug)]
pub struct Checkpoint {
    dir: PathBuf,
}

impl Checkpoint {
    /// The folder `dir` (nothing is read or created yet).
    pub fn new(dir: impl Into<PathBuf>) -> Checkpoint {
        Checkpoint { dir: dir.into() }
    }

    /// The folder.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// `checkpoint.safetensors`: the world model's weights.
    pub fn weights(&self) -> PathBuf {
        self.dir.join(WEIGHTS_FILE)
    }

    /// `optimizer.safetensors`: the world model's Adam state and [`TrainerMeta`].
    pub fn optimizer(&self) -> PathBuf {
        self.dir.join(OPTIMIZER_FILE)
    }

    /// `{part}.safetensors`: the weights of another part (`actor`, `critic`).
    pub fn part_weights(&self, part: &str) -> PathBuf {
        self.dir.join(format!("{part}.safetensors"))
    }

    /// `{part}_optimizer.safetensors`: the Adam state of another part.
    pub fn part_optimizer(&self, part: &str) -> PathBuf {
        self.dir.join(format!("{part}_optimizer.safetensors"))
    }

    /// Whether the folder holds the weights of `part` (an actor makes `rssm imagine` dream
    /// with it).
    pub fn has_part(&self, part: &str) -> bool {
        self.part_weights(part).exists()
    }

    /// The world model's configuration, from the metadata of `optimizer.safetensors`.
    pub fn config(&self) -> Result<Config> {
        let path = self.optimizer();
        let (_, meta) = load_safetensors(&path)?;
        config_of(&meta, &path)
    }

    /// The tensors of `optimizer.safetensors` and its metadata.
    pub fn read_optimizer(&self) -> Result<(BTreeMap<String, HostTensor>, TrainerMeta)> {
        let path = self.optimizer();
        let (tensors, meta) = load_safetensors(&path)?;
        Ok((tensors, TrainerMeta::from_metadata(&meta, &path)?))
    }

    /// Write `optimizer.safetensors` (atomically).
    pub fn write_optimizer(
        &self,
        tensors: &BTreeMap<String, HostTensor>,
        meta: &TrainerMeta,
    ) -> Result<()> {
        save_safetensors(self.optimizer(), tensors, Some(meta.to_metadata()?))?;
        Ok(())
    }
}
