//! Matmul throughput: 512^3 and the RSSM's shapes (batch 50 sequences x 50 steps = 2500 rows).
//! Time is GPU time from timestamp queries (start of the first pass to the end of the last)
//! where the adapter has them, else wall time around submit + wait. GFLOP/s = 2*M*N*K / time
//! (criterion prints it as Gelem/s).

mod common;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use rssm::gpu::Tuning;
use rssm::gpu::{Gpu, GpuOptions};
use rssm::ops::matmul::{matmul_into, Act, MatmulSpec};
use rssm::tensor::Tensor;

fn bench(c: &mut Criterion) {
    let gpu = Gpu::new(&GpuOptions::default()).expect("adapter");
    println!("adapter: {}", gpu.report().short());
    let shapes: &[(&str, usize, usize, usize, bool, bool)] = &[
        ("512^3", 512, 512, 512, false, false),
        (
            "linear 2500x1024->200 (obs_out)",
            2500,
            200,
            1224,
            false,
            true,
        ),
        (
            "linear 2500x230->400 (head l0)",
            2500,
            400,
            230,
            false,
            true,
        ),
        // What the model runs on CPU drivers: `linear` pads K = 230 to 232 there.
        (
            "linear 2500x232->400 (head l0, padded)",
            2500,
            400,
            232,
            false,
            true,
        ),
        ("gru gates 50x200->600", 50, 600, 200, false, true),
        ("dW 400x230 from 2500 rows", 400, 230, 2500, true, false),
        (
            "dW 400x232 from 2500 rows (padded)",
            400,
            232,
            2500,
            true,
            false,
        ),
        // The behaviour update's shapes (800 starts x 15 imagined steps = 12,000 rows).
        (
            "linear 12000x232->400 (behaviour)",
            12000,
            400,
            232,
            false,
            true,
        ),
        (
            "dX 12000x400->232 (behaviour)",
            12000,
            232,
            400,
            false,
            false,
        ),
        (
            "dW 400x232 from 12000 rows (behaviour)",
            400,
            232,
            12000,
            true,
            false,
        ),
    ];
    let mut group = c.benchmark_group("matmul");
    group.sample_size(10);
    group.measurement_time(std::time::Duration::from_secs(3));
    for &(name, m, n, k, ta, tb) in shapes {
        let a = Tensor::full(&gpu, &[m * k], 0.5).unwrap();
        let b = Tensor::full(&gpu, &[k * n], 0.25).unwrap();
        let out = Tensor::empty(&gpu, &[m, n]).unwrap();
        let spec = MatmulSpec {
            m,
            n,
            k,
            trans_a: ta,
            trans_b: tb,
            act: Act::None,
            acc: false,
        };
        group.throughput(Throughput::Elements((2 * m * n * k) as u64));
        // On devices with 8-lane subgroups, each shape with the register-block kernels and
        // with the subgroup kernel (`matmul_lanes`; the default there where it applies).
        let mut variants = vec![false];
        if gpu.report().subgroup_lanes == Some(8) {
            variants.push(true);
        }
        for &lanes in &variants {
            let g = gpu.with_tuning(Tuning {
                lanes,
                ..*gpu.tuning()
            });
            let (a, b, out) = (a.on(&g), b.on(&g), out.on(&g));
            let name = if lanes {
                format!("{name} (lanes)")
            } else {
                name.to_string()
            };
            group.bench_function(name, |bch| {
                bch.iter_custom(|iters| {
                    let mut total = std::time::Duration::ZERO;
                    for _ in 0..iters {
                        let start = std::time::Instant::now();
                        let (_, gpu_secs) = gpu
                            .gpu_time(|| matmul_into(&a, &b, None, &out, spec).unwrap())
                            .unwrap();
                        total += gpu_secs
                            .map(std::time::Duration::from_secs_f64)
                            .unwrap_or(start.elapsed());
                    }
                    total
                })
            });
        }
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
