//! The lambda-return scan (`shaders/returns.wgsl`): one dispatch forward, one backward, for
//! time-major `[H+1, N]` rewards, discounts and values.
//!
//! `R_t = r_t + g_t ((1 - lambda) v_{t+1} + lambda R_{t+1})` for t = H-1..0 with `R_H = v_H`
//! (DreamerV1's `lambda_return` with the bootstrap `v_H`). Built from elementwise ops the scan
//! costs about 5H + 8 dispatches forward and twice that backward; here one invocation per
//! trajectory runs the recursion in registers.

use crate::error::{shape_err, Result};
use crate::gpu::pipelines::{kernel_sig, KernelSig};
use crate::ops::grid;
use crate::tensor::{Tape, Tensor, Var};

// The kernels this module dispatches: entry points and the storage buffers they bind, in order.

/// `returns::lambda_return`.
pub const LAMBDA_RETURN: KernelSig = kernel_sig!(
    Params,
    "returns",
    "lambda_return",
    [],
    ["r", "g", "v", "ret"]
);

/// `returns::lambda_return_backward`.
pub const LAMBDA_RETURN_BACKWARD: KernelSig = kernel_sig!(
    Params,
    "returns",
    "lambda_return_backward",
    [],
    ["g", "v", "ret_saved", "d_ret", "d_r", "d_g", "d_v"]
);

#[repr(C)]
#[derive(Clone, Copy, Default, bytemuck::Pod, bytemuck::Zeroable)]
pub(crate) struct Params {
    h: u32,
    n: u32,
    lambda: f32,
    acc_r: u32,
    acc_g: u32,
    acc_v: u32,
}

fn dims(shape: &[usize]) -> Result<(usize, usize)> {
    if shape.len() != 2 || shape[0] < 2 || shape[1] == 0 {
        return shape_err(
            "lambda_return",
            format!("needs time-major [H+1, N] with H >= 1, got {shape:?}"),
        );
    }
    Ok((shape[0] - 1, shape[1]))
}

/// Record the returns `[H, N]`.
pub fn lambda_return_forward(r: &Tensor, g: &Tensor, v: &Tensor, lambda: f32) -> Result<Tensor> {
    let (h, n) = dims(r.shape())?;
    if g.shape() != r.shape() || v.shape() != r.shape() {
        return shape_err(
            "lambda_return",
            format!(
                "reward {:?}, gamma {:?}, value {:?} must match",
                r.shape(),
                g.shape(),
                v.shape()
            ),
        );
    }
    let gpu = r.gpu();
    let out = Tensor::empty(gpu, &[h, n])?;
    let k = gpu.kernel(&LAMBDA_RETURN, &[])?;
    let p = Params {
        h: h as u32,
        n: n as u32,
        lambda,
        ..Default::default()
    };
    gpu.dispatch(
        &k,
        &p,
        &[r.buf(), g.buf(), v.buf(), out.buf()],
        grid(gpu, n),
    );
    Ok(out)
}

/// Record the gradients of the returns into `dr`, `dg`, `dv` (`[H+1, N]`; the flags say which
/// ones to add into).
#[allow(clippy::too_many_arguments)]
pub fn lambda_return_backward(
    g: &Tensor,
    v: &Tensor,
    ret: &Tensor,
    d_ret: &Tensor,
    lambda: f32,
    dr: (&Tensor, bool),
    dg: (&Tensor, bool),
    dv: (&Tensor, bool),
) -> Result<()> {
    let (h, n) = dims(g.shape())?;
    let gpu = g.gpu();
    let k = gpu.kernel(&LAMBDA_RETURN_BACKWARD, &[])?;
    let p = Params {
        h: h as u32,
        n: n as u32,
        lambda,
        acc_r: dr.1 as u32,
        acc_g: dg.1 as u32,
        acc_v: dv.1 as u32,
    };
    gpu.dispatch(
        &k,
        &p,
        &[
            g.buf(),
            v.buf(),
            ret.buf(),
            d_ret.buf(),
            dr.0.buf(),
            dg.0.buf(),
            dv.0.buf(),
        ],
        grid(gpu, n),
    );
    Ok(())
}

/// Lambda-returns `[H, N]` on the tape; gradients flow to all three inputs.
pub fn lambda_return(t: &Tape, reward: Var, gamma: Var, value: Var, lambda: f32) -> Result<Var> {
    let (rv, gv, vv) = (t.value(reward), t.value(gamma), t.value(value));
    let out = lambda_return_forward(&rv, &gv, &vv, lambda)?;
    let saved = out.clone();
    Ok(t.record(out, &[reward, gamma, value], move |grads, d_ret| {
        let gpu = gv.gpu().clone();
        let shape = gv.shape().to_vec();
        // An input that wants no gradient still gets one written, into a scratch buffer.
        let mut target = |v: Var| -> Result<(Tensor, bool)> {
            if grads.wants(v) {
                grads.target(v, &shape, &gpu)
            } else {
                Ok((Tensor::empty(&gpu, &shape)?, false))
            }
        };
        let dr = target(reward)?;
        let dg = target(gamma)?;
        let dv = target(value)?;
        lambda_return_backward(
            &gv,
            &vv,
            &saved,
            d_ret,
            lambda,
            (&dr.0, dr.1),
            (&dg.0, dg.1),
            (&dv.0, dv.1),
        )
    }))
}

/// Plain-Rust f64 reference (time-major slices, row t at `t * n`).
pub mod reference {
    /// The recursion, `[H, N]`.
    pub fn lambda_return(
        reward: &[f32],
        gamma: &[f32],
        value: &[f32],
        n: usize,
        lambda: f64,
    ) -> Vec<f64> {
        let h = reward.len() / n - 1;
        let mut out = vec![0f64; h * n];
        for col in 0..n {
            let mut next = value[h * n + col] as f64;
            for step in (0..h).rev() {
                let i = step * n + col;
                next = reward[i] as f64
                    + gamma[i] as f64 * ((1.0 - lambda) * value[i + n] as f64 + lambda * next);
                out[i] = next;
            }
        }
        out
    }
}
