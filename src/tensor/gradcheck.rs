//! Finite-difference gradient checking.
//!
//! For a function `f(x_1..x_k) -> y` built from tape ops, we fix a random projection `w`
//! (same shape as `y`) and compare the analytic gradient of `L = sum(w * y)` (one backward pass
//! seeded with `w`) to central differences `(L(x + h e_j) - L(x - h e_j)) / 2h` for every
//! element j of every input. Projecting with a random `w` rather than summing checks every
//! output's gradient, not only their sum.
//!
//! Step and tolerances (f32 on the GPU): `L` is accumulated in f64 on the host, so its
//! rounding error is that of the f32 outputs, about 1e-7 |y| each. With h = 1e-2 that gives a
//! difference quotient error near 1e-5, while the truncation error is O(h^2 f''') ~ 1e-4 for
//! smooth ops on inputs of order 1. We accept |analytic - numeric| <= atol + rtol * max(|a|,
//! |n|) with atol = 1e-3 and rtol = 1e-2 by default: two orders above the expected error, and
//! two below what a wrong backward (a flipped sign, a missing term, a wrong index) produces.
//! Ops with kinks (ReLU, ELU's second derivative, max) must be checked on inputs at least h
//! away from the kink; the tests choose such inputs.

use rand::{Rng, SeedableRng};

use crate::error::{Error, Result};
use crate::gpu::Gpu;
use crate::tensor::{Tape, Tensor, Var};

/// Step and tolerances.
#[derive(Clone, Debug)]
pub struct GradcheckOptions {
    pub step: f32,
    pub atol: f64,
    pub rtol: f64,
    pub seed: u64,
    /// Check only these input indices (None: all).
    pub inputs: Option<Vec<usize>>,
}

impl Default for GradcheckOptions {
    fn default() -> Self {
        GradcheckOptions {
            step: 1e-2,
            atol: 1e-3,
            rtol: 1e-2,
            seed: 0x5eed,
            inputs: None,
        }
    }
}

/// The outcome: the largest error seen and where.
#[derive(Clone, Debug)]
pub struct GradcheckReport {
    pub checked: usize,
    pub max_abs_err: f64,
    pub worst: Option<(usize, usize, f64, f64)>,
    /// The largest gradient seen (analytic or numeric, in absolute value). A check whose
    /// gradients are all below `atol` compares nothing and is refused.
    pub max_abs_grad: f64,
}

/// Check `f`'s input gradients against central finite differences. `inputs` are
/// `(shape, values)` pairs; every input is a parameter of the tape. Returns an error naming
/// the first input element that fails, with both values; also an error when nothing was
/// checked (no elements selected) or every checked gradient is below `atol` (the comparison
/// would pass for any backward).
pub fn gradcheck<F>(
    gpu: &Gpu,
    inputs: &[(Vec<usize>, Vec<f32>)],
    opts: &GradcheckOptions,
    f: F,
) -> Result<GradcheckReport>
where
    F: Fn(&Tape, &[Var]) -> Result<Var>,
{
    // Analytic: one backward pass seeded with w.
    let tape = Tape::new(gpu);
    let vars: Vec<Var> = inputs
        .iter()
        .map(|(s, v)| Ok(tape.param(&Tensor::from_vec(gpu, s, v)?)))
        .collect::<Result<_>>()?;
    let out = f(&tape, &vars)?;
    let out_shape = tape.shape(out);
    let n_out: usize = out_shape.iter().product();
    let mut rng = rand::rngs::StdRng::seed_from_u64(opts.seed);
    let w: Vec<f32> = (0..n_out).map(|_| rng.random_range(-1.0..1.0)).collect();
    let seed = Tensor::from_vec(gpu, &out_shape, &w)?;
    let mut grads = tape.backward_with(out, seed)?;
    let analytic: Vec<Option<Vec<f32>>> = vars
        .iter()
        .map(|v| grads.take(*v).map(|g| g.to_vec()).transpose())
        .collect::<Result<_>>()?;

    let loss = |xs: &[(Vec<usize>, Vec<f32>)]| -> Result<f64> {
        let tape = Tape::no_grad(gpu);
        let vars: Vec<Var> = xs
            .iter()
            .map(|(s, v)| Ok(tape.constant(&Tensor::from_vec(gpu, s, v)?)))
            .collect::<Result<_>>()?;
        let y = tape.value(f(&tape, &vars)?).to_vec()?;
        Ok(y.iter().zip(&w).map(|(a, b)| *a as f64 * *b as f64).sum())
    };

    let mut report = GradcheckReport {
        checked: 0,
        max_abs_err: 0.0,
        worst: None,
        max_abs_grad: 0.0,
    };
    let mut xs: Vec<(Vec<usize>, Vec<f32>)> = inputs.to_vec();
    for (i, (_, values)) in inputs.iter().enumerate() {
        if let Some(only) = &opts.inputs {
            if !only.contains(&i) {
                continue;
            }
        }
        let a = analytic[i]
            .clone()
            .unwrap_or_else(|| vec![0.0; values.len()]);
        for j in 0..values.len() {
            let x0 = values[j];
            xs[i].1[j] = x0 + opts.step;
            let lp = loss(&xs)?;
            xs[i].1[j] = x0 - opts.step;
            let lm = loss(&xs)?;
            xs[i].1[j] = x0;
            // The actual perturbation in f32 may differ slightly from 2h.
            let h2 = ((x0 + opts.step) as f64) - ((x0 - opts.step) as f64);
            let numeric = (lp - lm) / h2;
            let an = a[j] as f64;
            let err = (an - numeric).abs();
            report.checked += 1;
            report.max_abs_grad = report.max_abs_grad.max(an.abs()).max(numeric.abs());
            if err > report.max_abs_err {
                report.max_abs_err = err;
                report.worst = Some((i, j, an, numeric));
            }
            if !err.is_finite() || err > opts.atol + opts.rtol * an.abs().max(numeric.abs()) {
                return Err(Error::Tape(format!(
                    "gradcheck failed at input {i} element {j}: analytic {an:.6e}, numeric {numeric:.6e} (|diff| {err:.3e})"
                )));
            }
        }
    }
    // A check that compared nothing, or only zeros, would pass for any backward.
    if report.checked == 0 {
        return Err(Error::Tape(
            "gradcheck checked nothing: no input elements were selected".into(),
        ));
    }
    if report.max_abs_grad <= opts.atol {
        return Err(Error::Tape(format!(
            "gradcheck compared only tiny gradients (all |g| <= {:.1e} = atol over {} elements): \
             it would accept any backward; use inputs where the function varies",
            report.max_abs_grad, report.checked
        )));
    }
    Ok(report)
}
