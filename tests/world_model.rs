//! The whole world model on a tiny configuration: the loss's gradient against finite
//! differences, exact resume from a checkpoint, and clear errors for bad checkpoints.

mod common;

use common::{gpu, rand_vec};
use rssm::model::{Config, DeviceBatch, Trainer, WorldModel};
use rssm::tensor::{Tape, Tensor};

fn batch(g: &rssm::gpu::Gpu, cfg: &Config, obs: Vec<f32>, seed: u64) -> DeviceBatch {
    let (b, t, a, s) = (cfg.batch, cfg.seq_len, cfg.action_dim, cfg.stoch);
    let cont: Vec<f32> = (0..b * t)
        .map(|i| if i % 5 == 4 { 0.0 } else { 1.0 })
        .collect();
    DeviceBatch {
        obs: Tensor::from_vec(g, &[b, t, 3, 64, 64], &obs).unwrap(),
        action: Tensor::from_vec(g, &[b, t, a], &rand_vec(b * t * a, seed + 1, -1.0, 1.0)).unwrap(),
        reward: Tensor::from_vec(g, &[b, t], &rand_vec(b * t, seed + 2, 0.0, 1.0)).unwrap(),
        cont: Tensor::from_vec(g, &[b, t], &cont).unwrap(),
        eps: Some(
            Tensor::from_vec(g, &[b, t, s], &rand_vec(b * t * s, seed + 3, -1.5, 1.5)).unwrap(),
        ),
    }
}

/// The loss value split as (mean NLL terms, balanced KL value).
fn loss_parts(model: &WorldModel, b: &DeviceBatch) -> (f64, f64) {
    let t = Tape::no_grad(b.obs.gpu());
    let p = model.params.bind(&t);
    let out = model.loss(&t, &p, b, 0).unwrap();
    let v = |x: &Tensor| x.to_scalar().unwrap() as f64;
    (
        v(&out.image_nll) + v(&out.reward_nll) + v(&out.cont_nll),
        v(&out.kl_loss),
    )
}

/// Central differences of the loss for a few elements of every parameter tensor, against the
/// gradient of one backward pass.
///
/// The balanced-KL caveat: the gradient of `alpha * KL(sg(q)||p) + (1-alpha) * KL(q||sg(p))`
/// is not the gradient of its value (which is just KL). With alpha = 0.5 it is exactly half of
/// it, so the finite-difference reference is `d NLL + kl_scale * 0.5 * d KL`, built from the
/// two parts of the loss read back separately. Under the free-nats clamp the KL part is
/// constant and its gradient must vanish.
fn check_whole_loss(cfg: Config) {
    assert!(
        cfg.kl_balance == 0.5,
        "the reference below assumes alpha = 0.5"
    );
    let g = gpu();
    let model = WorldModel::new(&g, &cfg).unwrap();
    // Biases start at zero, which puts every pre-activation fed by a dead channel exactly on
    // a ReLU kink, where finite differences see a one-sided slope. Move them off it.
    for (i, name) in model.params.names().iter().enumerate() {
        if name.ends_with(".bias") {
            let t = &model.params.tensors()[i];
            let v: Vec<f32> = rand_vec(t.len(), 50 + i as u64, 0.05, 0.2);
            g.write(t.buf(), &v).unwrap();
        }
    }
    // Targets near the reconstruction keep the loss small, so its f32 rounding stays far
    // below the finite-difference signal. The reconstruction depends on the observation
    // (through the encoder), so iterate obs <- decode(encode(obs)) + noise a few times.
    let n = cfg.batch * cfg.seq_len * 3 * 64 * 64;
    let noise = rand_vec(n, 8, -0.05, 0.05);
    let mut obs = vec![0.0; n];
    for _ in 0..4 {
        let b0 = batch(&g, &cfg, obs.clone(), 7);
        let t = Tape::no_grad(&g);
        let p = model.params.bind(&t);
        let decoded = model
            .loss(&t, &p, &b0, 0)
            .unwrap()
            .decoded
            .to_vec()
            .unwrap();
        obs = decoded.iter().zip(&noise).map(|(d, e)| d + e).collect();
    }
    let b = batch(&g, &cfg, obs, 7);
    let (nll0, kl0) = loss_parts(&model, &b);

    let t = Tape::new(&g);
    let p = model.params.bind(&t);
    let out = model.loss(&t, &p, &b, 0).unwrap();
    let vars = p.vars().to_vec();
    let grads = t.backward(out.loss).unwrap();
    let kl_weight = cfg.kl_scale as f64 * 0.5;
    let mut checked = 0;
    let mut worst = (0.0f64, String::new());
    let mut failures = Vec::new();
    for (i, name) in model.params.names().iter().enumerate() {
        let tensor = &model.params.tensors()[i];
        let analytic = grads
            .get(vars[i])
            .map(|g| g.to_vec().unwrap())
            .unwrap_or_else(|| vec![0.0; tensor.len()]);
        let values = tensor.to_vec().unwrap();
        // A conv bias moves every pre-activation of its channel (thousands), so a step of 1e-2
        // carries some of them across a ReLU kink: a smaller step for those.
        let h = if name.contains("conv") && name.ends_with(".bias") {
            1e-3f32
        } else {
            1e-2
        };
        for j in [0, values.len() / 2, values.len() - 1] {
            let mut v = values.clone();
            v[j] = values[j] + h;
            g.write(tensor.buf(), &v).unwrap();
            let (np, kp) = loss_parts(&model, &b);
            v[j] = values[j] - h;
            g.write(tensor.buf(), &v).unwrap();
            let (nm, km) = loss_parts(&model, &b);
            g.write(tensor.buf(), &values).unwrap();
            let numeric = ((np - nm) + kl_weight * (kp - km)) / (2.0 * h as f64);
            let a = analytic[j] as f64;
            let err = (a - numeric).abs();
            // f32 rounding of the two loss parts, seen through the difference quotient.
            let rounding = 4.0 * (nll0.abs() + kl0.abs()) * f32::EPSILON as f64 / (2.0 * h as f64);
            let tol = 2e-3 + rounding + 3e-2 * a.abs().max(numeric.abs());
            if err > tol {
                failures.push(format!(
                    "{name}[{j}]: analytic {a:.6e}, numeric {numeric:.6e}"
                ));
            }
            if err > worst.0 {
                worst = (err, format!("{name}[{j}]"));
            }
            checked += 1;
        }
    }
    eprintln!("whole-loss gradcheck: nll {nll0:.4} kl {kl0:.4}, {checked} elements, worst |diff| {:.2e} at {}", worst.0, worst.1);
    assert!(
        failures.is_empty(),
        "{} of {checked} elements differ:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

#[test]
fn whole_loss_gradient_matches_finite_differences() {
    let cfg = Config {
        kl_balance: 0.5,
        kl_scale: 1.0,
        free_nats: 0.0,
        ..Config::tiny()
    };
    check_whole_loss(cfg);
}

#[test]
fn whole_loss_gradient_with_free_nats_clamp() {
    // Every KL below the free nats: the KL term is constant, its gradient zero.
    let cfg = Config {
        kl_balance: 0.5,
        free_nats: 50.0,
        ..Config::tiny()
    };
    check_whole_loss(cfg);
}

fn small_cfg() -> Config {
    Config {
        batch: 2,
        seq_len: 4,
        ..Config::tiny()
    }
}

fn run_steps(tr: &mut Trainer, g: &rssm::gpu::Gpu, steps: u64) -> Vec<f32> {
    let cfg = tr.model.cfg.clone();
    (0..steps)
        .map(|_| {
            let n = cfg.batch * cfg.seq_len * 3 * 64 * 64;
            let mut b = batch(
                g,
                &cfg,
                rand_vec(n, 100 + tr.step, -0.5, 0.5),
                100 + tr.step,
            );
            b.eps = None; // the trainer's own seeded noise, which must resume too
            tr.train_step(&b).unwrap().loss
        })
        .collect()
}

#[test]
fn resume_continues_exactly() {
    let g = gpu();
    let dir = std::env::temp_dir().join(format!("rssm-resume-{}", std::process::id()));
    let mut a = Trainer::new(&g, &small_cfg()).unwrap();
    let straight = run_steps(&mut a, &g, 4);
    let mut b = Trainer::new(&g, &small_cfg()).unwrap();
    let mut first = run_steps(&mut b, &g, 2);
    b.save(&dir).unwrap();
    drop(b);
    let mut c = Trainer::new(&g, &small_cfg()).unwrap();
    run_steps(&mut c, &g, 1); // move away from the saved state first
    c.load(&dir).unwrap();
    assert_eq!(c.step, 2);
    first.extend(run_steps(&mut c, &g, 2));
    assert_eq!(
        first, straight,
        "resumed losses differ from an uninterrupted run"
    );
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn bad_checkpoints_get_clear_errors() {
    let g = gpu();
    let dir = std::env::temp_dir().join(format!("rssm-badckpt-{}", std::process::id()));
    let tr = Trainer::new(&g, &small_cfg()).unwrap();
    tr.save(&dir).unwrap();
    let w = dir.join("checkpoint.safetensors");
    let good = std::fs::read(&w).unwrap();
    // truncated
    std::fs::write(&w, &good[..good.len() / 2]).unwrap();
    let mut t2 = Trainer::new(&g, &small_cfg()).unwrap();
    let e = t2.load(&dir).unwrap_err().to_string();
    assert!(e.contains("checkpoint.safetensors"), "truncated: {e}");
    // a model of another size
    std::fs::write(&w, &good).unwrap();
    let mut other = Trainer::new(
        &g,
        &Config {
            deter: 6,
            ..small_cfg()
        },
    )
    .unwrap();
    let e = other.load(&dir).unwrap_err().to_string();
    assert!(
        e.contains("rssm.gru.weight_hh") || e.contains("configuration"),
        "mismatch: {e}"
    );
    // NaN weights
    let mut host = tr.model.params.to_host().unwrap();
    host.get_mut("reward.out.bias").unwrap().data[0] = f32::NAN;
    rssm::data::safetensors_io::save_safetensors(&w, &host, None).unwrap();
    let e = t2.load(&dir).unwrap_err().to_string();
    assert!(e.contains("reward.out.bias"), "NaN: {e}");
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn wrong_batch_shapes_are_refused() {
    let g = gpu();
    let cfg = small_cfg();
    let model = WorldModel::new(&g, &cfg).unwrap();
    let n = cfg.batch * cfg.seq_len * 3 * 64 * 64;
    let mut b = batch(&g, &cfg, vec![0.0; n], 1);
    b.action = Tensor::zeros(&g, &[cfg.batch, cfg.seq_len, cfg.action_dim + 1]).unwrap();
    let t = Tape::no_grad(&g);
    let p = model.params.bind(&t);
    let e = model.loss(&t, &p, &b, 0).err().unwrap().to_string();
    assert!(e.contains("action must be"), "{e}");
}

#[test]
fn steady_training_allocates_no_gpu_buffers_and_submits_once_per_step() {
    // Its own device, so other tests' work does not move the counters.
    let g = rssm::gpu::Gpu::new(&rssm::gpu::GpuOptions::default()).unwrap();
    let mut tr = Trainer::new(&g, &small_cfg()).unwrap();
    // Pool buffers (and with them the cached bind groups) settle within a few steps: uploads
    // only take buffers freed before the previous submit.
    run_steps(&mut tr, &g, 5);
    let warm = g.stats();
    run_steps(&mut tr, &g, 3);
    let after = g.stats();
    assert_eq!(
        after.buffers_created, warm.buffers_created,
        "GPU buffers created after warm-up"
    );
    assert_eq!(
        after.bind_groups_created, warm.bind_groups_created,
        "bind groups created after warm-up"
    );
    // Per step: the batch upload is a write, then one submit with the whole step and its
    // metrics readback.
    assert_eq!(after.submits - warm.submits, 3, "submits for 3 steps");
}
