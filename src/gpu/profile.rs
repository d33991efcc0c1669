//! Per-dispatch profiling: run a recorded step with every dispatch in a compute pass of its own,
//! bracketed by timestamp queries, and report each dispatch's device time. Slower than a normal
//! step (one pass per dispatch), so it is for finding where a step's time goes, not for timing it.

use std::collections::HashMap;

use crate::error::{Error, Result};
use crate::gpu::context::Gpu;
use crate::gpu::recorder::{ProfileQueries, PROFILE_SET_PAIRS};

/// One profiled dispatch.
#[derive(Clone, Debug)]
pub struct DispatchTime {
    /// `family::entry` of its kernel.
    pub kernel: String,
    /// Its kernel's override constants (`Kernel::variant`).
    pub variant: String,
    pub groups: [u32; 3],
    pub secs: f64,
}

/// Dispatches of one kernel, summed.
#[derive(Clone, Debug)]
pub struct KernelTime {
    pub kernel: String,
    pub dispatches: usize,
    pub secs: f64,
}

/// Sum `times` per kernel, longest total first.
pub fn by_kernel(times: &[DispatchTime]) -> Vec<KernelTime> {
    let mut sums: HashMap<&str, (usize, f64)> = HashMap::new();
    for t in times {
        let e = sums.entry(&t.kernel).or_default();
        e.0 += 1;
        e.1 += t.secs;
    }
    let mut out: Vec<KernelTime> = sums
        .into_iter()
        .map(|(k, (n, s))| KernelTime {
            kernel: k.to_string(),
            dispatches: n,
            secs: s,
        })
        .collect();
    out.sort_by(|a, b| b.secs.total_cmp(&a.secs));
    out
}

impl Gpu {
    /// Run `run` (which records and submits work, and may read back) with every dispatch
    /// timed on its own. Returns what `run` returned and the time of each dispatch, in order.
    /// Errors when the adapter has no timestamp queries.
    pub fn profile<R>(&self, run: impl FnOnce() -> Result<R>) -> Result<(R, Vec<DispatchTime>)> {
        if !self.shared.report.timestamps {
            return Err(Error::Invalid(
                "profiling needs timestamp queries, which this adapter does not have".into(),
            ));
        }
        self.flush();
        self.shared
            .rec
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .profile = Some(ProfileQueries::default());
        let r = run();
        self.flush();
        let prof = self
            .shared
            .rec
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .profile
            .take()
            .unwrap_or_default();
        let r = r?;
        let mut ticks: Vec<u64> = Vec::with_capacity(2 * prof.dispatches.len());
        for (s, qs) in prof.sets.iter().enumerate() {
            let pairs = (prof.dispatches.len() - s * PROFILE_SET_PAIRS).min(PROFILE_SET_PAIRS);
            ticks.extend(self.read_timestamps(qs, 2 * pairs as u32)?);
        }
        let period = self.shared.queue.get_timestamp_period() as f64;
        let times = prof
            .dispatches
            .into_iter()
            .enumerate()
            .map(|(k, (kernel, groups))| DispatchTime {
                kernel: kernel.label.clone(),
                variant: kernel.variant.clone(),
                groups,
                secs: ticks[2 * k + 1].saturating_sub(ticks[2 * k]) as f64 * period * 1e-9,
            })
            .collect();
        Ok((r, times))
    }
}
