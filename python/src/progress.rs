//! Progress of long calls: the `progress` argument (off, a text bar, or a callback).

use std::time::{Duration, Instant};

use pyo3::exceptions::PyTypeError;
use pyo3::prelude::*;
use pyo3::types::PyBool;

/// What a long call's `progress` argument asks for: nothing (`None`, `False`: the default), a
/// one-line text bar on `sys.stderr` (`True`), or a callable `progress(done, total)`, called
/// with the GIL held before the first step (`done = 0`) and after each step; an exception it
/// raises stops the call (the steps done stay done) and propagates.
pub(crate) enum Progress<'py> {
    Off,
    Bar {
        label: &'static str,
        start: Instant,
        drawn: Option<Instant>,
    },
    Call(Bound<'py, PyAny>),
}

impl<'py> Progress<'py> {
    pub(crate) fn new(arg: Option<&Bound<'py, PyAny>>, label: &'static str) -> PyResult<Self> {
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
    pub(crate) fn report(&mut self, py: Python<'py>, done: usize, total: usize) -> PyResult<()> {
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
    pub(crate) fn stopped(&self, py: Python<'py>) {
        if let Progress::Bar { drawn: Some(_), .. } = self {
            let _ = stderr_write(py, "\n");
        }
    }
}

/// Write to Python's `sys.stderr` (where pytest and notebooks capture it).
pub(crate) fn stderr_write(py: Python<'_>, text: &str) -> PyResult<()> {
    let err = py.import("sys")?.getattr("stderr")?;
    if err.is_none() {
        return Ok(());
    }
    err.call_method1("write", (text,))?;
    err.call_method0("flush")?;
    Ok(())
}
