//! Every pipeline the engine builds, through every wgpu backend's shader translation.
//!
//! The engine promises any Vulkan, Metal, DX12 or GL device but runs its tests on one (lavapipe,
//! Vulkan). wgpu translates WGSL for the backend it runs on with naga, per pipeline (entry point
//! and override constants), so a kernel naga cannot translate for Metal fails only on a Mac. This
//! test collects the pipelines the engine really compiles — representative workloads (acting, a
//! world-model step, a behaviour update, a dream) at two model shapes, on the default device and
//! under every kernel variant the engine can choose ([`variants`]) — and takes each one through
//! naga to SPIR-V, MSL, HLSL and GLSL with each backend's capabilities and the options wgpu 30
//! itself uses (wgpu-hal's `vulkan`, `metal`, `dx12` and `gles` adapters). SPIR-V is checked
//! with `spirv-val` and GLSL with `glslangValidator` where they are installed (Debian's
//! `spirv-tools` and `glslang-tools`; `.ci/run` installs them). MSL and HLSL are translated only:
//! no Metal or DXC compiler runs here.
//!
//! A pipeline the engine would choose on a backend that does not translate there fails the
//! test. Subgroup kernels are "not chosen" where that backend cannot have what the engine takes
//! them with (see [`engine_needs`] and [`backends`]). The table is
//! printed (`cargo test --test translate -- --nocapture`); docs/backends.md summarises it.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;

use naga::valid::{Capabilities as Caps, ModuleInfo, ValidationFlags, Validator};
use naga::{AddressSpace, Module, ShaderStage, StorageAccess};
use rssm::agent::{dream, BehaviourConfig, DreamActions, Dreamer, DreamerSettings};
use rssm::gpu::pipelines::parse_and_validate_parts;
use rssm::gpu::shaders::family_files;
use rssm::gpu::{Gpu, PipelineKey, Tiling, Tuning};
use rssm::model::{Config, RssmPath};
use rssm::ops::kernels::KERNELS;
use rssm::tensor::Tensor;

// ---------------------------------------------------------------------------------------------
// The variants: the one place that knows how kernel variants are selected.
// ---------------------------------------------------------------------------------------------

/// A variant's name and the device handle (the test's device with that tuning) the workloads
/// run on.
type Variant = (&'static str, Gpu);

/// Every kernel variant the engine chooses between, as device handles with that tuning
/// (`Gpu::with_tuning`; what the device cannot run is dropped). The first is the device's own.
fn variants() -> Vec<Variant> {
    let base = common::gpu();
    let own = *base.tuning();
    let gpu_rules = {
        let mut r = base.report().clone();
        r.device_type = "DiscreteGpu".into();
        r.name = "a GPU".into();
        Tuning::rules(&r)
    };
    let with = |t: Tuning| base.with_tuning(t);
    vec![
        ("device default", base.clone()),
        (
            "fused RSSM",
            with(Tuning {
                path: RssmPath::Fused,
                ..own
            }),
        ),
        (
            "no lanes, CPU blocks",
            with(Tuning {
                lanes: false,
                wide_blocks: true,
                conv_block: 16,
                tiling: Tiling::Cpu,
                path: RssmPath::PerOp,
                ..own
            }),
        ),
        ("GPU tuning, fused RSSM", with(gpu_rules)),
        (
            "GPU tuning, per-op RSSM",
            with(Tuning {
                path: RssmPath::PerOp,
                ..gpu_rules
            }),
        ),
    ]
}

// ---------------------------------------------------------------------------------------------
// The workloads.
// ---------------------------------------------------------------------------------------------

/// Widths that are multiples of 8 (the fused RSSM's tiles) and conv channels 24-192 (the
/// subgroup convolutions' full channel blocks).
fn aligned() -> Config {
    Config {
        deter: 16,
        stoch: 8,
        hidden: 16,
        depth: 24,
        units: 16,
        action_dim: 2,
        batch: 2,
        seq_len: 4,
        seed: 5,
        ..Config::tiny()
    }
}

/// Odd widths (the scalar kernels, narrow conv outputs).
fn awkward() -> Config {
    Config {
        action_dim: 1,
        seed: 6,
        ..Config::tiny()
    }
}

/// An agent acting for a short episode, one update (a world-model step and a behaviour
/// update through imagination), and a dream decoded from its last posterior.
fn workload(g: &Gpu, cfg: &Config) {
    let settings = DreamerSettings {
        behaviour: BehaviourConfig {
            horizon: 3,
            ..BehaviourConfig::default()
        },
        behaviour_warmup: 0,
        ..DreamerSettings::default()
    };
    let mut agent = Dreamer::new(g, cfg, settings).unwrap();
    let frame = |i: usize| -> Vec<u8> {
        (0..64 * 64 * 3)
            .map(|p| ((p * 7 + i * 13) % 251) as u8)
            .collect()
    };
    agent.begin_episode(&frame(0)).unwrap();
    for i in 0..cfg.seq_len + 1 {
        let a = agent.act(&frame(i), true).unwrap();
        let last = i == cfg.seq_len;
        agent
            .observe(&a, 0.1 * i as f32, &frame(i + 1), false, last)
            .unwrap();
    }
    let m = agent.update().unwrap();
    assert!(m.behaviour.is_some(), "no behaviour update");
    let (h, st) = agent.trainer.last_posterior.clone().unwrap();
    let n = cfg.batch * cfg.seq_len;
    let (h, st) = (
        h.reshape(&[n, cfg.deter]).unwrap(),
        st.reshape(&[n, cfg.stoch]).unwrap(),
    );
    let model = &agent.trainer.model;
    let out = dream(
        model,
        &h,
        &st,
        DreamActions::Actor(&agent.behaviour.actor),
        2,
    )
    .unwrap();
    out.to_vec().unwrap();
    // Public ops that none of the above takes: the counter-based random bits, and a tensor's
    // in-place update (the tape takes it where a gradient is accumulated in place).
    let acc = Tensor::from_vec(g, &[8], &[1.0; 8]).unwrap();
    acc.axpy_assign(0.5, &Tensor::from_vec(g, &[8], &[2.0; 8]).unwrap())
        .unwrap();
    rssm::ops::gaussian::random_bits(g, 16, 1, 0).unwrap();
    acc.to_vec().unwrap();
}

/// The pipelines the engine compiles for the workloads under every variant.
fn collect_pipelines() -> Vec<PipelineKey> {
    let mut seen: BTreeMap<String, PipelineKey> = BTreeMap::new();
    for (name, g) in variants() {
        let t = std::time::Instant::now();
        for cfg in [aligned(), awkward()] {
            workload(&g, &cfg);
        }
        let before = seen.len();
        for k in g.pipeline_keys() {
            seen.entry(label(&k)).or_insert(k);
        }
        eprintln!(
            "variant '{name}': {} new pipelines ({:.1} s)",
            seen.len() - before,
            t.elapsed().as_secs_f64()
        );
    }
    seen.into_values().collect()
}

fn label(k: &PipelineKey) -> String {
    let consts: Vec<String> = k
        .constants
        .iter()
        .map(|(n, v)| format!("{n}={v}"))
        .collect();
    if consts.is_empty() {
        format!("{}::{}", k.family, k.entry)
    } else {
        format!("{}::{} {}", k.family, k.entry, consts.join(","))
    }
}

// ---------------------------------------------------------------------------------------------
// The backends.
// ---------------------------------------------------------------------------------------------

#[derive(Clone, Copy)]
enum Lang {
    /// SPIR-V version, and the Vulkan target environment `spirv-val` checks it for.
    Spv((u8, u8), &'static str),
    Msl((u8, u8)),
    Hlsl(naga::back::hlsl::ShaderModel),
    Glsl(naga::back::glsl::Version),
}

/// One column: a wgpu backend at one shading-language version, with the most its adapters can
/// enable of what the engine asks for (wgpu-hal 30).
struct Backend {
    name: &'static str,
    lang: Lang,
    /// `SUBGROUP` where wgpu can enable it on this backend and version.
    caps: Caps,
    /// Whether an adapter here can report subgroups of one fixed width of 8 lanes
    /// (`subgroup_min_size == subgroup_max_size == 8`), which the engine's subgroup kernels
    /// need (`Tuning::lanes`).
    fixed_8_lanes: bool,
}

fn backends() -> Vec<Backend> {
    use naga::back::glsl::Version;
    use naga::back::hlsl::ShaderModel;
    let all = Caps::SUBGROUP;
    vec![
        // Vulkan 1.0: SPIR-V 1.0; subgroups need Vulkan 1.1 (wgpu-hal vulkan/adapter.rs).
        Backend {
            name: "spv1.0",
            lang: Lang::Spv((1, 0), "vulkan1.0"),
            caps: Caps::empty(),
            fixed_8_lanes: false,
        },
        // Vulkan 1.1 (with VK_EXT_subgroup_size_control) and 1.3: SPIR-V 1.3 and 1.6, subgroups,
        // and the subgroup width the driver reports (8 on lavapipe with AVX2).
        Backend {
            name: "spv1.3",
            lang: Lang::Spv((1, 3), "vulkan1.1"),
            caps: all,
            fixed_8_lanes: true,
        },
        Backend {
            name: "spv1.6",
            lang: Lang::Spv((1, 6), "vulkan1.3"),
            caps: all,
            fixed_8_lanes: true,
        },
        // Metal: MSL 2.0 (macOS 10.13) without SIMD-group operations, and MSL 4.0 (macOS 26)
        // with them. wgpu reports Metal's subgroup width as 4..64, so the
        // engine never takes its subgroup kernels there.
        Backend {
            name: "msl2.0",
            lang: Lang::Msl((2, 0)),
            caps: Caps::empty(),
            fixed_8_lanes: false,
        },
        Backend {
            name: "msl4.0",
            lang: Lang::Msl((4, 0)),
            caps: all,
            fixed_8_lanes: false,
        },
        // DX12: shader model 5.1 with FXC (wgpu's fallback when no DXC is found), which has no
        // wave operations; 6.0 and 6.9 with DXC, wave operations where the device has them, and the wave width it reports (WaveLaneCountMin/Max).
        Backend {
            name: "hlsl5.1",
            lang: Lang::Hlsl(ShaderModel::V5_1),
            caps: Caps::empty(),
            fixed_8_lanes: false,
        },
        Backend {
            name: "hlsl6.0",
            lang: Lang::Hlsl(ShaderModel::V6_0),
            caps: all,
            fixed_8_lanes: true,
        },
        Backend {
            name: "hlsl6.9",
            lang: Lang::Hlsl(ShaderModel::V6_9),
            caps: all,
            fixed_8_lanes: true,
        },
        // GL: compute needs GLSL ES 3.10 or GL 4.3; wgpu caps desktop GLSL at 4.50 and never
        // enables subgroups on GL.
        Backend {
            name: "es310",
            lang: Lang::Glsl(Version::new_gles(310)),
            caps: Caps::empty(),
            fixed_8_lanes: false,
        },
        Backend {
            name: "gl430",
            lang: Lang::Glsl(Version::Desktop(430)),
            caps: Caps::empty(),
            fixed_8_lanes: false,
        },
        Backend {
            name: "gl450",
            lang: Lang::Glsl(Version::Desktop(450)),
            caps: Caps::empty(),
            fixed_8_lanes: false,
        },
    ]
}

/// What the engine takes a family's kernels with: the subgroup families only where the device
/// has 8-lane subgroups (`Tuning::lanes`). Checked against the shaders: each family validates
/// with exactly these capabilities and fails without any one of them.
fn engine_needs(family: &str) -> Caps {
    match family {
        "matmul_lanes" | "conv_lanes" => Caps::SUBGROUP,
        _ => Caps::empty(),
    }
}

/// How the engine stands to a pipeline on a backend.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Chosen {
    /// The engine may take it there: it must translate.
    Yes,
    /// The backend could run it, but the engine does not take it there (no fixed 8-lane
    /// subgroups): translated for information only.
    Never,
    /// The backend lacks a capability it needs: not translated.
    Cannot,
}

fn chosen(b: &Backend, needs: Caps) -> Chosen {
    if !b.caps.contains(needs) {
        Chosen::Cannot
    } else if needs.contains(Caps::SUBGROUP) && !b.fixed_8_lanes {
        Chosen::Never
    } else {
        Chosen::Yes
    }
}

// ---------------------------------------------------------------------------------------------
// Translation.
// ---------------------------------------------------------------------------------------------

/// What an entry point binds, in binding order: `(binding, address space)`.
fn bindings(
    module: &Module,
    info: &ModuleInfo,
    entry: &str,
) -> Vec<(naga::ResourceBinding, AddressSpace)> {
    let ep = module
        .entry_points
        .iter()
        .position(|e| e.name == entry)
        .expect("entry point");
    let used = info.get_entry_point(ep);
    let mut out: Vec<_> = module
        .global_variables
        .iter()
        .filter(|(h, _)| !used[*h].is_empty())
        .filter_map(|(_, g)| g.binding.map(|b| (b, g.space)))
        .collect();
    out.sort_by_key(|(b, _)| (b.group, b.binding));
    out
}

fn writable(space: AddressSpace) -> bool {
    matches!(space, AddressSpace::Storage { access } if access.contains(StorageAccess::STORE))
}

/// Translate one pipeline for one backend: override constants applied, then the backend's
/// writer with wgpu's options, then `spirv-val` where installed. `Err`: the message;
/// `Ok(Some(file))`: GLSL written to `file` for `glslangValidator`, which runs on many files
/// at once (it takes about 0.1 s to start).
fn translate(
    b: &Backend,
    module: &Module,
    info: &ModuleInfo,
    key: &PipelineKey,
    tools: &Tools,
    scratch: &Path,
    n: usize,
) -> Result<Option<PathBuf>, String> {
    let mut constants = naga::back::PipelineConstants::default();
    for (name, v) in &key.constants {
        constants.insert(name.to_string(), *v);
    }
    let (module, info) = naga::back::pipeline_constants::process_overrides(
        module,
        info,
        Some((ShaderStage::Compute, key.entry)),
        &constants,
    )
    .map_err(|e| format!("override constants: {e}"))?;
    let (module, info) = (module.as_ref(), info.as_ref());
    let binds = bindings(module, info, key.entry);
    let restrict = naga::proc::BoundsCheckPolicies {
        index: naga::proc::BoundsCheckPolicy::Restrict,
        buffer: naga::proc::BoundsCheckPolicy::Restrict,
        image_load: naga::proc::BoundsCheckPolicy::Restrict,
        binding_array: naga::proc::BoundsCheckPolicy::Unchecked,
    };
    match b.lang {
        Lang::Spv(version, env) => {
            use naga::back::spv;
            let mut spv_caps = vec![
                spv::Capability::Shader,
                spv::Capability::Matrix,
                spv::Capability::Sampled1D,
                spv::Capability::Image1D,
                spv::Capability::ImageQuery,
                spv::Capability::DerivativeControl,
                spv::Capability::StorageImageExtendedFormats,
                spv::Capability::SampledCubeArray,
                spv::Capability::SampleRateShading,
            ];
            if b.caps.contains(Caps::SUBGROUP) {
                spv_caps.extend([
                    spv::Capability::GroupNonUniform,
                    spv::Capability::GroupNonUniformVote,
                    spv::Capability::GroupNonUniformArithmetic,
                    spv::Capability::GroupNonUniformBallot,
                    spv::Capability::GroupNonUniformShuffle,
                    spv::Capability::GroupNonUniformShuffleRelative,
                    spv::Capability::GroupNonUniformQuad,
                ]);
            }
            let options = spv::Options {
                lang_version: version,
                flags: spv::WriterFlags::LABEL_VARYINGS | spv::WriterFlags::FORCE_POINT_SIZE,
                capabilities: Some(spv_caps.into_iter().collect()),
                bounds_check_policies: restrict,
                // The engine compiles with zero_initialize_workgroup_memory: false.
                zero_initialize_workgroup_memory: spv::ZeroInitializeWorkgroupMemoryMode::None,
                fake_missing_bindings: false,
                // Every binding of the layout, numbered in order as wgpu-hal vulkan does.
                binding_map: binds
                    .iter()
                    .enumerate()
                    .map(|(i, (rb, _))| {
                        let info = spv::BindingInfo {
                            descriptor_set: rb.group,
                            binding: i as u32,
                            binding_array_size: None,
                        };
                        (*rb, info)
                    })
                    .collect(),
                use_storage_input_output_16: false,
                ..spv::Options::default()
            };
            let words = spv::write_vec(
                module,
                info,
                &options,
                Some(&spv::PipelineOptions {
                    shader_stage: ShaderStage::Compute,
                    entry_point: key.entry.to_string(),
                }),
            )
            .map_err(|e| format!("naga spv-out: {e}"))?;
            if let Some(val) = &tools.spirv_val {
                let file = scratch.join(format!("{n}.{}.spv", b.name));
                std::fs::write(&file, bytemuck_words(&words)).unwrap();
                run_tool(Command::new(val).args(["--target-env", env]).arg(&file))?;
            }
        }
        Lang::Msl(version) => {
            use naga::back::msl;
            let mut resources = msl::BindingMap::default();
            let mut slot = 0u8;
            let mut any_storage = false;
            for (rb, space) in &binds {
                any_storage |= matches!(space, AddressSpace::Storage { .. });
                resources.insert(
                    *rb,
                    msl::BindTarget {
                        buffer: Some(slot),
                        mutable: writable(*space),
                        ..Default::default()
                    },
                );
                slot += 1;
            }
            let options = msl::Options {
                lang_version: version,
                per_entry_point_map: msl::EntryPointResourceMap::from([(
                    key.entry.to_string(),
                    msl::EntryPointResources {
                        resources,
                        immediates_buffer: None,
                        sizes_buffer: any_storage.then_some(slot),
                    },
                )]),
                fake_missing_bindings: false,
                bounds_check_policies: restrict,
                zero_initialize_workgroup_memory: false,
                ..msl::Options::default()
            };
            let pipeline = msl::PipelineOptions {
                entry_point: Some((ShaderStage::Compute, key.entry.to_string())),
                allow_and_force_point_size: false,
                vertex_pulling_transform: true,
                ..Default::default()
            };
            msl::write_string(module, info, &options, &pipeline)
                .map_err(|e| format!("naga msl-out: {e}"))?;
        }
        Lang::Hlsl(shader_model) => {
            use naga::back::hlsl;
            // Registers as wgpu-hal dx12 numbers them: constant buffers (b), read-only storage
            // (t) and read-write storage (u) counted apart.
            let (mut cbv, mut srv, mut uav) = (0, 0, 0);
            let mut binding_map = hlsl::BindingMap::default();
            for (rb, space) in &binds {
                let counter = match space {
                    AddressSpace::Uniform => &mut cbv,
                    s if writable(*s) => &mut uav,
                    _ => &mut srv,
                };
                binding_map.insert(
                    *rb,
                    hlsl::BindTarget {
                        space: 0,
                        register: *counter,
                        binding_array_size: None,
                        dynamic_storage_buffer_offsets_index: None,
                        restrict_indexing: true,
                    },
                );
                *counter += 1;
            }
            let options = hlsl::Options {
                shader_model,
                binding_map,
                fake_missing_bindings: false,
                // `num_workgroups` comes from a root constant after the constant buffers.
                special_constants_binding: Some(hlsl::BindTarget {
                    space: 0,
                    register: cbv,
                    binding_array_size: None,
                    dynamic_storage_buffer_offsets_index: None,
                    restrict_indexing: false,
                }),
                zero_initialize_workgroup_memory: false,
                restrict_indexing: true,
                force_loop_bounding: true,
                ..hlsl::Options::default()
            };
            let pipeline = hlsl::PipelineOptions {
                entry_point: Some((ShaderStage::Compute, key.entry.to_string())),
            };
            let mut out = String::new();
            hlsl::Writer::new(&mut out, &options, &pipeline)
                .write(module, info, None)
                .map_err(|e| format!("naga hlsl-out: {e}"))?;
        }
        Lang::Glsl(version) => {
            use naga::back::glsl;
            // Binding slots as wgpu-hal gles numbers them: uniform and storage buffers apart.
            let (mut ubo, mut ssbo) = (0u8, 0u8);
            let mut binding_map = glsl::BindingMap::default();
            for (rb, space) in &binds {
                let counter = if *space == AddressSpace::Uniform {
                    &mut ubo
                } else {
                    &mut ssbo
                };
                binding_map.insert(*rb, *counter);
                *counter += 1;
            }
            let options = glsl::Options {
                version,
                writer_flags: glsl::WriterFlags::ADJUST_COORDINATE_SPACE
                    | glsl::WriterFlags::FORCE_POINT_SIZE,
                binding_map,
                zero_initialize_workgroup_memory: false,
            };
            let pipeline = glsl::PipelineOptions {
                shader_stage: ShaderStage::Compute,
                entry_point: key.entry.to_string(),
                multiview: None,
            };
            let unchecked = naga::proc::BoundsCheckPolicies {
                index: naga::proc::BoundsCheckPolicy::Unchecked,
                buffer: naga::proc::BoundsCheckPolicy::Unchecked,
                image_load: naga::proc::BoundsCheckPolicy::Unchecked,
                binding_array: naga::proc::BoundsCheckPolicy::Unchecked,
            };
            let mut out = String::new();
            glsl::Writer::new(&mut out, module, info, &options, &pipeline, unchecked)
                .and_then(|mut w| w.write())
                .map_err(|e| format!("naga glsl-out: {e}"))?;
            if tools.glslang.is_some() {
                let file = scratch.join(format!("{n}.{}.comp", b.name));
                std::fs::write(&file, out).unwrap();
                return Ok(Some(file));
            }
        }
    }
    Ok(None)
}

/// `glslangValidator` over `files` (each its own compilation unit); the files it rejects,
/// with its message, found by halving a rejected batch.
fn glslang_check(tool: &str, files: &[PathBuf]) -> Vec<(PathBuf, String)> {
    if files.is_empty() {
        return Vec::new();
    }
    match (files, run_tool(Command::new(tool).args(files))) {
        (_, Ok(())) => Vec::new(),
        ([one], Err(e)) => vec![(one.clone(), e)],
        (_, Err(_)) => {
            let (a, b) = files.split_at(files.len() / 2);
            let mut out = glslang_check(tool, a);
            out.extend(glslang_check(tool, b));
            out
        }
    }
}

fn bytemuck_words(words: &[u32]) -> Vec<u8> {
    words.iter().flat_map(|w| w.to_le_bytes()).collect()
}

/// Run a validator; `Err` with its output when it rejects the file.
fn run_tool(cmd: &mut Command) -> Result<(), String> {
    let out = cmd.output().map_err(|e| format!("{cmd:?}: {e}"))?;
    if out.status.success() {
        return Ok(());
    }
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let program = cmd.get_program().to_string_lossy().into_owned();
    Err(format!("{program}: {}", text.trim()))
}

/// The external validators found on PATH.
struct Tools {
    spirv_val: Option<String>,
    glslang: Option<String>,
}

fn find_tool(name: &str, probe: &str) -> Option<String> {
    Command::new(name)
        .arg(probe)
        .output()
        .ok()
        .map(|_| name.to_string())
}

// ---------------------------------------------------------------------------------------------
// The test.
// ---------------------------------------------------------------------------------------------

/// A family parsed once, with naga's verdict for each backend's capabilities.
struct Family {
    module: Module,
    /// Per backend: the module info under its capabilities, or why it does not validate.
    per_backend: Vec<Result<ModuleInfo, String>>,
}

fn load_family(name: &str, backends: &[Backend]) -> Family {
    let parts = family_files(name).unwrap_or_else(|| panic!("no shader family '{name}'"));
    let parsed = parse_and_validate_parts(&parts).unwrap_or_else(|e| panic!("{name}: {e}"));
    let validate = |caps: Caps| {
        Validator::new(ValidationFlags::all(), caps)
            .validate(&parsed.module)
            .map_err(|e| format!("{}", e.as_inner()))
    };
    // The capabilities the test assumes the engine takes the family with are the ones it
    // needs: enough, and none to spare.
    let needs = engine_needs(name);
    if let Err(e) = validate(needs) {
        panic!(
            "shader family '{name}' needs more than {needs:?} (engine_needs is out of date): {e}"
        );
    }
    for bit in [Caps::SUBGROUP] {
        if needs.contains(bit) && validate(needs - bit).is_ok() {
            panic!(
                "shader family '{name}' validates without {bit:?} (engine_needs is out of date)"
            );
        }
    }
    Family {
        per_backend: backends.iter().map(|b| validate(b.caps)).collect(),
        module: parsed.module,
    }
}

/// Storage buffers, invocations per workgroup and workgroup memory (bytes) of a pipeline after
/// its override constants: what a backend's limits are measured against.
fn resources(module: &Module, info: &ModuleInfo, key: &PipelineKey) -> (usize, u32, u32) {
    let mut constants = naga::back::PipelineConstants::default();
    for (name, v) in &key.constants {
        constants.insert(name.to_string(), *v);
    }
    let (m, i) = naga::back::pipeline_constants::process_overrides(
        module,
        info,
        Some((ShaderStage::Compute, key.entry)),
        &constants,
    )
    .expect("override constants");
    let ep_index = m
        .entry_points
        .iter()
        .position(|e| e.name == key.entry)
        .unwrap();
    let ep = &m.entry_points[ep_index];
    let used = i.get_entry_point(ep_index);
    let mut storage = 0;
    let mut shared = 0;
    for (h, g) in m.global_variables.iter() {
        if used[h].is_empty() {
            continue;
        }
        match g.space {
            AddressSpace::Storage { .. } => storage += 1,
            AddressSpace::WorkGroup => shared += m.types[g.ty].inner.size(m.to_ctx()),
            _ => {}
        }
    }
    (storage, ep.workgroup_size.iter().product(), shared)
}

#[test]
fn every_pipeline_translates_for_every_backend() {
    let started = std::time::Instant::now();
    let keys = collect_pipelines();
    let collected = started.elapsed();

    // Complete: every kernel the table registers ran in some workload (those this device cannot
    // run, e.g. the subgroup kernels on a driver without 8-lane subgroups, excepted and named).
    let report = common::gpu().report().clone();
    let runs_here = |family: &str| {
        let needs = engine_needs(family);
        needs.is_empty() || report.subgroup_lanes == Some(8)
    };
    let unrunnable: Vec<String> = KERNELS
        .iter()
        .filter(|k| !runs_here(k.family))
        .map(|k| format!("{}::{}", k.family, k.entry))
        .collect();
    let missing: Vec<String> = KERNELS
        .iter()
        .filter(|k| runs_here(k.family))
        .filter(|k| {
            !keys
                .iter()
                .any(|p| p.family == k.family && p.entry == k.entry)
        })
        .map(|k| format!("{}::{}", k.family, k.entry))
        .collect();

    let backends = backends();
    let families: BTreeMap<&str, Family> = keys
        .iter()
        .map(|k| k.family)
        .collect::<BTreeSet<_>>()
        .into_iter()
        .map(|f| (f, load_family(f, &backends)))
        .collect();
    let tools = Tools {
        spirv_val: find_tool("spirv-val", "--version"),
        glslang: find_tool("glslangValidator", "--version"),
    };
    // CI installs both (.ci/run): a missing one there is a broken install step, not a skip.
    if std::env::var_os("CI").is_some() {
        assert!(
            tools.spirv_val.is_some() && tools.glslang.is_some(),
            "CI needs spirv-val and glslangValidator (Debian: spirv-tools, glslang-tools)"
        );
    }
    let scratch = tempfile::tempdir().unwrap();

    // Every (pipeline, backend) cell, translated on all cores.
    #[derive(Clone)]
    enum Cell {
        Ok,
        Fail(String),
        NotChosen(Option<Result<(), String>>),
    }
    let jobs: Vec<(usize, usize)> = (0..keys.len())
        .flat_map(|p| (0..backends.len()).map(move |b| (p, b)))
        .collect();
    type Outcome = (Chosen, Option<Result<Option<PathBuf>, String>>);
    let next = std::sync::atomic::AtomicUsize::new(0);
    let outcomes: Mutex<BTreeMap<(usize, usize), Outcome>> = Mutex::new(BTreeMap::new());
    let threads = std::thread::available_parallelism().map_or(2, |n| n.get());
    std::thread::scope(|scope| {
        for _ in 0..threads {
            scope.spawn(|| loop {
                let j = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                let Some(&(p, bi)) = jobs.get(j) else { break };
                let key = &keys[p];
                let b = &backends[bi];
                let fam = &families[key.family];
                let how = chosen(b, engine_needs(key.family));
                let result = (how != Chosen::Cannot).then(|| {
                    let info = fam.per_backend[bi]
                        .as_ref()
                        .map_err(|e| format!("naga validation with {:?}: {e}", b.caps))?;
                    translate(b, &fam.module, info, key, &tools, scratch.path(), j)
                });
                outcomes.lock().unwrap().insert((p, bi), (how, result));
            });
        }
    });
    let outcomes = outcomes.into_inner().unwrap();
    // The GLSL, checked in one batch per core.
    let files: Vec<PathBuf> = outcomes
        .values()
        .filter_map(|(_, r)| r.as_ref().and_then(|r| r.as_ref().ok()).cloned().flatten())
        .collect();
    let rejected: BTreeMap<PathBuf, String> = match &tools.glslang {
        Some(tool) if !files.is_empty() => std::thread::scope(|scope| {
            let handles: Vec<_> = files
                .chunks(files.len().div_ceil(threads))
                .map(|chunk| scope.spawn(move || glslang_check(tool, chunk)))
                .collect();
            handles
                .into_iter()
                .flat_map(|h| h.join().unwrap())
                .collect()
        }),
        _ => BTreeMap::new(),
    };
    let cells: BTreeMap<(usize, usize), Cell> = outcomes
        .into_iter()
        .map(|(at, (how, result))| {
            let result = result.map(|r| {
                r.and_then(|file| match file.and_then(|f| rejected.get(&f)) {
                    Some(e) => Err(e.clone()),
                    None => Ok(()),
                })
            });
            let cell = match (how, result) {
                (Chosen::Yes, Some(Ok(()))) => Cell::Ok,
                (Chosen::Yes, Some(Err(e))) => Cell::Fail(e),
                (_, result) => Cell::NotChosen(result),
            };
            (at, cell)
        })
        .collect();

    // The table.
    let width = keys
        .iter()
        .map(|k| label(k).len())
        .max()
        .unwrap_or(8)
        .max(8);
    let mut table = String::new();
    write!(table, "{:width$}  bufs  inv  wg-mem", "pipeline").unwrap();
    for b in &backends {
        write!(table, "  {:7}", b.name).unwrap();
    }
    table.push('\n');
    let mut failures = Vec::new();
    for (p, key) in keys.iter().enumerate() {
        let fam = &families[key.family];
        let info = fam.per_backend.iter().find_map(|r| r.as_ref().ok());
        let (bufs, inv, shared) = info.map_or((0, 0, 0), |i| resources(&fam.module, i, key));
        write!(
            table,
            "{:width$}  {bufs:4}  {inv:3}  {shared:6}",
            label(key)
        )
        .unwrap();
        for (bi, b) in backends.iter().enumerate() {
            let text = match &cells[&(p, bi)] {
                Cell::Ok => "ok",
                Cell::Fail(e) => {
                    failures.push(format!("{} on {}: {e}", label(key), b.name));
                    "FAIL"
                }
                Cell::NotChosen(None) => "-",
                Cell::NotChosen(Some(Ok(()))) => "(ok)",
                Cell::NotChosen(Some(Err(_))) => "(fail)",
            };
            write!(table, "  {text:7}").unwrap();
        }
        table.push('\n');
    }
    table.push_str(
        "\nok: translates (and validates, where the tool is installed); FAIL: the engine would \
         take it there and it does not translate; -: not chosen there (the backend cannot have \
         what it needs); (ok)/(fail): the backend could run it but the engine does not take it \
         there (no fixed 8-lane subgroups), translated for information.\n",
    );
    let mut summary = String::new();
    for (bi, b) in backends.iter().enumerate() {
        let (mut ok, mut not_chosen, mut fail) = (0, 0, 0);
        for p in 0..keys.len() {
            match cells[&(p, bi)] {
                Cell::Ok => ok += 1,
                Cell::Fail(_) => fail += 1,
                Cell::NotChosen(_) => not_chosen += 1,
            }
        }
        writeln!(
            summary,
            "{:8} {ok:4} ok  {not_chosen:4} not chosen  {fail:4} failing",
            b.name
        )
        .unwrap();
    }
    let informational: Vec<String> = cells
        .iter()
        .filter_map(|((p, bi), c)| match c {
            Cell::NotChosen(Some(Err(e))) => Some(format!(
                "{} on {}: {e}",
                label(&keys[*p]),
                backends[*bi].name
            )),
            _ => None,
        })
        .collect();
    println!("{table}");
    println!(
        "{} pipelines from {} kernels; validators: spirv-val {}, glslangValidator {}",
        keys.len(),
        KERNELS.len(),
        if tools.spirv_val.is_some() {
            "yes"
        } else {
            "not installed"
        },
        if tools.glslang.is_some() {
            "yes"
        } else {
            "not installed"
        },
    );
    println!("{summary}");
    if !unrunnable.is_empty() {
        println!(
            "not collected: this device ({}) cannot run {} (no 8-lane subgroups), so their \
             pipelines are neither compiled nor translated here",
            report.short(),
            unrunnable.join(", ")
        );
    }
    if !informational.is_empty() {
        println!(
            "not chosen, and not translating (for information):\n  {}",
            informational.join("\n  ")
        );
    }
    println!(
        "collected in {:.1} s, translated in {:.1} s",
        collected.as_secs_f64(),
        (started.elapsed() - collected).as_secs_f64()
    );
    if !failures.is_empty() {
        println!("failing:\n  {}", failures.join("\n  "));
    }
    assert!(
        missing.is_empty(),
        "kernels registered in ops::kernels::KERNELS that no workload compiled (add a workload \
         that runs them): {}",
        missing.join(", ")
    );
    assert!(
        failures.is_empty(),
        "{} pipelines the engine would choose do not translate:\n{}",
        failures.len(),
        failures.join("\n")
    );
}
