//! Killed with SIGKILL at pseudo-random moments and resumed with `--resume`, `rssm train` and
//! `rssm dreamer` end as an uninterrupted run with the same seed does: every record once in
//! `metrics.jsonl` (and every line of it parses), the same final checkpoint bit for bit, the
//! same episodes on disk, no temporary file left.
//!
//! The kill moments are drawn (seeded) over the run's progress (records and episodes written)
//! plus a random delay, so they fall before the first checkpoint (the run then starts afresh),
//! during training, between an episode's file and the checkpoint that counts it, and during
//! the writes of checkpoints, records and episodes, whatever the machine's speed.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn rssm() -> Command {
    Command::new(env!("CARGO_BIN_EXE_rssm"))
}

fn tmpdir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("rssm-resume-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// A small seeded generator (SplitMix64) for the kill moments.
struct Rng(u64);

impl Rng {
    fn uniform(&mut self, lo: f64, hi: f64) -> f64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^= z >> 31;
        lo + (hi - lo) * (z >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// Runs `rssm ARGS --logdir LOGDIR` to completion.
fn run_through(args: &[&str], logdir: &Path) {
    let out = rssm()
        .args(args)
        .arg("--logdir")
        .arg(logdir)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "uninterrupted run failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// What [`run_with_kills`] did.
#[derive(Debug, Default)]
struct Kills {
    /// Runs killed.
    killed: usize,
    /// Runs started with `--resume` (a checkpoint was there).
    resumed: usize,
    /// Runs started afresh after a kill (killed before its first checkpoint).
    afresh: usize,
}

/// How far a run in `logdir` has come: lines in `metrics.jsonl` plus episode files.
fn progress(logdir: &Path) -> usize {
    let lines = std::fs::read(logdir.join("metrics.jsonl"))
        .map(|b| b.iter().filter(|&&c| c == b'\n').count())
        .unwrap_or(0);
    let episodes = std::fs::read_dir(logdir.join("episodes"))
        .map(|d| {
            d.filter(|e| {
                e.as_ref()
                    .is_ok_and(|e| e.file_name().to_string_lossy().ends_with(".npz"))
            })
            .count()
        })
        .unwrap_or(0);
    lines + episodes
}

/// Runs `rssm ARGS --logdir LOGDIR` and kills it with SIGKILL `kills` times, then lets the last
/// run finish. Each kill comes at a pseudo-random moment: once the run's [`progress`] reaches a
/// target (drawn, then sorted, short of `total`, the uninterrupted run's), after a further
/// random delay of up to `jitter`. Each run after a kill passes
/// `--resume` when the checkpoint file `marker` exists, else starts afresh. After the first
/// kill, a torn record (a line without its end, as a kill mid-write leaves one) is appended to
/// `metrics.jsonl`.
fn run_with_kills(
    args: &[&str],
    logdir: &Path,
    marker: &str,
    kills: usize,
    total: usize,
    jitter: Duration,
    seed: u64,
) -> Kills {
    // RSSM_KILL_SEED draws other kill moments (to hunt for a failure).
    let seed = std::env::var("RSSM_KILL_SEED")
        .ok()
        .and_then(|s| s.parse::<u64>().ok())
        .map_or(seed, |s| s ^ seed);
    let mut rng = Rng(seed);
    // Spread over the run, short of its end (so that it is still going when the kill comes).
    let mut targets: Vec<usize> = (0..kills)
        .map(|_| rng.uniform(1.0, total.saturating_sub(1).max(2) as f64) as usize)
        .collect();
    targets.sort();
    let mut done = Kills::default();
    let log = logdir.with_extension("stderr");
    for attempt in 0..=kills {
        let mut cmd = rssm();
        cmd.args(args).arg("--logdir").arg(logdir);
        if attempt > 0 {
            if logdir.join(marker).exists() {
                cmd.arg("--resume");
                done.resumed += 1;
            } else {
                done.afresh += 1;
            }
        }
        // Past where this run starts (the records it finds, before it cuts them back).
        let target = targets
            .get(attempt)
            .map_or(usize::MAX, |t| (*t).max(progress(logdir) + 1));
        let delay = Duration::from_secs_f64(rng.uniform(0.0, jitter.as_secs_f64()));
        let stderr = std::fs::File::create(&log).unwrap();
        let mut child = cmd
            .stdout(Stdio::null())
            .stderr(Stdio::from(stderr))
            .spawn()
            .unwrap();
        let mut deadline = None;
        let status = loop {
            if let Some(status) = child.try_wait().unwrap() {
                break Some(status);
            }
            if deadline.is_none() && progress(logdir) >= target {
                deadline = Some(Instant::now() + delay);
            }
            if deadline.is_some_and(|d| Instant::now() >= d) {
                child.kill().unwrap();
                child.wait().unwrap();
                break None;
            }
            std::thread::sleep(Duration::from_millis(2));
        };
        match status {
            None => {
                done.killed += 1;
                if done.killed == 1 {
                    use std::io::Write;
                    let mut f = std::fs::OpenOptions::new()
                        .append(true)
                        .create(true)
                        .open(logdir.join("metrics.jsonl"))
                        .unwrap();
                    write!(f, "{{\"step\":99999,\"kind\":\"train\",\"env_ste").unwrap();
                }
            }
            Some(status) => {
                assert!(
                    status.success(),
                    "run {attempt} failed: {}",
                    std::fs::read_to_string(&log).unwrap_or_default()
                );
                // Finished (before its kill moment, if it had one).
                break;
            }
        }
    }
    done
}

/// Every line of `metrics.jsonl`, parsed (each must parse).
fn records(logdir: &Path) -> Vec<serde_json::Value> {
    let text = std::fs::read_to_string(logdir.join("metrics.jsonl")).unwrap();
    assert!(text.is_empty() || text.ends_with('\n'), "torn last line");
    text.lines()
        .enumerate()
        .map(|(i, l)| {
            serde_json::from_str(l)
                .unwrap_or_else(|e| panic!("metrics.jsonl line {}: {e}: {l}", i + 1))
        })
        .collect()
}

/// Every file under `dir` (relative path -> bytes).
fn files(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    fn walk(root: &Path, dir: &Path, out: &mut BTreeMap<String, Vec<u8>>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                walk(root, &path, out);
            } else {
                let rel = path
                    .strip_prefix(root)
                    .unwrap()
                    .to_string_lossy()
                    .to_string();
                out.insert(rel, std::fs::read(&path).unwrap());
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(dir, dir, &mut out);
    out
}

/// No temporary (a `.tmp` file or folder) anywhere under `dir`, nor beside it.
fn assert_no_temporaries(dir: &Path) {
    fn names(dir: &Path, out: &mut Vec<String>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            out.push(path.to_string_lossy().to_string());
            if path.is_dir() {
                names(&path, out);
            }
        }
    }
    let mut all = Vec::new();
    names(dir.parent().unwrap(), &mut all);
    for name in all {
        assert!(!name.ends_with(".tmp"), "temporary left behind: {name}");
    }
}

/// The same files, byte for byte (named, so a failure says which).
fn assert_same_files(got: &Path, want: &Path) {
    let (got, want) = (files(got), files(want));
    assert_eq!(
        got.keys().collect::<Vec<_>>(),
        want.keys().collect::<Vec<_>>(),
        "not the same files"
    );
    for (name, bytes) in &want {
        assert!(
            &got[name] == bytes,
            "{name} differs from the uninterrupted run's"
        );
    }
}

#[test]
fn train_killed_and_resumed_leaves_the_records_and_checkpoint_of_an_uninterrupted_run() {
    let root = tmpdir("train");
    let steps = 50;
    let steps_arg = steps.to_string();
    let args = [
        "train",
        "--preset",
        "tiny",
        "--episodes",
        "2",
        "--save-every",
        "7",
        "--picture-every",
        "3",
        "--steps",
        &steps_arg,
    ];
    let (a, b) = (root.join("a"), root.join("b"));
    run_through(&args, &a);
    let kills = run_with_kills(
        &args,
        &b,
        "checkpoint/optimizer.safetensors",
        5,
        progress(&a),
        Duration::from_millis(150),
        7,
    );
    eprintln!("{kills:?}");
    assert!(kills.killed >= 3 && kills.resumed >= 1, "{kills:?}");
    let got = records(&b);
    let steps_seen: Vec<u64> = got.iter().map(|r| r["step"].as_u64().unwrap()).collect();
    assert_eq!(
        steps_seen,
        (1..=steps).collect::<Vec<_>>(),
        "each step once, in order"
    );
    assert_eq!(got, records(&a), "the records of the uninterrupted run");
    assert_same_files(&b.join("checkpoint"), &a.join("checkpoint"));
    assert!(
        std::fs::read(b.join("losses.svg")).unwrap()
            == std::fs::read(a.join("losses.svg")).unwrap(),
        "losses.svg differs from the uninterrupted run's"
    );
    // Every open-loop picture (at checkpoints and between them), as the uninterrupted run drew it.
    let pictures = |d: &Path| -> BTreeMap<String, Vec<u8>> {
        files(d)
            .into_iter()
            .filter(|(name, _)| name.starts_with("open_loop_"))
            .collect()
    };
    let want = pictures(&a);
    assert_eq!(want.len() as u64, steps / 3 + steps / 7 - steps / 21 + 1);
    assert!(
        pictures(&b) == want,
        "the pictures differ from the uninterrupted run's"
    );
    assert_no_temporaries(&b);
    let _ = std::fs::remove_dir_all(&root);
}

#[test]
fn dreamer_killed_and_resumed_leaves_the_records_checkpoint_and_episodes_of_an_uninterrupted_run() {
    let root = tmpdir("dreamer");
    let args = [
        "dreamer",
        "--preset",
        "tiny",
        "--prefill",
        "2",
        "--train-steps",
        "5",
        "--episode-len",
        "30",
        "--behaviour-warmup",
        "1",
        "--env-steps",
        "680",
    ];
    let (a, b) = (root.join("a"), root.join("b"));
    run_through(&args, &a);
    let kills = run_with_kills(
        &args,
        &b,
        "checkpoint/optimizer.safetensors",
        5,
        progress(&a),
        Duration::from_millis(600),
        11,
    );
    eprintln!("{kills:?}");
    assert!(kills.killed >= 3 && kills.resumed >= 1, "{kills:?}");
    let got = records(&b);
    // Each record once: train records by world-model step, collect and eval records by the
    // environment steps they were written at.
    let mut seen = std::collections::BTreeSet::new();
    for r in &got {
        let key = match r["kind"].as_str().unwrap() {
            "train" => ("train", r["world_model"]["step"].as_u64().unwrap()),
            kind => (kind, r["env_steps"].as_u64().unwrap()),
        };
        assert!(seen.insert(key), "{key:?} twice in metrics.jsonl");
    }
    assert_eq!(got, records(&a), "the records of the uninterrupted run");
    assert_same_files(&b.join("checkpoint"), &a.join("checkpoint"));
    assert_same_files(&b.join("episodes"), &a.join("episodes"));
    // The loop's counters agree with the episodes on disk.
    let state: serde_json::Value =
        serde_json::from_slice(&std::fs::read(b.join("dreamer_state.json")).unwrap()).unwrap();
    let eps = files(&b.join("episodes"));
    assert_eq!(state["episodes"].as_u64().unwrap() as usize, eps.len());
    let steps: usize = eps
        .keys()
        .map(|name| {
            rssm::data::load_npz(b.join("episodes").join(name))
                .unwrap()
                .num_transitions()
        })
        .sum();
    assert_eq!(state["env_steps"].as_u64().unwrap() as usize, steps);
    assert!(
        std::fs::read(b.join("dreamer_state.json")).unwrap()
            == std::fs::read(a.join("dreamer_state.json")).unwrap(),
        "dreamer_state.json differs from the uninterrupted run's"
    );
    assert_no_temporaries(&b);
    let _ = std::fs::remove_dir_all(&root);
}
