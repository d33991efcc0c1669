//! Shared by the benchmarks: time an iteration on the GPU itself.

use std::time::{Duration, Instant};

use rssm::gpu::Gpu;

/// For criterion's `iter_custom`: each iteration runs `record` (which must only record
/// dispatches) as one submit, timed with GPU timestamp queries (start of its first compute pass
/// to the end of its last) where the adapter has them, else by wall time around submit + wait.
#[allow(dead_code)]
pub fn gpu_timed(gpu: &Gpu, iters: u64, mut record: impl FnMut()) -> Duration {
    let mut total = Duration::ZERO;
    for _ in 0..iters {
        let start = Instant::now();
        let (_, secs) = gpu.gpu_time(&mut record).expect("timing readback");
        total += match secs {
            Some(s) if s > 0.0 => Duration::from_secs_f64(s),
            _ => start.elapsed(),
        };
    }
    total
}
