//! The crate's error type: every failure a user can cause (bad shapes, files, sizes past the
//! device's limits, no adapter) ends up here with a message that says what to do.

use std::path::PathBuf;

/// Errors returned by the engine.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// No GPU (or CPU Vulkan/GL driver) could be found.
    #[error("{0}")]
    NoAdapter(String),
    /// The device could not be created with the limits and features we need.
    #[error("could not create the GPU device on '{adapter}': {reason}")]
    Device { adapter: String, reason: String },
    /// Tensor shapes that do not fit an operation.
    #[error("shape error in {op}: {msg}")]
    Shape { op: &'static str, msg: String },
    /// Data larger than the device allows in one buffer, or (for the smallest slice an op can
    /// bind) in one storage binding.
    #[error("{what} needs {bytes} bytes in one {per}, but this device allows at most {limit} bytes per {per} (adapter '{adapter}'); use a smaller batch or model, a larger --max-binding where one caps the binding, or an adapter with larger limits (`rssm info --all`)")]
    TooLarge {
        what: String,
        bytes: u64,
        limit: u64,
        /// "buffer" or "storage binding".
        per: &'static str,
        adapter: String,
    },
    /// A kernel the device cannot run at any size: it binds more storage buffers than a shader
    /// stage may have, its workgroup is larger than the device runs, or the device refused its
    /// pipeline. Names the kernel, the limit and what to do.
    #[error("kernel {kernel} cannot run on '{adapter}': {why}; {hint}")]
    Unsupported {
        kernel: String,
        adapter: String,
        why: String,
        hint: String,
    },
    /// A shader failed to parse or validate.
    #[error("shader {file}: {msg}")]
    Shader { file: String, msg: String },
    /// Reading results back from the GPU failed.
    #[error("GPU readback failed: {0}")]
    Readback(String),
    /// Autodiff misuse (e.g. backward from a non-scalar).
    #[error("autodiff: {0}")]
    Tape(String),
    /// Invalid configuration or argument.
    #[error("{0}")]
    Invalid(String),
    /// A file that could not be read or written, or whose contents are wrong.
    #[error("{path}: {msg}")]
    File { path: PathBuf, msg: String },
    /// Errors from the plain-Rust data layer (episodes, replay, checkpoints).
    #[error(transparent)]
    Data(#[from] crate::data::DataError),
    /// Errors from the built-in environments.
    #[error(transparent)]
    Env(#[from] crate::envs::EnvError),
    /// Plain I/O.
    #[error(transparent)]
    Io(#[from] std::io::Error),
}

/// Result with the crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Shorthand for a shape error.
pub fn shape_err<T>(op: &'static str, msg: impl Into<String>) -> Result<T> {
    Err(Error::Shape {
        op,
        msg: msg.into(),
    })
}
