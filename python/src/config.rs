//! `rssm.Config`: the presets and their keys.

use std::path::PathBuf;

use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::{PyBool, PyDict, PyFloat, PyInt};

use rssm::gpu::Gpu;
use rssm::model::Config;

use crate::errors::*;
use crate::EngineError;

/// A world-model configuration: a preset (`dreamer`, the specification; `small`, for CPU
/// devices; `tiny`, for tests) with any of the specification's keys overridden, e.g.
/// `Config("small", deter=64, seed=3)`. Unknown keys are an error.
#[pyclass(name = "Config", module = "rssm", frozen, eq)]
#[derive(Clone, PartialEq)]
pub(crate) struct PyConfig {
    pub(crate) cfg: Config,
}

pub(crate) fn json_of(v: &Bound<'_, PyAny>, key: &str) -> PyResult<serde_json::Value> {
    if v.is_instance_of::<PyBool>() {
        return Ok(serde_json::Value::Bool(v.extract()?));
    }
    if v.is_instance_of::<PyInt>() {
        if let Ok(u) = v.extract::<u64>() {
            return Ok(u.into());
        }
        return Ok(v.extract::<i64>()?.into());
    }
    if v.is_instance_of::<PyFloat>() {
        let f: f64 = v.extract()?;
        return serde_json::Number::from_f64(f)
            .map(serde_json::Value::Number)
            .ok_or_else(|| {
                PyValueError::new_err(format!("Config: {key} must be finite, got {f}"))
            });
    }
    Err(PyValueError::new_err(format!(
        "Config: {key} must be a number, got {}",
        v.get_type().name()?
    )))
}

pub(crate) fn config_with(base: &Config, keys: Option<&Bound<'_, PyDict>>) -> PyResult<Config> {
    let mut map = match serde_json::to_value(base) {
        Ok(serde_json::Value::Object(m)) => m,
        _ => return Err(EngineError::new_err("Config: cannot serialise")),
    };
    if let Some(keys) = keys {
        for (k, v) in keys.iter() {
            let k: String = k.extract()?;
            map.insert(k.clone(), json_of(&v, &k)?);
        }
    }
    let cfg: Config = serde_json::from_value(serde_json::Value::Object(map))
        .map_err(|e| PyValueError::new_err(format!("Config: {e}")))?;
    cfg.validate().map_err(engine_err)?;
    Ok(cfg)
}

pub(crate) fn config_dict<'py>(py: Python<'py>, cfg: &Config) -> PyResult<Bound<'py, PyDict>> {
    let d = PyDict::new(py);
    if let Ok(serde_json::Value::Object(m)) = serde_json::to_value(cfg) {
        for (k, v) in m {
            match v {
                serde_json::Value::Number(n) if n.is_u64() => d.set_item(k, n.as_u64())?,
                serde_json::Value::Number(n) => d.set_item(k, n.as_f64())?,
                other => d.set_item(k, other.to_string())?,
            }
        }
    }
    Ok(d)
}

#[pymethods]
impl PyConfig {
    #[new]
    #[pyo3(signature = (preset = "dreamer", **keys))]
    fn new(preset: &str, keys: Option<&Bound<'_, PyDict>>) -> PyResult<Self> {
        let base = Config::preset(preset).map_err(engine_err)?;
        Ok(PyConfig {
            cfg: config_with(&base, keys)?,
        })
    }

    /// A configuration file (.json or .toml) with the specification's keys.
    #[staticmethod]
    fn from_file(path: PathBuf) -> PyResult<Self> {
        Ok(PyConfig {
            cfg: Config::from_file(&path).map_err(engine_err)?,
        })
    }

    /// A copy with some keys changed.
    #[pyo3(signature = (**keys))]
    fn replace(&self, keys: Option<&Bound<'_, PyDict>>) -> PyResult<Self> {
        Ok(PyConfig {
            cfg: config_with(&self.cfg, keys)?,
        })
    }

    /// Every key and its value.
    fn to_dict<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        config_dict(py, &self.cfg)
    }

    /// The configuration as JSON (the format `rssm --config` reads).
    fn to_json(&self) -> PyResult<String> {
        serde_json::to_string_pretty(&self.cfg).map_err(|e| EngineError::new_err(e.to_string()))
    }

    fn __getattr__<'py>(&self, py: Python<'py>, name: &str) -> PyResult<Bound<'py, PyAny>> {
        let d = config_dict(py, &self.cfg)?;
        match d.get_item(name)? {
            Some(v) => Ok(v),
            None => Err(pyo3::exceptions::PyAttributeError::new_err(format!(
                "Config has no key '{name}'"
            ))),
        }
    }

    fn __repr__(&self, py: Python<'_>) -> PyResult<String> {
        let d = config_dict(py, &self.cfg)?;
        let parts: Vec<String> = d
            .iter()
            .map(|(k, v)| {
                format!(
                    "{k}={}",
                    v.repr().map(|r| r.to_string()).unwrap_or_default()
                )
            })
            .collect();
        Ok(format!("rssm.Config({})", parts.join(", ")))
    }
}

pub(crate) fn config_or_default(config: Option<PyRef<'_, PyConfig>>, gpu: &Gpu) -> Config {
    match config {
        Some(c) => c.cfg.clone(),
        None => Config::default_for(gpu.report().is_cpu()).1,
    }
}
