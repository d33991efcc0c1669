//! `ops::loss` (per-row Gaussian NLL and BCE with logits) and `ops::adam` (fused Adam with
//! global-norm clipping) against their f64 references, finite differences, and PyTorch's
//! formulas.

mod common;

use common::{assert_close, gpu, rand_away_from_zero, rand_vec};
use rssm::gpu::{Gpu, GpuOptions};
use rssm::ops::adam::{reference as aref, Adam, AdamConfig, FlatParams};
use rssm::ops::loss::{self, reference as lref, row_loss_backward, row_loss_forward, RowLoss};
use rssm::tensor::{gradcheck, GradcheckOptions, Tape, Tensor, Var};

const ROWS: [usize; 3] = [1, 3, 33];
const COLS: [usize; 3] = [1, 7, 257];

fn cases() -> Vec<(usize, usize)> {
    let mut v: Vec<(usize, usize)> = ROWS
        .iter()
        .flat_map(|r| COLS.iter().map(move |c| (*r, *c)))
        .collect();
    v.push((4, 12288));
    v
}

/// Operands for a loss: predictions/logits and targets (BCE targets in [0, 1]).
fn operands(kind: RowLoss, n: usize, seed: u64) -> (Vec<f32>, Vec<f32>) {
    match kind {
        RowLoss::Mse => (
            rand_vec(n, seed, -2.0, 2.0),
            rand_vec(n, seed + 1, -2.0, 2.0),
        ),
        RowLoss::Bce => (
            rand_vec(n, seed, -6.0, 6.0),
            rand_vec(n, seed + 1, 0.0, 1.0),
        ),
    }
}

fn reference(kind: RowLoss, a: &[f32], b: &[f32], cols: usize) -> Vec<f64> {
    match kind {
        RowLoss::Mse => lref::mse_nll(a, b, cols),
        RowLoss::Bce => lref::bce_with_logits(a, b, cols),
    }
}

/// d loss / d a (which 0) or d b (which 1) of one element.
fn elem_grad(kind: RowLoss, which: u32, x: f64, y: f64) -> f64 {
    match (kind, which) {
        (RowLoss::Mse, 0) => x - y,
        (RowLoss::Mse, _) => y - x,
        (RowLoss::Bce, 0) => lref::bce_grad(x, y),
        (RowLoss::Bce, _) => -x,
    }
}

fn to_f32(v: &[f64]) -> Vec<f32> {
    v.iter().map(|x| *x as f32).collect()
}

/// The op on the tape: mse with explicit cols, bce over the last axis (the view is
/// [rows, cols]).
fn on_tape(t: &Tape, kind: RowLoss, a: Var, b: Var, cols: usize) -> rssm::error::Result<Var> {
    match kind {
        RowLoss::Mse => loss::mse_nll(t, a, b, cols),
        RowLoss::Bce => loss::bce_with_logits(t, a, b),
    }
}

#[test]
fn row_losses_forward_match_reference() {
    let g = gpu();
    for kind in [RowLoss::Mse, RowLoss::Bce] {
        for (rows, cols) in cases() {
            let (a, b) = operands(kind, rows * cols, (rows * 1000 + cols) as u64);
            let t = Tape::no_grad(&g);
            let av = t.constant(&Tensor::from_vec(&g, &[rows, cols], &a).unwrap());
            let bv = t.constant(&Tensor::from_vec(&g, &[rows, cols], &b).unwrap());
            let y = on_tape(&t, kind, av, bv, cols).unwrap();
            assert_eq!(t.shape(y), vec![rows]);
            let want = to_f32(&reference(kind, &a, &b, cols));
            assert_close(
                &t.value(y).to_vec().unwrap(),
                &want,
                1e-5,
                1e-5,
                &format!("{kind:?} {rows}x{cols}"),
            );
        }
    }
}

#[test]
fn row_losses_backward_match_closed_form() {
    let g = gpu();
    for kind in [RowLoss::Mse, RowLoss::Bce] {
        for (rows, cols) in cases() {
            let seed = (rows * 1000 + cols) as u64 + 17;
            let (a, b) = operands(kind, rows * cols, seed);
            let gy = rand_vec(rows, seed + 5, -1.0, 1.0);
            let t = Tape::new(&g);
            let av = t.param(&Tensor::from_vec(&g, &[rows, cols], &a).unwrap());
            let bv = t.param(&Tensor::from_vec(&g, &[rows, cols], &b).unwrap());
            let y = on_tape(&t, kind, av, bv, cols).unwrap();
            let grads = t
                .backward_with(y, Tensor::from_vec(&g, &[rows], &gy).unwrap())
                .unwrap();
            for (which, v) in [(0u32, av), (1, bv)] {
                let want: Vec<f32> = (0..rows * cols)
                    .map(|i| {
                        (gy[i / cols] as f64 * elem_grad(kind, which, a[i] as f64, b[i] as f64))
                            as f32
                    })
                    .collect();
                let got = grads.get(v).unwrap().to_vec().unwrap();
                assert_close(
                    &got,
                    &want,
                    1e-6,
                    1e-5,
                    &format!("{kind:?} d{which} {rows}x{cols}"),
                );
            }
        }
    }
}

#[test]
fn row_loss_backward_accumulates() {
    let g = gpu();
    let (rows, cols) = (3, 257);
    for kind in [RowLoss::Mse, RowLoss::Bce] {
        let (a, b) = operands(kind, rows * cols, 99);
        let gy = rand_vec(rows, 98, -1.0, 1.0);
        let prior = rand_vec(rows * cols, 97, -1.0, 1.0);
        let (at, bt) = (
            Tensor::from_vec(&g, &[rows, cols], &a).unwrap(),
            Tensor::from_vec(&g, &[rows, cols], &b).unwrap(),
        );
        let gyt = Tensor::from_vec(&g, &[rows], &gy).unwrap();
        let out = Tensor::from_vec(&g, &[rows, cols], &prior).unwrap();
        row_loss_backward(&at, &bt, &gyt, &out, cols, kind, 0, true).unwrap();
        let want: Vec<f32> = (0..rows * cols)
            .map(|i| {
                (prior[i] as f64
                    + gy[i / cols] as f64 * elem_grad(kind, 0, a[i] as f64, b[i] as f64))
                    as f32
            })
            .collect();
        assert_close(
            &out.to_vec().unwrap(),
            &want,
            1e-6,
            1e-5,
            &format!("{kind:?} ACC"),
        );
    }
}

#[test]
fn row_losses_gradcheck() {
    let g = gpu();
    // Finite differences over every element of both operands (rows x cols small enough for
    // two evaluations per element; the 33x257 and 4x12288 cases are covered by the
    // closed-form test above and the sampled check below).
    let shapes = [
        (1, 1),
        (1, 7),
        (1, 257),
        (3, 1),
        (3, 7),
        (3, 257),
        (33, 1),
        (33, 7),
    ];
    for kind in [RowLoss::Mse, RowLoss::Bce] {
        for &(rows, cols) in &shapes {
            let (a, b) = operands(kind, rows * cols, (rows * 7 + cols) as u64);
            let inputs = vec![(vec![rows, cols], a), (vec![rows, cols], b)];
            // A row of 257 terms sums to ~400 with f32 rounding ~3e-5 per evaluation: a 1e-2
            // step would turn that into ~1e-3 of difference-quotient noise, so long rows use
            // h = 0.05 (truncation error h^2/6 * |f'''| < 5e-5 for BCE; none for the quadratic).
            let opts = GradcheckOptions {
                step: if cols > 64 { 0.05 } else { 1e-2 },
                ..Default::default()
            };
            let r = gradcheck(&g, &inputs, &opts, |t, v| {
                on_tape(t, kind, v[0], v[1], cols)
            });
            if let Err(e) = r {
                panic!("{kind:?} {rows}x{cols}: {e}");
            }
        }
    }
}

/// Central differences of `L = sum_r w_r y_r` for a few sampled elements of operand `which`,
/// against the backward kernel seeded with `w`.
fn sampled_fd(kind: RowLoss, rows: usize, cols: usize, a: &[f32], b: &[f32], which: u32, h: f32) {
    let g = gpu();
    let w = rand_vec(rows, 4242, -1.0, 1.0);
    let loss = |a: &[f32], b: &[f32]| -> f64 {
        let at = Tensor::from_vec(&g, &[rows, cols], a).unwrap();
        let bt = Tensor::from_vec(&g, &[rows, cols], b).unwrap();
        let y = row_loss_forward(&at, &bt, cols, kind)
            .unwrap()
            .to_vec()
            .unwrap();
        y.iter().zip(&w).map(|(y, w)| *y as f64 * *w as f64).sum()
    };
    let at = Tensor::from_vec(&g, &[rows, cols], a).unwrap();
    let bt = Tensor::from_vec(&g, &[rows, cols], b).unwrap();
    let out = Tensor::empty(&g, &[rows, cols]).unwrap();
    let wt = Tensor::from_vec(&g, &[rows], &w).unwrap();
    row_loss_backward(&at, &bt, &wt, &out, cols, kind, which, false).unwrap();
    let analytic = out.to_vec().unwrap();
    let n = rows * cols;
    for j in [
        0,
        1,
        cols - 1,
        cols,
        n / 2 + 3,
        n - 97,
        n - 1,
        5 * cols / 2 + 11,
    ] {
        let (mut ap, mut bp) = (a.to_vec(), b.to_vec());
        let x = if which == 0 { &mut ap } else { &mut bp };
        let x0 = x[j];
        x[j] = x0 + h;
        let lp = loss(&ap, &bp);
        let x = if which == 0 { &mut ap } else { &mut bp };
        x[j] = x0 - h;
        let lm = loss(&ap, &bp);
        let numeric = (lp - lm) / (((x0 + h) as f64) - ((x0 - h) as f64));
        let an = analytic[j] as f64;
        assert!(
            (an - numeric).abs() <= 1e-3 + 1e-2 * an.abs().max(numeric.abs()),
            "{kind:?} d{which} {rows}x{cols} element {j}: analytic {an}, numeric {numeric}"
        );
    }
}

#[test]
fn row_losses_4x12288_sampled_finite_differences() {
    let (rows, cols) = (4, 12288);
    let n = rows * cols;
    // Small residuals keep each row's f32 sum (~40) precise enough for a difference quotient;
    // the loss is quadratic, so central differences are exact up to rounding.
    let a = rand_vec(n, 1, -0.1, 0.1);
    let b = rand_vec(n, 2, -0.1, 0.1);
    sampled_fd(RowLoss::Mse, rows, cols, &a, &b, 0, 0.05);
    sampled_fd(RowLoss::Mse, rows, cols, &a, &b, 1, 0.05);
    // BCE: most logits at -20 with target 0 (loss ~2e-9 each) keep the row sums small; every
    // 97th logit, and the sampled ones, are moderate.
    let mut x = vec![-20.0f32; n];
    let y = rand_vec(n, 3, 0.0, 1.0);
    let mut y0 = vec![0.0f32; n];
    let moderate = rand_vec(n, 4, -3.0, 3.0);
    for j in (0..n).step_by(97).chain([
        0,
        1,
        cols - 1,
        cols,
        n / 2 + 3,
        n - 97,
        n - 1,
        5 * cols / 2 + 11,
    ]) {
        x[j] = moderate[j];
        y0[j] = y[j];
    }
    sampled_fd(RowLoss::Bce, rows, cols, &x, &y0, 0, 0.05);
    sampled_fd(RowLoss::Bce, rows, cols, &x, &y0, 1, 0.05);
}

#[test]
fn bce_is_stable_for_huge_logits() {
    let g = gpu();
    let logits = [
        50.0f32, -50.0, 1000.0, -1000.0, 1e4, -1e4, 20.0, -20.0, 88.0, -88.0, 0.0, 1e-3,
    ];
    let mut x = Vec::new();
    let mut y = Vec::new();
    for &l in &logits {
        for t in [0.0f32, 1.0, 0.3] {
            x.push(l);
            y.push(t);
        }
    }
    let n = x.len(); // 36 elements: one row per element, then all in one row
    let mut xx = x.clone();
    xx.extend(x.iter().map(|v| -v)); // 72 values: the workgroup-per-row path
    let mut yy = y.clone();
    yy.extend(&y);
    for (xs, ys, cols) in [(&x, &y, 1), (&xx, &yy, 72), (&x, &y, n)] {
        let t = Tape::new(&g);
        let len = xs.len();
        let xv = t.param(&Tensor::from_vec(&g, &[len / cols, cols], xs).unwrap());
        let yv = t.constant(&Tensor::from_vec(&g, &[len / cols, cols], ys).unwrap());
        let l = loss::bce_with_logits(&t, xv, yv).unwrap();
        let got = t.value(l).to_vec().unwrap();
        assert!(got.iter().all(|v| v.is_finite()), "non-finite loss {got:?}");
        let want = to_f32(&lref::bce_with_logits(xs, ys, cols));
        assert_close(
            &got,
            &want,
            1e-6,
            1e-6,
            &format!("bce extremes, cols {cols}"),
        );
        let rows = len / cols;
        let grads = t
            .backward_with(l, Tensor::full(&g, &[rows], 1.0).unwrap())
            .unwrap();
        let gx = grads.get(xv).unwrap().to_vec().unwrap();
        assert!(
            gx.iter().all(|v| v.is_finite()),
            "non-finite gradient {gx:?}"
        );
        let want: Vec<f32> = xs
            .iter()
            .zip(ys.iter())
            .map(|(x, y)| lref::bce_grad(*x as f64, *y as f64) as f32)
            .collect();
        assert_close(
            &gx,
            &want,
            1e-6,
            1e-6,
            &format!("bce gradient extremes, cols {cols}"),
        );
    }
    // Spot values: log 2 at 0, ~0 when confidently right, |x| when confidently wrong.
    let want = lref::bce_with_logits(&[0.0, 1000.0, -1000.0, 1e4], &[0.5, 1.0, 1.0, 0.0], 1);
    assert!((want[0] - std::f64::consts::LN_2).abs() < 1e-12 && want[1] < 1e-300);
    assert!((want[2] - 1000.0).abs() < 1e-9 && (want[3] - 1e4).abs() < 1e-9);
}

#[test]
fn world_model_loss_mean_of_sum() {
    let g = gpu();
    let (bt, pix) = (5, 7);
    let img = rand_vec(bt * pix, 1, -1.0, 1.0);
    let obs = rand_vec(bt * pix, 2, -1.0, 1.0);
    let rew = rand_vec(bt, 3, -1.0, 1.0);
    let rew_t = rand_vec(bt, 4, -1.0, 1.0);
    let logit = rand_vec(bt, 5, -3.0, 3.0);
    let cont: Vec<f32> = (0..bt).map(|i| (i % 2) as f32).collect();
    let f = |t: &Tape, v: &[Var]| {
        let image = loss::mse_nll(t, v[0], v[1], pix)?;
        let reward = loss::mse_nll(t, v[2], v[3], 1)?;
        let cont = loss::bce_with_logits(t, v[4], v[5])?;
        loss::mean_of_sum(t, &[image, reward, cont])
    };
    let inputs = vec![
        (vec![bt, pix], img.clone()),
        (vec![bt, pix], obs.clone()),
        (vec![bt, 1], rew.clone()),
        (vec![bt, 1], rew_t.clone()),
        (vec![bt, 1], logit.clone()),
        (vec![bt, 1], cont.clone()),
    ];
    // Value.
    let t = Tape::no_grad(&g);
    let vars: Vec<Var> = inputs
        .iter()
        .map(|(s, v)| t.constant(&Tensor::from_vec(&g, s, v).unwrap()))
        .collect();
    let got = t.value(f(&t, &vars).unwrap()).to_scalar().unwrap() as f64;
    let (a, b, c) = (
        lref::mse_nll(&img, &obs, pix),
        lref::mse_nll(&rew, &rew_t, 1),
        lref::bce_with_logits(&logit, &cont, 1),
    );
    let want = (0..bt).map(|i| a[i] + b[i] + c[i]).sum::<f64>() / bt as f64;
    assert!(
        (got - want).abs() <= 1e-5 * want.abs(),
        "mean_of_sum {got} vs {want}"
    );
    gradcheck(&g, &inputs, &GradcheckOptions::default(), f).unwrap();
}

#[test]
fn row_losses_reject_bad_shapes() {
    let g = gpu();
    let t = Tape::new(&g);
    let a = t.param(&Tensor::zeros(&g, &[3, 4]).unwrap());
    let b = t.param(&Tensor::zeros(&g, &[3, 5]).unwrap());
    let c = t.param(&Tensor::zeros(&g, &[12]).unwrap());
    let e = loss::mse_nll(&t, a, b, 4).unwrap_err().to_string();
    assert!(e.contains("differ in size"), "{e}");
    let e = loss::mse_nll(&t, a, c, 5).unwrap_err().to_string();
    assert!(e.contains("rows of 5"), "{e}");
    let e = loss::mse_nll(&t, a, c, 0).unwrap_err().to_string();
    assert!(e.contains("rows of 0"), "{e}");
    let e = loss::bce_with_logits(&t, a, b).unwrap_err().to_string();
    assert!(e.contains("differ in size"), "{e}");
    assert!(loss::mean_of_sum(&t, &[]).is_err());
    // [3,4] against [12]: same values, one row per 4 (the target's shape may differ).
    let y = loss::mse_nll(&t, a, c, 4).unwrap();
    assert_eq!(t.shape(y), vec![3]);
}

// ---------------------------------------------------------------- Adam

/// Three tensors of awkward sizes; the third gets gradients near eps so eps matters.
const SHAPES: [(&str, &[usize]); 3] = [("w", &[7, 33]), ("b", &[257]), ("s", &[3, 1, 5])];
const MAX_NORM: f64 = 10.0;
/// Scales of the gradients per step: the global norm is ~13.4 x scale, so steps 1 and 3 clip.
const SCALES: [f64; 5] = [2.0, 0.5, 1.5, 0.25, 0.6];

fn sizes() -> Vec<usize> {
    SHAPES.iter().map(|(_, s)| s.iter().product()).collect()
}

/// Per-tensor gradients of step `k`: fixed sign per element (no cancellation in m), |g| in
/// [0.08, 1.2] x scale for w and b, 1e-6 times that for s.
fn step_grads(k: usize) -> Vec<Vec<f32>> {
    sizes()
        .iter()
        .enumerate()
        .map(|(i, &n)| {
            let base = rand_away_from_zero(n, 100 + i as u64, 0.1, 1.0);
            let jitter = rand_vec(n, 1000 + (10 * k + i) as u64, -0.2, 0.2);
            let tiny = if i == 2 { 1e-6 } else { 1.0 };
            base.iter()
                .zip(&jitter)
                .map(|(b, j)| (*b as f64 * (1.0 + *j as f64) * SCALES[k] * tiny) as f32)
                .collect()
        })
        .collect()
}

fn initial_params() -> Vec<f32> {
    rand_away_from_zero(sizes().iter().sum(), 7, 0.5, 2.0)
}

fn rel_err(got: &[f32], want: &[f64]) -> f64 {
    got.iter()
        .zip(want)
        .map(|(g, w)| (*g as f64 - w).abs() / w.abs().max(1e-30))
        .fold(0.0, f64::max)
}

#[test]
fn adam_matches_pytorch_formulas_over_five_steps() {
    let g = gpu();
    let cfg = AdamConfig::new(1e-2).with_clip(MAX_NORM);
    let params = FlatParams::new(&g, &SHAPES).unwrap();
    let p0 = initial_params();
    params.set_all(&p0).unwrap();
    let mut adam = Adam::new(&params, cfg).unwrap();
    let mut reference = aref::Adam::new(p0.len(), cfg);
    let mut p_ref: Vec<f64> = p0.iter().map(|v| *v as f64).collect();
    let mut worst = [0f64; 5];
    for k in 0..5 {
        let grads = step_grads(k);
        let tensors: Vec<Tensor> = grads
            .iter()
            .zip(&SHAPES)
            .map(|(v, (_, s))| Tensor::from_vec(&g, s, v).unwrap())
            .collect();
        let refs: Vec<Option<&Tensor>> = tensors.iter().map(Some).collect();
        adam.step(&params, &refs).unwrap();
        let flat_g: Vec<f64> = grads.concat().iter().map(|v| *v as f64).collect();
        let (norm, coef) = reference.step(&mut p_ref, &flat_g);
        // The test design: steps 1 and 3 (k = 0, 2) clip, the others do not.
        assert_eq!(
            coef < 1.0,
            k == 0 || k == 2,
            "step {k}: norm {norm}, coef {coef}"
        );
        let (m, v, t) = adam.state().unwrap();
        assert_eq!(t, k as u64 + 1);
        let got_norm = adam.last_norm().unwrap().to_scalar().unwrap() as f64;
        let got_coef = adam.last_clip_coef().unwrap().to_scalar().unwrap() as f64;
        let got_p = params.to_vec().unwrap();
        let errs = [
            ((got_norm - norm) / norm).abs(),
            ((got_coef - coef) / coef).abs(),
            rel_err(&got_p, &p_ref),
            rel_err(&m.to_vec().unwrap(), &reference.m),
            rel_err(&v.to_vec().unwrap(), &reference.v),
        ];
        for (w, e) in worst.iter_mut().zip(errs) {
            *w = w.max(e);
        }
        // 1e-6 relative everywhere: parameters are >= 0.45 in magnitude and each element's
        // gradient keeps its sign, so m and v never cancel; f32 rounding is ~1e-7 per op.
        assert!(
            errs.iter().all(|e| *e <= 1e-6),
            "step {}: relative errors [norm, coef, p, m, v] = {errs:?}",
            k + 1
        );
        if k == 0 {
            // Independent of the reference: Adam's first step moves each parameter by lr *
            // g / (|g| + eps') ~ lr for gradients far above eps, and by visibly less for the
            // gradients near eps (the third tensor, |g| ~ 1e-7..1e-6 after clipping).
            let n_big = sizes()[0] + sizes()[1];
            for (i, (a, b)) in got_p.iter().zip(&p0).enumerate() {
                let d = (a - b).abs() as f64;
                if i < n_big {
                    assert!(
                        (d - 1e-2).abs() < 2e-6,
                        "first step of element {i} moved {d}"
                    );
                } else {
                    assert!(
                        d < 1e-2 * 0.995 && d > 1e-2 * 0.5,
                        "first step of tiny-gradient element {i} moved {d}"
                    );
                }
            }
        }
    }
    eprintln!("worst relative errors over 5 steps [norm, coef, p, m, v]: {worst:?}");
}

#[test]
fn adam_without_clipping_reports_norm_and_unit_coef() {
    let g = gpu();
    let cfg = AdamConfig::new(3e-3);
    let params = FlatParams::new(&g, &SHAPES).unwrap();
    let p0 = initial_params();
    params.set_all(&p0).unwrap();
    let mut adam = Adam::new(&params, cfg).unwrap();
    let mut reference = aref::Adam::new(p0.len(), cfg);
    let mut p_ref: Vec<f64> = p0.iter().map(|v| *v as f64).collect();
    for k in 0..2 {
        let flat: Vec<f32> = step_grads(k).concat().iter().map(|v| v * 10.0).collect();
        adam.step_flat(
            &params,
            &Tensor::from_vec(&g, &[flat.len()], &flat).unwrap(),
        )
        .unwrap();
        let (norm, coef) = reference.step(
            &mut p_ref,
            &flat.iter().map(|v| *v as f64).collect::<Vec<_>>(),
        );
        assert_eq!(coef, 1.0);
        let got_norm = adam.last_norm().unwrap().to_scalar().unwrap() as f64;
        assert!(
            ((got_norm - norm) / norm).abs() < 1e-6,
            "{got_norm} vs {norm}"
        );
        assert_eq!(adam.last_clip_coef().unwrap().to_scalar().unwrap(), 1.0);
        assert!(rel_err(&params.to_vec().unwrap(), &p_ref) < 1e-6);
    }
}

#[test]
fn adam_norm_over_many_chunks() {
    // 300,007 parameters: 19 sumsq chunks of 16,384, a ragged last one.
    let g = gpu();
    let n = 300_007;
    let shapes: [(&str, &[usize]); 2] = [("big", &[300_000]), ("odd", &[7])];
    let params = FlatParams::new(&g, &shapes).unwrap();
    let p0 = rand_away_from_zero(n, 9, 0.5, 2.0);
    params.set_all(&p0).unwrap();
    let cfg = AdamConfig::new(1e-3).with_clip(100.0);
    let mut adam = Adam::new(&params, cfg).unwrap();
    let grad = rand_away_from_zero(n, 10, 0.1, 1.0);
    adam.step_flat(&params, &Tensor::from_vec(&g, &[n], &grad).unwrap())
        .unwrap();
    let mut reference = aref::Adam::new(n, cfg);
    let mut p_ref: Vec<f64> = p0.iter().map(|v| *v as f64).collect();
    let (norm, coef) = reference.step(
        &mut p_ref,
        &grad.iter().map(|v| *v as f64).collect::<Vec<_>>(),
    );
    assert!(coef < 1.0);
    let got = adam.last_norm().unwrap().to_scalar().unwrap() as f64;
    eprintln!(
        "norm of 300,007 gradients: relative error {:.2e}",
        ((got - norm) / norm).abs()
    );
    assert!(((got - norm) / norm).abs() < 1e-6, "norm {got} vs {norm}");
    assert!(rel_err(&params.to_vec().unwrap(), &p_ref) < 1e-6);
}

#[test]
fn adam_state_save_and_restore_gives_identical_steps() {
    let g = gpu();
    let cfg = AdamConfig::new(1e-2).with_clip(MAX_NORM);
    let a_params = FlatParams::new(&g, &SHAPES).unwrap();
    a_params.set_all(&initial_params()).unwrap();
    let mut a = Adam::new(&a_params, cfg).unwrap();
    let flat = |k: usize| {
        let v = step_grads(k).concat();
        Tensor::from_vec(&g, &[v.len()], &v).unwrap()
    };
    for k in 0..3 {
        a.step_flat(&a_params, &flat(k)).unwrap();
    }
    // "Checkpoint" through the host, as a trainer writing to disk would.
    let (m, v, t) = a.state().unwrap();
    let (m_host, v_host, p_host) = (
        m.to_vec().unwrap(),
        v.to_vec().unwrap(),
        a_params.to_vec().unwrap(),
    );
    // The snapshot does not follow later steps.
    a.step_flat(&a_params, &flat(3)).unwrap();
    assert_eq!(m.to_vec().unwrap(), m_host);
    // Resume into fresh objects and take the same steps 4 and 5 on both.
    let b_params = FlatParams::new(&g, &SHAPES).unwrap();
    b_params.set_all(&p_host).unwrap();
    let mut b = Adam::new(&b_params, cfg).unwrap();
    b.set_state(
        &Tensor::from_vec(&g, &[m_host.len()], &m_host).unwrap(),
        &Tensor::from_vec(&g, &[v_host.len()], &v_host).unwrap(),
        t,
    )
    .unwrap();
    assert_eq!(b.steps(), 3);
    b.step_flat(&b_params, &flat(3)).unwrap();
    a.step_flat(&a_params, &flat(4)).unwrap();
    b.step_flat(&b_params, &flat(4)).unwrap();
    assert_eq!(
        a_params.to_vec().unwrap(),
        b_params.to_vec().unwrap(),
        "parameters after resume"
    );
    let (sa, sb) = (a.state().unwrap(), b.state().unwrap());
    assert_eq!(
        sa.0.to_vec().unwrap(),
        sb.0.to_vec().unwrap(),
        "m after resume"
    );
    assert_eq!(
        sa.1.to_vec().unwrap(),
        sb.1.to_vec().unwrap(),
        "v after resume"
    );
    assert_eq!((sa.2, sb.2), (5, 5));
    // A state that does not fit is refused.
    assert!(b
        .set_state(&m, &Tensor::zeros(&g, &[3]).unwrap(), 1)
        .is_err());
}

#[test]
fn adam_views_missing_gradients_and_adopted_tensors() {
    let g = gpu();
    let sizes = sizes();
    let p0 = initial_params();
    // Adopt tensors the "model" already holds.
    let held: Vec<Tensor> = SHAPES
        .iter()
        .scan(0, |off, (_, s)| {
            let n: usize = s.iter().product();
            *off += n;
            Some(Tensor::from_vec(&g, s, &p0[*off - n..*off]).unwrap())
        })
        .collect();
    let named: Vec<(&str, &Tensor)> = SHAPES.iter().map(|(n, _)| *n).zip(&held).collect();
    let params = FlatParams::from_tensors(&g, &named).unwrap();
    assert_eq!(params.to_vec().unwrap(), p0);
    assert_eq!(params.entries()[1].offset, sizes[0]);
    let cfg = AdamConfig::new(1e-2).with_clip(MAX_NORM);
    let mut adam = Adam::new(&params, cfg).unwrap();
    // Tensor "b" got no gradient: it counts as zero.
    let mut grads = step_grads(0);
    grads[1] = vec![0.0; sizes[1]];
    let g0 = Tensor::from_vec(&g, SHAPES[0].1, &grads[0]).unwrap();
    let g2 = Tensor::from_vec(&g, SHAPES[2].1, &grads[2]).unwrap();
    adam.step(&params, &[Some(&g0), None, Some(&g2)]).unwrap();
    let mut reference = aref::Adam::new(p0.len(), cfg);
    let mut p_ref: Vec<f64> = p0.iter().map(|v| *v as f64).collect();
    reference.step(
        &mut p_ref,
        &grads.concat().iter().map(|v| *v as f64).collect::<Vec<_>>(),
    );
    let flat = params.to_vec().unwrap();
    assert!(rel_err(&flat, &p_ref) < 1e-6);
    // The held tensors are the views and follow the flat buffer.
    for (e, t) in params.entries().iter().zip(&held) {
        assert_eq!(
            t.to_vec().unwrap(),
            &flat[e.offset..e.offset + e.len],
            "view {}",
            e.name
        );
        assert_eq!(
            params.get(&e.name).unwrap().to_vec().unwrap(),
            t.to_vec().unwrap()
        );
    }
    // set() writes both the flat buffer and the view.
    params.set("s", &[0.5; 15]).unwrap();
    assert_eq!(held[2].to_vec().unwrap(), vec![0.5; 15]);
    assert_eq!(&params.to_vec().unwrap()[sizes[0] + sizes[1]..], &[0.5; 15]);
    let named = params.to_named().unwrap();
    assert_eq!(
        (named[1].0.as_str(), named[1].1.as_slice()),
        ("b", &[257usize][..])
    );
}

#[test]
fn adam_step_is_three_dispatches_whatever_the_number_of_tensors() {
    // Own device: the dispatch counter is per device and other tests run in parallel.
    let g = Gpu::new(&GpuOptions::default()).unwrap();
    for count in [3usize, 40] {
        let names: Vec<String> = (0..count).map(|i| format!("p{i}")).collect();
        let shapes: Vec<Vec<usize>> = (0..count).map(|i| vec![i % 5 + 1, 7]).collect();
        let specs: Vec<(&str, &[usize])> = names
            .iter()
            .map(|n| n.as_str())
            .zip(shapes.iter().map(|s| s.as_slice()))
            .collect();
        let params = FlatParams::new(&g, &specs).unwrap();
        let mut adam = Adam::new(&params, AdamConfig::new(1e-3).with_clip(1.0)).unwrap();
        let grads: Vec<Tensor> = shapes
            .iter()
            .map(|s| Tensor::full(&g, s, 0.5).unwrap())
            .collect();
        let refs: Vec<Option<&Tensor>> = grads.iter().map(Some).collect();
        g.sync();
        let before = g.stats().dispatches;
        adam.step(&params, &refs).unwrap();
        assert_eq!(
            (g.stats().dispatches - before) as usize,
            Adam::DISPATCHES_PER_STEP,
            "{count} tensors"
        );
        g.sync();
    }
}

#[test]
fn adam_rejects_bad_inputs() {
    let g = gpu();
    let params = FlatParams::new(&g, &SHAPES).unwrap();
    let mut adam = Adam::new(&params, AdamConfig::default().with_clip(1.0)).unwrap();
    let g0 = Tensor::zeros(&g, &[7, 33]).unwrap();
    let e = adam.step(&params, &[Some(&g0)]).unwrap_err().to_string();
    assert!(e.contains("1 gradients for 3"), "{e}");
    let e = adam
        .step(&params, &[Some(&g0), Some(&g0), None])
        .unwrap_err()
        .to_string();
    assert!(e.contains("for 'b'"), "{e}");
    assert!(adam.step_flat(&params, &g0).is_err());
    let other = FlatParams::new(&g, &[("x", &[4][..])]).unwrap();
    assert!(adam
        .step_flat(&other, &Tensor::zeros(&g, &[4]).unwrap())
        .is_err());
    assert_eq!(adam.steps(), 0, "a refused step does not count");
    let e = FlatParams::new(&g, &[("a", &[2][..]), ("a", &[3][..])])
        .err()
        .unwrap()
        .to_string();
    assert!(e.contains("named twice"), "{e}");
    assert!(FlatParams::new(&g, &[]).is_err());
    assert!(Adam::new(
        &params,
        AdamConfig {
            beta1: 1.0,
            ..AdamConfig::default()
        }
    )
    .is_err());
    assert!(Adam::new(&params, AdamConfig::new(1e-3).with_clip(0.0)).is_err());
    assert!(adam.set_lr(-1.0).is_err());
    assert!(params.set("nope", &[1.0]).is_err());
    assert!(params.set("s", &[1.0]).is_err());
    assert!(params.set_all(&[1.0]).is_err());
}
