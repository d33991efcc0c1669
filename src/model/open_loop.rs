//! Open-loop prediction, as in PlaNet's and Dreamer's figures: observe the first `context`
//! frames with the posterior, then let the prior imagine the rest from the real actions, and
//! decode every step. Runs on a no-grad tape; uses the distributions' means (no sampling).

use crate::error::{shape_err, Result};
use crate::model::{DeviceBatch, WorldModel};
use crate::nn::Bound;
use crate::ops::gaussian::{gaussian_head, Noise};
use crate::ops::{self};
use crate::tensor::{Tape, Tensor, Var};

/// Decoded images `[B, T, 3, 64, 64]`: steps `< context` reconstructed from observations, the
/// rest predicted open loop.
pub fn open_loop(model: &WorldModel, batch: &DeviceBatch, context: usize) -> Result<Tensor> {
    let (b, steps) = model.check_batch(batch)?;
    if context == 0 || context > steps {
        return shape_err(
            "open_loop",
            format!("context {context} for sequences of {steps}"),
        );
    }
    let cfg = &model.cfg;
    let gpu = batch.obs.gpu();
    let t = Tape::no_grad(gpu);
    let p = model.params.bind_frozen(&t);
    let obs = t.constant(&batch.obs);
    let images = ops::reshape(&t, obs, &[b * steps, 3, 64, 64])?;
    let embed = model.encode(&t, &p, images)?;
    let embed = ops::reshape(&t, embed, &[b, steps, cfg.embed()])?;
    let action = t.constant(&batch.action);
    let feat = filter_then_imagine(model, &t, &p, embed, context, steps, |_, step| {
        ops::slice_time(&t, action, step)
    })?;
    let decoded = model.decode(&t, &p, feat)?;
    t.value(decoded).reshape(&[b, steps, 3, 64, 64])
}

/// The RSSM over `steps` steps from a zero state, on tape `t`: the posterior for the first
/// `context` steps (from `embed [B, >= context, E]`), the prior after that; the latent is the
/// distribution's mean. `action(last_feat, step)` gives the action `[B, A]` that leads to step
/// `step` (`last_feat` is the previous step's feature, `None` at step 0), e.g. recorded
/// actions or an actor. Returns the features `[B * steps, stoch + deter]` (batch-major).
pub fn filter_then_imagine(
    model: &WorldModel,
    t: &Tape,
    p: &Bound,
    embed: Var,
    context: usize,
    steps: usize,
    mut action: impl FnMut(Option<Var>, usize) -> Result<Var>,
) -> Result<Var> {
    let cfg = &model.cfg;
    let gpu = t.gpu();
    let b = t.shape(embed)[0];
    let zeros = Tensor::zeros(gpu, &[b, cfg.stoch])?;
    let mut h = t.constant(&Tensor::zeros(gpu, &[b, cfg.deter])?);
    let mut s = t.constant(&zeros);
    let mut feats: Vec<Var> = Vec::with_capacity(steps);
    for step in 0..steps {
        let a = action(feats.last().copied(), step)?;
        let (h_new, prior) = model.img_step(t, p, s, a, h)?;
        let stats = if step < context {
            let e = ops::slice_time(t, embed, step)?;
            model.obs_step(t, p, h_new, e)?
        } else {
            prior
        };
        s = gaussian_head(t, stats, cfg.min_std, Noise::Given(zeros.clone()))?.mean;
        h = h_new;
        feats.push(ops::concat_last(t, &[s, h])?);
    }
    let feat = ops::stack_time(t, &feats)?;
    ops::reshape(t, feat, &[b * steps, cfg.feat()])
}
