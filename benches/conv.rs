use std::time::Instant;
use rssm::gpu::{Gpu, GpuOptions};
use rssm::ops::conv;
use rssm::ops::matmul::Act;
use rssm::tensor::Tensor;

fn cpu_ticks() -> u64 {
    let s = std::fs::read_to_string("/proc/self/stat").unwrap();
    let f: Vec<&str> = s.rsplit(')').next().unwrap().split_whitespace().collect();
    f[11].parse::<u64>().unwrap() + f[12].parse::<u64>().unwrap()
}

fn main() {
    let gpu = Gpu::new(&GpuOptions::default()).unwrap();
    println!("adapter: {}", gpu.report().short());
    let n: usize = std::env::var("N").ok().and_then(|s| s.parse().ok()).unwrap_or(200);
    let entries: Vec<String> = std::env::var("ENTRY").unwrap_or("conv_fwd,v2".into()).split(',').map(String::from).collect();
    let run = |e: &str, x: &Tensor, w: &Tensor, b: &Tensor| {
        if e != "conv_fwd" { conv::conv2d_forward2(x, w, Some(b), 2, Act::Relu, Box::leak(e.to_string().into_boxed_str())).unwrap() } else { conv::conv2d_forward(x, w, Some(b), 2, Act::Relu, Box::leak(e.to_string().into_boxed_str())).unwrap() }
    };
    for (ci, co, h) in [(3usize, 32usize, 64usize), (32, 64, 31), (64, 128, 14), (128, 256, 6)] {
        let xs: Vec<f32> = (0..n * ci * h * h).map(|i| ((i * 7919) % 1000) as f32 / 1000.0 - 0.5).collect();
        let x = Tensor::from_vec(&gpu, &[n, ci, h, h], &xs).unwrap();
        let ws: Vec<f32> = (0..co * ci * 16).map(|i| ((i * 104729) % 1000) as f32 / 1000.0 - 0.5).collect();
        let w = Tensor::from_vec(&gpu, &[co, ci, 4, 4], &ws).unwrap();
        let b = Tensor::from_vec(&gpu, &[co], &vec![0.1; co]).unwrap();
        let oh = (h - 4) / 2 + 1;
        let flops = 2.0 * (n * oh * oh * co * ci * 16) as f64;
        let mut best = vec![(f64::MAX, f64::MAX); entries.len()];
        for rep in 0..4 {
            for (k, e) in entries.iter().enumerate() {
                let y = run(e, &x, &w, &b);
                if rep == 0 {
                    let v = y.to_vec().unwrap();
                    let cs: f64 = v.iter().map(|a| *a as f64).sum();
                    println!("  {e} checksum {cs:.3}");
                    continue;
                }
                drop(y);
                let c0 = cpu_ticks();
                let t = Instant::now();
                let y = run(e, &x, &w, &b);
                gpu.sync();
                drop(y);
                let dt = t.elapsed().as_secs_f64();
                let dc = (cpu_ticks() - c0) as f64 / 100.0;
                best[k].0 = best[k].0.min(dt);
                best[k].1 = best[k].1.min(dc);
            }
        }
        for (k, e) in entries.iter().enumerate() {
            println!("{ci:>4}->{co:<4} {h}->{oh} {e:>10}: {:8.2} ms {:6.2} GFLOP/s  cpu {:6.2} s -> {:6.2} GFLOP/cpu-s", best[k].0 * 1e3, flops / best[k].0 / 1e9, best[k].1, flops / best[k].1 / 1e9);
        }
    }
}
