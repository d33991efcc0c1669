//! One Dreamer behaviour update (`Behaviour::update`) at the `dreamer` configuration's sizes
//! (deter 200, stoch 30, hidden 200, units 400) with action_dim 1 and H = 15: imagination from
//! N start states, reward/continue/value heads on the (H+1) N imagined states, lambda-returns,
//! the actor loss and its backward through the frozen dynamics, the critic loss and its
//! backward, both Adam steps, and the metrics' readback (one submit per iteration).
//!
//! N = 2500 is the specification's B*T = 50 x 50 starts; N = 250 is measured too. Criterion's
//! "elem/s" is imagined state-steps (N x H) per second. A summary line per size gives ms per
//! update, dispatches per update (`gpu.stats().dispatches` delta) and GFLOP/s of the matmul
//! FLOPs (counted in [`matmul_flops`]; about 432 GFLOP per update at N = 2500).
//!
//! On a CPU driver (lavapipe: about 100 s per update at N = 2500) criterion's ten samples would
//! take over a quarter of an hour, so there criterion measures N = 250 only and N = 2500 gets
//! the summary line (one warm-up and one timed update); set `RSSM_BENCH_FULL=1` to run
//! criterion at N = 2500 as well.

use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use rand::{Rng, SeedableRng};
use rssm::agent::{Behaviour, BehaviourConfig, Starts};
use rssm::gpu::{Gpu, GpuOptions};
use rssm::model::{Config, WorldModel};
use rssm::tensor::Tensor;

const HORIZON: usize = 15;

fn rand_tensor(gpu: &Gpu, shape: &[usize], scale: f32, seed: u64) -> Tensor {
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let n: usize = shape.iter().product();
    let v: Vec<f32> = (0..n).map(|_| rng.random_range(-scale..scale)).collect();
    Tensor::from_vec(gpu, shape, &v).unwrap()
}

struct Setup {
    wm: WorldModel,
    agent: Behaviour,
    starts: Starts,
}

fn setup(gpu: &Gpu, n: usize) -> Setup {
    let cfg = Config {
        action_dim: 1,
        ..Config::dreamer()
    };
    let wm = WorldModel::new(gpu, &cfg).unwrap();
    let bcfg = BehaviourConfig {
        horizon: HORIZON,
        ..BehaviourConfig::default()
    };
    let agent = Behaviour::new(gpu, &cfg, bcfg).unwrap();
    let h = rand_tensor(gpu, &[n, cfg.deter], 1.0, 1);
    let s = rand_tensor(gpu, &[n, cfg.stoch], 1.5, 2);
    let starts = Starts::new(&h, &s).unwrap();
    Setup { wm, agent, starts }
}

/// Matmul FLOPs of one update (dreamer sizes, action_dim 1): forward, plus the backward's
/// matmuls (a tape parameter's layer costs twice its forward, `dx` and `dW`; a frozen layer
/// once, `dx` only; the critic tape's first layer `dW` only).
fn matmul_flops(n: usize) -> f64 {
    let (f, u, a, hd, d, s) = (230.0, 400.0, 1.0, 200.0, 200.0, 30.0);
    let (n, h) = (n as f64, HORIZON as f64);
    let actor = 2.0 * n * (f * u + 3.0 * u * u + u * 2.0 * a);
    let dynamics = 2.0 * n * ((s + a) * hd + 3.0 * d * (hd + d) + d * hd + hd * 2.0 * s);
    let m = (h + 1.0) * n;
    let heads = 2.0 * m * ((f * u + u * u + u) + 2.0 * (f * u + 2.0 * u * u + u));
    let critic_fwd = 2.0 * h * n * (f * u + 2.0 * u * u + u);
    let critic_dx = 2.0 * h * n * (2.0 * u * u + u);
    h * (3.0 * actor + 2.0 * dynamics) + 2.0 * heads + 2.0 * critic_fwd + critic_dx
}

/// Time `reps` updates after a warm-up; print ms, dispatches and GFLOP/s per update.
fn summary(gpu: &Gpu, st: &mut Setup, n: usize, reps: usize) {
    st.agent.update(&st.wm, &st.starts).unwrap();
    let d0 = gpu.stats().dispatches;
    let t0 = Instant::now();
    for _ in 0..reps {
        st.agent.update(&st.wm, &st.starts).unwrap();
    }
    let s = t0.elapsed().as_secs_f64() / reps as f64;
    let dispatches = (gpu.stats().dispatches - d0) / reps as u64;
    println!(
        "behaviour update N={n} H={HORIZON} (dreamer sizes, action_dim 1): {:.1} ms, {dispatches} dispatches, {:.1} GFLOP/s ({:.0} GFLOP), {:.0} imagined state-steps/s on {}",
        s * 1e3,
        matmul_flops(n) / s / 1e9,
        matmul_flops(n) / 1e9,
        (n * HORIZON) as f64 / s,
        gpu.report().short()
    );
}

fn bench(c: &mut Criterion) {
    let gpu = Gpu::new(&GpuOptions::default()).expect("adapter");
    println!("adapter: {}", gpu.report().short());
    let full = !gpu.report().is_cpu() || std::env::var("RSSM_BENCH_FULL").is_ok_and(|v| v == "1");
    let mut group = c.benchmark_group("behaviour");
    group.sample_size(10);
    group.warm_up_time(Duration::from_millis(500));
    group.measurement_time(Duration::from_secs(2));
    for n in [250, 2500] {
        let mut st = setup(&gpu, n);
        let criterion = n <= 250 || full;
        summary(&gpu, &mut st, n, if criterion { 2 } else { 1 });
        if criterion {
            group.throughput(Throughput::Elements((n * HORIZON) as u64));
            group.bench_function(format!("update N={n} H={HORIZON}"), |b| {
                b.iter(|| st.agent.update(&st.wm, &st.starts).unwrap())
            });
        }
        drop(st);
        gpu.trim();
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
