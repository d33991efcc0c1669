//! The Gaussian head (with its Philox noise) and the Gaussian KL (with its stop-gradient variants
//! and the balanced loss with free nats) against their plain-Rust references, and
//! finite-difference gradient checks.

mod common;

use common::{assert_close, gpu, rand_vec};
use rssm::gpu::{Gpu, GpuOptions};
use rssm::ops::gaussian::{
    self, gaussian_head, normal_noise, random_bits, reference as gref, Noise,
};
use rssm::ops::kl::{self, kl, kl_balanced, reference as kref, StopGrad};
use rssm::ops::{self, concat_last, mean_all, reshape, scale};
use rssm::tensor::{gradcheck, GradcheckOptions, Tape, Tensor, Var};

const SIZES: [usize; 5] = [1, 3, 7, 33, 257];

// ---------------------------------------------------------------- the generator

#[test]
fn philox_reference_known_answers() {
    // Random123's kat_vectors for philox4x32 with 10 rounds: counter, key -> output.
    let kat: [([u32; 4], [u32; 2], [u32; 4]); 3] = [
        (
            [0; 4],
            [0; 2],
            [0x6627e8d5, 0xe169c58d, 0xbc57ac4c, 0x9b00dbd8],
        ),
        (
            [u32::MAX; 4],
            [u32::MAX; 2],
            [0x408f276d, 0x41c83b0e, 0xa20bc7c6, 0x6d5451fd],
        ),
        (
            [0x243f6a88, 0x85a308d3, 0x13198a2e, 0x03707344],
            [0xa4093822, 0x299f31d0],
            [0xd16cfe09, 0x94fdcceb, 0x5001e420, 0x24126ea1],
        ),
    ];
    for (ctr, key, want) in kat {
        assert_eq!(
            gref::philox4x32_10(ctr, key),
            want,
            "ctr {ctr:x?} key {key:x?}"
        );
    }
}

#[test]
fn philox_words_match_cpu_bit_for_bit() {
    let g = gpu();
    let streams = [
        (0u64, 0u64),
        (1, 0),
        (0, 1),
        (0xDEAD_BEEF_0123_4567, 0xFFFF_FFFF_0000_0007),
        (u64::MAX, u64::MAX),
    ];
    for (seed, offset) in streams {
        for len in [1usize, 3, 7, 33, 257, 100_003] {
            let got: Vec<u32> = random_bits(&g, len, seed, offset)
                .unwrap()
                .to_vec()
                .unwrap()
                .iter()
                .map(|v| v.to_bits())
                .collect();
            let want = gref::random_bits(len, seed, offset);
            assert_eq!(got, want, "seed {seed:#x} offset {offset:#x} len {len}");
        }
    }
}

#[test]
fn normals_match_cpu_closely() {
    let g = gpu();
    for (seed, offset) in [(7u64, 0u64), (0x1234_5678_9ABC_DEF0, 42)] {
        for len in [1usize, 3, 7, 33, 257, 65_537] {
            let got = normal_noise(&g, len, seed, offset)
                .unwrap()
                .to_vec()
                .unwrap();
            let want = gref::normal_noise(len, seed, offset);
            let max_err = got
                .iter()
                .zip(&want)
                .map(|(a, b)| (a - b).abs())
                .fold(0f32, f32::max);
            eprintln!("normals len {len}: max |GPU - CPU| = {max_err:.2e}");
            // The uniforms are bit-exact; what remains is the adapter's log / sqrt / sin / cos.
            // WGSL only promises 2^-11 absolute for sin and cos on [-pi, pi], times a radius of
            // at most 5.8: 3e-3. (lavapipe is within ~1e-6.)
            assert_close(
                &got,
                &want,
                3e-3,
                1e-4,
                &format!("normals seed {seed:#x} len {len}"),
            );
        }
    }
}

#[test]
fn normal_moments_and_independent_streams() {
    let g = gpu();
    let n = 1 << 20;
    let z: Vec<f64> = normal_noise(&g, n, 2024, 0)
        .unwrap()
        .to_vec()
        .unwrap()
        .iter()
        .map(|v| *v as f64)
        .collect();
    let mean = z.iter().sum::<f64>() / n as f64;
    let var = z.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / n as f64;
    let kurt = z.iter().map(|v| (v - mean).powi(4)).sum::<f64>() / n as f64 / (var * var);
    let within1 = z.iter().filter(|v| v.abs() < 1.0).count() as f64 / n as f64;
    // standard errors: mean 1e-3, variance 1.4e-3, kurtosis 2.4e-3 * 3, P(|z|<1) 4.5e-4
    assert!(mean.abs() < 5e-3, "mean {mean}");
    assert!((var - 1.0).abs() < 7e-3, "variance {var}");
    assert!((kurt - 3.0).abs() < 0.05, "kurtosis {kurt}");
    assert!((within1 - 0.682_689).abs() < 3e-3, "P(|z| < 1) = {within1}");
    assert!(z.iter().all(|v| v.is_finite() && v.abs() < 6.0));
    // Another seed, another offset: different numbers, uncorrelated.
    let corr = |a: &[f32], b: &[f32]| -> f64 {
        a.iter()
            .zip(b)
            .map(|(x, y)| *x as f64 * *y as f64)
            .sum::<f64>()
            / a.len() as f64
    };
    let m = 100_000;
    let a = normal_noise(&g, m, 1, 0).unwrap().to_vec().unwrap();
    let b = normal_noise(&g, m, 2, 0).unwrap().to_vec().unwrap();
    let c = normal_noise(&g, m, 1, 1).unwrap().to_vec().unwrap();
    let a2 = normal_noise(&g, m, 1, 0).unwrap().to_vec().unwrap();
    assert_eq!(a, a2, "same seed and offset, same numbers");
    for (other, what) in [(&b, "seed"), (&c, "offset")] {
        let same = a.iter().zip(other.iter()).filter(|(x, y)| x == y).count();
        assert!(same < 10, "another {what} repeats {same} values");
        let r = corr(&a, other);
        assert!(r.abs() < 0.02, "another {what}: correlation {r}");
    }
}

// ---------------------------------------------------------------- the head

fn head_inputs(rows: usize, s: usize, seed: u64) -> (Vec<f32>, Vec<f32>) {
    (
        rand_vec(rows * 2 * s, seed, -2.0, 2.0),
        rand_vec(rows * s, seed + 1, -2.0, 2.0),
    )
}

#[test]
fn head_forward_matches_reference() {
    let g = gpu();
    for &rows in &[1, 3, 33] {
        for &s in &SIZES {
            let (stats, eps) = head_inputs(rows, s, (rows * 1000 + s) as u64);
            let st = Tensor::from_vec(&g, &[rows, 2 * s], &stats).unwrap();
            let et = Tensor::from_vec(&g, &[rows, s], &eps).unwrap();
            let out = gaussian::gaussian_forward(&st, 0.1, &Noise::Given(et)).unwrap();
            let (m, sd, x) = gref::gaussian(&stats, s, 0.1, &eps);
            let what = format!("rows {rows} S {s}");
            assert_eq!(out.mean.shape(), &[rows, s]);
            assert_close(
                &out.mean.to_vec().unwrap(),
                &m,
                0.0,
                0.0,
                &format!("mean {what}"),
            );
            assert_close(
                &out.std.to_vec().unwrap(),
                &sd,
                1e-6,
                1e-6,
                &format!("std {what}"),
            );
            assert_close(
                &out.sample.to_vec().unwrap(),
                &x,
                1e-5,
                1e-5,
                &format!("sample {what}"),
            );
            assert_eq!(out.eps.to_vec().unwrap(), eps);
            // Seeded: eps is the stream of normal_noise, bit for bit (same kernel code).
            let out = gaussian::gaussian_forward(&st, 0.1, &Noise::Seeded { seed: 9, offset: 3 })
                .unwrap();
            let eps = out.eps.to_vec().unwrap();
            assert_eq!(
                eps,
                normal_noise(&g, rows * s, 9, 3).unwrap().to_vec().unwrap()
            );
            assert_close(&eps, &gref::normal_noise(rows * s, 9, 3), 3e-3, 1e-4, &what);
            let (_, _, x) = gref::gaussian(&stats, s, 0.1, &eps);
            assert_close(
                &out.sample.to_vec().unwrap(),
                &x,
                1e-5,
                1e-5,
                &format!("seeded sample {what}"),
            );
        }
    }
}

#[test]
fn head_std_floor_and_extremes() {
    let g = gpu();
    let stats = vec![0.0, 1.0, -1.0, -200.0, 0.0, 90.0];
    let st = Tensor::from_vec(&g, &[1, 6], &stats).unwrap();
    let out = gaussian::gaussian_forward(&st, 0.1, &Noise::Seeded { seed: 1, offset: 0 }).unwrap();
    let sd = out.std.to_vec().unwrap();
    assert_close(&sd, &[0.1, 0.1 + 2f32.ln(), 90.1], 1e-6, 1e-6, "std");
}

/// Which outputs get a gradient: (mean, std, sample).
const SUBSETS: [(bool, bool, bool); 7] = [
    (true, false, false),
    (false, true, false),
    (false, false, true),
    (true, true, false),
    (false, true, true),
    (true, false, true),
    (true, true, true),
];

#[test]
fn head_backward_matches_reference_for_every_subset_of_outputs() {
    let g = gpu();
    for &rows in &[1, 3, 33] {
        for &s in &[1, 7, 33] {
            let (stats, eps) = head_inputs(rows, s, (rows * 77 + s) as u64);
            for (wm, ws, wx) in SUBSETS {
                let t = Tape::new(&g);
                let sv = t.param(&Tensor::from_vec(&g, &[rows, 2 * s], &stats).unwrap());
                let noise = Noise::Given(Tensor::from_vec(&g, &[rows, s], &eps).unwrap());
                let out = gaussian_head(&t, sv, 0.1, noise).unwrap();
                let mut picked = Vec::new();
                for (on, v) in [(wm, out.mean), (ws, out.std), (wx, out.sample)] {
                    if on {
                        picked.push(v);
                    }
                }
                let y = concat_last(&t, &picked).unwrap();
                let k = picked.len();
                let seed = rand_vec(rows * s * k, 5, -1.0, 1.0);
                let grads = t
                    .backward_with(y, Tensor::from_vec(&g, &[rows, k * s], &seed).unwrap())
                    .unwrap();
                // Split the seed back into the per-output gradients.
                let mut parts = vec![vec![0f32; rows * s]; 3];
                let mut j = 0;
                for (i, on) in [wm, ws, wx].into_iter().enumerate() {
                    if on {
                        for r in 0..rows {
                            for c in 0..s {
                                parts[i][r * s + c] = seed[r * k * s + j * s + c];
                            }
                        }
                        j += 1;
                    }
                }
                let want =
                    gref::gaussian_backward(&stats, s, &eps, &parts[0], &parts[1], &parts[2]);
                let got = grads.get(sv).unwrap().to_vec().unwrap();
                assert_close(
                    &got,
                    &want,
                    1e-6,
                    1e-5,
                    &format!("d stats rows {rows} S {s} subset {:?}", (wm, ws, wx)),
                );
            }
        }
    }
}

fn head_all(t: &Tape, stats: Var, noise: Noise) -> rssm::Result<Var> {
    let o = gaussian_head(t, stats, 0.1, noise)?;
    concat_last(t, &[o.mean, o.std, o.sample])
}

#[test]
fn head_gradcheck_given_and_seeded_noise() {
    let g = gpu();
    let (stats, eps) = head_inputs(3, 4, 31);
    let inputs = [(vec![3, 8], stats)];
    let eps_t = Tensor::from_vec(&g, &[3, 4], &eps).unwrap();
    gradcheck(&g, &inputs, &GradcheckOptions::default(), |t, v| {
        head_all(t, v[0], Noise::Given(eps_t.clone()))
    })
    .unwrap();
    // Seeded noise is a deterministic function of (seed, offset): the same eps at every call.
    gradcheck(&g, &inputs, &GradcheckOptions::default(), |t, v| {
        head_all(
            t,
            v[0],
            Noise::Seeded {
                seed: 77,
                offset: 5,
            },
        )
    })
    .unwrap();
}

#[test]
fn head_gradcheck_accumulates_with_other_uses_of_stats() {
    let g = gpu();
    let (stats, eps) = head_inputs(2, 3, 41);
    let inputs = [(vec![2, 6], stats)];
    let eps_t = Tensor::from_vec(&g, &[2, 3], &eps).unwrap();
    // stats also feeds an op recorded after the head (its gradient arrives first: the head adds)
    gradcheck(&g, &inputs, &GradcheckOptions::default(), |t, v| {
        let o = gaussian_head(t, v[0], 0.1, Noise::Given(eps_t.clone()))?;
        let other = scale(t, v[0], 0.5, 0.0)?;
        concat_last(t, &[o.sample, o.std, other])
    })
    .unwrap();
    // ... and one recorded before it (the head's gradient arrives first)
    gradcheck(&g, &inputs, &GradcheckOptions::default(), |t, v| {
        let other = scale(t, v[0], -0.5, 0.0)?;
        let o = gaussian_head(t, v[0], 0.1, Noise::Given(eps_t.clone()))?;
        concat_last(t, &[other, o.mean, o.sample])
    })
    .unwrap();
}

#[test]
fn head_and_balanced_kl_compose() {
    // The model's use: posterior and prior heads, the KL on (mean, std), the posterior sample
    // to the decoder. Gradients from both reach the posterior stats through one backward kernel.
    let g = gpu();
    let (sq, eq) = head_inputs(3, 4, 51);
    let (sp, _) = head_inputs(3, 4, 52);
    let inputs = [(vec![3, 8], sq), (vec![3, 8], sp)];
    let eq_t = Tensor::from_vec(&g, &[3, 4], &eq).unwrap();
    gradcheck(&g, &inputs, &GradcheckOptions::default(), |t, v| {
        let q = gaussian_head(t, v[0], 0.1, Noise::Given(eq_t.clone()))?;
        let p = gaussian_head(t, v[1], 0.1, Noise::Seeded { seed: 3, offset: 0 })?;
        let k = kl(t, (q.mean, q.std), (p.mean, p.std), StopGrad::None)?;
        let k = reshape(t, k, &[3, 1])?;
        concat_last(t, &[k, q.sample])
    })
    .unwrap();
}

#[test]
fn head_dispatch_counts() {
    let g = Gpu::new(&GpuOptions::default()).unwrap();
    let (stats, _) = head_inputs(5, 6, 61);
    let t = Tape::new(&g);
    let sv = t.param(&Tensor::from_vec(&g, &[5, 12], &stats).unwrap());
    let d0 = g.stats().dispatches;
    let o = gaussian_head(&t, sv, 0.1, Noise::Seeded { seed: 1, offset: 2 }).unwrap();
    let d1 = g.stats().dispatches;
    assert_eq!(
        d1 - d0,
        1,
        "one forward dispatch for mean, std, sample and the noise"
    );
    let y = concat_last(&t, &[o.mean, o.std, o.sample]).unwrap();
    let d2 = g.stats().dispatches;
    let grads = t
        .backward_with(y, Tensor::full(&g, &[5, 18], 1.0).unwrap())
        .unwrap();
    let d3 = g.stats().dispatches;
    assert_eq!(
        d3 - d2,
        3 + 1,
        "concat's three copies, then one fused head backward"
    );
    assert!(grads.get(sv).is_some());
    assert_eq!(d2 - d1, 3);
    g.sync();
}

#[test]
fn head_shape_errors_are_clear() {
    let g = gpu();
    let t = Tape::no_grad(&g);
    let odd = t.constant(&Tensor::zeros(&g, &[2, 5]).unwrap());
    let e = gaussian_head(&t, odd, 0.1, Noise::Seeded { seed: 0, offset: 0 })
        .unwrap_err()
        .to_string();
    assert!(e.contains("gaussian_head") && e.contains("2S"), "{e}");
    let st = t.constant(&Tensor::zeros(&g, &[2, 6]).unwrap());
    let bad = Tensor::zeros(&g, &[2, 4]).unwrap();
    let e = gaussian_head(&t, st, 0.1, Noise::Given(bad))
        .unwrap_err()
        .to_string();
    assert!(e.contains("given noise"), "{e}");
}

// ---------------------------------------------------------------- the KL

struct KlCase {
    rows: usize,
    s: usize,
    v: [Vec<f32>; 4],
}

impl KlCase {
    fn new(rows: usize, s: usize, seed: u64) -> KlCase {
        let n = rows * s;
        KlCase {
            rows,
            s,
            v: [
                rand_vec(n, seed, -1.0, 1.0),
                rand_vec(n, seed + 1, 0.5, 1.5),
                rand_vec(n, seed + 2, -1.0, 1.0),
                rand_vec(n, seed + 3, 0.5, 1.5),
            ],
        }
    }
    fn inputs(&self) -> Vec<(Vec<usize>, Vec<f32>)> {
        self.v
            .iter()
            .map(|v| (vec![self.rows, self.s], v.clone()))
            .collect()
    }
    fn params(&self, t: &Tape) -> [Var; 4] {
        let g = t.gpu().clone();
        [0, 1, 2, 3]
            .map(|i| t.param(&Tensor::from_vec(&g, &[self.rows, self.s], &self.v[i]).unwrap()))
    }
    fn reference(&self) -> Vec<f32> {
        kref::kl(&self.v[0], &self.v[1], &self.v[2], &self.v[3], self.s)
    }
}

#[test]
fn kl_forward_matches_reference() {
    let g = gpu();
    for &rows in &SIZES {
        for &s in &SIZES {
            let c = KlCase::new(rows, s, (rows * 1000 + s) as u64);
            let ts: Vec<Tensor> =
                c.v.iter()
                    .map(|v| Tensor::from_vec(&g, &[rows, s], v).unwrap())
                    .collect();
            let got = kl::kl_forward((&ts[0], &ts[1]), (&ts[2], &ts[3])).unwrap();
            assert_eq!(got.shape(), &[rows]);
            let tol = 2e-6 * s as f32;
            assert_close(
                &got.to_vec().unwrap(),
                &c.reference(),
                tol,
                1e-5,
                &format!("kl rows {rows} S {s}"),
            );
        }
    }
    // KL(p || p) = 0
    let c = KlCase::new(3, 7, 1);
    let ts: Vec<Tensor> =
        c.v.iter()
            .map(|v| Tensor::from_vec(&g, &[3, 7], v).unwrap())
            .collect();
    let z = kl::kl_forward((&ts[0], &ts[1]), (&ts[0], &ts[1]))
        .unwrap()
        .to_vec()
        .unwrap();
    assert_close(&z, &[0.0; 3], 1e-6, 0.0, "KL(p || p)");
}

#[test]
fn kl_backward_matches_reference_for_each_stop_gradient() {
    let g = gpu();
    for &(rows, s) in &[(1, 1), (3, 7), (33, 30), (257, 3)] {
        let c = KlCase::new(rows, s, (rows * 31 + s) as u64);
        let gout = rand_vec(rows, 3, -1.0, 1.0);
        let want = kref::kl_grads(&c.v[0], &c.v[1], &c.v[2], &c.v[3], s, &gout);
        for sg in [StopGrad::None, StopGrad::Posterior, StopGrad::Prior] {
            let t = Tape::new(&g);
            let v = c.params(&t);
            let y = kl(&t, (v[0], v[1]), (v[2], v[3]), sg).unwrap();
            let grads = t
                .backward_with(y, Tensor::from_vec(&g, &[rows], &gout).unwrap())
                .unwrap();
            for i in 0..4 {
                let blocked =
                    (sg == StopGrad::Posterior && i < 2) || (sg == StopGrad::Prior && i >= 2);
                let got = grads.get(v[i]).map(|t| t.to_vec().unwrap());
                if blocked {
                    assert!(got.is_none(), "{sg:?}: input {i} must get no gradient");
                } else {
                    assert_close(
                        &got.unwrap(),
                        &want[i],
                        1e-5,
                        1e-5,
                        &format!("{sg:?} input {i} rows {rows} S {s}"),
                    );
                }
            }
        }
    }
}

#[test]
fn kl_gradcheck_each_stop_gradient_variant() {
    let g = gpu();
    let c = KlCase::new(3, 4, 71);
    for (sg, flowing) in [
        (StopGrad::None, vec![0, 1, 2, 3]),
        (StopGrad::Posterior, vec![2, 3]),
        (StopGrad::Prior, vec![0, 1]),
    ] {
        let opts = GradcheckOptions {
            inputs: Some(flowing.clone()),
            ..Default::default()
        };
        gradcheck(&g, &c.inputs(), &opts, |t, v| {
            kl(t, (v[0], v[1]), (v[2], v[3]), sg)
        })
        .unwrap_or_else(|e| panic!("{sg:?}: {e}"));
        // The blocked inputs get exactly zero (no gradient at all).
        let t = Tape::new(&g);
        let v = c.params(&t);
        let y = kl(&t, (v[0], v[1]), (v[2], v[3]), sg).unwrap();
        let loss = mean_all(&t, y).unwrap();
        let grads = t.backward(loss).unwrap();
        for i in (0..4).filter(|i| !flowing.contains(i)) {
            let zero = grads
                .get(v[i])
                .map(|t| t.to_vec().unwrap().iter().all(|x| *x == 0.0))
                .unwrap_or(true);
            assert!(zero, "{sg:?}: blocked input {i} got a gradient");
        }
    }
}

#[test]
fn kl_same_var_on_both_sides_and_as_mean_and_std() {
    // KL(N(x, s) || N(m, x)): one Var as a posterior mean and a prior std.
    let g = gpu();
    let c = KlCase::new(2, 3, 81);
    let inputs = vec![
        (vec![2, 3], c.v[1].clone()),
        (vec![2, 3], c.v[3].clone()),
        (vec![2, 3], c.v[0].clone()),
    ];
    gradcheck(&g, &inputs, &GradcheckOptions::default(), |t, v| {
        kl(t, (v[0], v[1]), (v[2], v[0]), StopGrad::None)
    })
    .unwrap();
    // N(x, x) against N(m, s): mean and std of one side are the same Var.
    gradcheck(&g, &inputs, &GradcheckOptions::default(), |t, v| {
        kl(t, (v[0], v[0]), (v[2], v[1]), StopGrad::None)
    })
    .unwrap();
}

/// Gradients of all four inputs of `f`, zeros where none arrived.
fn grads_of(c: &KlCase, f: impl Fn(&Tape, [Var; 4]) -> Var) -> Vec<Vec<f32>> {
    let g = gpu();
    let t = Tape::new(&g);
    let v = c.params(&t);
    let loss = f(&t, v);
    let grads = t.backward(loss).unwrap();
    (0..4)
        .map(|i| {
            grads
                .get(v[i])
                .map(|t| t.to_vec().unwrap())
                .unwrap_or_else(|| vec![0.0; c.rows * c.s])
        })
        .collect()
}

#[test]
fn kl_balanced_above_free_nats_is_the_weighted_sum_of_the_variants() {
    let g = gpu();
    let alpha = 0.8;
    for &(rows, s) in &[(1, 1), (3, 7), (50, 30), (257, 3)] {
        let c = KlCase::new(rows, s, (rows + s) as u64);
        let mean = c.reference().iter().map(|v| *v as f64).sum::<f64>() / rows as f64;
        // Free nats just below the mean KL: the clamp is inactive.
        let free = (mean - 0.01) as f32;
        let t = Tape::new(&g);
        let v = c.params(&t);
        let out = kl_balanced(&t, (v[0], v[1]), (v[2], v[3]), alpha, free).unwrap();
        let value = t.value(out.value).to_vec().unwrap()[0];
        let mean_kl = out.mean_kl.to_vec().unwrap()[0];
        assert!(
            (mean_kl as f64 - mean).abs() < 1e-5 * (1.0 + mean.abs()),
            "mean KL {mean_kl} vs {mean}"
        );
        assert!(
            (value - mean_kl).abs() <= 1e-6 * mean_kl.abs(),
            "value {value} vs mean {mean_kl}"
        );
        let grads = t.backward(out.value).unwrap();
        let got: Vec<Vec<f32>> = (0..4)
            .map(|i| grads.get(v[i]).unwrap().to_vec().unwrap())
            .collect();
        let variant = |sg| {
            grads_of(&c, move |t, v| {
                let k = kl(t, (v[0], v[1]), (v[2], v[3]), sg).unwrap();
                mean_all(t, k).unwrap()
            })
        };
        let (to_prior, to_post) = (variant(StopGrad::Posterior), variant(StopGrad::Prior));
        for i in 0..4 {
            let want: Vec<f32> = to_prior[i]
                .iter()
                .zip(&to_post[i])
                .map(|(a, b)| alpha * a + (1.0 - alpha) * b)
                .collect();
            assert_close(
                &got[i],
                &want,
                1e-6,
                1e-5,
                &format!("balanced input {i} rows {rows} S {s}"),
            );
        }
        // Spot-check against the f64 reference: alpha to the prior, 1 - alpha to the posterior.
        let w: Vec<f32> = vec![1.0 / rows as f32; rows];
        let r = kref::kl_grads(&c.v[0], &c.v[1], &c.v[2], &c.v[3], s, &w);
        let scaled = |i: usize, a: f32| r[i].iter().map(|x| x * a).collect::<Vec<_>>();
        assert_close(&got[0], &scaled(0, 1.0 - alpha), 1e-6, 1e-4, "d mq");
        assert_close(&got[3], &scaled(3, alpha), 1e-6, 1e-4, "d sp");
    }
}

#[test]
fn kl_balanced_below_free_nats_is_constant_with_zero_gradient() {
    let g = gpu();
    let c = KlCase::new(33, 30, 5);
    let mean = c.reference().iter().map(|v| *v as f64).sum::<f64>() / 33.0;
    let free = (mean + 0.01) as f32;
    let t = Tape::new(&g);
    let v = c.params(&t);
    let out = kl_balanced(&t, (v[0], v[1]), (v[2], v[3]), 0.8, free).unwrap();
    assert_eq!(
        t.value(out.value).to_vec().unwrap()[0],
        0.8 * free + (1.0 - 0.8) * free
    );
    assert!((out.mean_kl.to_vec().unwrap()[0] as f64 - mean).abs() < 1e-4);
    let grads = t.backward(out.value).unwrap();
    for (i, var) in v.iter().enumerate() {
        let gv = grads.get(*var).unwrap().to_vec().unwrap();
        assert!(
            gv.iter().all(|x| *x == 0.0),
            "input {i}: gradient below the free nats"
        );
    }
    // The spec's defaults: free = 3 nats, far above this tiny KL.
    let c = KlCase {
        rows: 2,
        s: 2,
        v: [vec![0.1; 4], vec![1.0; 4], vec![0.0; 4], vec![1.0; 4]],
    };
    let t = Tape::new(&g);
    let v = c.params(&t);
    let out = kl_balanced(&t, (v[0], v[1]), (v[2], v[3]), 0.8, 3.0).unwrap();
    assert!((t.value(out.value).to_vec().unwrap()[0] - 3.0).abs() < 1e-6);
    assert!((out.mean_kl.to_vec().unwrap()[0] - 0.01).abs() < 1e-6);
}

#[test]
fn kl_balanced_alpha_extremes_match_single_variants() {
    // alpha = 1: all gradient to the prior; alpha = 0: all to the posterior.
    let c = KlCase::new(4, 5, 9);
    for (alpha, sg) in [(1.0f32, StopGrad::Posterior), (0.0, StopGrad::Prior)] {
        let bal = grads_of(&c, |t, v| {
            kl_balanced(t, (v[0], v[1]), (v[2], v[3]), alpha, -1.0)
                .unwrap()
                .value
        });
        let var = grads_of(&c, |t, v| {
            let k = kl(t, (v[0], v[1]), (v[2], v[3]), sg).unwrap();
            mean_all(t, k).unwrap()
        });
        for i in 0..4 {
            assert_close(
                &bal[i],
                &var[i],
                1e-6,
                1e-5,
                &format!("alpha {alpha} input {i}"),
            );
        }
    }
}

#[test]
fn kl_dispatch_counts() {
    let g = Gpu::new(&GpuOptions::default()).unwrap();
    let c = KlCase::new(6, 5, 3);
    let t = Tape::new(&g);
    let v = [0, 1, 2, 3].map(|i| t.param(&Tensor::from_vec(&g, &[6, 5], &c.v[i]).unwrap()));
    let d0 = g.stats().dispatches;
    let out = kl_balanced(&t, (v[0], v[1]), (v[2], v[3]), 0.8, 0.0).unwrap();
    let d1 = g.stats().dispatches;
    assert_eq!(d1 - d0, 2, "per-row KL, then mean + clamp");
    let grads = t.backward(out.value).unwrap();
    let d2 = g.stats().dispatches;
    assert_eq!(d2 - d1, 2, "one backward dispatch per side");
    drop(grads);
    g.sync();
}

#[test]
fn kl_shape_errors_are_clear() {
    let g = gpu();
    let t = Tape::no_grad(&g);
    let a = t.constant(&Tensor::full(&g, &[2, 3], 1.0).unwrap());
    let b = t.constant(&Tensor::full(&g, &[3, 2], 1.0).unwrap());
    let e = kl(&t, (a, a), (a, b), StopGrad::None)
        .unwrap_err()
        .to_string();
    assert!(e.contains("kl") && e.contains("[3, 2]"), "{e}");
    let e = kl_balanced(&t, (a, a), (a, a), 1.5, 0.0)
        .unwrap_err()
        .to_string();
    assert!(e.contains("alpha"), "{e}");
}

// Finite differences of the heads and the balanced KL together.

/// Gaussian heads for the posterior and the prior from `[rows, 2S]` statistics, the balanced
/// KL between them and the posterior sample through a quadratic (the decoder's place): the
/// path the world model's loss takes. With `fd_reference` (the finite-difference evaluations)
/// the KL is replaced by what its gradient means, `alpha * KL(q0 || p) + (1 - alpha) *
/// KL(q || p0)` with q0, p0 the heads at the unperturbed statistics `x0`, since the balanced
/// KL's value is KL(q || p) whatever alpha.
fn heads_then_balanced_kl(
    t: &rssm::tensor::Tape,
    v: &[rssm::tensor::Var],
    x0: &[(Vec<usize>, Vec<f32>)],
    eps: &rssm::tensor::Tensor,
    alpha: f32,
    fd_reference: bool,
) -> rssm::Result<rssm::tensor::Var> {
    use rssm::ops::gaussian::{gaussian_head, Noise};
    use rssm::ops::kl::kl_balanced;
    let g = t.value(v[0]).gpu().clone();
    let zeros = rssm::tensor::Tensor::zeros(&g, eps.shape())?;
    let head = |stats, noise| gaussian_head(t, stats, 0.1, noise);
    let q = head(v[0], Noise::Given(eps.clone()))?;
    let p = head(v[1], Noise::Given(zeros.clone()))?;
    let kl = if fd_reference {
        let c = |i: usize| -> rssm::Result<rssm::tensor::Var> {
            Ok(t.constant(&rssm::tensor::Tensor::from_vec(&g, &x0[i].0, &x0[i].1)?))
        };
        let q0 = head(c(0)?, Noise::Given(eps.clone()))?;
        let p0 = head(c(1)?, Noise::Given(zeros))?;
        let prior_side = kl_balanced(t, (q0.mean, q0.std), (p.mean, p.std), alpha, 0.0)?.value;
        let post_side = kl_balanced(t, (q.mean, q.std), (p0.mean, p0.std), alpha, 0.0)?.value;
        let a = ops::scale(t, prior_side, alpha, 0.0)?;
        let b = ops::scale(t, post_side, 1.0 - alpha, 0.0)?;
        ops::add(t, a, b)?
    } else {
        kl_balanced(t, (q.mean, q.std), (p.mean, p.std), alpha, 0.0)?.value
    };
    let decoder = ops::mean_all(t, ops::mul(t, q.sample, q.sample)?)?;
    let decoder = ops::reshape(t, decoder, &[1])?;
    let kl = ops::reshape(t, kl, &[1])?;
    ops::add(t, kl, decoder)
}

#[test]
fn gaussian_heads_into_balanced_kl() {
    let g = gpu();
    let (rows, s) = (4, 5);
    let inputs = vec![
        (vec![rows, 2 * s], rand_vec(rows * 2 * s, 60, -1.0, 1.0)),
        (vec![rows, 2 * s], rand_vec(rows * 2 * s, 61, -1.0, 1.0)),
    ];
    let eps =
        rssm::tensor::Tensor::from_vec(&g, &[rows, s], &rand_vec(rows * s, 62, -1.5, 1.5)).unwrap();
    let x0 = inputs.clone();
    for alpha in [0.8f32, 0.3] {
        let report = gradcheck(&g, &inputs, &GradcheckOptions::default(), |t, v| {
            heads_then_balanced_kl(t, v, &x0, &eps, alpha, !t.grad_enabled())
        })
        .unwrap_or_else(|e| panic!("alpha {alpha}: {e}"));
        assert!(report.max_abs_grad > 0.05, "{report:?}");
    }
    // The check sees the balance: the backward at alpha 0.5 against the reference at 0.8
    // fails (at 0.5 both sides weigh the same and swapping them would go unnoticed).
    let r = gradcheck(&g, &inputs, &GradcheckOptions::default(), |t, v| {
        let alpha = if t.grad_enabled() { 0.5 } else { 0.8 };
        heads_then_balanced_kl(t, v, &x0, &eps, alpha, !t.grad_enabled())
    });
    assert!(r.is_err(), "a KL balanced at 0.5 passed for 0.8");
}
