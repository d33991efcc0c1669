//! The agent: the actor and critic of the specification, latent imagination with the world
//! model's prior, lambda-returns, and Dreamer's behaviour update (actor and critic losses,
//! their backward passes and Adam steps in one submit).
//!
//! - [`actor`]: [`Actor`], [`Critic`] (own parameters with the spec's names, own flat buffer
//!   and clipped Adam each), the action distribution [`action_head`].
//! - [`imagine`](mod@imagine): [`imagine()`] rolls the frozen world model forward with the
//!   actor's actions and predicts reward and continuation.
//! - [`returns`]: [`lambda_return`] and [`discount_weights`], with plain-Rust references.
//! - [`behaviour`]: [`Behaviour`] with its [`BehaviourConfig`], the two objectives and
//!   [`Behaviour::update`].
//! - [`flops`]: the matmul and conv FLOPs of a world-model update, an observe-only forward, a
//!   behaviour update and an imagination, counted from a configuration's shapes.
//! - [`dreamer`]: [`Dreamer`], the whole agent (replay, world-model trainer, behaviour,
//!   acting) behind `act` / `observe` / `update` / `save` / `load`, and [`CheckpointPolicy`], acting
//!   from a checkpoint's weights alone.
//!
//! Everything is recorded onto tapes and only read back at the end of an update.

pub mod acting;
pub mod actor;
pub mod behaviour;
pub mod dreamer;
pub mod flops;
pub mod imagine;
pub mod returns;

pub use acting::{act, AgentState};
pub use actor::{action_head, init_std_raw, ActionOut, Actor, Critic, Optimised};
pub use behaviour::{
    behaviour_update, ActorObjective, Behaviour, BehaviourConfig, BehaviourMetrics,
    CriticObjective, PendingUpdate, Starts,
};
pub use dreamer::{
    checkpoint_config, dream, CheckpointPolicy, DreamActions, Dreamer, DreamerCounters,
    DreamerSettings, UpdateMetrics,
};
pub use imagine::{
    imagine, imagine_with_actor_inputs, noise_offsets, ImagineNoise, Imagined, Policy,
};
pub use returns::{discount_weights, lambda_return};
