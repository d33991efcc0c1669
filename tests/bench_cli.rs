//! `rssm bench --json`: every workload reports its figures, and the FLOPs are the library's
//! count for the configuration measured.

use std::process::Command;

use rssm::agent::flops;
use rssm::model::Config;

fn bench(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_rssm"))
        .arg("bench")
        .args(args)
        .output()
        .unwrap()
}

#[test]
fn json_reports_every_workload_with_its_flops() {
    let out = bench(&[
        "--json",
        "--presets",
        "tiny",
        "--batch",
        "2",
        "--seq-len",
        "3",
        "--horizon",
        "2",
        "--imagine-starts",
        "2",
        "--imagine-steps",
        "4",
        "--reps",
        "1",
        "--workloads",
        "train,observe,behaviour,imagine",
    ]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let r: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let results = r["results"].as_array().unwrap();
    let names: Vec<&str> = results
        .iter()
        .map(|m| m["workload"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["train", "observe", "behaviour", "imagine"]);
    let cfg = Config {
        batch: 2,
        seq_len: 3,
        action_dim: 1,
        ..Config::tiny()
    };
    let want = [
        flops::world_model_update(&cfg),
        flops::observe_forward(&cfg),
        flops::behaviour_update(&cfg, 6, 2),
        flops::imagination(&cfg, 2, 4),
    ];
    for (m, f) in results.iter().zip(want) {
        let gflop = m["gflop"].as_f64().unwrap();
        assert!((gflop - f.total() * 1e-9).abs() <= 1e-12, "{m}");
        assert!(m["ms"].as_f64().unwrap() > 0.0 && m["wall_ms"].as_f64().unwrap() > 0.0);
        // The fastest and slowest steps bracket the mean (one step here: all three equal).
        let (lo, ms, hi) = (
            m["ms_min"].as_f64().unwrap(),
            m["ms"].as_f64().unwrap(),
            m["ms_max"].as_f64().unwrap(),
        );
        assert!(
            lo > 0.0 && lo <= ms * (1.0 + 1e-9) && ms <= hi * (1.0 + 1e-9),
            "{m}"
        );
        assert!(m["dispatches"].as_u64().unwrap() > 0, "{m}");
        let timing = m["timing"].as_str().unwrap();
        assert!(timing == "wall-clock" || timing == "gpu-timestamps", "{m}");
    }
    assert!(r["rssm_path"].is_string() && r["adapter"].is_string());
}

#[test]
fn an_unknown_workload_is_a_clear_error() {
    let out = bench(&["--workloads", "train,flying"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        stderr.contains("unknown workload 'flying'") && stderr.contains("imagine"),
        "{stderr}"
    );
}

#[test]
fn the_matmul_kernel_is_reported_and_chosen_by_rssm_lanes() {
    let run = |choice: &str| {
        Command::new(env!("CARGO_BIN_EXE_rssm"))
            .args([
                "bench",
                "--json",
                "--presets",
                "tiny",
                "--batch",
                "2",
                "--seq-len",
                "2",
                "--reps",
                "1",
                "--workloads",
                "observe",
                "--wall-only",
            ])
            .env("RSSM_LANES", choice)
            .output()
            .unwrap()
    };
    let out = run("off");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let r: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let kernel = r["matmul_kernel"].as_str().unwrap();
    assert!(kernel.starts_with("register blocks"), "{kernel}");
    let out = run("on");
    assert!(out.status.success());
    let r: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let kernel = r["matmul_kernel"].as_str().unwrap();
    // The subgroup kernel where the device has 8-lane subgroups, the register blocks elsewhere.
    assert!(
        kernel.starts_with("subgroup lanes") || kernel.starts_with("register blocks"),
        "{kernel}"
    );
    let out = run("fastest");
    assert!(!out.status.success(), "RSSM_LANES=fastest was accepted");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("RSSM_LANES='fastest'") && stderr.contains("lanes=on|off"),
        "{stderr}"
    );
}

/// The tuning is reported in the override syntax, `--tuning` forces choices over
/// `RSSM_TUNING`, and a bad key is an error naming it.
#[test]
fn the_tuning_is_reported_and_forced_by_flag_and_environment() {
    let run = |flag: Option<&str>, env: &str| {
        let mut c = Command::new(env!("CARGO_BIN_EXE_rssm"));
        if let Some(f) = flag {
            c.args(["--tuning", f]);
        }
        c.args([
            "bench",
            "--json",
            "--presets",
            "tiny",
            "--reps",
            "1",
            "--workloads",
            "matmul",
            "--wall-only",
        ])
        .env("RSSM_TUNING", env)
        .output()
        .unwrap()
    };
    let tuning = |out: &std::process::Output| {
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let r: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        r["tuning"].as_str().unwrap().to_string()
    };
    let t = tuning(&run(None, "lanes=off,conv_block=8,path=fused"));
    assert!(
        t.contains("lanes=off") && t.contains("conv_block=8") && t.contains("path=fused"),
        "{t}"
    );
    let t = tuning(&run(Some("path=per-op,tiling=gpu"), "path=fused"));
    assert!(t.contains("path=per-op") && t.contains("tiling=gpu"), "{t}");
    let out = run(None, "colour=red");
    assert!(!out.status.success(), "RSSM_TUNING=colour=red was accepted");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("RSSM_TUNING") && stderr.contains("'colour'"),
        "{stderr}"
    );
}

/// `--profile`: one step timed dispatch by dispatch. Its kernels account for every dispatch of
/// the step, their shares sum to one, and the slowest dispatches are ordered and name their
/// override constants. Adapters without
/// timestamp queries get a clear error instead.
#[test]
fn profile_accounts_for_every_dispatch_of_the_step() {
    let out = bench(&[
        "--json",
        "--profile",
        "--presets",
        "tiny",
        "--batch",
        "2",
        "--seq-len",
        "3",
        "--horizon",
        "2",
        "--reps",
        "1",
        "--wall-only",
        "--workloads",
        "train,behaviour",
    ]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    if !out.status.success() {
        assert!(stderr.contains("timestamp queries"), "{stderr}");
        return;
    }
    let r: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    for m in r["results"].as_array().unwrap() {
        let kernels = m["kernels"].as_array().expect("kernels with --profile");
        let counted: u64 = kernels
            .iter()
            .map(|k| k["dispatches"].as_u64().unwrap())
            .sum();
        assert_eq!(counted, m["dispatches"].as_u64().unwrap(), "{m}");
        let share: f64 = kernels.iter().map(|k| k["share"].as_f64().unwrap()).sum();
        assert!((share - 1.0).abs() < 1e-9, "{m}");
        assert!(kernels
            .iter()
            .all(|k| k["kernel"].as_str().unwrap().contains("::")));
        let slow: Vec<f64> = m["slowest"]
            .as_array()
            .unwrap()
            .iter()
            .map(|d| d["ms"].as_f64().unwrap())
            .collect();
        assert!(
            !slow.is_empty() && slow.windows(2).all(|w| w[0] >= w[1]),
            "{m}"
        );
        // Each names its kernel's override constants (`NAME=value,...`; none for some).
        for d in m["slowest"].as_array().unwrap() {
            let v = d["variant"].as_str().unwrap();
            assert!(
                v.is_empty() || v.split(',').all(|kv| kv.contains('=')),
                "{d}"
            );
        }
    }
}

/// The variables of removed variants (`RSSM_NHWC`, `RSSM_WIDE_LOADS`) are refused with an
/// error that says the variant was removed, not ignored or taken for a typo.
#[test]
fn variables_of_removed_variants_are_clear_errors() {
    for var in ["RSSM_NHWC", "RSSM_WIDE_LOADS"] {
        let out = Command::new(env!("CARGO_BIN_EXE_rssm"))
            .arg("info")
            .env(var, "on")
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{var}: {err}");
        assert!(err.contains(var) && err.contains("removed"), "{var}: {err}");
    }
}
