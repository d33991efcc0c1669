//! The convolution family (`shaders/conv*.wgsl`, `ops::conv`): Conv2d and ConvTranspose2d
//! against the plain-Rust reference, forward and every gradient, with finite differences, on
//! every kernel variant the device runs (plain and subgroup kernels, both register blocks), in
//! both layouts (NCHW, and channels innermost between the 3-channel ends), at awkward shapes,
//! the spec's and the presets' shapes and batches, and past one storage binding.

#[path = "../common/mod.rs"]
mod common;

/// NCHW: the plain and the subgroup kernels.
mod nchw;
/// Channels innermost without gradients: the observe-only encoder.
mod nhwc_encoder;
/// Channels innermost with gradients: training.
mod nhwc_train;
