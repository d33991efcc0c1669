//! Lambda-returns and discount weights over an imagined trajectory, time-major `[H+1, N]`
//! (row t = imagined step t, t = 0 the start state).
//!
//! # Index convention
//! With `r_t`, `gamma_t = gamma * cont_t` and `v_t` evaluated on the state of step t
//! (t = 0..H, the start included):
//!
//! `R_t = r_t + gamma_t * ((1 - lambda) * v_{t+1} + lambda * R_{t+1})` for t = 0..H-1,
//! bootstrapped with `R_H = v_H`; so `R_{H-1} = r_{H-1} + gamma_{H-1} * v_H`.
//!
//! This is DreamerV1's `lambda_return(reward[:-1], value[:-1], pcont[:-1],
//! bootstrap=value[-1], lambda_, axis=0)` (Hafner et al., `dreamer/tools.py`, where
//! `next_values = concat(value[1:], bootstrap)` and the reverse scan is
//! `agg = input_t + pcont_t * lambda * agg`), applied to the H+1 states of the trajectory
//! including its start (DreamerV2's layout; DreamerV1 drops the start state). `r_H` and
//! `gamma_H` are not used; `v_0` only by the critic's loss.
//!
//! The discount weights are `weight_t = prod_{k<t} gamma_k` for t = 0..H-1 (`weight_0 = 1`):
//! DreamerV1's `cumprod(concat([ones, pcont[:-2]]))`, always stop-gradient.
//!
//! # Dispatches
//! [`lambda_return`] is the fused scan of `ops::returns`: one dispatch forward, one backward
//! (built from elementwise ops it was 5H + 8 forward and about twice that backward).
//! [`discount_weights`] is 5 dispatches and no backward: the cumulative product is a
//! sum of logs, `log gamma_k = ln(gamma) - softplus(-logit_k)` (exact and finite for any
//! logit), taken with one matmul by a constant lower-triangular `[H, H+1]` matrix, then exp.

use crate::error::{shape_err, Result};
use crate::ops::elementwise::{unary_forward, Unary};
use crate::ops::matmul::{matmul_into, Act, MatmulSpec};
use crate::tensor::{Tape, Tensor, Var};

fn dims(op: &'static str, shape: &[usize]) -> Result<(usize, usize)> {
    if shape.len() != 2 || shape[0] < 2 || shape[1] == 0 {
        return shape_err(
            op,
            format!("needs time-major [H+1, N] with H >= 1, got {shape:?}"),
        );
    }
    Ok((shape[0] - 1, shape[1]))
}

/// Lambda-returns `[H, N]` from `reward`, `gamma` (discount times continue probability) and
/// `value`, all time-major `[H+1, N]` (see the module docs for the indices). Gradients flow
/// to all three inputs. One fused scan dispatch forward and one backward
/// (`ops::returns`).
pub fn lambda_return(t: &Tape, reward: Var, gamma: Var, value: Var, lambda: f32) -> Result<Var> {
    let shape = t.shape(reward);
    dims("lambda_return", &shape)?;
    for (name, v) in [("gamma", gamma), ("value", value)] {
        if t.shape(v) != shape {
            return shape_err(
                "lambda_return",
                format!("{name} {:?} differs from reward {shape:?}", t.shape(v)),
            );
        }
    }
    crate::ops::returns::lambda_return(t, reward, gamma, value, lambda)
}

/// `weight_t = prod_{k<t} gamma * sigmoid(cont_logit_k)` for t = 0..H-1, `[H, N]`, from the
/// continue logits `[H+1, N]` (a plain tensor: the weights are stop-gradient).
pub fn discount_weights(cont_logits: &Tensor, gamma: f32) -> Result<Tensor> {
    let (h, n) = dims("discount_weights", cont_logits.shape())?;
    if gamma.is_nan() || gamma <= 0.0 {
        return shape_err(
            "discount_weights",
            format!("gamma must be positive, got {gamma}"),
        );
    }
    let gpu = cont_logits.gpu();
    // log gamma_k = ln(gamma) + log sigmoid(x) = ln(gamma) - softplus(-x).
    let neg = unary_forward(cont_logits, Unary::Affine(-1.0, 0.0))?;
    let sp = unary_forward(&neg, Unary::Softplus)?;
    let log_g = unary_forward(&sp, Unary::Affine(-1.0, gamma.ln()))?;
    // lower[t, k] = 1 for k < t.
    let mut lower = vec![0f32; h * (h + 1)];
    for row in 0..h {
        lower[row * (h + 1)..row * (h + 1) + row].fill(1.0);
    }
    let lower = Tensor::from_vec(gpu, &[h, h + 1], &lower)?;
    let log_w = Tensor::empty(gpu, &[h, n])?;
    let spec = MatmulSpec {
        m: h,
        n,
        k: h + 1,
        trans_a: false,
        trans_b: false,
        act: Act::None,
        acc: false,
    };
    matmul_into(&lower, &log_g, None, &log_w, spec)?;
    unary_forward(&log_w, Unary::Exp)
}

/// Plain-Rust f64 references (time-major `[H+1, N]` slices, row t at `t * n`).
pub mod reference {
    /// The lambda-return recursion, `[H, N]` (the kernel's own reference).
    pub use crate::ops::returns::reference::lambda_return;

    /// `prod_{k<t} gamma * sigmoid(logit_k)`, `[H, N]`.
    pub fn discount_weights(logits: &[f32], n: usize, gamma: f64) -> Vec<f64> {
        let h = logits.len() / n - 1;
        let mut out = vec![0f64; h * n];
        for col in 0..n {
            let mut w = 1.0;
            for step in 0..h {
                out[step * n + col] = w;
                let x = logits[step * n + col] as f64;
                w *= gamma / (1.0 + (-x).exp());
            }
        }
        out
    }
}
