//! A world-model training step (loss, backward, clipped Adam: one submit) and checkpoints that
//! resume exactly.
//!
//! Checkpoint layout in a folder (see [`Checkpoint`]):
//! - `checkpoint.safetensors`: the weights, with exactly the specification's key names;
//! - `optimizer.safetensors`: Adam's first and second moments as `adam.m` / `adam.v` (flat, in
//!   the order of the weights), with the step count and the configuration in its metadata.
//!
//! Both are written atomically (temporary file + rename), the weights last, so an interrupted
//! save leaves the previous pair intact.

use std::collections::BTreeMap;
use std::path::Path;

use crate::data::safetensors_io::HostTensor;
use crate::error::{Error, Result};
use crate::gpu::Gpu;
use crate::model::checkpoint::{Checkpoint, TrainerMeta};
use crate::model::{Config, DeviceBatch, WorldModel};
use crate::ops::adam::{Adam, AdamConfig, FlatParams};
use crate::tensor::{Tape, Tensor};

/// The loss terms of one step, read back together at its end.
#[derive(Clone, Debug, serde::Serialize)]
pub struct StepMetrics {
    pub step: u64,
    pub loss: f32,
    pub image_nll: f32,
    pub reward_nll: f32,
    pub cont_nll: f32,
    pub kl: f32,
    pub kl_loss: f32,
    pub grad_norm: f32,
}

/// A recorded training step whose metrics are not read yet (see [`Trainer::record_step`]).
pub struct PendingStep {
    step: u64,
    /// loss, image_nll, reward_nll, cont_nll, kl, kl_loss, grad_norm: `[1]` tensors.
    scalars: [Tensor; 7],
}

impl PendingStep {
    /// Submit what [`Trainer::record_step`] recorded (if not yet submitted) and read back its
    /// metrics.
    pub fn read(self) -> Result<StepMetrics> {
        let s = &self.scalars;
        let gpu = s[0].gpu().clone();
        let bufs: Vec<_> = s.iter().map(|t| t.buf()).collect();
        let vals = gpu.read_many(&bufs)?;
        Ok(StepMetrics {
            step: self.step,
            loss: vals[0][0],
            image_nll: vals[1][0],
            reward_nll: vals[2][0],
            cont_nll: vals[3][0],
            kl: vals[4][0],
            kl_loss: vals[5][0],
            grad_norm: vals[6][0],
        })
    }
}

/// Model + optimiser + step counter.
pub struct Trainer {
    pub model: WorldModel,
    pub flat: FlatParams,
    pub adam: Adam,
    pub step: u64,
    /// `(deter, stoch)` `[B,T,.]` of the last step's posterior: the starts of imagination.
    pub last_posterior: Option<(Tensor, Tensor)>,
}

impl Trainer {
    pub fn new(gpu: &Gpu, cfg: &Config) -> Result<Trainer> {
        let model = WorldModel::new(gpu, cfg)?;
        let named: Vec<(&str, &Tensor)> = model
            .params
            .names()
            .iter()
            .map(|n| n.as_str())
            .zip(model.params.tensors())
            .collect();
        let flat = FlatParams::from_tensors(gpu, &named)?;
        let adam = Adam::new(
            &flat,
            AdamConfig::new(cfg.lr as f64).with_clip(cfg.grad_clip as f64),
        )?;
        Ok(Trainer {
            model,
            flat,
            adam,
            step: 0,
            last_posterior: None,
        })
    }

    /// One training step on `batch`: records the loss, its backward and the update, submits
    /// once, and reads back the metrics.
    pub fn train_step(&mut self, batch: &DeviceBatch) -> Result<StepMetrics> {
        self.record_step(batch)?.read()
    }

    /// Record a training step (loss, backward, update) without submitting it: the first half
    /// of [`Trainer::train_step`], for benchmarks that time the host's recording apart from
    /// the device's work. [`PendingStep::read`] submits and reads the metrics.
    pub fn record_step(&mut self, batch: &DeviceBatch) -> Result<PendingStep> {
        let gpu = self.model.gpu().clone();
        let tape = Tape::new(&gpu);
        let p = self.model.params.bind(&tape);
        let out = self.model.loss(&tape, &p, batch, self.step)?;
        let loss = tape.value(out.loss);
        let vars = p.vars().to_vec();
        let grads = tape.backward(out.loss)?;
        let g: Vec<Option<&Tensor>> = vars.iter().map(|v| grads.get(*v)).collect();
        self.adam.step(&self.flat, &g)?;
        drop(g);
        drop(grads);
        let norm = self
            .adam
            .last_norm()
            .cloned()
            .unwrap_or_else(|| loss.clone());
        self.step += 1;
        self.last_posterior = Some((out.deter.clone(), out.stoch.clone()));
        Ok(PendingStep {
            step: self.step,
            scalars: [
                loss,
                out.image_nll,
                out.reward_nll,
                out.cont_nll,
                out.kl,
                out.kl_loss,
                norm,
            ],
        })
    }

    /// Write the checkpoint pair into `dir` (atomically).
    pub fn save(&self, dir: &Path) -> Result<()> {
        std::fs::create_dir_all(dir)?;
        let (m, v, t) = self.adam.state()?;
        let vals = m.gpu().read_many(&[m.buf(), v.buf()])?;
        let mut opt = BTreeMap::new();
        opt.insert(
            "adam.m".to_string(),
            HostTensor::new(vec![m.len()], vals[0].clone())?,
        );
        opt.insert(
            "adam.v".to_string(),
            HostTensor::new(vec![v.len()], vals[1].clone())?,
        );
        let ckpt = Checkpoint::new(dir);
        ckpt.write_optimizer(
            &opt,
            &TrainerMeta {
                config: self.model.cfg.clone(),
                step: self.step,
                adam_t: t,
            },
        )?;
        self.model.params.save(&ckpt.weights())
    }

    /// Load the checkpoint pair from `dir`; the configuration must match the one saved.
    pub fn load(&mut self, dir: &Path) -> Result<()> {
        let ckpt = Checkpoint::new(dir);
        let wpath = ckpt.weights();
        let weights = crate::nn::load_file(&wpath)?;
        self.model
            .params
            .check_host(&weights)
            .map_err(|e| Error::File {
                path: wpath.clone(),
                msg: e.to_string(),
            })?;
        let (opt, meta) = ckpt.read_optimizer()?;
        let bad = |msg: String| Error::File {
            path: ckpt.optimizer(),
            msg,
        };
        if meta.config != self.model.cfg {
            return Err(bad(format!(
                "checkpoint was trained with a different configuration:\n  saved   {:?}\n  current {:?}",
                meta.config, self.model.cfg
            )));
        }
        let (step, t) = (meta.step, meta.adam_t);
        let n = self.flat.len();
        let (m, v) = match (opt.get("adam.m"), opt.get("adam.v")) {
            (Some(m), Some(v)) if m.data.len() == n && v.data.len() == n => (m, v),
            _ => return Err(bad(format!("adam.m / adam.v must both hold {n} values"))),
        };
        crate::data::safetensors_io::check_finite(&opt)?;
        // Weights into the flat buffer (authoritative) and its views.
        for name in self.model.params.names() {
            self.flat.set(name, &weights[name].data)?;
        }
        let gpu = self.flat.flat().gpu().clone();
        let mt = Tensor::from_vec(&gpu, &[n], &m.data)?;
        let vt = Tensor::from_vec(&gpu, &[n], &v.data)?;
        self.adam.set_state(&mt, &vt, t)?;
        self.step = step;
        Ok(())
    }
}
