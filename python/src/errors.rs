//! Errors, the GIL and panics at the boundary: engine errors become Python exceptions, the GIL
//! is released while the engine works, and a panic is raised as `rssm.EngineError`.

use std::panic::AssertUnwindSafe;

use pyo3::exceptions::{PyOSError, PyValueError};
use pyo3::prelude::*;

use crate::EngineError;

pub(crate) fn engine_err(e: rssm::Error) -> PyErr {
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

pub(crate) fn panic_message(p: Box<dyn std::any::Any + Send>) -> String {
    if let Some(s) = p.downcast_ref::<&str>() {
        s.to_string()
    } else if let Some(s) = p.downcast_ref::<String>() {
        s.clone()
    } else {
        "unknown panic".into()
    }
}

/// Run `f` without the GIL; its errors and panics become Python exceptions.
pub(crate) fn engine<T: Send>(
    py: Python<'_>,
    f: impl FnOnce() -> rssm::Result<T> + Send,
) -> PyResult<T> {
    match py.detach(|| std::panic::catch_unwind(AssertUnwindSafe(f))) {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(e)) => Err(engine_err(e)),
        Err(p) => Err(EngineError::new_err(format!(
            "internal error in the rssm engine: {}",
            panic_message(p)
        ))),
    }
}
