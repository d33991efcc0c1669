//! The fused imagination (`ops::imagine`, `imagine_*` in `shaders/rssm.wgsl`) against the
//! per-op rollout it replaces: the same features, actions, rewards, returns, losses and actor
//! and critic gradients at awkward sizes (start states not a multiple of the tile, H = 1 and 15,
//! action sizes 1 and 6, widths not multiples of 4); the actor's mode and given actions; and
//! the behaviour update's dispatch count, which must not grow with H. The actor's gradient
//! through the fused rollout against finite differences is in `tests/agent.rs`.

mod common;

use common::{gpu, rand_vec, rel_err};
use rssm::agent::{Behaviour, BehaviourConfig, Starts};
use rssm::gpu::{Gpu, Tiling, Tuning};
use rssm::model::{Config, RssmPath, WorldModel};
use rssm::ops::imagine::{imagine_plan, ImagineDims};
use rssm::tensor::{Tape, Tensor};

/// Widths that are multiples of neither 4 nor 8.
fn awkward(action_dim: usize) -> Config {
    Config {
        deter: 13,
        stoch: 5,
        hidden: 11,
        depth: 1,
        units: 7,
        action_dim,
        ..Config::tiny()
    }
}

/// World model, actor and critic with non-zero biases (zero biases would leave parts of the
/// kernels untested) and random start states.
fn setup(g: &Gpu, cfg: &Config, horizon: usize, n: usize) -> (WorldModel, Behaviour, Starts) {
    let wm = WorldModel::new(g, cfg).unwrap();
    let b = Behaviour::new(
        g,
        cfg,
        BehaviourConfig {
            horizon,
            ..BehaviourConfig::default()
        },
    )
    .unwrap();
    let stores = [&wm.params, b.actor.params(), b.critic.params()];
    for (k, store) in stores.into_iter().enumerate() {
        for (i, t) in store.tensors().iter().enumerate() {
            if store.names()[i].ends_with(".bias") {
                let v = rand_vec(t.len(), 90 + 17 * k as u64 + i as u64, -0.3, 0.3);
                g.write(t.buf(), &v).unwrap();
            }
        }
    }
    let h = Tensor::from_vec(g, &[n, cfg.deter], &rand_vec(n * cfg.deter, 31, -0.9, 0.9)).unwrap();
    let s = Tensor::from_vec(g, &[n, cfg.stoch], &rand_vec(n * cfg.stoch, 32, -1.5, 1.5)).unwrap();
    (wm, b, Starts::new(&h, &s).unwrap())
}

struct Run {
    values: Vec<(&'static str, Vec<f32>)>,
    grads: Vec<(String, Vec<f32>)>,
}

/// The actor's objective on one path, its gradient for every actor parameter, and the critic's
/// objective on the imagined features with its gradient.
fn run(wm: &mut WorldModel, b: &Behaviour, starts: &Starts, path: RssmPath) -> Run {
    let g = with_path(starts.h.gpu(), path);
    let t = Tape::new(&g);
    let obj = b.actor_objective(&t, wm, starts, 5, None).unwrap();
    assert_eq!(
        obj.imagined.path, path,
        "the rollout took the path asked for"
    );
    let im = &obj.imagined;
    let v = |x| t.value(x).to_vec().unwrap();
    let mut values = vec![
        ("features", v(im.feat_all)),
        ("actions", v(im.actions)),
        ("rewards", v(im.rewards)),
        ("continues", v(im.conts)),
        ("values", v(obj.values)),
        ("returns", v(obj.returns)),
        ("actor loss", v(obj.loss)),
        ("first mean", im.first_mean.to_vec().unwrap()),
    ];
    let (h, n) = (b.cfg.horizon, starts.len());
    let feat_all = t.value(im.feat_all);
    let feats = Tensor::empty(&g, &[h * n, feat_all.last_dim()]).unwrap();
    g.copy(feat_all.buf(), 0, feats.buf(), 0, feats.len());
    let (returns, weights) = (t.value(obj.returns), obj.weights.clone());
    let vars = obj.actor_params.vars().to_vec();
    let grads = t.backward(obj.loss).unwrap();
    let mut out: Vec<(String, Vec<f32>)> = b
        .actor
        .params()
        .names()
        .iter()
        .zip(&vars)
        .map(|(name, var)| (name.clone(), grads.get(*var).unwrap().to_vec().unwrap()))
        .collect();
    let tc = Tape::new(&g);
    let c = b.critic_objective(&tc, &feats, &returns, &weights).unwrap();
    values.push(("critic loss", tc.value(c.loss).to_vec().unwrap()));
    let cvars = c.critic_params.vars().to_vec();
    let cgrads = tc.backward(c.loss).unwrap();
    for (name, var) in b.critic.params().names().iter().zip(&cvars) {
        out.push((name.clone(), cgrads.get(*var).unwrap().to_vec().unwrap()));
    }
    Run { values, grads: out }
}

/// `g`'s device with the RSSM path `path`.
fn with_path(g: &Gpu, path: RssmPath) -> Gpu {
    g.with_tuning(Tuning {
        path,
        ..*g.tuning()
    })
}

/// The shared device with the fused kernels' GPU tiling (256 threads, tiles of about N/32
/// rows) or the CPU drivers' (64 threads, large tiles), whatever the test device is.
fn tiled(gpu_tiling: bool) -> Gpu {
    common::gpu_with(|t| t.tiling = if gpu_tiling { Tiling::Gpu } else { Tiling::Cpu })
}

/// The fused imagination's sizes for `n` starts and `horizon` steps of `cfg`'s model.
fn dims_of(cfg: &Config, horizon: usize, n: usize) -> ImagineDims {
    ImagineDims {
        starts: n,
        horizon,
        stoch: cfg.stoch,
        action: cfg.action_dim,
        deter: cfg.deter,
        hidden: cfg.hidden,
        embed: cfg.embed(),
        units: cfg.units,
    }
}

fn compare(cfg: Config, horizon: usize, n: usize) {
    compare_on(&gpu(), cfg, horizon, n)
}

fn compare_on(g: &Gpu, cfg: Config, horizon: usize, n: usize) {
    let g = g.clone();
    let dims = dims_of(&cfg, horizon, n);
    let plan = imagine_plan(&g, &dims).expect("the fused imagination runs on the test device");
    assert!(
        !n.is_multiple_of(plan.rows_fwd) && !n.is_multiple_of(plan.rows_bwd),
        "pick N that leaves partial tiles: {n} rows, plan {plan:?}"
    );
    let (mut wm, b, starts) = setup(&g, &cfg, horizon, n);
    let fused = run(&mut wm, &b, &starts, RssmPath::Fused);
    let reference = run(&mut wm, &b, &starts, RssmPath::PerOp);
    let tag = format!("H={horizon} N={n} A={}", cfg.action_dim);
    for ((name, got), (_, want)) in fused.values.iter().zip(&reference.values) {
        let e = rel_err(got, want);
        assert!(e <= 1e-5, "{tag}: {name} differs by {e:.2e} (relative)");
    }
    for ((name, got), (_, want)) in fused.grads.iter().zip(&reference.grads) {
        let e = rel_err(got, want);
        assert!(
            e <= 1e-5,
            "{tag}: gradient of {name} differs by {e:.2e} (relative)"
        );
        assert!(
            want.iter().any(|x| x.abs() > 1e-6),
            "{tag}: gradient of {name} is all but zero, the comparison would prove nothing"
        );
    }
}

#[test]
fn fused_imagination_matches_per_op_single_step() {
    compare(awkward(1), 1, 13);
}

#[test]
fn fused_imagination_matches_per_op_fifteen_steps_action_6() {
    compare(awkward(6), 15, 11);
}

/// The comparison under the tiling chosen for GPUs or for CPU drivers (see [`tiled`]).
fn compare_tiled(cfg: Config, horizon: usize, n: usize, gpu_tiling: bool) {
    compare_on(&tiled(gpu_tiling), cfg, horizon, n)
}

#[test]
fn fused_imagination_matches_per_op_gpu_tiling() {
    compare_tiled(awkward(2), 4, 37, true);
}

/// Rows per tile named by the tuning (`tile_rows`, which `rssm tune` measures), under both
/// tilings: the plan takes them, and the fused rollout still matches the per-op one (N = 13
/// leaves a partial last tile for each size).
#[test]
fn fused_imagination_matches_per_op_with_the_tunings_tile_rows() {
    for gpu_tiling in [false, true] {
        for rows in [2u32, 3, 8] {
            let g = common::gpu_with(|t| {
                t.tiling = if gpu_tiling { Tiling::Gpu } else { Tiling::Cpu };
                t.tile_rows = Some(rows);
            });
            let plan = imagine_plan(&g, &dims_of(&awkward(2), 3, 13)).unwrap();
            assert_eq!(
                (plan.rows_fwd, plan.rows_bwd),
                (rows as usize, rows as usize),
                "gpu tiling {gpu_tiling}"
            );
            compare_on(&g, awkward(2), 3, 13);
        }
    }
}

/// The specification's widths (deter 200, stoch 30, hidden 200, the actor's 400 units): every
/// width above the CPU tiling's 64 threads, the actor's above the GPU tiling's 256.
fn spec_widths() -> Config {
    Config {
        depth: 1,
        action_dim: 1,
        ..Config::dreamer()
    }
}

// At the sizes users imagine at (H = 15). On a driver that ends long loops (lavapipe: 65,535
// iterations per invocation, `Gpu::loop_limit`), one step of the actor and the dynamics at these
// widths is thousands of iterations: the horizon runs in chunks (the plan's steps_fwd /
// steps_bwd < H) whose state crosses between dispatches.

/// Spec widths, CPU tiling: 6-row tiles with a partial last one (N = 65), H = 15.
#[test]
fn fused_imagination_matches_per_op_spec_widths() {
    compare_tiled(spec_widths(), 15, 65, false);
}

/// Spec widths, GPU tiling: N = 67 gives tiles of 3 rows (N/32), the last one partial.
#[test]
fn fused_imagination_matches_per_op_spec_widths_gpu_tiling() {
    compare_tiled(spec_widths(), 15, 67, true);
}

/// The `small` preset's widths (deter 100, stoch 16, hidden 100, units 100) at its imagination
/// batch (B8 T16 = 128 starts; 131 for partial tiles), both tilings.
#[test]
fn fused_imagination_matches_per_op_small_preset() {
    let small = Config {
        depth: 1,
        action_dim: 1,
        ..Config::small()
    };
    compare_tiled(small.clone(), 15, 131, false);
    compare_tiled(small, 15, 131, true);
}

/// The actor's mode (no noise) and given actions, with the prior's mean: what dreams use.
#[test]
fn dreams_match_per_op() {
    dreams_compare(awkward(3), 6, 5);
}

/// Dreams at the spec's widths, 15 steps from 7 starts, both tilings: the batch-major features
/// a chunk of steps starts from where the driver limits loops (CPU tiling: 2 steps a dispatch
/// on lavapipe).
#[test]
fn dreams_match_per_op_spec_widths() {
    for gpu_tiling in [false, true] {
        dreams_compare_on(&tiled(gpu_tiling), spec_widths(), 15, 7);
    }
}

fn dreams_compare(cfg: Config, steps: usize, n: usize) {
    dreams_compare_on(&gpu(), cfg, steps, n)
}

/// Dreams on the fused and on the per-op path (a model of the same weights on each) agree.
fn dreams_compare_on(g: &Gpu, cfg: Config, steps: usize, n: usize) {
    use rssm::agent::{dream, DreamActions};
    let a = cfg.action_dim;
    let actions = rand_vec(n * steps * a, 7, -1.0, 1.0);
    for given in [false, true] {
        let mut out = vec![];
        for path in [RssmPath::Fused, RssmPath::PerOp] {
            let g = with_path(g, path);
            let (wm, b, starts) = setup(&g, &cfg, steps, n);
            let actions = Tensor::from_vec(&g, &[n, steps, a], &actions).unwrap();
            let source = if given {
                DreamActions::Given(&actions)
            } else {
                DreamActions::Actor(&b.actor)
            };
            let d = dream(&wm, &starts.h, &starts.s, source, steps).unwrap();
            assert_eq!(d.shape(), [n, steps, 3, 64, 64]);
            out.push(d.to_vec().unwrap());
        }
        let e = rel_err(&out[0], &out[1]);
        assert!(e <= 1e-5, "dreams differ by {e:.2e} (relative)");
    }
}

/// Dispatches of one steady behaviour update at H = 5 and H = 15: the same (the fused rollout
/// does not grow with H), at most 100 (97: `ops::mlp` fuses the heads' activation gradients
/// into their matmuls; 116 before), and neither a buffer nor a bind group created. The per-op
/// rollout's counts are printed for the README's table.
#[test]
fn behaviour_update_dispatches_do_not_grow_with_h() {
    // A device of its own: the counters must not see the other tests' work.
    let g = Gpu::new(&rssm::gpu::GpuOptions::default()).unwrap();
    let mut counts = vec![];
    let mut per_op = vec![];
    for horizon in [5, 15] {
        // Widths that are multiples of 4: on CPU drivers `linear` pads other widths with extra
        // copies (see ops::matmul), which is not what this test counts.
        let cfg = Config {
            deter: 12,
            stoch: 4,
            units: 8,
            hidden: 8,
            ..Config::tiny()
        };
        let (wm, mut b, starts) = setup(&with_path(&g, RssmPath::PerOp), &cfg, horizon, 10);
        for _ in 0..2 {
            b.update(&wm, &starts).unwrap();
        }
        let s0 = g.stats();
        b.update(&wm, &starts).unwrap();
        per_op.push(g.stats().dispatches - s0.dispatches);
        // Asked for: with gradients, CPU drivers choose the per-op rollout by default.
        let (wm, mut b, starts) = setup(&with_path(&g, RssmPath::Fused), &cfg, horizon, 10);
        for _ in 0..12 {
            b.update(&wm, &starts).unwrap();
        }
        let s0 = g.stats();
        b.update(&wm, &starts).unwrap();
        let s1 = g.stats();
        assert_eq!(
            s1.buffers_created, s0.buffers_created,
            "H={horizon}: buffers"
        );
        assert_eq!(
            s1.bind_groups_created, s0.bind_groups_created,
            "H={horizon}: bind groups"
        );
        counts.push(s1.dispatches - s0.dispatches);
    }
    eprintln!("behaviour update dispatches at H = 5, 15: fused {counts:?}, per-op {per_op:?}");
    assert_eq!(
        counts[0], counts[1],
        "dispatches per behaviour update: {counts:?}"
    );
    assert!(
        counts[1] <= 100,
        "dispatches per behaviour update: {}",
        counts[1]
    );
}

/// A dream (`rssm imagine`, `WorldModel.imagine` in Python) is a few dispatches whatever its
/// length: the rollout in one, then one batched decode.
#[test]
fn dream_dispatches_do_not_grow_with_its_length() {
    use rssm::agent::{dream, DreamActions};
    let g = Gpu::new(&rssm::gpu::GpuOptions::default()).unwrap();
    let cfg = awkward(2);
    // Asked for: CPU drivers choose the per-op rollout by default.
    let (wm, b, starts) = setup(&with_path(&g, RssmPath::Fused), &cfg, 1, 4);
    let mut counts = vec![];
    for steps in [10, 40] {
        for _ in 0..2 {
            dream(
                &wm,
                &starts.h,
                &starts.s,
                DreamActions::Actor(&b.actor),
                steps,
            )
            .unwrap();
        }
        let s0 = g.stats();
        dream(
            &wm,
            &starts.h,
            &starts.s,
            DreamActions::Actor(&b.actor),
            steps,
        )
        .unwrap();
        counts.push(g.stats().dispatches - s0.dispatches);
    }
    eprintln!("dream dispatches at 10 and 40 steps: {counts:?}");
    assert_eq!(counts[0], counts[1], "{counts:?}");
    assert!(counts[1] <= 40, "{counts:?}");
}

/// The rules: fused on GPUs; per-op on CPU drivers, with or without a backward (faster
/// there); and per-op where the fused kernels do not fit, whatever the tuning.
#[test]
fn the_rules_take_the_per_op_rollout_on_cpu_drivers() {
    let g = gpu();
    let wm = WorldModel::new(&g, &awkward(1)).unwrap();
    let mut got = vec![];
    for cpu in [true, false] {
        let mut report = g.report().clone();
        report.device_type = if cpu { "Cpu" } else { "DiscreteGpu" }.into();
        report.name = if cpu { "a CPU driver" } else { "a GPU" }.into();
        let gd = g.with_tuning(Tuning::rules(&report));
        for with_grad in [false, true] {
            got.push(wm.imagine_path(&gd, 9, 3, with_grad).0);
        }
    }
    use RssmPath::{Fused, PerOp};
    assert_eq!(got, vec![PerOp, PerOp, Fused, Fused]);
}

/// The fused imagination just below and just above its steps per dispatch (a driver's loop
/// limit, `Gpu::loop_limit`) at the spec's widths with the CPU tiling: H equal to the
/// forward's and the backward's chunk, one more, and two backward chunks and one step.
#[test]
fn thresholds_steps_per_dispatch() {
    let cfg = spec_widths();
    let n = 13;
    let dims = |h: usize| dims_of(&cfg, h, n);
    let plan = imagine_plan(&tiled(false), &dims(64)).unwrap();
    let (sf, sb) = (plan.steps_fwd, plan.steps_bwd);
    let mut steps = vec![sf, sf + 1, sb, sb + 1, 2 * sb + 1];
    steps.sort_unstable();
    steps.dedup();
    eprintln!("spec widths, CPU tiling, N{n}: {plan:?}; H = {steps:?}");
    for h in steps {
        compare_tiled(cfg.clone(), h, n, false);
    }
}
