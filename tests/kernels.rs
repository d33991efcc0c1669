//! The kernel table (`rssm::ops::kernels::KERNELS`: every family's typed kernel constants)
//! against the shaders and the source: a misspelt family, entry point or override constant, a
//! parameter struct whose size differs from the shader's, or a shader edit that changes which
//! buffers an entry point binds, or their order, fails here, not in a user's run.

use std::collections::BTreeSet;

use naga::{AddressSpace, ShaderStage};
use rssm::gpu::pipelines::parse_and_validate_parts;
use rssm::gpu::shaders::family_files;
use rssm::ops::kernels::{KernelSig, KERNELS};

/// What one entry point of a shader needs, by naga reflection.
struct EntryLayout {
    /// Size of the uniform struct at binding 0, when the entry point uses it.
    params_bytes: Option<u32>,
    /// The storage bindings the entry point uses, by name, in ascending binding number.
    storage: Vec<String>,
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
    let mut storage = Vec::new();
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
            AddressSpace::Storage { .. } if binding.binding != 0 => {
                storage.push((binding.binding, var.name.clone().unwrap_or_default()))
            }
            other => {
                return Err(format!(
                    "{family}::{entry}: binding {} is {other:?}; the engine binds the uniform \
                     parameters at 0 and storage buffers after it",
                    binding.binding
                ))
            }
        }
    }
    storage.sort();
    let storage = storage.into_iter().map(|(_, name)| name).collect();
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
    if layout.storage != sig.bindings {
        return Err(format!(
            "{name}: the entry point binds {:?}, its signature says {:?}",
            layout.storage, sig.bindings
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

/// Every compute entry point of every shader family is in the table (under that family, or
/// under another family composed from the same file), and every family has one: a kernel no
/// Rust code dispatches is dead code, and an emptied table would pass the check above.
#[test]
fn every_entry_point_of_every_family_is_in_the_table() {
    let mut unregistered = vec![];
    for family in rssm::gpu::shaders::families() {
        let parts = family_files(family).unwrap();
        let parsed = parse_and_validate_parts(&parts).unwrap();
        let mut registered = 0;
        for ep in &parsed.module.entry_points {
            let here = KERNELS
                .iter()
                .any(|k| k.family == family && k.entry == ep.name);
            registered += here as usize;
            if !here && !KERNELS.iter().any(|k| k.entry == ep.name) {
                unregistered.push(format!("{family}::{}", ep.name));
            }
        }
        assert!(registered > 0, "family '{family}' has no kernel in KERNELS");
    }
    assert!(
        unregistered.is_empty(),
        "entry points no Rust code dispatches: {unregistered:?}"
    );
}

#[test]
fn the_check_catches_typos_and_layout_changes() {
    let good = **KERNELS
        .iter()
        .find(|k| k.family == "gru" && k.entry == "gru_cell")
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
                bindings: &["gi", "gh", "h", "saved", "h_new"],
                ..good
            },
            "binding order",
        ),
        (
            KernelSig {
                bindings: &["gi", "gh", "h", "h_new"],
                ..good
            },
            "bindings",
        ),
    ] {
        assert!(check(&bad).is_err(), "a wrong {what} passed: {bad:?}");
    }
}

/// `(file, constant name)` of every `kernel_sig!` constant declared in `src/`.
fn declared_kernels() -> Vec<(String, String)> {
    let mut out = Vec::new();
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut stack = vec![root];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
            } else if path.extension().and_then(|e| e.to_str()) == Some("rs") {
                let text = std::fs::read_to_string(&path).unwrap();
                // `pub const NAME: KernelSig = kernel_sig!(`, on one line or broken after `=`.
                let mut rest = text.as_str();
                while let Some(at) = rest.find(": KernelSig =") {
                    let name = rest[..at].rsplit("pub const ").next().unwrap_or("").trim();
                    let after = rest[at + ": KernelSig =".len()..].trim_start();
                    if after.starts_with("kernel_sig!(") && !name.contains(char::is_whitespace) {
                        out.push((path.display().to_string(), name.to_string()));
                    }
                    rest = &rest[at + 1..];
                }
            }
        }
    }
    out
}

/// Every kernel constant the source declares is in the table (so the check above covers it),
/// and the table lists each one once.
#[test]
fn every_declared_kernel_is_in_the_table() {
    let declared = declared_kernels();
    assert_eq!(
        declared.len(),
        KERNELS.len(),
        "declared kernels {declared:?} against {} in the table",
        KERNELS.len()
    );
    for (file, name) in &declared {
        let entry = name.to_lowercase();
        assert!(
            KERNELS.iter().any(|k| k.entry == entry),
            "{file}: {name} is not in ops::kernels::KERNELS"
        );
    }
}
