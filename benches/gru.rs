//! Fused GRU cell, forward + backward at the RSSM's size: batch 2500 (B = 50 sequences x T = 50
//! steps' worth of rows), input 200 -> hidden 200. Each iteration records the whole step on a
//! tape (2 gate matmuls + the fused cell forward; the fused cell backward, 4 matmuls and 2 bias
//! sums) and waits for the device.
//!
//! FLOPs counted are the matmuls': forward 2 B 3H (I + H); backward twice that (dx, dh, dW_ih,
//! dW_hh), so fwd+bwd = 6 B 3H (I + H) = 3.6 GFLOP. Criterion's "elem/s" is FLOP/s; a plain
//! ms / GFLOP/s line is printed too.

use std::time::{Duration, Instant};

mod common;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use rand::{Rng, SeedableRng};
use rssm::gpu::{Gpu, GpuOptions};
use rssm::ops::gru::gru_cell;
use rssm::tensor::{Tape, Tensor};

const B: usize = 2500;
const I: usize = 200;
const H: usize = 200;

fn rand_tensor(gpu: &Gpu, shape: &[usize], scale: f32, seed: u64) -> Tensor {
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let n: usize = shape.iter().product();
    let v: Vec<f32> = (0..n).map(|_| rng.random_range(-scale..scale)).collect();
    Tensor::from_vec(gpu, shape, &v).unwrap()
}

/// x, h, w_ih, w_hh, b_ih, b_hh
fn inputs(gpu: &Gpu) -> Vec<Tensor> {
    let k = 1.0 / (H as f32).sqrt();
    vec![
        rand_tensor(gpu, &[B, I], 1.0, 1),
        rand_tensor(gpu, &[B, H], 1.0, 2),
        rand_tensor(gpu, &[3 * H, I], k, 3),
        rand_tensor(gpu, &[3 * H, H], k, 4),
        rand_tensor(gpu, &[3 * H], k, 5),
        rand_tensor(gpu, &[3 * H], k, 6),
    ]
}

/// One recorded forward + backward (submitted by the caller).
fn step(gpu: &Gpu, ins: &[Tensor], seed: &Tensor) {
    let t = Tape::new(gpu);
    let v: Vec<_> = ins.iter().map(|x| t.param(x)).collect();
    let y = gru_cell(&t, v[0], v[1], v[2], v[3], v[4], v[5]).unwrap();
    drop(t.backward_with(y, seed.clone()).unwrap());
}

/// One recorded forward on a no-grad tape (nothing saved; submitted by the caller).
fn forward(gpu: &Gpu, ins: &[Tensor]) {
    let t = Tape::no_grad(gpu);
    let v: Vec<_> = ins.iter().map(|x| t.constant(x)).collect();
    gru_cell(&t, v[0], v[1], v[2], v[3], v[4], v[5]).unwrap();
}

fn bench(c: &mut Criterion) {
    let gpu = Gpu::new(&GpuOptions::default()).expect("adapter");
    println!("adapter: {}", gpu.report().short());
    let ins = inputs(&gpu);
    let seed = Tensor::full(&gpu, &[B, H], 1.0).unwrap();
    let fwd_flops = (2 * B * 3 * H * (I + H)) as u64;
    let step_flops = 3 * fwd_flops;

    // Warm up (pipelines, pool), then a plain timing for the summary line.
    for _ in 0..2 {
        step(&gpu, &ins, &seed);
        gpu.sync();
    }
    let n = 5;
    let t0 = Instant::now();
    for _ in 0..n {
        step(&gpu, &ins, &seed);
        gpu.sync();
    }
    let s = t0.elapsed().as_secs_f64() / n as f64;
    println!(
        "gru_cell B={B} I={I} H={H} fwd+bwd: {:.2} ms, {:.1} GFLOP/s (matmul FLOPs {:.2} G) on {}",
        s * 1e3,
        step_flops as f64 / s / 1e9,
        step_flops as f64 / 1e9,
        gpu.report().short()
    );

    let mut group = c.benchmark_group("gru");
    group.sample_size(10);
    group.warm_up_time(Duration::from_secs(1));
    group.measurement_time(Duration::from_secs(3));
    group.throughput(Throughput::Elements(step_flops));
    group.bench_function("cell fwd+bwd 2500x200->200", |b| {
        b.iter_custom(|iters| common::gpu_timed(&gpu, iters, || step(&gpu, &ins, &seed)))
    });
    group.throughput(Throughput::Elements(fwd_flops));
    group.bench_function("cell fwd (no grad) 2500x200->200", |b| {
        b.iter_custom(|iters| common::gpu_timed(&gpu, iters, || forward(&gpu, &ins)))
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
