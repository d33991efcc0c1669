//! Acting in a real environment: the RSSM filters the observations (posterior) and the actor
//! picks the next action. One small submit and one readback per environment step — the only
//! host round trip the agent needs, since the action goes to the CPU environment.

use crate::agent::actor::{action_head, Actor};
use crate::error::Result;
use crate::gpu::Gpu;
use crate::model::WorldModel;
use crate::ops::gaussian::{gaussian_head, Noise};
use crate::ops::{self};
use crate::tensor::{Tape, Tensor};

/// The filter's state between environment steps.
pub struct AgentState {
    pub h: Tensor,
    pub s: Tensor,
    pub prev_action: Tensor,
    steps: u64,
}

impl AgentState {
    /// The zero state at the start of an episode.
    pub fn new(gpu: &Gpu, wm: &WorldModel) -> Result<AgentState> {
        let cfg = &wm.cfg;
        Ok(AgentState {
            h: Tensor::zeros(gpu, &[1, cfg.deter])?,
            s: Tensor::zeros(gpu, &[1, cfg.stoch])?,
            prev_action: Tensor::zeros(gpu, &[1, cfg.action_dim])?,
            steps: 0,
        })
    }
}

/// Observe `frame` (HWC u8, 64x64x3) after `state.prev_action`, then choose the next action:
/// sampled from the actor when `explore` (plus Gaussian noise of std `expl_noise`, clipped to
/// [-1, 1], as DreamerV1), its mode otherwise. `seed` selects the noise streams.
pub fn act(
    wm: &WorldModel,
    actor: &Actor,
    state: &mut AgentState,
    frame: &[u8],
    explore: bool,
    expl_noise: f32,
    seed: u64,
) -> Result<Vec<f32>> {
    let gpu = state.h.gpu().clone();
    let mut chw = vec![0f32; 3 * 64 * 64];
    crate::data::replay::frame_to_chw(frame, &mut chw)?;
    let t = Tape::no_grad(&gpu);
    let p = wm.params.bind_frozen(&t);
    let ap = actor.bind_frozen(&t);
    let img = t.constant(&Tensor::from_vec(&gpu, &[1, 3, 64, 64], &chw)?);
    let embed = wm.encode(&t, &p, img)?;
    let (h, s, a) = (
        t.constant(&state.h),
        t.constant(&state.s),
        t.constant(&state.prev_action),
    );
    let (h_new, _prior) = wm.img_step(&t, &p, s, a, h)?;
    let post = wm.obs_step(&t, &p, h_new, embed)?;
    let offset = state.steps * 2;
    let q = gaussian_head(&t, post, wm.cfg.min_std, Noise::Seeded { seed, offset })?;
    let s_new = if explore { q.sample } else { q.mean };
    let feat = ops::concat_last(&t, &[s_new, h_new])?;
    let out = actor.forward(&t, &ap, feat)?;
    let noise = explore.then_some(Noise::Seeded {
        seed,
        offset: offset + 1,
    });
    let action = action_head(&t, out, noise)?.action;
    let av = t.value(action);
    let mut a_host = av.to_vec()?;
    if explore && expl_noise > 0.0 {
        let extra = crate::ops::gaussian::reference::normal_noise(
            a_host.len(),
            seed ^ 0xa11ce,
            state.steps,
        );
        for (x, e) in a_host.iter_mut().zip(extra) {
            *x = (*x + expl_noise * e).clamp(-1.0, 1.0);
        }
    }
    state.h = t.value(h_new);
    state.s = t.value(s_new);
    state.prev_action = Tensor::from_vec(&gpu, &[1, wm.cfg.action_dim], &a_host)?;
    state.steps += 1;
    Ok(a_host)
}
