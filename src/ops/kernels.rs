//! Every kernel the Rust side dispatches, in one table: its family (`shaders/<family>.wgsl`),
//! entry point, the override constants it sets, the size of the parameter block it writes to
//! binding 0 and the number of storage buffers it binds (by position, in ascending binding
//! number).
//!
//! Kernels are looked up by strings (`gpu.kernel("gru", "gru_cell", &[("SAVE", ..)])`) and
//! their buffers bound by position, so a typo or a shader edit that moves a binding would only
//! fail when the op runs. `tests/kernels.rs` checks this table against the shaders with naga
//! reflection (entry points, override names, the uniform struct's size, the storage bindings
//! each entry point uses) and against the source (every `kernel(..)` call is registered here).
//! Registering a kernel is one line: `kernel!(ParamsType, "family", "entry", [CONSTS], buffers)`.

use std::mem::size_of;

use crate::tensor::tensor::ElementwiseParams;

/// What the Rust side assumes about one kernel entry point.
#[derive(Clone, Copy, Debug)]
pub struct KernelSig {
    /// Shader family: `shaders/<family>.wgsl`.
    pub family: &'static str,
    /// The `@compute` entry point.
    pub entry: &'static str,
    /// Override constants the callers set (every one must be declared in the shader).
    pub constants: &'static [&'static str],
    /// `size_of` the Rust struct written to the uniform at binding 0.
    pub params_bytes: usize,
    /// Storage buffers passed to `Gpu::dispatch`.
    pub buffers: usize,
}

macro_rules! kernel {
    ($params:ty, $family:literal, $entry:literal, [$($c:literal),*], $buffers:literal) => {
        KernelSig {
            family: $family,
            entry: $entry,
            constants: &[$($c),*],
            params_bytes: size_of::<$params>(),
            buffers: $buffers,
        }
    };
}

use super::{adam, conv, gaussian, gru, kl, loss, matmul, reduce, returns, rssm, shape};

/// Every kernel dispatched from Rust. One line per entry point.
#[rustfmt::skip]
pub const KERNELS: &[KernelSig] = &[
    kernel!(adam::Params, "adam", "sumsq_partial", [], 2),
    kernel!(adam::Params, "adam", "norm_finish", ["CLIP"], 3),
    kernel!(adam::Params, "adam", "adam_update", [], 5),
    kernel!(conv::Params, "conv", "pack_w", [], 2),
    kernel!(conv::Params, "conv", "conv_main", ["SCATTER", "CB4", "NPOS"], 4),
    kernel!(conv::Params, "conv", "reduce_splits", [], 2),
    kernel!(conv::Params, "conv", "wgrad", ["NCOL"], 3),
    kernel!(conv::Params, "conv_lanes", "wgrad_lanes", [], 3),
    kernel!(conv::Params, "conv_lanes", "conv_main_lanes", ["SCATTER", "CB4L", "FOLD", "PAIR"], 5),
    kernel!(conv::Params, "conv_lanes", "pack_w_fold", ["PAIR"], 2),
    kernel!(conv::Params, "conv", "bias_grad", [], 2),
    kernel!(conv::nhwc::NhwcParams, "conv_nhwc", "conv_nhwc", [], 4),
    kernel!(conv::nhwc::NhwcParams, "conv_nhwc", "conv_nhwc_to_nchw", [], 4),
    kernel!(conv::nhwc::NhwcParams, "conv_nhwc", "conv_nhwc_scatter", [], 4),
    kernel!(conv::nhwc::NhwcParams, "conv_nhwc", "wgrad_nhwc", [], 3),
    kernel!(conv::Params, "conv", "relayout", ["TO_NHWC"], 2),
    kernel!(ElementwiseParams, "elementwise", "unary", ["OP"], 2),
    kernel!(ElementwiseParams, "elementwise", "unary_backward", ["OP", "FROM_OUTPUT", "ACC"], 3),
    kernel!(ElementwiseParams, "elementwise", "binary", ["BOP"], 3),
    kernel!(ElementwiseParams, "elementwise", "binary_backward", ["BOP", "WHICH", "ACC"], 4),
    kernel!(ElementwiseParams, "elementwise", "axpy", [], 2),
    kernel!(gaussian::Params, "gaussian", "gaussian_forward", ["SEEDED", "TANH"], 5),
    kernel!(gaussian::Params, "gaussian", "gaussian_backward", ["HAS_GMEAN", "HAS_GSTD", "HAS_GSAMPLE", "ACC", "TANH"], 6),
    kernel!(gaussian::Params, "gaussian", "normal", [], 1),
    kernel!(gaussian::Params, "gaussian", "normal_steps", [], 1),
    kernel!(gaussian::Params, "gaussian", "random_bits", [], 1),
    kernel!(gru::Params, "gru", "gru_cell", ["SAVE"], 5),
    kernel!(gru::Params, "gru", "gru_cell_backward", ["HAS_DH", "ACC_DH"], 6),
    kernel!(kl::Params, "kl", "kl_rows", [], 5),
    kernel!(kl::Params, "kl", "kl_backward", ["SIDE", "SCALAR_G", "HAS_M", "HAS_S", "ACC_M", "ACC_S"], 8),
    kernel!(kl::Params, "kl", "kl_mean_clamp", [], 4),
    kernel!(loss::Params, "loss", "row_loss_thread", ["KIND"], 3),
    kernel!(loss::Params, "loss", "row_loss_wg", ["KIND"], 3),
    kernel!(loss::Params, "loss", "row_loss_backward", ["KIND", "WHICH", "ACC", "ROW2D"], 4),
    kernel!(matmul::Params, "matmul", "matmul", ["TRANS_A", "TRANS_B", "HAS_BIAS", "ACC", "ACT", "GRAD_ACT", "WIDE"], 4),
    kernel!(matmul::Params, "matmul", "matmul_vec4", ["TRANS_A", "TRANS_B", "HAS_BIAS", "ACC", "ACT", "GRAD_ACT", "WIDE"], 4),
    kernel!(matmul::Params, "matmul", "matvec", ["TRANS_A", "TRANS_B", "HAS_BIAS", "ACC", "ACT", "GRAD_ACT"], 4),
    kernel!(matmul::Params, "matmul", "matvec_vec4", ["TRANS_A", "TRANS_B", "HAS_BIAS", "ACC", "ACT", "GRAD_ACT"], 4),
    kernel!(matmul::Params, "matmul_lanes", "matmul_lanes", ["TRANS_A", "TRANS_B", "HAS_BIAS", "ACC", "ACT", "GRAD_ACT", "ROWS"], 4),
    kernel!(matmul::Params, "matmul_lanes", "matmul_lanes_any", ["TRANS_A", "TRANS_B", "HAS_BIAS", "ACC", "ACT", "GRAD_ACT", "ROWS"], 4),
    kernel!(matmul::Params, "matmul_lanes64", "matmul_lanes_u64", ["TRANS_A", "TRANS_B", "HAS_BIAS", "ACC", "ACT", "GRAD_ACT", "ROWS"], 4),
    kernel!(matmul::Params, "matmul_lanes64", "matmul_lanes_u64_store8", ["TRANS_A", "TRANS_B", "HAS_BIAS", "ACC", "ACT", "GRAD_ACT", "ROWS"], 5),
    kernel!(reduce::Params, "reduce", "sum_rows", [], 2),
    kernel!(reduce::Params, "reduce", "sum_leading", ["ACC"], 2),
    kernel!(reduce::Params, "reduce", "expand", ["ACC"], 2),
    kernel!(returns::Params, "returns", "lambda_return", [], 4),
    kernel!(returns::Params, "returns", "lambda_return_backward", [], 7),
    kernel!(rssm::Params, "rssm", "pack_weights", [], 8),
    kernel!(rssm::Params, "rssm", "pack_biases", [], 7),
    kernel!(rssm::Params, "rssm", "observe_forward", ["R", "WGT", "SH", "SAVE"], 14),
    kernel!(rssm::Params, "rssm", "observe_backward", ["R", "WGT", "SH"], 19),
    kernel!(rssm::Params, "rssm", "pack_actor", [], 11),
    kernel!(rssm::Params, "rssm", "imagine_forward", ["R", "WGT", "SH", "SAVE"], 13),
    kernel!(rssm::Params, "rssm", "imagine_backward", ["R", "WGT", "SH"], 10),
    kernel!(u32, "probe", "loop_limit", [], 1),
    kernel!(shape::Params, "shape", "copy2d", ["ACC"], 2),
];
