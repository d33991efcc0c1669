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

mod arrays;
mod config;
mod device;
mod dreamer;
mod errors;
mod policy;
mod progress;
mod world_model;

use pyo3::exceptions::PyRuntimeError;
use pyo3::prelude::*;

use crate::config::PyConfig;
use crate::device::PyDevice;
use crate::dreamer::PyDreamer;
use crate::errors::engine;
use crate::policy::PyPolicy;
use crate::world_model::PyWorldModel;

pyo3::create_exception!(
    rssm,
    EngineError,
    PyRuntimeError,
    "An error of the GPU device or of the engine itself."
);

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
