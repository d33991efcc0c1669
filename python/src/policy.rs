//! `rssm.Policy`: an actor loaded from a checkpoint, acting without training.

use std::path::PathBuf;

use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;

use rssm::agent::CheckpointPolicy;

use crate::arrays::*;
use crate::config::*;
use crate::device::*;
use crate::errors::*;

/// A trained agent that acts from a checkpoint folder's weights alone (world model and actor;
/// no optimiser state, critic or replay): `Policy.load(path)`, then `act(obs)` per step and
/// `reset()` between episodes.
#[pyclass(name = "Policy", module = "rssm")]
pub(crate) struct PyPolicy {
    pub(crate) policy: CheckpointPolicy,
}

#[pymethods]
impl PyPolicy {
    #[staticmethod]
    #[pyo3(signature = (path, device = None))]
    fn load(py: Python<'_>, path: PathBuf, device: Option<PyRef<'_, PyDevice>>) -> PyResult<Self> {
        let gpu = gpu_of(py, device)?;
        let policy = engine(py, || CheckpointPolicy::load(&gpu, &path))?;
        Ok(PyPolicy { policy })
    }

    /// The action for `obs` (uint8 `(64, 64, 3)`): the actor's mode, or a sample plus
    /// Gaussian noise of std `expl_noise` with `explore=True`.
    #[pyo3(signature = (obs, explore = false, expl_noise = 0.0))]
    fn act<'py>(
        &mut self,
        py: Python<'py>,
        obs: &Bound<'py, PyAny>,
        explore: bool,
        expl_noise: f32,
    ) -> PyResult<Bound<'py, PyAny>> {
        let f = frame(obs, "obs")?;
        if !(expl_noise.is_finite() && expl_noise >= 0.0) {
            return Err(PyValueError::new_err(format!(
                "expl_noise: must be finite and >= 0, got {expl_noise}"
            )));
        }
        let policy = &mut self.policy;
        let a = engine(py, || policy.act(&f, explore, expl_noise))?;
        let n = a.len();
        to_numpy(py, a, &[n])
    }

    /// Start a new episode.
    fn reset(&mut self) {
        self.policy.reset_state();
    }

    #[getter]
    fn config(&self) -> PyConfig {
        PyConfig {
            cfg: self.policy.config().clone(),
        }
    }

    #[getter]
    fn action_dim(&self) -> usize {
        self.policy.config().action_dim
    }
}
