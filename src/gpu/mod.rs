//! The GPU layer: adapter choice and its report ([`adapter`]), the device handle and its
//! limits ([`context`]), readback and timing ([`readback`]), the caching buffer pool
//! ([`pool`]), the pipeline cache built from `shaders/` ([`pipelines`]) and the step recorder
//! that batches many dispatches into one submit ([`recorder`]), the device's kernel choices
//! ([`tuning`]) and the device classes it can run as ([`device_profile`]).
//!
//! Everything above this layer talks to the device through [`Gpu`]: `upload`, `zeros`,
//! `dispatch`, `copy`, `read`. Dispatches are recorded, not executed, until `flush` (or a
//! readback) submits them all in one command buffer.

pub mod adapter;
pub mod context;
mod denormals;
pub mod device_profile;
pub mod pipelines;
pub mod pool;
pub mod profile;
pub mod readback;
pub mod recorder;
pub mod runtime_dir;
pub mod shaders;
pub mod tuning;

pub use adapter::{AdapterReport, GpuOptions};
pub use context::{Gpu, Stats};
pub use device_profile::DeviceProfile;
pub use pipelines::{Kernel, PipelineKey};
pub use pool::{BufRange, GpuBuffer};
pub use tuning::{RssmPath, Tiling, Tuning, TuningOverrides};

/// Workgroup size used by the 1-D (elementwise-style) kernels; must match `WG` in the shaders'
/// common prelude.
pub const WG_1D: u32 = 256;
