//! The world model: configuration and presets, the RSSM (`img_step`, `obs_step`, `observe`),
//! the conv encoder and decoder, the reward and continue heads, and the loss.

pub mod checkpoint;
pub mod config;
mod device_batch;
pub mod open_loop;
pub mod trainer;
pub mod world_model;

pub use checkpoint::{Checkpoint, TrainerMeta};
pub use config::Config;
pub use trainer::{PendingStep, StepMetrics, Trainer};
pub use world_model::{DeviceBatch, LossOut, Observed, RssmPath, WorldModel};
