//! Ops: one module per kernel family. Each holds the op's forward, its backward and a
//! plain-Rust reference (`reference`, for the tests) side by side, the Rust twin of its
//! `shaders/<family>.wgsl`.
//!
//! Two levels per family: `*_forward`-style functions on [`Tensor`](crate::tensor::Tensor)s that
//! only record kernels, and tape-level functions on [`Var`](crate::tensor::Var)s that also
//! record the backward closure.

pub mod adam;
pub mod conv;
pub mod elementwise;
pub mod gaussian;
pub mod gru;
pub mod imagine;
pub mod kernels;
pub mod kl;
pub mod loss;
pub mod matmul;
pub mod reduce;
pub mod returns;
pub mod rssm;
pub mod shape;

pub use elementwise::{add, elu, mul, relu, scale, sigmoid, softplus, sub, tanh, Binary, Unary};
pub use matmul::{linear, matmul, mlp, Act};
pub use reduce::{mean_all, sum_all, sum_leading, sum_rows};
pub use shape::{concat_last, reshape, slice_time, split_last, stack_time};

use crate::gpu::Gpu;

/// A process-wide override of a kernel choice: `None` leaves the choice to the device,
/// `Some(on)` forces it (the tests run every variant on any device with these).
pub(crate) struct Force(std::sync::atomic::AtomicU8);

impl Force {
    pub(crate) const fn new() -> Force {
        Force(std::sync::atomic::AtomicU8::new(0))
    }

    pub(crate) fn set(&self, force: Option<bool>) {
        let v = match force {
            None => 0,
            Some(false) => 1,
            Some(true) => 2,
        };
        self.0.store(v, std::sync::atomic::Ordering::Relaxed);
    }

    pub(crate) fn get(&self) -> Option<bool> {
        match self.0.load(std::sync::atomic::Ordering::Relaxed) {
            1 => Some(false),
            2 => Some(true),
            _ => None,
        }
    }
}

/// An environment variable that chooses a kernel variant: `auto` (or unset: `None`), `on` or
/// `off`, read once into `cell`; anything else is an error naming the variable.
pub(crate) fn env_choice(
    name: &'static str,
    cell: &'static std::sync::OnceLock<std::result::Result<Option<bool>, String>>,
) -> crate::error::Result<Option<bool>> {
    cell.get_or_init(|| match std::env::var(name).as_deref() {
        Err(_) | Ok("") | Ok("auto") => Ok(None),
        Ok("on") => Ok(Some(true)),
        Ok("off") => Ok(Some(false)),
        Ok(other) => Err(format!("{name}='{other}': expected auto, on or off")),
    })
    .clone()
    .map_err(crate::error::Error::Invalid)
}

static LANES: Force = Force::new();

/// Force the subgroup kernels (`shaders/*_lanes.wgsl`) on (`Some(true)`, where the device has
/// 8-lane subgroups) or off (`Some(false)`) instead of choosing by adapter type (`None`): lets
/// the tests compare them with the plain kernels.
pub fn set_lanes(lanes: Option<bool>) {
    LANES.set(lanes);
}

/// `RSSM_LANES`: `auto` (the default: on CPU drivers with 8-lane subgroups), `on` (wherever
/// the device has 8-lane subgroups) or `off`; read once.
pub const LANES_ENV: &str = "RSSM_LANES";

/// Whether kernels with a subgroup variant (the matmul, the conv weight gradient) take it.
/// The variants need subgroups of exactly 8 lanes, and they are the CPU drivers' kernels:
/// lavapipe runs a subgroup as the 8 lanes of one SIMD register but loads every storage value
/// lane by lane, so lanes that need the same values load one share each and broadcast them.
pub fn use_lanes(gpu: &Gpu) -> crate::error::Result<bool> {
    static ENV: std::sync::OnceLock<std::result::Result<Option<bool>, String>> =
        std::sync::OnceLock::new();
    let has = gpu.report().subgroup_lanes == Some(8);
    let choice = match LANES.get() {
        Some(on) => Some(on),
        None => env_choice(LANES_ENV, &ENV)?,
    };
    Ok(match choice {
        Some(on) => on && has,
        None => has && gpu.report().is_cpu(),
    })
}

/// Shorthand used by every op: a 1-D grid of `gpu::WG_1D`-wide workgroups.
pub(crate) fn grid(gpu: &Gpu, n: usize) -> [u32; 3] {
    gpu.grid_1d(n, crate::gpu::WG_1D)
}

/// `(first row, rows)` of each slice when `rows` rows run `per` at a time (see
/// [`Gpu::rows_per_binding`]); one slice of all rows when `per >= rows`.
pub(crate) fn slices(rows: usize, per: usize) -> impl Iterator<Item = (usize, usize)> {
    let per = per.max(1);
    (0..rows.div_ceil(per)).map(move |i| (i * per, per.min(rows - i * per)))
}
