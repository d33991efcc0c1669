//! Elementwise unary and binary ops (`shaders/elementwise.wgsl`), with row-vector broadcasting.

use crate::error::{shape_err, Result};
use crate::gpu::pipelines::{kernel_sig, KernelSig};
use crate::gpu::BufRange;
use crate::ops::{grid, slices};
use crate::tensor::tensor::ElementwiseParams;
use crate::tensor::{Tape, Tensor, Var};

// The kernels this module dispatches: entry points and the storage buffers they bind, in order.

/// `elementwise::unary`.
pub const UNARY: KernelSig = kernel_sig!(
    ElementwiseParams,
    "elementwise",
    "unary",
    ["OP"],
    ["in1", "out4"]
);

/// `elementwise::unary_backward`.
pub const UNARY_BACKWARD: KernelSig = kernel_sig!(
    ElementwiseParams,
    "elementwise",
    "unary_backward",
    ["OP", "FROM_OUTPUT", "ACC"],
    ["in1", "io3", "out4"]
);

/// `elementwise::binary`.
pub const BINARY: KernelSig = kernel_sig!(
    ElementwiseParams,
    "elementwise",
    "binary",
    ["BOP"],
    ["in1", "in2", "out4"]
);

/// `elementwise::binary_backward`.
pub const BINARY_BACKWARD: KernelSig = kernel_sig!(
    ElementwiseParams,
    "elementwise",
    "binary_backward",
    ["BOP", "WHICH", "ACC"],
    ["in1", "in2", "io3", "out4"]
);

/// Unary ops. Codes match `OP` in the shader.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Unary {
    /// `alpha * x + beta`
    Affine(f32, f32),
    Relu,
    Elu,
    Tanh,
    Sigmoid,
    Softplus,
    Exp,
    Square,
}

impl Unary {
    fn code(self) -> f64 {
        match self {
            Unary::Affine(..) => 0.0,
            Unary::Relu => 1.0,
            Unary::Elu => 2.0,
            Unary::Tanh => 3.0,
            Unary::Sigmoid => 4.0,
            Unary::Softplus => 5.0,
            Unary::Exp => 6.0,
            Unary::Square => 7.0,
        }
    }
    /// Ops whose derivative is a function of the output: the backward then saves y, not x.
    fn backward_from_output(self) -> bool {
        matches!(
            self,
            Unary::Relu | Unary::Elu | Unary::Tanh | Unary::Sigmoid | Unary::Exp
        )
    }
    fn params(self, n: usize) -> ElementwiseParams {
        let (alpha, beta) = match self {
            Unary::Affine(a, b) => (a, b),
            _ => (1.0, 0.0),
        };
        ElementwiseParams {
            n: n as u32,
            alpha,
            beta,
            ..Default::default()
        }
    }
}

/// Record `y = op(x)`.
pub fn unary_forward(x: &Tensor, op: Unary) -> Result<Tensor> {
    let gpu = x.gpu();
    let y = Tensor::empty(gpu, x.shape())?;
    let k = gpu.kernel(&UNARY, &[("OP", op.code())])?;
    let per = gpu.rows_per_binding("a unary op", x.len(), &[1, 1], &[])?;
    for (first, n) in slices(x.len(), per) {
        gpu.dispatch_ranges(
            &k,
            &op.params(n),
            &[x.buf().range(first, n), y.buf().range(first, n)],
            grid(gpu, n),
        );
    }
    Ok(y)
}

/// Record `gx (+)= gy * op'(.)` where `saved` is y for the ops with `backward_from_output`,
/// else x.
pub fn unary_backward(
    saved: &Tensor,
    gy: &Tensor,
    gx: &Tensor,
    op: Unary,
    acc: bool,
) -> Result<()> {
    let gpu = saved.gpu();
    let k = gpu.kernel(
        &UNARY_BACKWARD,
        &[
            ("OP", op.code()),
            ("FROM_OUTPUT", op.backward_from_output() as u32 as f64),
            ("ACC", acc as u32 as f64),
        ],
    )?;
    let per = gpu.rows_per_binding("a unary op's gradient", saved.len(), &[1, 1, 1], &[])?;
    for (first, n) in slices(saved.len(), per) {
        gpu.dispatch_ranges(
            &k,
            &op.params(n),
            &[
                saved.buf().range(first, n),
                gy.buf().range(first, n),
                gx.buf().range(first, n),
            ],
            grid(gpu, n),
        );
    }
    Ok(())
}

/// `op(x)` on the tape.
pub fn unary(t: &Tape, x: Var, op: Unary) -> Result<Var> {
    let xv = t.value(x);
    let y = unary_forward(&xv, op)?;
    let saved = if op.backward_from_output() {
        y.clone()
    } else {
        xv
    };
    Ok(t.record(y, &[x], move |g, gy| {
        let (gx, acc) = g.target(x, saved.shape(), saved.gpu())?;
        unary_backward(&saved, gy, &gx, op, acc)
    }))
}

/// ReLU.
pub fn relu(t: &Tape, x: Var) -> Result<Var> {
    unary(t, x, Unary::Relu)
}
/// ELU (alpha 1).
pub fn elu(t: &Tape, x: Var) -> Result<Var> {
    unary(t, x, Unary::Elu)
}
/// tanh.
pub fn tanh(t: &Tape, x: Var) -> Result<Var> {
    unary(t, x, Unary::Tanh)
}
/// Logistic sigmoid.
pub fn sigmoid(t: &Tape, x: Var) -> Result<Var> {
    unary(t, x, Unary::Sigmoid)
}
/// softplus(x) = log(1 + exp(x)), stable.
pub fn softplus(t: &Tape, x: Var) -> Result<Var> {
    unary(t, x, Unary::Softplus)
}
/// `alpha * x + beta`.
pub fn scale(t: &Tape, x: Var, alpha: f32, beta: f32) -> Result<Var> {
    unary(t, x, Unary::Affine(alpha, beta))
}

/// Binary ops. Codes match `BOP` in the shader.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Binary {
    Add,
    Sub,
    Mul,
}

impl Binary {
    fn code(self) -> f64 {
        match self {
            Binary::Add => 0.0,
            Binary::Sub => 1.0,
            Binary::Mul => 2.0,
        }
    }
}

/// Output shape of a broadcast binary op: the operands must have equal shapes, or one's shape
/// must be a suffix of the other's (a row vector against a matrix, a scalar against anything).
fn broadcast_shape(a: &[usize], b: &[usize]) -> Result<Vec<usize>> {
    let (long, short) = if a.len() >= b.len() { (a, b) } else { (b, a) };
    let suffix = &long[long.len() - short.len()..];
    let short_len: usize = short.iter().product();
    if suffix == short || short_len == 1 {
        Ok(long.to_vec())
    } else {
        shape_err(
            "binary op",
            format!("cannot broadcast {a:?} with {b:?} (one must be a suffix of the other)"),
        )
    }
}

/// Record `z = a op b` with broadcasting.
pub fn binary_forward(a: &Tensor, b: &Tensor, op: Binary) -> Result<Tensor> {
    let shape = broadcast_shape(a.shape(), b.shape())?;
    let gpu = a.gpu();
    let z = Tensor::empty(gpu, &shape)?;
    let k = gpu.kernel(&BINARY, &[("BOP", op.code())])?;
    // Slices of whole broadcast copies: an operand as long as `z` is sliced with it, the
    // shorter one (broadcast as `i % len`) is bound whole in every slice.
    let (la, lb, n) = (a.len(), b.len(), z.len());
    let unit = if la == lb { 1 } else { la.min(lb).max(1) };
    let sliced = |l: usize| if l == n { unit } else { 0 };
    let whole: Vec<usize> = [la, lb].into_iter().filter(|l| *l != n).collect();
    let per = gpu.rows_per_binding(
        "a binary op",
        n / unit,
        &[sliced(la), sliced(lb), unit],
        &whole,
    )?;
    for (first, rows) in slices(n / unit, per) {
        let (start, len) = (first * unit, rows * unit);
        fn part(t: &Tensor, n: usize, start: usize, len: usize) -> BufRange<'_> {
            if t.len() == n {
                t.buf().range(start, len)
            } else {
                t.buf().whole()
            }
        }
        let p = ElementwiseParams {
            n: len as u32,
            la: if la == n { len } else { la } as u32,
            lb: if lb == n { len } else { lb } as u32,
            ..Default::default()
        };
        gpu.dispatch_ranges(
            &k,
            &p,
            &[
                part(a, n, start, len),
                part(b, n, start, len),
                z.buf().range(start, len),
            ],
            grid(gpu, len),
        );
    }
    Ok(z)
}

/// Record the gradient of operand `which` (0: a, 1: b) of `z = a op b`, summing over the
/// broadcast copies, into `out` (adding when `acc`).
pub fn binary_backward(
    a: &Tensor,
    b: &Tensor,
    gz: &Tensor,
    out: &Tensor,
    op: Binary,
    which: u32,
    acc: bool,
) -> Result<()> {
    let gpu = a.gpu();
    let k = gpu.kernel(
        &BINARY_BACKWARD,
        &[
            ("BOP", op.code()),
            ("WHICH", which as f64),
            ("ACC", acc as u32 as f64),
        ],
    )?;
    if a.len() == b.len() {
        // Equal shapes: a plain elementwise pass, sliced to the binding limit.
        let len = a.len();
        let per = gpu.rows_per_binding("a binary op's gradient", len, &[1, 1, 1, 1], &[])?;
        for (first, n) in slices(len, per) {
            let p = ElementwiseParams {
                n: n as u32,
                la: n as u32,
                lb: n as u32,
                n_out: n as u32,
                ..Default::default()
            };
            let bufs = [a, b, gz, out].map(|t| t.buf().range(first, n));
            gpu.dispatch_ranges(&k, &p, &bufs, grid(gpu, n));
        }
        return Ok(());
    }
    // Broadcasting: slices of whole copies of the short operand (bound whole). The long
    // operand's gradient is sliced with `gz`; the short one's sums over the copies, each slice
    // after the first adding to it.
    let n_out = gz.len();
    let unit = a.len().min(b.len()).max(1);
    let sliced = |l: usize| if l == n_out { unit } else { 0 };
    let short_out = out.len() != n_out;
    let whole: Vec<usize> = [a.len(), b.len(), out.len()]
        .into_iter()
        .filter(|l| *l != n_out)
        .collect();
    let per = gpu.rows_per_binding(
        "a broadcast binary op's gradient",
        n_out / unit,
        &[sliced(a.len()), sliced(b.len()), unit, sliced(out.len())],
        &whole,
    )?;
    for (i, (first, copies)) in slices(n_out / unit, per).enumerate() {
        let (start, len) = (first * unit, copies * unit);
        fn part(t: &Tensor, n_out: usize, start: usize, len: usize) -> BufRange<'_> {
            if t.len() == n_out {
                t.buf().range(start, len)
            } else {
                t.buf().whole()
            }
        }
        let acc_here = acc || (short_out && i > 0);
        let k = gpu.kernel(
            &BINARY_BACKWARD,
            &[
                ("BOP", op.code()),
                ("WHICH", which as f64),
                ("ACC", acc_here as u32 as f64),
            ],
        )?;
        let local = |l: usize| if l == n_out { len } else { l } as u32;
        let p = ElementwiseParams {
            n: local(out.len()),
            la: local(a.len()),
            lb: local(b.len()),
            n_out: len as u32,
            ..Default::default()
        };
        let bufs = [
            part(a, n_out, start, len),
            part(b, n_out, start, len),
            gz.buf().range(start, len),
            part(out, n_out, start, len),
        ];
        gpu.dispatch_ranges(&k, &p, &bufs, grid(gpu, p.n as usize));
    }
    Ok(())
}

/// `a op b` on the tape.
pub fn binary(t: &Tape, a: Var, b: Var, op: Binary) -> Result<Var> {
    let (av, bv) = (t.value(a), t.value(b));
    let z = binary_forward(&av, &bv, op)?;
    Ok(t.record(z, &[a, b], move |g, gz| {
        for (which, v, shape) in [(0u32, a, av.shape()), (1, b, bv.shape())] {
            if g.wants(v) {
                let (out, acc) = g.target(v, shape, av.gpu())?;
                binary_backward(&av, &bv, gz, &out, op, which, acc)?;
            }
        }
        Ok(())
    }))
}

/// `a + b` (broadcasting).
pub fn add(t: &Tape, a: Var, b: Var) -> Result<Var> {
    binary(t, a, b, Binary::Add)
}
/// `a - b` (broadcasting).
pub fn sub(t: &Tape, a: Var, b: Var) -> Result<Var> {
    binary(t, a, b, Binary::Sub)
}
/// `a * b` (broadcasting).
pub fn mul(t: &Tape, a: Var, b: Var) -> Result<Var> {
    binary(t, a, b, Binary::Mul)
}

/// Plain-Rust references for the tests.
pub mod reference {
    use super::{Binary, Unary};

    /// f(x) in f64.
    pub fn unary(op: Unary, x: f64) -> f64 {
        match op {
            Unary::Affine(a, b) => a as f64 * x + b as f64,
            Unary::Relu => x.max(0.0),
            Unary::Elu => {
                if x > 0.0 {
                    x
                } else {
                    x.exp() - 1.0
                }
            }
            Unary::Tanh => x.tanh(),
            Unary::Sigmoid => 1.0 / (1.0 + (-x).exp()),
            Unary::Softplus => x.max(0.0) + (-x.abs()).exp().ln_1p(),
            Unary::Exp => x.exp(),
            Unary::Square => x * x,
        }
    }

    /// f'(x) in f64.
    pub fn unary_grad(op: Unary, x: f64) -> f64 {
        match op {
            Unary::Affine(a, _) => a as f64,
            Unary::Relu => (x > 0.0) as u8 as f64,
            Unary::Elu => {
                if x > 0.0 {
                    1.0
                } else {
                    x.exp()
                }
            }
            Unary::Tanh => 1.0 - x.tanh().powi(2),
            Unary::Sigmoid => {
                let s = 1.0 / (1.0 + (-x).exp());
                s * (1.0 - s)
            }
            Unary::Softplus => 1.0 / (1.0 + (-x).exp()),
            Unary::Exp => x.exp(),
            Unary::Square => 2.0 * x,
        }
    }

    /// `a op b` with the `i % len` broadcasting of the kernel.
    pub fn binary(op: Binary, a: &[f32], b: &[f32]) -> Vec<f32> {
        let n = a.len().max(b.len());
        (0..n)
            .map(|i| {
                let (x, y) = (a[i % a.len()], b[i % b.len()]);
                match op {
                    Binary::Add => x + y,
                    Binary::Sub => x - y,
                    Binary::Mul => x * y,
                }
            })
            .collect()
    }
}
