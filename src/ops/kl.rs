//! KL divergence between diagonal Gaussians summed over the latent axis (`shaders/kl.wgsl`),
//! its stop-gradient variants and the balanced KL loss with free nats (DreamerV2-style KL
//! balancing, as in the model spec):
//!
//! `KL(N(mq, sq) || N(mp, sp)) = sum log(sp/sq) + (sq^2 + (mq - mp)^2) / (2 sp^2) - 1/2` per row;
//! `kl_loss = alpha max(free, mean KL(sg(q) || p)) + (1 - alpha) max(free, mean KL(q || sg(p)))`.
//!
//! Dispatches: [`kl`] is one forward kernel and one backward dispatch per side that receives
//! gradient. [`kl_balanced`] is two forward dispatches (per-row KL, then one workgroup for the
//! mean, the clamp and its gate) and two backward dispatches (the prior side weighted by alpha,
//! the posterior side by 1 - alpha, both times the gate read on the GPU: no host round trip).

use crate::error::{shape_err, Result};
use crate::gpu::pipelines::{kernel_sig, KernelSig};
use crate::ops::grid;
use crate::tensor::{Grads, Tape, Tensor, Var};

// The kernels this module dispatches: entry points and the storage buffers they bind, in order.

/// `kl::kl_rows`.
pub const KL_ROWS: KernelSig = kernel_sig!(
    Params,
    "kl",
    "kl_rows",
    [],
    ["mq", "sq", "mp", "sp", "kl_out"]
);

/// `kl::kl_backward`.
pub const KL_BACKWARD: KernelSig = kernel_sig!(
    Params,
    "kl",
    "kl_backward",
    ["SIDE", "SCALAR_G", "HAS_M", "HAS_S", "ACC_M", "ACC_S"],
    ["mq", "sq", "mp", "sp", "g", "gate", "d_m", "d_s"]
);

/// `kl::kl_mean_clamp`.
pub const KL_MEAN_CLAMP: KernelSig = kernel_sig!(
    Params,
    "kl",
    "kl_mean_clamp",
    [],
    ["kl_in", "value", "mean_out", "gate_out"]
);

#[repr(C)]
#[derive(Clone, Copy, Default, bytemuck::Pod, bytemuck::Zeroable)]
pub(crate) struct Params {
    rows: u32,
    s: u32,
    n: u32,
    scale: f32,
    alpha: f32,
    free: f32,
}

/// Where the KL's gradient is stopped.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum StopGrad {
    /// Gradients to both distributions.
    #[default]
    None,
    /// `KL(sg(q) || p)`: the posterior is a constant; gradients only to the prior.
    Posterior,
    /// `KL(q || sg(p))`: the prior is a constant; gradients only to the posterior.
    Prior,
}

/// One distribution's side of the KL.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Side {
    /// q (the first argument).
    Posterior,
    /// p (the second argument).
    Prior,
}

/// Check four equal shapes `[..., S]`; return `(rows, S, output shape)`.
fn dims(q: (&Tensor, &Tensor), p: (&Tensor, &Tensor)) -> Result<(usize, usize, Vec<usize>)> {
    let shape = q.0.shape();
    for t in [q.1, p.0, p.1] {
        if t.shape() != shape {
            return shape_err(
                "kl",
                format!(
                    "mq, sq, mp, sp must share one shape [..., S]: {:?}, {:?}, {:?}, {:?}",
                    q.0.shape(),
                    q.1.shape(),
                    p.0.shape(),
                    p.1.shape()
                ),
            );
        }
    }
    if shape.is_empty() || q.0.is_empty() {
        return shape_err("kl", format!("needs a non-empty [..., S], got {shape:?}"));
    }
    let s = q.0.last_dim();
    let mut out = shape[..shape.len() - 1].to_vec();
    if out.is_empty() {
        out.push(1);
    }
    Ok((q.0.rows(), s, out))
}

/// Record the per-row KL `[...]` of `q = (mq, sq)` against `p = (mp, sp)`, all `[..., S]`.
pub fn kl_forward(q: (&Tensor, &Tensor), p: (&Tensor, &Tensor)) -> Result<Tensor> {
    let (rows, s, shape) = dims(q, p)?;
    let gpu = q.0.gpu();
    let out = Tensor::empty(gpu, &shape)?;
    let k = gpu.kernel(&KL_ROWS, &[])?;
    let prm = Params {
        rows: rows as u32,
        s: s as u32,
        n: (rows * s) as u32,
        ..Default::default()
    };
    gpu.dispatch(
        &k,
        &prm,
        &[q.0.buf(), q.1.buf(), p.0.buf(), p.1.buf(), out.buf()],
        grid(gpu, rows),
    );
    Ok(out)
}

/// The gradient arriving at the KL.
#[derive(Clone, Copy)]
pub enum KlGradIn<'a> {
    /// A gradient per row, `[rows]`.
    PerRow(&'a Tensor),
    /// The gradient `[1]` of a scalar that is `scale * sum_rows KL` where `gate[0]` is 1, and
    /// constant where it is 0 (the free-nats clamp).
    Gated { g: &'a Tensor, gate: &'a Tensor },
}

/// Record one side's gradients, `scale * g_row * dKL/d(m, s)`, into `d_m` / `d_s` where given
/// (`(tensor, acc)`: add when `acc`). One dispatch.
pub fn kl_backward(
    q: (&Tensor, &Tensor),
    p: (&Tensor, &Tensor),
    side: Side,
    gin: KlGradIn,
    scale: f32,
    d_m: Option<(&Tensor, bool)>,
    d_s: Option<(&Tensor, bool)>,
) -> Result<()> {
    let (rows, s, _) = dims(q, p)?;
    let n = rows * s;
    let (g, gate, scalar) = match gin {
        KlGradIn::PerRow(g) => (g, g, false),
        KlGradIn::Gated { g, gate } => (g, gate, true),
    };
    let want_g = if scalar { 1 } else { rows };
    if g.len() != want_g || gate.len() != want_g {
        return shape_err(
            "kl_backward",
            format!(
                "gradient {:?} / gate {:?}, expected {want_g} values",
                g.shape(),
                gate.shape()
            ),
        );
    }
    for t in [d_m, d_s].into_iter().flatten() {
        if t.0.len() != n {
            return shape_err(
                "kl_backward",
                format!(
                    "gradient target {:?} for inputs {:?}",
                    t.0.shape(),
                    q.0.shape()
                ),
            );
        }
    }
    if d_m.is_none() && d_s.is_none() {
        return Ok(());
    }
    let gpu = q.0.gpu();
    // An absent output's binding gets a 1-element dummy (it is never written).
    let dummy = Tensor::empty(gpu, &[1])?;
    let (dm, acc_m) = d_m.unwrap_or((&dummy, false));
    let (ds, acc_s) = d_s.unwrap_or((&dummy, false));
    let k = gpu.kernel(
        &KL_BACKWARD,
        &[
            ("SIDE", if side == Side::Posterior { 0.0 } else { 1.0 }),
            ("SCALAR_G", scalar as u32 as f64),
            ("HAS_M", d_m.is_some() as u32 as f64),
            ("HAS_S", d_s.is_some() as u32 as f64),
            ("ACC_M", acc_m as u32 as f64),
            ("ACC_S", acc_s as u32 as f64),
        ],
    )?;
    let prm = Params {
        rows: rows as u32,
        s: s as u32,
        n: n as u32,
        scale,
        ..Default::default()
    };
    gpu.dispatch(
        &k,
        &prm,
        &[
            q.0.buf(),
            q.1.buf(),
            p.0.buf(),
            p.1.buf(),
            g.buf(),
            gate.buf(),
            dm.buf(),
            ds.buf(),
        ],
        grid(gpu, n),
    );
    Ok(())
}

/// The free-nats clamp of a mean KL, all `[1]` on the GPU.
#[derive(Clone, Debug)]
pub struct KlClamp {
    /// `alpha max(free, mean) + (1 - alpha) max(free, mean)`.
    pub value: Tensor,
    /// The mean over rows.
    pub mean: Tensor,
    /// 1 where the mean is above the free nats (gradient flows), else 0.
    pub gate: Tensor,
}

/// Record the mean of a per-row KL, its clamp at `free_nats` and the clamp's gate. One dispatch
/// (a single workgroup).
pub fn kl_mean_clamp(per_row: &Tensor, alpha: f32, free_nats: f32) -> Result<KlClamp> {
    if per_row.is_empty() {
        return shape_err("kl_mean_clamp", "no rows");
    }
    let gpu = per_row.gpu();
    let [value, mean, gate] = [(); 3].map(|_| Tensor::empty(gpu, &[1]));
    let (value, mean, gate) = (value?, mean?, gate?);
    let k = gpu.kernel(&KL_MEAN_CLAMP, &[])?;
    let prm = Params {
        rows: per_row.len() as u32,
        alpha,
        free: free_nats,
        ..Default::default()
    };
    gpu.dispatch(
        &k,
        &prm,
        &[per_row.buf(), value.buf(), mean.buf(), gate.buf()],
        [1, 1, 1],
    );
    Ok(KlClamp { value, mean, gate })
}

/// Record one side's backward through the tape's gradient targets.
fn side_backward(
    grads: &mut Grads,
    vals: &[Tensor; 4],
    vars: [Var; 4],
    side: Side,
    gin: KlGradIn,
    scale: f32,
) -> Result<()> {
    let (vm, vs, shape) = match side {
        Side::Posterior => (vars[0], vars[1], vals[0].shape()),
        Side::Prior => (vars[2], vars[3], vals[2].shape()),
    };
    let gpu = vals[0].gpu().clone();
    let tm = if grads.wants(vm) {
        Some(grads.target(vm, shape, &gpu)?)
    } else {
        None
    };
    // The same Var as mean and std: the second gradient goes to a temporary, added after.
    let mut extra = None;
    let ts = if !grads.wants(vs) {
        None
    } else if vs == vm {
        let tmp = Tensor::empty(&gpu, shape)?;
        extra = Some(tmp.clone());
        Some((tmp, false))
    } else {
        Some(grads.target(vs, shape, &gpu)?)
    };
    kl_backward(
        (&vals[0], &vals[1]),
        (&vals[2], &vals[3]),
        side,
        gin,
        scale,
        tm.as_ref().map(|(t, a)| (t, *a)),
        ts.as_ref().map(|(t, a)| (t, *a)),
    )?;
    drop((tm, ts));
    if let Some(tmp) = extra {
        grads.add(vs, tmp)?;
    }
    Ok(())
}

/// Per-row `KL(N(mq, sq) || N(mp, sp))` summed over the last axis: `[..., S]` -> `[...]`, with
/// gradients stopped as `sg` says. One dispatch forward, one per side backward.
pub fn kl(t: &Tape, q: (Var, Var), p: (Var, Var), sg: StopGrad) -> Result<Var> {
    let vars = [q.0, q.1, p.0, p.1];
    let vals = vars.map(|v| t.value(v));
    let out = kl_forward((&vals[0], &vals[1]), (&vals[2], &vals[3]))?;
    let inputs: &[Var] = match sg {
        StopGrad::None => &vars,
        StopGrad::Posterior => &vars[2..],
        StopGrad::Prior => &vars[..2],
    };
    Ok(t.record(out, inputs, move |grads, g_out| {
        if sg != StopGrad::Posterior {
            side_backward(
                grads,
                &vals,
                vars,
                Side::Posterior,
                KlGradIn::PerRow(g_out),
                1.0,
            )?;
        }
        if sg != StopGrad::Prior {
            side_backward(
                grads,
                &vals,
                vars,
                Side::Prior,
                KlGradIn::PerRow(g_out),
                1.0,
            )?;
        }
        Ok(())
    }))
}

/// The balanced KL loss and the mean KL (for logging).
#[derive(Clone, Debug)]
pub struct KlOut {
    /// `[1]`: `alpha max(free, mean KL(sg(q) || p)) + (1 - alpha) max(free, mean KL(q || sg(p)))`.
    pub value: Var,
    /// `[1]`: the mean over rows of the KL (equal for both terms).
    pub mean_kl: Tensor,
}

/// KL balancing with free nats. Value-wise both terms are `max(free, mean KL)`; the gradient is
/// `alpha * gate * d(mean KL)/d(mp, sp)` to the prior and `(1 - alpha) * gate * d(mean KL)/d(mq,
/// sq)` to the posterior, with gate = [mean KL > free] (below the free nats the loss is the
/// constant `free`). Two dispatches forward, two backward.
pub fn kl_balanced(
    t: &Tape,
    q: (Var, Var),
    p: (Var, Var),
    alpha: f32,
    free_nats: f32,
) -> Result<KlOut> {
    if !(0.0..=1.0).contains(&alpha) {
        return Err(crate::Error::Invalid(format!(
            "kl_balanced: alpha must be in [0, 1], got {alpha}"
        )));
    }
    let vars = [q.0, q.1, p.0, p.1];
    let vals = vars.map(|v| t.value(v));
    let per_row = kl_forward((&vals[0], &vals[1]), (&vals[2], &vals[3]))?;
    let rows = per_row.len();
    let clamp = kl_mean_clamp(&per_row, alpha, free_nats)?;
    let gate = clamp.gate;
    let inv = 1.0 / rows as f32;
    let value = t.record(clamp.value, &vars, move |grads, g_out| {
        let gin = KlGradIn::Gated {
            g: g_out,
            gate: &gate,
        };
        side_backward(grads, &vals, vars, Side::Prior, gin, alpha * inv)?;
        side_backward(
            grads,
            &vals,
            vars,
            Side::Posterior,
            gin,
            (1.0 - alpha) * inv,
        )
    });
    Ok(KlOut {
        value,
        mean_kl: clamp.mean,
    })
}

/// Plain-Rust references in f64.
pub mod reference {
    /// Per-row KL of `[rows, s]` inputs.
    pub fn kl(mq: &[f32], sq: &[f32], mp: &[f32], sp: &[f32], s: usize) -> Vec<f32> {
        mq.chunks(s)
            .enumerate()
            .map(|(r, _)| {
                (0..s)
                    .map(|c| {
                        let e = r * s + c;
                        let (q, p, d) = (sq[e] as f64, sp[e] as f64, mq[e] as f64 - mp[e] as f64);
                        (p / q).ln() + (q * q + d * d) / (2.0 * p * p) - 0.5
                    })
                    .sum::<f64>() as f32
            })
            .collect()
    }

    /// Gradients `(d mq, d sq, d mp, d sp)` of `sum_r g[r] KL_r`.
    pub fn kl_grads(
        mq: &[f32],
        sq: &[f32],
        mp: &[f32],
        sp: &[f32],
        s: usize,
        g: &[f32],
    ) -> [Vec<f32>; 4] {
        let mut out = [
            vec![0f32; mq.len()],
            vec![0f32; mq.len()],
            vec![0f32; mq.len()],
            vec![0f32; mq.len()],
        ];
        for e in 0..mq.len() {
            let gr = g[e / s] as f64;
            let (q, p, d) = (sq[e] as f64, sp[e] as f64, mq[e] as f64 - mp[e] as f64);
            out[0][e] = (gr * d / (p * p)) as f32;
            out[1][e] = (gr * (q / (p * p) - 1.0 / q)) as f32;
            out[2][e] = (-gr * d / (p * p)) as f32;
            out[3][e] = (gr * (1.0 / p - (q * q + d * d) / (p * p * p))) as f32;
        }
        out
    }
}
