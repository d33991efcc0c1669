//! Caching buffer allocator.
//!
//! Creating GPU buffers is slow and, in a training loop, pointless: every step needs the same
//! sizes again. Buffers are handed out by size class (four classes per power of two, so at most
//! 25% is wasted) and return to a free list when their last handle drops. After the first step,
//! a steady loop creates no new buffers; [`Stats::buffers_created`](super::Stats) counts them so
//! tests can check that.
//!
//! One hazard is handled here: `queue.write_buffer` runs at the *start* of the next submit, ahead
//! of commands recorded earlier but not yet submitted. A buffer freed during the current
//! recording may still be read by such a command, so uploads only take buffers freed before the
//! last submit (an older `epoch`). Kernel outputs may take any free buffer: commands execute in
//! recording order.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// Buffers of one size class waiting for reuse, with the epoch in which each was freed.
#[derive(Default)]
pub(crate) struct PoolState {
    free: HashMap<u64, Vec<(wgpu::Buffer, u64)>>,
    /// Incremented at every submit.
    pub(crate) epoch: u64,
    pub(crate) buffers_created: u64,
    pub(crate) bytes_created: u64,
    pub(crate) bytes_in_use: u64,
}

/// Round a byte size up to its size class: 4 classes per power of two, at least 256 bytes.
pub fn size_class(bytes: u64) -> u64 {
    let b = bytes.max(256);
    let top = 63 - b.leading_zeros() as u64; // floor(log2 b)
    let step = 1u64 << (top - 2);
    b.div_ceil(step) * step
}

impl PoolState {
    /// Take a free buffer of class `class`; `for_upload` only accepts buffers freed before the
    /// current epoch (see the module docs).
    pub(crate) fn take(&mut self, class: u64, for_upload: bool) -> Option<wgpu::Buffer> {
        let list = self.free.get_mut(&class)?;
        // The least free buffer in wgpu's fixed order on buffers, not the last freed: a steady
        // loop that frees and takes the same buffers every step then gets the same buffer at
        // the same point of every step, so its cached bind groups are reused (see recorder).
        let epoch = self.epoch;
        let pos = list
            .iter()
            .enumerate()
            .filter(|(_, (_, e))| !for_upload || *e < epoch)
            .min_by(|a, b| a.1 .0.cmp(&b.1 .0))
            .map(|(i, _)| i)?;
        Some(list.swap_remove(pos).0)
    }

    fn give_back(&mut self, buffer: wgpu::Buffer, class: u64) {
        let epoch = self.epoch;
        self.bytes_in_use -= class;
        self.free.entry(class).or_default().push((buffer, epoch));
    }

    /// Drop every cached free buffer (frees device memory; the next step allocates again).
    pub(crate) fn trim(&mut self) {
        self.free.clear();
    }
}

/// A pooled GPU storage buffer. Cloning shares it; when the last clone drops, the buffer goes
/// back to the pool. `len` is the number of f32 elements the owner asked for; the buffer itself
/// may be larger (its size class).
pub struct GpuBuffer {
    pub(crate) buffer: wgpu::Buffer,
    pub(crate) class: u64,
    pub(crate) len: usize,
    pub(crate) pool: Arc<Mutex<PoolState>>,
}

impl GpuBuffer {
    /// Number of f32 elements.
    pub fn len(&self) -> usize {
        self.len
    }
    /// True if the buffer holds no elements.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
    /// Bytes used by the elements (the binding size).
    pub fn bytes(&self) -> u64 {
        (self.len as u64 * 4).max(4)
    }
    /// The raw wgpu buffer.
    pub fn raw(&self) -> &wgpu::Buffer {
        &self.buffer
    }
    /// All elements, for [`Gpu::dispatch_ranges`](super::Gpu::dispatch_ranges).
    pub fn whole(&self) -> BufRange<'_> {
        BufRange {
            buf: self,
            offset: 0,
            len: self.len,
        }
    }
    /// Elements `offset .. offset + len`, to be bound on their own (a slice of a tensor larger
    /// than one storage binding may hold). Panics when the range leaves the buffer.
    pub fn range(&self, offset: usize, len: usize) -> BufRange<'_> {
        assert!(
            offset + len <= self.len,
            "range {offset}..{} of a buffer of {} f32",
            offset + len,
            self.len
        );
        BufRange {
            buf: self,
            offset,
            len,
        }
    }
}

/// A run of a buffer's elements bound as one storage binding.
#[derive(Clone, Copy, Debug)]
pub struct BufRange<'a> {
    pub(crate) buf: &'a GpuBuffer,
    /// First element.
    pub(crate) offset: usize,
    /// Number of elements.
    pub(crate) len: usize,
}

impl BufRange<'_> {
    /// Byte offset of the binding.
    pub fn byte_offset(&self) -> u64 {
        self.offset as u64 * 4
    }
    /// Bytes bound (at least 4: a binding cannot be empty).
    pub fn bytes(&self) -> u64 {
        (self.len as u64 * 4).max(4)
    }
}

impl Drop for GpuBuffer {
    fn drop(&mut self) {
        if let Ok(mut pool) = self.pool.lock() {
            pool.give_back(self.buffer.clone(), self.class);
        }
    }
}

impl std::fmt::Debug for GpuBuffer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "GpuBuffer({} f32, class {} B)", self.len, self.class)
    }
}

#[cfg(test)]
mod tests {
    use super::size_class;

    #[test]
    fn size_classes_round_up_at_most_25_percent() {
        assert_eq!(size_class(1), 256);
        assert_eq!(size_class(256), 256);
        assert_eq!(size_class(257), 320);
        for b in [300u64, 1000, 4097, 123_456, 10_000_000] {
            let c = size_class(b);
            assert!(c >= b && (c - b) as f64 <= 0.25 * b as f64, "{b} -> {c}");
        }
    }
}
