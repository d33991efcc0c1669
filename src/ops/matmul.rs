//! Matrix multiply with either operand transposed, a fused bias and a fused activation
//! (`shaders/matmul.wgsl`), and `linear` (PyTorch `nn.Linear`) built on it.

use crate::error::{shape_err, Result};
use crate::gpu::pipelines::{kernel_sig, KernelSig};
use crate::gpu::{BufRange, Gpu};
use crate::ops::elementwise::{unary_backward, Unary};
use crate::ops::reduce::sum_leading_into;
use crate::ops::slices;
use crate::tensor::{Tape, Tensor, Var};

// The kernels this module dispatches: entry points and the storage buffers they bind, in order.

/// `matmul::matmul`.
pub const MATMUL: KernelSig = kernel_sig!(
    Params,
    "matmul",
    "matmul",
    ["TRANS_A", "TRANS_B", "HAS_BIAS", "ACC", "ACT", "GRAD_ACT", "WIDE"],
    ["a", "b", "bias", "c"]
);

/// `matmul::matmul_vec4`.
pub const MATMUL_VEC4: KernelSig = kernel_sig!(
    Params,
    "matmul",
    "matmul_vec4",
    ["TRANS_A", "TRANS_B", "HAS_BIAS", "ACC", "ACT", "GRAD_ACT", "WIDE"],
    ["bias", "c", "a4", "b4"]
);

/// `matmul::matvec`.
pub const MATVEC: KernelSig = kernel_sig!(
    Params,
    "matmul",
    "matvec",
    ["TRANS_A", "TRANS_B", "HAS_BIAS", "ACC", "ACT", "GRAD_ACT"],
    ["a", "b", "bias", "c"]
);

/// `matmul::matvec_vec4`.
pub const MATVEC_VEC4: KernelSig = kernel_sig!(
    Params,
    "matmul",
    "matvec_vec4",
    ["TRANS_A", "TRANS_B", "HAS_BIAS", "ACC", "ACT", "GRAD_ACT"],
    ["bias", "c", "a4", "b4"]
);

/// `matmul_lanes::matmul_lanes`.
pub const MATMUL_LANES: KernelSig = kernel_sig!(
    Params,
    "matmul_lanes",
    "matmul_lanes",
    ["TRANS_A", "TRANS_B", "HAS_BIAS", "ACC", "ACT", "GRAD_ACT", "ROWS"],
    ["bias", "c", "a4", "b4"]
);

/// `matmul_lanes::matmul_lanes_any`.
pub const MATMUL_LANES_ANY: KernelSig = kernel_sig!(
    Params,
    "matmul_lanes",
    "matmul_lanes_any",
    ["TRANS_A", "TRANS_B", "HAS_BIAS", "ACC", "ACT", "GRAD_ACT", "ROWS"],
    ["a", "b", "bias", "c"]
);

/// Activation fused into the matmul's store. Codes match `activate()` in the prelude.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Act {
    #[default]
    None,
    Relu,
    Elu,
}

impl Act {
    pub(crate) fn code(self) -> f64 {
        match self {
            Act::None => 0.0,
            Act::Relu => 1.0,
            Act::Elu => 2.0,
        }
    }
    /// The elementwise op whose backward (from the output) undoes this activation.
    pub(crate) fn unary(self) -> Option<Unary> {
        match self {
            Act::None => None,
            Act::Relu => Some(Unary::Relu),
            Act::Elu => Some(Unary::Elu),
        }
    }
}

/// The gradient before a fused activation, from its saved output `y` (`gy` itself when there
/// is no activation): one elementwise dispatch. Shared by `linear` and the conv ops.
pub(crate) fn act_backward(act: Act, y: Option<&Tensor>, gy: &Tensor) -> Result<Tensor> {
    match (act.unary(), y) {
        (Some(op), Some(y)) => {
            let gp = Tensor::empty(gy.gpu(), y.shape())?;
            unary_backward(y, gy, &gp, op, false)?;
            Ok(gp)
        }
        _ => Ok(gy.clone()),
    }
}

#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
pub(crate) struct Params {
    m: u32,
    n: u32,
    k: u32,
}

/// Everything a matmul dispatch needs to know.
#[derive(Clone, Copy, Debug)]
pub struct MatmulSpec {
    pub m: usize,
    pub n: usize,
    pub k: usize,
    pub trans_a: bool,
    pub trans_b: bool,
    pub act: Act,
    pub acc: bool,
}

/// Which kernel this device's matmuls take where every contiguous axis is a multiple of 4
/// (others take the scalar register-block kernel): for reports and benchmarks.
pub fn kernel_choice(gpu: &Gpu) -> String {
    let t = gpu.tuning();
    if t.lanes {
        return "subgroup lanes (matmul_lanes, and the conv_lanes convolutions, 8-lane subgroups)"
            .to_string();
    }
    format!(
        "register blocks (matmul_vec4, {0}x{0} per invocation)",
        if t.wide_blocks { 8 } else { 4 }
    )
}

/// Record `c (+)= act(op(a) op(b) + bias)`; `c` must hold `m * n` values.
pub fn matmul_into(
    a: &Tensor,
    b: &Tensor,
    bias: Option<&Tensor>,
    c: &Tensor,
    s: MatmulSpec,
) -> Result<()> {
    matmul_into_epilogue(a, b, bias, None, c, s)
}

/// Record `c (+)= (op(a) op(b)) * act'(y)`, with `act'` the derivative of `act` taken from
/// its output `y` `[m, n]` (the `GRAD_ACT` epilogue): a layer's input gradient and the
/// previous layer's activation backward in one dispatch. `s.act` must be `Act::None`.
pub fn matmul_into_grad_act(
    a: &Tensor,
    b: &Tensor,
    y: &Tensor,
    act: Act,
    c: &Tensor,
    s: MatmulSpec,
) -> Result<()> {
    if y.len() != s.m * s.n || s.act != Act::None {
        return shape_err(
            "matmul_into_grad_act",
            format!(
                "y {:?} for m={} n={} (and no forward activation, got {:?})",
                y.shape(),
                s.m,
                s.n,
                s.act
            ),
        );
    }
    matmul_into_epilogue(a, b, None, Some((y, act)), c, s)
}

fn matmul_into_epilogue(
    a: &Tensor,
    b: &Tensor,
    bias: Option<&Tensor>,
    grad_act: Option<(&Tensor, Act)>,
    c: &Tensor,
    s: MatmulSpec,
) -> Result<()> {
    if a.len() != s.m * s.k || b.len() != s.k * s.n || c.len() != s.m * s.n {
        return shape_err(
            "matmul",
            format!(
                "a {:?}, b {:?}, c {:?} do not fit m={} n={} k={}",
                a.shape(),
                b.shape(),
                c.shape(),
                s.m,
                s.n,
                s.k
            ),
        );
    }
    if let Some(bias) = bias {
        if bias.len() != s.n {
            return shape_err("matmul", format!("bias {:?} for n={}", bias.shape(), s.n));
        }
    }
    let gpu = a.gpu();
    let bias_len = bias.map_or(0, |b| b.len());
    if !s.trans_a {
        // Row blocks: rows of `a` and `c` are contiguous; `b` and the bias are bound whole.
        let row_vals = if grad_act.is_some() { 2 * s.n } else { s.n };
        let per =
            gpu.rows_per_binding("a matmul", s.m, &[s.k, row_vals], &[s.k * s.n, bias_len])?;
        for (first, m) in slices(s.m, per) {
            matmul_dispatch(
                gpu,
                a.buf().range(first * s.k, m * s.k),
                b.buf().whole(),
                bias.map(|b| b.buf().whole()),
                grad_act.map(|(y, act)| (y.buf().range(first * s.n, m * s.n), act)),
                c.buf().range(first * s.n, m * s.n),
                MatmulSpec { m, ..s },
            )?;
        }
        return Ok(());
    }
    if !s.trans_b && bias.is_none() && s.act == Act::None {
        // (The epilogue is linear in the product, so it applies to each block's sum alike.)
        // `a` stored [k, m], `b` [k, n] (a weight gradient): blocks of the reduction, each
        // adding to `c`.
        let per = gpu.rows_per_binding("a matmul", s.k, &[s.m, s.n], &[s.m * s.n])?;
        // Each thread loops over the whole reduction: where the driver ends long loops
        // (`Gpu::loop_limit`), blocks of a quarter of its count (a multiple of 256 rows, so
        // the blocks stay aligned), e.g. the behaviour update's K = H * N past 65,535.
        let per = match gpu.loop_limit() {
            Some(limit) => per.min(((limit as usize / 4) / 256 * 256).max(256)),
            None => per,
        };
        for (i, (first, k)) in slices(s.k, per).enumerate() {
            matmul_dispatch(
                gpu,
                a.buf().range(first * s.m, k * s.m),
                b.buf().range(first * s.n, k * s.n),
                None,
                grad_act.map(|(y, act)| (y.buf().whole(), act)),
                c.buf().whole(),
                MatmulSpec {
                    k,
                    acc: s.acc || i > 0,
                    ..s
                },
            )?;
        }
        return Ok(());
    }
    let y_len = grad_act.map_or(0, |(y, _)| y.len());
    gpu.rows_per_binding(
        "a matmul",
        1,
        &[a.len(), b.len(), c.len(), bias_len, y_len],
        &[],
    )?;
    matmul_dispatch(
        gpu,
        a.buf().whole(),
        b.buf().whole(),
        bias.map(|b| b.buf().whole()),
        grad_act.map(|(y, act)| (y.buf().whole(), act)),
        c.buf().whole(),
        s,
    )
}

/// One matmul dispatch on bound ranges (sizes already checked). `grad_act`: the `GRAD_ACT`
/// epilogue's `Y` (bound where the bias goes; never with a bias) and activation.
fn matmul_dispatch(
    gpu: &Gpu,
    a: BufRange<'_>,
    b: BufRange<'_>,
    bias: Option<BufRange<'_>>,
    grad_act: Option<(BufRange<'_>, Act)>,
    c: BufRange<'_>,
    s: MatmulSpec,
) -> Result<()> {
    debug_assert!(bias.is_none() || grad_act.is_none());
    let wide = gpu.tuning().wide_blocks;
    // The vec4 variant needs every operand's contiguous axis to be a multiple of 4.
    let vec4 = s.k > 0
        && s.k.is_multiple_of(4)
        && (!s.trans_a || s.m.is_multiple_of(4))
        && (s.trans_b || s.n.is_multiple_of(4));
    // A single output column or row: one invocation per output (shaders/matmul.wgsl `matvec`).
    let matvec = s.n == 1 || s.m == 1;
    // Except a single row whose matrix runs along n (a 1-wide layer's weight gradient,
    // op(B) = B [K, N]): on the subgroup kernel, with 8 rows of which 7 are clamped copies, each
    // lane loads its columns of B in vec4s, a quarter of matvec's loads.
    let matvec = matvec && !(s.n > 1 && s.m == 1 && !s.trans_b && s.k > 0 && gpu.tuning().lanes);
    // ... whose matrix rows run along k (contiguous), in vec4s when K allows.
    let matvec4 =
        matvec && s.k > 0 && s.k.is_multiple_of(4) && if s.n == 1 { !s.trans_a } else { s.trans_b };
    let vec4 = (vec4 && !matvec) || matvec4;
    // The subgroup kernel takes any sizes: vec4 loads where aligned, scalar loads otherwise
    // (`matmul_lanes_any`, about 1.35x the time on lavapipe).
    let lanes = !matvec && s.k > 0 && gpu.tuning().lanes;
    // Rows per workgroup of the subgroup kernel: 32 (12 vec4 loads per 1,024 FMAs; 2.3x the
    // 8x8 register blocks on lavapipe) unless the matrix is short.
    let rows: usize = match s.m {
        0..16 => 8,
        16..32 => 16,
        _ => 32,
    };
    // The last override is the variant's block shape (no allocation per dispatch).
    let constants = [
        ("TRANS_A", s.trans_a as u32 as f64),
        ("TRANS_B", s.trans_b as u32 as f64),
        ("HAS_BIAS", bias.is_some() as u32 as f64),
        ("ACC", s.acc as u32 as f64),
        ("ACT", s.act.code()),
        ("GRAD_ACT", grad_act.map_or(0.0, |(_, act)| act.code())),
        if lanes {
            ("ROWS", rows as f64)
        } else {
            ("WIDE", wide as u32 as f64)
        },
    ];
    let kernel = match (lanes, vec4) {
        _ if matvec4 => gpu.kernel(&MATVEC_VEC4, &constants[..6])?,
        _ if matvec => gpu.kernel(&MATVEC, &constants[..6])?,
        (true, true) => gpu.kernel(&MATMUL_LANES, &constants)?,
        (true, false) => gpu.kernel(&MATMUL_LANES_ANY, &constants)?,
        (false, true) => gpu.kernel(&MATMUL_VEC4, &constants)?,
        (false, false) => gpu.kernel(&MATMUL, &constants)?,
    };
    let p = Params {
        m: s.m as u32,
        n: s.n as u32,
        k: s.k as u32,
    };
    // The bias binding is part of the entry point's layout even when HAS_BIAS is off; bind `a`
    // there (read-only twice is allowed) rather than a dummy buffer.
    let bias_buf = bias.or(grad_act.map(|(y, _)| y)).unwrap_or(a);
    let bufs: &[BufRange<'_>] = if vec4 {
        &[bias_buf, c, a, b]
    } else {
        &[a, b, bias_buf, c]
    };
    let grid = if matvec {
        super::grid(gpu, s.m.max(s.n))
    } else if lanes {
        // 8 rows x 64 columns per workgroup.
        gpu.grid_2d(s.n.div_ceil(64), s.m.div_ceil(rows))
    } else {
        let tile = if wide { 64 } else { 32 };
        gpu.grid_2d(s.n.div_ceil(tile), s.m.div_ceil(tile))
    };
    gpu.dispatch_ranges(&kernel, &p, bufs, grid);
    Ok(())
}

/// Record the gradients of `c = op(a) op(b)` given `gc`: into `ga` / `gb` where given
/// (adding when the flag says so).
pub fn matmul_backward(
    a: &Tensor,
    b: &Tensor,
    gc: &Tensor,
    s: MatmulSpec,
    ga: Option<(&Tensor, bool)>,
    gb: Option<(&Tensor, bool)>,
) -> Result<()> {
    let (m, n, k) = (s.m, s.n, s.k);
    if let Some((ga, acc)) = ga {
        if !s.trans_a {
            // dA [m,k] = dC op(B)^T
            let spec = MatmulSpec {
                m,
                n: k,
                k: n,
                trans_a: false,
                trans_b: !s.trans_b,
                act: Act::None,
                acc,
            };
            matmul_into(gc, b, None, ga, spec)?;
        } else {
            // A stored [k,m]: dA = op(B) dC^T
            let spec = MatmulSpec {
                m: k,
                n: m,
                k: n,
                trans_a: s.trans_b,
                trans_b: true,
                act: Act::None,
                acc,
            };
            matmul_into(b, gc, None, ga, spec)?;
        }
    }
    if let Some((gb, acc)) = gb {
        if !s.trans_b {
            // dB [k,n] = op(A)^T dC
            let spec = MatmulSpec {
                m: k,
                n,
                k: m,
                trans_a: !s.trans_a,
                trans_b: false,
                act: Act::None,
                acc,
            };
            matmul_into(a, gc, None, gb, spec)?;
        } else {
            // B stored [n,k]: dB = dC^T op(A)
            let spec = MatmulSpec {
                m: n,
                n: k,
                k: m,
                trans_a: true,
                trans_b: s.trans_a,
                act: Act::None,
                acc,
            };
            matmul_into(gc, a, None, gb, spec)?;
        }
    }
    Ok(())
}

/// `op(a) op(b)` for 2-D `a`, `b` on the tape.
pub fn matmul(t: &Tape, a: Var, b: Var, trans_a: bool, trans_b: bool) -> Result<Var> {
    let (av, bv) = (t.value(a), t.value(b));
    let (sa, sb) = (av.shape().to_vec(), bv.shape().to_vec());
    if sa.len() != 2 || sb.len() != 2 {
        return shape_err(
            "matmul",
            format!("needs 2-D operands, got {sa:?} and {sb:?}"),
        );
    }
    let (m, ka) = if trans_a {
        (sa[1], sa[0])
    } else {
        (sa[0], sa[1])
    };
    let (kb, n) = if trans_b {
        (sb[1], sb[0])
    } else {
        (sb[0], sb[1])
    };
    if ka != kb {
        return shape_err(
            "matmul",
            format!(
                "inner sizes differ: {sa:?}{} x {sb:?}{}",
                if trans_a { "^T" } else { "" },
                if trans_b { "^T" } else { "" }
            ),
        );
    }
    let spec = MatmulSpec {
        m,
        n,
        k: ka,
        trans_a,
        trans_b,
        act: Act::None,
        acc: false,
    };
    let c = Tensor::empty(av.gpu(), &[m, n])?;
    matmul_into(&av, &bv, None, &c, spec)?;
    Ok(t.record(c, &[a, b], move |g, gc| {
        let gpu = av.gpu().clone();
        let ga = g.wanted_target(a, av.shape(), &gpu)?;
        let gb = g.wanted_target(b, bv.shape(), &gpu)?;
        matmul_backward(
            &av,
            &bv,
            gc,
            spec,
            ga.as_ref().map(|(t, acc)| (t, *acc)),
            gb.as_ref().map(|(t, acc)| (t, *acc)),
        )
    }))
}

/// `act(x W^T + b)`: PyTorch `nn.Linear` (W `[out, in]`, b `[out]`) with an optional fused
/// activation, over `x` of shape `[..., in]`. One dispatch forward; backward is at most one
/// activation-gradient dispatch plus one matmul per wanted input and a column sum for `b`.
pub fn linear(t: &Tape, x: Var, w: Var, b: Option<Var>, act: Act) -> Result<Var> {
    let (xv, wv) = (t.value(x), t.value(w));
    let bv = b.map(|b| t.value(b));
    if wv.shape().len() != 2 {
        return shape_err(
            "linear",
            format!("weight must be [out, in], got {:?}", wv.shape()),
        );
    }
    let (out_f, in_f) = (wv.shape()[0], wv.shape()[1]);
    if xv.last_dim() != in_f || xv.shape().is_empty() {
        return shape_err(
            "linear",
            format!(
                "input {:?} does not end in {in_f} (weight {:?})",
                xv.shape(),
                wv.shape()
            ),
        );
    }
    if let Some(bv) = &bv {
        if bv.len() != out_f {
            return shape_err(
                "linear",
                format!("bias {:?} for {out_f} outputs", bv.shape()),
            );
        }
    }
    let m = xv.rows();
    let mut out_shape = xv.shape().to_vec();
    *out_shape.last_mut().unwrap() = out_f;
    let y = Tensor::empty(xv.gpu(), &out_shape)?;
    let spec = MatmulSpec {
        m,
        n: out_f,
        k: in_f,
        trans_a: false,
        trans_b: true,
        act,
        acc: false,
    };
    matmul_into(&xv, &wv, bv.as_ref(), &y, spec)?;
    let saved_y = act.unary().map(|_| y.clone());
    let mut inputs = vec![x, w];
    inputs.extend(b);
    Ok(t.record(y, &inputs, move |g, gy| {
        let gpu = xv.gpu().clone();
        let gpre = act_backward(act, saved_y.as_ref(), gy)?;
        let spec = MatmulSpec {
            act: Act::None,
            ..spec
        };
        let gx = g.wanted_target(x, xv.shape(), &gpu)?;
        let gw = g.wanted_target(w, wv.shape(), &gpu)?;
        matmul_backward(
            &xv,
            &wv,
            &gpre,
            spec,
            gx.as_ref().map(|(t, acc)| (t, *acc)),
            gw.as_ref().map(|(t, acc)| (t, *acc)),
        )?;
        if let Some(b) = b {
            if g.wants(b) {
                let (gb, acc) = g.target(b, &[out_f], &gpu)?;
                sum_leading_into(&gpre, &gb, acc)?;
            }
        }
        Ok(())
    }))
}

/// A multilayer perceptron as one op: `x -> act(x W_0^T + b_0) -> ... -> h W_L^T + b_L` (every
/// layer but the last followed by `act`) for `layers = [(W_0, b_0), ..]`, W `[out, in]`, over `x`
/// `[..., in]`. The same values as a chain of [`linear`]s; the backward differs in dispatches:
/// each layer's input gradient is one matmul with the previous layer's activation derivative
/// fused into its store (`GRAD_ACT`), so no elementwise pass runs between layers.
pub fn mlp(t: &Tape, x: Var, layers: &[(Var, Var)], act: Act) -> Result<Var> {
    Ok(mlp_keep(t, x, layers, act)?.0)
}

/// [`mlp`], also returning its forward pass, which [`mlp_from_forward`] can reuse.
pub fn mlp_keep(t: &Tape, x: Var, layers: &[(Var, Var)], act: Act) -> Result<(Var, MlpForward)> {
    let xv = t.value(x);
    let ws: Vec<Tensor> = layers.iter().map(|(w, _)| t.value(*w)).collect();
    let bs: Vec<Tensor> = layers.iter().map(|(_, b)| t.value(*b)).collect();
    let width = mlp_widths(&xv, &ws, &bs)?;
    let gpu = xv.gpu().clone();
    let rows = xv.rows();
    let in_f = xv.last_dim();
    let x_rows = xv.reshape(&[rows, in_f])?;
    // One fused matmul per layer; the hidden outputs are saved for the backward.
    let last = layers.len() - 1;
    let mut hidden: Vec<Tensor> = Vec::with_capacity(last);
    let mut h = x_rows.clone();
    for (l, (w, b)) in ws.iter().zip(&bs).enumerate() {
        let (out_f, k) = (w.shape()[0], w.shape()[1]);
        let y = Tensor::empty(&gpu, &[rows, out_f])?;
        let spec = MatmulSpec {
            m: rows,
            n: out_f,
            k,
            trans_a: false,
            trans_b: true,
            act: if l < last { act } else { Act::None },
            acc: false,
        };
        matmul_into(&h, w, Some(b), &y, spec)?;
        if l < last {
            hidden.push(y.clone());
        }
        h = y;
    }
    debug_assert_eq!(h.last_dim(), width);
    let fwd = MlpForward {
        x_rows,
        ws,
        hidden,
        out: h,
        in_f,
        act,
    };
    let y = mlp_record(t, x, layers, fwd.clone())?;
    Ok((y, fwd))
}

/// Record [`mlp`] on `t` from a forward pass already computed (by [`mlp_keep`], on another
/// tape) with the same weights: its first `x.rows()` rows must be this input's. No forward
/// dispatch; the backward is `mlp`'s. For example, a critic trained on the features it has
/// just evaluated.
pub fn mlp_from_forward(t: &Tape, x: Var, layers: &[(Var, Var)], fwd: &MlpForward) -> Result<Var> {
    let xv = t.value(x);
    let ws: Vec<Tensor> = layers.iter().map(|(w, _)| t.value(*w)).collect();
    let bs: Vec<Tensor> = layers.iter().map(|(_, b)| t.value(*b)).collect();
    mlp_widths(&xv, &ws, &bs)?;
    let rows = xv.rows();
    let same = xv.last_dim() == fwd.in_f
        && ws.len() == fwd.ws.len()
        && ws
            .iter()
            .zip(&fwd.ws)
            .all(|(a, b)| a.shape()[0] == b.shape()[0])
        && rows <= fwd.out.rows();
    if !same {
        return shape_err(
            "mlp_from_forward",
            format!(
                "input {:?} and {} layers against a forward of {} rows, width {}, {} layers",
                xv.shape(),
                ws.len(),
                fwd.out.rows(),
                fwd.in_f,
                fwd.ws.len()
            ),
        );
    }
    let view = MlpForward {
        x_rows: fwd.x_rows.leading_rows(rows)?,
        hidden: fwd
            .hidden
            .iter()
            .map(|h| h.leading_rows(rows))
            .collect::<Result<_>>()?,
        // The value other ops see: a tensor of its own (views stay inside the MLP's backward).
        out: fwd.out.leading_rows(rows)?.deep_clone()?,
        ..fwd.clone()
    };
    mlp_record(t, x, layers, view)
}

/// The tensors of an [`mlp`]'s forward pass that its backward reads.
#[derive(Clone)]
pub struct MlpForward {
    /// The input as `[rows, in]`.
    x_rows: Tensor,
    /// The weights.
    ws: Vec<Tensor>,
    /// Every layer's output but the last, `[rows, out_l]` (after the activation).
    hidden: Vec<Tensor>,
    /// The last layer's output `[rows, out]`.
    out: Tensor,
    in_f: usize,
    act: Act,
}

/// Check an MLP's shapes; its output width.
fn mlp_widths(xv: &Tensor, ws: &[Tensor], bs: &[Tensor]) -> Result<usize> {
    let mut width = xv.last_dim();
    if ws.is_empty() || xv.shape().is_empty() {
        return shape_err("mlp", format!("input {:?} and no layers", xv.shape()));
    }
    for (l, (w, b)) in ws.iter().zip(bs).enumerate() {
        if w.shape().len() != 2 || w.shape()[1] != width || b.len() != w.shape()[0] {
            return shape_err(
                "mlp",
                format!(
                    "layer {l}: weight {:?} and bias {:?} after width {width} (input {:?})",
                    w.shape(),
                    b.shape(),
                    xv.shape()
                ),
            );
        }
        width = w.shape()[0];
    }
    Ok(width)
}

/// Record an MLP node whose value is `fwd.out` (viewed in `x`'s leading shape) and whose
/// backward runs the layers in reverse with the fused activation derivatives.
fn mlp_record(t: &Tape, x: Var, layers: &[(Var, Var)], fwd: MlpForward) -> Result<Var> {
    let xv = t.value(x);
    let x_shape = xv.shape().to_vec();
    let rows = xv.rows();
    let width = fwd.out.last_dim();
    let mut out_shape = x_shape.clone();
    *out_shape.last_mut().unwrap() = width;
    let y = fwd.out.reshape(&out_shape)?;
    let mut inputs = vec![x];
    for (w, b) in layers {
        inputs.extend([*w, *b]);
    }
    let vars = layers.to_vec();
    let gpu = xv.gpu().clone();
    let last = layers.len() - 1;
    let MlpForward {
        x_rows,
        ws,
        hidden,
        in_f,
        act,
        ..
    } = fwd;
    Ok(t.record(y, &inputs, move |g, gy| {
        let mut gout = gy.reshape(&[rows, width])?;
        for l in (0..=last).rev() {
            let (wv, bv) = vars[l];
            let w = &ws[l];
            let (out_f, in_w) = (w.shape()[0], w.shape()[1]);
            let inp = if l == 0 { &x_rows } else { &hidden[l - 1] };
            let wgrad = MatmulSpec {
                m: out_f,
                n: in_w,
                k: rows,
                trans_a: true,
                trans_b: false,
                act: Act::None,
                acc: false,
            };
            if g.wants(wv) {
                let (gw, acc) = g.target(wv, w.shape(), &gpu)?;
                matmul_into(&gout, inp, None, &gw, MatmulSpec { acc, ..wgrad })?;
            }
            if g.wants(bv) {
                let (gb, acc) = g.target(bv, &[out_f], &gpu)?;
                sum_leading_into(&gout, &gb, acc)?;
            }
            let igrad = MatmulSpec {
                m: rows,
                n: in_w,
                k: out_f,
                trans_a: false,
                trans_b: false,
                act: Act::None,
                acc: false,
            };
            if l > 0 {
                // Nothing below wants a gradient: stop.
                let below = g.wants(x) || vars[..l].iter().any(|(w, b)| g.wants(*w) || g.wants(*b));
                if !below {
                    break;
                }
                let gin = Tensor::empty(&gpu, &[rows, in_w])?;
                match act {
                    Act::None => matmul_into(&gout, w, None, &gin, igrad)?,
                    _ => matmul_into_grad_act(&gout, w, &hidden[l - 1], act, &gin, igrad)?,
                }
                gout = gin;
            } else if g.wants(x) {
                let (gx, acc) = g.target(x, &x_shape, &gpu)?;
                let gx2 = gx.reshape(&[rows, in_f])?;
                matmul_into(&gout, w, None, &gx2, MatmulSpec { acc, ..igrad })?;
            }
        }
        Ok(())
    }))
}

/// Plain-Rust reference.
pub mod reference {
    /// `op(a) op(b) (+ bias)` in f64, returned as f32, with the storage conventions of the kernel.
    #[allow(clippy::too_many_arguments)]
    pub fn matmul(
        a: &[f32],
        b: &[f32],
        bias: Option<&[f32]>,
        m: usize,
        n: usize,
        k: usize,
        trans_a: bool,
        trans_b: bool,
    ) -> Vec<f32> {
        let mut c = vec![0f32; m * n];
        for i in 0..m {
            for j in 0..n {
                let mut s = bias.map(|b| b[j] as f64).unwrap_or(0.0);
                for p in 0..k {
                    let av = if trans_a { a[p * m + i] } else { a[i * k + p] };
                    let bv = if trans_b { b[j * k + p] } else { b[p * n + j] };
                    s += av as f64 * bv as f64;
                }
                c[i * n + j] = s as f32;
            }
        }
        c
    }
}
