//! `rssm.WorldModel`: training steps, observe, imagine and checkpoints.

use std::path::PathBuf;

use numpy::PyUntypedArrayMethods;
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyTuple};

use rssm::agent::{checkpoint_config, dream, Actor, BehaviourConfig, DreamActions};
use rssm::gpu::Gpu;
use rssm::model::{Config, DeviceBatch, Trainer};
use rssm::ops::gaussian::{gaussian_head, Noise};
use rssm::tensor::{Tape, Tensor};

use crate::arrays::*;
use crate::config::*;
use crate::device::*;
use crate::dreamer::*;
use crate::errors::*;
use crate::policy::*;

/// The world model with its Adam state: `train_step`, `observe`, `imagine`, checkpoints in the
/// layout `rssm train` writes (`checkpoint.safetensors` + `optimizer.safetensors` in a folder).
#[pyclass(name = "WorldModel", module = "rssm")]
pub(crate) struct PyWorldModel {
    pub(crate) trainer: Trainer,
    pub(crate) gpu: Gpu,
}

/// The arrays of a training batch, checked against `cfg`.
pub(crate) struct HostBatch {
    pub(crate) obs: Vec<f32>,
    pub(crate) action: Vec<f32>,
    pub(crate) reward: Vec<f32>,
    pub(crate) cont: Vec<f32>,
    pub(crate) eps: Option<Vec<f32>>,
    pub(crate) b: usize,
    pub(crate) t: usize,
}

pub(crate) fn host_batch(
    cfg: &Config,
    obs: &Bound<'_, PyAny>,
    action: &Bound<'_, PyAny>,
    reward: &Bound<'_, PyAny>,
    cont: &Bound<'_, PyAny>,
    eps: Option<&Bound<'_, PyAny>>,
) -> PyResult<HostBatch> {
    let (obs, b, t) = batch_obs(obs, "obs")?;
    let a = cfg.action_dim;
    let bt = format!("(B, T) = ({b}, {t})");
    let (action, _) = float_array(
        action,
        "action",
        &[Some(b), Some(t), Some(a)],
        &format!("(B, T, A) = ({b}, {t}, {a})"),
    )?;
    let (reward, _) = float_array(reward, "reward", &[Some(b), Some(t)], &bt)?;
    let (cont, _) = float_array(cont, "cont", &[Some(b), Some(t)], &bt)?;
    if let Some(v) = cont.iter().find(|v| !(0.0..=1.0).contains(*v)) {
        return Err(PyValueError::new_err(format!(
            "cont: values must lie in [0, 1] (1 - terminal), found {v}"
        )));
    }
    let eps = match eps {
        Some(e) => Some(
            float_array(
                e,
                "eps",
                &[Some(b), Some(t), Some(cfg.stoch)],
                &format!("(B, T, stoch) = ({b}, {t}, {})", cfg.stoch),
            )?
            .0,
        ),
        None => None,
    };
    Ok(HostBatch {
        obs,
        action,
        reward,
        cont,
        eps,
        b,
        t,
    })
}

pub(crate) fn device_batch(gpu: &Gpu, h: &HostBatch, cfg: &Config) -> rssm::Result<DeviceBatch> {
    let a = cfg.action_dim;
    Ok(DeviceBatch {
        obs: Tensor::from_vec(gpu, &[h.b, h.t, 3, 64, 64], &h.obs)?,
        action: Tensor::from_vec(gpu, &[h.b, h.t, a], &h.action)?,
        reward: Tensor::from_vec(gpu, &[h.b, h.t], &h.reward)?,
        cont: Tensor::from_vec(gpu, &[h.b, h.t], &h.cont)?,
        eps: match &h.eps {
            Some(e) => Some(Tensor::from_vec(gpu, &[h.b, h.t, cfg.stoch], e)?),
            None => None,
        },
    })
}

/// The start state of an imagined rollout: a dict from `observe` (its last step) or a tuple
/// `(deter [B, deter], stoch [B, stoch])`.
pub(crate) fn start_state(
    cfg: &Config,
    start: &Bound<'_, PyAny>,
) -> PyResult<(Vec<f32>, Vec<f32>, usize)> {
    let (deter, stoch) = if let Ok(d) = start.cast::<PyDict>() {
        let get = |k: &str| -> PyResult<Bound<'_, PyAny>> {
            d.get_item(k)?.ok_or_else(|| {
                PyValueError::new_err(format!(
                    "start: a dict needs '{k}' (the result of WorldModel.observe)"
                ))
            })
        };
        (get("deter")?, get("stoch")?)
    } else if let Ok(t) = start.cast::<PyTuple>() {
        if t.len() != 2 {
            return Err(PyValueError::new_err(
                "start: expected (deter, stoch) or the dict WorldModel.observe returns",
            ));
        }
        (t.get_item(0)?, t.get_item(1)?)
    } else {
        return Err(PyValueError::new_err(
            "start: expected (deter, stoch) or the dict WorldModel.observe returns",
        ));
    };
    // [B, T, D] from observe: take the last step.
    let last = |x: Bound<'_, PyAny>, name: &str, size: usize| -> PyResult<(Vec<f32>, usize)> {
        let a = as_array(&x)?;
        let shape = a.shape().to_vec();
        let what = format!("(B, {size}) or (B, T, {size})");
        match shape.len() {
            2 => {
                let (v, s) = float_array(&x, name, &[None, Some(size)], &what)?;
                Ok((v, s[0]))
            }
            3 => {
                let (v, s) = float_array(&x, name, &[None, None, Some(size)], &what)?;
                let (b, t) = (s[0], s[1]);
                if t == 0 {
                    return Err(PyValueError::new_err(format!("{name}: no time steps")));
                }
                let mut out = Vec::with_capacity(b * size);
                for i in 0..b {
                    let row = (i * t + t - 1) * size;
                    out.extend_from_slice(&v[row..row + size]);
                }
                Ok((out, b))
            }
            _ => Err(PyValueError::new_err(format!(
                "{name}: expected a float array of shape {what}, got shape {}",
                shape_str(&shape)
            ))),
        }
    };
    let (h, bh) = last(deter, "start deter", cfg.deter)?;
    let (s, bs) = last(stoch, "start stoch", cfg.stoch)?;
    if bh != bs || bh == 0 {
        return Err(PyValueError::new_err(format!(
            "start: deter and stoch must have the same batch size >= 1, got {bh} and {bs}"
        )));
    }
    Ok((h, s, bh))
}

/// The actor of a `Dreamer` or a `Policy`.
pub(crate) fn with_actor<T>(
    actor: &Bound<'_, PyAny>,
    f: impl FnOnce(&Actor) -> PyResult<T>,
) -> PyResult<T> {
    if let Ok(d) = actor.extract::<PyRef<'_, PyDreamer>>() {
        return f(&d.agent.behaviour.actor);
    }
    if let Ok(p) = actor.extract::<PyRef<'_, PyPolicy>>() {
        return f(&p.policy.actor);
    }
    Err(PyValueError::new_err(format!(
        "actor: expected an rssm.Dreamer or rssm.Policy, got {}",
        actor.get_type().name()?
    )))
}

/// Decode a rollout imagined from `(h, s)`; shared by WorldModel.imagine.
#[allow(clippy::too_many_arguments)]
pub(crate) fn imagine_frames<'py>(
    py: Python<'py>,
    trainer: &Trainer,
    gpu: &Gpu,
    start: &Bound<'py, PyAny>,
    actions: Option<&Bound<'py, PyAny>>,
    actor: Option<&Bound<'py, PyAny>>,
    steps: Option<usize>,
) -> PyResult<Bound<'py, PyAny>> {
    let cfg = &trainer.model.cfg;
    let (h, s, b) = start_state(cfg, start)?;
    let model = &trainer.model;
    let chw = match (actions, actor) {
        (Some(a), None) => {
            let arr = as_array(a)?;
            let t = arr.shape().get(1).copied().unwrap_or(0);
            let t = steps.unwrap_or(t);
            if t == 0 {
                return Err(PyValueError::new_err(
                    "steps: must be at least 1 (or actions must have a time axis)",
                ));
            }
            let ad = cfg.action_dim;
            let (av, _) = float_array(
                a,
                "actions",
                &[Some(b), Some(t), Some(ad)],
                &format!("(B, steps, A) = ({b}, {t}, {ad})"),
            )?;
            engine(py, || {
                let ht = Tensor::from_vec(gpu, &[b, cfg.deter], &h)?;
                let st = Tensor::from_vec(gpu, &[b, cfg.stoch], &s)?;
                let at = Tensor::from_vec(gpu, &[b, t, ad], &av)?;
                dream(model, &ht, &st, DreamActions::Given(&at), t)?.to_vec()
            })
            .map(|v| (v, t))?
        }
        (None, Some(actor)) => {
            let t = steps.ok_or_else(|| {
                PyValueError::new_err("steps: required when the actions come from an actor")
            })?;
            if t == 0 {
                return Err(PyValueError::new_err("steps: must be at least 1"));
            }
            with_actor(actor, |actor| {
                engine(py, || {
                    let ht = Tensor::from_vec(gpu, &[b, cfg.deter], &h)?;
                    let st = Tensor::from_vec(gpu, &[b, cfg.stoch], &s)?;
                    dream(model, &ht, &st, DreamActions::Actor(actor), t)?.to_vec()
                })
            })
            .map(|v| (v, t))?
        }
        _ => {
            return Err(PyValueError::new_err(
                "imagine: give exactly one of actions (B, steps, A) or actor (an rssm.Dreamer or rssm.Policy)",
            ))
        }
    };
    to_frames(py, &chw.0, b, chw.1)
}

#[pymethods]
impl PyWorldModel {
    /// A fresh world model for `config` (default: the preset for the device) with `action_dim`
    /// action components (default: the configuration's).
    #[new]
    #[pyo3(signature = (config = None, action_dim = None, device = None))]
    fn new(
        py: Python<'_>,
        config: Option<PyRef<'_, PyConfig>>,
        action_dim: Option<usize>,
        device: Option<PyRef<'_, PyDevice>>,
    ) -> PyResult<Self> {
        let (gpu, tune) = gpu_and_tune(py, device)?;
        let mut cfg = config_or_default(config, &gpu);
        if let Some(a) = action_dim {
            cfg.action_dim = a;
        }
        if cfg.action_dim == 0 {
            return Err(PyValueError::new_err(
                "action_dim: must be at least 1 (give action_dim= or set it in the Config)",
            ));
        }
        let (trainer, gpu) = engine(py, || {
            let gpu = tuned_for(&gpu, tune, &cfg, BehaviourConfig::default().horizon)?;
            Ok((Trainer::new(&gpu, &cfg)?, gpu))
        })?;
        Ok(PyWorldModel { trainer, gpu })
    }

    /// Load a checkpoint folder (`checkpoint.safetensors` + `optimizer.safetensors`, as written
    /// by `save`, `rssm train` or `rssm dreamer`): weights, Adam state and step. A weights file
    /// alone loads with `config=` (a fresh optimiser, step 0).
    #[staticmethod]
    #[pyo3(signature = (path, config = None, device = None))]
    fn load(
        py: Python<'_>,
        path: PathBuf,
        config: Option<PyRef<'_, PyConfig>>,
        device: Option<PyRef<'_, PyDevice>>,
    ) -> PyResult<Self> {
        let (gpu, tune) = gpu_and_tune(py, device)?;
        let config: Option<Config> = config.map(|c| c.cfg.clone());
        let horizon = BehaviourConfig::default().horizon;
        let (trainer, gpu) = engine(py, || {
            if path.is_dir() {
                let cfg = checkpoint_config(&path)?;
                if let Some(c) = &config {
                    if *c != cfg {
                        return Err(rssm::Error::Invalid(format!(
                            "config: the checkpoint in {} was trained with {cfg:?}, not {:?}",
                            path.display(),
                            c
                        )));
                    }
                }
                let gpu = tuned_for(&gpu, tune, &cfg, horizon)?;
                let mut trainer = Trainer::new(&gpu, &cfg)?;
                trainer.load(&path)?;
                Ok((trainer, gpu))
            } else {
                let cfg = config.clone().ok_or_else(|| {
                    rssm::Error::Invalid(format!(
                        "{} is a weights file: give config= too (or load its checkpoint folder)",
                        path.display()
                    ))
                })?;
                let gpu = tuned_for(&gpu, tune, &cfg, horizon)?;
                let trainer = Trainer::new(&gpu, &cfg)?;
                let weights = rssm::nn::load_file(&path)?;
                trainer
                    .model
                    .params
                    .check_host(&weights)
                    .map_err(|e| rssm::Error::File {
                        path: path.clone(),
                        msg: e.to_string(),
                    })?;
                for name in trainer.model.params.names() {
                    trainer.flat.set(name, &weights[name].data)?;
                }
                Ok((trainer, gpu))
            }
        })?;
        Ok(PyWorldModel { trainer, gpu })
    }

    /// Write the checkpoint folder `path` (atomically): the layout `rssm train` writes, which
    /// `rssm imagine`, `rssm evaluate` (its `checkpoint.safetensors`) and `rssm train --resume`
    /// read.
    fn save(&self, py: Python<'_>, path: PathBuf) -> PyResult<()> {
        let trainer = &self.trainer;
        engine(py, || trainer.save(&path))
    }

    #[getter]
    fn config(&self) -> PyConfig {
        PyConfig {
            cfg: self.trainer.model.cfg.clone(),
        }
    }

    /// Training steps done.
    #[getter]
    fn step(&self) -> u64 {
        self.trainer.step
    }

    /// Number of weights.
    #[getter]
    fn num_parameters(&self) -> usize {
        self.trainer.model.params.num_values()
    }

    /// One training step (loss, backward, clipped Adam) on a batch: `obs` uint8
    /// `(B, T, 64, 64, 3)` or float `(B, T, 3, 64, 64)` in [-0.5, 0.5], `action (B, T, A)`
    /// (the action that led to each frame), `reward (B, T)`, `cont (B, T)` (0 at terminal
    /// frames), optional `eps (B, T, stoch)` (the posterior noise; by default drawn from the
    /// step number). Returns the loss terms before the update, as `rssm train` logs them.
    #[pyo3(signature = (obs, action, reward, cont, eps = None))]
    fn train_step<'py>(
        &mut self,
        py: Python<'py>,
        obs: &Bound<'py, PyAny>,
        action: &Bound<'py, PyAny>,
        reward: &Bound<'py, PyAny>,
        cont: &Bound<'py, PyAny>,
        eps: Option<&Bound<'py, PyAny>>,
    ) -> PyResult<Bound<'py, PyDict>> {
        let cfg = self.trainer.model.cfg.clone();
        let hb = host_batch(&cfg, obs, action, reward, cont, eps)?;
        let (gpu, trainer) = (&self.gpu, &mut self.trainer);
        let m = engine(py, || {
            let db = device_batch(gpu, &hb, &cfg)?;
            trainer.train_step(&db)
        })?;
        metrics_dict(py, &m)
    }

    /// Filter a batch with the posterior from the zero state: `obs` as in `train_step`,
    /// `action (B, T, A)`. Returns `deter (B, T, deter)`, `stoch (B, T, stoch)` (the
    /// posterior's mean, or a sample with `sample=True`), `prior_mean (B, T, stoch)` and
    /// `decoded` (uint8 reconstructions `(B, T, 64, 64, 3)`).
    #[pyo3(signature = (obs, action, sample = false))]
    fn observe<'py>(
        &self,
        py: Python<'py>,
        obs: &Bound<'py, PyAny>,
        action: &Bound<'py, PyAny>,
        sample: bool,
    ) -> PyResult<Bound<'py, PyDict>> {
        let cfg = self.trainer.model.cfg.clone();
        let (obs, b, t) = batch_obs(obs, "obs")?;
        let a = cfg.action_dim;
        let (act, _) = float_array(
            action,
            "action",
            &[Some(b), Some(t), Some(a)],
            &format!("(B, T, A) = ({b}, {t}, {a})"),
        )?;
        let (gpu, model, step) = (&self.gpu, &self.trainer.model, self.trainer.step);
        let (deter, stoch, prior, decoded) = engine(py, || {
            let tape = Tape::no_grad(gpu);
            let p = model.params.bind_frozen(&tape);
            let img = tape.constant(&Tensor::from_vec(gpu, &[b * t, 3, 64, 64], &obs)?);
            let embed = model.encode(&tape, &p, img)?;
            let embed = rssm::ops::reshape(&tape, embed, &[b, t, cfg.embed()])?;
            let av = tape.constant(&Tensor::from_vec(gpu, &[b, t, a], &act)?);
            let eps = if sample {
                rssm::ops::gaussian::normal_noise(gpu, b * t * cfg.stoch, cfg.seed ^ 0x0b5e, step)?
                    .reshape(&[b, t, cfg.stoch])?
            } else {
                Tensor::zeros(gpu, &[b, t, cfg.stoch])?
            };
            let o = model.observe(&tape, &p, embed, av, &eps)?;
            let prior = rssm::ops::reshape(&tape, o.prior_stats, &[b * t, 2 * cfg.stoch])?;
            let zeros = Tensor::zeros(gpu, &[b * t, cfg.stoch])?;
            let prior_mean = gaussian_head(&tape, prior, cfg.min_std, Noise::Given(zeros))?.mean;
            let feat = rssm::ops::concat_last(&tape, &[o.stoch, o.deter])?;
            let feat = rssm::ops::reshape(&tape, feat, &[b * t, cfg.feat()])?;
            let decoded = model.decode(&tape, &p, feat)?;
            let vals = gpu.read_many(&[
                tape.value(o.deter).buf(),
                tape.value(o.stoch).buf(),
                tape.value(prior_mean).buf(),
                tape.value(decoded).buf(),
            ])?;
            let mut it = vals.into_iter();
            let mut next = || it.next().unwrap_or_default();
            Ok((next(), next(), next(), next()))
        })?;
        let d = PyDict::new(py);
        d.set_item("deter", to_numpy(py, deter, &[b, t, cfg.deter])?)?;
        d.set_item("stoch", to_numpy(py, stoch, &[b, t, cfg.stoch])?)?;
        d.set_item("prior_mean", to_numpy(py, prior, &[b, t, cfg.stoch])?)?;
        d.set_item("decoded", to_frames(py, &decoded, b, t)?)?;
        Ok(d)
    }

    /// Decode a rollout of the prior imagined from `start` (the dict `observe` returns, whose
    /// last step is used, or `(deter (B, deter), stoch (B, stoch))`), driven by `actions
    /// (B, steps, A)` or by `actor` (an `rssm.Dreamer` or `rssm.Policy`, its mode) for `steps`
    /// steps. Returns uint8 frames `(B, steps, 64, 64, 3)`.
    #[pyo3(signature = (start, actions = None, actor = None, steps = None))]
    fn imagine<'py>(
        &self,
        py: Python<'py>,
        start: &Bound<'py, PyAny>,
        actions: Option<&Bound<'py, PyAny>>,
        actor: Option<&Bound<'py, PyAny>>,
        steps: Option<usize>,
    ) -> PyResult<Bound<'py, PyAny>> {
        imagine_frames(py, &self.trainer, &self.gpu, start, actions, actor, steps)
    }

    fn __repr__(&self) -> String {
        let c = &self.trainer.model.cfg;
        format!(
            "rssm.WorldModel(deter={}, stoch={}, action_dim={}, step={}, device='{}')",
            c.deter,
            c.stoch,
            c.action_dim,
            self.trainer.step,
            self.gpu.report().short()
        )
    }
}
