//! Pipeline cache: each `(shader family, entry point, override constants)` is compiled once into
//! a compute pipeline and kept for the device's lifetime.
//!
//! Variants of a kernel (transposed operands, an activation, a workgroup size) are WGSL
//! `override` constants of one source, never copies of the file. Bind group layouts come from
//! the shader itself (`layout: None`); naga tells us which bindings each entry point really
//! uses, so callers can pass one binding list per family and unused ones are left out.

use std::collections::HashMap;

use crate::error::{Error, Result};
use crate::gpu::{shaders, AdapterReport};

/// What the Rust side assumes about one kernel entry point; each family declares its own as
/// constants (see `ops::kernels`).
#[derive(Clone, Copy, Debug)]
pub struct KernelSig {
    /// Shader family: `shaders/<family>.wgsl` (or a composition, `gpu::shaders::COMPOSED`).
    pub family: &'static str,
    /// The `@compute` entry point.
    pub entry: &'static str,
    /// Override constants the callers may set (every one declared in the shader).
    pub constants: &'static [&'static str],
    /// `size_of` the Rust struct written to the uniform at binding 0.
    pub params_bytes: usize,
    /// The storage buffers a dispatch binds, by the shader's names, in ascending binding
    /// number.
    pub bindings: &'static [&'static str],
}

/// `kernel_sig!(ParamsType, "family", "entry", ["CONST", ..], ["buffer", ..])`: a
/// [`KernelSig`] constant.
macro_rules! kernel_sig {
    ($params:ty, $family:literal, $entry:literal, [$($c:literal),*], [$($b:literal),*]) => {
        $crate::gpu::pipelines::KernelSig {
            family: $family,
            entry: $entry,
            constants: &[$($c),*],
            params_bytes: std::mem::size_of::<$params>(),
            bindings: &[$($b),*],
        }
    };
}
pub(crate) use kernel_sig;

/// A compiled compute pipeline with the bindings its entry point uses.
pub struct Kernel {
    /// What it was compiled from.
    pub sig: &'static KernelSig,
    pub(crate) pipeline: wgpu::ComputePipeline,
    pub(crate) layout: wgpu::BindGroupLayout,
    /// Binding numbers (group 0) the entry point uses, ascending. Binding 0 is the uniform
    /// parameter block when used.
    pub(crate) used: Vec<u32>,
    /// `family::entry` for messages and profiles.
    pub label: String,
    /// The override constants it was compiled with, `NAME=value` comma-separated (empty
    /// without any): tells a profile's passes of one kernel apart.
    pub variant: String,
}

/// A parsed and validated shader family.
pub struct ParsedShader {
    pub module: naga::Module,
    pub info: naga::valid::ModuleInfo,
    pub source: String,
}

/// Parse and validate `shaders/<name>.wgsl` (with the prelude). Errors carry the file name and
/// the line within that file.
pub fn parse_and_validate(name: &str, file_source: &str) -> Result<ParsedShader> {
    parse_and_validate_parts(&[(name, file_source)])
}

/// Parse and validate the prelude followed by `parts` (`(file name, source)`, one kernel
/// family). Errors carry the name of the file the line is in and the line within that file.
pub fn parse_and_validate_parts(parts: &[(&str, &str)]) -> Result<ParsedShader> {
    let (source, offsets) = shaders::compose(parts);
    let locate = |loc: Option<naga::SourceLocation>| -> String {
        let Some(l) = loc else {
            return format!("shaders/{}.wgsl", parts[0].0);
        };
        let line = l.line_number as usize;
        match offsets.iter().rposition(|&o| line > o) {
            Some(i) => format!(
                "shaders/{}.wgsl:{}:{}",
                parts[i].0,
                line - offsets[i],
                l.line_position
            ),
            None => format!(
                "shaders/common.wgsl:{}:{} (prelude, while compiling {})",
                l.line_number, l.line_position, parts[0].0
            ),
        }
    };
    let module = naga::front::wgsl::parse_str(&source).map_err(|e| Error::Shader {
        file: locate(e.location(&source)),
        msg: e.message().to_string(),
    })?;
    let info = naga::valid::Validator::new(
        naga::valid::ValidationFlags::all(),
        naga::valid::Capabilities::all(),
    )
    .validate(&module)
    .map_err(|e| Error::Shader {
        file: locate(e.location(&source)),
        msg: format!("{}", e.as_inner()),
    })?;
    Ok(ParsedShader {
        module,
        info,
        source,
    })
}

type Key = (&'static str, &'static str, Vec<(&'static str, u64)>);

/// `, or run without the device profile 'P'` under a profile; empty otherwise.
fn profile_hint(report: &AdapterReport) -> String {
    match &report.profile {
        Some(p) => format!(", or run without the device profile '{p}'"),
        None => String::new(),
    }
}

/// Bytes of the workgroup variables entry point `fi` uses whose sizes the shader fixes
/// (arrays sized by an override constant are left out).
fn workgroup_bytes(module: &naga::Module, fi: &naga::valid::FunctionInfo) -> u32 {
    let mut layouter = naga::proc::Layouter::default();
    if layouter.update(module.to_ctx()).is_err() {
        return 0;
    }
    module
        .global_variables
        .iter()
        .filter(|(h, g)| g.space == naga::AddressSpace::WorkGroup && !fi[*h].is_empty())
        .filter(|(_, g)| {
            !matches!(
                module.types[g.ty].inner,
                naga::TypeInner::Array {
                    size: naga::ArraySize::Pending(_),
                    ..
                }
            )
        })
        .map(|(_, g)| layouter[g.ty].size)
        .sum()
}

/// What to do about a device with `allowed` storage buffers per shader stage.
fn storage_hint(allowed: u32, report: &AdapterReport) -> String {
    let (per_op, fused) = crate::ops::kernels::storage_buffers_needed();
    format!(
        "the engine's per-op kernels bind up to {per_op} storage buffers per stage and the fused \
         RSSM {fused} (it falls back to the per-op path below that), so it cannot run on a device \
         allowing {allowed}; use an adapter that offers {per_op} or more (`rssm info --all`, \
         `--adapter`){}",
        profile_hint(report)
    )
}

/// What a compiled pipeline was built from: [`Gpu::kernel`](crate::gpu::Gpu::kernel)'s
/// arguments (see [`Gpu::pipeline_keys`](crate::gpu::Gpu::pipeline_keys)).
#[derive(Clone, Debug, PartialEq)]
pub struct PipelineKey {
    /// Kernel family (`gpu::shaders::family_files`).
    pub family: &'static str,
    /// The `@compute` entry point.
    pub entry: &'static str,
    /// The override constants and their values, in the order the caller passed them.
    pub constants: Vec<(&'static str, f64)>,
}

#[derive(Default)]
pub(crate) struct PipelineCache {
    shaders: HashMap<&'static str, (wgpu::ShaderModule, ParsedShader)>,
    kernels: HashMap<Key, std::sync::Arc<Kernel>>,
}

impl PipelineCache {
    pub(crate) fn get(
        &mut self,
        device: &wgpu::Device,
        limits: &wgpu::Limits,
        report: &AdapterReport,
        sig: &'static KernelSig,
        constants: &[(&'static str, f64)],
    ) -> Result<std::sync::Arc<Kernel>> {
        let (family, entry) = (sig.family, sig.entry);
        let unsupported = |why: String, hint: String| Error::Unsupported {
            kernel: format!("{family}::{entry}"),
            adapter: report.label(),
            why,
            hint,
        };
        let storage = sig.bindings.len() as u32;
        if storage > limits.max_storage_buffers_per_shader_stage {
            return Err(unsupported(
                format!(
                    "it binds {storage} storage buffers and the device allows {} per shader stage \
                     (max_storage_buffers_per_shader_stage)",
                    limits.max_storage_buffers_per_shader_stage
                ),
                storage_hint(limits.max_storage_buffers_per_shader_stage, report),
            ));
        }
        if let Some((name, _)) = constants.iter().find(|(c, _)| !sig.constants.contains(c)) {
            return Err(Error::Shader {
                file: format!("shaders/{family}.wgsl"),
                msg: format!("{family}::{entry} has no override constant '{name}'"),
            });
        }
        let key: Key = (
            family,
            entry,
            constants.iter().map(|(k, v)| (*k, v.to_bits())).collect(),
        );
        if let Some(k) = self.kernels.get(&key) {
            return Ok(k.clone());
        }
        if !self.shaders.contains_key(family) {
            let parts = shaders::family_files(family).ok_or_else(|| Error::Shader {
                file: format!("shaders/{family}.wgsl"),
                msg: "no such kernel family".into(),
            })?;
            let parsed = parse_and_validate_parts(&parts)?;
            // wgpu validates the module against the device's features (subgroups, 64-bit
            // integers): a family the device cannot compile is an error, not a panic.
            let scope = device.push_error_scope(wgpu::ErrorFilter::Validation);
            let module = device.create_shader_module(wgpu::ShaderModuleDescriptor {
                label: Some(family),
                source: wgpu::ShaderSource::Wgsl(parsed.source.clone().into()),
            });
            if let Some(e) = pollster::block_on(scope.pop()) {
                return Err(unsupported(
                    format!("the device refused its shader module: {e}"),
                    format!(
                        "the device lacks a feature the family uses: use an adapter with it \
                         (`rssm info --all`, `--adapter`){}",
                        profile_hint(report)
                    ),
                ));
            }
            self.shaders.insert(family, (module, parsed));
        }
        let (module, parsed) = &self.shaders[family];
        let ep_index = parsed
            .module
            .entry_points
            .iter()
            .position(|e| e.name == entry)
            .ok_or_else(|| Error::Shader {
                file: format!("shaders/{family}.wgsl"),
                msg: format!("no entry point '{entry}'"),
            })?;
        let ep = &parsed.module.entry_points[ep_index];
        // The workgroup size, where the shader fixes it (the fused kernels' is an override
        // their plan checks; wgpu's validation below catches anything else).
        if ep.workgroup_size_overrides.is_none() {
            let [x, y, z] = ep.workgroup_size;
            let n = x * y * z;
            let (max_n, max) = (
                limits.max_compute_invocations_per_workgroup,
                [
                    limits.max_compute_workgroup_size_x,
                    limits.max_compute_workgroup_size_y,
                    limits.max_compute_workgroup_size_z,
                ],
            );
            if n > max_n || x > max[0] || y > max[1] || z > max[2] {
                return Err(unsupported(
                    format!(
                        "its workgroups are {x}x{y}x{z} invocations and the device runs at most \
                         {max_n} per workgroup, {}x{}x{} \
                         (max_compute_invocations_per_workgroup, max_compute_workgroup_size_*)",
                        max[0], max[1], max[2]
                    ),
                    format!(
                        "the engine's 1-D kernels run {} invocations per workgroup; use an \
                         adapter that offers them (`rssm info --all`, `--adapter`){}",
                        crate::gpu::WG_1D,
                        profile_hint(report)
                    ),
                ));
            }
        }
        let fi = parsed.info.get_entry_point(ep_index);
        // Workgroup memory, where the shader fixes its arrays' sizes: wgpu 30 does not check
        // it against the device's limit (the fused kernels' override-sized arrays are checked
        // by their plans).
        let shared = workgroup_bytes(&parsed.module, fi);
        if shared > limits.max_compute_workgroup_storage_size {
            return Err(unsupported(
                format!(
                    "it uses {shared} bytes of workgroup memory and the device allows {} \
                     (max_compute_workgroup_storage_size)",
                    limits.max_compute_workgroup_storage_size
                ),
                format!(
                    "use an adapter that offers more (`rssm info --all`, `--adapter`){}",
                    profile_hint(report)
                ),
            ));
        }
        let mut used: Vec<u32> = parsed
            .module
            .global_variables
            .iter()
            .filter(|(h, _)| !fi[*h].is_empty())
            .filter_map(|(_, g)| g.binding.as_ref().map(|b| b.binding))
            .collect();
        used.sort_unstable();
        let label = format!("{family}::{entry}");
        // wgpu reports a pipeline it refuses (a limit its validation checks and ours above do
        // not, e.g. an override-sized workgroup) to the device's error handler, which panics
        // by default: caught in an error scope, it is an error naming the kernel instead.
        let scope = device.push_error_scope(wgpu::ErrorFilter::Validation);
        let pipeline = device.create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
            label: Some(&label),
            layout: None,
            module,
            entry_point: Some(entry),
            compilation_options: wgpu::PipelineCompilationOptions {
                constants,
                // Our kernels initialise their workgroup memory themselves.
                zero_initialize_workgroup_memory: false,
            },
            cache: None,
        });
        let layout = pipeline.get_bind_group_layout(0);
        if let Some(e) = pollster::block_on(scope.pop()) {
            return Err(unsupported(
                format!("the device refused its pipeline ({constants:?}): {e}"),
                format!(
                    "this is a limit of the device: use an adapter with larger limits \
                     (`rssm info --all`, `--adapter`){}",
                    profile_hint(report)
                ),
            ));
        }
        let variant = constants
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join(",");
        let k = std::sync::Arc::new(Kernel {
            sig,
            pipeline,
            layout,
            used,
            label,
            variant,
        });
        self.kernels.insert(key, k.clone());
        Ok(k)
    }

    pub(crate) fn len(&self) -> usize {
        self.kernels.len()
    }

    pub(crate) fn keys(&self) -> Vec<PipelineKey> {
        self.kernels
            .keys()
            .map(|(family, entry, constants)| PipelineKey {
                family,
                entry,
                constants: constants
                    .iter()
                    .map(|(k, v)| (*k, f64::from_bits(*v)))
                    .collect(),
            })
            .collect()
    }
}
