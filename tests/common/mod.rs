//! Shared test helpers: one device per test binary and seeded random data.
#![allow(dead_code)]

use std::sync::OnceLock;

use rand::{Rng, SeedableRng};
use rssm::gpu::{Gpu, GpuOptions};

/// Awkward sizes: not multiples of any tile (1, 3, 7, 33, 257).
pub const SIZES: [usize; 5] = [1, 3, 7, 33, 257];

/// One device per test binary (pipelines compile once); tests may run in parallel on it.
pub fn gpu() -> Gpu {
    static GPU: OnceLock<Gpu> = OnceLock::new();
    GPU.get_or_init(|| {
        let g =
            Gpu::new(&GpuOptions::default()).expect("a GPU adapter (install mesa-vulkan-drivers)");
        eprintln!("test adapter: {}", g.report().short());
        g
    })
    .clone()
}

/// The shared device with other kernel choices: `f` edits the device's tuning (limited then to
/// what the device can run). Tensors and models made with the handle run those kernels, so
/// each test picks its variant without touching any other test's.
pub fn gpu_with(f: impl FnOnce(&mut rssm::gpu::Tuning)) -> Gpu {
    let g = gpu();
    let mut t = *g.tuning();
    f(&mut t);
    g.with_tuning(t)
}

/// A device of its own whose storage bindings hold only `bytes`: ops then run over slices
/// that fit, as a large batch does on a device with the usual limits.
pub fn capped(bytes: u64) -> Gpu {
    Gpu::new(&GpuOptions {
        max_binding: Some(bytes),
        ..GpuOptions::default()
    })
    .unwrap()
}

/// Every matmul kernel the device can run, named: the vec4 kernel with 4x4 and with 8x8
/// register blocks, and where the device has 8-lane subgroups the subgroup kernel.
pub fn matmul_variants() -> Vec<(&'static str, Gpu)> {
    let g = gpu();
    let r = g.report().clone();
    let mut v = vec![
        (
            "register blocks 4x4",
            gpu_with(|t| {
                t.lanes = false;
                t.wide_blocks = false
            }),
        ),
        (
            "register blocks 8x8",
            gpu_with(|t| {
                t.lanes = false;
                t.wide_blocks = true
            }),
        ),
    ];
    if r.subgroup_lanes == Some(8) {
        v.push(("subgroup lanes", gpu_with(|t| t.lanes = true)));
    } else {
        eprintln!("no 8-lane subgroups on this device: matmul_lanes not run");
    }
    v
}

/// Uniform values in [lo, hi).
pub fn rand_vec(n: usize, seed: u64, lo: f32, hi: f32) -> Vec<f32> {
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    (0..n).map(|_| rng.random_range(lo..hi)).collect()
}

/// Values in [-hi, -lo] U [lo, hi]: away from kinks at zero (ReLU, ELU) by at least `lo`.
pub fn rand_away_from_zero(n: usize, seed: u64, lo: f32, hi: f32) -> Vec<f32> {
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    (0..n)
        .map(|_| {
            let v = rng.random_range(lo..hi);
            if rng.random_bool(0.5) {
                v
            } else {
                -v
            }
        })
        .collect()
}

/// Assert two slices agree to `atol + rtol * |expected|` element-wise, naming the first miss.
pub fn assert_close(got: &[f32], want: &[f32], atol: f32, rtol: f32, what: &str) {
    assert_eq!(got.len(), want.len(), "{what}: length");
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        assert!(
            (g - w).abs() <= atol + rtol * w.abs() && g.is_finite() == w.is_finite(),
            "{what}: element {i}: got {g}, want {w}"
        );
    }
}

/// Largest |got - want| relative to the largest |want| (two implementations that sum in
/// different orders agree to f32 rounding of the whole tensor's scale); fails on non-finite
/// values.
pub fn rel_err(got: &[f32], want: &[f32]) -> f64 {
    assert_eq!(got.len(), want.len());
    assert!(got.iter().all(|x| x.is_finite()), "non-finite values");
    let scale = want.iter().fold(0.0f64, |m, x| m.max(x.abs() as f64));
    let diff = got
        .iter()
        .zip(want)
        .fold(0.0f64, |m, (a, b)| m.max((*a as f64 - *b as f64).abs()));
    if scale == 0.0 {
        diff
    } else {
        diff / scale
    }
}

/// `act(v)` in plain Rust (ELU in f64), the reference for the kernels' fused activations.
pub fn act_ref(act: rssm::ops::Act, v: f32) -> f32 {
    match act {
        rssm::ops::Act::None => v,
        rssm::ops::Act::Relu => v.max(0.0),
        rssm::ops::Act::Elu => {
            if v > 0.0 {
                v
            } else {
                ((v as f64).exp() - 1.0) as f32
            }
        }
    }
}
