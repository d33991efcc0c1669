//! The agent layer: lambda-returns and discount weights against plain-Rust references and
//! finite differences, the actor's action distribution, imagination's noise wiring, the actor's
//! gradient through the frozen dynamics and the critic's gradient against finite differences,
//! and what a behaviour update may and may not change.

mod common;

use common::{assert_close, gpu, rand_vec};
use rssm::agent::actor::reference as actor_ref;
use rssm::agent::returns::reference as ret_ref;
use rssm::agent::{
    action_head, discount_weights, imagine, lambda_return, Behaviour, BehaviourConfig,
    ImagineNoise, Policy, Starts,
};
use rssm::gpu::{Gpu, GpuOptions};
use rssm::model::{Config, WorldModel};
use rssm::nn::ParamStore;
use rssm::ops::gaussian::{gaussian_head, reference::normal_noise as ref_noise, Noise};
use rssm::ops::{self};
use rssm::tensor::{gradcheck, GradcheckOptions, Tape, Tensor};

fn to_f32(v: &[f64]) -> Vec<f32> {
    v.iter().map(|x| *x as f32).collect()
}

#[test]
fn lambda_return_matches_reference() {
    let g = gpu();
    for (i, &(h, n, lambda)) in [
        (1, 1, 0.95),
        (2, 3, 0.95),
        (5, 7, 0.0),
        (15, 33, 0.95),
        (15, 257, 1.0),
        (3, 4, 0.5),
    ]
    .iter()
    .enumerate()
    {
        let len = (h + 1) * n;
        let seed = 10 * i as u64;
        let r = rand_vec(len, seed, -1.0, 1.0);
        let gm = rand_vec(len, seed + 1, 0.0, 0.99);
        let v = rand_vec(len, seed + 2, -2.0, 2.0);
        let t = Tape::no_grad(&g);
        let c = |x: &[f32]| t.constant(&Tensor::from_vec(&g, &[h + 1, n], x).unwrap());
        let out = lambda_return(&t, c(&r), c(&gm), c(&v), lambda).unwrap();
        assert_eq!(t.shape(out), vec![h, n]);
        let want = ret_ref::lambda_return(&r, &gm, &v, n, lambda as f64);
        assert_close(
            &t.value(out).to_vec().unwrap(),
            &to_f32(&want),
            1e-5,
            1e-5,
            &format!("lambda_return H={h} N={n}"),
        );
    }
}

#[test]
fn lambda_return_reference_special_cases() {
    // lambda = 0: one-step TD targets r_t + gamma_t v_{t+1}; lambda = 1: discounted reward sums
    // bootstrapped with v_H.
    let (r, gm, v) = (
        [1.0f32, 2.0, 3.0],
        [0.5f32, 0.5, 0.5],
        [10.0f32, 20.0, 30.0],
    );
    assert_eq!(
        ret_ref::lambda_return(&r, &gm, &v, 1, 0.0),
        vec![1.0 + 0.5 * 20.0, 2.0 + 0.5 * 30.0]
    );
    assert_eq!(
        ret_ref::lambda_return(&r, &gm, &v, 1, 1.0),
        vec![1.0 + 0.5 * (2.0 + 0.5 * 30.0), 2.0 + 0.5 * 30.0]
    );
}

#[test]
fn lambda_return_gradcheck() {
    let g = gpu();
    let (h, n) = (4, 3);
    let len = (h + 1) * n;
    let inputs = vec![
        (vec![h + 1, n], rand_vec(len, 1, -1.0, 1.0)),
        (vec![h + 1, n], rand_vec(len, 2, 0.1, 0.99)),
        (vec![h + 1, n], rand_vec(len, 3, -2.0, 2.0)),
    ];
    let rep = gradcheck(&g, &inputs, &GradcheckOptions::default(), |t, x| {
        lambda_return(t, x[0], x[1], x[2], 0.95)
    })
    .unwrap();
    eprintln!(
        "lambda_return gradcheck: {} elements, max |diff| {:.2e}",
        rep.checked, rep.max_abs_err
    );
    // H = 1: the bootstrap row alone.
    let inputs = vec![
        (vec![2, 5], rand_vec(10, 4, -1.0, 1.0)),
        (vec![2, 5], rand_vec(10, 5, 0.1, 0.99)),
        (vec![2, 5], rand_vec(10, 6, -2.0, 2.0)),
    ];
    gradcheck(&g, &inputs, &GradcheckOptions::default(), |t, x| {
        lambda_return(t, x[0], x[1], x[2], 0.95)
    })
    .unwrap();
}

#[test]
fn lambda_return_rejects_bad_shapes() {
    let g = gpu();
    let t = Tape::no_grad(&g);
    let a = t.constant(&Tensor::zeros(&g, &[4, 3]).unwrap());
    let b = t.constant(&Tensor::zeros(&g, &[4, 2]).unwrap());
    let one = t.constant(&Tensor::zeros(&g, &[1, 3]).unwrap());
    let e = lambda_return(&t, a, b, a, 0.95).unwrap_err().to_string();
    assert!(e.contains("gamma"), "{e}");
    assert!(
        lambda_return(&t, one, one, one, 0.95).is_err(),
        "H = 0 must be rejected"
    );
}

#[test]
fn discount_weights_match_products() {
    let g = gpu();
    for &(h, n) in &[(1, 1), (15, 7), (5, 257)] {
        let len = (h + 1) * n;
        let mut logits = rand_vec(len, h as u64, -4.0, 4.0);
        logits[0] = 60.0; // cont ~ 1
        logits[len - n - 1] = -60.0; // cont ~ 0: later weights vanish, nothing is NaN
        let x = Tensor::from_vec(&g, &[h + 1, n], &logits).unwrap();
        let w = discount_weights(&x, 0.99).unwrap();
        assert_eq!(w.shape(), [h, n]);
        let want = ret_ref::discount_weights(&logits, n, 0.99);
        assert_close(
            &w.to_vec().unwrap(),
            &to_f32(&want),
            1e-6,
            2e-5,
            &format!("weights H={h} N={n}"),
        );
    }
}

/// Actor outputs `[rows, 2A]` with `m` in [-3, 3] and `r` in [-7, -3] (std in (0.05, 2.2):
/// the sample is not saturated by the initial std of 5).
fn actor_out(rows: usize, a: usize, seed: u64) -> Vec<f32> {
    let m = rand_vec(rows * a, seed, -3.0, 3.0);
    let r = rand_vec(rows * a, seed + 1, -7.0, -3.0);
    (0..rows)
        .flat_map(|i| {
            m[i * a..(i + 1) * a]
                .iter()
                .chain(&r[i * a..(i + 1) * a])
                .copied()
                .collect::<Vec<_>>()
        })
        .collect()
}

#[test]
fn action_head_matches_reference() {
    let g = gpu();
    for &(rows, a) in &[(1, 1), (7, 3), (33, 1)] {
        let out = actor_out(rows, a, rows as u64);
        let eps = rand_vec(rows * a, 9, -2.0, 2.0);
        let t = Tape::no_grad(&g);
        let o = t.constant(&Tensor::from_vec(&g, &[rows, 2 * a], &out).unwrap());
        let given = Noise::Given(Tensor::from_vec(&g, &[rows, a], &eps).unwrap());
        let s = action_head(&t, o, Some(given)).unwrap();
        assert_close(
            &t.value(s.action).to_vec().unwrap(),
            &actor_ref::action(&out, a, Some(&eps)),
            1e-5,
            1e-4,
            "sampled action",
        );
        let d = action_head(&t, o, None).unwrap();
        assert_close(
            &t.value(d.action).to_vec().unwrap(),
            &actor_ref::action(&out, a, None),
            1e-5,
            1e-4,
            "deterministic action",
        );
        // Seeded noise is normal_noise's stream.
        let s = action_head(&t, o, Some(Noise::Seeded { seed: 3, offset: 4 })).unwrap();
        let eps = ref_noise(rows * a, 3, 4);
        assert_close(
            &t.value(s.action).to_vec().unwrap(),
            &actor_ref::action(&out, a, Some(&eps)),
            1e-5,
            1e-4,
            "seeded action",
        );
    }
    // The initial std is 5: r = 0 gives std = softplus(ln(e^5 - 1)) + 1e-4.
    let t = Tape::no_grad(&g);
    let o = t.constant(&Tensor::zeros(&g, &[1, 2]).unwrap());
    let s = action_head(
        &t,
        o,
        Some(Noise::Given(Tensor::zeros(&g, &[1, 1]).unwrap())),
    )
    .unwrap();
    let std = t.value(s.std.unwrap()).to_scalar().unwrap();
    assert!((std - 5.0001).abs() < 1e-5, "initial std {std}");
}

#[test]
fn action_head_gradcheck() {
    let g = gpu();
    let (rows, a) = (5, 2);
    let eps = Tensor::from_vec(&g, &[rows, a], &rand_vec(rows * a, 21, -1.5, 1.5)).unwrap();
    let inputs = vec![(vec![rows, 2 * a], actor_out(rows, a, 20))];
    let opts = GradcheckOptions::default();
    let rep = gradcheck(&g, &inputs, &opts, |t, x| {
        Ok(action_head(t, x[0], Some(Noise::Given(eps.clone())))?.action)
    })
    .unwrap();
    eprintln!(
        "action_head (sampled) gradcheck: {} elements, max |diff| {:.2e}",
        rep.checked, rep.max_abs_err
    );
    gradcheck(&g, &inputs, &opts, |t, x| {
        Ok(action_head(t, x[0], None)?.action)
    })
    .unwrap();
    // All three outputs at once (the one backward dispatch sums their paths): action + mean +
    // std, concatenated.
    gradcheck(&g, &inputs, &opts, |t, x| {
        let h = action_head(t, x[0], Some(Noise::Given(eps.clone())))?;
        ops::concat_last(t, &[h.action, h.mean, h.std.unwrap()])
    })
    .unwrap();
}

/// A tiny world model and agent, and N start states.
fn tiny(g: &Gpu, horizon: usize, n: usize) -> (WorldModel, Behaviour, Starts) {
    let cfg = Config::tiny();
    let wm = WorldModel::new(g, &cfg).unwrap();
    let bcfg = BehaviourConfig {
        horizon,
        ..BehaviourConfig::default()
    };
    let b = Behaviour::new(g, &cfg, bcfg).unwrap();
    let h = Tensor::from_vec(g, &[n, cfg.deter], &rand_vec(n * cfg.deter, 31, -0.9, 0.9)).unwrap();
    let s = Tensor::from_vec(g, &[n, cfg.stoch], &rand_vec(n * cfg.stoch, 32, -1.5, 1.5)).unwrap();
    (wm, b, Starts::new(&h, &s).unwrap())
}

#[test]
fn imagination_uses_the_documented_noise_streams() {
    let g = gpu();
    let (wm, b, starts) = tiny(&g, 2, 5);
    let cfg = wm.cfg.clone();
    let (n, a) = (5, cfg.action_dim);
    let seed = 77;
    let t = Tape::no_grad(&g);
    let wp = wm.params.bind_frozen(&t);
    let ap = b.actor.bind(&t);
    let policy = Policy {
        actor: &b.actor,
        params: &ap,
        deterministic: false,
    };
    let (sh, ss) = (t.constant(&starts.h), t.constant(&starts.s));
    let im = imagine(&t, &wm, &wp, policy, sh, ss, 2, seed).unwrap();
    let (feats, acts) = (im.feat_values(&t).unwrap(), im.action_values(&t).unwrap());
    assert_eq!((feats.len(), acts.len(), im.horizon()), (3, 2, 2));
    assert_eq!(t.shape(im.feat_all), vec![3 * n, cfg.feat()]);
    assert_eq!(t.shape(im.rewards), vec![3, n]);
    // Step 0 by hand: actor noise stream (seed, 0), prior noise stream (seed, 1).
    let feat0 = ops::concat_last(&t, &[ss, sh]).unwrap();
    let out = b.actor.forward(&t, &ap, feat0).unwrap();
    let eps_a = Tensor::from_vec(&g, &[n, a], &ref_noise(n * a, seed, 0)).unwrap();
    let a0 = action_head(&t, out, Some(Noise::Given(eps_a)))
        .unwrap()
        .action;
    let (h1, prior) = wm.img_step(&t, &wp, ss, a0, sh).unwrap();
    let eps_s = Tensor::from_vec(&g, &[n, cfg.stoch], &ref_noise(n * cfg.stoch, seed, 1)).unwrap();
    let s1 = gaussian_head(&t, prior, cfg.min_std, Noise::Given(eps_s))
        .unwrap()
        .sample;
    let feat1 = ops::concat_last(&t, &[s1, h1]).unwrap();
    let got = feats[1].to_vec().unwrap();
    assert_close(
        &got,
        &t.value(feat1).to_vec().unwrap(),
        1e-5,
        1e-4,
        "feat_1",
    );
    assert_close(
        &acts[0].to_vec().unwrap(),
        &t.value(a0).to_vec().unwrap(),
        1e-6,
        1e-5,
        "a_0",
    );
    // feat_all row block 1 is feat_1; rewards and conts are the heads on it.
    let all = t.value(im.feat_all).to_vec().unwrap();
    assert_eq!(&all[n * cfg.feat()..2 * n * cfg.feat()], got.as_slice());
    let r1 = wm.reward.forward(&t, &wp, feat1).unwrap();
    let c1 = ops::sigmoid(&t, wm.cont.forward(&t, &wp, feat1).unwrap()).unwrap();
    let rewards = t.value(im.rewards).to_vec().unwrap();
    let conts = t.value(im.conts).to_vec().unwrap();
    assert_close(
        &rewards[n..2 * n],
        &t.value(r1).to_vec().unwrap(),
        1e-5,
        1e-4,
        "reward_1",
    );
    assert_close(
        &conts[n..2 * n],
        &t.value(c1).to_vec().unwrap(),
        1e-6,
        1e-4,
        "cont_1",
    );
    // A deterministic policy runs too, and is reproducible.
    let det = |_: ()| {
        let policy = Policy {
            actor: &b.actor,
            params: &ap,
            deterministic: true,
        };
        let im = imagine(&t, &wm, &wp, policy, sh, ss, 2, 5).unwrap();
        t.value(im.feat_all).to_vec().unwrap()
    };
    assert_eq!(det(()), det(()));
}

/// Overwrite element `j` of parameter `name` in the store's tensor (views only; no Adam here).
fn set_elem(g: &Gpu, store: &ParamStore, name: &str, j: usize, value: f32) {
    let tns = store.tensor(store.id(name).unwrap());
    let mut v = tns.to_vec().unwrap();
    v[j] = value;
    g.write(tns.buf(), &v).unwrap();
}

/// Elements to check of a tensor of `len`: all of a small one, else 6 spread out.
fn picks(len: usize) -> Vec<usize> {
    if len <= 24 {
        (0..len).collect()
    } else {
        (0..6).map(|k| k * (len - 1) / 5).collect()
    }
}

/// The tiny agent of the actor's gradient checks (H = 4, 6 starts) with smaller action noise
/// than the initial std of 5, so actions are not all saturated; and the update's noise key.
fn actor_check_setup(g: &Gpu) -> (WorldModel, Behaviour, Starts, u64) {
    let (wm, b, starts) = tiny(g, 4, 6);
    let a = wm.cfg.action_dim;
    let mut bias = vec![0.0f32; 2 * a];
    bias[a..].fill(-4.0);
    b.actor.opt.flat.set("actor.out.bias", &bias).unwrap();
    let seed = b.noise_seed(3);
    (wm, b, starts, seed)
}

/// The actor's gradient, which reaches it only through the frozen dynamics (actions -> GRU ->
/// prior sample -> features -> reward, continue and critic heads), against central differences
/// of the actor loss with the discount weights and the actor's own inputs held fixed (both are
/// stop-gradient: the actor sees `sg(feat_t)`).
#[test]
fn actor_gradient_through_dynamics_matches_finite_differences() {
    let g = common::gpu_with(|t| t.path = rssm::model::RssmPath::Fused);
    let (wm, b, starts, seed) = actor_check_setup(&g);
    let t = Tape::new(&g);
    let obj = b.actor_objective(&t, &wm, &starts, seed, None).unwrap();
    // The fused rollout (ops::imagine) is what this checks; tests/fused_imagine.rs holds the
    // per-op path to it.
    assert_eq!(obj.imagined.path, rssm::model::RssmPath::Fused);
    let weights = obj.weights.clone();
    let inputs: Vec<Tensor> = obj.imagined.feat_values(&t).unwrap();
    let vars = obj.actor_params.vars().to_vec();
    let grads = t.backward(obj.loss).unwrap();
    let loss_at = || -> f64 {
        let t = Tape::no_grad(&g);
        let o = b
            .actor_objective_fixed(
                &t,
                &wm,
                &starts,
                &ImagineNoise::Seeded(seed),
                Some(&weights),
                Some(&inputs),
            )
            .unwrap();
        t.value(o.loss).to_scalar().unwrap() as f64
    };
    let store = b.actor.params();
    let step = 1e-2f32;
    let (mut checked, mut worst, mut largest) = (0, 0.0f64, 0.0f64);
    for (i, name) in store.names().iter().enumerate() {
        let values = store.tensors()[i].to_vec().unwrap();
        let analytic = grads
            .get(vars[i])
            .map(|x| x.to_vec().unwrap())
            .unwrap_or_else(|| vec![0.0; values.len()]);
        for j in picks(values.len()) {
            set_elem(&g, store, name, j, values[j] + step);
            let lp = loss_at();
            set_elem(&g, store, name, j, values[j] - step);
            let lm = loss_at();
            set_elem(&g, store, name, j, values[j]);
            let numeric = (lp - lm) / (2.0 * step as f64);
            let an = analytic[j] as f64;
            let err = (an - numeric).abs();
            assert!(
                err <= 2e-4 + 3e-2 * an.abs().max(numeric.abs()),
                "{name}[{j}]: analytic {an:.6e}, numeric {numeric:.6e}"
            );
            worst = worst.max(err);
            largest = largest.max(an.abs());
            checked += 1;
        }
    }
    eprintln!("actor gradcheck through the dynamics: {checked} elements, worst |diff| {worst:.2e}, largest |grad| {largest:.2e}");
    assert!(
        largest > 1e-2,
        "the check is vacuous: largest actor gradient {largest:.2e}"
    );
}

/// The stop-gradient on the actor's input is real: letting the actor see the live features
/// (finite differences without holding its inputs fixed) gives a different gradient, so the
/// check above would catch a path that leaked through the actor's input.
#[test]
fn actor_input_is_stop_gradient() {
    let g = gpu();
    let (wm, b, starts, seed) = actor_check_setup(&g);
    let t = Tape::new(&g);
    let obj = b.actor_objective(&t, &wm, &starts, seed, None).unwrap();
    let weights = obj.weights.clone();
    let inputs: Vec<Tensor> = obj.imagined.feat_values(&t).unwrap();
    let loss_at = |fixed: bool| -> f64 {
        let t = Tape::no_grad(&g);
        let o = b
            .actor_objective_fixed(
                &t,
                &wm,
                &starts,
                &ImagineNoise::Seeded(seed),
                Some(&weights),
                fixed.then_some(inputs.as_slice()),
            )
            .unwrap();
        t.value(o.loss).to_scalar().unwrap() as f64
    };
    // The actor's first layer: its inputs matter at every step.
    let store = b.actor.params();
    let name = "actor.l0.weight";
    let values = store.tensor(store.id(name).unwrap()).to_vec().unwrap();
    let step = 1e-2f32;
    let mut largest_gap = 0.0f64;
    for j in picks(values.len()) {
        let mut d = [0.0f64; 2];
        for (k, fixed) in [true, false].into_iter().enumerate() {
            set_elem(&g, store, name, j, values[j] + step);
            let lp = loss_at(fixed);
            set_elem(&g, store, name, j, values[j] - step);
            let lm = loss_at(fixed);
            set_elem(&g, store, name, j, values[j]);
            d[k] = (lp - lm) / (2.0 * step as f64);
        }
        largest_gap = largest_gap.max((d[0] - d[1]).abs());
    }
    assert!(
        largest_gap > 1e-4,
        "holding the actor's inputs fixed changed no derivative (largest gap {largest_gap:.2e})"
    );
}

#[test]
fn critic_gradient_matches_finite_differences() {
    let g = gpu();
    let (h, n) = (3, 5);
    let (wm, b, _) = tiny(&g, h, n);
    let f = wm.cfg.feat();
    let feats = Tensor::from_vec(&g, &[h * n, f], &rand_vec(h * n * f, 41, -1.5, 1.5)).unwrap();
    let targets = Tensor::from_vec(&g, &[h, n], &rand_vec(h * n, 42, -2.0, 2.0)).unwrap();
    let weights = Tensor::from_vec(&g, &[h, n], &rand_vec(h * n, 43, 0.2, 1.0)).unwrap();
    let t = Tape::new(&g);
    let obj = b.critic_objective(&t, &feats, &targets, &weights).unwrap();
    let vars = obj.critic_params.vars().to_vec();
    let grads = t.backward(obj.loss).unwrap();
    // Reference value of the loss on the host from the critic's outputs.
    let loss_at = || -> f64 {
        let t = Tape::no_grad(&g);
        let o = b.critic_objective(&t, &feats, &targets, &weights).unwrap();
        let v = t.value(o.values).to_vec().unwrap();
        let (r, w) = (targets.to_vec().unwrap(), weights.to_vec().unwrap());
        let want: f64 = v
            .iter()
            .zip(&r)
            .zip(&w)
            .map(|((v, r), w)| 0.5 * *w as f64 * (*v as f64 - *r as f64).powi(2))
            .sum::<f64>()
            / v.len() as f64;
        let got = t.value(o.loss).to_scalar().unwrap() as f64;
        assert!(
            (got - want).abs() <= 1e-5 * (1.0 + want.abs()),
            "critic loss {got} vs {want}"
        );
        got
    };
    let store = b.critic.params();
    let step = 1e-2f32;
    let mut checked = 0;
    for (i, name) in store.names().iter().enumerate() {
        let values = store.tensors()[i].to_vec().unwrap();
        let analytic = grads
            .get(vars[i])
            .map(|x| x.to_vec().unwrap())
            .unwrap_or_else(|| vec![0.0; values.len()]);
        for j in picks(values.len()) {
            set_elem(&g, store, name, j, values[j] + step);
            let lp = loss_at();
            set_elem(&g, store, name, j, values[j] - step);
            let lm = loss_at();
            set_elem(&g, store, name, j, values[j]);
            let numeric = (lp - lm) / (2.0 * step as f64);
            let an = analytic[j] as f64;
            assert!(
                (an - numeric).abs() <= 2e-4 + 3e-2 * an.abs().max(numeric.abs()),
                "{name}[{j}]: analytic {an:.6e}, numeric {numeric:.6e}"
            );
            checked += 1;
        }
    }
    eprintln!("critic gradcheck: {checked} elements");
}

#[test]
fn behaviour_update_changes_actor_and_critic_but_not_the_world_model() {
    let g = gpu();
    let (wm, mut b, starts) = tiny(&g, 5, 6);
    let wm_before = wm.params.to_host().unwrap();
    let actor_before = b.actor.params().to_host().unwrap();
    let critic_before = b.critic.params().to_host().unwrap();
    let names: Vec<String> = b.actor.params().names().to_vec();
    assert_eq!(names.first().map(String::as_str), Some("actor.l0.weight"));
    assert!(
        names.iter().any(|n| n == "actor.l3.bias") && names.iter().any(|n| n == "actor.out.weight")
    );
    assert_eq!(
        b.actor
            .params()
            .tensor(b.actor.params().id("actor.out.weight").unwrap())
            .shape(),
        [4, 6]
    );
    assert!(
        b.critic.params().id("critic.l2.weight").is_some()
            && b.critic.params().id("critic.l3.weight").is_none()
    );
    // The policy statistics the first update reports, computed on the host from the actor's
    // raw output `[m | r]` on the start features.
    let (want_rms, want_std) = {
        let t = Tape::no_grad(&g);
        let feat = ops::concat_last(&t, &[t.constant(&starts.s), t.constant(&starts.h)]).unwrap();
        let out = b.actor.forward(&t, &b.actor.bind_frozen(&t), feat).unwrap();
        let raw = t.value(out).to_vec().unwrap();
        let a = raw.len() / starts.len() / 2;
        let (mut sq, mut std, mut k) = (0.0f64, 0.0f64, 0.0f64);
        for row in raw.chunks(2 * a) {
            for i in 0..a {
                let mean = 5.0 * (row[i] as f64 / 5.0).tanh();
                let x = row[a + i] as f64 + ((5.0f64).exp() - 1.0).ln();
                sq += mean * mean;
                std += x.exp().ln_1p() + 1e-4;
                k += 1.0;
            }
        }
        ((sq / k).sqrt(), std / k)
    };
    let mut ms = vec![];
    for _ in 0..3 {
        ms.push(b.update(&wm, &starts).unwrap());
    }
    let first = &ms[0];
    assert!(
        (first.actor_mean_rms as f64 - want_rms).abs() < 1e-4 * (1.0 + want_rms)
            && (first.actor_std as f64 - want_std).abs() < 1e-4 * want_std,
        "{first:?}: want mean rms {want_rms}, std {want_std}"
    );
    eprintln!("{:?}", ms.last().unwrap());
    for m in &ms {
        for v in [
            m.actor_loss,
            m.critic_loss,
            m.mean_return,
            m.mean_value,
            m.mean_reward,
            m.mean_cont,
            m.actor_grad_norm,
            m.critic_grad_norm,
        ] {
            assert!(v.is_finite(), "{m:?}");
        }
        assert!(m.actor_grad_norm > 0.0 && m.critic_grad_norm > 0.0, "{m:?}");
        assert!((0.0..=1.0).contains(&m.mean_cont), "{m:?}");
    }
    assert_eq!(ms.last().unwrap().update, 3);
    assert_eq!(
        wm.params.to_host().unwrap(),
        wm_before,
        "the world model changed"
    );
    assert_ne!(
        b.actor.params().to_host().unwrap(),
        actor_before,
        "the actor did not move"
    );
    assert_ne!(
        b.critic.params().to_host().unwrap(),
        critic_before,
        "the critic did not move"
    );
    // The views the networks read and the optimisers' flat buffers agree.
    let flat = b.actor.opt.flat.to_vec().unwrap();
    let views: Vec<f32> = b
        .actor
        .params()
        .tensors()
        .iter()
        .flat_map(|x| x.to_vec().unwrap())
        .collect();
    assert_eq!(flat, views);
}

#[test]
fn behaviour_update_is_reproducible_and_one_submit() {
    // A device of its own: the counters must not see other tests' work.
    let g = Gpu::new(&GpuOptions::default()).unwrap();
    let run = |updates: usize| {
        let (wm, mut b, starts) = tiny(&g, 15, 10);
        let mut out = vec![];
        for _ in 0..updates {
            let before = g.stats();
            let m = b.update(&wm, &starts).unwrap();
            let after = g.stats();
            out.push((
                m.actor_loss,
                m.critic_loss,
                after.submits - before.submits,
                after.readbacks - before.readbacks,
                after.dispatches - before.dispatches,
            ));
        }
        out
    };
    let a = run(2);
    let b = run(2);
    assert_eq!(a, b, "same seeds, same updates");
    for (_, _, submits, readbacks, dispatches) in &a {
        assert_eq!(
            (*submits, *readbacks),
            (1, 1),
            "one submit and one readback per update"
        );
        eprintln!("dispatches per behaviour update (H = 15, tiny): {dispatches}");
    }
    assert_ne!(
        a[0].0, a[1].0,
        "the second update differs (new noise, new weights)"
    );
}

#[test]
fn starts_come_from_the_posterior_states_of_a_batch() {
    let g = gpu();
    let cfg = Config::tiny();
    let wm = WorldModel::new(&g, &cfg).unwrap();
    let (b, t_len, a) = (cfg.batch, cfg.seq_len, cfg.action_dim);
    let batch = rssm::model::DeviceBatch {
        obs: Tensor::from_vec(
            &g,
            &[b, t_len, 3, 64, 64],
            &rand_vec(b * t_len * 3 * 64 * 64, 51, -0.5, 0.5),
        )
        .unwrap(),
        action: Tensor::from_vec(&g, &[b, t_len, a], &rand_vec(b * t_len * a, 52, -1.0, 1.0))
            .unwrap(),
        reward: Tensor::zeros(&g, &[b, t_len]).unwrap(),
        cont: Tensor::full(&g, &[b, t_len], 1.0).unwrap(),
        eps: None,
    };
    let tape = Tape::no_grad(&g);
    let p = wm.params.bind_frozen(&tape);
    let out = wm.loss(&tape, &p, &batch, 0).unwrap();
    let starts = Starts::from_loss(&out).unwrap();
    assert_eq!(
        (starts.len(), starts.h.shape(), starts.s.shape()),
        (
            b * t_len,
            &[b * t_len, cfg.deter][..],
            &[b * t_len, cfg.stoch][..]
        )
    );
    assert_eq!(starts.s.to_vec().unwrap(), out.stoch.to_vec().unwrap());
    let mut agent = Behaviour::new(&g, &cfg, BehaviourConfig::default()).unwrap();
    let m = agent.update(&wm, &starts).unwrap();
    assert!(
        m.actor_loss.is_finite() && m.critic_loss.is_finite(),
        "{m:?}"
    );
    // Mismatched leading shapes are rejected.
    assert!(Starts::new(&out.deter, &starts.s).is_err());
}

/// The critic tracks returns: with a reward head that predicts about 0.5 everywhere, the
/// critic's error on the imagined lambda-returns (its loss) falls to under a tenth within
/// 100 updates (to 0.047 of it when written), and its mean value approaches the mean return.
#[test]
fn critic_learns_the_imagined_returns() {
    let g = gpu();
    let cfg = Config::tiny();
    let wm = WorldModel::new(&g, &cfg).unwrap();
    let bias = wm.params.tensor(wm.params.id("reward.out.bias").unwrap());
    g.write(bias.buf(), &[0.5]).unwrap();
    let bcfg = BehaviourConfig {
        horizon: 5,
        gamma: 0.9,
        critic_lr: 3e-3,
        ..BehaviourConfig::default()
    };
    let mut b = Behaviour::new(&g, &cfg, bcfg).unwrap();
    let n = 16;
    let h = Tensor::from_vec(&g, &[n, cfg.deter], &rand_vec(n * cfg.deter, 33, -0.9, 0.9)).unwrap();
    let s = Tensor::from_vec(&g, &[n, cfg.stoch], &rand_vec(n * cfg.stoch, 34, -1.5, 1.5)).unwrap();
    let starts = Starts::new(&h, &s).unwrap();
    let metrics: Vec<_> = (0..100).map(|_| b.update(&wm, &starts).unwrap()).collect();
    let mean = |ms: &[rssm::agent::BehaviourMetrics],
                f: fn(&rssm::agent::BehaviourMetrics) -> f32| {
        ms.iter().map(|m| f(m) as f64).sum::<f64>() / ms.len() as f64
    };
    let first = mean(&metrics[..3], |m| m.critic_loss);
    let last = mean(&metrics[95..], |m| m.critic_loss);
    let (ret, val) = (
        mean(&metrics[95..], |m| m.mean_return),
        mean(&metrics[95..], |m| m.mean_value),
    );
    eprintln!("critic loss {first:.4} -> {last:.4}; mean return {ret:.3}, mean value {val:.3}");
    assert!(first > 0.05, "the returns are already predicted: {first}");
    assert!(
        last < 0.1 * first,
        "the critic's error on the lambda-returns went from {first} to {last}, not below a tenth"
    );
    assert!(
        (val - ret).abs() < 0.2 * ret.abs(),
        "mean value {val} does not track the mean return {ret}"
    );
}

/// The critic's objective on the actor objective's forward pass (what the update records)
/// equals the one that evaluates the critic again: loss, values and every gradient. A
/// forward pass with fewer rows than the features is refused.
#[test]
fn critic_objective_reusing_the_actor_pass_matches_a_fresh_one() {
    let g = gpu();
    let (h, n) = (3, 5);
    let (wm, b, starts) = tiny(&g, h, n);
    let ta = Tape::new(&g);
    let obj = b.actor_objective(&ta, &wm, &starts, 7, None).unwrap();
    let feat_all = ta.value(obj.imagined.feat_all);
    let f = feat_all.last_dim();
    let all = feat_all.to_vec().unwrap();
    let feats = Tensor::from_vec(&g, &[h * n, f], &all[..h * n * f]).unwrap();
    let targets = ta.value(obj.returns);
    let run = |reuse: bool| {
        let t = Tape::new(&g);
        let fwd = reuse.then_some(&obj.critic_forward);
        let o = b
            .critic_objective_from(&t, &feats, fwd, &targets, &obj.weights)
            .unwrap();
        let loss = t.value(o.loss).to_scalar().unwrap();
        let values = t.value(o.values).to_vec().unwrap();
        let vars = o.critic_params.vars().to_vec();
        let grads = t.backward(o.loss).unwrap();
        let gs: Vec<Vec<f32>> = vars
            .iter()
            .map(|v| grads.get(*v).unwrap().to_vec().unwrap())
            .collect();
        (loss, values, gs)
    };
    let (l0, v0, g0) = run(false);
    let (l1, v1, g1) = run(true);
    assert!(
        (l0 - l1).abs() <= 1e-6 * (1.0 + l0.abs()),
        "loss {l1} vs {l0}"
    );
    assert_close(&v1, &v0, 1e-6, 1e-6, "values");
    for (i, (a, c)) in g0.iter().zip(&g1).enumerate() {
        assert_close(c, a, 1e-5, 1e-5, &format!("critic gradient {i}"));
    }
    // More features than the forward pass evaluated: an error, not a read past its rows.
    let rows = (h + 1) * n + 1;
    let big = Tensor::from_vec(&g, &[rows, f], &vec![0.5; rows * f]).unwrap();
    let t = Tape::new(&g);
    let wide_targets = Tensor::zeros(&g, &[rows, 1]).unwrap();
    let wide_weights = Tensor::zeros(&g, &[rows, 1]).unwrap();
    let err = b
        .critic_objective_from(
            &t,
            &big,
            Some(&obj.critic_forward),
            &wide_targets,
            &wide_weights,
        )
        .err()
        .expect("a forward pass with too few rows must be refused");
    assert!(err.to_string().contains("mlp_from_forward"), "{err}");
}
