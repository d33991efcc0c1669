//! The engine's promises about memory, submits and errors.

mod common;

use common::rand_vec;
use rssm::gpu::{Gpu, GpuOptions};
use rssm::ops::{self, Act};
use rssm::tensor::{Tape, Tensor};

/// One training step of a small MLP: forward, backward, SGD update, one loss readback.
fn mlp_step(g: &Gpu, params: &[Tensor], x: &Tensor) -> f32 {
    let t = Tape::new(g);
    let p: Vec<_> = params.iter().map(|p| t.param(p)).collect();
    let xv = t.constant(x);
    let h = ops::linear(&t, xv, p[0], Some(p[1]), Act::Elu).unwrap();
    let y = ops::linear(&t, h, p[2], Some(p[3]), Act::None).unwrap();
    let sq = ops::mul(&t, y, y).unwrap();
    let loss = ops::mean_all(&t, sq).unwrap();
    let loss_t = t.value(loss);
    let grads = t.backward(loss).unwrap();
    for (param, v) in params.iter().zip(&p) {
        param.axpy_assign(-0.1, grads.get(*v).unwrap()).unwrap();
    }
    drop(grads);
    loss_t.to_scalar().unwrap()
}

fn mlp_params(g: &Gpu) -> Vec<Tensor> {
    vec![
        Tensor::from_vec(g, &[16, 8], &rand_vec(128, 1, -0.3, 0.3)).unwrap(),
        Tensor::zeros(g, &[16]).unwrap(),
        Tensor::from_vec(g, &[4, 16], &rand_vec(64, 2, -0.3, 0.3)).unwrap(),
        Tensor::zeros(g, &[4]).unwrap(),
    ]
}

#[test]
fn steady_training_loop_allocates_nothing_and_submits_once_per_step() {
    // A device of its own: the counters must not see other tests' work.
    let g = Gpu::new(&GpuOptions::default()).unwrap();
    let params = mlp_params(&g);
    let x = Tensor::from_vec(&g, &[32, 8], &rand_vec(256, 3, -1.0, 1.0)).unwrap();
    let mut losses = vec![];
    for _ in 0..3 {
        losses.push(mlp_step(&g, &params, &x));
    }
    let warm = g.stats();
    for _ in 0..5 {
        losses.push(mlp_step(&g, &params, &x));
    }
    let after = g.stats();
    assert_eq!(
        after.buffers_created, warm.buffers_created,
        "GPU buffers created after warm-up"
    );
    assert_eq!(after.submits - warm.submits, 5, "one submit per step");
    assert_eq!(after.readbacks - warm.readbacks, 5, "one readback per step");
    let per_step = (after.dispatches - warm.dispatches) / 5;
    assert!(
        per_step > 5 && per_step < 40,
        "dispatches per step: {per_step}"
    );
    assert!(
        losses.last().unwrap() < &losses[0],
        "SGD did not reduce the loss: {losses:?}"
    );
}

#[test]
fn backward_frees_activations() {
    let g = Gpu::new(&GpuOptions::default()).unwrap();
    let params = mlp_params(&g);
    let x = Tensor::from_vec(&g, &[512, 8], &rand_vec(4096, 3, -1.0, 1.0)).unwrap();
    let base = g.stats().bytes_in_use;
    let t = Tape::new(&g);
    let p: Vec<_> = params.iter().map(|p| t.param(p)).collect();
    let xv = t.constant(&x);
    let h = ops::linear(&t, xv, p[0], Some(p[1]), Act::Elu).unwrap();
    let h2 = ops::linear(&t, h, p[2], Some(p[3]), Act::Elu).unwrap();
    let loss = ops::mean_all(&t, h2).unwrap();
    let during = g.stats().bytes_in_use;
    assert!(
        during > base + 512 * 16 * 4,
        "activations should be live: {base} -> {during}"
    );
    let grads = t.backward(loss).unwrap();
    let after = g.stats().bytes_in_use;
    // What remains: the parameter gradients (small), not the [512,16] activations.
    assert!(
        after < base + 512 * 16 * 4,
        "activations not freed: {base} -> {during} -> {after}"
    );
    drop(grads);
}

#[test]
fn no_grad_tape_saves_nothing() {
    let g = common::gpu();
    let t = Tape::no_grad(&g);
    let w = t.param(&Tensor::zeros(&g, &[3, 2]).unwrap());
    let x = t.constant(&Tensor::zeros(&g, &[4, 2]).unwrap());
    let y = ops::linear(&t, x, w, None, Act::Elu).unwrap();
    assert!(!t.requires_grad(y));
    let loss = ops::sum_all(&t, y).unwrap();
    let err = t
        .backward(loss)
        .err()
        .expect("backward on a no-grad tape must fail")
        .to_string();
    assert!(err.contains("does not depend"), "{err}");
}

#[test]
fn backward_needs_a_scalar() {
    let g = common::gpu();
    let t = Tape::new(&g);
    let x = t.param(&Tensor::zeros(&g, &[3]).unwrap());
    let y = ops::tanh(&t, x).unwrap();
    let err = t.backward(y).err().unwrap().to_string();
    assert!(err.contains("scalar"), "{err}");
}

#[test]
fn too_large_for_the_device_is_a_clear_error() {
    let g = common::gpu();
    // Larger than one binding is fine (ops bind it in slices); larger than one buffer is not.
    let limit = g.limits().max_buffer_size;
    let len = (limit / 4 + 1) as usize;
    let err = Tensor::empty(&g, &[len]).unwrap_err().to_string();
    assert!(
        err.contains("per buffer") && err.contains(&g.report().name),
        "{err}"
    );
}

#[test]
fn recording_is_lazy_until_readback() {
    let g = Gpu::new(&GpuOptions::default()).unwrap();
    let t = Tape::no_grad(&g);
    let x = t.constant(&Tensor::full(&g, &[10], 2.0).unwrap());
    let mut y = x;
    for _ in 0..20 {
        y = ops::scale(&t, y, 1.0, 1.0).unwrap();
    }
    let submits = g.stats().submits;
    assert_eq!(g.pending_dispatches(), 20);
    assert_eq!(t.value(y).to_vec().unwrap(), vec![22.0; 10]);
    assert_eq!(
        g.stats().submits,
        submits + 1,
        "twenty dispatches, one submit"
    );
}

#[test]
fn adapter_report_names_the_device() {
    let g = common::gpu();
    let r = g.report();
    assert!(!r.name.is_empty());
    let text = r.to_string();
    assert!(text.contains("max storage buffer binding") && text.contains(&r.name));
}

#[test]
fn unknown_adapter_name_lists_the_available_ones() {
    let err = Gpu::new(&GpuOptions {
        adapter: Some("no-such-adapter-xyz".into()),
        ..GpuOptions::default()
    })
    .err()
    .expect("must fail")
    .to_string();
    assert!(
        err.contains("no-such-adapter-xyz") && err.contains("available"),
        "{err}"
    );
}

#[test]
fn gpu_timestamps_time_a_batch_of_dispatches() {
    let g = common::gpu();
    let t = Tape::no_grad(&g);
    let x = t.constant(&Tensor::full(&g, &[64, 64], 1.0).unwrap());
    let w = t.constant(&Tensor::full(&g, &[64, 64], 0.5).unwrap());
    let (y, secs) = g
        .gpu_time(|| ops::linear(&t, x, w, None, Act::None).unwrap())
        .unwrap();
    assert_eq!(t.value(y).to_vec().unwrap()[0], 32.0);
    if g.report().timestamps {
        let s = secs.expect("timestamps available");
        assert!(s > 0.0 && s < 10.0, "{s}");
    } else {
        assert!(secs.is_none());
    }
}

/// On a CPU driver subnormal results are flushed to zero (as GPUs do and WGSL allows): its
/// worker threads inherit the flush mode set while the device is created, because subnormal
/// operands cost the host FPU about a hundred times as much (gpu::denormals). The creating
/// thread gets its own mode back, so the host's f32 arithmetic is untouched.
#[test]
fn cpu_drivers_flush_subnormals_and_the_host_keeps_them() {
    let g = Gpu::new(&GpuOptions::default()).unwrap();
    // Host: 1e-20 * 1e-20 = 1e-40 is subnormal, and stays so after the device was created.
    let host = std::hint::black_box(1e-20f32) * std::hint::black_box(1e-20f32);
    assert!(host > 0.0 && !host.is_normal(), "host product {host:e}");
    // Device: a [4, 4] x [4, 4] matmul of 1e-20 entries, each output a sum of 4e-40.
    let a = Tensor::from_vec(&g, &[4, 4], &[1e-20; 16]).unwrap();
    let t = Tape::no_grad(&g);
    let (av, bv) = (t.constant(&a), t.constant(&a));
    let c = t
        .value(ops::matmul(&t, av, bv, false, false).unwrap())
        .to_vec()
        .unwrap();
    let cpu_flushes =
        g.report().is_cpu() && cfg!(any(target_arch = "x86_64", target_arch = "aarch64"));
    for v in c {
        if cpu_flushes {
            assert_eq!(v, 0.0, "a subnormal result on a CPU driver");
        } else {
            assert!(v == 0.0 || (v - 4e-40).abs() < 1e-41, "{v:e}");
        }
    }
}
