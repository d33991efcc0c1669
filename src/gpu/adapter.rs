//! Adapter choice (the best device wgpu finds, or the one asked for) and the report of what
//! it offers.

use std::fmt;

use crate::error::{Error, Result};

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
    /// Kernel choices forced over the rules and over the environment's `RSSM_TUNING`
    /// (`--tuning`, Python's `Device(tuning=...)`, tests' variants).
    pub tuning: crate::gpu::TuningOverrides,
    /// Run as on another class of device (`--device-profile`, Python's `Device(profile=...)`):
    /// its limits (each capped at the adapter's), features, subgroup widths and device type.
    /// `None`: the environment's `RSSM_DEVICE_PROFILE`, else the adapter as it is.
    pub profile: Option<crate::gpu::DeviceProfile>,
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
    /// The subgroup width when the device runs subgroup operations and its subgroups have one
    /// fixed width (8 on lavapipe with AVX2); `None` otherwise.
    pub subgroup_lanes: Option<u32>,
    /// Optional features of the adapter, comma-separated names.
    pub features: String,
    /// Loop iterations one shader invocation may run in total before the driver ends its loops
    /// (lavapipe: 65,535), measured when the device is created; `None`: no limit.
    pub loop_limit: Option<u32>,
    /// The device profile the device runs under (its type and subgroups are then the
    /// profile's, its limits the profile's capped at the adapter's); `None`: the adapter's own.
    pub profile: Option<String>,
    /// Under a profile, the limits where the adapter offers less than the profile (`name:
    /// profile P, adapter A`): they run at the adapter's value.
    pub profile_shortfalls: Vec<String>,
    /// The device profile the adapter itself is closest to, and why
    /// ([`device_profile::closest`](crate::gpu::device_profile::closest)).
    pub closest_profile: String,
}

impl AdapterReport {
    /// One line: name, backend, type.
    pub fn short(&self) -> String {
        format!("{} ({}, {})", self.name, self.backend, self.device_type)
    }
    /// The adapter's name, with the device profile it runs under: for messages.
    pub fn label(&self) -> String {
        match &self.profile {
            Some(p) => format!("{} under device profile '{p}'", self.name),
            None => self.name.clone(),
        }
    }
    /// True for CPU implementations (lavapipe, llvmpipe, SwiftShader, WARP); under a device
    /// profile, the profile's type decides.
    pub fn is_cpu(&self) -> bool {
        self.device_type == "Cpu"
            || (self.profile.is_none() && self.name.to_lowercase().contains("llvmpipe"))
    }
}

impl fmt::Display for AdapterReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "adapter      {}", self.name)?;
        writeln!(f, "backend      {}", self.backend)?;
        writeln!(f, "device type  {}", self.device_type)?;
        writeln!(f, "driver       {}", self.driver)?;
        match &self.profile {
            Some(p) => {
                writeln!(
                    f,
                    "profile      {p}: its limits (capped at the adapter's), features, subgroups \
                     and device type"
                )?;
                if self.profile_shortfalls.is_empty() {
                    writeln!(
                        f,
                        "             the adapter offers every limit of the profile"
                    )?;
                } else {
                    writeln!(
                        f,
                        "             the adapter offers less than the profile (these run at \
                         the adapter's value):"
                    )?;
                    for s in &self.profile_shortfalls {
                        writeln!(f, "               {s}")?;
                    }
                }
            }
            None => writeln!(f, "closest      device profile {}", self.closest_profile)?,
        }
        writeln!(
            f,
            "limits{}",
            if self.profile.is_some() {
                " in force"
            } else {
                ""
            }
        )?;
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
        match self.subgroup_lanes {
            Some(n) => writeln!(f, "subgroups    {n} lanes")?,
            None => writeln!(f, "subgroups    not used")?,
        }
        match self.loop_limit {
            Some(n) => writeln!(
                f,
                "loops        the driver ends a shader's loops after {n} iterations (kernels split their work by it)"
            )?,
            None => writeln!(f, "loops        no limit")?,
        }
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

/// Every adapter wgpu finds (name, backend, type), for `rssm info --all`
/// ([`Gpu::list_adapters`](crate::gpu::Gpu::list_adapters)).
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

/// Pick the best adapter (discrete > integrated > virtual > other > CPU; native APIs over GL),
/// honouring `WGPU_BACKEND` and `--adapter` / `WGPU_ADAPTER_NAME`.
pub(super) fn choose_adapter(opts: &GpuOptions) -> Result<wgpu::Adapter> {
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
                instance_for(wgpu::Backends::PRIMARY).enumerate_adapters(wgpu::Backends::PRIMARY),
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
    Ok(adapters.swap_remove(0))
}

/// The report of `adapter` running with `limits` and the optional `features` requested, under
/// `profile` if one is given (its device type and subgroup widths then stand for the
/// adapter's).
pub(super) fn adapter_report(
    adapter: &wgpu::Adapter,
    limits: &wgpu::Limits,
    features: wgpu::Features,
    profile: Option<&crate::gpu::DeviceProfile>,
) -> AdapterReport {
    let info = adapter.get_info();
    let own_lanes = (features.contains(wgpu::Features::SUBGROUP)
        && info.subgroup_min_size == info.subgroup_max_size)
        .then_some(info.subgroup_min_size);
    AdapterReport {
        name: info.name.clone(),
        backend: format!("{:?}", info.backend),
        device_type: format!("{:?}", profile.map_or(info.device_type, |p| p.device_type)),
        driver: format!("{} {}", info.driver, info.driver_info)
            .trim()
            .to_string(),
        max_storage_binding: limits.max_storage_buffer_binding_size,
        max_buffer: limits.max_buffer_size,
        storage_offset_alignment: limits.min_storage_buffer_offset_alignment,
        max_storage_buffers_per_stage: limits.max_storage_buffers_per_shader_stage,
        max_workgroups_per_dim: limits.max_compute_workgroups_per_dimension,
        max_invocations_per_workgroup: limits.max_compute_invocations_per_workgroup,
        max_workgroup_storage: limits.max_compute_workgroup_storage_size,
        timestamps: features.contains(wgpu::Features::TIMESTAMP_QUERY),
        subgroup_lanes: match profile {
            Some(p) => p.subgroup_lanes(features),
            None => own_lanes,
        },
        features: feature_names(match profile {
            Some(_) => features,
            None => adapter.features(),
        }),
        loop_limit: None,
        profile: profile.map(|p| p.name.to_string()),
        profile_shortfalls: profile
            .map(|p| p.shortfalls(&adapter.limits()))
            .unwrap_or_default(),
        closest_profile: crate::gpu::device_profile::closest(
            &info,
            &adapter.limits(),
            adapter.features(),
        ),
    }
}
