//! The same numbers under every device profile (`rssm::gpu::device_profile`).
//!
//! Each profile is a new device on the adapter here (lavapipe in CI) with the profile's limits,
//! features, subgroup widths and device type, so the engine takes the kernels and paths it
//! would take on that class of device: the GPU rules (register blocks, no subgroup kernels,
//! the fused RSSM where the storage buffers and workgroup memory allow it, per-op below),
//! smaller storage bindings and coarser offset alignment. On it run a world-model loss with
//! every gradient, an observe-only forward, a dream, a behaviour update and one short Dreamer
//! round (acting, a world-model step, a behaviour update), each compared with the same work on
//! the unconstrained device (the adapter's own limits and the CPU driver's choices) to 1e-5
//! relative to each tensor's largest value (`common::rel_err`). What each profile chose
//! (path, matmul kernel, tiling) is printed (`cargo test --test profiles -- --nocapture`);
//! docs/backends.md, "Device profiles", keeps the table.
//!
//! A profile that cannot run the engine (`downlevel`: 4 storage buffers per shader stage, the
//! engine's kernels bind up to 8) must fail with an error naming the kernel, the limit and what
//! to do, never a wgpu validation panic; so must limits below the kernels' workgroups and
//! workgroup memory, and what wgpu itself refuses.

mod common;

use std::sync::OnceLock;

use common::{rand_vec, rel_err};
use rssm::agent::behaviour::Starts;
use rssm::agent::{dream, Behaviour, BehaviourConfig, DreamActions, Dreamer, DreamerSettings};
use rssm::gpu::{DeviceProfile, Gpu, GpuOptions};
use rssm::model::{Config, DeviceBatch, WorldModel};
use rssm::nn::ParamStore;
use rssm::ops::adam::FlatParams;
use rssm::tensor::{Tape, Tensor};

/// Widths that are multiples of 8 (the fused RSSM's tiles take them) and conv channels 24-192
/// (the subgroup convolutions' full channel blocks on the unconstrained device).
fn cfg() -> Config {
    Config {
        deter: 16,
        stoch: 8,
        hidden: 16,
        depth: 24,
        units: 16,
        action_dim: 2,
        batch: 2,
        seq_len: 4,
        free_nats: 0.0,
        seed: 11,
        ..Config::tiny()
    }
}

const HORIZON: usize = 3;

fn behaviour_cfg() -> BehaviourConfig {
    BehaviourConfig {
        horizon: HORIZON,
        ..BehaviourConfig::default()
    }
}

/// Named results of one device, in a fixed order.
type Values = Vec<(String, Vec<f32>)>;

/// A device on the adapter here, under `profile` (`None`: unconstrained).
fn device(profile: Option<&str>) -> rssm::Result<Gpu> {
    Gpu::new(&GpuOptions {
        profile: profile.map(|p| DeviceProfile::named(p).unwrap()),
        ..Default::default()
    })
}

/// A batch of smooth frames (as `at_scale`'s), actions, rewards, continues and noise.
fn batch(g: &Gpu, cfg: &Config) -> DeviceBatch {
    let (b, t, a) = (cfg.batch, cfg.seq_len, cfg.action_dim);
    let n = b * t;
    let phase = rand_vec(n * 3, 1, 0.0, std::f32::consts::TAU);
    let mut obs = Vec::with_capacity(n * 3 * 64 * 64);
    for ph in &phase {
        for y in 0..64 {
            for x in 0..64 {
                obs.push(((x as f32 * 0.11 + ph).sin() * (y as f32 * 0.07 - ph).cos()) * 0.4);
            }
        }
    }
    let cont: Vec<f32> = (0..n).map(|i| if i % 3 == 2 { 0.0 } else { 1.0 }).collect();
    DeviceBatch {
        obs: Tensor::from_vec(g, &[b, t, 3, 64, 64], &obs).unwrap(),
        action: Tensor::from_vec(g, &[b, t, a], &rand_vec(n * a, 2, -1.0, 1.0)).unwrap(),
        reward: Tensor::from_vec(g, &[b, t], &rand_vec(n, 3, 0.0, 1.0)).unwrap(),
        cont: Tensor::from_vec(g, &[b, t], &cont).unwrap(),
        eps: Some(
            Tensor::from_vec(
                g,
                &[b, t, cfg.stoch],
                &rand_vec(n * cfg.stoch, 4, -1.5, 1.5),
            )
            .unwrap(),
        ),
    }
}

/// Biases start at zero, which puts pre-activations fed only by dead channels on a ReLU kink,
/// where the last bit of a sum decides the derivative: kernels that sum in different orders
/// then differ by whole terms. Biases off zero keep the comparison to the rounding of sums.
/// (An optimised set's flat buffer is authoritative: `flat` gathers the views back into it.)
fn biases_off_zero(g: &Gpu, params: &ParamStore, flat: Option<&FlatParams>, seed: u64) {
    for (i, name) in params.names().iter().enumerate() {
        if name.ends_with(".bias") {
            let t = &params.tensors()[i];
            g.write(t.buf(), &rand_vec(t.len(), seed + i as u64, 0.05, 0.2))
                .unwrap();
        }
    }
    if let Some(f) = flat {
        f.gather_views();
    }
}

/// The actor's and the critic's biases off zero.
fn off_zero(g: &Gpu, b: &Behaviour) {
    biases_off_zero(g, &b.actor.opt.params, Some(&b.actor.opt.flat), 70);
    biases_off_zero(g, &b.critic.opt.params, Some(&b.critic.opt.flat), 90);
}

/// A frame of the Dreamer round (HWC u8).
fn frame(i: usize) -> Vec<u8> {
    (0..64 * 64 * 3)
        .map(|p| ((p * 7 + i * 13) % 251) as u8)
        .collect()
}

/// What the engine chose on `g`, one line.
fn choices(g: &Gpu, wm: &WorldModel) -> String {
    let c = &wm.cfg;
    let (obs, obs_why) = wm.observe_path(g, c.batch, c.seq_len);
    let (img, img_why) = wm.imagine_path(g, c.batch * c.seq_len, HORIZON, true);
    let why = |w: String| {
        if w.is_empty() {
            String::new()
        } else {
            format!(" ({w})")
        }
    };
    format!(
        "tuning {}; observe {obs:?}{}; imagine {img:?}{}; matmul {}",
        g.tuning(),
        why(obs_why),
        why(img_why),
        rssm::ops::matmul::kernel_choice(g)
    )
}

/// A fresh world model (biases off zero) and the batch.
fn world_model(g: &Gpu) -> rssm::Result<(WorldModel, DeviceBatch)> {
    let cfg = cfg();
    let wm = WorldModel::new(g, &cfg)?;
    biases_off_zero(g, &wm.params, None, 50);
    Ok((wm, batch(g, &cfg)))
}

/// A world-model update's numbers: the loss and every gradient.
fn loss_and_gradients(g: &Gpu) -> rssm::Result<Values> {
    let (wm, b) = world_model(g)?;
    let tape = Tape::new(g);
    let p = wm.params.bind(&tape);
    let o = wm.loss(&tape, &p, &b, 0)?;
    let mut out = vec![("loss".to_string(), tape.value(o.loss).to_vec()?)];
    let vars = p.vars().to_vec();
    let grads = tape.backward(o.loss)?;
    for (name, v) in wm.params.names().iter().zip(&vars) {
        let grad = grads.get(*v).expect("every parameter has a gradient");
        out.push((format!("gradient of {name}"), grad.to_vec()?));
    }
    Ok(out)
}

/// Observe only (no gradients): the posterior states, both distributions and the decoded
/// images.
fn observe(g: &Gpu) -> rssm::Result<Values> {
    let (wm, b) = world_model(g)?;
    let nt = Tape::no_grad(g);
    let p = wm.params.bind(&nt);
    let o = wm.loss(&nt, &p, &b, 0)?;
    let mut out = Vec::new();
    for (name, t) in [
        ("deter", &o.deter),
        ("stoch", &o.stoch),
        ("posterior mean", &o.posterior_mean),
        ("prior std", &o.prior_std),
        ("decoded", &o.decoded),
    ] {
        out.push((name.to_string(), t.to_vec()?));
    }
    Ok(out)
}

/// Start states for imagination: `[B*T, deter]` and `[B*T, stoch]`.
fn starts(g: &Gpu) -> rssm::Result<Starts> {
    let c = cfg();
    let n = c.batch * c.seq_len;
    Starts::new(
        &Tensor::from_vec(g, &[n, c.deter], &rand_vec(n * c.deter, 5, -0.9, 0.9))?,
        &Tensor::from_vec(g, &[n, c.stoch], &rand_vec(n * c.stoch, 6, -1.5, 1.5))?,
    )
}

/// A fresh actor and critic, biases off zero.
fn behaviour(g: &Gpu) -> rssm::Result<Behaviour> {
    let b = Behaviour::new(g, &cfg(), behaviour_cfg())?;
    off_zero(g, &b);
    Ok(b)
}

/// A dream: two imagined steps with the actor's mode, decoded.
fn dream_(g: &Gpu) -> rssm::Result<Values> {
    let (wm, _) = world_model(g)?;
    let b = behaviour(g)?;
    let st = starts(g)?;
    let out = dream(&wm, &st.h, &st.s, DreamActions::Actor(&b.actor), 2)?;
    Ok(vec![("decoded".into(), out.to_vec()?)])
}

/// A behaviour update from every start: its losses, return, value and gradient norms.
fn behaviour_update(g: &Gpu) -> rssm::Result<Values> {
    let (wm, _) = world_model(g)?;
    let mut b = behaviour(g)?;
    let m = b.update(&wm, &starts(g)?)?;
    Ok(vec![(
        "metrics".into(),
        vec![
            m.actor_loss,
            m.critic_loss,
            m.mean_return,
            m.mean_value,
            m.mean_reward,
            m.mean_cont,
            m.actor_grad_norm,
            m.critic_grad_norm,
            m.actor_mean_rms,
            m.actor_std,
        ],
    )])
}

/// One short Dreamer round: an episode of seq_len + 1 steps acted and observed, then one update
/// (a world-model step and a behaviour update).
fn dreamer_round(g: &Gpu) -> rssm::Result<Values> {
    let cfg = cfg();
    let settings = DreamerSettings {
        behaviour: behaviour_cfg(),
        behaviour_warmup: 0,
        ..DreamerSettings::default()
    };
    let mut agent = Dreamer::new(g, &cfg, settings)?;
    let (model, flat) = (&agent.trainer.model.params, &agent.trainer.flat);
    biases_off_zero(g, model, Some(flat), 50);
    off_zero(g, &agent.behaviour);
    agent.begin_episode(&frame(0))?;
    let mut actions = Vec::new();
    for i in 0..cfg.seq_len + 1 {
        let a = agent.act(&frame(i), true)?;
        actions.extend_from_slice(&a);
        let last = i == cfg.seq_len;
        agent.observe(&a, 0.1 * i as f32, &frame(i + 1), false, last)?;
    }
    let u = agent.update()?;
    let w = &u.world_model;
    let bm = u.behaviour.expect("a behaviour update (no warm-up)");
    Ok(vec![
        ("actions".into(), actions),
        (
            "world-model step".into(),
            vec![
                w.loss,
                w.image_nll,
                w.reward_nll,
                w.cont_nll,
                w.kl,
                w.kl_loss,
                w.grad_norm,
            ],
        ),
        (
            "behaviour update".into(),
            vec![
                bm.actor_loss,
                bm.critic_loss,
                bm.mean_return,
                bm.mean_value,
                bm.actor_grad_norm,
                bm.critic_grad_norm,
            ],
        ),
    ])
}

type Workload = fn(&Gpu) -> rssm::Result<Values>;

/// The workloads, named.
const WORKLOADS: [(&str, Workload); 5] = [
    ("world-model loss and gradients", loss_and_gradients),
    ("observe", observe),
    ("dream", dream_),
    ("behaviour update", behaviour_update),
    ("Dreamer round", dreamer_round),
];

/// Every workload's result on `g`.
fn run_all(g: &Gpu) -> Vec<rssm::Result<Values>> {
    WORKLOADS.iter().map(|(_, w)| w(g)).collect()
}

/// The unconstrained device's numbers, computed once for every profile's test.
fn reference() -> &'static Vec<Values> {
    static REF: OnceLock<Vec<Values>> = OnceLock::new();
    REF.get_or_init(|| {
        let g = device(None).expect("a device");
        let (wm, _) = world_model(&g).unwrap();
        eprintln!(
            "unconstrained ({}): {}",
            g.report().short(),
            choices(&g, &wm)
        );
        run_all(&g)
            .into_iter()
            .zip(WORKLOADS)
            .map(|(r, (what, _))| r.unwrap_or_else(|e| panic!("unconstrained: {what}: {e}")))
            .collect()
    })
}

/// The workloads under `name` against the unconstrained device.
fn same_numbers_under(name: &str) {
    let want = reference();
    let t = std::time::Instant::now();
    let g = device(Some(name)).unwrap();
    let (wm, _) = world_model(&g).unwrap();
    eprintln!(
        "profile {name}: {}; the adapter offers less than the profile: [{}]",
        choices(&g, &wm),
        g.report().profile_shortfalls.join("; ")
    );
    let mut row = Vec::new();
    for ((got, want), (workload, _)) in run_all(&g).into_iter().zip(want).zip(WORKLOADS) {
        let got = got.unwrap_or_else(|e| panic!("profile {name}: {workload}: {e}"));
        let mut worst = 0.0f64;
        for ((what, a), (_, b)) in got.iter().zip(want) {
            let e = rel_err(a, b);
            assert!(
                e <= 1e-5,
                "profile {name}: {workload}: {what} differs from the unconstrained device by \
                 {e:.2e}"
            );
            worst = worst.max(e);
        }
        row.push(format!("{workload} {worst:.1e}"));
    }
    eprintln!(
        "profile {name}: every workload passes, largest differences: {} ({:.1} s)",
        row.join(", "),
        t.elapsed().as_secs_f64()
    );
}

#[test]
fn webgpu_gives_the_same_numbers() {
    same_numbers_under("webgpu");
}

#[test]
fn apple_m_gives_the_same_numbers() {
    same_numbers_under("apple-m");
}

#[test]
fn nvidia_gives_the_same_numbers() {
    same_numbers_under("nvidia");
}

#[test]
fn amd_rdna_gives_the_same_numbers() {
    same_numbers_under("amd-rdna");
}

#[test]
fn intel_igpu_gives_the_same_numbers() {
    same_numbers_under("intel-igpu");
}

#[test]
fn mobile_gives_the_same_numbers() {
    same_numbers_under("mobile");
}

/// `downlevel` allows 4 storage buffers per shader stage: no workload runs, and each says so
/// naming the kernel, the limit and what to do (never a wgpu validation panic).
#[test]
fn downlevel_cannot_run_and_says_why() {
    let g = device(Some("downlevel")).unwrap();
    assert_eq!(g.limits().max_storage_buffers_per_shader_stage, 4);
    let gaps = rssm::ops::kernels::device_gaps(&g).join("\n");
    assert!(gaps.contains("the engine cannot run here"), "{gaps}");
    for (result, (workload, _)) in run_all(&g).into_iter().zip(WORKLOADS) {
        let e = match result {
            Ok(_) => panic!("{workload} ran under downlevel"),
            Err(e) => e.to_string(),
        };
        eprintln!("profile downlevel: {workload}: {e}");
        for want in [
            "cannot run on 'llvmpipe",
            "under device profile 'downlevel'",
            "storage buffers",
            "max_storage_buffers_per_shader_stage",
            "allowing 4",
            "--adapter",
        ] {
            assert!(e.contains(want), "{workload}: '{want}' not in: {e}");
        }
    }
}

/// Each profile's limits are in force (capped at the adapter's), its subgroup width and type
/// decide the rules, and the report names it.
#[test]
fn a_profile_sets_the_limits_features_and_rules() {
    let g = device(Some("mobile")).unwrap();
    let (l, r) = (g.limits(), g.report());
    assert_eq!(l.max_storage_buffers_per_shader_stage, 8);
    assert_eq!(l.max_compute_workgroup_storage_size, 16 << 10);
    assert_eq!(l.max_compute_invocations_per_workgroup, 256);
    assert_eq!(l.min_storage_buffer_offset_alignment, 64);
    assert_eq!(g.binding_limit(), 128 << 20);
    assert_eq!(r.profile.as_deref(), Some("mobile"));
    assert!(!r.is_cpu() && !r.timestamps);
    assert_eq!(r.subgroup_lanes, Some(16));
    let t = g.tuning();
    assert!(!t.lanes && !t.wide_blocks && t.conv_block == 8);
    assert_eq!(t.path, rssm::gpu::RssmPath::Fused);
    let why = t.explain(r).join("\n");
    assert!(
        why.contains("subgroups of 16 lanes, the kernels need 8"),
        "{why}"
    );
    assert!(format!("{r}").contains("profile      mobile"));
}

/// The error `r` must be (without printing what it holds when it is not).
fn error_of<T>(r: rssm::Result<T>) -> String {
    match r {
        Ok(_) => panic!("ran where it should have failed"),
        Err(e) => e.to_string(),
    }
}

/// Limits below every profile's: a kernel whose workgroup is larger than the device runs, or
/// whose workgroup memory is more than it allows (wgpu 30 checks neither at pipeline creation),
/// is an error naming the kernel and the limit.
#[test]
fn limits_below_the_kernels_are_errors_not_panics() {
    let custom = |limits: wgpu::Limits| {
        let mut p = DeviceProfile::named("webgpu").unwrap();
        p.name = "custom";
        p.limits = limits;
        Gpu::new(&GpuOptions {
            profile: Some(p),
            ..Default::default()
        })
        .unwrap()
    };
    let g = custom(wgpu::Limits {
        max_compute_invocations_per_workgroup: 128,
        max_compute_workgroup_size_x: 128,
        ..wgpu::Limits::default()
    });
    let gaps = rssm::ops::kernels::device_gaps(&g).join("\n");
    assert!(gaps.contains("1-D kernels run 256 invocations"), "{gaps}");
    let e = error_of(loss_and_gradients(&g));
    eprintln!("128 invocations: {e}");
    assert!(
        e.contains("cannot run on") && e.contains("max_compute_invocations_per_workgroup"),
        "{e}"
    );
    let g = custom(wgpu::Limits {
        max_compute_workgroup_storage_size: 256,
        ..wgpu::Limits::default()
    });
    let e = error_of(loss_and_gradients(&g));
    eprintln!("256 bytes of workgroup memory: {e}");
    assert!(
        e.contains("cannot run on") && e.contains("1024 bytes of workgroup memory"),
        "{e}"
    );
}

/// What wgpu itself refuses is caught in an error scope and returned as an error: the subgroup
/// matmul's module on a device without subgroups (the engine never asks for it there; asked
/// directly, it is an error, not wgpu's panic).
#[test]
fn what_wgpu_refuses_is_an_error() {
    let g = device(Some("webgpu")).unwrap();
    let e = error_of(g.kernel(&rssm::ops::matmul::MATMUL_LANES, &[]));
    eprintln!("subgroup kernel under webgpu: {e}");
    assert!(
        e.contains("matmul_lanes::matmul_lanes cannot run on")
            && e.contains("refused its shader module"),
        "{e}"
    );
}
