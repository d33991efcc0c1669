//! A Dreamer agent as a library object: its own replay of episodes, the world-model trainer,
//! the behaviour (actor and critic) and the recurrent filter that acts, behind four calls —
//! [`Dreamer::act`], [`Dreamer::observe`], [`Dreamer::update`] and [`Dreamer::save`] /
//! [`Dreamer::load`] — so that any environment loop (a Python one, say) can drive it.
//! [`CheckpointPolicy`] acts from a checkpoint's weights alone (world model and actor, no optimiser
//! state, critic or replay).
//!
//! # Episodes
//! [`Dreamer::begin_episode`] records the first frame of an episode; each
//! [`Dreamer::observe`] records one transition (the action taken, the reward received, the
//! frame reached, whether that frame is terminal and whether the episode ended). A finished
//! episode goes into the replay. The frames are 64x64 RGB `u8`, HWC.
//!
//! # Acting
//! [`Dreamer::act`] filters the frame with the posterior after the previous action and returns
//! the actor's next action in `[-1, 1]`. The filter starts from the zero state at the first
//! `act` of each episode (after `begin_episode`, an `observe` that ended the episode, or
//! [`Dreamer::reset_state`]); `observe` replaces the filter's previous action with the action
//! the environment really executed.
//!
//! # Determinism
//! Training batches are drawn with the seed `cfg.seed + step * 0x9E3779B9` from the replay, the
//! latent noise from the step number, the behaviour's imagination noise from the update number
//! (as in `rssm dreamer`), and the acting noise of exploration episode `e` from
//! `cfg.seed * 7919 + e`: the same calls in the same order give the same agent.
//!
//! # Checkpoint folder
//! The world model's pair (`checkpoint.safetensors`, `optimizer.safetensors`, see
//! [`Checkpoint`]), `actor.safetensors` / `actor_optimizer.safetensors`, `critic.safetensors` /
//! `critic_optimizer.safetensors` (the layout of `rssm dreamer`'s `checkpoint/`, so `rssm
//! imagine` reads it), `agent.json` (configuration, settings, counters) and, when saved with
//! the replay, `episodes/episode_NNNNNN.npz`. The folder is replaced as a whole, so its
//! counters, weights and episodes always belong to the same moment.

use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::agent::acting::{act, AgentState};
use crate::agent::actor::Actor;
use crate::agent::behaviour::{Behaviour, BehaviourConfig, BehaviourMetrics, Starts};
use crate::data::replay::ReplayBuffer;
use crate::data::{Episode, EpisodeBuilder, FRAME_LEN};
use crate::error::{Error, Result};
use crate::gpu::Gpu;
use crate::model::{Checkpoint, Config, DeviceBatch, StepMetrics, Trainer, WorldModel};
use crate::tensor::Tensor;

/// The agent's settings besides the world model's [`Config`].
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DreamerSettings {
    /// Actor and critic: horizon, discount, lambda, learning rates, clip.
    pub behaviour: BehaviourConfig,
    /// World-model steps before the first behaviour update: an actor trained on an untrained
    /// reward model exploits its errors (see the README's Dreamer section).
    pub behaviour_warmup: u64,
    /// Std of the Gaussian noise added to the actor's sampled action when exploring.
    pub expl_noise: f32,
    /// Replay capacity in steps (the oldest episodes are dropped past it).
    pub replay_capacity: usize,
}

impl Default for DreamerSettings {
    fn default() -> Self {
        DreamerSettings {
            behaviour: BehaviourConfig::default(),
            behaviour_warmup: 300,
            expl_noise: 0.3,
            replay_capacity: 2_000_000,
        }
    }
}

impl DreamerSettings {
    /// Reject settings that cannot work.
    pub fn validate(&self) -> Result<()> {
        self.behaviour.validate()?;
        if !(self.expl_noise.is_finite() && self.expl_noise >= 0.0) {
            return Err(Error::Invalid(format!(
                "expl_noise must be a finite value >= 0, got {}",
                self.expl_noise
            )));
        }
        if self.replay_capacity == 0 {
            return Err(Error::Invalid("replay_capacity must be at least 1".into()));
        }
        Ok(())
    }
}

/// The agent's counters (saved with it).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct DreamerCounters {
    /// Transitions observed.
    pub env_steps: u64,
    /// Episodes finished (and put into the replay).
    pub episodes: u64,
    /// Acting episodes begun with exploration (they select the acting noise).
    pub act_episodes: u64,
}

/// What `agent.json` holds.
#[derive(Serialize, Deserialize)]
struct AgentFile {
    config: Config,
    settings: DreamerSettings,
    counters: DreamerCounters,
    behaviour_updates: u64,
}

/// One update: a world-model step and, past the warm-up, a behaviour update.
#[derive(Clone, Debug, Serialize)]
pub struct UpdateMetrics {
    pub world_model: StepMetrics,
    pub behaviour: Option<BehaviourMetrics>,
}

/// The recurrent filter between `act` calls.
struct Acting {
    state: AgentState,
    seed: u64,
}

/// Replay, world-model trainer, behaviour and acting: a whole Dreamer agent.
pub struct Dreamer {
    pub trainer: Trainer,
    pub behaviour: Behaviour,
    pub replay: ReplayBuffer,
    pub settings: DreamerSettings,
    pub counters: DreamerCounters,
    gpu: Gpu,
    episode: Option<EpisodeBuilder>,
    acting: Option<Acting>,
}

fn check_frame(frame: &[u8]) -> Result<()> {
    if frame.len() != FRAME_LEN {
        return Err(Error::Invalid(format!(
            "a frame must be 64x64x3 = {FRAME_LEN} bytes (HWC u8), got {}",
            frame.len()
        )));
    }
    Ok(())
}

fn check_action(action: &[f32], action_dim: usize) -> Result<()> {
    if action.len() != action_dim {
        return Err(Error::Invalid(format!(
            "the action has {} components, the agent {action_dim}",
            action.len()
        )));
    }
    if let Some(i) = action.iter().position(|a| !a.is_finite() || a.abs() > 1.0) {
        return Err(Error::Invalid(format!(
            "action[{i}] is {}: actions must be finite and in [-1, 1]",
            action[i]
        )));
    }
    Ok(())
}

/// The index of a replay file of a checkpoint folder (`episodes/episode_NNNNNN.npz`).
fn episode_index(name: &std::ffi::OsStr) -> Option<u64> {
    let digits = name
        .to_str()?
        .strip_prefix("episode_")?
        .strip_suffix(".npz")?;
    if digits.bytes().all(|b| b.is_ascii_digit()) {
        digits.parse().ok()
    } else {
        None
    }
}

/// The configuration of a checkpoint folder: `agent.json` when there is one (written by
/// [`Dreamer::save`]), else the metadata of `optimizer.safetensors` (written by every
/// world-model checkpoint, `rssm train`'s and `rssm dreamer`'s included).
pub fn checkpoint_config(dir: &Path) -> Result<Config> {
    let agent = dir.join("agent.json");
    if agent.exists() {
        let text = std::fs::read_to_string(&agent).map_err(|e| Error::File {
            path: agent.clone(),
            msg: e.to_string(),
        })?;
        let file: AgentFile = serde_json::from_str(&text).map_err(|e| Error::File {
            path: agent.clone(),
            msg: format!("not an agent file: {e}"),
        })?;
        return Ok(file.config);
    }
    let ckpt = Checkpoint::new(dir);
    if !ckpt.optimizer().exists() {
        return Err(Error::File {
            path: dir.to_path_buf(),
            msg: "not a checkpoint folder: it has neither agent.json nor optimizer.safetensors"
                .into(),
        });
    }
    ckpt.config()
}

impl Dreamer {
    /// A fresh agent for `cfg` (whose `action_dim` must be set), with an empty replay.
    pub fn new(gpu: &Gpu, cfg: &Config, settings: DreamerSettings) -> Result<Dreamer> {
        settings.validate()?;
        if cfg.action_dim == 0 {
            return Err(Error::Invalid("the agent needs action_dim >= 1".into()));
        }
        Ok(Dreamer {
            trainer: Trainer::new(gpu, cfg)?,
            behaviour: Behaviour::new(gpu, cfg, settings.behaviour.clone())?,
            replay: ReplayBuffer::new(settings.replay_capacity)?,
            settings,
            counters: DreamerCounters::default(),
            gpu: gpu.clone(),
            episode: None,
            acting: None,
        })
    }

    /// The world model's configuration.
    pub fn config(&self) -> &Config {
        &self.trainer.model.cfg
    }

    /// Action components.
    pub fn action_dim(&self) -> usize {
        self.config().action_dim
    }

    /// Forget the filter state: the next `act` starts from the zero state.
    pub fn reset_state(&mut self) {
        self.acting = None;
    }

    /// The actor's action for `frame` (64x64x3 `u8`), filtered after the previous action of
    /// this episode: sampled plus exploration noise when `explore`, the mode otherwise.
    pub fn act(&mut self, frame: &[u8], explore: bool) -> Result<Vec<f32>> {
        check_frame(frame)?;
        if self.acting.is_none() {
            let seed = self
                .config()
                .seed
                .wrapping_mul(7919)
                .wrapping_add(self.counters.act_episodes);
            if explore {
                self.counters.act_episodes += 1;
            }
            self.acting = Some(Acting {
                state: AgentState::new(&self.gpu, &self.trainer.model)?,
                seed,
            });
        }
        let acting = self.acting.as_mut().expect("set above");
        act(
            &self.trainer.model,
            &self.behaviour.actor,
            &mut acting.state,
            frame,
            explore,
            self.settings.expl_noise,
            acting.seed,
        )
    }

    /// Start recording an episode at its first frame. An episode still open is kept in the
    /// replay as one cut by a time limit (not terminal). The filter state starts afresh.
    pub fn begin_episode(&mut self, frame: &[u8]) -> Result<()> {
        check_frame(frame)?;
        let builder = EpisodeBuilder::new(frame, self.action_dim())?;
        self.finish_episode()?;
        self.episode = Some(builder);
        self.acting = None;
        Ok(())
    }

    /// Record a transition of the open episode: `action` was executed, `reward` received,
    /// `frame` reached; `terminal` if `frame` is a terminal state, `done` if the episode ended
    /// there (terminal or cut). A terminal transition always ends the episode.
    pub fn observe(
        &mut self,
        action: &[f32],
        reward: f32,
        frame: &[u8],
        terminal: bool,
        done: bool,
    ) -> Result<()> {
        check_frame(frame)?;
        check_action(action, self.action_dim())?;
        if !reward.is_finite() {
            return Err(Error::Invalid(format!("reward is {reward} (not finite)")));
        }
        let ep = self.episode.as_mut().ok_or_else(|| {
            Error::Invalid(
                "no episode is open: record the episode's first frame (begin_episode) before its transitions".into(),
            )
        })?;
        ep.push(action, reward, frame, terminal)?;
        self.counters.env_steps += 1;
        if let Some(acting) = &mut self.acting {
            acting.state.prev_action = Tensor::from_vec(&self.gpu, &[1, action.len()], action)?;
        }
        if terminal || done {
            self.finish_episode()?;
            self.acting = None;
        }
        Ok(())
    }

    /// Put the open episode, if it has a transition, into the replay.
    fn finish_episode(&mut self) -> Result<()> {
        if let Some(ep) = self.episode.take() {
            if ep.len() > 1 {
                self.replay.push(ep.finish())?;
                self.counters.episodes += 1;
            }
        }
        Ok(())
    }

    /// Add a whole recorded episode to the replay (e.g. from `.npz` files).
    pub fn add_episode(&mut self, episode: Episode) -> Result<()> {
        if episode.action_dim() != self.action_dim() {
            return Err(Error::Invalid(format!(
                "the episode has {} action components, the agent {}",
                episode.action_dim(),
                self.action_dim()
            )));
        }
        self.counters.env_steps += episode.num_transitions() as u64;
        self.replay.push(episode)?;
        self.counters.episodes += 1;
        Ok(())
    }

    /// One update: a world-model step on a batch from the replay, then (past the warm-up) a
    /// behaviour update from all of the batch's posterior states.
    pub fn update(&mut self) -> Result<UpdateMetrics> {
        let cfg = self.config().clone();
        if self.replay.num_windows(cfg.seq_len) == 0 {
            let longest = self.replay.episodes().map(|e| e.len()).max().unwrap_or(0);
            return Err(Error::Invalid(format!(
                "update needs an episode of at least seq_len = {} steps in the replay; it holds {} episodes, the longest of {longest} steps",
                cfg.seq_len,
                self.replay.len()
            )));
        }
        let m = self.train_world_model()?;
        if !m.loss.is_finite() {
            return Err(Error::Invalid(format!(
                "world-model loss became {} at step {}",
                m.loss, m.step
            )));
        }
        let b = self.train_behaviour()?;
        Ok(UpdateMetrics {
            world_model: m,
            behaviour: b,
        })
    }

    /// The world-model half of [`Dreamer::update`]: one step on a batch drawn from the replay
    /// with the step's seed. The loss is not checked, so that a caller can say where its last
    /// good checkpoint is.
    pub fn train_world_model(&mut self) -> Result<StepMetrics> {
        let cfg = self.config();
        let host = self.replay.sample_with_seed(
            cfg.batch,
            cfg.seq_len,
            cfg.seed
                .wrapping_add(self.trainer.step.wrapping_mul(0x9E37_79B9)),
        )?;
        self.trainer
            .train_step(&DeviceBatch::upload(&self.gpu, &host)?)
    }

    /// The behaviour half of [`Dreamer::update`]: past the warm-up, an update from the
    /// posterior states of the last world-model step; `None` before.
    pub fn train_behaviour(&mut self) -> Result<Option<BehaviourMetrics>> {
        if self.trainer.step <= self.settings.behaviour_warmup {
            return Ok(None);
        }
        let (h, s) = self
            .trainer
            .last_posterior
            .clone()
            .ok_or_else(|| Error::Invalid("no posterior after a train step".into()))?;
        Ok(Some(
            self.behaviour
                .update(&self.trainer.model, &Starts::new(&h, &s)?)?,
        ))
    }

    /// Write the weights and optimiser states of the world model, the actor and the critic
    /// into `dir` (the files of [`Dreamer::save`] without `agent.json` and the replay: the
    /// layout of `rssm dreamer`'s `checkpoint/`).
    pub fn save_weights(&self, dir: &Path) -> Result<()> {
        self.trainer.save(dir)?;
        self.behaviour.actor.opt.save(dir, "actor")?;
        self.behaviour.critic.opt.save(dir, "critic")
    }

    /// Read what [`Dreamer::save_weights`] wrote; the configuration must match.
    pub fn load_weights(&mut self, dir: &Path) -> Result<()> {
        self.trainer.load(dir)?;
        self.behaviour.actor.opt.load(dir, "actor")?;
        self.behaviour.critic.opt.load(dir, "critic")
    }

    /// Write the checkpoint folder `dir`; with `with_replay`, also the replay's episodes under
    /// `dir/episodes/` (files already there are kept: episodes do not change once recorded).
    /// The folder is replaced as a whole ([`write_folder_atomically`]): a crash leaves the
    /// previous checkpoint or this one, never a mix of weights, counters and episodes. An
    /// episode still open is not saved, and its steps are not counted in the saved counters.
    ///
    /// [`write_folder_atomically`]: crate::data::atomic::write_folder_atomically
    pub fn save(&self, dir: &Path, with_replay: bool) -> Result<()> {
        crate::data::atomic::write_folder_atomically(dir, |dir| self.save_into(dir, with_replay))
    }

    fn save_into(&self, dir: &Path, with_replay: bool) -> Result<()> {
        self.save_weights(dir)?;
        if with_replay {
            let ep_dir = dir.join("episodes");
            std::fs::create_dir_all(&ep_dir)?;
            let first = self.counters.episodes as usize
                - self.replay.len().min(self.counters.episodes as usize);
            for (i, ep) in self.replay.episodes().enumerate() {
                let path = ep_dir.join(format!("episode_{:06}.npz", first + i));
                if !path.exists() {
                    crate::data::save_npz(&path, ep)?;
                }
            }
            // Files past the counters (an earlier agent's) are not this checkpoint's.
            for entry in std::fs::read_dir(&ep_dir)? {
                let entry = entry?;
                if episode_index(&entry.file_name()).is_some_and(|i| i >= self.counters.episodes) {
                    std::fs::remove_file(entry.path())?;
                }
            }
        }
        let open_steps = self.episode.as_ref().map_or(0, |e| e.len() - 1) as u64;
        let file = AgentFile {
            config: self.config().clone(),
            settings: self.settings.clone(),
            counters: DreamerCounters {
                env_steps: self.counters.env_steps - open_steps,
                ..self.counters.clone()
            },
            behaviour_updates: self.behaviour.updates,
        };
        let text =
            serde_json::to_string_pretty(&file).map_err(|e| Error::Invalid(e.to_string()))?;
        crate::data::atomic::write_atomically(&dir.join("agent.json"), |f| {
            use std::io::Write;
            f.write_all(text.as_bytes())
                .map_err(|e| crate::data::DataError::io(dir.join("agent.json"), "write", e))
        })?;
        Ok(())
    }

    /// Read a folder written by [`Dreamer::save`] (with its replay, when saved with it: the
    /// episodes its counters count, each once).
    pub fn load(gpu: &Gpu, dir: &Path) -> Result<Dreamer> {
        if !dir.exists() {
            // A save killed between its two renames: finish it.
            crate::data::atomic::recover_folder(dir)?;
        }
        let path = dir.join("agent.json");
        let text = std::fs::read_to_string(&path).map_err(|e| Error::File {
            path: path.clone(),
            msg: e.to_string(),
        })?;
        let file: AgentFile = serde_json::from_str(&text).map_err(|e| Error::File {
            path: path.clone(),
            msg: format!("not an agent file: {e}"),
        })?;
        let mut agent = Dreamer::new(gpu, &file.config, file.settings)?;
        agent.load_weights(dir)?;
        agent.behaviour.updates = file.behaviour_updates;
        let ep_dir = dir.join("episodes");
        if ep_dir.is_dir() {
            // Episode files past the counters (a folder written before saves were atomic)
            // are not the checkpoint's.
            let mut indexed = Vec::new();
            for entry in std::fs::read_dir(&ep_dir)? {
                let entry = entry?;
                match episode_index(&entry.file_name()) {
                    Some(i) if i < file.counters.episodes => indexed.push((i, entry.path())),
                    _ => {}
                }
            }
            indexed.sort();
            for (_, path) in indexed {
                let ep = crate::data::load_npz(&path)
                    .map_err(|e| Error::Invalid(format!("cannot load the replay: {e}")))?;
                agent.replay.push(ep)?;
            }
        }
        agent.counters = file.counters;
        Ok(agent)
    }
}

/// World model and actor from a checkpoint's weights alone: acts, does not learn.
pub struct CheckpointPolicy {
    pub model: WorldModel,
    pub actor: Actor,
    gpu: Gpu,
    state: Option<AgentState>,
    episodes: u64,
}

impl CheckpointPolicy {
    /// Read `checkpoint.safetensors` and `actor.safetensors` from `dir` (the configuration from
    /// `agent.json`, or from `optimizer.safetensors`'s metadata for a `rssm dreamer` folder).
    pub fn load(gpu: &Gpu, dir: &Path) -> Result<CheckpointPolicy> {
        let cfg = checkpoint_config(dir)?;
        let model = WorldModel::new(gpu, &cfg)?;
        let ckpt = Checkpoint::new(dir);
        let wpath = ckpt.weights();
        model
            .params
            .load_host(&crate::nn::load_file(&wpath)?)
            .map_err(|e| Error::File {
                path: wpath.clone(),
                msg: e.to_string(),
            })?;
        let apath = ckpt.part_weights("actor");
        let behaviour = Behaviour::new(gpu, &cfg, BehaviourConfig::default())?;
        let actor = behaviour.actor;
        let weights = crate::nn::load_file(&apath)?;
        actor
            .params()
            .check_host(&weights)
            .map_err(|e| Error::File {
                path: apath.clone(),
                msg: e.to_string(),
            })?;
        for name in actor.params().names() {
            actor.opt.flat.set(name, &weights[name].data)?;
        }
        Ok(CheckpointPolicy {
            model,
            actor,
            gpu: gpu.clone(),
            state: None,
            episodes: 0,
        })
    }

    /// The world model's configuration.
    pub fn config(&self) -> &Config {
        &self.model.cfg
    }

    /// Forget the filter state: the next `act` starts an episode.
    pub fn reset_state(&mut self) {
        self.state = None;
    }

    /// The actor's action for `frame`, as [`Dreamer::act`].
    pub fn act(&mut self, frame: &[u8], explore: bool, expl_noise: f32) -> Result<Vec<f32>> {
        check_frame(frame)?;
        if self.state.is_none() {
            self.state = Some(AgentState::new(&self.gpu, &self.model)?);
            self.episodes += 1;
        }
        let seed = self
            .model
            .cfg
            .seed
            .wrapping_mul(7919)
            .wrapping_add(self.episodes);
        act(
            &self.model,
            &self.actor,
            self.state.as_mut().expect("set above"),
            frame,
            explore,
            expl_noise,
            seed,
        )
    }
}

/// Where an imagined rollout's actions come from.
pub enum DreamActions<'a> {
    /// Given actions `[B, steps, A]`.
    Given(&'a Tensor),
    /// The actor's mode on the current state, step by step.
    Actor(&'a Actor),
}

/// Decode a rollout of the prior imagined from the start states `h [B, deter]`, `s [B, stoch]`
/// (e.g. the last posterior state of an observed sequence): at each step an action (given, or
/// the actor's mode on the current state), then the prior's mean. Returns the decoded mean
/// images `[B, steps, 3, 64, 64]` in [-0.5, 0.5] (model units), recorded and run as one submit.
pub fn dream(
    model: &WorldModel,
    h: &Tensor,
    s: &Tensor,
    actions: DreamActions,
    steps: usize,
) -> Result<Tensor> {
    use crate::ops::gaussian::{gaussian_head, Noise};
    use crate::ops::{self};
    use crate::tensor::Tape;
    let cfg = &model.cfg;
    let b = h.shape().first().copied().unwrap_or(0);
    if steps == 0 || b == 0 || h.shape() != [b, cfg.deter] || s.shape() != [b, cfg.stoch] {
        return crate::error::shape_err(
            "dream",
            format!(
                "needs steps >= 1, h [B, {}] and s [B, {}] with B >= 1; got steps {steps}, h {:?}, s {:?}",
                cfg.deter,
                cfg.stoch,
                h.shape(),
                s.shape()
            ),
        );
    }
    match &actions {
        DreamActions::Given(a) if a.shape() != [b, steps, cfg.action_dim] => {
            return crate::error::shape_err(
                "dream",
                format!(
                    "actions must be [{b}, {steps}, {}], got {:?}",
                    cfg.action_dim,
                    a.shape()
                ),
            );
        }
        DreamActions::Actor(actor) => {
            let inp = actor.params().tensors().first().map(|w| w.shape()[1]);
            if actor.action_dim != cfg.action_dim || inp != Some(cfg.feat()) {
                return Err(Error::Invalid(format!(
                    "the actor (features {inp:?}, {} actions) does not fit the world model (features {}, {} actions)",
                    actor.action_dim,
                    cfg.feat(),
                    cfg.action_dim
                )));
            }
        }
        _ => {}
    }
    let gpu = model.gpu().clone();
    // The starts on the model's handle: its kernel choices run the dream.
    let (h, s) = (&h.on(&gpu), &s.on(&gpu));
    let t = Tape::no_grad(&gpu);
    let p = model.params.bind_frozen(&t);
    let fused = model.imagine_path(&gpu, b, steps, false).0 == crate::model::RssmPath::Fused
        && match &actions {
            DreamActions::Actor(actor) => actor.net.layers.len() == 4,
            DreamActions::Given(_) => true,
        };
    if fused {
        // The whole dream in 3-4 dispatches, its features batch-major, then one decode.
        use crate::ops::imagine::{imagine_forward, Actions};
        let w = model.rssm_vars(&p).map(|v| t.value(v));
        let acts = match &actions {
            DreamActions::Actor(actor) => Actions::Actor(actor.fused_weights(), None),
            DreamActions::Given(a) => Actions::Given(a),
        };
        let out = imagine_forward(
            h,
            s,
            &w.as_ref(),
            cfg.embed(),
            acts,
            None,
            steps,
            cfg.min_std,
            false,
            true,
        )?;
        let feat = t.constant(&out.feats.reshape(&[b * steps, cfg.feat()])?);
        let decoded = model.decode(&t, &p, feat)?;
        return t.value(decoded).reshape(&[b, steps, 3, 64, 64]);
    }
    let (ap, given) = match &actions {
        DreamActions::Actor(actor) => (Some(actor.bind_frozen(&t)), None),
        DreamActions::Given(a) => (None, Some(t.constant(a))),
    };
    let zeros = Tensor::zeros(&gpu, &[b, cfg.stoch])?;
    let (mut hv, mut sv) = (t.constant(h), t.constant(s));
    let mut feats = Vec::with_capacity(steps);
    for step in 0..steps {
        let a = match (&actions, &ap, given) {
            (DreamActions::Actor(actor), Some(ap), _) => {
                let feat = ops::concat_last(&t, &[sv, hv])?;
                crate::agent::action_head(&t, actor.forward(&t, ap, feat)?, None)?.action
            }
            (_, _, Some(g)) => ops::slice_time(&t, g, step)?,
            _ => return Err(Error::Invalid("dream: no source of actions".into())),
        };
        let (h_new, prior) = model.img_step(&t, &p, sv, a, hv)?;
        sv = gaussian_head(&t, prior, cfg.min_std, Noise::Given(zeros.clone()))?.mean;
        hv = h_new;
        feats.push(ops::concat_last(&t, &[sv, hv])?);
    }
    let feat = ops::stack_time(&t, &feats)?;
    let feat = ops::reshape(&t, feat, &[b * steps, cfg.feat()])?;
    let decoded = model.decode(&t, &p, feat)?;
    t.value(decoded).reshape(&[b, steps, 3, 64, 64])
}
