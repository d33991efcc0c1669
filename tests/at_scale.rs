//! The whole world model at the sizes users train at: the fast path (the fused RSSM, the
//! default on GPUs) against the reference path (the per-op RSSM), at the specification's
//! widths.
//!
//! - Past 65,536 output positions in a convolution layer (its bias gradient is a column sum
//!   over N*H*W rows), with the fused RSSM's steps in chunks on a driver that ends long loops.
//! - Ten training steps at B16 T50 on fixed data: the same losses to 1e-3 at every step.
//!   Ignored in the debug suite (minutes on a CPU driver); `.ci/run` runs it in release.

mod common;

use common::{gpu, rand_vec, rel_err};
use rssm::gpu::{Gpu, Tuning};
use rssm::model::{Config, DeviceBatch, RssmPath, Trainer, WorldModel};
use rssm::tensor::{Tape, Tensor};

/// The specification's model (`dreamer` preset) with a one-dimensional action.
fn spec(batch: usize, seq_len: usize) -> Config {
    Config {
        action_dim: 1,
        free_nats: 0.0,
        batch,
        seq_len,
        ..Config::dreamer()
    }
}

/// Observations that look like frames (smooth, in [-0.5, 0.5]), actions, rewards, continues.
fn batch(g: &Gpu, cfg: &Config, seed: u64) -> DeviceBatch {
    let (b, t, a) = (cfg.batch, cfg.seq_len, cfg.action_dim);
    let n = b * t;
    let phase = rand_vec(n * 3, seed, 0.0, std::f32::consts::TAU);
    let mut obs = Vec::with_capacity(n * 3 * 64 * 64);
    for (i, ph) in phase.iter().enumerate() {
        for y in 0..64 {
            for x in 0..64 {
                let v = ((x as f32 * 0.11 + ph).sin() * (y as f32 * 0.07 - ph).cos()) * 0.4;
                obs.push(v + 0.05 * ((i % 3) as f32 - 1.0));
            }
        }
    }
    DeviceBatch {
        obs: Tensor::from_vec(g, &[b, t, 3, 64, 64], &obs).unwrap(),
        action: Tensor::from_vec(g, &[b, t, a], &rand_vec(n * a, seed + 1, -1.0, 1.0)).unwrap(),
        reward: Tensor::from_vec(g, &[b, t], &rand_vec(n, seed + 2, 0.0, 1.0)).unwrap(),
        cont: Tensor::full(g, &[b, t], 1.0).unwrap(),
        eps: Some(
            Tensor::from_vec(
                g,
                &[b, t, cfg.stoch],
                &rand_vec(n * cfg.stoch, seed + 3, -1.5, 1.5),
            )
            .unwrap(),
        ),
    }
}

/// The two paths.
const DEFAULT: RssmPath = RssmPath::Fused;
const REFERENCE: RssmPath = RssmPath::PerOp;

/// `g`'s device with the path's kernel choices.
fn on_path(g: &Gpu, path: RssmPath) -> Gpu {
    g.with_tuning(Tuning {
        path,
        ..*g.tuning()
    })
}

/// The loss and every parameter's gradient on one path.
fn loss_and_grads(
    g: &Gpu,
    cfg: &Config,
    b: &DeviceBatch,
    path: RssmPath,
) -> (f32, Vec<(String, Vec<f32>)>) {
    let g = &on_path(g, path);
    let m = WorldModel::new(g, cfg).unwrap();
    // Biases start at zero, which puts pre-activations fed only by dead channels on a ReLU
    // kink, where the last bit of a sum decides the derivative: paths that sum in different
    // orders then differ by whole terms (1e-3 of the decoder's first gradients at the `small`
    // preset). Biases off zero keep every comparison to the rounding of the sums.
    for (i, name) in m.params.names().iter().enumerate() {
        if name.ends_with(".bias") {
            let t = &m.params.tensors()[i];
            g.write(t.buf(), &rand_vec(t.len(), 50 + i as u64, 0.05, 0.2))
                .unwrap();
        }
    }
    let tape = Tape::new(g);
    let p = m.params.bind(&tape);
    let out = m.loss(&tape, &p, b, 0).unwrap();
    let loss = tape.value(out.loss).to_scalar().unwrap();
    let vars = p.vars().to_vec();
    let grads = tape.backward(out.loss).unwrap();
    let gs = m
        .params
        .names()
        .iter()
        .zip(&vars)
        .map(|(n, v)| (n.clone(), grads.get(*v).unwrap().to_vec().unwrap()))
        .collect();
    (loss, gs)
}

/// B2 T35: 70 images, so the encoder's first layer has 70 x 31 x 31 = 67,270 output positions
/// (past 65,536) and the decoder's third 70 x 30 x 30 = 63,000 (below); at B2 T37 the decoder's
/// third has 66,600. Both batches, every gradient against the reference path.
#[test]
fn world_model_matches_reference_past_65536_positions() {
    let g = gpu();
    for t in [35, 37] {
        let cfg = spec(2, t);
        let b = batch(&g, &cfg, 5);
        assert_paths_agree_on(&g, &cfg, &b, 1e-4);
    }
}

/// The loss and every gradient of the two paths on one batch, to `tol` relative to each
/// gradient's largest value.
fn assert_paths_agree(cfg: &Config, tol: f64) {
    let g = gpu();
    let b = batch(&g, cfg, 5);
    assert_paths_agree_on(&g, cfg, &b, tol);
}

fn assert_paths_agree_on(g: &Gpu, cfg: &Config, b: &DeviceBatch, tol: f64) {
    let (l0, g0) = loss_and_grads(g, cfg, b, DEFAULT);
    let (l1, g1) = loss_and_grads(g, cfg, b, REFERENCE);
    let tag = format!("B{} T{}", cfg.batch, cfg.seq_len);
    assert!(
        ((l0 - l1) / l1).abs() <= 1e-5,
        "{tag}: loss {l0} on the default path, {l1} on the reference path"
    );
    // Every parameter's difference, the largest first, so a failure shows the whole picture.
    let mut errs: Vec<(f64, &str)> = g0
        .iter()
        .zip(&g1)
        .map(|((name, a), (_, r))| (rel_err(a, r), name.as_str()))
        .collect();
    errs.sort_by(|a, b| b.0.total_cmp(&a.0));
    let worst: Vec<String> = errs
        .iter()
        .take(6)
        .map(|(e, name)| format!("{name} {e:.2e}"))
        .collect();
    eprintln!("{tag}: largest gradient differences: {}", worst.join(", "));
    for (e, name) in &errs {
        assert!(*e <= tol, "{tag}: gradient of {name} differs by {e:.2e}");
    }
}

/// The `small` preset (what `rssm train` and `rssm dreamer` run on a CPU) at its own batch,
/// B8 T16, and at B4 T16: the default path against the reference path.
#[test]
fn small_preset_matches_reference_path() {
    for b in [8, 4] {
        let cfg = Config {
            action_dim: 1,
            free_nats: 0.0,
            batch: b,
            ..Config::small()
        };
        assert_paths_agree(&cfg, 1e-4);
    }
}

/// The specification's model at B16 T50 (the fused RSSM in many chunks of steps on a CPU
/// driver, every conv layer past 65,536 positions): every gradient against the reference path,
/// to 1e-3. Most agree to 1e-4 (800 images summed in different orders), but at this size a ReLU
/// kink is all but certain: among the decoder's 2.6 million first-layer outputs a few sit
/// within rounding of zero, and where the two paths' last bits put one on different sides its
/// whole term enters one weight gradient and not the other (4.2e-4 seen in
/// `decoder.deconv0.weight` on this batch between the per-op path with and without the subgroup
/// kernels, with the states and decoded images equal to 6e-7; 5e-5 on another batch). The bugs
/// this test is for (stale steps past a driver's loop limit, a race) gave errors orders of
/// magnitude larger.
#[test]
#[ignore = "minutes on a CPU driver: .ci/run runs it in release"]
fn spec_model_b16_t50_matches_reference_path() {
    assert_paths_agree(&spec(16, 50), 1e-3);
}

/// Ten world-model updates at the specification's sizes (B16 T50), from the same initial
/// weights on the same batch: the losses of the default and the reference path agree to 1e-3
/// at every step (the paths sum in different orders; the rounding compounds over the steps).
#[test]
#[ignore = "minutes on a CPU driver: .ci/run runs it in release"]
fn training_at_spec_sizes_matches_reference_path() {
    let g = gpu();
    let cfg = Config {
        lr: 6e-4,
        ..spec(16, 50)
    };
    let b = batch(&g, &cfg, 9);
    let mut runs = vec![];
    for path in [DEFAULT, REFERENCE] {
        let g = on_path(&g, path);
        let mut tr = Trainer::new(&g, &cfg).unwrap();
        assert_eq!(
            tr.model.observe_path(&g, cfg.batch, cfg.seq_len).0,
            path,
            "the path asked for runs"
        );
        let losses: Vec<[f32; 2]> = (0..10)
            .map(|_| {
                let m = tr.train_step(&b).unwrap();
                [m.loss, m.kl]
            })
            .collect();
        eprintln!("{path:?}: [loss, kl] per step {losses:?}");
        runs.push(losses);
    }
    for (step, (a, r)) in runs[0].iter().zip(&runs[1]).enumerate() {
        for (k, what) in ["loss", "KL"].iter().enumerate() {
            let e = ((a[k] - r[k]) / r[k].abs().max(1e-3)).abs();
            assert!(
                e <= 1e-3,
                "step {step}: {what} {} on the default path, {} on the reference path",
                a[k],
                r[k]
            );
        }
    }
}
