//! The kernel table (`rssm::ops::kernels::KERNELS`) against the shaders and the source: a
//! misspelt family, entry point or override constant, a parameter struct whose size differs
//! from the shader's, or a shader edit that changes how many buffers an entry point binds
//! fails here, not in a user's run.

use std::collections::BTreeSet;

use naga::{AddressSpace, ShaderStage};
use rssm::gpu::pipelines::parse_and_validate_parts;
use rssm::gpu::shaders::family_files;
use rssm::ops::kernels::{KernelSig, KERNELS};

/// What one entry point of a shader needs, by naga reflection.
struct EntryLayout {
    /// Size of the uniform struct at binding 0, when the entry point uses it.
    params_bytes: Option<u32>,
    /// Storage bindings the entry point uses.
    storage: usize,
}

fn entry_layout(family: &str, entry: &str) -> Result<(EntryLayout, Vec<String>), String> {
    let parts = family_files(family)
        .ok_or_else(|| format!("no shader family '{family}' in gpu::shaders"))?;
    let parsed = parse_and_validate_parts(&parts).map_err(|e| e.to_string())?;
    let module = &parsed.module;
    let index = module
        .entry_points
        .iter()
        .position(|e| e.name == entry)
        .ok_or_else(|| format!("shaders/{family}.wgsl has no entry point '{entry}'"))?;
    if module.entry_points[index].stage != ShaderStage::Compute {
        return Err(format!("{family}::{entry} is not a compute entry point"));
    }
    let used = parsed.info.get_entry_point(index);
    let mut layouter = naga::proc::Layouter::default();
    layouter
        .update(module.to_ctx())
        .map_err(|e| format!("{family}: layout: {e}"))?;
    let mut params_bytes = None;
    let mut storage = 0;
    for (handle, var) in module.global_variables.iter() {
        let Some(binding) = &var.binding else {
            continue;
        };
        if used[handle].is_empty() {
            continue;
        }
        if binding.group != 0 {
            return Err(format!(
                "{family}::{entry} uses bind group {}",
                binding.group
            ));
        }
        match var.space {
            AddressSpace::Uniform if binding.binding == 0 => {
                params_bytes = Some(layouter[var.ty].size);
            }
            AddressSpace::Storage { .. } if binding.binding != 0 => storage += 1,
            other => {
                return Err(format!(
                    "{family}::{entry}: binding {} is {other:?}; the engine binds the uniform \
                     parameters at 0 and storage buffers after it",
                    binding.binding
                ))
            }
        }
    }
    let overrides = module
        .overrides
        .iter()
        .filter_map(|(_, o)| o.name.clone())
        .collect();
    Ok((
        EntryLayout {
            params_bytes,
            storage,
        },
        overrides,
    ))
}

fn check(sig: &KernelSig) -> Result<(), String> {
    let (layout, overrides) = entry_layout(sig.family, sig.entry)?;
    let name = format!("{}::{}", sig.family, sig.entry);
    for c in sig.constants {
        if !overrides.iter().any(|o| o == c) {
            return Err(format!(
                "{name}: override constant '{c}' is not declared in shaders/{}.wgsl (it has: {})",
                sig.family,
                overrides.join(", ")
            ));
        }
    }
    if let Some(bytes) = layout.params_bytes {
        if bytes as usize != sig.params_bytes {
            return Err(format!(
                "{name}: the shader's parameter struct is {bytes} bytes, the Rust one {}",
                sig.params_bytes
            ));
        }
    }
    if layout.storage != sig.buffers {
        return Err(format!(
            "{name}: the entry point uses {} storage bindings, the table says {} buffers are bound",
            layout.storage, sig.buffers
        ));
    }
    Ok(())
}

#[test]
fn every_registered_kernel_matches_its_shader() {
    let failures: Vec<String> = KERNELS.iter().filter_map(|k| check(k).err()).collect();
    assert!(
        failures.is_empty(),
        "kernel table and shaders disagree:\n{}",
        failures.join("\n")
    );
    let mut seen = BTreeSet::new();
    for k in KERNELS {
        assert!(
            seen.insert((k.family, k.entry)),
            "{}::{} registered twice",
            k.family,
            k.entry
        );
    }
}

#[test]
fn the_check_catches_typos_and_layout_changes() {
    let good = KERNELS
        .iter()
        .find(|k| k.family == "gru" && k.entry == "gru_cell")
        .copied()
        .expect("gru_cell is registered");
    check(&good).unwrap();
    for (bad, what) in [
        (
            KernelSig {
                family: "gruu",
                ..good
            },
            "family",
        ),
        (
            KernelSig {
                entry: "gru_cel",
                ..good
            },
            "entry",
        ),
        (
            KernelSig {
                constants: &["SAVED"],
                ..good
            },
            "override",
        ),
        (
            KernelSig {
                params_bytes: good.params_bytes + 4,
                ..good
            },
            "params",
        ),
        (
            KernelSig {
                buffers: good.buffers + 1,
                ..good
            },
            "buffers",
        ),
    ] {
        assert!(check(&bad).is_err(), "a wrong {what} passed: {bad:?}");
    }
}

/// `(family, entry, constants)` of every `.kernel(` call in `src/`: the first string literal
/// is the family, `("NAME", ..)` pairs are constants, other literals are entry points (a call
/// may choose between two).
fn kernel_calls() -> Vec<(String, String, Vec<String>, String)> {
    let mut out = Vec::new();
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut stack = vec![root];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
                continue;
            }
            if path.extension().and_then(|e| e.to_str()) != Some("rs") {
                continue;
            }
            let text = std::fs::read_to_string(&path).unwrap();
            let mut rest = text.as_str();
            while let Some(at) = rest.find(".kernel(") {
                let call = &rest[at + ".kernel(".len()..];
                // The arguments end at the call's closing parenthesis.
                let mut depth = 1;
                let end = call
                    .char_indices()
                    .find_map(|(i, c)| {
                        match c {
                            '(' => depth += 1,
                            ')' => depth -= 1,
                            _ => {}
                        }
                        (depth == 0).then_some(i)
                    })
                    .unwrap_or(call.len());
                let args = &call[..end];
                rest = &call[end..];
                let literals: Vec<(usize, &str)> = args
                    .match_indices('"')
                    .collect::<Vec<_>>()
                    .chunks(2)
                    .filter(|p| p.len() == 2)
                    .map(|p| (p[0].0, &args[p[0].0 + 1..p[1].0]))
                    .collect();
                let Some(((_, family), others)) = literals.split_first() else {
                    continue; // a call with computed names, if any, is not checked here
                };
                let mut entries = Vec::new();
                let mut constants = Vec::new();
                for (pos, lit) in others {
                    if args[..*pos].trim_end().ends_with('(') {
                        constants.push(lit.to_string());
                    } else {
                        entries.push(lit.to_string());
                    }
                }
                let file = path.strip_prefix(env!("CARGO_MANIFEST_DIR")).unwrap();
                for e in entries {
                    out.push((
                        family.to_string(),
                        e,
                        constants.clone(),
                        file.display().to_string(),
                    ));
                }
            }
        }
    }
    out
}

#[test]
fn every_kernel_used_in_the_source_is_registered() {
    let calls = kernel_calls();
    assert!(calls.len() >= 30, "found only {} kernel calls", calls.len());
    let mut problems = Vec::new();
    for (family, entry, constants, file) in &calls {
        match KERNELS
            .iter()
            .find(|k| k.family == family && k.entry == entry)
        {
            None => problems.push(format!(
                "{file}: kernel(\"{family}\", \"{entry}\") is not in ops::kernels::KERNELS"
            )),
            Some(k) => {
                for c in constants {
                    if !k.constants.contains(&c.as_str()) {
                        problems.push(format!(
                            "{file}: {family}::{entry} sets '{c}', not registered in KERNELS"
                        ));
                    }
                }
            }
        }
    }
    for k in KERNELS {
        if !calls
            .iter()
            .any(|(f, e, _, _)| f == k.family && e == k.entry)
        {
            problems.push(format!(
                "{}::{} is registered but no code dispatches it",
                k.family, k.entry
            ));
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}
