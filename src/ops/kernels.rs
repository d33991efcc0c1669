//! Every kernel the Rust side dispatches, in one table. Each kernel family declares its entry
//! points where it dispatches them, as typed [`KernelSig`] constants (family, entry point, the
//! override constants it may set, the size of its parameter block and the names of the storage
//! buffers it binds, in order): `gpu.kernel(&gru::GRU_CELL, &[("SAVE", 1.0)])`. A misspelt
//! kernel is then a compile error; `tests/kernels.rs` checks every constant of this table
//! against its shader with naga reflection (entry point, override names, the uniform struct's
//! size, the storage bindings by name and order) and that every constant declared in `src/` is
//! in the table. `Gpu::kernel` refuses an override the signature does not list, and a dispatch
//! with another number of buffers than the signature's bindings panics naming the kernel.

pub use crate::gpu::pipelines::KernelSig;

/// Every kernel dispatched from Rust.
pub const KERNELS: &[&KernelSig] = &[
    &crate::ops::adam::SUMSQ_PARTIAL,
    &crate::ops::adam::NORM_FINISH,
    &crate::ops::adam::ADAM_UPDATE,
    &crate::ops::conv::PACK_W,
    &crate::ops::conv::CONV_MAIN,
    &crate::ops::conv::REDUCE_SPLITS,
    &crate::ops::conv::WGRAD,
    &crate::ops::conv::WGRAD_LANES,
    &crate::ops::conv::CONV_MAIN_LANES,
    &crate::ops::conv::PACK_W_FOLD,
    &crate::ops::conv::BIAS_GRAD,
    &crate::ops::conv::nhwc::CONV_NHWC,
    &crate::ops::conv::nhwc::CONV_NHWC_TO_NCHW,
    &crate::ops::conv::nhwc::CONV_NHWC_SCATTER,
    &crate::ops::conv::nhwc::WGRAD_NHWC,
    &crate::ops::conv::nhwc::RELAYOUT,
    &crate::ops::elementwise::UNARY,
    &crate::ops::elementwise::UNARY_BACKWARD,
    &crate::ops::elementwise::BINARY,
    &crate::ops::elementwise::BINARY_BACKWARD,
    &crate::tensor::tensor::AXPY,
    &crate::ops::gaussian::GAUSSIAN_FORWARD,
    &crate::ops::gaussian::GAUSSIAN_BACKWARD,
    &crate::ops::gaussian::NORMAL,
    &crate::ops::gaussian::NORMAL_STEPS,
    &crate::ops::gaussian::RANDOM_BITS,
    &crate::ops::gru::GRU_CELL,
    &crate::ops::gru::GRU_CELL_BACKWARD,
    &crate::ops::kl::KL_ROWS,
    &crate::ops::kl::KL_BACKWARD,
    &crate::ops::kl::KL_MEAN_CLAMP,
    &crate::ops::loss::ROW_LOSS_THREAD,
    &crate::ops::loss::ROW_LOSS_WG,
    &crate::ops::loss::ROW_LOSS_BACKWARD,
    &crate::ops::matmul::MATMUL,
    &crate::ops::matmul::MATMUL_VEC4,
    &crate::ops::matmul::MATVEC,
    &crate::ops::matmul::MATVEC_VEC4,
    &crate::ops::matmul::MATMUL_LANES,
    &crate::ops::matmul::MATMUL_LANES_ANY,
    &crate::ops::matmul::MATMUL_LANES_U64,
    &crate::ops::matmul::MATMUL_LANES_U64_STORE8,
    &crate::ops::reduce::SUM_ROWS,
    &crate::ops::reduce::SUM_LEADING,
    &crate::ops::reduce::EXPAND,
    &crate::ops::returns::LAMBDA_RETURN,
    &crate::ops::returns::LAMBDA_RETURN_BACKWARD,
    &crate::ops::rssm::PACK_WEIGHTS,
    &crate::ops::rssm::PACK_BIASES,
    &crate::ops::rssm::OBSERVE_FORWARD,
    &crate::ops::rssm::OBSERVE_BACKWARD,
    &crate::ops::imagine::PACK_ACTOR,
    &crate::ops::imagine::IMAGINE_FORWARD,
    &crate::ops::imagine::IMAGINE_BACKWARD,
    &crate::gpu::context::LOOP_LIMIT,
    &crate::ops::shape::COPY2D,
];
