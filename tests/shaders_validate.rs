//! Every file in `shaders/` parses and validates with naga (with the common prelude in front),
//! so a broken shader fails `cargo test` with its file and line.

use rssm::gpu::pipelines::{parse_and_validate, parse_and_validate_parts};

#[test]
fn every_shader_family_validates() {
    // Each kernel family: one file, or the files gpu::shaders::COMPOSED lists, with the prelude
    // in front.
    let mut failures = Vec::new();
    let families = rssm::gpu::shaders::families();
    assert!(
        families.len() >= 5,
        "expected the kernel families, found {families:?}"
    );
    for family in &families {
        let parts = rssm::gpu::shaders::family_files(family).unwrap();
        if let Err(e) = parse_and_validate_parts(&parts) {
            failures.push(e.to_string());
        }
    }
    assert!(
        failures.is_empty(),
        "invalid shaders:\n{}",
        failures.join("\n")
    );
}

#[test]
fn every_shader_file_is_embedded() {
    // A file in shaders/ that the engine does not compile is dead code.
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("shaders");
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_stem().unwrap().to_str().unwrap().to_string();
        // shaders/gen holds the scripts that write some of the files (tested below).
        if name == "common" || path.extension().is_none_or(|e| e != "wgsl") {
            continue;
        }
        assert!(
            rssm::gpu::shaders::SOURCES.iter().any(|(n, _)| *n == name),
            "shaders/{name}.wgsl is not in gpu::shaders::SOURCES"
        );
    }
}

#[test]
fn an_error_in_a_composed_family_names_the_right_file() {
    let body = "fn f() -> f32 {\n    return g();\n}\n";
    let tail = "// the second file\nfn g() -> f32 {\n    let x: u32 = 1.5;\n    return 1.0;\n}\n";
    let err = match parse_and_validate_parts(&[("body", body), ("tail", tail)]) {
        Ok(_) => panic!("a broken shader validated"),
        Err(e) => e.to_string(),
    };
    assert!(err.contains("shaders/tail.wgsl:3"), "{err}");
}

#[test]
fn a_broken_shader_names_file_and_line() {
    let src = "fn f() -> f32 {\n    return 1.0;\n}\nfn g() {\n    let x: u32 = 1.5;\n}\n";
    let err = match parse_and_validate("broken", src) {
        Ok(_) => panic!("a broken shader validated"),
        Err(e) => e.to_string(),
    };
    assert!(err.contains("shaders/broken.wgsl:5"), "{err}");
}

/// The shaders written by a script in shaders/gen are what the script writes: an edit made to
/// the .wgsl file instead of the script fails here. Needs `python3` (skipped without it).
#[test]
fn generated_shaders_match_their_scripts() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("shaders/gen");
    let mut scripts: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "py"))
        .collect();
    scripts.sort();
    assert!(!scripts.is_empty(), "no scripts in {}", dir.display());
    for script in scripts {
        let out = match std::process::Command::new("python3")
            .arg(&script)
            .arg("--check")
            .output()
        {
            Ok(out) => out,
            Err(e) => {
                eprintln!("python3 not runnable ({e}): generated shaders not checked");
                return;
            }
        };
        assert!(
            out.status.success(),
            "{}: {}",
            script.display(),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}
