//! Python bindings of the rssm engine: `rssm.Device`, `rssm.Config`, `rssm.WorldModel`,
//! `rssm.Dreamer` and `rssm.Policy`.
//!
//! Rules at this boundary:
//! - numpy in, numpy out; every array is checked (dtype, shape, finiteness) before it reaches
//!   the engine, and a bad one raises `ValueError` naming the argument, the expected and the
//!   given shape;
//! - the GIL is released while the engine works (`Python::detach`);
//! - engine errors become Python exceptions carrying the engine's message (`ValueError` for bad
//!   arguments and configurations, `OSError` for files, `rssm.EngineError` for the device), and
//!   a panic inside the engine is caught and raised as `rssm.EngineError`, never unwinding into
//!   the interpreter.

use std::panic::AssertUnwindSafe;
use std::path::PathBuf;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use numpy::{
    PyArray1, PyArrayDescrMethods, PyArrayMethods, PyReadonlyArrayDyn, PyUntypedArrayMethods,
};
use pyo3::exceptions::{PyOSError, PyRuntimeError, PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyBool, PyDict, PyFloat, PyInt, PyTuple};

use rssm::agent::{
    checkpoint_config, dream, Actor, BehaviourConfig, CheckpointPolicy, DreamActions, Dreamer,
    DreamerSettings,
};
use rssm::data::FRAME_LEN;
use rssm::gpu::{Gpu, GpuOptions};
use rssm::model::{Config, DeviceBatch, StepMetrics, Trainer};
use rssm::ops::gaussian::{gaussian_head, Noise};
use rssm::tensor::{Tape, Tensor};
use rssm::tune::{TuneMode, TuneSettings};

pyo3::create_exception!(
    rssm,
    EngineError,
    PyRuntimeError,
    "An error of the GPU device or of the engine itself."
);

// ---------------------------------------------------------------------------------------------
// Errors, the GIL and panics.

fn engine_err(e: rssm::Error) -> PyErr {
    use rssm::data::DataError;
    use rssm::Error as E;
    let msg = e.to_string();
    match e {
        E::Invalid(_) | E::Shape { .. } | E::TooLarge { .. } | E::Env(_) => {
            PyValueError::new_err(msg)
        }
        E::File { .. } | E::Io(_) => PyOSError::new_err(msg),
        E::Data(DataError::Io { .. }) | E::Data(DataError::BadFile { .. }) => {
            PyOSError::new_err(msg)
        }
        E::Data(_) => PyValueError::new_err(msg),
        _ => EngineError::new_err(msg),
    }
}

fn panic_message(p: Box<dyn std::any::Any + Send>) -> String {
    if let Some(s) = p.downcast_ref::<&str>() {
        s.to_string()
    } else if let Some(s) = p.downcast_ref::<String>() {
        s.clone()
    } else {
        "unknown panic".into()
    }
}

/// Run `f` without the GIL; its errors and panics become Python exceptions.
fn engine<T: Send>(py: Python<'_>, f: impl FnOnce() -> rssm::Result<T> + Send) -> PyResult<T> {
    match py.detach(|| std::panic::catch_unwind(AssertUnwindSafe(f))) {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(e)) => Err(engine_err(e)),
        Err(p) => Err(EngineError::new_err(format!(
            "internal error in the rssm engine: {}",
            panic_message(p)
        ))),
    }
}

// ---------------------------------------------------------------------------------------------
// Arrays.

fn shape_str(shape: &[usize]) -> String {
    match shape.len() {
        1 => format!("({},)", shape[0]),
        _ => format!(
            "({})",
            shape
                .iter()
                .map(|d| d.to_string())
                .collect::<Vec<_>>()
                .join(", ")
        ),
    }
}

/// `obj` as a numpy array (lists and scalars go through `numpy.asarray`).
fn as_array<'py>(obj: &Bound<'py, PyAny>) -> PyResult<Bound<'py, numpy::PyUntypedArray>> {
    if let Ok(a) = obj.cast::<numpy::PyUntypedArray>() {
        return Ok(a.clone());
    }
    let np = obj.py().import("numpy")?;
    let a = np.call_method1("asarray", (obj,))?;
    Ok(a.cast_into::<numpy::PyUntypedArray>()?)
}

fn dtype_name(a: &Bound<'_, numpy::PyUntypedArray>) -> String {
    a.dtype().to_string()
}

/// An array's dtype kind: 'b', 'i', 'u', 'f', ...
fn dtype_kind(a: &Bound<'_, numpy::PyUntypedArray>) -> char {
    a.dtype().kind() as char
}

/// The first non-finite value's index, as a tuple string.
fn first_non_finite(data: &[f32], shape: &[usize]) -> Option<String> {
    let i = data.iter().position(|v| !v.is_finite())?;
    let mut rem = i;
    let mut idx = vec![0; shape.len()];
    for d in (0..shape.len()).rev() {
        idx[d] = rem % shape[d].max(1);
        rem /= shape[d].max(1);
    }
    Some(format!("{} at index {}", data[i], shape_str(&idx)))
}

/// A numeric array as f32 values in C order, with its shape; `expected` (None: any size)
/// is checked, and every value must be finite.
fn float_array(
    obj: &Bound<'_, PyAny>,
    name: &str,
    expected: &[Option<usize>],
    what: &str,
) -> PyResult<(Vec<f32>, Vec<usize>)> {
    let a = as_array(obj)?;
    let shape = a.shape().to_vec();
    let fits = shape.len() == expected.len()
        && shape
            .iter()
            .zip(expected)
            .all(|(s, e)| e.is_none_or(|e| e == *s));
    let kind = dtype_kind(&a);
    if !fits || !matches!(kind, 'b' | 'i' | 'u' | 'f') {
        return Err(PyValueError::new_err(format!(
            "{name}: expected a float array of shape {what}, got {} array of shape {}",
            dtype_name(&a),
            shape_str(&shape)
        )));
    }
    let f32a = a.call_method1("astype", ("float32",))?;
    let ro: PyReadonlyArrayDyn<'_, f32> = f32a.extract()?;
    let data = ro.as_array().iter().copied().collect::<Vec<f32>>();
    if let Some(bad) = first_non_finite(&data, &shape) {
        return Err(PyValueError::new_err(format!(
            "{name}: values must be finite, found {bad} (shape {})",
            shape_str(&shape)
        )));
    }
    Ok((data, shape))
}

/// A uint8 array of the given exact shape, in C order.
fn u8_array(
    obj: &Bound<'_, PyAny>,
    name: &str,
    expected: &[usize],
    hint: &str,
) -> PyResult<Vec<u8>> {
    let a = as_array(obj)?;
    let shape = a.shape().to_vec();
    if shape != expected || dtype_kind(&a) != 'u' || dtype_name(&a) != "uint8" {
        return Err(PyValueError::new_err(format!(
            "{name}: expected a uint8 array of shape {}{hint}, got {} array of shape {}",
            shape_str(expected),
            dtype_name(&a),
            shape_str(&shape)
        )));
    }
    let ro: PyReadonlyArrayDyn<'_, u8> = a.extract()?;
    Ok(ro.as_array().iter().copied().collect())
}

/// Observations of a batch: uint8 `[B, T, 64, 64, 3]` (HWC frames, as environments give
/// them) or float `[B, T, 3, 64, 64]` in [-0.5, 0.5] (the engine's layout, `rssm evaluate`'s
/// `obs`). Returns CHW values `u8 / 255 - 0.5` and `(B, T)`.
fn batch_obs(obj: &Bound<'_, PyAny>, name: &str) -> PyResult<(Vec<f32>, usize, usize)> {
    let a = as_array(obj)?;
    let shape = a.shape().to_vec();
    let bad = || {
        PyValueError::new_err(format!(
            "{name}: expected a uint8 array of shape (B, T, 64, 64, 3) or a float array of shape (B, T, 3, 64, 64) in [-0.5, 0.5], got {} array of shape {}",
            dtype_name(&a),
            shape_str(&shape)
        ))
    };
    if shape.len() != 5 || shape[0] == 0 || shape[1] == 0 {
        return Err(bad());
    }
    let (b, t) = (shape[0], shape[1]);
    if dtype_name(&a) == "uint8" && shape[2..] == [64, 64, 3] {
        let ro: PyReadonlyArrayDyn<'_, u8> = a.extract()?;
        let hwc: Vec<u8> = ro.as_array().iter().copied().collect();
        let mut chw = vec![0f32; hwc.len()];
        for (src, dst) in hwc
            .chunks_exact(FRAME_LEN)
            .zip(chw.chunks_exact_mut(FRAME_LEN))
        {
            rssm::data::frame_to_chw(src, dst).map_err(|e| PyValueError::new_err(e.to_string()))?;
        }
        return Ok((chw, b, t));
    }
    if dtype_kind(&a) == 'f' && shape[2..] == [3, 64, 64] {
        let (data, _) = float_array(
            obj,
            name,
            &[Some(b), Some(t), Some(3), Some(64), Some(64)],
            "",
        )?;
        if let Some(v) = data.iter().find(|v| v.abs() > 0.5 + 1e-6) {
            return Err(PyValueError::new_err(format!(
                "{name}: float observations must lie in [-0.5, 0.5] (u8 / 255 - 0.5), found {v}"
            )));
        }
        return Ok((data, b, t));
    }
    Err(bad())
}

/// One 64x64x3 uint8 frame.
fn frame(obj: &Bound<'_, PyAny>, name: &str) -> PyResult<Vec<u8>> {
    u8_array(
        obj,
        name,
        &[64, 64, 3],
        " (an RGB frame; resize larger renders first, see examples/python)",
    )
}

fn to_numpy<'py>(py: Python<'py>, data: Vec<f32>, shape: &[usize]) -> PyResult<Bound<'py, PyAny>> {
    Ok(PyArray1::from_vec(py, data)
        .reshape(shape.to_vec())?
        .into_any())
}

/// Decoded images `[B, T, 3, 64, 64]` in [-0.5, 0.5] as uint8 frames `[B, T, 64, 64, 3]`.
fn to_frames<'py>(py: Python<'py>, chw: &[f32], b: usize, t: usize) -> PyResult<Bound<'py, PyAny>> {
    let plane = 64 * 64;
    let mut out = vec![0u8; chw.len()];
    for (src, dst) in chw
        .chunks_exact(FRAME_LEN)
        .zip(out.chunks_exact_mut(FRAME_LEN))
    {
        for i in 0..plane {
            for c in 0..3 {
                let v = (src[c * plane + i] + 0.5) * 255.0;
                dst[i * 3 + c] = v.round().clamp(0.0, 255.0) as u8;
            }
        }
    }
    Ok(PyArray1::from_vec(py, out)
        .reshape(vec![b, t, 64, 64, 3])?
        .into_any())
}

fn metrics_dict<'py>(py: Python<'py>, m: &StepMetrics) -> PyResult<Bound<'py, PyDict>> {
    let d = PyDict::new(py);
    d.set_item("step", m.step)?;
    d.set_item("loss", m.loss)?;
    d.set_item("image_nll", m.image_nll)?;
    d.set_item("reward_nll", m.reward_nll)?;
    d.set_item("cont_nll", m.cont_nll)?;
    d.set_item("kl", m.kl)?;
    d.set_item("kl_loss", m.kl_loss)?;
    d.set_item("grad_norm", m.grad_norm)?;
    Ok(d)
}

// ---------------------------------------------------------------------------------------------
// Progress of long calls.

/// What a long call's `progress` argument asks for: nothing (`None`, `False`: the default), a
/// one-line text bar on `sys.stderr` (`True`), or a callable `progress(done, total)`, called
/// with the GIL held before the first step (`done = 0`) and after each step; an exception it
/// raises stops the call (the steps done stay done) and propagates.
enum Progress<'py> {
    Off,
    Bar {
        label: &'static str,
        start: Instant,
        drawn: Option<Instant>,
    },
    Call(Bound<'py, PyAny>),
}

impl<'py> Progress<'py> {
    fn new(arg: Option<&Bound<'py, PyAny>>, label: &'static str) -> PyResult<Self> {
        let Some(p) = arg.filter(|p| !p.is_none()) else {
            return Ok(Progress::Off);
        };
        if p.is_instance_of::<PyBool>() {
            return Ok(if p.extract::<bool>()? {
                Progress::Bar {
                    label,
                    start: Instant::now(),
                    drawn: None,
                }
            } else {
                Progress::Off
            });
        }
        if p.is_callable() {
            return Ok(Progress::Call(p.clone()));
        }
        Err(PyTypeError::new_err(format!(
            "progress: expected None, a bool or a callable progress(done, total), got {}",
            p.get_type().name()?
        )))
    }

    /// `done` of `total` steps are done.
    fn report(&mut self, py: Python<'py>, done: usize, total: usize) -> PyResult<()> {
        match self {
            Progress::Off => Ok(()),
            Progress::Call(f) => f.call1((done, total)).map(|_| ()),
            Progress::Bar {
                label,
                start,
                drawn,
            } => {
                let now = Instant::now();
                let finished = done >= total;
                // At most 10 redraws a second, and always the last.
                if !finished && drawn.is_some_and(|t| now - t < Duration::from_millis(100)) {
                    return Ok(());
                }
                *drawn = Some(now);
                const WIDTH: usize = 30;
                let filled = (done * WIDTH).checked_div(total).unwrap_or(WIDTH);
                let secs = (now - *start).as_secs_f64();
                let left = if done > 0 && !finished {
                    let left = secs * (total - done) as f64 / done as f64;
                    let digits = if left < 10.0 { 1 } else { 0 };
                    format!(", {left:.digits$} s left")
                } else {
                    String::new()
                };
                let line = format!(
                    "\r{label} {done}/{total} [{}{}] {secs:.1} s{left:<16}{}",
                    "#".repeat(filled),
                    ".".repeat(WIDTH - filled),
                    if finished { "\n" } else { "" }
                );
                stderr_write(py, &line)
            }
        }
    }

    /// The call stopped early: end the bar's line.
    fn stopped(&self, py: Python<'py>) {
        if let Progress::Bar { drawn: Some(_), .. } = self {
            let _ = stderr_write(py, "\n");
        }
    }
}

/// Write to Python's `sys.stderr` (where pytest and notebooks capture it).
fn stderr_write(py: Python<'_>, text: &str) -> PyResult<()> {
    let err = py.import("sys")?.getattr("stderr")?;
    if err.is_none() {
        return Ok(());
    }
    err.call_method1("write", (text,))?;
    err.call_method0("flush")?;
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Device.

/// The device every object uses unless given one: opened once, on first use.
static DEFAULT_GPU: Mutex<Option<Gpu>> = Mutex::new(None);

fn default_gpu(py: Python<'_>) -> PyResult<Gpu> {
    if let Some(g) = DEFAULT_GPU.lock().ok().and_then(|g| g.clone()) {
        return Ok(g);
    }
    let gpu = engine(py, || Gpu::new(&GpuOptions::default()))?;
    if let Ok(mut slot) = DEFAULT_GPU.lock() {
        *slot = Some(gpu.clone());
    }
    Ok(gpu)
}

fn gpu_of(py: Python<'_>, device: Option<PyRef<'_, PyDevice>>) -> PyResult<Gpu> {
    match device {
        Some(d) => Ok(d.gpu.clone()),
        None => default_gpu(py),
    }
}

/// How a device's objects get their kernel choices: `Device(tune=...)` (else `RSSM_TUNE`) and
/// the choices forced by `Device(tuning=...)` (which win over measured ones).
#[derive(Clone, Copy, Default)]
struct DeviceTune {
    mode: Option<TuneMode>,
    forced: rssm::gpu::TuningOverrides,
}

/// The device's handle and how its objects are tuned.
fn gpu_and_tune(
    py: Python<'_>,
    device: Option<PyRef<'_, PyDevice>>,
) -> PyResult<(Gpu, DeviceTune)> {
    match device {
        Some(d) => Ok((d.gpu.clone(), d.tune)),
        None => Ok((default_gpu(py)?, DeviceTune::default())),
    }
}

/// `gpu` with the kernel choices for `cfg` imagining `horizon` steps (see `rssm::tune::tuned`:
/// cached measurements with `auto`, measured now with `force`, the rules with `off`). Runs
/// inside `engine`'s closures; notes about the cache go to stderr.
fn tuned_for(gpu: &Gpu, tune: DeviceTune, cfg: &Config, horizon: usize) -> rssm::Result<Gpu> {
    let opts = GpuOptions {
        tuning: tune.forced,
        ..Default::default()
    };
    let settings = TuneSettings::from_env(&opts, tune.mode)?;
    let t = rssm::tune::tuned(gpu, cfg, horizon, &settings, &mut |_| {})?;
    for n in &t.notes {
        eprintln!("rssm: note: {n}");
    }
    Ok(t.gpu)
}

/// A GPU (or CPU Vulkan/GL driver) chosen as `rssm` chooses it: the best adapter found, or the
/// one whose name contains `adapter` (also `WGPU_ADAPTER_NAME`); `WGPU_BACKEND` restricts the
/// backends searched. `tuning` forces kernel choices over the device's rules and `RSSM_TUNING`
/// (comma-separated key=value, e.g. "lanes=off,path=per-op"; `info()["tuning"]` prints them).
/// `tune` is how world models and agents made on it get their kernel choices: "auto" (the
/// default, also `RSSM_TUNE`: those `rssm tune` measured and cached for their configuration,
/// else the rules), "off" (the rules) or "force" (measure now, about a minute, and cache).
#[pyclass(name = "Device", module = "rssm", frozen)]
struct PyDevice {
    gpu: Gpu,
    tune: DeviceTune,
}

#[pymethods]
impl PyDevice {
    #[new]
    #[pyo3(signature = (adapter = None, tuning = None, tune = None))]
    fn new(
        py: Python<'_>,
        adapter: Option<String>,
        tuning: Option<String>,
        tune: Option<String>,
    ) -> PyResult<Self> {
        let forced = rssm::gpu::TuningOverrides::parse(tuning.as_deref().unwrap_or(""))
            .map_err(engine_err)?;
        let mode = tune
            .as_deref()
            .map(TuneMode::parse)
            .transpose()
            .map_err(engine_err)?;
        let gpu = engine(py, || {
            Gpu::new(&GpuOptions {
                adapter,
                tuning: forced,
                ..Default::default()
            })
        })?;
        Ok(PyDevice {
            gpu,
            tune: DeviceTune { mode, forced },
        })
    }

    /// The adapter's name, backend, device type, driver, limits, features, subgroup width, the
    /// matmul kernel it takes and its kernel choices (`tuning`, in the `RSSM_TUNING` syntax,
    /// with `tuning_why`: a line per choice).
    fn info<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let r = self.gpu.report();
        let d = PyDict::new(py);
        d.set_item("name", &r.name)?;
        d.set_item("backend", &r.backend)?;
        d.set_item("device_type", &r.device_type)?;
        d.set_item("driver", &r.driver)?;
        d.set_item("is_cpu", r.is_cpu())?;
        d.set_item("max_storage_binding", r.max_storage_binding)?;
        d.set_item("max_buffer", r.max_buffer)?;
        d.set_item("timestamps", r.timestamps)?;
        d.set_item("subgroup_lanes", r.subgroup_lanes)?;
        d.set_item("matmul_kernel", rssm::ops::matmul::kernel_choice(&self.gpu))?;
        d.set_item("tuning", self.gpu.tuning().to_string())?;
        d.set_item("tuning_why", self.gpu.tuning().explain(r))?;
        d.set_item("features", &r.features)?;
        Ok(d)
    }

    /// Every adapter wgpu finds.
    #[staticmethod]
    fn adapters() -> Vec<String> {
        Gpu::list_adapters()
    }

    fn __repr__(&self) -> String {
        format!("rssm.Device('{}')", self.gpu.report().short())
    }
}

// ---------------------------------------------------------------------------------------------
// Config.

/// A world-model configuration: a preset (`dreamer`, the specification; `small`, for CPU
/// devices; `tiny`, for tests) with any of the specification's keys overridden, e.g.
/// `Config("small", deter=64, seed=3)`. Unknown keys are an error.
#[pyclass(name = "Config", module = "rssm", frozen, eq)]
#[derive(Clone, PartialEq)]
struct PyConfig {
    cfg: Config,
}

fn json_of(v: &Bound<'_, PyAny>, key: &str) -> PyResult<serde_json::Value> {
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

fn config_with(base: &Config, keys: Option<&Bound<'_, PyDict>>) -> PyResult<Config> {
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

fn config_dict<'py>(py: Python<'py>, cfg: &Config) -> PyResult<Bound<'py, PyDict>> {
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

fn config_or_default(config: Option<PyRef<'_, PyConfig>>, gpu: &Gpu) -> Config {
    match config {
        Some(c) => c.cfg.clone(),
        None => Config::default_for(gpu.report().is_cpu()).1,
    }
}

// ---------------------------------------------------------------------------------------------
// WorldModel.

/// The world model with its Adam state: `train_step`, `observe`, `imagine`, checkpoints in the
/// layout `rssm train` writes (`checkpoint.safetensors` + `optimizer.safetensors` in a folder).
#[pyclass(name = "WorldModel", module = "rssm")]
struct PyWorldModel {
    trainer: Trainer,
    gpu: Gpu,
}

/// The arrays of a training batch, checked against `cfg`.
struct HostBatch {
    obs: Vec<f32>,
    action: Vec<f32>,
    reward: Vec<f32>,
    cont: Vec<f32>,
    eps: Option<Vec<f32>>,
    b: usize,
    t: usize,
}

fn host_batch(
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

fn device_batch(gpu: &Gpu, h: &HostBatch, cfg: &Config) -> rssm::Result<DeviceBatch> {
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
fn start_state(cfg: &Config, start: &Bound<'_, PyAny>) -> PyResult<(Vec<f32>, Vec<f32>, usize)> {
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
fn with_actor<T>(actor: &Bound<'_, PyAny>, f: impl FnOnce(&Actor) -> PyResult<T>) -> PyResult<T> {
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
fn imagine_frames<'py>(
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

// ---------------------------------------------------------------------------------------------
// Dreamer.

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
struct PyDreamer {
    agent: Dreamer,
}

fn update_means<'py>(
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

// ---------------------------------------------------------------------------------------------
// Policy.

/// A trained agent that acts from a checkpoint folder's weights alone (world model and actor;
/// no optimiser state, critic or replay): `Policy.load(path)`, then `act(obs)` per step and
/// `reset()` between episodes.
#[pyclass(name = "Policy", module = "rssm")]
struct PyPolicy {
    policy: CheckpointPolicy,
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

// ---------------------------------------------------------------------------------------------

/// Raise what a panic inside the engine becomes (for the tests of this boundary).
#[pyfunction]
fn _engine_panic(py: Python<'_>) -> PyResult<()> {
    engine(py, || -> rssm::Result<()> { panic!("a deliberate panic") })
}

/// rssm: train Recurrent State-Space Models (Dreamer world models) and Dreamer agents on any
/// GPU (or CPU Vulkan driver) through wgpu.
#[pymodule]
#[pyo3(name = "rssm")]
fn rssm_module(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<PyDevice>()?;
    m.add_class::<PyConfig>()?;
    m.add_class::<PyWorldModel>()?;
    m.add_class::<PyDreamer>()?;
    m.add_class::<PyPolicy>()?;
    m.add_function(wrap_pyfunction!(_engine_panic, m)?)?;
    m.add("EngineError", m.py().get_type::<EngineError>())?;
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    Ok(())
}
