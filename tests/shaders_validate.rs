//! Every file in `shaders/` parses and validates with naga (with the common prelude in front),
//! so a broken shader fails `cargo test` with its file and line.

use rssm::gpu::pipelines::parse_and_validate;

#[test]
fn every_shader_file_validates() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("shaders");
    let mut n = 0;
    let mut failures = Vec::new();
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().and_then(|e| e.to_str()) != Some("wgsl") {
            continue;
        }
        let name = path.file_stem().unwrap().to_str().unwrap().to_string();
        let src = std::fs::read_to_string(&path).unwrap();
        n += 1;
        if name == "common" {
            continue; // the prelude is validated as part of every other file
        }
        if let Err(e) = parse_and_validate(&name, &src) {
            failures.push(e.to_string());
        }
    }
    assert!(n >= 5, "expected the shader files, found {n}");
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
        if name == "common" {
            continue;
        }
        assert!(
            rssm::gpu::shaders::SOURCES.iter().any(|(n, _)| *n == name),
            "shaders/{name}.wgsl is not in gpu::shaders::SOURCES"
        );
    }
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
