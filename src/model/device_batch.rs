//! Uploading a host batch from the replay buffer.

use crate::data::replay::Batch;
use crate::error::Result;
use crate::gpu::Gpu;
use crate::model::DeviceBatch;
use crate::tensor::Tensor;

impl DeviceBatch {
    /// The replay buffer's `[B, T, ...]` batch on the device, with the trainer's own latent
    /// noise (`eps: None`).
    pub fn upload(gpu: &Gpu, batch: &Batch) -> Result<DeviceBatch> {
        let (b, t, a) = (batch.batch_size, batch.seq_len, batch.action_dim);
        Ok(DeviceBatch {
            obs: Tensor::from_vec(gpu, &[b, t, 3, 64, 64], &batch.obs)?,
            action: Tensor::from_vec(gpu, &[b, t, a], &batch.action)?,
            reward: Tensor::from_vec(gpu, &[b, t], &batch.reward)?,
            cont: Tensor::from_vec(gpu, &[b, t], &batch.cont)?,
            eps: None,
        })
    }
}
