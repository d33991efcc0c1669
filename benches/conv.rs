//! Conv throughput: the spec's encoder (4 Conv2d + ReLU, [800, 3, 64, 64] -> [800, 256, 2, 2])
//! and decoder (4 ConvTranspose2d from [800, 1024, 1, 1] to [800, 3, 64, 64]) forward + backward
//! through the tape at 800 images, plus a per-layer, per-pass breakdown printed first.
//!
//! FLOPs count 2 * multiply-adds: each layer's forward, input gradient (not for the encoder's
//! first layer, whose input is the image) and weight gradient have the same number. The bias
//! gradient and the ReLU backward are memory-bound extras and not counted.
//! `CONV_BENCH_N` changes the batch (e.g. 100 for a quick look on a CPU driver).

use std::time::Instant;

mod common;

use criterion::{criterion_group, criterion_main, Criterion, SamplingMode, Throughput};
use rssm::gpu::{Gpu, GpuOptions};
use rssm::ops::conv::{self, ConvShape};
use rssm::ops::matmul::Act;
use rssm::tensor::{Tape, Tensor};

struct Layer {
    name: &'static str,
    transposed: bool,
    ci: usize,
    co: usize,
    k: usize,
    act: Act,
}

const ENCODER: [Layer; 4] = [
    Layer {
        name: "encoder.conv0 3->32 k4",
        transposed: false,
        ci: 3,
        co: 32,
        k: 4,
        act: Act::Relu,
    },
    Layer {
        name: "encoder.conv1 32->64 k4",
        transposed: false,
        ci: 32,
        co: 64,
        k: 4,
        act: Act::Relu,
    },
    Layer {
        name: "encoder.conv2 64->128 k4",
        transposed: false,
        ci: 64,
        co: 128,
        k: 4,
        act: Act::Relu,
    },
    Layer {
        name: "encoder.conv3 128->256 k4",
        transposed: false,
        ci: 128,
        co: 256,
        k: 4,
        act: Act::Relu,
    },
];

const DECODER: [Layer; 4] = [
    Layer {
        name: "decoder.deconv0 1024->128 k5",
        transposed: true,
        ci: 1024,
        co: 128,
        k: 5,
        act: Act::Relu,
    },
    Layer {
        name: "decoder.deconv1 128->64 k5",
        transposed: true,
        ci: 128,
        co: 64,
        k: 5,
        act: Act::Relu,
    },
    Layer {
        name: "decoder.deconv2 64->32 k6",
        transposed: true,
        ci: 64,
        co: 32,
        k: 6,
        act: Act::Relu,
    },
    Layer {
        name: "decoder.deconv3 32->3 k6",
        transposed: true,
        ci: 32,
        co: 3,
        k: 6,
        act: Act::None,
    },
];

fn batch() -> usize {
    std::env::var("CONV_BENCH_N")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(800)
}

/// Deterministic values in [-scale, scale).
fn values(n: usize, seed: usize, scale: f32) -> Vec<f32> {
    (0..n)
        .map(|i| {
            (((i.wrapping_mul(2_654_435_761) ^ seed.wrapping_mul(40_503)) % 2000) as f32 / 1000.0
                - 1.0)
                * scale
        })
        .collect()
}

struct Net {
    input: Tensor,
    input_grad: bool,
    params: Vec<(Tensor, Tensor)>,
    shapes: Vec<ConvShape>,
}

fn build(gpu: &Gpu, layers: &[Layer], n: usize, input: [usize; 4], input_grad: bool) -> Net {
    let mut shapes = Vec::new();
    let mut params = Vec::new();
    let mut x = input;
    for (i, l) in layers.iter().enumerate() {
        let ws = if l.transposed {
            [l.ci, l.co, l.k, l.k]
        } else {
            [l.co, l.ci, l.k, l.k]
        };
        let bound = (6.0 / ((l.ci + l.co) * l.k * l.k) as f32).sqrt();
        let w = Tensor::from_vec(gpu, &ws, &values(ws.iter().product(), i, bound)).unwrap();
        let b = Tensor::from_vec(gpu, &[l.co], &values(l.co, i + 100, 0.1)).unwrap();
        let cs = if l.transposed {
            conv::conv_transpose2d_shape(&x, &ws, None, 2).unwrap()
        } else {
            conv::conv2d_shape(&x, &ws, None, 2).unwrap()
        };
        x = [n, l.co, cs.oh, cs.ow];
        shapes.push(cs);
        params.push((w, b));
    }
    let input = Tensor::from_vec(gpu, &input, &values(input.iter().product(), 7, 0.5)).unwrap();
    Net {
        input,
        input_grad,
        params,
        shapes,
    }
}

/// FLOPs of forward + backward.
fn flops(net: &Net) -> f64 {
    net.shapes
        .iter()
        .enumerate()
        .map(|(i, cs)| {
            let passes = if i == 0 && !net.input_grad { 2.0 } else { 3.0 };
            passes * 2.0 * cs.macs() as f64
        })
        .sum()
}

/// Record forward and backward (seed 1 on every output) and wait.
fn step(gpu: &Gpu, net: &Net, layers: &[Layer]) {
    let t = Tape::new(gpu);
    let mut x = t.leaf(net.input.clone(), net.input_grad);
    let mut ps = Vec::new();
    for (l, (w, b)) in layers.iter().zip(&net.params) {
        let (wv, bv) = (t.param(w), t.param(b));
        ps.push((wv, bv));
        x = if l.transposed {
            conv::conv_transpose2d(&t, x, wv, bv, 2, l.act).unwrap()
        } else {
            conv::conv2d(&t, x, wv, bv, 2, l.act).unwrap()
        };
    }
    let seed = Tensor::full(gpu, &t.shape(x), 1.0).unwrap();
    let grads = t.backward_with(x, seed).unwrap();
    drop(grads);
}

/// CPU time of this process's threads so far (Linux), in seconds. With a CPU driver (lavapipe)
/// the device's worker threads are ours, so this measures the kernels' work even when other
/// processes compete for the cores (wall time then does not).
fn cpu_seconds() -> Option<f64> {
    let mut ns = 0u64;
    for t in std::fs::read_dir("/proc/self/task").ok()? {
        let s = std::fs::read_to_string(t.ok()?.path().join("schedstat")).ok()?;
        ns += s.split_whitespace().next()?.parse::<u64>().ok()?;
    }
    Some(ns as f64 * 1e-9)
}

/// Mean wall and CPU seconds of `f` over 2 runs after a warm-up.
fn time<F: FnMut()>(mut f: F) -> (f64, f64) {
    f(); // warm-up: pipelines, pool
    let reps = 2;
    let c0 = cpu_seconds();
    let t0 = Instant::now();
    for _ in 0..reps {
        f();
    }
    let wall = t0.elapsed().as_secs_f64() / reps as f64;
    let cpu = match (c0, cpu_seconds()) {
        (Some(a), Some(b)) => (b - a) / reps as f64,
        _ => f64::NAN,
    };
    (wall, cpu)
}

fn rate(gflop: f64, (wall, cpu): (f64, f64)) -> String {
    format!(
        "{:7.1} ms {:5.1} GFLOP/s ({:5.1}/cpu-s)",
        wall * 1e3,
        gflop / wall,
        gflop / cpu
    )
}

/// Per layer: forward, input gradient, weight + bias gradient, each timed alone.
fn breakdown(gpu: &Gpu, net: &Net, layers: &[Layer]) {
    let mut x = net.input.clone();
    for (i, (l, (w, b))) in layers.iter().zip(&net.params).enumerate() {
        let cs = net.shapes[i];
        let gf = 2.0 * cs.macs() as f64 / 1e9;
        let fwd = |x: &Tensor| {
            if l.transposed {
                conv::conv_transpose2d_forward(x, w, Some(b), 2, l.act).unwrap()
            } else {
                conv::conv2d_forward(x, w, Some(b), 2, l.act).unwrap()
            }
        };
        let y = fwd(&x);
        let t_f = time(|| {
            let _y = fwd(&x);
            gpu.sync();
        });
        let g = Tensor::full(gpu, y.shape(), 0.01).unwrap();
        let bw = if l.transposed {
            conv::conv_transpose2d_backward
        } else {
            conv::conv2d_backward
        };
        let gx = Tensor::empty(gpu, x.shape()).unwrap();
        let gw = Tensor::empty(gpu, w.shape()).unwrap();
        let gb = Tensor::empty(gpu, b.shape()).unwrap();
        let t_x = time(|| {
            bw(&x, w, &g, 2, Some((&gx, false)), None, None).unwrap();
            gpu.sync();
        });
        let t_w = time(|| {
            bw(&x, w, &g, 2, None, Some((&gw, false)), Some((&gb, false))).unwrap();
            gpu.sync();
        });
        println!(
            "  {:<29} fwd {} | dx {} | dw+db {}",
            l.name,
            rate(gf, t_f),
            rate(gf, t_x),
            rate(gf, t_w)
        );
        x = y;
    }
}

fn bench(c: &mut Criterion) {
    let gpu = Gpu::new(&GpuOptions::default()).expect("adapter");
    let n = batch();
    println!("adapter: {}", gpu.report().short());
    let encoder = build(&gpu, &ENCODER, n, [n, 3, 64, 64], false);
    let decoder = build(&gpu, &DECODER, n, [n, 1024, 1, 1], true);
    println!("per-layer breakdown at {n} images (each pass timed alone, 2 runs after a warm-up):");
    breakdown(&gpu, &encoder, &ENCODER);
    breakdown(&gpu, &decoder, &DECODER);

    let mut group = c.benchmark_group("conv");
    group.sample_size(10);
    group.sampling_mode(SamplingMode::Flat);
    group.warm_up_time(std::time::Duration::from_millis(100));
    group.measurement_time(std::time::Duration::from_secs(5));
    for (name, net, layers) in [
        ("encoder fwd+bwd", &encoder, &ENCODER[..]),
        ("decoder fwd+bwd", &decoder, &DECODER[..]),
    ] {
        let f = flops(net);
        let t = time(|| {
            step(&gpu, net, layers);
            gpu.sync();
        });
        println!(
            "{name} at {n} images ({:.1} GFLOP): {}",
            f / 1e9,
            rate(f / 1e9, t)
        );
        group.throughput(Throughput::Elements(f as u64));
        group.bench_function(format!("{name} {n} images"), |b| {
            b.iter_custom(|iters| common::gpu_timed(&gpu, iters, || step(&gpu, net, layers)))
        });
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
