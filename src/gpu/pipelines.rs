//! Pipeline cache: each `(shader family, entry point, override constants)` is compiled once into
//! a compute pipeline and kept for the device's lifetime.
//!
//! Variants of a kernel (transposed operands, an activation, a workgroup size) are WGSL
//! `override` constants of one source, never copies of the file. Bind group layouts come from
//! the shader itself (`layout: None`); naga tells us which bindings each entry point really
//! uses, so callers can pass one binding list per family and unused ones are left out.

use std::collections::HashMap;

use crate::error::{Error, Result};
use crate::gpu::shaders;

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
        sig: &'static KernelSig,
        constants: &[(&'static str, f64)],
    ) -> Result<std::sync::Arc<Kernel>> {
        let (family, entry) = (sig.family, sig.entry);
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
            let module = device.create_shader_module(wgpu::ShaderModuleDescriptor {
                label: Some(family),
                source: wgpu::ShaderSource::Wgsl(parsed.source.clone().into()),
            });
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
        let fi = parsed.info.get_entry_point(ep_index);
        let mut used: Vec<u32> = parsed
            .module
            .global_variables
            .iter()
            .filter(|(h, _)| !fi[*h].is_empty())
            .filter_map(|(_, g)| g.binding.as_ref().map(|b| b.binding))
            .collect();
        used.sort_unstable();
        let label = format!("{family}::{entry}");
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
