//! Replay buffer and episode / checkpoint file formats (plain Rust, no GPU types).
//!
//! - [`episode`]: [`Episode`], one recorded trajectory with the spec's time-step conventions.
//! - [`npz`]: Dreamer's `.npz` episode files (load, save, load a whole folder).
//! - `npy`: the `.npy` array format inside them (parse, convert, numpy's header layout).
//! - [`replay`]: [`ReplayBuffer`], uniform `[B, T]` window sampling into a ready-to-upload [`Batch`].
//! - [`safetensors_io`]: host-side named `f32` tensors in `.safetensors` files (checkpoints).
//! - [`atomic`]: the atomic file writes every file of the program goes through.
//! - [`records`]: appended record files (`metrics.jsonl`) cut back to a checkpoint on resume.
//!
//! Everything here reports failures through [`DataError`]; nothing panics on bad files or bad
//! arguments. This layer never touches the GPU: it can be tested and reused without a device.

pub mod atomic;
pub mod episode;
mod npy;
pub mod npz;
pub mod records;
pub mod replay;
pub mod safetensors_io;

use std::fmt::Write as _;
use std::path::PathBuf;

pub use episode::{Episode, EpisodeBuilder, FRAME_LEN, IMAGE_CHANNELS, IMAGE_SIZE};
pub use npz::{load_dir, load_npz, save_npz, save_npz_with, FailedFile, NpzCompression};
pub use replay::{frame_to_chw, Batch, ReplayBuffer};
pub use safetensors_io::{
    check_finite, expect_keys, load_safetensors, save_safetensors, HostTensor,
};

/// Result type of the data layer.
pub type Result<T> = std::result::Result<T, DataError>;

/// Everything that can go wrong in the data layer.
///
/// Every variant that concerns a file names it, so a message read on its own (in a log, in a
/// list of skipped files) says which file and what is wrong with it.
#[derive(Debug, thiserror::Error)]
pub enum DataError {
    /// The operating system refused an operation on a file or folder.
    #[error("{}: cannot {action}: {source}", path.display())]
    Io {
        /// The file or folder concerned.
        path: PathBuf,
        /// What was being attempted ("open", "read", "rename into place", ...).
        action: &'static str,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// A file could be read but its contents are not what they must be.
    #[error("{}: {reason}", path.display())]
    BadFile {
        /// The offending file.
        path: PathBuf,
        /// What is wrong with it, in words.
        reason: String,
    },
    /// In-memory data breaks an invariant (inconsistent episode arrays, a tensor whose data
    /// does not fill its shape, ...).
    #[error("invalid {what}: {reason}")]
    Invalid {
        /// The kind of object concerned ("episode", "tensor 'x'", "argument", ...).
        what: String,
        /// What is wrong.
        reason: String,
    },
    /// The replay buffer cannot produce the requested batch.
    #[error("cannot sample from the replay buffer: {0}")]
    Sample(String),
    /// A set of named tensors does not match what was expected; lists every problem at once.
    #[error("{}", describe_key_mismatch(missing, unexpected, wrong_shape))]
    KeyMismatch {
        /// Expected keys that are absent.
        missing: Vec<String>,
        /// Keys present but not expected.
        unexpected: Vec<String>,
        /// `(key, expected shape, found shape)` for every key present with the wrong shape.
        wrong_shape: Vec<(String, Vec<usize>, Vec<usize>)>,
    },
    /// Some tensors hold NaN or infinite values.
    #[error("non-finite values: {0}")]
    NonFinite(String),
}

impl DataError {
    /// Shorthand for [`DataError::BadFile`].
    pub(crate) fn bad_file(path: impl Into<PathBuf>, reason: impl Into<String>) -> Self {
        DataError::BadFile {
            path: path.into(),
            reason: reason.into(),
        }
    }

    /// Shorthand for [`DataError::Io`].
    pub(crate) fn io(
        path: impl Into<PathBuf>,
        action: &'static str,
        source: std::io::Error,
    ) -> Self {
        DataError::Io {
            path: path.into(),
            action,
            source,
        }
    }

    /// Shorthand for [`DataError::Invalid`].
    pub(crate) fn invalid(what: impl Into<String>, reason: impl Into<String>) -> Self {
        DataError::Invalid {
            what: what.into(),
            reason: reason.into(),
        }
    }

    /// Re-attributes an in-memory validation error to the file it was read from, so that a
    /// bad episode inside a `.npz` is reported with the file's name.
    pub(crate) fn in_file(self, path: impl Into<PathBuf>) -> Self {
        match self {
            DataError::Invalid { what, reason } => {
                DataError::bad_file(path, format!("invalid {what}: {reason}"))
            }
            other => other,
        }
    }
}

fn shape_str(shape: &[usize]) -> String {
    let inner: Vec<String> = shape.iter().map(|d| d.to_string()).collect();
    format!("[{}]", inner.join(", "))
}

fn describe_key_mismatch(
    missing: &[String],
    unexpected: &[String],
    wrong_shape: &[(String, Vec<usize>, Vec<usize>)],
) -> String {
    let mut parts = Vec::new();
    if !missing.is_empty() {
        parts.push(format!(
            "{} missing key(s): {}",
            missing.len(),
            missing.join(", ")
        ));
    }
    if !unexpected.is_empty() {
        parts.push(format!(
            "{} unexpected key(s): {}",
            unexpected.len(),
            unexpected.join(", ")
        ));
    }
    if !wrong_shape.is_empty() {
        let mut s = format!("{} shape mismatch(es): ", wrong_shape.len());
        for (i, (key, want, got)) in wrong_shape.iter().enumerate() {
            if i > 0 {
                s.push_str(", ");
            }
            let _ = write!(
                s,
                "{key} expected {} found {}",
                shape_str(want),
                shape_str(got)
            );
        }
        parts.push(s);
    }
    format!("tensor set does not match: {}", parts.join("; "))
}
