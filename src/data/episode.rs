//! One recorded trajectory, stored the way Dreamer stores it.
//!
//! Time-step conventions (the spec's, and DreamerV1's `.npz` files'): an episode of `T` steps
//! holds `T` observations. At step `t`:
//! - `image[t]` is observation `t`, a 64x64 RGB frame, `u8`, HWC order;
//! - `action[t]` is the action that LED to `image[t]` (all zeros at `t = 0`, when no action has
//!   been taken yet);
//! - `reward[t]` is the reward received on arriving at `image[t]` (0 at `t = 0`);
//! - `discount[t]` is 0 if `image[t]` is a terminal state and 1 otherwise. An episode cut by a
//!   time limit is *not* terminal: its last discount stays 1, so value bootstrapping continues.
//!
//! So an environment run for `N` actions yields an episode of `T = N + 1` steps.

use super::{DataError, Result};

/// Side of a square observation frame, in pixels.
pub const IMAGE_SIZE: usize = 64;
/// Colour channels of an observation frame (RGB).
pub const IMAGE_CHANNELS: usize = 3;
/// Bytes in one frame: `64 * 64 * 3`, HWC order.
pub const FRAME_LEN: usize = IMAGE_SIZE * IMAGE_SIZE * IMAGE_CHANNELS;

/// A validated episode: arrays of consistent lengths, finite actions and rewards, discounts in
/// `[0, 1]`, at least one step and one action component.
///
/// The fields are private so that these invariants always hold; build one with
/// [`Episode::new`] (from whole arrays) or [`EpisodeBuilder`] (step by step).
#[derive(Clone, Debug, PartialEq)]
pub struct Episode {
    image: Vec<u8>,
    action: Vec<f32>,
    reward: Vec<f32>,
    discount: Vec<f32>,
    action_dim: usize,
}

impl Episode {
    /// Builds an episode from whole arrays: `image [T, 64, 64, 3]`, `action [T, A]`,
    /// `reward [T]`, `discount [T]` (all flattened, row-major), with `A = action_dim`.
    ///
    /// Checks every invariant and says which one fails. The first action is not required to be
    /// zero (files from other tools may differ) but the spec's producers always write zero.
    pub fn new(
        image: Vec<u8>,
        action: Vec<f32>,
        reward: Vec<f32>,
        discount: Vec<f32>,
        action_dim: usize,
    ) -> Result<Self> {
        let bad = |reason: String| Err(DataError::invalid("episode", reason));
        if action_dim == 0 {
            return bad("action_dim is 0; an episode needs at least one action component".into());
        }
        let t = reward.len();
        if t == 0 {
            return bad("it has no steps (reward is empty)".into());
        }
        if image.len() != t * FRAME_LEN {
            return bad(format!(
                "image has {} bytes, expected T * 64 * 64 * 3 = {} for T = {t} (from reward)",
                image.len(),
                t * FRAME_LEN
            ));
        }
        if action.len() != t * action_dim {
            return bad(format!(
                "action has {} values, expected T * A = {t} * {action_dim} = {}",
                action.len(),
                t * action_dim
            ));
        }
        if discount.len() != t {
            return bad(format!(
                "discount has {} values, expected T = {t} (from reward)",
                discount.len()
            ));
        }
        if let Some(i) = action.iter().position(|v| !v.is_finite()) {
            return bad(format!(
                "action[{}, {}] is {} (not finite)",
                i / action_dim,
                i % action_dim,
                action[i]
            ));
        }
        if let Some(i) = reward.iter().position(|v| !v.is_finite()) {
            return bad(format!("reward[{i}] is {} (not finite)", reward[i]));
        }
        if let Some(i) = discount.iter().position(|v| !(0.0..=1.0).contains(v)) {
            return bad(format!(
                "discount[{i}] is {}, expected a value in [0, 1]",
                discount[i]
            ));
        }
        Ok(Episode {
            image,
            action,
            reward,
            discount,
            action_dim,
        })
    }

    /// Number of steps `T` (observations), always at least 1.
    pub fn len(&self) -> usize {
        self.reward.len()
    }

    /// Always `false`: an episode holds at least its first observation.
    pub fn is_empty(&self) -> bool {
        self.reward.is_empty()
    }

    /// Number of actions taken, `T - 1`.
    pub fn num_transitions(&self) -> usize {
        self.len() - 1
    }

    /// Action dimension `A`.
    pub fn action_dim(&self) -> usize {
        self.action_dim
    }

    /// All frames, `[T, 64, 64, 3]` `u8`, HWC.
    pub fn image(&self) -> &[u8] {
        &self.image
    }

    /// All actions, `[T, A]`.
    pub fn action(&self) -> &[f32] {
        &self.action
    }

    /// All rewards, `[T]`.
    pub fn reward(&self) -> &[f32] {
        &self.reward
    }

    /// All discounts, `[T]` (the spec's `cont`).
    pub fn discount(&self) -> &[f32] {
        &self.discount
    }

    /// Frame `t`, `[64, 64, 3]`.
    ///
    /// # Panics
    /// If `t >= self.len()`, like slice indexing.
    pub fn frame(&self, t: usize) -> &[u8] {
        &self.image[t * FRAME_LEN..(t + 1) * FRAME_LEN]
    }

    /// Action `t` (the one that led to frame `t`), `[A]`.
    ///
    /// # Panics
    /// If `t >= self.len()`, like slice indexing.
    pub fn action_at(&self, t: usize) -> &[f32] {
        &self.action[t * self.action_dim..(t + 1) * self.action_dim]
    }

    /// Sum of all rewards (the episode return), accumulated in `f64`.
    pub fn total_reward(&self) -> f64 {
        self.reward.iter().map(|&r| f64::from(r)).sum()
    }

    /// Whether the episode ended in a terminal state (last discount is 0), as opposed to a
    /// time limit or an unfinished recording.
    pub fn is_terminal(&self) -> bool {
        self.discount.last() == Some(&0.0)
    }

    /// Takes the arrays back out: `(image, action, reward, discount, action_dim)`.
    pub fn into_parts(self) -> (Vec<u8>, Vec<f32>, Vec<f32>, Vec<f32>, usize) {
        (
            self.image,
            self.action,
            self.reward,
            self.discount,
            self.action_dim,
        )
    }
}

/// Builds an [`Episode`] one transition at a time, applying the time-step conventions so the
/// caller cannot misalign actions and observations.
#[derive(Clone, Debug)]
pub struct EpisodeBuilder {
    image: Vec<u8>,
    action: Vec<f32>,
    reward: Vec<f32>,
    discount: Vec<f32>,
    action_dim: usize,
    terminated: bool,
}

impl EpisodeBuilder {
    /// Starts an episode at its first observation: step 0 gets a zero action, reward 0 and
    /// discount 1.
    pub fn new(first_obs: &[u8], action_dim: usize) -> Result<Self> {
        if action_dim == 0 {
            return Err(DataError::invalid(
                "episode",
                "action_dim is 0; an episode needs at least one action component",
            ));
        }
        check_frame(first_obs)?;
        Ok(EpisodeBuilder {
            image: first_obs.to_vec(),
            action: vec![0.0; action_dim],
            reward: vec![0.0],
            discount: vec![1.0],
            action_dim,
            terminated: false,
        })
    }

    /// Records one transition: `action` was taken, `reward` received and `obs` reached;
    /// `terminal` says whether `obs` is a terminal state (not a time limit). No step may follow
    /// a terminal one.
    pub fn push(&mut self, action: &[f32], reward: f32, obs: &[u8], terminal: bool) -> Result<()> {
        if self.terminated {
            return Err(DataError::invalid(
                "episode",
                "cannot add a step after a terminal step",
            ));
        }
        if action.len() != self.action_dim {
            return Err(DataError::invalid(
                "episode",
                format!(
                    "action has {} components, expected {}",
                    action.len(),
                    self.action_dim
                ),
            ));
        }
        if let Some(i) = action.iter().position(|v| !v.is_finite()) {
            return Err(DataError::invalid(
                "episode",
                format!("action[{i}] is {} (not finite)", action[i]),
            ));
        }
        if !reward.is_finite() {
            return Err(DataError::invalid(
                "episode",
                format!("reward is {reward} (not finite)"),
            ));
        }
        check_frame(obs)?;
        self.image.extend_from_slice(obs);
        self.action.extend_from_slice(action);
        self.reward.push(reward);
        self.discount.push(if terminal { 0.0 } else { 1.0 });
        self.terminated = terminal;
        Ok(())
    }

    /// Steps recorded so far, including the first observation.
    pub fn len(&self) -> usize {
        self.reward.len()
    }

    /// Always `false`: a builder holds at least the first observation.
    pub fn is_empty(&self) -> bool {
        self.reward.is_empty()
    }

    /// Finishes the episode.
    pub fn finish(self) -> Episode {
        Episode {
            image: self.image,
            action: self.action,
            reward: self.reward,
            discount: self.discount,
            action_dim: self.action_dim,
        }
    }
}

fn check_frame(obs: &[u8]) -> Result<()> {
    if obs.len() != FRAME_LEN {
        return Err(DataError::invalid(
            "episode",
            format!(
                "observation has {} bytes, expected 64 * 64 * 3 = {FRAME_LEN}",
                obs.len()
            ),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builder_applies_conventions() {
        let f0 = vec![1u8; FRAME_LEN];
        let f1 = vec![2u8; FRAME_LEN];
        let mut b = EpisodeBuilder::new(&f0, 2).unwrap();
        b.push(&[0.5, -0.5], 1.5, &f1, true).unwrap();
        assert!(b.push(&[0.0, 0.0], 0.0, &f1, false).is_err());
        let ep = b.finish();
        assert_eq!(ep.len(), 2);
        assert_eq!(ep.action(), &[0.0, 0.0, 0.5, -0.5]);
        assert_eq!(ep.reward(), &[0.0, 1.5]);
        assert_eq!(ep.discount(), &[1.0, 0.0]);
        assert!(ep.is_terminal());
        assert_eq!(ep.frame(1)[0], 2);
    }

    #[test]
    fn new_rejects_inconsistent_arrays() {
        let err = Episode::new(
            vec![0; FRAME_LEN * 2],
            vec![0.0; 2],
            vec![0.0; 2],
            vec![1.0; 2],
            2,
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("action has 2 values"), "{err}");
        let err = Episode::new(vec![0; FRAME_LEN], vec![0.0], vec![f32::NAN], vec![1.0], 1)
            .unwrap_err()
            .to_string();
        assert!(err.contains("reward[0] is NaN"), "{err}");
        let err = Episode::new(vec![0; FRAME_LEN], vec![0.0], vec![0.0], vec![2.0], 1)
            .unwrap_err()
            .to_string();
        assert!(err.contains("discount[0] is 2"), "{err}");
    }
}
