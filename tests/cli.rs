//! The `rssm` command end to end: info, a short training run that resumes exactly, evaluate
//! against the in-process loss and gradients, and clear errors for bad files.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::{gpu, rand_vec};
use rssm::data::safetensors_io::{load_safetensors, save_safetensors, HostTensor};
use rssm::model::{Config, DeviceBatch, WorldModel};
use rssm::tensor::{Tape, Tensor};

fn rssm() -> Command {
    Command::new(env!("CARGO_BIN_EXE_rssm"))
}

fn tmpdir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("rssm-cli-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn run_ok(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "command failed: {text}");
    text
}

fn run_err(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap();
    let text = String::from_utf8_lossy(&out.stderr).to_string();
    assert!(!out.status.success(), "command should have failed");
    assert!(
        !text.contains("panicked"),
        "panic instead of an error: {text}"
    );
    text
}

#[test]
fn info_names_the_adapter() {
    let text = run_ok(rssm().arg("info"));
    assert!(text.contains(&gpu().report().name), "{text}");
    // Features as a list of names, not a debug dump of bitflags.
    assert!(
        !text.contains("Features {") && !text.contains("FeaturesWGPU"),
        "{text}"
    );
    let features = text.split("features").nth(1).unwrap_or("");
    for name in gpu()
        .report()
        .features
        .split(", ")
        .filter(|n| !n.is_empty())
    {
        assert!(features.contains(&format!("\n  {name}")), "{name}: {text}");
    }
}

#[test]
fn no_driver_noise_without_a_runtime_dir() {
    // Containers, CI jobs and ssh sessions often have no XDG_RUNTIME_DIR; Mesa then prints
    // "XDG_RUNTIME_DIR is invalid or not set", which reads as our failure.
    let text = run_ok(rssm().arg("info").env_remove("XDG_RUNTIME_DIR"));
    assert!(!text.contains("XDG_RUNTIME_DIR"), "{text}");
}

fn losses(dir: &Path) -> Vec<f64> {
    std::fs::read_to_string(dir.join("metrics.jsonl"))
        .unwrap()
        .lines()
        .map(|l| {
            serde_json::from_str::<serde_json::Value>(l).unwrap()["loss"]
                .as_f64()
                .unwrap()
        })
        .collect()
}

#[test]
fn train_writes_pictures_and_resumes_exactly() {
    let a = tmpdir("train-a");
    let b = tmpdir("train-b");
    let common = [
        "train",
        "--preset",
        "tiny",
        "--episodes",
        "2",
        "--save-every",
        "2",
    ];
    run_ok(
        rssm()
            .args(common)
            .args(["--steps", "4", "--logdir"])
            .arg(&a),
    );
    run_ok(
        rssm()
            .args(common)
            .args(["--steps", "2", "--logdir"])
            .arg(&b),
    );
    let text = run_ok(
        rssm()
            .args(common)
            .args(["--steps", "4", "--resume", "--logdir"])
            .arg(&b),
    );
    assert!(text.contains("resumed"), "{text}");
    assert_eq!(
        losses(&a),
        losses(&b),
        "a resumed run must repeat the uninterrupted one"
    );
    assert!(a.join("open_loop_000004.png").exists());
    assert!(a.join("checkpoint/checkpoint.safetensors").exists());
    // The picture is a real PNG of 3 rows per sequence.
    let png = std::fs::read(a.join("open_loop_000004.png")).unwrap();
    assert_eq!(&png[1..4], b"PNG");
    // The loss chart, rewritten at each checkpoint, with every term.
    let svg = std::fs::read_to_string(a.join("losses.svg")).unwrap();
    for text in ["training step", "image NLL", "gradient norm"] {
        assert!(svg.contains(text), "losses.svg lacks {text}");
    }
    // Every file was written atomically: no temporary is left anywhere.
    for dir in [a.clone(), a.join("checkpoint")] {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let name = entry.unwrap().file_name().to_string_lossy().to_string();
            assert!(!name.ends_with(".tmp"), "temporary left behind: {name}");
        }
    }
}

#[test]
fn train_says_what_it_runs_first_and_explicit_flags_beat_the_device_defaults() {
    let d = tmpdir("train-first");
    let text = run_ok(
        rssm()
            .args([
                "train",
                "--preset",
                "tiny",
                "--episodes",
                "2",
                "--steps",
                "3",
                "--save-every",
                "2",
                "--logdir",
            ])
            .arg(&d),
    );
    // The first line: the adapter, the preset, the steps, the time, the full configuration.
    let first = text.lines().next().unwrap_or("");
    let g = gpu();
    let report = g.report();
    let device = if report.is_cpu() { "CPU" } else { "GPU" };
    let defaults = format!("{device} defaults");
    for part in [
        report.name.as_str(),
        &defaults,
        "preset tiny,",
        "3 steps",
        "rssm train --preset dreamer --steps 1000",
    ] {
        assert!(
            first.contains(part),
            "{part:?} not in the first line: {first}"
        );
    }
    // --steps 3 beats the device's default: 3 records; --save-every 2 beats it too: a
    // checkpoint with a picture at step 2 and at the end, none at step 1.
    assert_eq!(losses(&d).len(), 3);
    assert!(text.contains("step 2: checkpoint"), "{text}");
    assert!(d.join("open_loop_000002.png").exists());
    assert!(d.join("open_loop_000003.png").exists());
    assert!(!d.join("open_loop_000001.png").exists());
    // Pictures between checkpoints (--picture-every) come without one.
    let e = tmpdir("train-pictures");
    let text = run_ok(
        rssm()
            .args([
                "train",
                "--preset",
                "tiny",
                "--episodes",
                "2",
                "--steps",
                "3",
            ])
            .args(["--save-every", "3", "--picture-every", "1", "--logdir"])
            .arg(&e),
    );
    for step in 1..=3 {
        assert!(e.join(format!("open_loop_00000{step}.png")).exists());
    }
    assert!(
        text.contains("step 1: ") && !text.contains("step 1: checkpoint"),
        "{text}"
    );
    assert!(text.contains("step 3: checkpoint"), "{text}");
    // The progress says the rate and the time left.
    assert!(text.contains("steps/s") && text.contains("left"), "{text}");
}

#[test]
fn train_reports_bad_data_files_by_name() {
    let d = tmpdir("baddata");
    std::fs::write(d.join("broken.npz"), b"not a zip").unwrap();
    let text = run_err(
        rssm()
            .args(["train", "--preset", "tiny", "--steps", "1", "--data"])
            .arg(&d)
            .arg("--logdir")
            .arg(d.join("log")),
    );
    assert!(text.contains("broken.npz"), "{text}");
}

#[test]
fn evaluate_matches_the_in_process_loss_and_gradients() {
    // The in-process gradients are the ones the whole-loss finite-difference check verifies
    // (tests/world_model.rs); evaluate must write the same numbers.
    let g = gpu();
    let d = tmpdir("evaluate");
    let cfg = Config::tiny();
    std::fs::write(d.join("config.json"), serde_json::to_string(&cfg).unwrap()).unwrap();
    let model = WorldModel::new(&g, &cfg).unwrap();
    model.params.save(&d.join("w.safetensors")).unwrap();
    let (b, t, a, s) = (cfg.batch, cfg.seq_len, cfg.action_dim, cfg.stoch);
    let mut batch = std::collections::BTreeMap::new();
    let host = |shape: Vec<usize>, seed: u64, lo: f32, hi: f32| {
        let n = shape.iter().product();
        HostTensor::new(shape, rand_vec(n, seed, lo, hi)).unwrap()
    };
    batch.insert("obs".to_string(), host(vec![b, t, 3, 64, 64], 1, -0.5, 0.5));
    batch.insert("action".to_string(), host(vec![b, t, a], 2, -1.0, 1.0));
    batch.insert("reward".to_string(), host(vec![b, t], 3, 0.0, 1.0));
    batch.insert(
        "cont".to_string(),
        HostTensor::new(vec![b, t], vec![1.0; b * t]).unwrap(),
    );
    batch.insert("eps".to_string(), host(vec![b, t, s], 4, -1.0, 1.0));
    save_safetensors(d.join("batch.safetensors"), &batch, None).unwrap();
    run_ok(
        rssm()
            .arg("evaluate")
            .arg("--config")
            .arg(d.join("config.json"))
            .arg("--checkpoint")
            .arg(d.join("w.safetensors"))
            .arg("--batch")
            .arg(d.join("batch.safetensors"))
            .arg("--out")
            .arg(d.join("out.safetensors")),
    );
    let (out, _) = load_safetensors(d.join("out.safetensors")).unwrap();

    let dev = |k: &str| Tensor::from_vec(&g, &batch[k].shape, &batch[k].data).unwrap();
    let db = DeviceBatch {
        obs: dev("obs"),
        action: dev("action"),
        reward: dev("reward"),
        cont: dev("cont"),
        eps: Some(dev("eps")),
    };
    let tape = Tape::new(&g);
    let p = model.params.bind(&tape);
    let o = model.loss(&tape, &p, &db, 0).unwrap();
    let loss = tape.value(o.loss).to_scalar().unwrap();
    let vars = p.vars().to_vec();
    let grads = tape.backward(o.loss).unwrap();
    assert_eq!(out["loss"].data[0], loss);
    for k in ["image_nll", "reward_nll", "cont_nll", "kl", "kl_loss"] {
        assert_eq!(out[k].shape, vec![1], "{k}");
    }
    assert_eq!(out["posterior_mean"].shape, vec![b, t, s]);
    assert_eq!(out["prior_mean"].shape, vec![b, t, s]);
    assert_eq!(out["deter"].shape, vec![b, t, cfg.deter]);
    for (name, v) in model.params.names().iter().zip(&vars) {
        let want = grads.get(*v).unwrap().to_vec().unwrap();
        assert_eq!(out[&format!("grad.{name}")].data, want, "grad.{name}");
    }
}

#[test]
fn evaluate_refuses_bad_checkpoints() {
    let g = gpu();
    let d = tmpdir("evalbad");
    let cfg = Config::tiny();
    std::fs::write(d.join("config.json"), serde_json::to_string(&cfg).unwrap()).unwrap();
    let model = WorldModel::new(&g, &cfg).unwrap();
    model.params.save(&d.join("w.safetensors")).unwrap();
    let bytes = std::fs::read(d.join("w.safetensors")).unwrap();
    std::fs::write(d.join("trunc.safetensors"), &bytes[..bytes.len() - 100]).unwrap();
    let args = |ck: &str| {
        let mut c = rssm();
        c.arg("evaluate")
            .arg("--config")
            .arg(d.join("config.json"))
            .arg("--checkpoint")
            .arg(d.join(ck))
            .arg("--batch")
            .arg(d.join("none.safetensors"))
            .arg("--out")
            .arg(d.join("o.safetensors"));
        c
    };
    let e = run_err(&mut args("trunc.safetensors"));
    assert!(e.contains("trunc.safetensors"), "{e}");
    // A checkpoint of another model size names the mismatched keys.
    let other = WorldModel::new(
        &g,
        &Config {
            deter: 5,
            ..cfg.clone()
        },
    )
    .unwrap();
    other.params.save(&d.join("other.safetensors")).unwrap();
    let e = run_err(&mut args("other.safetensors"));
    assert!(e.contains("rssm.gru"), "{e}");
}

#[test]
fn dreamer_loop_resumes_and_imagine_draws_a_strip() {
    let d = tmpdir("dreamer");
    let args = [
        "dreamer",
        "--preset",
        "tiny",
        "--prefill",
        "2",
        "--train-steps",
        "2",
        "--episode-len",
        "60",
        "--behaviour-warmup",
        "1",
    ];
    run_ok(
        rssm()
            .args(args)
            .args(["--env-steps", "1060", "--action-repeat", "4", "--logdir"])
            .arg(&d),
    );
    let svg = std::fs::read_to_string(d.join("returns.svg")).unwrap();
    assert!(
        svg.contains("environment steps") && svg.contains("uniform random policy"),
        "returns.svg: {svg}"
    );
    assert!(d.join("checkpoint/actor.safetensors").exists());
    let state: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(d.join("dreamer_state.json")).unwrap())
            .unwrap();
    let before = state["env_steps"].as_u64().unwrap();
    let updates = state["behaviour_updates"].as_u64().unwrap();
    assert!(
        updates >= 1,
        "no behaviour update after the warm-up: {state}"
    );
    assert_eq!(state["action_repeat"].as_u64(), Some(4));
    // The action repeat is part of the run: another one cannot resume it.
    let text = run_err(
        rssm()
            .args(args)
            .args([
                "--env-steps",
                "1120",
                "--action-repeat",
                "2",
                "--resume",
                "--logdir",
            ])
            .arg(&d),
    );
    assert!(text.contains("action repeat"), "{text}");
    let text = run_ok(
        rssm()
            .args(args)
            .args(["--env-steps", "1120", "--resume", "--logdir"])
            .arg(&d),
    );
    assert!(text.contains("resumed at"), "{text}");
    let state: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(d.join("dreamer_state.json")).unwrap())
            .unwrap();
    assert!(state["env_steps"].as_u64().unwrap() > before);
    assert!(state["behaviour_updates"].as_u64().unwrap() > updates);
    // A long imagined rollout from the dreamer checkpoint, actions from its actor.
    let out = d.join("imagine.png");
    let text = run_ok(
        rssm()
            .args(["imagine", "--steps", "200", "--checkpoint"])
            .arg(d.join("checkpoint"))
            .arg("--out")
            .arg(&out),
    );
    assert!(text.contains("the actor"), "{text}");
    let png = std::fs::read(&out).unwrap();
    assert_eq!(&png[1..4], b"PNG");
    // 205 frames, 15 per row: 14 rows of 64 pixels.
    let height = u32::from_be_bytes(png[20..24].try_into().unwrap());
    assert_eq!(height, 14 * 64);
}

#[test]
fn a_diverging_run_stops_with_a_clear_message_and_keeps_its_checkpoint() {
    let d = tmpdir("nan");
    let cfg = Config {
        lr: 1e30,
        action_dim: 1,
        ..Config::tiny()
    };
    std::fs::write(d.join("c.json"), serde_json::to_string(&cfg).unwrap()).unwrap();
    let text = run_err(
        rssm()
            .args([
                "train",
                "--episodes",
                "2",
                "--steps",
                "50",
                "--save-every",
                "1",
                "--config",
            ])
            .arg(d.join("c.json"))
            .arg("--logdir")
            .arg(d.join("log")),
    );
    assert!(
        text.contains("the loss became") && text.contains("last good checkpoint"),
        "{text}"
    );
    assert!(d.join("log/checkpoint/checkpoint.safetensors").exists());
}

#[test]
fn numeric_flags_out_of_range_are_refused_by_name() {
    let d = tmpdir("flags");
    for (cmd, flag, value) in [
        ("train", "--save-every", "0"),
        ("train", "--episodes", "0"),
        ("dreamer", "--eval-every", "0"),
        ("dreamer", "--prefill", "0"),
        ("dreamer", "--actor-lr", "0"),
        ("dreamer", "--critic-lr", "nan"),
        ("dreamer", "--expl-noise", "-1"),
        ("dreamer", "--prefill-hold", "0.5"),
        ("dreamer", "--horizon", "0"),
        ("imagine", "--cols", "0"),
        ("bench", "--reps", "0"),
    ] {
        let mut c = rssm();
        c.arg(cmd).arg(format!("{flag}={value}"));
        match cmd {
            "train" | "dreamer" => c.arg("--logdir").arg(&d),
            "imagine" => c.args(["--checkpoint", "x"]),
            _ => &mut c,
        };
        let text = run_err(&mut c);
        assert!(text.contains(flag), "{cmd} {flag} {value}: {text}");
    }
}

#[test]
fn config_errors_name_every_bad_key() {
    let d = tmpdir("badcfg");
    let cfg = d.join("c.json");
    std::fs::write(&cfg, r#"{"deter": -5, "kl_scale": "big", "unitz": 3}"#).unwrap();
    let text = run_err(
        rssm()
            .args(["train", "--steps", "1", "--config"])
            .arg(&cfg)
            .arg("--logdir")
            .arg(d.join("log")),
    );
    for key in ["'deter'", "'kl_scale'", "'unitz'", "c.json"] {
        assert!(text.contains(key), "{key}: {text}");
    }
    std::fs::write(&cfg, r#"{"free_nats": -1, "grad_clip": 0}"#).unwrap();
    let text = run_err(
        rssm()
            .args(["train", "--steps", "1", "--config"])
            .arg(&cfg)
            .arg("--logdir")
            .arg(d.join("log")),
    );
    assert!(
        text.contains("free_nats") && text.contains("grad_clip"),
        "{text}"
    );
}

/// `evaluate --behaviour`: given the Philox streams the engine would draw as explicit noise, it
/// writes what the in-process seeded update computes; the fused and the per-op imagination
/// write the same file; and every documented tensor is there with its shape.
#[test]
fn evaluate_behaviour_matches_the_in_process_objectives_on_both_paths() {
    use rssm::agent::{Behaviour, BehaviourConfig, Starts};
    use rssm::ops::gaussian::reference::normal_noise;
    let g = gpu();
    let d = tmpdir("evaluate-behaviour");
    let cfg = Config::tiny();
    std::fs::write(d.join("config.json"), serde_json::to_string(&cfg).unwrap()).unwrap();
    let model = WorldModel::new(&g, &cfg).unwrap();
    model.params.save(&d.join("wm.safetensors")).unwrap();
    let (h, n, a, s) = (3, 5, cfg.action_dim, cfg.stoch);
    let bcfg = BehaviourConfig {
        horizon: h,
        ..BehaviourConfig::default()
    };
    let b = Behaviour::new(&g, &cfg, bcfg).unwrap();
    b.actor.params().save(&d.join("actor.safetensors")).unwrap();
    b.critic
        .params()
        .save(&d.join("critic.safetensors"))
        .unwrap();
    let seed = 99;
    let steps = |w: usize, first: u64| -> Vec<f32> {
        (0..h as u64)
            .flat_map(|t| normal_noise(n * w, seed, first + 2 * t))
            .collect()
    };
    let mut batch = std::collections::BTreeMap::new();
    let start_h = rand_vec(n * cfg.deter, 5, -0.9, 0.9);
    let start_s = rand_vec(n * s, 6, -1.5, 1.5);
    batch.insert(
        "start_h".to_string(),
        HostTensor::new(vec![n, cfg.deter], start_h.clone()).unwrap(),
    );
    batch.insert(
        "start_s".to_string(),
        HostTensor::new(vec![n, s], start_s.clone()).unwrap(),
    );
    batch.insert(
        "action_eps".to_string(),
        HostTensor::new(vec![h, n, a], steps(a, 0)).unwrap(),
    );
    batch.insert(
        "prior_eps".to_string(),
        HostTensor::new(vec![h, n, s], steps(s, 1)).unwrap(),
    );
    save_safetensors(d.join("batch.safetensors"), &batch, None).unwrap();
    let evaluate = |path: &str, out: &str| {
        run_ok(
            rssm()
                .env("RSSM_OBSERVE_PATH", path)
                .arg("evaluate")
                .arg("--behaviour")
                .arg("--config")
                .arg(d.join("config.json"))
                .arg("--checkpoint")
                .arg(d.join("wm.safetensors"))
                .arg("--actor")
                .arg(d.join("actor.safetensors"))
                .arg("--critic")
                .arg(d.join("critic.safetensors"))
                .arg("--batch")
                .arg(d.join("batch.safetensors"))
                .arg("--out")
                .arg(d.join(out)),
        );
        load_safetensors(d.join(out)).unwrap().0
    };
    let fused = evaluate("fused", "fused.safetensors");
    let per_op = evaluate("per-op", "per_op.safetensors");
    let shapes: [(&str, Vec<usize>); 9] = [
        ("features", vec![h + 1, n, cfg.feat()]),
        ("actions", vec![h, n, a]),
        ("rewards", vec![h + 1, n]),
        ("continues", vec![h + 1, n]),
        ("values", vec![h + 1, n]),
        ("returns", vec![h, n]),
        ("weights", vec![h, n]),
        ("actor_loss", vec![1]),
        ("critic_loss", vec![1]),
    ];
    let close = |got: &[f32], want: &[f32], tol: f32, what: &str| {
        let scale = want.iter().fold(1e-3f32, |m, x| m.max(x.abs()));
        for (x, y) in got.iter().zip(want) {
            assert!((x - y).abs() <= tol * scale, "{what}: {x} vs {y}");
        }
    };
    for (k, shape) in &shapes {
        assert_eq!(&fused[*k].shape, shape, "{k}");
        close(&fused[*k].data, &per_op[*k].data, 1e-5, k);
    }
    let names: Vec<String> = b
        .actor
        .params()
        .names()
        .iter()
        .chain(b.critic.params().names())
        .map(|n| format!("grad.{n}"))
        .collect();
    for k in &names {
        close(&fused[k].data, &per_op[k].data, 1e-5, k);
    }
    // The in-process seeded objective draws the same streams on the device.
    let starts = Starts::new(
        &Tensor::from_vec(&g, &[n, cfg.deter], &start_h).unwrap(),
        &Tensor::from_vec(&g, &[n, s], &start_s).unwrap(),
    )
    .unwrap();
    let t = Tape::new(&g);
    let obj = b.actor_objective(&t, &model, &starts, seed, None).unwrap();
    close(
        &fused["returns"].data,
        &t.value(obj.returns).to_vec().unwrap(),
        1e-4,
        "returns",
    );
    let vars = obj.actor_params.vars().to_vec();
    let grads = t.backward(obj.loss).unwrap();
    for (name, v) in b.actor.params().names().iter().zip(&vars) {
        let want = grads.get(*v).unwrap().to_vec().unwrap();
        close(&fused[&format!("grad.{name}")].data, &want, 1e-3, name);
    }
}
