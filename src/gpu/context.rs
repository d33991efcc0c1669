//! Adapter choice, device creation and the [`Gpu`] handle every layer above uses.

use std::fmt;
use std::sync::{mpsc, Arc, Mutex};

use crate::error::{Error, Result};
use crate::gpu::pipelines::{Kernel, PipelineCache};
use crate::gpu::pool::{size_class, BufRange, GpuBuffer, PoolState};
use crate::gpu::recorder::{Cmd, Recorder, PARAM_SLOT};

/// How to choose the adapter.
#[derive(Clone, Debug, Default)]
pub struct GpuOptions {
    /// Case-insensitive substring of the adapter name (`--adapter`); falls back to the
    /// `WGPU_ADAPTER_NAME` environment variable.
    pub adapter: Option<String>,
    /// Cap on the bytes of one storage binding, below the adapter's own limit: makes a small
    /// model take the sliced paths that large batches take on real devices (tests, `rssm bench
    /// --max-binding`). `None`: the adapter's `max_storage_buffer_binding_size`.
    pub max_binding: Option<u64>,
}

/// What we tell the user about the device at start.
#[derive(Clone, Debug)]
pub struct AdapterReport {
    pub name: String,
    pub backend: String,
    pub device_type: String,
    pub driver: String,
    pub max_storage_binding: u64,
    pub max_buffer: u64,
    /// Binding offsets of storage buffers must be multiples of this (bytes).
    pub storage_offset_alignment: u32,
    pub max_storage_buffers_per_stage: u32,
    pub max_workgroups_per_dim: u32,
    pub max_invocations_per_workgroup: u32,
    pub max_workgroup_storage: u32,
    pub timestamps: bool,
    /// Optional features of the adapter, comma-separated names.
    pub features: String,
}

impl AdapterReport {
    /// One line: name, backend, type.
    pub fn short(&self) -> String {
        format!("{} ({}, {})", self.name, self.backend, self.device_type)
    }
    /// True for CPU implementations (lavapipe, llvmpipe, SwiftShader, WARP).
    pub fn is_cpu(&self) -> bool {
        self.device_type == "Cpu" || self.name.to_lowercase().contains("llvmpipe")
    }
}

impl fmt::Display for AdapterReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "adapter      {}", self.name)?;
        writeln!(f, "backend      {}", self.backend)?;
        writeln!(f, "device type  {}", self.device_type)?;
        writeln!(f, "driver       {}", self.driver)?;
        writeln!(f, "limits")?;
        writeln!(
            f,
            "  max storage buffer binding  {} MiB",
            self.max_storage_binding >> 20
        )?;
        writeln!(
            f,
            "  max buffer size             {} MiB",
            self.max_buffer >> 20
        )?;
        writeln!(
            f,
            "  storage offset alignment    {} B",
            self.storage_offset_alignment
        )?;
        writeln!(
            f,
            "  storage buffers per stage   {}",
            self.max_storage_buffers_per_stage
        )?;
        writeln!(
            f,
            "  workgroups per dimension    {}",
            self.max_workgroups_per_dim
        )?;
        writeln!(
            f,
            "  invocations per workgroup   {}",
            self.max_invocations_per_workgroup
        )?;
        writeln!(
            f,
            "  workgroup storage           {} KiB",
            self.max_workgroup_storage >> 10
        )?;
        writeln!(
            f,
            "timestamps   {}",
            if self.timestamps { "yes" } else { "no" }
        )?;
        write!(f, "features")?;
        if self.features.is_empty() {
            write!(f, "     none beyond WebGPU's")?;
        }
        for name in self.features.split(", ").filter(|n| !n.is_empty()) {
            write!(f, "\n  {name}")?;
        }
        Ok(())
    }
}

/// The adapter's optional features as readable names (`TIMESTAMP_QUERY, SHADER_F16, ...`),
/// comma-separated, instead of the bitflags' debug dump.
fn feature_names(features: wgpu::Features) -> String {
    let names: Vec<&str> = features.iter_names().map(|(name, _)| name).collect();
    names.join(", ")
}

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

struct Shared {
    device: wgpu::Device,
    queue: wgpu::Queue,
    report: AdapterReport,
    limits: wgpu::Limits,
    /// Bytes one storage binding may hold: the adapter's limit or the `max_binding` cap.
    binding_limit: u64,
    pool: Arc<Mutex<PoolState>>,
    pipelines: Mutex<PipelineCache>,
    rec: Mutex<Recorder>,
    staging: Mutex<Vec<(u64, wgpu::Buffer)>>,
    counters: Mutex<Stats>,
}

/// The device handle. Cheap to clone; all clones share one device, pool and recorder.
#[derive(Clone)]
pub struct Gpu {
    shared: Arc<Shared>,
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

fn type_rank(t: wgpu::DeviceType) -> u32 {
    match t {
        wgpu::DeviceType::DiscreteGpu => 0,
        wgpu::DeviceType::IntegratedGpu => 1,
        wgpu::DeviceType::VirtualGpu => 2,
        wgpu::DeviceType::Other => 3,
        wgpu::DeviceType::Cpu => 4,
    }
}

fn backend_rank(b: wgpu::Backend) -> u32 {
    match b {
        wgpu::Backend::Vulkan | wgpu::Backend::Metal | wgpu::Backend::Dx12 => 0,
        _ => 1,
    }
}

const NO_ADAPTER_HELP: &str = "no GPU adapter found.\n\
  rssm needs a Vulkan, Metal, DX12 or OpenGL driver. On a machine without a GPU, install the\n\
  CPU Vulkan driver: `sudo apt-get install mesa-vulkan-drivers libvulkan1` (Debian/Ubuntu),\n\
  or try the OpenGL backend with `WGPU_BACKEND=gl`.";

impl Gpu {
    /// Every adapter wgpu finds (name, backend, type), for `rssm info --all`.
    pub fn list_adapters() -> Vec<String> {
        crate::gpu::runtime_dir::ensure_runtime_dir();
        let instance =
            wgpu::Instance::new(wgpu::InstanceDescriptor::new_without_display_handle_from_env());
        let backends = wgpu::Backends::from_env().unwrap_or(wgpu::Backends::all());
        pollster::block_on(instance.enumerate_adapters(backends))
            .iter()
            .map(|a| {
                let i = a.get_info();
                format!("{} ({:?}, {:?})", i.name, i.backend, i.device_type)
            })
            .collect()
    }

    /// Pick the best adapter (discrete > integrated > virtual > other > CPU; native APIs over
    /// GL), honouring `WGPU_BACKEND` and `--adapter` / `WGPU_ADAPTER_NAME`, and create a device
    /// with the adapter's own limits (the WebGPU defaults, e.g. 128 MiB per storage binding,
    /// are too small for a B=50, T=50 batch).
    pub fn new(opts: &GpuOptions) -> Result<Gpu> {
        // Before any instance: Mesa reads it when the driver loads.
        crate::gpu::runtime_dir::ensure_runtime_dir();
        // Native APIs first; GL only when WGPU_BACKEND asks for it or nothing else exists
        // (creating a GL instance without a display prints EGL noise).
        let instance_for = |backends: wgpu::Backends| {
            let mut desc = wgpu::InstanceDescriptor::new_without_display_handle_from_env();
            desc.backends = backends;
            wgpu::Instance::new(desc)
        };
        let mut adapters = match wgpu::Backends::from_env() {
            Some(b) => pollster::block_on(instance_for(b).enumerate_adapters(b)),
            None => {
                let native = pollster::block_on(
                    instance_for(wgpu::Backends::PRIMARY)
                        .enumerate_adapters(wgpu::Backends::PRIMARY),
                );
                if native.is_empty() {
                    pollster::block_on(
                        instance_for(wgpu::Backends::SECONDARY)
                            .enumerate_adapters(wgpu::Backends::SECONDARY),
                    )
                } else {
                    native
                }
            }
        };
        if adapters.is_empty() {
            return Err(Error::NoAdapter(NO_ADAPTER_HELP.into()));
        }
        let wanted = opts
            .adapter
            .clone()
            .or_else(|| std::env::var("WGPU_ADAPTER_NAME").ok())
            .filter(|s| !s.is_empty());
        if let Some(w) = &wanted {
            let all: Vec<String> = adapters
                .iter()
                .map(|a| {
                    let i = a.get_info();
                    format!("{} ({:?})", i.name, i.backend)
                })
                .collect();
            adapters.retain(|a| a.get_info().name.to_lowercase().contains(&w.to_lowercase()));
            if adapters.is_empty() {
                return Err(Error::NoAdapter(format!(
                    "no adapter name contains '{w}'; available: {}",
                    all.join(", ")
                )));
            }
        }
        adapters.sort_by_key(|a| {
            let i = a.get_info();
            (type_rank(i.device_type), backend_rank(i.backend))
        });
        let adapter = adapters.swap_remove(0);
        let info = adapter.get_info();
        let limits = adapter.limits();
        let mut features = wgpu::Features::empty();
        if adapter.features().contains(wgpu::Features::TIMESTAMP_QUERY) {
            features |= wgpu::Features::TIMESTAMP_QUERY;
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
            adapter: info.name.clone(),
            reason: e.to_string(),
        })?;
        let report = AdapterReport {
            name: info.name.clone(),
            backend: format!("{:?}", info.backend),
            device_type: format!("{:?}", info.device_type),
            driver: format!("{} {}", info.driver, info.driver_info)
                .trim()
                .to_string(),
            max_storage_binding: limits.max_storage_buffer_binding_size as u64,
            max_buffer: limits.max_buffer_size,
            storage_offset_alignment: limits.min_storage_buffer_offset_alignment,
            max_storage_buffers_per_stage: limits.max_storage_buffers_per_shader_stage,
            max_workgroups_per_dim: limits.max_compute_workgroups_per_dimension,
            max_invocations_per_workgroup: limits.max_compute_invocations_per_workgroup,
            max_workgroup_storage: limits.max_compute_workgroup_storage_size,
            timestamps: features.contains(wgpu::Features::TIMESTAMP_QUERY),
            features: feature_names(adapter.features()),
        };
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
        Ok(Gpu {
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
        })
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
                adapter: self.shared.report.name.clone(),
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
            adapter: self.shared.report.name.clone(),
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

    /// The compiled kernel `entry` of `shaders/<family>.wgsl` with the given override constants.
    pub fn kernel(
        &self,
        family: &'static str,
        entry: &'static str,
        constants: &[(&'static str, f64)],
    ) -> Result<Arc<Kernel>> {
        self.shared
            .pipelines
            .lock()
            .unwrap()
            .get(&self.shared.device, family, entry, constants)
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
        let resolve = self.shared.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("timing resolve"),
            size: 16,
            usage: wgpu::BufferUsages::QUERY_RESOLVE | wgpu::BufferUsages::COPY_SRC,
            mapped_at_creation: false,
        });
        let read = self.shared.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("timing read"),
            size: 16,
            usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        });
        {
            let mut rec = self.shared.rec.lock().unwrap_or_else(|e| e.into_inner());
            if rec.dispatch_count() == 0 {
                drop(rec);
                return Ok((r, Some(0.0)));
            }
            rec.timestamps = Some(qs.clone());
        }
        self.flush();
        let mut enc = self
            .shared
            .device
            .create_command_encoder(&wgpu::CommandEncoderDescriptor {
                label: Some("timing"),
            });
        enc.resolve_query_set(&qs, 0..2, &resolve, 0);
        enc.copy_buffer_to_buffer(&resolve, 0, &read, 0, 16);
        self.shared.queue.submit([enc.finish()]);
        let ticks: Vec<u64> = {
            let view = self.map_read(read.slice(..))?;
            bytemuck::pod_collect_to_vec(&view[..])
        };
        let period = self.shared.queue.get_timestamp_period() as f64;
        Ok((
            r,
            Some(ticks[1].saturating_sub(ticks[0]) as f64 * period * 1e-9),
        ))
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
