//! Tensors larger than one storage binding: ops run over slices that fit, with the results of
//! one unsliced dispatch. A device of its own with a small `max_binding` cap stands in for a
//! large batch on a device with the usual 128 MiB limit.

mod common;

use common::{assert_close, rand_vec};
use rssm::gpu::{Gpu, GpuOptions};
use rssm::model::{Config, DeviceBatch, WorldModel};
use rssm::ops::{self, Act};
use rssm::tensor::{Tape, Tensor};

fn capped(bytes: u64) -> Gpu {
    Gpu::new(&GpuOptions {
        max_binding: Some(bytes),
        ..GpuOptions::default()
    })
    .unwrap()
}

/// A model whose images (48 KiB each) and first conv activations (15 KiB each) outgrow a
/// 256 KiB binding over 24 images, while every weight still fits one.
fn cfg() -> Config {
    Config {
        deter: 32,
        stoch: 8,
        hidden: 32,
        depth: 4,
        units: 32,
        batch: 2,
        seq_len: 12,
        action_dim: 2,
        ..Config::dreamer()
    }
}

fn batch(g: &Gpu, c: &Config) -> DeviceBatch {
    let (b, t, a, s) = (c.batch, c.seq_len, c.action_dim, c.stoch);
    DeviceBatch {
        obs: Tensor::from_vec(
            g,
            &[b, t, 3, 64, 64],
            &rand_vec(b * t * 3 * 64 * 64, 1, -0.5, 0.5),
        )
        .unwrap(),
        action: Tensor::from_vec(g, &[b, t, a], &rand_vec(b * t * a, 2, -1.0, 1.0)).unwrap(),
        reward: Tensor::from_vec(g, &[b, t], &rand_vec(b * t, 3, 0.0, 1.0)).unwrap(),
        cont: Tensor::full(g, &[b, t], 1.0).unwrap(),
        eps: Some(Tensor::from_vec(g, &[b, t, s], &rand_vec(b * t * s, 4, -1.5, 1.5)).unwrap()),
    }
}

/// The loss, the image NLL and every parameter's gradient (in parameter order).
fn loss_and_grads(g: &Gpu) -> (f32, f32, Vec<(String, Vec<f32>)>) {
    let c = cfg();
    let model = WorldModel::new(g, &c).unwrap();
    let b = batch(g, &c);
    let t = Tape::new(g);
    let p = model.params.bind(&t);
    let out = model.loss(&t, &p, &b, 0).unwrap();
    let loss = t.value(out.loss).to_scalar().unwrap();
    let image = out.image_nll.to_scalar().unwrap();
    let grads = t.backward(out.loss).unwrap();
    let g: Vec<(String, Vec<f32>)> = model
        .params
        .names()
        .iter()
        .zip(p.vars())
        .map(|(n, v)| (n.clone(), grads.get(*v).unwrap().to_vec().unwrap()))
        .collect();
    (loss, image, g)
}

#[test]
fn a_world_model_batch_past_the_binding_limit_gives_the_same_loss_and_gradients() {
    let cap = 256 << 10;
    let c = cfg();
    let n = c.batch * c.seq_len;
    // The premise: images and first activations need several slices, weights do not.
    assert!(n * 3 * 64 * 64 * 4 > cap && n * c.depth * 31 * 31 * 4 > cap);
    let whole = common::gpu();
    let sliced = capped(cap as u64);
    let (l0, i0, g0) = loss_and_grads(&whole);
    let s0 = sliced.stats();
    let (l1, i1, g1) = loss_and_grads(&sliced);
    assert!(
        sliced.stats().dispatches - s0.dispatches > 0,
        "the capped device ran the step"
    );
    assert!(
        l0.is_finite() && (l0 - l1).abs() <= 1e-4 * l0.abs(),
        "loss {l0} vs {l1}"
    );
    assert!((i0 - i1).abs() <= 1e-4 * i0.abs(), "image nll {i0} vs {i1}");
    for ((name, a), (_, b)) in g0.iter().zip(&g1) {
        let scale = a.iter().fold(0f32, |m, v| m.max(v.abs())).max(1e-6);
        assert_close(b, a, 2e-4 * scale, 1e-3, name);
    }
}

#[test]
fn a_sliced_step_records_more_dispatches_in_the_same_submit() {
    // Slicing happens inside one recorded step: still one submit for the whole loss.
    let g = capped(256 << 10);
    let c = cfg();
    let model = WorldModel::new(&g, &c).unwrap();
    let b = batch(&g, &c);
    g.flush();
    let s0 = g.stats();
    let t = Tape::new(&g);
    let p = model.params.bind(&t);
    let out = model.loss(&t, &p, &b, 0).unwrap();
    let grads = t.backward(out.loss).unwrap();
    drop(grads);
    out.image_nll.to_scalar().unwrap();
    assert_eq!(g.stats().submits - s0.submits, 1);
}

#[test]
fn linear_over_row_blocks_matches_one_dispatch() {
    // x [300, 64] is 75 KiB; a 16 KiB binding holds 64 of its rows. The weight gradient
    // (x^T g) runs over blocks of the reduction instead.
    let run = |g: &Gpu| {
        let t = Tape::new(g);
        let x =
            t.param(&Tensor::from_vec(g, &[300, 64], &rand_vec(300 * 64, 5, -1.0, 1.0)).unwrap());
        let w = t.param(&Tensor::from_vec(g, &[24, 64], &rand_vec(24 * 64, 6, -0.3, 0.3)).unwrap());
        let b = t.param(&Tensor::from_vec(g, &[24], &rand_vec(24, 7, -0.1, 0.1)).unwrap());
        let y = ops::linear(&t, x, w, Some(b), Act::Elu).unwrap();
        let sq = ops::mul(&t, y, y).unwrap();
        let loss = ops::sum_all(&t, sq).unwrap();
        let yv = t.value(y).to_vec().unwrap();
        let grads = t.backward(loss).unwrap();
        let gs: Vec<Vec<f32>> = [x, w, b]
            .iter()
            .map(|v| grads.get(*v).unwrap().to_vec().unwrap())
            .collect();
        (yv, gs)
    };
    let (y0, g0) = run(&common::gpu());
    let (y1, g1) = run(&capped(16 << 10));
    assert_close(&y1, &y0, 1e-5, 1e-5, "y");
    for (i, (a, b)) in g0.iter().zip(&g1).enumerate() {
        assert_close(b, a, 1e-3, 1e-4, &format!("gradient {i}"));
    }
}

#[test]
fn elementwise_ops_with_broadcasting_match_one_dispatch() {
    let run = |g: &Gpu| {
        let t = Tape::new(g);
        let x = t.param(&Tensor::from_vec(g, &[500, 40], &rand_vec(20_000, 8, -2.0, 2.0)).unwrap());
        let r = t.param(&Tensor::from_vec(g, &[40], &rand_vec(40, 9, -1.0, 1.0)).unwrap());
        let y = ops::add(&t, x, r).unwrap();
        let y = ops::tanh(&t, y).unwrap();
        let z = ops::mul(&t, y, x).unwrap();
        let loss = ops::mean_all(&t, z).unwrap();
        let zv = t.value(z).to_vec().unwrap();
        let grads = t.backward(loss).unwrap();
        let gx = grads.get(x).unwrap().to_vec().unwrap();
        (zv, gx, grads.get(r).unwrap().to_vec().unwrap())
    };
    let (z0, g0, r0) = run(&common::gpu());
    // 80,000-byte tensors in 4 KiB bindings; the broadcast operand's gradient sums its 500
    // copies over slices.
    let g = capped(4 << 10);
    let (z1, g1, r1) = run(&g);
    assert_close(&z1, &z0, 1e-6, 1e-6, "z");
    assert_close(&g1, &g0, 1e-7, 1e-5, "dx");
    assert_close(&r1, &r0, 1e-7, 1e-4, "dr");
}

#[test]
fn a_single_row_past_the_binding_limit_is_a_clear_error() {
    let g = capped(64 << 10);
    let t = Tape::new(&g);
    // One image row of the image loss is 48 KiB and fits; a row of 20,000 values does not.
    let a = t.param(&Tensor::zeros(&g, &[2, 20_000]).unwrap());
    let b = t.constant(&Tensor::zeros(&g, &[2, 20_000]).unwrap());
    let err = ops::loss::mse_nll(&t, a, b, 20_000)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("one row of a row loss") && err.contains("80000") && err.contains("65536"),
        "{err}"
    );
}

#[test]
fn a_cap_of_zero_is_refused() {
    let err = Gpu::new(&GpuOptions {
        max_binding: Some(0),
        ..GpuOptions::default()
    })
    .err()
    .expect("must fail")
    .to_string();
    assert!(err.contains("binding cap"), "{err}");
}
