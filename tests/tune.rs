//! Tuning by measurement (`rssm::tune`, `rssm tune`): the cache round-trips and is keyed by
//! device, version and shapes; a corrupt or stale cache is ignored with a note; `RSSM_TUNE=off`
//! gives the device's rules and forced choices win over measured ones; and every candidate the
//! tuner may choose trains as the rules do (the same losses to 1e-5), so a tuned run computes
//! what an untuned one does. Tiny preset, short budgets.

mod common;

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use common::{gpu, rand_vec, rel_err};
use rssm::agent::{Behaviour, BehaviourConfig, Starts};
use rssm::gpu::{Gpu, RssmPath, Tuning, TuningOverrides};
use rssm::model::{Config, DeviceBatch, Trainer};
use rssm::tensor::Tensor;
use rssm::tune::{
    tuned, Cache, CacheKey, Decision, DecisionResult, Entry, Shapes, Source, TuneMode, TuneOptions,
    TuneSettings, CACHE_FILE,
};

/// The imagination horizon of these tests.
const H: usize = 3;

fn tiny() -> Config {
    Config::tiny()
}

fn options(budget_s: u64) -> TuneOptions {
    TuneOptions {
        budget: Duration::from_secs(budget_s),
        reps: 2,
    }
}

fn no_overrides() -> TuningOverrides {
    TuningOverrides::default()
}

/// A cache entry for `cfg` on `g` choosing `choices` (decision name, value), as `rssm tune`
/// would write it.
fn entry(g: &Gpu, cfg: &Config, horizon: usize, choices: &[(&str, &str)]) -> Entry {
    Entry {
        key: CacheKey::new(g, &Shapes::of(cfg, horizon)),
        measured_unix: 0,
        budget_s: 1.0,
        spent_s: 1.0,
        reps: 1,
        timing: "wall-clock".into(),
        tuning: String::new(),
        decisions: choices
            .iter()
            .map(|(d, c)| DecisionResult {
                decision: d.to_string(),
                choice: c.to_string(),
                rule: String::new(),
                measured: true,
                candidates: vec![],
                note: None,
            })
            .collect(),
    }
}

fn settings(
    mode: TuneMode,
    forced: &TuningOverrides,
    cache: &Cache,
    budget_s: u64,
) -> TuneSettings {
    TuneSettings {
        mode,
        forced: *forced,
        cache: cache.clone(),
        options: options(budget_s),
    }
}

fn auto(g: &Gpu, cfg: &Config, cache: &Cache, forced: &TuningOverrides) -> rssm::tune::Tuned {
    let s = settings(TuneMode::Auto, forced, cache, 1);
    tuned(g, cfg, H, &s, &mut |_| {}).unwrap()
}

#[test]
fn the_cache_round_trips_and_is_keyed() {
    let g = gpu();
    let dir = tempfile::tempdir().unwrap();
    let cache = Cache::in_dir(dir.path());
    let cfg = tiny();
    let mut lines = 0;
    let s = settings(TuneMode::Force, &no_overrides(), &cache, 10);
    let t = tuned(&g, &cfg, H, &s, &mut |_| lines += 1).unwrap();
    assert!(lines > 0, "no progress reported");
    let Source::Measured(measured) = &t.source else {
        panic!("force measures: {:?}", t.source)
    };
    assert!(measured.measured_count() >= 1, "{measured:?}");
    assert!(
        measured.spent_s < 10.0 + 5.0,
        "past the budget: {measured:?}"
    );
    assert_eq!(measured.key.version, env!("CARGO_PKG_VERSION"));
    // Reused as it was written.
    let again = auto(&g, &cfg, &cache, &no_overrides());
    let Source::Cached(cached) = &again.source else {
        panic!("auto reuses the cache: {:?}", again.source)
    };
    assert_eq!(cached, measured);
    assert_eq!(again.gpu.tuning(), t.gpu.tuning());
    assert!(again.gpu.same_device(&g));
    // Another adapter's key, or another shape, finds nothing: the device's rules.
    let mut key = CacheKey::new(&g, &Shapes::of(&cfg, H));
    assert!(cache.lookup(&key).entry.is_some());
    key.adapter = "another GPU".into();
    assert!(cache.lookup(&key).entry.is_none());
    let other = Config {
        batch: 3,
        ..cfg.clone()
    };
    let t2 = auto(&g, &other, &cache, &no_overrides());
    assert!(matches!(t2.source, Source::Rules), "{:?}", t2.source);
    assert_eq!(t2.gpu.tuning(), g.tuning());
    // ... and is measured on its own (force), kept beside the first.
    let s = settings(TuneMode::Force, &no_overrides(), &cache, 1);
    let t3 = tuned(&g, &other, H, &s, &mut |_| {}).unwrap();
    assert!(matches!(t3.source, Source::Measured(_)));
    let (entries, notes) = cache.entries();
    assert!(notes.is_empty(), "{notes:?}");
    assert_eq!(entries.len(), 2);
    assert!(matches!(
        auto(&g, &cfg, &cache, &no_overrides()).source,
        Source::Cached(_)
    ));
}

#[test]
fn a_corrupt_or_stale_cache_is_ignored_with_a_note() {
    let g = gpu();
    let dir = tempfile::tempdir().unwrap();
    let cache = Cache::in_dir(dir.path());
    let cfg = tiny();
    let file = dir.path().join(CACHE_FILE);
    std::fs::write(&file, "{ not json").unwrap();
    let t = auto(&g, &cfg, &cache, &no_overrides());
    assert!(matches!(t.source, Source::Rules));
    assert_eq!(t.gpu.tuning(), g.tuning());
    assert!(
        t.notes.iter().any(|n| n.contains("unreadable")),
        "{:?}",
        t.notes
    );
    // Writing replaces it.
    cache
        .store(entry(&g, &cfg, H, &[("conv_block", "conv_block=8")]))
        .unwrap();
    let t = auto(&g, &cfg, &cache, &no_overrides());
    assert!(matches!(t.source, Source::Cached(_)), "{:?}", t.notes);
    assert_eq!(t.gpu.tuning().conv_block, 8);
    // An entry that does not parse costs only itself.
    let mut doc: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&file).unwrap()).unwrap();
    doc["entries"]
        .as_array_mut()
        .unwrap()
        .insert(0, serde_json::json!({"adapter": 3}));
    std::fs::write(&file, doc.to_string()).unwrap();
    let t = auto(&g, &cfg, &cache, &no_overrides());
    assert_eq!(t.gpu.tuning().conv_block, 8);
    assert!(
        t.notes.iter().any(|n| n.contains("entry 0 ignored")),
        "{:?}",
        t.notes
    );
    // Measured by another version of the engine: stale.
    let mut old = entry(&g, &cfg, H, &[("conv_block", "conv_block=8")]);
    old.key.version = "0.0.1".into();
    let stale_dir = tempfile::tempdir().unwrap();
    let stale = Cache::in_dir(stale_dir.path());
    stale.store(old).unwrap();
    let t = auto(&g, &cfg, &stale, &no_overrides());
    assert!(matches!(t.source, Source::Rules));
    assert_eq!(t.gpu.tuning(), g.tuning());
    assert!(t.notes.iter().any(|n| n.contains("stale")), "{:?}", t.notes);
    // A choice that does not parse: ignored too.
    let bad = Cache::in_dir(tempfile::tempdir().unwrap().keep());
    bad.store(entry(&g, &cfg, H, &[("conv_block", "conv_block=12")]))
        .unwrap();
    let t = auto(&g, &cfg, &bad, &no_overrides());
    assert!(matches!(t.source, Source::Rules));
    assert!(
        t.notes.iter().any(|n| n.contains("ignored")),
        "{:?}",
        t.notes
    );
}

#[test]
fn off_gives_the_rules_and_forced_choices_win() {
    let g = gpu();
    let dir = tempfile::tempdir().unwrap();
    let cache = Cache::in_dir(dir.path());
    let cfg = tiny();
    cache
        .store(entry(
            &g,
            &cfg,
            H,
            &[
                ("conv_block", "conv_block=8"),
                ("matmul", "lanes=off,wide_blocks=off"),
            ],
        ))
        .unwrap();
    let s = settings(TuneMode::Off, &no_overrides(), &cache, 1);
    let off = tuned(&g, &cfg, H, &s, &mut |_| panic!("off measures nothing")).unwrap();
    assert!(matches!(off.source, Source::Off));
    assert_eq!(off.gpu.tuning(), g.tuning());
    let on = auto(&g, &cfg, &cache, &no_overrides());
    assert_eq!(on.gpu.tuning().conv_block, 8);
    assert!(!on.gpu.tuning().wide_blocks);
    let forced = TuningOverrides::parse("conv_block=16").unwrap();
    let mine = auto(&g, &cfg, &cache, &forced);
    assert_eq!(mine.gpu.tuning().conv_block, 16);
    assert!(!mine.gpu.tuning().wide_blocks);
    // The rules themselves are today's: the device's, before any measurement.
    assert_eq!(
        Tuning::decide(g.report(), &TuningOverrides::from_env().unwrap()),
        *off.gpu.tuning()
    );
}

/// `rssm bench` takes the cached choices for a preset's shapes, and the rules with
/// `RSSM_TUNE=off` (or `--tune off`).
#[test]
fn bench_uses_the_cache_unless_off() {
    let g = gpu();
    let dir = tempfile::tempdir().unwrap();
    let cache = Cache::in_dir(dir.path());
    let cfg = Config {
        batch: 2,
        seq_len: 3,
        action_dim: 1,
        ..Config::tiny()
    };
    cache
        .store(entry(&g, &cfg, 2, &[("conv_block", "conv_block=8")]))
        .unwrap();
    let bench = |dir: &Path, tune: Option<&str>| -> serde_json::Value {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_rssm"));
        cmd.env("RSSM_CACHE_DIR", dir).env_remove("RSSM_TUNE");
        if let Some(t) = tune {
            cmd.env("RSSM_TUNE", t);
        }
        let out = cmd
            .args([
                "bench",
                "--json",
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
                "train",
            ])
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{stderr}");
        serde_json::from_slice(&out.stdout).unwrap()
    };
    let r = bench(dir.path(), None);
    let preset = r["tunings"][0]["tuning"].as_str().unwrap();
    assert!(preset.contains("conv_block=8"), "{r}");
    let r = bench(dir.path(), Some("off"));
    assert_eq!(r["tunings"][0]["tuning"], r["tuning"]);
    assert!(r["tuning"]
        .as_str()
        .unwrap()
        .contains(&format!("conv_block={}", g.tuning().conv_block)));
    // A corrupt cache: a note, and the run goes on with the rules.
    std::fs::write(dir.path().join(CACHE_FILE), "garbage").unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_rssm"))
        .env("RSSM_CACHE_DIR", dir.path())
        .env_remove("RSSM_TUNE")
        .args(["info"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(stderr.contains("note: tuning cache"), "{stderr}");
}

/// A batch of random frames, actions and rewards.
fn batch(g: &Gpu, cfg: &Config) -> DeviceBatch {
    let (b, t, a) = (cfg.batch, cfg.seq_len, cfg.action_dim);
    let n = b * t;
    DeviceBatch {
        obs: Tensor::from_vec(
            g,
            &[b, t, 3, 64, 64],
            &rand_vec(n * 3 * 64 * 64, 1, -0.5, 0.5),
        )
        .unwrap(),
        action: Tensor::from_vec(g, &[b, t, a], &rand_vec(n * a, 2, -1.0, 1.0)).unwrap(),
        reward: Tensor::from_vec(g, &[b, t], &rand_vec(n, 3, 0.0, 1.0)).unwrap(),
        cont: Tensor::full(g, &[b, t], 1.0).unwrap(),
        eps: None,
    }
}

/// Two world-model steps and a behaviour update on `g`'s kernels: the losses and the
/// behaviour's objectives.
fn losses(g: &Gpu, cfg: &Config) -> Vec<(String, f32)> {
    let mut tr = Trainer::new(g, cfg).unwrap();
    let b = batch(g, cfg);
    let mut out = vec![];
    for step in 0..2 {
        let m = tr.train_step(&b).unwrap();
        out.push((format!("loss {step}"), m.loss));
        out.push((format!("kl {step}"), m.kl));
    }
    let (h, s) = tr.last_posterior.clone().unwrap();
    let starts = Starts::new(&h, &s).unwrap();
    let mut beh = Behaviour::new(
        g,
        cfg,
        BehaviourConfig {
            horizon: H,
            ..BehaviourConfig::default()
        },
    )
    .unwrap();
    let m = beh.update(&tr.model, &starts).unwrap();
    out.push(("actor loss".into(), m.actor_loss));
    out.push(("critic loss".into(), m.critic_loss));
    out.push(("mean return".into(), m.mean_return));
    out
}

/// Every candidate of every decision (from the rules, and from the fused path for its tiling
/// and rows per tile), and all the non-rule choices at once, train as the rules do.
#[test]
fn every_candidate_trains_as_the_rules_do() {
    let g = gpu();
    // B = 4: rows per tile have candidates (1 and 2 rows beside the tiling's own).
    let cfg = Config { batch: 4, ..tiny() };
    let shapes = Shapes::of(&cfg, H);
    let rules = *g.tuning();
    let fused = *g
        .with_tuning(Tuning {
            path: RssmPath::Fused,
            ..rules
        })
        .tuning();
    assert!(
        Decision::TileRows
            .candidates(&g, &fused, &no_overrides(), &shapes)
            .len()
            >= 2
    );
    let mut variants: Vec<Tuning> = vec![];
    for d in Decision::ALL {
        for base in [rules, fused] {
            variants.extend(d.candidates(&g, &base, &no_overrides(), &shapes));
        }
    }
    // Every non-rule choice at once (the last candidate of each decision from the fused base).
    let mut all = fused;
    for d in Decision::ALL {
        if let Some(c) = d.candidates(&g, &all, &no_overrides(), &shapes).last() {
            all = *c;
        }
    }
    variants.push(all);
    variants.retain(|t| *t != rules);
    variants.sort_by_key(|t| t.to_string());
    variants.dedup();
    assert!(variants.len() >= 4, "{variants:?}");
    let want = losses(&g, &cfg);
    for t in variants {
        let got = losses(&g.with_tuning(t), &cfg);
        for ((name, a), (_, b)) in got.iter().zip(&want) {
            let e = rel_err(&[*a], &[*b]);
            assert!(
                e <= 1e-5,
                "{t}: {name} {a} against the rules' {b} ({e:.1e})"
            );
        }
    }
}
