//! rssm: a hand-written wgpu compute engine that trains Recurrent State-Space Models.
//!
//! Layers, bottom to top (each uses only the ones above it in this list):
//! - [`gpu`]: adapter choice, buffer pool, pipeline cache, step recorder, readback.
//! - [`tensor`]: GPU tensors, the tape (autodiff), gradient checking.
//! - [`ops`]: one module per kernel family, forward + backward + plain-Rust reference.
//! - [`nn`]: named parameters, initialisers, `Linear`, `Mlp`, safetensors of parameters.
//! - [`model`]: configuration, the RSSM, encoder/decoder, heads and the world-model loss.
//! - [`envs`], [`data`]: plain-Rust environments, replay buffer and file formats (no GPU types).
//! - [`agent`]: behaviour learning in imagination and the Dreamer loop.
//! - [`tune`]: the kernel choices measured on the device (it runs the model and the agent).

pub mod agent;
pub mod data;
pub mod envs;
pub mod error;
pub mod gpu;
pub mod model;
pub mod nn;
pub mod ops;
pub mod tensor;
pub mod tune;

pub use error::{Error, Result};
