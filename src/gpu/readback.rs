//! Reading buffers back to the host, and timing a recorded batch with timestamp queries: the
//! two ways of waiting for the device.

use std::sync::mpsc;

use crate::error::{Error, Result};
use crate::gpu::context::Gpu;
use crate::gpu::pool::{size_class, GpuBuffer};
use crate::gpu::recorder::Cmd;

impl Gpu {
    /// Map `slice` for reading and wait for it (everything submitted before runs first).
    fn map_read(&self, slice: wgpu::BufferSlice<'_>) -> Result<wgpu::BufferView> {
        let err = |e: &dyn std::fmt::Display| Error::Readback(e.to_string());
        let (tx, rx) = mpsc::channel();
        slice.map_async(wgpu::MapMode::Read, move |r| {
            let _ = tx.send(r);
        });
        self.shared
            .device
            .poll(wgpu::PollType::wait_indefinitely())
            .map_err(|e| err(&e))?;
        rx.recv().map_err(|e| err(&e))?.map_err(|e| err(&e))?;
        slice.get_mapped_range().map_err(|e| err(&e))
    }

    /// Run `record` (which records dispatches) and submit it alone, returning what it returned
    /// and the GPU time between the start of its first and the end of its last compute pass,
    /// from timestamp queries (`None` when the adapter has none). Waits for the device.
    pub fn gpu_time<R>(&self, record: impl FnOnce() -> R) -> Result<(R, Option<f64>)> {
        self.flush();
        if !self.shared.report.timestamps {
            let r = record();
            self.sync();
            return Ok((r, None));
        }
        let qs = self
            .shared
            .device
            .create_query_set(&wgpu::QuerySetDescriptor {
                label: Some("timing"),
                ty: wgpu::QueryType::Timestamp,
                count: 2,
            });
        let r = record();
        {
            let mut rec = self.shared.rec.lock().unwrap_or_else(|e| e.into_inner());
            if rec.dispatch_count() == 0 {
                drop(rec);
                return Ok((r, Some(0.0)));
            }
            rec.timestamps = Some(qs.clone());
        }
        self.flush();
        let ticks = self.read_timestamps(&qs, 2)?;
        let period = self.shared.queue.get_timestamp_period() as f64;
        Ok((
            r,
            Some(ticks[1].saturating_sub(ticks[0]) as f64 * period * 1e-9),
        ))
    }

    /// Resolve the first `count` queries of `qs` and read them back (waits for the device).
    pub(crate) fn read_timestamps(&self, qs: &wgpu::QuerySet, count: u32) -> Result<Vec<u64>> {
        let bytes = 8 * count as u64;
        let resolve = self.shared.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("timestamps resolve"),
            size: bytes,
            usage: wgpu::BufferUsages::QUERY_RESOLVE | wgpu::BufferUsages::COPY_SRC,
            mapped_at_creation: false,
        });
        let read = self.shared.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("timestamps read"),
            size: bytes,
            usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        });
        let mut enc = self
            .shared
            .device
            .create_command_encoder(&wgpu::CommandEncoderDescriptor {
                label: Some("timestamps"),
            });
        enc.resolve_query_set(qs, 0..count, &resolve, 0);
        enc.copy_buffer_to_buffer(&resolve, 0, &read, 0, bytes);
        self.shared.queue.submit([enc.finish()]);
        let view = self.map_read(read.slice(..))?;
        Ok(bytemuck::pod_collect_to_vec(&view[..]))
    }

    /// Wait until the device is idle.
    pub fn sync(&self) {
        self.flush();
        let _ = self.shared.device.poll(wgpu::PollType::wait_indefinitely());
    }

    /// Read one buffer back (submits pending work and waits).
    pub fn read(&self, buf: &GpuBuffer) -> Result<Vec<f32>> {
        Ok(self.read_many(&[buf])?.pop().unwrap())
    }

    /// Read several buffers back with one submit and one wait.
    pub fn read_many(&self, bufs: &[&GpuBuffer]) -> Result<Vec<Vec<f32>>> {
        let total: u64 = bufs.iter().map(|b| b.len as u64 * 4).sum();
        if total == 0 {
            return Ok(bufs.iter().map(|_| Vec::new()).collect());
        }
        let class = size_class(total);
        let staging = {
            let mut st = self
                .shared
                .staging
                .lock()
                .unwrap_or_else(|e| e.into_inner());
            match st.iter().position(|(c, _)| *c == class) {
                Some(i) => st.swap_remove(i).1,
                None => {
                    let mut c = self
                        .shared
                        .counters
                        .lock()
                        .unwrap_or_else(|e| e.into_inner());
                    c.buffers_created += 1;
                    c.bytes_created += class;
                    self.shared.device.create_buffer(&wgpu::BufferDescriptor {
                        label: Some("readback"),
                        size: class,
                        usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
                        mapped_at_creation: false,
                    })
                }
            }
        };
        {
            let mut rec = self.shared.rec.lock().unwrap_or_else(|e| e.into_inner());
            let mut off = 0u64;
            for b in bufs {
                let size = b.len as u64 * 4;
                if size > 0 {
                    rec.cmds.push(Cmd::Copy {
                        src: b.buffer.clone(),
                        src_off: 0,
                        dst: staging.clone(),
                        dst_off: off,
                        size,
                    });
                }
                off += size;
            }
        }
        self.flush();
        let mut out = Vec::with_capacity(bufs.len());
        {
            let view = self.map_read(staging.slice(0..total))?;
            let mut off = 0;
            for b in bufs {
                let bytes = &view[off * 4..(off + b.len) * 4];
                out.push(bytemuck::pod_collect_to_vec::<u8, f32>(bytes));
                off += b.len;
            }
        }
        staging.unmap();
        self.shared
            .staging
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push((class, staging));
        self.shared
            .counters
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .readbacks += 1;
        Ok(out)
    }
}
