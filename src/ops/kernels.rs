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

/// The family of the fused RSSM and imagination kernels (`ops::rssm`, `ops::imagine`): where
/// the device cannot run them, their plans fall back to the per-op path.
pub const FUSED_FAMILY: &str = "rssm";

/// The most storage buffers one kernel binds: over the per-op kernels (every run needs them)
/// and over the fused ones.
pub fn storage_buffers_needed() -> (u32, u32) {
    let most = |fused: bool| {
        KERNELS
            .iter()
            .filter(|k| (k.family == FUSED_FAMILY) == fused)
            .map(|k| k.bindings.len() as u32)
            .max()
            .unwrap_or(0)
    };
    (most(false), most(true))
}

/// What `gpu`'s device cannot run whatever the sizes, a line each (empty: everything): kernels
/// binding more storage buffers than a shader stage may have (then the engine cannot run at
/// all), the fused kernels falling back to per-op for the same reason, and the 1-D kernels'
/// workgroups past the device's invocations per workgroup. For `rssm info`.
pub fn device_gaps(gpu: &crate::gpu::Gpu) -> Vec<String> {
    let lim = gpu.limits();
    let allowed = lim.max_storage_buffers_per_shader_stage;
    let mut out = Vec::new();
    let over: Vec<String> = KERNELS
        .iter()
        .filter(|k| k.family != FUSED_FAMILY && k.bindings.len() as u32 > allowed)
        .map(|k| format!("{}::{} ({})", k.family, k.entry, k.bindings.len()))
        .collect();
    if !over.is_empty() {
        out.push(format!(
            "the engine cannot run here: the device allows {allowed} storage buffers per shader \
             stage (max_storage_buffers_per_shader_stage) and these kernels bind more: {}",
            over.join(", ")
        ));
    }
    for (what, need) in [
        ("the fused RSSM", crate::ops::rssm::STORAGE_BUFFERS_NEEDED),
        (
            "fused imagination",
            crate::ops::imagine::STORAGE_BUFFERS_NEEDED,
        ),
    ] {
        if allowed < need {
            out.push(format!(
                "{what} binds {need} storage buffers and the device allows {allowed}: it runs \
                 per-op"
            ));
        }
    }
    let wg = crate::gpu::WG_1D;
    if lim.max_compute_invocations_per_workgroup < wg || lim.max_compute_workgroup_size_x < wg {
        out.push(format!(
            "the engine cannot run here: its 1-D kernels run {wg} invocations per workgroup and \
             the device at most {} (max_compute_invocations_per_workgroup)",
            lim.max_compute_invocations_per_workgroup
                .min(lim.max_compute_workgroup_size_x)
        ));
    }
    out
}
