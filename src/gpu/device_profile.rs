//! Device profiles: the limits, optional features, subgroup widths and device type of real
//! device classes, so that the engine can run on the device at hand as it would on one of them
//! (`--device-profile NAME`, `RSSM_DEVICE_PROFILE`, Python's `Device(profile=...)`).
//!
//! A profile is applied when the device is created ([`Gpu::new`](crate::gpu::Gpu::new)): the
//! device is requested with exactly the profile's limits, each capped at what the adapter
//! offers (the report lists where it offers less: [`AdapterReport::profile_shortfalls`]), and
//! with the optional features the engine uses that both the profile and the adapter have; the
//! profile's subgroup widths and device type go into the [`AdapterReport`], so
//! [`Tuning::rules`](crate::gpu::Tuning::rules) decides as on that device. What a profile
//! cannot do is not emulated: the adapter's own subgroup width, its speed and its driver's loop
//! limit stay its own.
//!
//! The values and where they come from: docs/backends.md, "Device profiles". `webgpu` and
//! `downlevel` are wgpu's own limit sets; the others take the limits a device of the class
//! reports to the Vulkan hardware database (gpuinfo.org) or in Apple's Metal feature set tables,
//! as wgpu-hal 30 turns them into `wgpu::Limits` (e.g. it reports Metal's subgroups as 4 to 64
//! lanes and caps a storage binding at 2 GiB - 1 on Vulkan), checked against the device classes
//! of wgpu-core 30's limit buckets (`wgpu-core/src/limits.rs`: m1, n1, a1, i1), which give each
//! class's subgroup widths and lower bounds of its limits.
//!
//! [`AdapterReport`]: crate::gpu::AdapterReport
//! [`AdapterReport::profile_shortfalls`]: crate::gpu::AdapterReport::profile_shortfalls

use crate::error::{Error, Result};

/// The variable naming the profile when neither `--device-profile` nor the code gives one.
pub const PROFILE_ENV: &str = "RSSM_DEVICE_PROFILE";

/// A device class: its limits, the optional features the engine looks at, its subgroup widths
/// and its device type.
#[derive(Clone, Debug, PartialEq)]
pub struct DeviceProfile {
    /// The name `--device-profile` takes (`nvidia`, `mobile`, ...).
    pub name: &'static str,
    /// What device it describes, in a few words.
    pub describes: &'static str,
    /// Where the values come from.
    pub source: &'static str,
    /// The limits the device is requested with (each capped at the adapter's).
    pub limits: wgpu::Limits,
    /// Of the optional features the engine uses (`TIMESTAMP_QUERY`, `SUBGROUP`), those the
    /// class has.
    pub features: wgpu::Features,
    /// The subgroup widths the class reports through wgpu, smallest and largest (equal: a fixed
    /// width, which the engine's subgroup kernels need); `None` without subgroup operations.
    pub subgroup: Option<(u32, u32)>,
    /// The device type it reports.
    pub device_type: wgpu::DeviceType,
}

/// The optional features the engine asks for when the adapter has them.
pub const ENGINE_FEATURES: wgpu::Features =
    wgpu::Features::TIMESTAMP_QUERY.union(wgpu::Features::SUBGROUP);

const MIB: u64 = 1 << 20;
const GIB: u64 = 1 << 30;
/// wgpu-hal's cap on a Vulkan storage binding (`auxil::MAX_I32_BINDING_SIZE`), rounded down to
/// the 4-byte binding size alignment.
const VK_MAX_BINDING: u64 = (i32::MAX as u64) & !3;
/// wgpu-hal's cap on a buffer on Linux and Android Vulkan drivers other than NVIDIA's.
const VK_MESA_MAX_BUFFER: u64 = i32::MAX as u64;

/// The names of every profile, in [`profiles`]' order.
pub const NAMES: [&str; 7] = [
    "webgpu",
    "downlevel",
    "apple-m",
    "nvidia",
    "amd-rdna",
    "intel-igpu",
    "mobile",
];

/// A desktop Vulkan device's compute limits over WebGPU's defaults.
fn desktop(
    binding: u64,
    buffer: u64,
    storage_buffers: u32,
    workgroup_storage: u32,
    storage_align: u32,
) -> wgpu::Limits {
    wgpu::Limits {
        max_storage_buffers_per_shader_stage: storage_buffers,
        max_dynamic_storage_buffers_per_pipeline_layout: 16,
        max_uniform_buffers_per_shader_stage: 15,
        max_uniform_buffer_binding_size: 64 << 10,
        max_storage_buffer_binding_size: binding,
        max_buffer_size: buffer,
        min_uniform_buffer_offset_alignment: 64,
        min_storage_buffer_offset_alignment: storage_align,
        max_compute_workgroup_storage_size: workgroup_storage,
        max_compute_invocations_per_workgroup: 1024,
        max_compute_workgroup_size_x: 1024,
        max_compute_workgroup_size_y: 1024,
        max_compute_workgroup_size_z: 64,
        max_compute_workgroups_per_dimension: 65535,
        ..wgpu::Limits::defaults()
    }
}

/// Every profile.
pub fn profiles() -> Vec<DeviceProfile> {
    use wgpu::Features as F;
    let all = F::TIMESTAMP_QUERY | F::SUBGROUP;
    vec![
        DeviceProfile {
            name: "webgpu",
            describes:
                "any WebGPU device: the limits every adapter guarantees, no optional feature",
            source: "WebGPU spec, \"Limits\" (default values) = wgpu Limits::default()",
            limits: wgpu::Limits::defaults(),
            features: F::empty(),
            subgroup: None,
            device_type: wgpu::DeviceType::Other,
        },
        DeviceProfile {
            name: "downlevel",
            describes: "a GLES 3.1-class device (old phones, WebGL-era GPUs)",
            source: "wgpu-types 30 Limits::downlevel_defaults()",
            limits: wgpu::Limits::downlevel_defaults(),
            features: F::empty(),
            subgroup: None,
            device_type: wgpu::DeviceType::Other,
        },
        DeviceProfile {
            name: "apple-m",
            describes: "an Apple M-series GPU (Apple7+) through Metal",
            source: "Apple's Metal feature set tables (31 buffer slots, 32 KiB threadgroup memory, 1024 \
                     threads per threadgroup) as wgpu-hal 30's Metal adapter reports them (29 \
                     storage buffers, subgroups 4..64, as wgpu-core 30's limit bucket m1 for the \
                     M series)",
            limits: wgpu::Limits {
                max_storage_buffers_per_shader_stage: 29,
                max_dynamic_storage_buffers_per_pipeline_layout: 29,
                max_uniform_buffers_per_shader_stage: 29,
                max_uniform_buffer_binding_size: 4 * GIB,
                max_storage_buffer_binding_size: 4 * GIB,
                max_buffer_size: 4 * GIB,
                min_uniform_buffer_offset_alignment: 256,
                min_storage_buffer_offset_alignment: 32,
                max_compute_workgroup_storage_size: 32 << 10,
                max_compute_invocations_per_workgroup: 1024,
                max_compute_workgroup_size_x: 1024,
                max_compute_workgroup_size_y: 1024,
                max_compute_workgroup_size_z: 1024,
                max_compute_workgroups_per_dimension: 65535,
                ..wgpu::Limits::defaults()
            },
            features: all,
            // The hardware's SIMD-groups are 32 wide; wgpu 30 reports every Metal adapter's
            // subgroups as 4 to 64 lanes.
            subgroup: Some((4, 64)),
            device_type: wgpu::DeviceType::IntegratedGpu,
        },
        DeviceProfile {
            name: "nvidia",
            describes: "an NVIDIA desktop GPU (Turing to Ada) through Vulkan",
            source: "gpuinfo.org Vulkan reports of GeForce RTX 20-40 (maxComputeSharedMemorySize 48 KiB, \
                     1024 invocations, subgroups 32, shaderInt64, timestamps; wgpu-core 30's \
                     limit bucket n1 for them: 48 KiB, subgroups 32..32) through wgpu-hal 30 \
                     (2 GiB - 1 per binding)",
            limits: desktop(VK_MAX_BINDING, 4 * GIB, 1 << 20, 48 << 10, 32),
            features: all,
            subgroup: Some((32, 32)),
            device_type: wgpu::DeviceType::DiscreteGpu,
        },
        DeviceProfile {
            name: "amd-rdna",
            describes: "an AMD RDNA GPU (RX 6000/7000) through Vulkan (RADV on Linux)",
            source: "gpuinfo.org Vulkan reports of Radeon RX 6000/7000 (maxComputeSharedMemorySize \
                     64 KiB, 1024 invocations, subgroups 32..64, shaderInt64, timestamps; \
                     wgpu-core 30's limit bucket a1 for them: subgroups 32..64) through wgpu-hal \
                     30 (2 GiB - 1 per buffer on Linux)",
            limits: desktop(VK_MAX_BINDING, VK_MESA_MAX_BUFFER, 1 << 20, 64 << 10, 32),
            features: all,
            subgroup: Some((32, 64)),
            device_type: wgpu::DeviceType::DiscreteGpu,
        },
        DeviceProfile {
            name: "intel-igpu",
            describes: "an Intel integrated GPU (Xe / Iris Xe) through Vulkan (ANV on Linux)",
            source: "gpuinfo.org Vulkan reports of Intel Xe graphics (64 KiB shared memory, 1024 \
                     invocations, subgroups 8..32, 64-byte offset alignment) with the storage \
                     binding of wgpu-core 30's limit bucket i1 for Arc, UHD 600 and Iris Xe \
                     (512 MiB; subgroups 8..32), through wgpu-hal 30",
            limits: desktop(512 * MIB, VK_MESA_MAX_BUFFER, 1 << 20, 64 << 10, 64),
            features: all,
            subgroup: Some((8, 32)),
            device_type: wgpu::DeviceType::IntegratedGpu,
        },
        DeviceProfile {
            name: "mobile",
            describes: "a phone GPU (Arm Mali Valhall, Qualcomm Adreno class) through Vulkan",
            source: "gpuinfo.org Android Vulkan reports of Mali-G7x/Adreno 6xx (8 storage buffers \
                     per stage, 128 MiB per storage binding, 16 KiB shared memory, 256 \
                     invocations, 64-byte offset alignment, Mali's 16-lane subgroups; no \
                     shaderInt64, no timestamps)",
            limits: wgpu::Limits {
                max_storage_buffers_per_shader_stage: 8,
                max_storage_buffer_binding_size: 128 * MIB,
                max_buffer_size: GIB,
                min_uniform_buffer_offset_alignment: 64,
                min_storage_buffer_offset_alignment: 64,
                max_compute_workgroup_storage_size: 16 << 10,
                max_compute_invocations_per_workgroup: 256,
                max_compute_workgroup_size_x: 256,
                max_compute_workgroup_size_y: 256,
                max_compute_workgroup_size_z: 64,
                max_compute_workgroups_per_dimension: 65535,
                ..wgpu::Limits::defaults()
            },
            features: F::SUBGROUP,
            subgroup: Some((16, 16)),
            device_type: wgpu::DeviceType::IntegratedGpu,
        },
    ]
}

impl DeviceProfile {
    /// The profile called `name` (case-insensitive); an error listing the names otherwise.
    pub fn named(name: &str) -> Result<DeviceProfile> {
        let want = name.trim().to_lowercase();
        profiles()
            .into_iter()
            .find(|p| p.name == want)
            .ok_or_else(|| {
                Error::Invalid(format!(
                    "unknown device profile '{name}': the profiles are {}",
                    NAMES.join(", ")
                ))
            })
    }

    /// The profile named in [`PROFILE_ENV`], if any (empty: none); an error names the variable.
    pub fn from_env() -> Result<Option<DeviceProfile>> {
        match std::env::var(PROFILE_ENV) {
            Ok(v) if !v.trim().is_empty() => DeviceProfile::named(&v)
                .map(Some)
                .map_err(|e| Error::Invalid(format!("{PROFILE_ENV}='{v}': {e}"))),
            _ => Ok(None),
        }
    }

    /// The limits to request on an adapter offering `adapter`: the profile's, each capped at
    /// the adapter's.
    pub fn limits_on(&self, adapter: &wgpu::Limits) -> wgpu::Limits {
        self.limits.clone().or_worse_values_from(adapter)
    }

    /// The limits (of those the engine's kernels depend on) where `adapter` offers less than the
    /// profile: `name: profile P, adapter A`.
    pub fn shortfalls(&self, adapter: &wgpu::Limits) -> Vec<String> {
        let mut out = Vec::new();
        self.limits
            .check_limits_with_fail_fn(adapter, false, |name, want, have| {
                if ENGINE_LIMITS.contains(&name) {
                    out.push(format!("{name}: profile {want}, adapter {have}"));
                }
            });
        out
    }

    /// The subgroup width the engine sees on this profile: the class's when it is fixed and
    /// subgroup operations are among `features` (those in force).
    pub fn subgroup_lanes(&self, features: wgpu::Features) -> Option<u32> {
        match self.subgroup {
            Some((lo, hi)) if lo == hi && features.contains(wgpu::Features::SUBGROUP) => Some(lo),
            _ => None,
        }
    }

    /// A multi-line description: what it describes, its source, its compute limits, features
    /// and subgroups (for `rssm info`).
    pub fn describe(&self) -> String {
        let l = &self.limits;
        let feats: Vec<&str> = self.features.iter_names().map(|(n, _)| n).collect();
        let sub = match self.subgroup {
            None => "none".to_string(),
            Some((a, b)) if a == b => format!("{a} lanes"),
            Some((a, b)) => format!("{a} to {b} lanes (variable)"),
        };
        format!(
            "{} ({:?}): {}\n  source: {}\n  storage buffers per stage {}, storage binding {}, \
             buffer {}, offset alignment {} B, workgroup storage {} B, invocations per \
             workgroup {}\n  features {}; subgroups {sub}",
            self.name,
            self.device_type,
            self.describes,
            self.source,
            l.max_storage_buffers_per_shader_stage,
            bytes(l.max_storage_buffer_binding_size),
            bytes(l.max_buffer_size),
            l.min_storage_buffer_offset_alignment,
            l.max_compute_workgroup_storage_size,
            l.max_compute_invocations_per_workgroup,
            if feats.is_empty() {
                "none".to_string()
            } else {
                feats.join(", ")
            },
        )
    }
}

/// The limits the engine depends on (the rest are for graphics).
pub const ENGINE_LIMITS: &[&str] = &[
    "max_storage_buffers_per_shader_stage",
    "max_uniform_buffer_binding_size",
    "max_storage_buffer_binding_size",
    "max_buffer_size",
    "min_uniform_buffer_offset_alignment",
    "min_storage_buffer_offset_alignment",
    "max_compute_workgroup_storage_size",
    "max_compute_invocations_per_workgroup",
    "max_compute_workgroup_size_x",
    "max_compute_workgroup_size_y",
    "max_compute_workgroup_size_z",
    "max_compute_workgroups_per_dimension",
];

/// `n` bytes as `2047 MiB`, `4 GiB`, `65536 B`.
fn bytes(n: u64) -> String {
    if n >= GIB && n.is_multiple_of(GIB) {
        format!("{} GiB", n / GIB)
    } else if n >= MIB {
        format!("{} MiB", n / MIB)
    } else {
        format!("{n} B")
    }
}

/// PCI vendor ids of the classes (`wgpu::AdapterInfo::vendor`).
const VENDORS: &[(u32, &str, &str)] = &[
    (0x10DE, "nvidia", "NVIDIA"),
    (0x1002, "amd-rdna", "AMD"),
    (0x8086, "intel-igpu", "Intel"),
    (0x106B, "apple-m", "Apple"),
    (0x13B5, "mobile", "Arm"),
    (0x5143, "mobile", "Qualcomm"),
];

/// The profile an adapter is closest to, and why: its vendor's (NVIDIA, AMD, Intel, Apple or a
/// Metal adapter, Arm, Qualcomm) where it has one, else the profile sharing most of its device
/// type, subgroup widths, optional features and compute limits; with the limits where the
/// adapter offers less than that profile (a run under it would have them capped). A CPU driver
/// is closest to none.
pub fn closest(
    info: &wgpu::AdapterInfo,
    limits: &wgpu::Limits,
    features: wgpu::Features,
) -> String {
    let features = features & ENGINE_FEATURES;
    let subgroup = features
        .contains(wgpu::Features::SUBGROUP)
        .then_some((info.subgroup_min_size, info.subgroup_max_size));
    let vendor = VENDORS
        .iter()
        .find(|(id, _, _)| *id == info.vendor)
        .map(|(_, p, v)| (*p, *v))
        .or((info.backend == wgpu::Backend::Metal).then_some(("apple-m", "Apple (Metal)")));
    let matches = |p: &DeviceProfile| -> Vec<&'static str> {
        let l = &p.limits;
        let mut m = Vec::new();
        if p.device_type == info.device_type {
            m.push("device type");
        }
        if p.subgroup == subgroup {
            m.push("subgroups");
        }
        if p.features == features {
            m.push("feature set");
        }
        let at_least = |a: u32, b: u32| (a >= 19) == (b >= 19);
        if at_least(
            l.max_storage_buffers_per_shader_stage,
            limits.max_storage_buffers_per_shader_stage,
        ) {
            m.push("storage buffers");
        }
        if l.max_compute_workgroup_storage_size == limits.max_compute_workgroup_storage_size {
            m.push("workgroup storage");
        }
        if l.max_compute_invocations_per_workgroup == limits.max_compute_invocations_per_workgroup {
            m.push("invocations");
        }
        m
    };
    let all = profiles();
    let (best, why) = match vendor {
        Some((name, v)) => {
            let p = all.iter().find(|p| p.name == name).expect("a profile");
            let m = matches(p);
            (p, format!("vendor {v}; same {}", list_or_none(&m)))
        }
        None => {
            let p = all
                .iter()
                .max_by_key(|p| matches(p).len())
                .expect("profiles");
            let m = matches(p);
            if info.device_type == wgpu::DeviceType::Cpu {
                return format!(
                    "none: a CPU driver, which no profile describes (nearest: {}, by its same {})",
                    p.name,
                    list_or_none(&m)
                );
            }
            (p, format!("nearest by its same {}", list_or_none(&m)))
        }
    };
    let short = best.shortfalls(limits);
    let fit = if short.is_empty() {
        "the adapter offers every limit of the profile".to_string()
    } else {
        format!("the adapter offers less: {}", short.join("; "))
    };
    format!("{} ({why}; {fit})", best.name)
}

fn list_or_none(m: &[&str]) -> String {
    if m.is_empty() {
        "nothing".into()
    } else {
        m.join(", ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_the_profiles_and_unknown_names_list_them() {
        let names: Vec<&str> = profiles().iter().map(|p| p.name).collect();
        assert_eq!(names, NAMES);
        assert_eq!(DeviceProfile::named("NVIDIA").unwrap().name, "nvidia");
        let e = DeviceProfile::named("gtx").unwrap_err().to_string();
        assert!(
            e.contains("'gtx'") && e.contains("amd-rdna, intel-igpu"),
            "{e}"
        );
    }

    #[test]
    fn webgpu_and_downlevel_are_wgpus_own() {
        assert_eq!(
            DeviceProfile::named("webgpu").unwrap().limits,
            wgpu::Limits::default()
        );
        assert_eq!(
            DeviceProfile::named("downlevel").unwrap().limits,
            wgpu::Limits::downlevel_defaults()
        );
    }

    #[test]
    fn every_profile_is_at_least_downlevel_where_wgpu_requires_it() {
        // Limits below the downlevel defaults are legal requests, but no real device of these
        // classes offers less than these: a typo in a table would show here.
        for p in profiles() {
            let l = &p.limits;
            assert!(l.max_compute_invocations_per_workgroup >= 256, "{}", p.name);
            assert!(l.max_storage_buffer_binding_size >= 128 * MIB, "{}", p.name);
            assert!(l.max_compute_workgroup_storage_size >= 16352, "{}", p.name);
            assert!(
                l.max_storage_buffer_binding_size <= l.max_buffer_size,
                "{}",
                p.name
            );
            assert!(
                l.min_storage_buffer_offset_alignment.is_power_of_two()
                    && l.min_storage_buffer_offset_alignment >= 32,
                "{}",
                p.name
            );
        }
    }

    #[test]
    fn limits_are_capped_at_the_adapters_and_shortfalls_named() {
        let p = DeviceProfile::named("amd-rdna").unwrap();
        let adapter = wgpu::Limits {
            max_compute_workgroup_storage_size: 32 << 10,
            max_storage_buffer_binding_size: 128 * MIB,
            min_storage_buffer_offset_alignment: 64,
            ..wgpu::Limits::defaults()
        };
        let l = p.limits_on(&adapter);
        assert_eq!(l.max_compute_workgroup_storage_size, 32 << 10);
        assert_eq!(l.max_storage_buffer_binding_size, 128 * MIB);
        assert_eq!(l.min_storage_buffer_offset_alignment, 64);
        assert_eq!(l.max_storage_buffers_per_shader_stage, 8);
        let s = p.shortfalls(&adapter).join("\n");
        assert!(
            s.contains("max_compute_workgroup_storage_size: profile 65536, adapter 32768"),
            "{s}"
        );
        assert!(s.contains("min_storage_buffer_offset_alignment"), "{s}");
        // Graphics limits are not the engine's business.
        assert!(!s.contains("texture"), "{s}");
    }

    #[test]
    fn subgroup_lanes_only_for_a_fixed_width_with_subgroups_on() {
        let lanes = |n: &str| {
            let p = DeviceProfile::named(n).unwrap();
            p.subgroup_lanes(p.features)
        };
        assert_eq!(lanes("nvidia"), Some(32));
        assert_eq!(lanes("mobile"), Some(16));
        assert_eq!(lanes("amd-rdna"), None);
        assert_eq!(lanes("intel-igpu"), None);
        assert_eq!(lanes("apple-m"), None);
        assert_eq!(lanes("webgpu"), None);
        let nv = DeviceProfile::named("nvidia").unwrap();
        assert_eq!(nv.subgroup_lanes(wgpu::Features::empty()), None);
    }

    #[test]
    fn closest_goes_by_vendor_then_by_likeness() {
        let info = |vendor: u32, device_type| wgpu::AdapterInfo {
            vendor,
            device_type,
            subgroup_min_size: 32,
            subgroup_max_size: 32,
            ..wgpu::AdapterInfo::new(device_type, wgpu::Backend::Vulkan)
        };
        let nv = DeviceProfile::named("nvidia").unwrap();
        let c = closest(
            &info(0x10DE, wgpu::DeviceType::DiscreteGpu),
            &nv.limits,
            nv.features,
        );
        assert!(c.starts_with("nvidia (vendor NVIDIA"), "{c}");
        assert!(c.contains("offers every limit"), "{c}");
        let c = closest(
            &info(0x1234, wgpu::DeviceType::DiscreteGpu),
            &nv.limits,
            nv.features,
        );
        assert!(c.starts_with("nvidia (nearest"), "{c}");
        let c = closest(
            &info(0x1234, wgpu::DeviceType::Other),
            &wgpu::Limits::default(),
            wgpu::Features::empty(),
        );
        assert!(c.starts_with("webgpu"), "{c}");
        let c = closest(
            &info(0x10005, wgpu::DeviceType::Cpu),
            &wgpu::Limits::default(),
            wgpu::Features::empty(),
        );
        assert!(c.starts_with("none: a CPU driver"), "{c}");
    }
}
