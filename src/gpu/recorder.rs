//! The step recorder: dispatches, copies and clears are appended to a list and encoded into one
//! command buffer at `flush`, with every run of consecutive dispatches in one compute pass.
//!
//! Each dispatch's small uniform parameter block goes into one CPU-side arena that is uploaded
//! with a single `write_buffer` per submit, so recording a dispatch creates no GPU buffer. Bind
//! groups are made at flush time, when the arena buffer is known, and cached: a steady training
//! loop records the same kernels on the same pooled buffers at the same arena offsets every
//! step, so after its first step it creates no bind group at all (tested by counting).

use std::collections::HashMap;
use std::sync::Arc;

use crate::gpu::pipelines::Kernel;

pub(crate) enum Cmd {
    Dispatch {
        kernel: Arc<Kernel>,
        /// Byte offset of this dispatch's parameter block in the arena.
        params: u64,
        /// `(binding, buffer, bytes)` for the storage bindings 1..
        bufs: Vec<(u32, wgpu::Buffer, u64)>,
        /// Byte offset of each of `bufs`' bindings (a slice of a buffer larger than one
        /// binding may hold; 0 otherwise).
        offsets: Vec<u64>,
        groups: [u32; 3],
    },
    Copy {
        src: wgpu::Buffer,
        src_off: u64,
        dst: wgpu::Buffer,
        dst_off: u64,
        size: u64,
    },
    Clear {
        buf: wgpu::Buffer,
        size: u64,
    },
}

/// What makes a bind group: the kernel (by address: the pipeline cache keeps every kernel alive),
/// the parameter block's arena offset and the storage buffers with their bound ranges
/// `(binding, buffer, bytes, offset)`.
type BindKey = (usize, u64, Vec<(u32, wgpu::Buffer, u64, u64)>);

/// Cached bind groups kept at most; past it the least recently used half is dropped.
const BIND_CACHE_CAP: usize = 16_384;

#[derive(Default)]
pub(crate) struct Recorder {
    pub(crate) cmds: Vec<Cmd>,
    /// When set, the next encode writes a timestamp at the start of its first compute pass
    /// (query 0) and at the end of its last (query 1).
    pub(crate) timestamps: Option<wgpu::QuerySet>,
    /// When set (see `Gpu::profile`), every dispatch gets a compute pass of its own with a
    /// timestamp at its start and end.
    pub(crate) profile: Option<ProfileQueries>,
    pub(crate) params: Vec<u8>,
    pub(crate) params_buf: Option<wgpu::Buffer>,
    pub(crate) params_cap: u64,
    /// Bind groups by what they bind, with the encode (flush) that last used each.
    bind_groups: HashMap<BindKey, (wgpu::BindGroup, Arc<Kernel>, u64)>,
    encodes: u64,
}

/// Queries of a profiled run: one pair per dispatch, in sets of [`PROFILE_SET_PAIRS`] pairs.
#[derive(Default)]
pub(crate) struct ProfileQueries {
    pub(crate) sets: Vec<wgpu::QuerySet>,
    /// Each profiled dispatch's kernel, in submission order.
    pub(crate) dispatches: Vec<(Arc<Kernel>, [u32; 3])>,
}

/// Dispatches per profile query set (wgpu allows 4,096 queries in one set).
pub(crate) const PROFILE_SET_PAIRS: usize = 2048;

/// Size of one parameter slot; every kernel's `Params` struct fits in it.
pub const PARAM_SLOT: u64 = 256;

impl Recorder {
    /// Append a parameter block, aligned to `align`, and return its offset.
    pub(crate) fn push_params(&mut self, bytes: &[u8], align: u64) -> u64 {
        assert!(
            bytes.len() as u64 <= PARAM_SLOT,
            "parameter block of {} bytes exceeds the {PARAM_SLOT}-byte slot",
            bytes.len()
        );
        let stride = PARAM_SLOT.max(align);
        let off = self.params.len() as u64;
        self.params.extend_from_slice(bytes);
        self.params.resize((off + stride) as usize, 0);
        off
    }

    /// Forget every cached bind group (they keep their buffers alive): when the parameter arena
    /// is replaced or the pool drops its free buffers.
    pub(crate) fn clear_bind_groups(&mut self) {
        self.bind_groups.clear();
    }

    /// The cached bind group for `key`, made with `make` on a miss; counts misses in `created`.
    fn bind_group(
        &mut self,
        key: BindKey,
        kernel: &Arc<Kernel>,
        created: &mut u64,
        make: impl FnOnce() -> wgpu::BindGroup,
    ) -> wgpu::BindGroup {
        let now = self.encodes;
        if let Some((bg, _, used)) = self.bind_groups.get_mut(&key) {
            *used = now;
            return bg.clone();
        }
        if self.bind_groups.len() >= BIND_CACHE_CAP {
            let mut ages: Vec<u64> = self.bind_groups.values().map(|v| v.2).collect();
            let mid = ages.len() / 2;
            let cut = *ages.select_nth_unstable(mid).1;
            self.bind_groups.retain(|_, v| v.2 > cut);
        }
        *created += 1;
        let bg = make();
        self.bind_groups
            .insert(key, (bg.clone(), kernel.clone(), now));
        bg
    }

    pub(crate) fn dispatch_count(&self) -> usize {
        self.cmds
            .iter()
            .filter(|c| matches!(c, Cmd::Dispatch { .. }))
            .count()
    }

    /// Encode everything recorded so far into `encoder`. The arena must already hold the
    /// parameters (see `Gpu::flush`). Returns the number of bind groups it created.
    pub(crate) fn encode(
        &mut self,
        device: &wgpu::Device,
        encoder: &mut wgpu::CommandEncoder,
    ) -> u64 {
        let mut created = 0;
        self.encodes += 1;
        let params_buf = self.params_buf.clone();
        let cmds = std::mem::take(&mut self.cmds);
        let timestamps = self.timestamps.take();
        let is_dispatch = |c: &Cmd| matches!(c, Cmd::Dispatch { .. });
        let first = cmds.iter().position(is_dispatch);
        let last = cmds.iter().rposition(is_dispatch);
        let mut i = 0;
        while i < cmds.len() {
            match &cmds[i] {
                Cmd::Dispatch { .. } => {
                    // Where this pass's run of dispatches ends.
                    let run_end = cmds[i..]
                        .iter()
                        .position(|c| !is_dispatch(c))
                        .map_or(cmds.len(), |n| i + n);
                    let writes = timestamps.as_ref().and_then(|qs| {
                        let begin = (Some(i) == first).then_some(0);
                        let end = last.filter(|l| *l < run_end && *l >= i).map(|_| 1);
                        (begin.is_some() || end.is_some()).then_some(
                            wgpu::ComputePassTimestampWrites {
                                query_set: qs,
                                beginning_of_pass_write_index: begin,
                                end_of_pass_write_index: end,
                            },
                        )
                    });
                    let profiled = self.profile.as_mut().map(|prof| {
                        // One pass per dispatch, bracketed by its own pair of timestamps.
                        let Cmd::Dispatch { kernel, groups, .. } = &cmds[i] else {
                            unreachable!()
                        };
                        let k = prof.dispatches.len();
                        if k / PROFILE_SET_PAIRS == prof.sets.len() {
                            prof.sets
                                .push(device.create_query_set(&wgpu::QuerySetDescriptor {
                                    label: Some("profile"),
                                    ty: wgpu::QueryType::Timestamp,
                                    count: 2 * PROFILE_SET_PAIRS as u32,
                                }));
                        }
                        prof.dispatches.push((kernel.clone(), *groups));
                        let pair = (2 * (k % PROFILE_SET_PAIRS)) as u32;
                        (prof.sets[k / PROFILE_SET_PAIRS].clone(), pair)
                    });
                    let writes = match &profiled {
                        Some((qs, pair)) => Some(wgpu::ComputePassTimestampWrites {
                            query_set: qs,
                            beginning_of_pass_write_index: Some(*pair),
                            end_of_pass_write_index: Some(*pair + 1),
                        }),
                        None => writes,
                    };
                    let mut pass = encoder.begin_compute_pass(&wgpu::ComputePassDescriptor {
                        label: None,
                        timestamp_writes: writes,
                    });
                    while let Some(Cmd::Dispatch {
                        kernel,
                        params,
                        bufs,
                        offsets,
                        groups,
                    }) = cmds.get(i)
                    {
                        let key: BindKey = (
                            Arc::as_ptr(kernel) as usize,
                            *params,
                            bufs.iter()
                                .zip(offsets)
                                .filter(|((b, _, _), _)| kernel.used.binary_search(b).is_ok())
                                .map(|((b, buf, size), off)| (*b, buf.clone(), *size, *off))
                                .collect(),
                        );
                        let bg = self.bind_group(key, kernel, &mut created, || {
                            let mut entries = Vec::with_capacity(bufs.len() + 1);
                            if kernel.used.first() == Some(&0) {
                                entries.push(wgpu::BindGroupEntry {
                                    binding: 0,
                                    resource: wgpu::BindingResource::Buffer(wgpu::BufferBinding {
                                        buffer: params_buf.as_ref().expect("params arena"),
                                        offset: *params,
                                        size: std::num::NonZeroU64::new(PARAM_SLOT),
                                    }),
                                });
                            }
                            for ((b, buf, size), offset) in bufs.iter().zip(offsets) {
                                if kernel.used.binary_search(b).is_ok() {
                                    entries.push(wgpu::BindGroupEntry {
                                        binding: *b,
                                        resource: wgpu::BindingResource::Buffer(
                                            wgpu::BufferBinding {
                                                buffer: buf,
                                                offset: *offset,
                                                size: std::num::NonZeroU64::new(*size),
                                            },
                                        ),
                                    });
                                }
                            }
                            device.create_bind_group(&wgpu::BindGroupDescriptor {
                                label: None,
                                layout: &kernel.layout,
                                entries: &entries,
                            })
                        });
                        pass.set_pipeline(&kernel.pipeline);
                        pass.set_bind_group(0, &bg, &[]);
                        pass.dispatch_workgroups(groups[0], groups[1], groups[2]);
                        i += 1;
                        if profiled.is_some() {
                            break;
                        }
                    }
                }
                Cmd::Copy {
                    src,
                    src_off,
                    dst,
                    dst_off,
                    size,
                } => {
                    encoder.copy_buffer_to_buffer(src, *src_off, dst, *dst_off, *size);
                    i += 1;
                }
                Cmd::Clear { buf, size } => {
                    encoder.clear_buffer(buf, 0, Some(*size));
                    i += 1;
                }
            }
        }
        self.params.clear();
        created
    }
}
