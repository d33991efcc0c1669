//! Tensors larger than one storage binding: ops run over slices that fit, with the results of
//! one unsliced dispatch. A device of its own with a small `max_binding` cap stands in for a
//! large batch on a device with the usual 128 MiB limit.

mod common;

use common::{assert_close, capped, rand_vec};
use rssm::gpu::{Gpu, GpuOptions};
use rssm::model::{Config, DeviceBatch, WorldModel};
use rssm::ops::{self};
use rssm::tensor::{Tape, Tensor};

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
