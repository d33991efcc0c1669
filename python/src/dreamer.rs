//! `rssm.Dreamer`: the whole agent (acting, replay, world model and behaviour updates,
//! checkpoints).

use std::path::PathBuf;

use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::PyDict;

use rssm::agent::{Dreamer, DreamerSettings};
use rssm::model::StepMetrics;

use crate::arrays::*;
use crate::config::*;
use crate::device::*;
use crate::errors::*;
use crate::progress::*;

/// A whole Dreamer agent: replay of episodes, world model, actor and critic.
///
/// The loop, with a Gymnasium-style environment giving 64x64x3 uint8 frames and taking
/// actions in [-1, 1] (see `examples/python`)::
///
///     obs, _ = env.reset()
///     agent.observe(obs)                      # the first frame of an episode
///     while True:
///         action = agent.act(obs)             # explore=True: sample + noise
///         obs, reward, terminated, truncated, _ = env.step(action)
///         agent.observe(obs, action, reward, terminated, terminated or truncated)
///         if terminated or truncated: break
///     agent.update(100)                       # world model + behaviour
#[pyclass(name = "Dreamer", module = "rssm")]
pub(crate) struct PyDreamer {
    pub(crate) agent: Dreamer,
}

pub(crate) fn update_means<'py>(
    py: Python<'py>,
    ms: &[rssm::agent::UpdateMetrics],
) -> PyResult<Bound<'py, PyDict>> {
    let d = PyDict::new(py);
    let n = ms.len().max(1) as f64;
    let wm =
        |f: fn(&StepMetrics) -> f32| ms.iter().map(|m| f(&m.world_model) as f64).sum::<f64>() / n;
    d.set_item("updates", ms.len())?;
    d.set_item("step", ms.last().map(|m| m.world_model.step))?;
    d.set_item("loss", wm(|m| m.loss))?;
    d.set_item("image_nll", wm(|m| m.image_nll))?;
    d.set_item("reward_nll", wm(|m| m.reward_nll))?;
    d.set_item("cont_nll", wm(|m| m.cont_nll))?;
    d.set_item("kl", wm(|m| m.kl))?;
    d.set_item("kl_loss", wm(|m| m.kl_loss))?;
    d.set_item("grad_norm", wm(|m| m.grad_norm))?;
    d.set_item("first_loss", ms.first().map(|m| m.world_model.loss))?;
    d.set_item("last_loss", ms.last().map(|m| m.world_model.loss))?;
    let beh: Vec<_> = ms.iter().filter_map(|m| m.behaviour.as_ref()).collect();
    d.set_item("behaviour_updates", beh.len())?;
    if !beh.is_empty() {
        let k = beh.len() as f64;
        let mean = |f: fn(&rssm::agent::BehaviourMetrics) -> f32| {
            beh.iter().map(|b| f(b) as f64).sum::<f64>() / k
        };
        d.set_item("actor_loss", mean(|b| b.actor_loss))?;
        d.set_item("critic_loss", mean(|b| b.critic_loss))?;
        d.set_item("mean_return", mean(|b| b.mean_return))?;
        d.set_item("mean_value", mean(|b| b.mean_value))?;
        d.set_item("actor_mean_rms", mean(|b| b.actor_mean_rms))?;
        d.set_item("actor_std", mean(|b| b.actor_std))?;
    }
    Ok(d)
}

#[pymethods]
impl PyDreamer {
    /// A fresh agent for `action_dim` continuous actions in [-1, 1] and 64x64 RGB frames.
    /// `config`: the world model's (default: the preset for the device); the rest are the
    /// agent's settings (`rssm dreamer`'s defaults).
    #[new]
    #[pyo3(signature = (
        action_dim,
        obs_shape = (64, 64, 3),
        config = None,
        device = None,
        *,
        behaviour_warmup = 300,
        expl_noise = 0.3,
        horizon = 15,
        gamma = 0.99,
        lambda_ = 0.95,
        actor_lr = 8e-5,
        critic_lr = 8e-5,
        replay_capacity = 2_000_000,
    ))]
    #[allow(clippy::too_many_arguments)]
    fn new(
        py: Python<'_>,
        action_dim: usize,
        obs_shape: (usize, usize, usize),
        config: Option<PyRef<'_, PyConfig>>,
        device: Option<PyRef<'_, PyDevice>>,
        behaviour_warmup: u64,
        expl_noise: f32,
        horizon: usize,
        gamma: f32,
        lambda_: f32,
        actor_lr: f32,
        critic_lr: f32,
        replay_capacity: usize,
    ) -> PyResult<Self> {
        if obs_shape != (64, 64, 3) {
            return Err(PyValueError::new_err(format!(
                "obs_shape: the model sees (64, 64, 3) uint8 frames, got {obs_shape:?}; resize the environment's frames (examples/python/pixel_env.py does)"
            )));
        }
        if action_dim == 0 {
            return Err(PyValueError::new_err("action_dim: must be at least 1"));
        }
        let (gpu, tune) = gpu_and_tune(py, device)?;
        let mut cfg = config_or_default(config, &gpu);
        cfg.action_dim = action_dim;
        let mut settings = DreamerSettings {
            behaviour_warmup,
            expl_noise,
            replay_capacity,
            ..DreamerSettings::default()
        };
        settings.behaviour.horizon = horizon;
        settings.behaviour.gamma = gamma;
        settings.behaviour.lambda = lambda_;
        settings.behaviour.actor_lr = actor_lr;
        settings.behaviour.critic_lr = critic_lr;
        let agent = engine(py, || {
            let gpu = tuned_for(&gpu, tune, &cfg, settings.behaviour.horizon)?;
            Dreamer::new(&gpu, &cfg, settings)
        })?;
        Ok(PyDreamer { agent })
    }

    /// The action (float32 `(A,)` in [-1, 1]) for `obs` (uint8 `(64, 64, 3)`): sampled plus
    /// exploration noise when `explore`, the actor's mode otherwise.
    #[pyo3(signature = (obs, explore = true))]
    fn act<'py>(
        &mut self,
        py: Python<'py>,
        obs: &Bound<'py, PyAny>,
        explore: bool,
    ) -> PyResult<Bound<'py, PyAny>> {
        let f = frame(obs, "obs")?;
        let agent = &mut self.agent;
        let a = engine(py, || agent.act(&f, explore))?;
        let n = a.len();
        to_numpy(py, a, &[n])
    }

    /// Record what the environment did. `observe(obs)` (no action): the first frame of an
    /// episode. `observe(obs, action, reward, terminal, done)`: `action` was executed,
    /// `reward` received and `obs` reached; `terminal` if `obs` is a terminal state (not a
    /// time limit), `done` if the episode ended (terminal or truncated). A finished episode
    /// goes into the replay.
    #[pyo3(signature = (obs, action = None, reward = 0.0, terminal = false, done = false))]
    fn observe(
        &mut self,
        py: Python<'_>,
        obs: &Bound<'_, PyAny>,
        action: Option<&Bound<'_, PyAny>>,
        reward: f64,
        terminal: bool,
        done: bool,
    ) -> PyResult<()> {
        let f = frame(obs, "obs")?;
        let agent = &mut self.agent;
        match action {
            None => engine(py, || agent.begin_episode(&f)),
            Some(a) => {
                let ad = agent.action_dim();
                let (av, _) = float_array(a, "action", &[Some(ad)], &format!("({ad},)"))?;
                if let Some((i, v)) = av.iter().enumerate().find(|(_, v)| v.abs() > 1.0) {
                    return Err(PyValueError::new_err(format!(
                        "action: values must lie in [-1, 1] (rescale in the environment wrapper), found {v} at index {i}"
                    )));
                }
                if !reward.is_finite() {
                    return Err(PyValueError::new_err(format!(
                        "reward: must be finite, got {reward}"
                    )));
                }
                engine(py, || agent.observe(&av, reward as f32, &f, terminal, done))
            }
        }
    }

    /// Forget the recurrent filter state (the next `act` starts an episode).
    fn reset(&mut self) {
        self.agent.reset_state();
    }

    /// `n` updates, each a world-model step on a batch from the replay and (past the warm-up)
    /// a behaviour update. Returns the means of the loss terms over the `n` updates, with
    /// `first_loss` and `last_loss`. `progress`: `None` or `False` (the default) reports
    /// nothing, `True` draws a text bar on `sys.stderr`, a callable `progress(done, total)` is
    /// called before the first update (`done = 0`) and after each one, with the GIL held and
    /// the agent free to use; an exception it raises stops the updates and propagates.
    #[pyo3(signature = (n = 1, progress = None))]
    fn update<'py>(
        slf: &Bound<'py, Self>,
        py: Python<'py>,
        n: usize,
        progress: Option<&Bound<'py, PyAny>>,
    ) -> PyResult<Bound<'py, PyDict>> {
        let mut progress = Progress::new(progress, "Dreamer.update")?;
        let mut ms = Vec::with_capacity(n);
        if let Err(e) = Self::run_updates(slf, py, n, &mut progress, &mut ms) {
            progress.stopped(py);
            return Err(e);
        }
        update_means(py, &ms)
    }

    /// Write the checkpoint folder `path`: world model, actor, critic, their Adam states,
    /// `agent.json` and, with `replay=True`, the replay's episodes as `.npz`. `rssm imagine
    /// --checkpoint path` and `rssm.Policy.load(path)` read it.
    #[pyo3(signature = (path, replay = true))]
    fn save(&self, py: Python<'_>, path: PathBuf, replay: bool) -> PyResult<()> {
        let agent = &self.agent;
        engine(py, || agent.save(&path, replay))
    }

    /// Load a folder written by `save` (training continues where it stopped).
    #[staticmethod]
    #[pyo3(signature = (path, device = None))]
    fn load(py: Python<'_>, path: PathBuf, device: Option<PyRef<'_, PyDevice>>) -> PyResult<Self> {
        let gpu = gpu_of(py, device)?;
        let agent = engine(py, || Dreamer::load(&gpu, &path))?;
        Ok(PyDreamer { agent })
    }

    #[getter]
    fn config(&self) -> PyConfig {
        PyConfig {
            cfg: self.agent.config().clone(),
        }
    }

    #[getter]
    fn action_dim(&self) -> usize {
        self.agent.action_dim()
    }

    /// Transitions observed.
    #[getter]
    fn env_steps(&self) -> u64 {
        self.agent.counters.env_steps
    }

    /// Episodes finished.
    #[getter]
    fn episodes(&self) -> u64 {
        self.agent.counters.episodes
    }

    /// World-model steps done.
    #[getter]
    fn updates(&self) -> u64 {
        self.agent.trainer.step
    }

    /// Behaviour updates done.
    #[getter]
    fn behaviour_updates(&self) -> u64 {
        self.agent.behaviour.updates
    }

    /// Steps in the replay.
    #[getter]
    fn replay_steps(&self) -> usize {
        self.agent.replay.total_steps()
    }

    /// True when the replay holds a sequence long enough to train on.
    #[getter]
    fn can_update(&self) -> bool {
        self.agent.replay.num_windows(self.agent.config().seq_len) > 0
    }

    fn __repr__(&self) -> String {
        format!(
            "rssm.Dreamer(action_dim={}, env_steps={}, episodes={}, updates={})",
            self.agent.action_dim(),
            self.agent.counters.env_steps,
            self.agent.counters.episodes,
            self.agent.trainer.step
        )
    }
}

impl PyDreamer {
    /// `n` updates into `ms`, the GIL released during each and `progress` told between them.
    /// The agent is borrowed for each update alone, so that `progress` may read it (or save
    /// it) between them.
    fn run_updates<'py>(
        slf: &Bound<'py, Self>,
        py: Python<'py>,
        n: usize,
        progress: &mut Progress<'py>,
        ms: &mut Vec<rssm::agent::UpdateMetrics>,
    ) -> PyResult<()> {
        if n > 0 {
            progress.report(py, 0, n)?;
        }
        for i in 0..n {
            {
                let mut this = slf.try_borrow_mut()?;
                let agent = &mut this.agent;
                ms.push(engine(py, || agent.update())?);
            }
            py.check_signals()?;
            progress.report(py, i + 1, n)?;
        }
        Ok(())
    }
}
