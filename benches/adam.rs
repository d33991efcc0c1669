//! Adam + global-norm clipping over 5M parameters in five tensors (2M, 1.5M, 1M, 400k, 100k).
//!
//! - `step`: what a trainer records per update: gather the five per-tensor gradients into the
//!   flat buffer (5 copies), sum of squares, norm + clip coefficient, Adam, copy the flat
//!   parameters back to the five views. Bytes per parameter: gather 8 (read + write), sumsq 4,
//!   Adam 28 (read g, p, m, v; write p, m, v), views 8: 48 B.
//! - `step_flat`: the same from an already flat gradient (no gather): 40 B per parameter.
//!
//! Each iteration records one update and waits for the device (`gpu.sync()`); GB/s = bytes read
//! and written per update / time.

use std::time::{Duration, Instant};

mod common;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use rssm::gpu::{Gpu, GpuOptions};
use rssm::ops::adam::{Adam, AdamConfig, FlatParams};
use rssm::tensor::Tensor;

const SHAPES: [(&str, &[usize]); 5] = [
    ("l0.weight", &[2000, 1000]),
    ("l1.weight", &[1500, 1000]),
    ("l2.weight", &[1000, 1000]),
    ("l3.weight", &[400, 1000]),
    ("l4.weight", &[100, 1000]),
];

fn bench(c: &mut Criterion) {
    let gpu = Gpu::new(&GpuOptions::default()).expect("adapter");
    println!("adapter: {}", gpu.report().short());
    let params = FlatParams::new(&gpu, &SHAPES).unwrap();
    let n = params.len();
    params.set_all(&vec![0.5; n]).unwrap();
    let grads: Vec<Tensor> = SHAPES
        .iter()
        .map(|(_, s)| Tensor::full(&gpu, s, 0.01).unwrap())
        .collect();
    let refs: Vec<Option<&Tensor>> = grads.iter().map(Some).collect();
    let flat_grad = Tensor::full(&gpu, &[n], 0.01).unwrap();
    let mut adam = Adam::new(&params, AdamConfig::new(6e-4).with_clip(100.0)).unwrap();

    // A plain timing first, in the units asked for (ms per update, GB/s).
    for (name, bytes_per_param, flat) in [("step", 48usize, false), ("step_flat", 40, true)] {
        let run = |adam: &mut Adam| {
            if flat {
                adam.step_flat(&params, &flat_grad).unwrap();
            } else {
                adam.step(&params, &refs).unwrap();
            }
            gpu.sync();
        };
        for _ in 0..3 {
            run(&mut adam);
        }
        let iters = 10;
        let t0 = Instant::now();
        for _ in 0..iters {
            run(&mut adam);
        }
        let s = t0.elapsed().as_secs_f64() / iters as f64;
        let bytes = (bytes_per_param * n) as f64;
        println!(
            "adam {name}: {n} parameters in {} tensors: {:.3} ms per update, {:.1} GB/s ({:.0} MB moved)",
            SHAPES.len(),
            s * 1e3,
            bytes / s / 1e9,
            bytes / 1e6
        );
    }

    let mut group = c.benchmark_group("adam_5M");
    group.sample_size(10);
    group.warm_up_time(Duration::from_millis(500));
    group.measurement_time(Duration::from_secs(3));
    group.throughput(Throughput::Bytes((48 * n) as u64));
    group.bench_function("step (gather 5 grads + clip + adam + views)", |b| {
        b.iter_custom(|iters| common::gpu_timed(&gpu, iters, || adam.step(&params, &refs).unwrap()))
    });
    group.throughput(Throughput::Bytes((40 * n) as u64));
    group.bench_function("step_flat (clip + adam + views)", |b| {
        b.iter_custom(|iters| {
            common::gpu_timed(&gpu, iters, || adam.step_flat(&params, &flat_grad).unwrap())
        })
    });
    group.finish();
    // Sanity: the parameters stayed finite.
    let p = params.views()[4].to_vec().unwrap();
    assert!(p.iter().all(|v| v.is_finite()));
}

criterion_group!(benches, bench);
criterion_main!(benches);
