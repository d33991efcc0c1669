//! Fused GRU cell with PyTorch `GRUCell` semantics and parameter layout (`shaders/gru.wgsl`).
//!
//! `weight_ih [3H, I]`, `weight_hh [3H, H]`, `bias_ih [3H]`, `bias_hh [3H]`, gates (r, z, n):
//! `r = sigmoid(W_ir x + b_ir + W_hr h + b_hr)`, `z = sigmoid(W_iz x + b_iz + W_hz h + b_hz)`,
//! `n = tanh(W_in x + b_in + r * (W_hn h + b_hn))`, `h' = (1 - z) * n + z * h`.
//!
//! Forward, 3 dispatches: the gate pre-activations `gi = x W_ih^T + b_ih` and
//! `gh = h W_hh^T + b_hh` are two register-blocked matmuls with the bias fused
//! ([`matmul_into`]); one fused kernel (`gru_cell`) then does the whole elementwise chain (two
//! sigmoids, the reset product, tanh, the state update: about ten dispatches unfused) and saves
//! `[r | z | n | gh_n]` per row, which is all the backward needs: no matmul or nonlinearity is
//! recomputed.
//!
//! Backward: one fused kernel (`gru_cell_backward`) turns `dL/dh'` into the pre-activation
//! gradients `dgi`, `dgh` and the direct `z * dL/dh'` part of `dh`; then matmuls give
//! `dx = dgi W_ih`, `dh += dgh W_hh`, `dW_ih (+)= dgi^T x`, `dW_hh (+)= dgh^T h` and column sums
//! the biases. Every parameter gradient is written through `Grads::target` with `ACC`, so over
//! T steps the weight gradients accumulate in place.

use crate::error::{shape_err, Result};
use crate::gpu::pipelines::{kernel_sig, KernelSig};
use crate::ops::grid;
use crate::ops::matmul::{matmul_into, Act, MatmulSpec};
use crate::ops::reduce::sum_leading_into;
use crate::tensor::{Tape, Tensor, Var};

// The kernels this module dispatches: entry points and the storage buffers they bind, in order.

/// `gru::gru_cell`.
pub const GRU_CELL: KernelSig = kernel_sig!(
    Params,
    "gru",
    "gru_cell",
    ["SAVE"],
    ["gi", "gh", "h", "h_new", "saved"]
);

/// `gru::gru_cell_backward`.
pub const GRU_CELL_BACKWARD: KernelSig = kernel_sig!(
    Params,
    "gru",
    "gru_cell_backward",
    ["HAS_DH", "ACC_DH"],
    ["h", "g", "saved_in", "dgi", "dgh", "dh"]
);

#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
pub(crate) struct Params {
    batch: u32,
    hidden: u32,
    n: u32,
}

/// The four GRU parameters, PyTorch layout.
#[derive(Clone, Copy, Debug)]
pub struct GruWeights<'a> {
    /// `[3H, I]`
    pub w_ih: &'a Tensor,
    /// `[3H, H]`
    pub w_hh: &'a Tensor,
    /// `[3H]`
    pub b_ih: &'a Tensor,
    /// `[3H]`
    pub b_hh: &'a Tensor,
}

/// Sizes of one cell: batch (rows), input and hidden widths.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GruDims {
    pub batch: usize,
    pub input: usize,
    pub hidden: usize,
}

/// Check the shapes of a cell's operands and return its sizes. `x` is `[..., I]`, `h` is
/// `[..., H]` with the same leading shape.
pub fn gru_dims(x: &Tensor, h: &Tensor, w: &GruWeights) -> Result<GruDims> {
    let ws = w.w_ih.shape();
    if ws.len() != 2 || !ws[0].is_multiple_of(3) || ws[0] == 0 {
        return shape_err("gru_cell", format!("weight_ih must be [3H, I], got {ws:?}"));
    }
    let hidden = ws[0] / 3;
    let input = ws[1];
    if w.w_hh.shape() != [3 * hidden, hidden] {
        return shape_err(
            "gru_cell",
            format!(
                "weight_hh must be [{}, {hidden}] (weight_ih {ws:?}), got {:?}",
                3 * hidden,
                w.w_hh.shape()
            ),
        );
    }
    for (name, b) in [("bias_ih", w.b_ih), ("bias_hh", w.b_hh)] {
        if b.shape() != [3 * hidden] {
            return shape_err(
                "gru_cell",
                format!("{name} must be [{}], got {:?}", 3 * hidden, b.shape()),
            );
        }
    }
    let (xs, hs) = (x.shape(), h.shape());
    if xs.is_empty() || hs.is_empty() || xs[..xs.len() - 1] != hs[..hs.len() - 1] {
        return shape_err(
            "gru_cell",
            format!(
                "x {xs:?} and h {hs:?} must be [..., I] and [..., H] with the same leading shape"
            ),
        );
    }
    if x.last_dim() != input || h.last_dim() != hidden {
        return shape_err(
            "gru_cell",
            format!("x {xs:?} / h {hs:?} do not fit weight_ih {ws:?} (I = {input}, H = {hidden})"),
        );
    }
    Ok(GruDims {
        batch: h.rows(),
        input,
        hidden,
    })
}

/// Record the forward of one cell: returns `h'` (shaped like `h`) and, with `save`, the
/// `[B, 4H]` tensor `[r | z | n | gh_n]` that [`gru_cell_backward`] needs. 3 dispatches.
pub fn gru_cell_forward(
    x: &Tensor,
    h: &Tensor,
    w: &GruWeights,
    save: bool,
) -> Result<(Tensor, Option<Tensor>)> {
    let d = gru_dims(x, h, w)?;
    let gpu = x.gpu();
    let (b, hd) = (d.batch, d.hidden);
    let gi = Tensor::empty(gpu, &[b, 3 * hd])?;
    let gh = Tensor::empty(gpu, &[b, 3 * hd])?;
    let spec = |k| MatmulSpec {
        m: b,
        n: 3 * hd,
        k,
        trans_a: false,
        trans_b: true,
        act: Act::None,
        acc: false,
    };
    matmul_into(x, w.w_ih, Some(w.b_ih), &gi, spec(d.input))?;
    matmul_into(h, w.w_hh, Some(w.b_hh), &gh, spec(hd))?;
    let h_new = Tensor::empty(gpu, h.shape())?;
    let saved = if save {
        Tensor::empty(gpu, &[b, 4 * hd])?
    } else {
        Tensor::empty(gpu, &[1])?
    };
    let k = gpu.kernel(&GRU_CELL, &[("SAVE", save as u32 as f64)])?;
    let n = b * hd;
    let p = Params {
        batch: b as u32,
        hidden: hd as u32,
        n: n as u32,
    };
    gpu.dispatch(
        &k,
        &p,
        &[gi.buf(), gh.buf(), h.buf(), h_new.buf(), saved.buf()],
        grid(gpu, n),
    );
    Ok((h_new, save.then_some(saved)))
}

/// Where the gradients of one cell go: `(tensor, acc)` for each wanted input (`acc`: add to what
/// the tensor holds, e.g. a weight gradient summed over time steps).
#[derive(Clone, Copy, Default)]
pub struct GruGradTargets<'a> {
    pub dx: Option<(&'a Tensor, bool)>,
    pub dh: Option<(&'a Tensor, bool)>,
    pub dw_ih: Option<(&'a Tensor, bool)>,
    pub dw_hh: Option<(&'a Tensor, bool)>,
    pub db_ih: Option<(&'a Tensor, bool)>,
    pub db_hh: Option<(&'a Tensor, bool)>,
}

/// Record the backward of one cell from `g = dL/dh'`, given the forward's inputs and its saved
/// `[r | z | n | gh_n]`. One fused dispatch, then one matmul per wanted input and a column sum
/// per wanted bias. The targets must be distinct tensors (the tape-level [`gru_cell`] handles a
/// Var passed twice).
pub fn gru_cell_backward(
    x: &Tensor,
    h: &Tensor,
    w: &GruWeights,
    saved: &Tensor,
    g: &Tensor,
    out: &GruGradTargets,
) -> Result<()> {
    let d = gru_dims(x, h, w)?;
    let (b, hd, inp) = (d.batch, d.hidden, d.input);
    if saved.len() != b * 4 * hd || g.len() != b * hd {
        return shape_err(
            "gru_cell_backward",
            format!(
                "saved {:?} / gradient {:?} for batch {b}, hidden {hd}",
                saved.shape(),
                g.shape()
            ),
        );
    }
    let check = |name: &str, t: Option<(&Tensor, bool)>, len: usize| -> Result<()> {
        match t {
            Some((t, _)) if t.len() != len => shape_err(
                "gru_cell_backward",
                format!(
                    "gradient target {name} {:?} should hold {len} values",
                    t.shape()
                ),
            ),
            _ => Ok(()),
        }
    };
    check("dx", out.dx, b * inp)?;
    check("dh", out.dh, b * hd)?;
    check("dw_ih", out.dw_ih, 3 * hd * inp)?;
    check("dw_hh", out.dw_hh, 3 * hd * hd)?;
    check("db_ih", out.db_ih, 3 * hd)?;
    check("db_hh", out.db_hh, 3 * hd)?;

    let gpu = x.gpu();
    let dgi = Tensor::empty(gpu, &[b, 3 * hd])?;
    let dgh = Tensor::empty(gpu, &[b, 3 * hd])?;
    let dummy;
    let (dh, acc_dh) = match out.dh {
        Some((t, acc)) => (t, acc),
        None => {
            dummy = Tensor::empty(gpu, &[1])?;
            (&dummy, false)
        }
    };
    let k = gpu.kernel(
        &GRU_CELL_BACKWARD,
        &[
            ("HAS_DH", out.dh.is_some() as u32 as f64),
            ("ACC_DH", acc_dh as u32 as f64),
        ],
    )?;
    let n = b * hd;
    let p = Params {
        batch: b as u32,
        hidden: hd as u32,
        n: n as u32,
    };
    gpu.dispatch(
        &k,
        &p,
        &[
            h.buf(),
            g.buf(),
            saved.buf(),
            dgi.buf(),
            dgh.buf(),
            dh.buf(),
        ],
        grid(gpu, n),
    );

    let mm = |m, n, k, trans_a, acc| MatmulSpec {
        m,
        n,
        k,
        trans_a,
        trans_b: false,
        act: Act::None,
        acc,
    };
    if out.dh.is_some() {
        // dh += dgh W_hh (the fused kernel already wrote the direct g * z part).
        matmul_into(&dgh, w.w_hh, None, dh, mm(b, hd, 3 * hd, false, true))?;
    }
    if let Some((dx, acc)) = out.dx {
        matmul_into(&dgi, w.w_ih, None, dx, mm(b, inp, 3 * hd, false, acc))?;
    }
    if let Some((dw, acc)) = out.dw_ih {
        // dW_ih [3H, I] = dgi^T x
        matmul_into(&dgi, x, None, dw, mm(3 * hd, inp, b, true, acc))?;
    }
    if let Some((dw, acc)) = out.dw_hh {
        matmul_into(&dgh, h, None, dw, mm(3 * hd, hd, b, true, acc))?;
    }
    if let Some((db, acc)) = out.db_ih {
        sum_leading_into(&dgi, db, acc)?;
    }
    if let Some((db, acc)) = out.db_hh {
        sum_leading_into(&dgh, db, acc)?;
    }
    Ok(())
}

/// One GRU step on the tape: `h' = GRUCell(x, h)` with PyTorch's parameters
/// (`w_ih [3H, I]`, `w_hh [3H, H]`, `b_ih [3H]`, `b_hh [3H]`). 3 dispatches forward; backward
/// 1 fused dispatch plus a matmul per wanted input and a column sum per bias (weights and biases
/// accumulate in place across steps).
pub fn gru_cell(
    t: &Tape,
    x: Var,
    h: Var,
    w_ih: Var,
    w_hh: Var,
    b_ih: Var,
    b_hh: Var,
) -> Result<Var> {
    let inputs = [x, h, w_ih, w_hh, b_ih, b_hh];
    let [xv, hv, wih, whh, bih, bhh] = inputs.map(|v| t.value(v));
    let w = GruWeights {
        w_ih: &wih,
        w_hh: &whh,
        b_ih: &bih,
        b_hh: &bhh,
    };
    let needs_grad = t.grad_enabled() && inputs.iter().any(|v| t.requires_grad(*v));
    let (h_new, saved) = gru_cell_forward(&xv, &hv, &w, needs_grad)?;
    let Some(saved) = saved else {
        // Nothing to differentiate: record the value alone.
        return Ok(t.record(h_new, &inputs, |_, _| Ok(())));
    };
    Ok(t.record(h_new, &inputs, move |grads, g_out| {
        let gpu = xv.gpu().clone();
        let w = GruWeights {
            w_ih: &wih,
            w_hh: &whh,
            b_ih: &bih,
            b_hh: &bhh,
        };
        // A Var passed twice (say x == h) gets its second gradient in a fresh tensor that is
        // added afterwards: both targets are handed out before any kernel writes them.
        let order = [
            (h, hv.shape()),
            (x, xv.shape()),
            (w_ih, wih.shape()),
            (w_hh, whh.shape()),
            (b_ih, bih.shape()),
            (b_hh, bhh.shape()),
        ];
        let mut targets: Vec<Option<(Tensor, bool)>> = Vec::with_capacity(6);
        let mut extra = Vec::new();
        for (i, (v, shape)) in order.iter().enumerate() {
            targets.push(if !grads.wants(*v) {
                None
            } else if order[..i].iter().any(|(u, _)| u == v) {
                let tmp = Tensor::empty(&gpu, shape)?;
                extra.push((*v, tmp.clone()));
                Some((tmp, false))
            } else {
                Some(grads.target(*v, shape, &gpu)?)
            });
        }
        let r = |i: usize| targets[i].as_ref().map(|(t, acc)| (t, *acc));
        let out = GruGradTargets {
            dh: r(0),
            dx: r(1),
            dw_ih: r(2),
            dw_hh: r(3),
            db_ih: r(4),
            db_hh: r(5),
        };
        gru_cell_backward(&xv, &hv, &w, &saved, g_out, &out)?;
        drop(targets);
        for (v, tmp) in extra {
            grads.add(v, tmp)?;
        }
        Ok(())
    }))
}

/// Plain-Rust reference (f64 inside).
pub mod reference {
    fn sigmoid(x: f64) -> f64 {
        1.0 / (1.0 + (-x).exp())
    }

    /// `y[b, o] = sum_i x[b, i] w[o, i] + bias[o]` in f64.
    fn affine(x: &[f32], w: &[f32], bias: &[f32], rows: usize, inp: usize, out: usize) -> Vec<f64> {
        let mut y = vec![0f64; rows * out];
        for r in 0..rows {
            for o in 0..out {
                let mut s = bias[o] as f64;
                for i in 0..inp {
                    s += x[r * inp + i] as f64 * w[o * inp + i] as f64;
                }
                y[r * out + o] = s;
            }
        }
        y
    }

    /// Parameters and sizes of a reference cell.
    pub struct Cell<'a> {
        pub w_ih: &'a [f32],
        pub w_hh: &'a [f32],
        pub b_ih: &'a [f32],
        pub b_hh: &'a [f32],
        pub batch: usize,
        pub input: usize,
        pub hidden: usize,
    }

    /// Gradients of one cell.
    #[derive(Clone, Debug, Default)]
    pub struct CellGrads {
        pub dx: Vec<f32>,
        pub dh: Vec<f32>,
        pub dw_ih: Vec<f32>,
        pub dw_hh: Vec<f32>,
        pub db_ih: Vec<f32>,
        pub db_hh: Vec<f32>,
    }

    impl Cell<'_> {
        /// `(h', gi, gh)` with gi, gh the gate pre-activations `[B, 3H]`.
        fn forward_full(&self, x: &[f32], h: &[f32]) -> (Vec<f64>, Vec<f64>, Vec<f64>) {
            let (b, hd) = (self.batch, self.hidden);
            let gi = affine(x, self.w_ih, self.b_ih, b, self.input, 3 * hd);
            let gh = affine(h, self.w_hh, self.b_hh, b, hd, 3 * hd);
            let mut out = vec![0f64; b * hd];
            for r in 0..b {
                for j in 0..hd {
                    let o = r * 3 * hd + j;
                    let rg = sigmoid(gi[o] + gh[o]);
                    let z = sigmoid(gi[o + hd] + gh[o + hd]);
                    let n = (gi[o + 2 * hd] + rg * gh[o + 2 * hd]).tanh();
                    out[r * hd + j] = (1.0 - z) * n + z * h[r * hd + j] as f64;
                }
            }
            (out, gi, gh)
        }

        /// `h'` for `x [B, I]`, `h [B, H]`.
        pub fn forward(&self, x: &[f32], h: &[f32]) -> Vec<f32> {
            self.forward_full(x, h)
                .0
                .into_iter()
                .map(|v| v as f32)
                .collect()
        }

        /// Gradients of `sum(g * h')` with respect to every input.
        pub fn backward(&self, x: &[f32], h: &[f32], g: &[f32]) -> CellGrads {
            let (b, hd, inp) = (self.batch, self.hidden, self.input);
            let (_, gi, gh) = self.forward_full(x, h);
            let mut dgi = vec![0f64; b * 3 * hd];
            let mut dgh = vec![0f64; b * 3 * hd];
            let mut dh = vec![0f64; b * hd];
            for r in 0..b {
                for j in 0..hd {
                    let o = r * 3 * hd + j;
                    let rg = sigmoid(gi[o] + gh[o]);
                    let z = sigmoid(gi[o + hd] + gh[o + hd]);
                    let n = (gi[o + 2 * hd] + rg * gh[o + 2 * hd]).tanh();
                    let gv = g[r * hd + j] as f64;
                    let hv = h[r * hd + j] as f64;
                    let dn = gv * (1.0 - z) * (1.0 - n * n);
                    let dz = gv * (hv - n) * z * (1.0 - z);
                    let dr = dn * gh[o + 2 * hd] * rg * (1.0 - rg);
                    dgi[o] = dr;
                    dgi[o + hd] = dz;
                    dgi[o + 2 * hd] = dn;
                    dgh[o] = dr;
                    dgh[o + hd] = dz;
                    dgh[o + 2 * hd] = dn * rg;
                    dh[r * hd + j] = gv * z;
                }
            }
            let mut dx = vec![0f64; b * inp];
            let mut dw_ih = vec![0f64; 3 * hd * inp];
            let mut dw_hh = vec![0f64; 3 * hd * hd];
            let mut db_ih = vec![0f64; 3 * hd];
            let mut db_hh = vec![0f64; 3 * hd];
            for r in 0..b {
                for o in 0..3 * hd {
                    let (a, c) = (dgi[r * 3 * hd + o], dgh[r * 3 * hd + o]);
                    db_ih[o] += a;
                    db_hh[o] += c;
                    for i in 0..inp {
                        dx[r * inp + i] += a * self.w_ih[o * inp + i] as f64;
                        dw_ih[o * inp + i] += a * x[r * inp + i] as f64;
                    }
                    for i in 0..hd {
                        dh[r * hd + i] += c * self.w_hh[o * hd + i] as f64;
                        dw_hh[o * hd + i] += c * h[r * hd + i] as f64;
                    }
                }
            }
            let f = |v: Vec<f64>| v.into_iter().map(|x| x as f32).collect();
            CellGrads {
                dx: f(dx),
                dh: f(dh),
                dw_ih: f(dw_ih),
                dw_hh: f(dw_hh),
                db_ih: f(db_ih),
                db_hh: f(db_hh),
            }
        }
    }
}
