//! The fused RSSM (`ops::rssm`, `shaders/rssm.wgsl`) against the per-op path it replaces: the
//! same states, statistics and gradients at awkward sizes (batch not a multiple of the tile,
//! T = 1 and T = 50, widths not multiples of 4 or 8, action sizes 1 and 6); its gradient
//! against finite differences; and the world-model step's dispatch count, which must not grow
//! with T.

mod common;

use common::{gpu, rand_vec, rel_err};
use rssm::gpu::{Gpu, Tiling, Tuning};
use rssm::model::{Config, DeviceBatch, RssmPath, Trainer, WorldModel};
use rssm::ops::rssm::{fused_plan, observe, ObserveDims, RssmParams};
use rssm::tensor::{gradcheck, GradcheckOptions, Tape, Tensor, Var};

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

/// A model whose biases are not zero (zero biases would leave parts of the backward untested).
fn model(g: &Gpu, cfg: &Config) -> WorldModel {
    let m = WorldModel::new(g, cfg).unwrap();
    for (i, t) in m.params.tensors().iter().enumerate() {
        if m.params.names()[i].ends_with(".bias") {
            g.write(t.buf(), &rand_vec(t.len(), 90 + i as u64, -0.3, 0.3))
                .unwrap();
        }
    }
    m
}

struct Run {
    outputs: Vec<Vec<f32>>,
    grads: Vec<(String, Vec<f32>)>,
}

/// `observe` on one path; the gradient of `sum(w * [deter | stoch | post | prior])` for every
/// RSSM parameter and the embedding.
fn run(m: &WorldModel, path: RssmPath, b: usize, t: usize, seed: u64) -> Run {
    let g = m.gpu().clone();
    let c = &m.cfg;
    let (e, a, s) = (c.embed(), c.action_dim, c.stoch);
    let tape = Tape::new(&g);
    let p = m.params.bind(&tape);
    let embed = tape
        .param(&Tensor::from_vec(&g, &[b, t, e], &rand_vec(b * t * e, seed, -1.0, 1.0)).unwrap());
    let action = tape.constant(
        &Tensor::from_vec(&g, &[b, t, a], &rand_vec(b * t * a, seed + 1, -1.0, 1.0)).unwrap(),
    );
    let eps = Tensor::from_vec(&g, &[b, t, s], &rand_vec(b * t * s, seed + 2, -1.5, 1.5)).unwrap();
    let o = match path {
        RssmPath::PerOp => m.observe_per_op(&tape, &p, embed, action, &eps).unwrap(),
        _ => {
            let o = observe(
                &tape,
                embed,
                &tape.value(action),
                &eps,
                m.rssm_vars(&p),
                c.min_std,
            )
            .unwrap();
            rssm::model::Observed {
                deter: o.deter,
                stoch: o.stoch,
                post_stats: o.post,
                prior_stats: o.prior,
                path: RssmPath::Fused,
            }
        }
    };
    let outs = [o.deter, o.stoch, o.post_stats, o.prior_stats];
    let outputs: Vec<Vec<f32>> = outs
        .iter()
        .map(|v| tape.value(*v).to_vec().unwrap())
        .collect();
    let cat = rssm::ops::concat_last(&tape, &outs).unwrap();
    let n = tape.value(cat).len();
    let w = Tensor::from_vec(&g, &tape.shape(cat), &rand_vec(n, seed + 3, -1.0, 1.0)).unwrap();
    let rv = m.rssm_vars(&p).to_array();
    let names = [
        "img_in.weight",
        "img_in.bias",
        "gru.weight_ih",
        "gru.weight_hh",
        "gru.bias_ih",
        "gru.bias_hh",
        "img_out.weight",
        "img_out.bias",
        "img_stats.weight",
        "img_stats.bias",
        "obs_out.weight",
        "obs_out.bias",
        "obs_stats.weight",
        "obs_stats.bias",
    ];
    let mut want: Vec<(String, Var)> = names
        .iter()
        .zip(rv)
        .map(|(n, v)| (n.to_string(), v))
        .collect();
    want.push(("embed".into(), embed));
    let grads = tape.backward_with(cat, w).unwrap();
    let grads = want
        .into_iter()
        .map(|(n, v)| {
            let gv = grads
                .get(v)
                .unwrap_or_else(|| panic!("no gradient for {n}"));
            (n, gv.to_vec().unwrap())
        })
        .collect();
    Run { outputs, grads }
}

fn compare(cfg: Config, b: usize, t: usize) {
    compare_on(&gpu(), cfg, b, t, true)
}

/// The shared device with the fused kernels' GPU tiling (256 threads, tiles of about B/32
/// rows) or the CPU drivers' (64 threads, large tiles), whatever the test device is.
fn tiled(gpu_tiling: bool) -> Gpu {
    common::gpu_with(|t| t.tiling = if gpu_tiling { Tiling::Gpu } else { Tiling::Cpu })
}

/// The comparison under the GPU or the CPU tiling (see [`tiled`]).
fn compare_tiled(cfg: Config, b: usize, t: usize, gpu_tiling: bool) {
    compare_on(&tiled(gpu_tiling), cfg, b, t, false)
}

/// The fused observe's sizes for a `[b, t]` batch of `cfg`'s model.
fn dims_of(cfg: &Config, b: usize, t: usize) -> ObserveDims {
    ObserveDims {
        batch: b,
        steps: t,
        stoch: cfg.stoch,
        action: cfg.action_dim,
        deter: cfg.deter,
        hidden: cfg.hidden,
        embed: cfg.embed(),
    }
}

fn compare_on(g: &Gpu, cfg: Config, b: usize, t: usize, partial_tile: bool) {
    let g = g.clone();
    let m = model(&g, &cfg);
    let dims = dims_of(&cfg, b, t);
    let plan = fused_plan(&g, &dims).expect("the fused RSSM runs on the test device");
    assert!(
        !partial_tile
            || !b.is_multiple_of(plan.rows_fwd)
            || !b.is_multiple_of(plan.rows_bwd)
            || b == 1,
        "pick a batch that leaves a partial tile: {b} rows, plan {plan:?}"
    );
    eprintln!(
        "B={b} T={t} deter {} stoch {} hidden {}: {plan:?}",
        cfg.deter, cfg.stoch, cfg.hidden
    );
    let fused = run(&m, RssmPath::Fused, b, t, 11);
    let reference = run(&m, RssmPath::PerOp, b, t, 11);
    let names = ["deter", "stoch", "post", "prior"];
    for (k, name) in names.iter().enumerate() {
        let e = rel_err(&fused.outputs[k], &reference.outputs[k]);
        assert!(
            e <= 1e-5,
            "B={b} T={t}: {name} differs by {e:.2e} (relative), plan {plan:?}"
        );
    }
    for ((name, got), (_, want)) in fused.grads.iter().zip(&reference.grads) {
        let e = rel_err(got, want);
        assert!(
            e <= 1e-5,
            "B={b} T={t} A={}: gradient of {name} differs by {e:.2e} (relative), plan {plan:?}",
            cfg.action_dim
        );
        // At T = 1 the GRU only ever sees h = 0: weight_hh's gradient is exactly zero.
        let zero_expected = t == 1 && name == "gru.weight_hh";
        assert_eq!(
            want.iter().any(|x| x.abs() > 1e-4),
            !zero_expected,
            "gradient of {name}: {}",
            if zero_expected {
                "must be zero at T = 1"
            } else {
                "all but zero, the comparison would prove nothing"
            }
        );
    }
}

/// The specification's RSSM widths (deter 200, stoch 30, hidden 200): every width above the
/// CPU tiling's 64 threads and most above the GPU tiling's 256 / 2.
fn spec_widths() -> Config {
    Config {
        depth: 1,
        action_dim: 1,
        ..Config::dreamer()
    }
}

/// The `small` preset's widths (deter 100, stoch 16, hidden 100).
fn small_widths() -> Config {
    Config {
        depth: 1,
        action_dim: 1,
        ..Config::small()
    }
}

// At the sizes users train at. On a driver that ends long loops (lavapipe: 65,535 iterations
// per invocation, `Gpu::loop_limit`) these cross it many times over at T = 50: the steps run in
// chunks (the plan's steps_fwd / steps_bwd < T), whose state crosses between dispatches.

/// Spec widths, CPU tiling: tiles of two rows with a partial last tile (B = 3), T = 50.
#[test]
fn fused_matches_per_op_spec_widths_multi_row_partial_tile() {
    compare_tiled(spec_widths(), 3, 50, false);
}

/// Spec widths, the `dreamer` preset's batch shape B16 T50, CPU tiling (8-row forward tiles,
/// 5-row backward tiles with a partial last one).
#[test]
fn fused_matches_per_op_spec_widths_b16_t50() {
    compare_tiled(spec_widths(), 16, 50, false);
}

/// Spec widths, GPU tiling (256 threads, one row per tile at this batch), T = 50.
#[test]
fn fused_matches_per_op_spec_widths_gpu_tiling() {
    compare_tiled(spec_widths(), 5, 50, true);
}

/// Spec widths, GPU tiling with multi-row tiles: B = 70 gives tiles of 3 rows (B/32), the
/// last one partial.
#[test]
fn fused_matches_per_op_spec_widths_gpu_tiling_multi_row() {
    compare_tiled(spec_widths(), 70, 4, true);
}

/// The `small` preset's widths and batch shape (B8 T16), both tilings.
#[test]
fn fused_matches_per_op_small_preset() {
    compare_tiled(small_widths(), 8, 16, false);
    compare_tiled(small_widths(), 8, 16, true);
}

#[test]
fn fused_matches_per_op_single_step() {
    compare(awkward(1), 3, 1);
}

#[test]
fn fused_matches_per_op_partial_tile_action_6() {
    compare(awkward(6), 5, 7);
}

#[test]
fn fused_matches_per_op_fifty_steps() {
    compare(awkward(2), 3, 50);
}

/// The tiling chosen for GPUs (256 threads, tiles of about B/32 rows) on the test device.
#[test]
fn fused_matches_per_op_gpu_tiling() {
    compare_tiled(awkward(3), 37, 3, true);
}

/// Rows per tile named by the tuning (`tile_rows`, which `rssm tune` measures), under both
/// tilings: the plan takes them, and the fused kernels still match the per-op path (B = 11
/// leaves a partial last tile for every size but 1).
#[test]
fn fused_matches_per_op_with_the_tunings_tile_rows() {
    for gpu_tiling in [false, true] {
        for rows in [1u32, 2, 3, 8] {
            let g = common::gpu_with(|t| {
                t.tiling = if gpu_tiling { Tiling::Gpu } else { Tiling::Cpu };
                t.tile_rows = Some(rows);
            });
            let plan = fused_plan(&g, &dims_of(&awkward(2), 11, 4)).unwrap();
            assert_eq!(
                (plan.rows_fwd, plan.rows_bwd),
                (rows as usize, rows as usize),
                "gpu tiling {gpu_tiling}"
            );
            compare_on(&g, awkward(2), 11, 4, rows > 1);
        }
    }
}

#[test]
fn fused_gradient_matches_finite_differences() {
    let g = gpu();
    let cfg = Config {
        deter: 3,
        stoch: 2,
        hidden: 3,
        depth: 1,
        action_dim: 1,
        ..Config::tiny()
    };
    let m = model(&g, &cfg);
    let (b, t, e) = (2, 3, cfg.embed());
    let mut inputs: Vec<(Vec<usize>, Vec<f32>)> =
        vec![(vec![b, t, e], rand_vec(b * t * e, 5, -1.0, 1.0))];
    let ids = {
        let tape = Tape::no_grad(&g);
        let p = m.params.bind(&tape);
        let rv = m.rssm_vars(&p).to_array();
        let vars = p.vars().to_vec();
        rv.map(|v| vars.iter().position(|x| *x == v).unwrap())
    };
    for (k, id) in ids.iter().enumerate() {
        let tns = &m.params.tensors()[*id];
        // Weights of order one make every path of the recurrence matter.
        inputs.push((
            tns.shape().to_vec(),
            rand_vec(tns.len(), 200 + k as u64, -0.8, 0.8),
        ));
    }
    let action = Tensor::from_vec(&g, &[b, t, 1], &rand_vec(b * t, 6, -1.0, 1.0)).unwrap();
    let eps = Tensor::from_vec(&g, &[b, t, 2], &rand_vec(b * t * 2, 7, -1.0, 1.0)).unwrap();
    let report = gradcheck(&g, &inputs, &GradcheckOptions::default(), |tape, v| {
        let params = RssmParams {
            img_in_w: v[1],
            img_in_b: v[2],
            w_ih: v[3],
            w_hh: v[4],
            b_ih: v[5],
            b_hh: v[6],
            img_out_w: v[7],
            img_out_b: v[8],
            img_stats_w: v[9],
            img_stats_b: v[10],
            obs_out_w: v[11],
            obs_out_b: v[12],
            obs_stats_w: v[13],
            obs_stats_b: v[14],
        };
        let o = observe(tape, v[0], &action, &eps, params, cfg.min_std)?;
        rssm::ops::concat_last(tape, &[o.deter, o.stoch, o.post, o.prior])
    })
    .unwrap();
    let total: usize = inputs.iter().map(|(_, v)| v.len()).sum();
    assert_eq!(report.checked, total);
}

fn synthetic(g: &Gpu, cfg: &Config) -> DeviceBatch {
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

/// The whole world-model loss and every parameter's gradient agree between the two paths.
#[test]
fn world_model_loss_and_gradients_match_per_op() {
    let cfg = Config {
        batch: 3,
        seq_len: 4,
        ..awkward(2)
    };
    let mut results = vec![];
    let mut names = vec![];
    for path in [RssmPath::Fused, RssmPath::PerOp] {
        let g = common::gpu_with(|t| t.path = path);
        let m = model(&g, &cfg);
        let batch = synthetic(&g, &cfg);
        names = m.params.names().to_vec();
        let tape = Tape::new(&g);
        let p = m.params.bind(&tape);
        let out = m.loss(&tape, &p, &batch, 3).unwrap();
        let loss = tape.value(out.loss).to_scalar().unwrap();
        let vars = p.vars().to_vec();
        let grads = tape.backward(out.loss).unwrap();
        let gs: Vec<Vec<f32>> = vars
            .iter()
            .map(|v| grads.get(*v).unwrap().to_vec().unwrap())
            .collect();
        results.push((loss, gs));
    }
    let (lf, gf) = &results[0];
    let (lr, gr) = &results[1];
    assert!(
        ((lf - lr) / lr).abs() <= 1e-5,
        "loss: fused {lf}, per-op {lr}"
    );
    for (i, (a, b)) in gf.iter().zip(gr).enumerate() {
        let e = rel_err(a, b);
        assert!(e <= 1e-5, "gradient of {} differs by {e:.2e}", names[i]);
    }
}

/// Dispatches of one steady training step at T = 16 and T = 50: within 5 of each other (the
/// fused RSSM does not grow with T), at most 170, and no buffer created.
#[test]
fn train_step_dispatches_do_not_grow_with_t() {
    // A device of its own: the counters must not see the other tests' work.
    let g = Gpu::new(&rssm::gpu::GpuOptions::default()).unwrap();
    let mut counts = vec![];
    for t in [16, 50] {
        // Head and feature widths that are multiples of 4: on CPU drivers `linear` pads other
        // widths with extra copies (see ops::matmul), which is not what this test counts.
        let cfg = Config {
            seq_len: t,
            batch: 2,
            deter: 14,
            stoch: 6,
            units: 8,
            ..awkward(2)
        };
        let g = g.with_tuning(Tuning {
            path: RssmPath::Fused,
            ..*g.tuning()
        });
        let mut tr = Trainer::new(&g, &cfg).unwrap();
        assert_eq!(
            tr.model.observe_path(&g, cfg.batch, t).0,
            RssmPath::Fused,
            "the test device runs the fused path"
        );
        let batch = synthetic(&g, &cfg);
        tr.train_step(&batch).unwrap();
        tr.train_step(&batch).unwrap();
        let s0 = g.stats();
        tr.train_step(&batch).unwrap();
        let s1 = g.stats();
        assert_eq!(
            s1.buffers_created, s0.buffers_created,
            "T={t}: buffers created"
        );
        counts.push(s1.dispatches - s0.dispatches);
    }
    eprintln!("train step dispatches at T = 16, 50: {counts:?}");
    assert!(
        counts[0].abs_diff(counts[1]) <= 5,
        "dispatches per train step: {counts:?} at T = 16, 50"
    );
    // 161 here: the heads' activation gradients fused into their matmuls (`ops::mlp`) and the
    // decoder's 1x1-input layer a matmul without weight packing.
    assert!(
        counts[1] <= 170,
        "dispatches per train step at T = 50: {}",
        counts[1]
    );
}

/// The fused observe just below and just above each threshold of its plan, at the spec's
/// widths with the CPU tiling (64 threads: every width takes several passes):
/// - steps per dispatch (a driver's loop limit, `Gpu::loop_limit`): T equal to the forward's
///   and the backward's chunk, one more, and two chunks and one step (state and carried
///   gradients crossing one and two dispatch boundaries);
/// - rows per tile: B equal to the tile, one more (a partial tile of one row);
/// - workgroup memory: deter 267 makes a forward row 1,024 floats (8 rows fill lavapipe's
///   32 KiB exactly), deter 268 one float-pair more (7 rows).
#[test]
fn thresholds_steps_rows_and_workgroup_memory() {
    let cfg = spec_widths();
    let dims = |b: usize, t: usize, deter: usize| {
        dims_of(
            &Config {
                deter,
                ..cfg.clone()
            },
            b,
            t,
        )
    };
    let plan = fused_plan(&tiled(false), &dims(3, 64, cfg.deter)).unwrap();
    let (sf, sb) = (plan.steps_fwd, plan.steps_bwd);
    let mut steps = vec![sf, sf + 1, sb, sb + 1, 2 * sb + 1];
    steps.sort_unstable();
    steps.dedup();
    eprintln!("spec widths, CPU tiling, B3: {plan:?}; T = {steps:?}");
    for t in steps {
        compare_tiled(cfg.clone(), 3, t, false);
    }
    // Rows per tile at B16 (forward 8, backward 5): B = 5, 6, 8, 9.
    for b in [5, 6, 8, 9] {
        compare_tiled(cfg.clone(), b, 2, false);
    }
    for deter in [267, 268] {
        let p = fused_plan(&tiled(false), &dims(17, 3, deter));
        eprintln!("deter {deter}, B17: {p:?}");
        compare_tiled(
            Config {
                deter,
                ..cfg.clone()
            },
            17,
            3,
            false,
        );
    }
}

/// The rules: the fused kernels on GPUs, the per-op path on CPU drivers (faster there).
#[test]
fn the_rules_take_the_per_op_path_on_cpu_drivers() {
    let g = gpu();
    let m = WorldModel::new(&g, &awkward(1)).unwrap();
    let mut got = vec![];
    for cpu in [true, false] {
        let mut report = g.report().clone();
        report.device_type = if cpu { "Cpu" } else { "DiscreteGpu" }.into();
        report.name = if cpu { "a CPU driver" } else { "a GPU" }.into();
        got.push(
            m.observe_path(&g.with_tuning(Tuning::rules(&report)), 3, 4)
                .0,
        );
    }
    assert_eq!(got, vec![RssmPath::PerOp, RssmPath::Fused]);
}
