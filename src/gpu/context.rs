//! Device creation and the [`Gpu`] handle every layer above uses: buffers from the pool,
//! kernels, dispatches and copies recorded, and their submit. Adapter choice is in
//! [`adapter`](crate::gpu::adapter), readback and timing in [`readback`](crate::gpu::readback).

use crate::gpu::pipelines::{kernel_sig, KernelSig};
use std::sync::{Arc, Mutex};

use crate::error::{Error, Result};
use crate::gpu::adapter::{adapter_report, choose_adapter, AdapterReport, GpuOptions};
use crate::gpu::denormals::FlushSubnormals;
use crate::gpu::device_profile::{DeviceProfile, ENGINE_FEATURES};
use crate::gpu::pipelines::{Kernel, PipelineCache, PipelineKey};
use crate::gpu::pool::{size_class, BufRange, GpuBuffer, PoolState};
use crate::gpu::recorder::{Cmd, Recorder, PARAM_SLOT};
use crate::gpu::tuning::{Tuning, TuningOverrides};

// The kernels this module dispatches: entry points and the storage buffers they bind, in order.

/// `probe::loop_limit`.
pub const LOOP_LIMIT: KernelSig = kernel_sig!(u32, "probe", "loop_limit", [], ["out"]);

/// Counters for tests and benchmarks.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    /// GPU buffers ever created (pool misses, readback staging, parameter arena).
    pub buffers_created: u64,
    /// Bytes of those buffers.
    pub bytes_created: u64,
    /// Bytes of pooled buffers currently handed out.
    pub bytes_in_use: u64,
    /// Dispatches recorded since the device was created.
    pub dispatches: u64,
    /// Command buffers submitted.
    pub submits: u64,
    /// Readbacks (each one is a submit + wait).
    pub readbacks: u64,
    /// Compiled pipelines.
    pub pipelines: u64,
    /// Bind groups created (at flush; a steady loop reuses cached ones).
    pub bind_groups_created: u64,
}

/// What every clone of a [`Gpu`] shares (visible to the sibling modules that extend `Gpu`).
pub(super) struct Shared {
    pub(super) device: wgpu::Device,
    pub(super) queue: wgpu::Queue,
    pub(super) report: AdapterReport,
    pub(super) limits: wgpu::Limits,
    /// Bytes one storage binding may hold: the adapter's limit or the `max_binding` cap.
    pub(super) binding_limit: u64,
    pub(super) pool: Arc<Mutex<PoolState>>,
    pub(super) pipelines: Mutex<PipelineCache>,
    pub(super) rec: Mutex<Recorder>,
    pub(super) staging: Mutex<Vec<(u64, wgpu::Buffer)>>,
    pub(super) counters: Mutex<Stats>,
}

/// The device handle. Cheap to clone; all clones share one device, pool and recorder.
/// A handle also carries the device's kernel choices ([`Tuning`]); [`Gpu::with_tuning`] gives
/// a handle on the same device with others (tensors made with it run its kernels).
#[derive(Clone)]
pub struct Gpu {
    pub(super) shared: Arc<Shared>,
    tuning: Tuning,
}

fn gcd(a: u64, b: u64) -> u64 {
    if b == 0 {
        a
    } else {
        gcd(b, a % b)
    }
}

fn lcm(a: u64, b: u64) -> u64 {
    a / gcd(a, b) * b
}

impl Gpu {
    /// Pick the best adapter (discrete > integrated > virtual > other > CPU; native APIs over
    /// GL), honouring `WGPU_BACKEND` and `--adapter` / `WGPU_ADAPTER_NAME`, and create a device
    /// with the adapter's own limits (the WebGPU defaults, e.g. 128 MiB per storage binding,
    /// are too small for a B=50, T=50 batch).
    ///
    /// The kernel choices ([`Tuning`]) are decided here: the rules for the adapter, with the
    /// environment's overrides (`RSSM_TUNING`) and then `opts.tuning` over them.
    ///
    /// Under a device profile (`opts.profile`, else `RSSM_DEVICE_PROFILE`) the device gets the
    /// profile's limits (each capped at the adapter's) and the engine's optional features both
    /// have, and the report takes the profile's device type and subgroup widths, so the rules
    /// decide as on that class of device (see [`DeviceProfile`]).
    pub fn new(opts: &GpuOptions) -> Result<Gpu> {
        let overrides = opts.tuning.over(TuningOverrides::from_env()?);
        // A CPU driver's worker threads, created with the adapter and device, inherit this
        // thread's flush-to-zero mode (see gpu::denormals); this thread gets its own back.
        let _flush = FlushSubnormals::new(overrides.flush_subnormals.unwrap_or(true));
        let profile = match &opts.profile {
            Some(p) => Some(p.clone()),
            None => DeviceProfile::from_env()?,
        };
        let adapter = choose_adapter(opts)?;
        let info = adapter.get_info();
        // Under a profile, exactly its limits, each capped at what the adapter offers.
        let limits = match &profile {
            Some(p) => p.limits_on(&adapter.limits()),
            None => adapter.limits(),
        };
        // Timestamps (`rssm bench` on GPUs); subgroup operations: the CPU-driver matmul shares
        // its loads across the lanes of a subgroup (shaders/matmul_lanes.wgsl). Under a
        // profile, those of them the profile has too.
        let mut features = adapter.features() & ENGINE_FEATURES;
        if let Some(p) = &profile {
            features &= p.features;
        }
        let (device, queue) = pollster::block_on(adapter.request_device(&wgpu::DeviceDescriptor {
            label: Some("rssm"),
            required_features: features,
            required_limits: limits.clone(),
            experimental_features: wgpu::ExperimentalFeatures::disabled(),
            memory_hints: wgpu::MemoryHints::Performance,
            trace: wgpu::Trace::Off,
        }))
        .map_err(|e| Error::Device {
            adapter: match &profile {
                Some(p) => format!("{} under device profile '{}'", info.name, p.name),
                None => info.name.clone(),
            },
            reason: e.to_string(),
        })?;
        let report = adapter_report(&adapter, &limits, features, profile.as_ref());
        if opts.max_binding == Some(0) {
            return Err(Error::Invalid(
                "the storage binding cap must be at least 4 bytes".into(),
            ));
        }
        let binding_limit = opts
            .max_binding
            .unwrap_or(u64::MAX)
            .min(limits.max_storage_buffer_binding_size as u64)
            .min(limits.max_buffer_size);
        let tuning = Tuning::decide(&report, &overrides);
        let mut gpu = Gpu {
            tuning,
            shared: Arc::new(Shared {
                device,
                queue,
                report,
                binding_limit,
                limits,
                pool: Arc::new(Mutex::new(PoolState::default())),
                pipelines: Mutex::new(PipelineCache::default()),
                rec: Mutex::new(Recorder::default()),
                staging: Mutex::new(Vec::new()),
                counters: Mutex::new(Stats::default()),
            }),
        };
        let loop_limit = gpu.probe_loop_limit()?;
        if let Some(shared) = Arc::get_mut(&mut gpu.shared) {
            shared.report.loop_limit = loop_limit;
        }
        Ok(gpu)
    }

    /// How many loop iterations one shader invocation may run before the driver ends its loops
    /// (`None`: no limit was met in a million). Measured, since no API reports it: lavapipe
    /// stops every loop of an entry point after 65,535 iterations in total and goes on
    /// silently, so kernels whose loops could run longer split their work by it.
    fn probe_loop_limit(&self) -> Result<Option<u32>> {
        const N: u32 = 1 << 20;
        let k = self.kernel(&LOOP_LIMIT, &[])?;
        let out = self.zeros(1)?;
        self.dispatch(&k, &N, &[&out], [1, 1, 1]);
        let ran = self.read(&out)?[0] as u32;
        Ok((ran < N).then_some(ran))
    }

    /// The kernel choices of this handle.
    pub fn tuning(&self) -> &Tuning {
        &self.tuning
    }

    /// A handle on the same device (buffers, pipelines and recorder shared) with other kernel
    /// choices, limited to those the device can run ([`Tuning::within`]). Tensors and models
    /// made with it run its kernels: the tests run every variant this way. (The subnormal
    /// mode stays the device's: it is set on the driver's threads when they are created.)
    pub fn with_tuning(&self, tuning: Tuning) -> Gpu {
        Gpu {
            shared: self.shared.clone(),
            tuning: Tuning {
                flush_subnormals: self.tuning.flush_subnormals,
                ..tuning.within(&self.shared.report)
            },
        }
    }

    /// Whether `other` is a handle on the same device.
    pub fn same_device(&self, other: &Gpu) -> bool {
        Arc::ptr_eq(&self.shared, &other.shared)
    }

    /// This handle with `overrides` applied over its tuning.
    pub fn with_overrides(&self, overrides: &TuningOverrides) -> Gpu {
        self.with_tuning(overrides.apply(self.tuning))
    }

    /// The driver's limit on loop iterations per shader invocation, if it has one (see
    /// [`AdapterReport::loop_limit`]).
    pub fn loop_limit(&self) -> Option<u32> {
        self.shared.report.loop_limit
    }

    /// Every adapter wgpu finds (name, backend, type), for `rssm info --all`.
    pub fn list_adapters() -> Vec<String> {
        crate::gpu::adapter::list_adapters()
    }

    /// The adapter we run on.
    pub fn report(&self) -> &AdapterReport {
        &self.shared.report
    }

    /// The device limits in force.
    pub fn limits(&self) -> &wgpu::Limits {
        &self.shared.limits
    }

    /// The raw device (for benchmarks and extensions).
    pub fn device(&self) -> &wgpu::Device {
        &self.shared.device
    }

    /// Counters: buffers created, dispatches, submits, readbacks.
    pub fn stats(&self) -> Stats {
        let mut s = *self
            .shared
            .counters
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        let pool = self.shared.pool.lock().unwrap_or_else(|e| e.into_inner());
        s.buffers_created += pool.buffers_created;
        s.bytes_created += pool.bytes_created;
        s.bytes_in_use = pool.bytes_in_use;
        s.pipelines = self
            .shared
            .pipelines
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .len() as u64;
        s
    }

    /// Every pipeline compiled on this device so far: family, entry point and override
    /// constants with their values (for the tests that take each one through every backend's
    /// shader translation), sorted.
    pub fn pipeline_keys(&self) -> Vec<PipelineKey> {
        let mut keys = self
            .shared
            .pipelines
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .keys();
        keys.sort_by(|a, b| {
            (a.family, a.entry).cmp(&(b.family, b.entry)).then_with(|| {
                a.constants
                    .partial_cmp(&b.constants)
                    .unwrap_or(std::cmp::Ordering::Equal)
            })
        });
        keys
    }

    /// Dispatches recorded but not yet submitted.
    pub fn pending_dispatches(&self) -> usize {
        self.shared
            .rec
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .dispatch_count()
    }

    /// Free the pool's cached buffers (memory goes back to the driver), and the cached bind
    /// groups that keep buffers alive.
    pub fn trim(&self) {
        self.flush();
        self.shared
            .rec
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clear_bind_groups();
        self.shared
            .pool
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .trim();
    }

    /// Bytes one storage binding may hold (the adapter's limit, or the `max_binding` cap).
    pub fn binding_limit(&self) -> u64 {
        self.shared.binding_limit
    }

    /// Check that `len` f32 elements fit in one buffer (`max_buffer_size`). A buffer may be
    /// larger than one binding: ops then bind it in slices (see [`Gpu::rows_per_binding`]).
    pub fn check_len(&self, len: usize, what: &str) -> Result<()> {
        let bytes = len as u64 * 4;
        let limit = self.shared.limits.max_buffer_size;
        if bytes > limit {
            return Err(Error::TooLarge {
                what: what.to_string(),
                bytes,
                limit,
                per: "buffer",
                adapter: self.shared.report.label(),
            });
        }
        Ok(())
    }

    /// How many rows an op may give one dispatch so that every operand's slice fits one
    /// storage binding: operand `i` holds `row_elems[i]` f32 per row (the op runs over `rows`
    /// rows), and `whole_elems` are operands bound whole in every slice (weights). Returns
    /// `rows` when everything fits (one dispatch, as without slicing). Slices start at a
    /// multiple of the device's storage offset alignment, so a slice is a whole number of
    /// "granules" of rows. Errors, naming `what`, when not even one granule fits.
    pub fn rows_per_binding(
        &self,
        what: &str,
        rows: usize,
        row_elems: &[usize],
        whole_elems: &[usize],
    ) -> Result<usize> {
        let limit = self.shared.binding_limit;
        let too_large = |what: String, bytes: u64| Error::TooLarge {
            what,
            bytes,
            limit,
            per: "storage binding",
            adapter: self.shared.report.label(),
        };
        if let Some(&w) = whole_elems.iter().max() {
            if w as u64 * 4 > limit {
                return Err(too_large(format!("an operand of {what}"), w as u64 * 4));
            }
        }
        let widest = row_elems.iter().copied().max().unwrap_or(0) as u64 * 4;
        if widest == 0 || rows as u64 * widest <= limit {
            return Ok(rows.max(1));
        }
        if widest > limit {
            return Err(too_large(format!("one row of {what}"), widest));
        }
        let align = (self.shared.limits.min_storage_buffer_offset_alignment as u64).max(4);
        let granule = row_elems
            .iter()
            .filter(|e| **e > 0)
            .fold(1u64, |g, e| lcm(g, align / gcd(*e as u64 * 4, align)));
        let per = limit / widest / granule * granule;
        if per == 0 {
            return Err(too_large(
                format!(
                    "{granule} rows of {what} (slices must start at a multiple of {align} bytes)"
                ),
                granule * widest,
            ));
        }
        Ok(per as usize)
    }

    fn acquire(&self, len: usize, for_upload: bool) -> Result<GpuBuffer> {
        self.check_len(len, "a tensor")?;
        // The size class may round past the device's largest buffer; the exact size still fits.
        let bytes = len as u64 * 4;
        let class = size_class(bytes).min(self.shared.limits.max_buffer_size.max(bytes));
        let mut pool = self.shared.pool.lock().unwrap_or_else(|e| e.into_inner());
        let buffer = match pool.take(class, for_upload) {
            Some(b) => b,
            None => {
                pool.buffers_created += 1;
                pool.bytes_created += class;
                self.shared.device.create_buffer(&wgpu::BufferDescriptor {
                    label: None,
                    size: class,
                    usage: wgpu::BufferUsages::STORAGE
                        | wgpu::BufferUsages::COPY_SRC
                        | wgpu::BufferUsages::COPY_DST,
                    mapped_at_creation: false,
                })
            }
        };
        pool.bytes_in_use += class;
        Ok(GpuBuffer {
            buffer,
            class,
            len,
            pool: self.shared.pool.clone(),
        })
    }

    /// A buffer of `len` f32 with undefined contents, for a kernel to write.
    pub fn alloc(&self, len: usize) -> Result<GpuBuffer> {
        self.acquire(len, false)
    }

    /// A zero-filled buffer (the clear is recorded in order with the dispatches).
    pub fn zeros(&self, len: usize) -> Result<GpuBuffer> {
        let b = self.acquire(len, false)?;
        self.clear(&b);
        Ok(b)
    }

    /// Record a clear of `buf` to zero.
    pub fn clear(&self, buf: &GpuBuffer) {
        self.shared
            .rec
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .cmds
            .push(Cmd::Clear {
                buf: buf.buffer.clone(),
                size: buf.bytes(),
            });
    }

    /// Upload host data into a new buffer.
    pub fn upload(&self, data: &[f32]) -> Result<GpuBuffer> {
        let b = self.acquire(data.len(), true)?;
        if !data.is_empty() {
            self.shared
                .queue
                .write_buffer(&b.buffer, 0, bytemuck::cast_slice(data));
        }
        Ok(b)
    }

    /// Overwrite an existing buffer with host data. Pending commands are submitted first, so
    /// they still see the old contents.
    pub fn write(&self, buf: &GpuBuffer, data: &[f32]) -> Result<()> {
        if data.len() != buf.len {
            return Err(Error::Invalid(format!(
                "write of {} values into a buffer of {}",
                data.len(),
                buf.len
            )));
        }
        if !self
            .shared
            .rec
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .cmds
            .is_empty()
        {
            self.flush();
        }
        if !data.is_empty() {
            self.shared
                .queue
                .write_buffer(&buf.buffer, 0, bytemuck::cast_slice(data));
        }
        Ok(())
    }

    /// The compiled kernel `sig` (an entry point of `shaders/<family>.wgsl`) with the given
    /// override constants; an error for a constant `sig` does not list, and
    /// [`Error::Unsupported`] for a kernel the device cannot run: more storage buffers than
    /// a shader stage may bind, a workgroup larger than the device runs, or a pipeline the
    /// device refuses (wgpu's validation error, caught, never a panic).
    pub fn kernel(
        &self,
        sig: &'static KernelSig,
        constants: &[(&'static str, f64)],
    ) -> Result<Arc<Kernel>> {
        self.shared.pipelines.lock().unwrap().get(
            &self.shared.device,
            &self.shared.limits,
            &self.shared.report,
            sig,
            constants,
        )
    }

    /// Record one dispatch: `params` goes to binding 0 (a uniform block) and `bufs`, in order,
    /// to the storage bindings the entry point uses, in ascending binding number. (A shader
    /// family declares its bindings once; each entry point uses a subset.)
    pub fn dispatch<P: bytemuck::Pod>(
        &self,
        kernel: &Arc<Kernel>,
        params: &P,
        bufs: &[&GpuBuffer],
        groups: [u32; 3],
    ) {
        let ranges: Vec<BufRange<'_>> = bufs.iter().map(|b| b.whole()).collect();
        self.dispatch_ranges(kernel, params, &ranges, groups);
    }

    /// [`Gpu::dispatch`] with each storage binding a range of its buffer. Every range must fit
    /// one binding and start at a multiple of the storage offset alignment: ops size their
    /// slices with [`Gpu::rows_per_binding`], so a violation is a bug in the op (panics).
    pub fn dispatch_ranges<P: bytemuck::Pod>(
        &self,
        kernel: &Arc<Kernel>,
        params: &P,
        bufs: &[BufRange<'_>],
        groups: [u32; 3],
    ) {
        let sig = kernel.sig;
        assert!(
            bufs.len() == sig.bindings.len() && std::mem::size_of::<P>() == sig.params_bytes,
            "{}: given {} buffers and {} bytes of parameters; it binds {:?} and {} bytes",
            kernel.label,
            bufs.len(),
            std::mem::size_of::<P>(),
            sig.bindings,
            sig.params_bytes
        );
        if groups.contains(&0) {
            return;
        }
        let max = self.shared.limits.max_compute_workgroups_per_dimension;
        assert!(
            groups.iter().all(|g| *g <= max),
            "{}: workgroup grid {groups:?} exceeds the device's {max} per dimension",
            kernel.label
        );
        let align = self.shared.limits.min_uniform_buffer_offset_alignment as u64;
        let storage_align = self.shared.limits.min_storage_buffer_offset_alignment as u64;
        let storage: Vec<u32> = kernel.used.iter().copied().filter(|b| *b != 0).collect();
        assert_eq!(
            storage.len(),
            bufs.len(),
            "{}: uses storage bindings {storage:?} but was given {} buffers",
            kernel.label,
            bufs.len()
        );
        for r in bufs {
            assert!(
                r.bytes() <= self.shared.binding_limit,
                "{}: a binding of {} bytes exceeds the {}-byte storage binding limit (the op \
                 must slice it with rows_per_binding)",
                kernel.label,
                r.bytes(),
                self.shared.binding_limit
            );
            assert!(
                r.byte_offset().is_multiple_of(storage_align),
                "{}: binding offset {} is not a multiple of {storage_align}",
                kernel.label,
                r.byte_offset()
            );
        }
        let mut rec = self.shared.rec.lock().unwrap_or_else(|e| e.into_inner());
        let off = rec.push_params(bytemuck::bytes_of(params), align);
        rec.cmds.push(Cmd::Dispatch {
            kernel: kernel.clone(),
            params: off,
            bufs: storage
                .iter()
                .zip(bufs)
                .map(|(binding, b)| (*binding, b.buf.buffer.clone(), b.bytes()))
                .collect(),
            offsets: bufs.iter().map(|b| b.byte_offset()).collect(),
            groups,
        });
        drop(rec);
        self.shared
            .counters
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .dispatches += 1;
    }

    /// Record a copy of `len` f32 from `src[src_off..]` to `dst[dst_off..]`.
    pub fn copy(
        &self,
        src: &GpuBuffer,
        src_off: usize,
        dst: &GpuBuffer,
        dst_off: usize,
        len: usize,
    ) {
        assert!(
            src_off + len <= src.len && dst_off + len <= dst.len,
            "copy out of range"
        );
        if len == 0 {
            return;
        }
        self.shared
            .rec
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .cmds
            .push(Cmd::Copy {
                src: src.buffer.clone(),
                src_off: src_off as u64 * 4,
                dst: dst.buffer.clone(),
                dst_off: dst_off as u64 * 4,
                size: len as u64 * 4,
            });
    }

    /// Workgroup grid for `n` threads in 1-D workgroups of `wg`: when more than the device's
    /// per-dimension maximum are needed, the rest folds into y (and z). Kernels rebuild the
    /// flat index with `flat_group` from the prelude.
    pub fn grid_1d(&self, n: usize, wg: u32) -> [u32; 3] {
        let groups = (n as u64).div_ceil(wg as u64);
        self.fold(groups)
    }

    /// Grid of `nx` by `ny` workgroups; y folds into z past the device maximum (kernels use
    /// `fold_yz` from the prelude).
    pub fn grid_2d(&self, nx: usize, ny: usize) -> [u32; 3] {
        let max = self.shared.limits.max_compute_workgroups_per_dimension as u64;
        assert!(nx as u64 <= max, "grid x {nx} exceeds device maximum {max}");
        let [y, z, _] = self.fold(ny as u64);
        [nx as u32, y, z]
    }

    fn fold(&self, groups: u64) -> [u32; 3] {
        let max = self.shared.limits.max_compute_workgroups_per_dimension as u64;
        if groups <= max {
            [groups as u32, 1, 1]
        } else {
            let y = groups.div_ceil(max);
            let x = groups.div_ceil(y);
            [x as u32, y as u32, 1]
        }
    }

    /// Submit everything recorded so far as one command buffer. Does not wait.
    pub fn flush(&self) {
        let mut rec = self.shared.rec.lock().unwrap_or_else(|e| e.into_inner());
        if rec.cmds.is_empty() {
            return;
        }
        let need = rec.params.len() as u64;
        if need > 0 && rec.params_cap < need {
            let cap = need.next_power_of_two().max(64 * PARAM_SLOT);
            rec.params_buf = Some(self.shared.device.create_buffer(&wgpu::BufferDescriptor {
                label: Some("params arena"),
                size: cap,
                usage: wgpu::BufferUsages::UNIFORM | wgpu::BufferUsages::COPY_DST,
                mapped_at_creation: false,
            }));
            rec.params_cap = cap;
            // Cached bind groups point into the old arena.
            rec.clear_bind_groups();
            let mut c = self
                .shared
                .counters
                .lock()
                .unwrap_or_else(|e| e.into_inner());
            c.buffers_created += 1;
            c.bytes_created += cap;
        }
        if need > 0 {
            let buf = rec.params_buf.clone().unwrap();
            self.shared.queue.write_buffer(&buf, 0, &rec.params);
        }
        let mut encoder =
            self.shared
                .device
                .create_command_encoder(&wgpu::CommandEncoderDescriptor {
                    label: Some("step"),
                });
        let bind_groups = rec.encode(&self.shared.device, &mut encoder);
        // Submit and advance the epoch before releasing the recorder: a buffer freed by a
        // command in this batch must not count as "freed before the last submit" (and so be
        // handed to an upload) until the batch really is submitted.
        self.shared.queue.submit([encoder.finish()]);
        self.shared
            .pool
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .epoch += 1;
        drop(rec);
        let mut c = self
            .shared
            .counters
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        c.submits += 1;
        c.bind_groups_created += bind_groups;
    }
}
