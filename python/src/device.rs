//! `rssm.Device`: the adapter, its report and its kernel choices; the default device.

use std::sync::Mutex;

use pyo3::prelude::*;
use pyo3::types::PyDict;

use rssm::gpu::{Gpu, GpuOptions};
use rssm::model::Config;
use rssm::tune::{TuneMode, TuneSettings};

use crate::errors::*;

/// The device every object uses unless given one: opened once, on first use.
pub(crate) static DEFAULT_GPU: Mutex<Option<Gpu>> = Mutex::new(None);

pub(crate) fn default_gpu(py: Python<'_>) -> PyResult<Gpu> {
    if let Some(g) = DEFAULT_GPU.lock().ok().and_then(|g| g.clone()) {
        return Ok(g);
    }
    let gpu = engine(py, || Gpu::new(&GpuOptions::default()))?;
    if let Ok(mut slot) = DEFAULT_GPU.lock() {
        *slot = Some(gpu.clone());
    }
    Ok(gpu)
}

pub(crate) fn gpu_of(py: Python<'_>, device: Option<PyRef<'_, PyDevice>>) -> PyResult<Gpu> {
    match device {
        Some(d) => Ok(d.gpu.clone()),
        None => default_gpu(py),
    }
}

/// How a device's objects get their kernel choices: `Device(tune=...)` (else `RSSM_TUNE`) and
/// the choices forced by `Device(tuning=...)` (which win over measured ones).
#[derive(Clone, Copy, Default)]
pub(crate) struct DeviceTune {
    pub(crate) mode: Option<TuneMode>,
    pub(crate) forced: rssm::gpu::TuningOverrides,
}

/// The device's handle and how its objects are tuned.
pub(crate) fn gpu_and_tune(
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
pub(crate) fn tuned_for(
    gpu: &Gpu,
    tune: DeviceTune,
    cfg: &Config,
    horizon: usize,
) -> rssm::Result<Gpu> {
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
/// `profile` runs it as another class of device (webgpu, downlevel, apple-m, nvidia, amd-rdna,
/// intel-igpu, mobile; also `RSSM_DEVICE_PROFILE`): that class's limits, each capped at the
/// adapter's, features, subgroup widths and device type, so the engine chooses as there.
/// `tune` is how world models and agents made on it get their kernel choices: "auto" (the
/// default, also `RSSM_TUNE`: those `rssm tune` measured and cached for their configuration,
/// else the rules), "off" (the rules) or "force" (measure now, about a minute, and cache).
#[pyclass(name = "Device", module = "rssm", frozen)]
pub(crate) struct PyDevice {
    pub(crate) gpu: Gpu,
    pub(crate) tune: DeviceTune,
}

#[pymethods]
impl PyDevice {
    #[new]
    #[pyo3(signature = (adapter = None, tuning = None, profile = None, tune = None))]
    fn new(
        py: Python<'_>,
        adapter: Option<String>,
        tuning: Option<String>,
        profile: Option<String>,
        tune: Option<String>,
    ) -> PyResult<Self> {
        let forced = rssm::gpu::TuningOverrides::parse(tuning.as_deref().unwrap_or(""))
            .map_err(engine_err)?;
        let mode = tune
            .as_deref()
            .map(TuneMode::parse)
            .transpose()
            .map_err(engine_err)?;
        let profile = profile
            .as_deref()
            .map(rssm::gpu::DeviceProfile::named)
            .transpose()
            .map_err(engine_err)?;
        let gpu = engine(py, || {
            Gpu::new(&GpuOptions {
                adapter,
                tuning: forced,
                profile,
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
    /// with `tuning_why`: a line per choice); the device profile it runs under (`profile`,
    /// `None` without one, and `profile_shortfalls`: the limits the adapter offers less of) and
    /// the one the adapter is closest to (`closest_profile`).
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
        d.set_item("profile", &r.profile)?;
        d.set_item("profile_shortfalls", &r.profile_shortfalls)?;
        d.set_item("closest_profile", &r.closest_profile)?;
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
