//! Replay buffer of whole episodes and sampling of fixed-length training windows.
//!
//! Sampling draws `B` windows of `T` consecutive steps. Each window lies inside one episode
//! (sequences never cross episode boundaries, as the spec requires) and every valid window of
//! every episode is equally likely, so long episodes contribute in proportion to their length.
//! With equal-length episodes this is the same as DreamerV1's "pick an episode, then an offset".
//!
//! The returned [`Batch`] is already in the layout the model uploads: images NCHW `f32` scaled
//! to `u8 / 255 - 0.5`, so the GPU side does no conversion.

use std::collections::VecDeque;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use super::episode::{Episode, FRAME_LEN, IMAGE_CHANNELS, IMAGE_SIZE};
use super::{DataError, Result};

/// Pixels per channel plane, `64 * 64`.
const PLANE: usize = IMAGE_SIZE * IMAGE_SIZE;

/// A training batch of `B` windows of `T` steps, row-major, ready to upload.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Batch {
    /// `[B, T, 3, 64, 64]`, pixel values `u8 / 255 - 0.5`.
    pub obs: Vec<f32>,
    /// `[B, T, A]`, the action that led to each observation.
    pub action: Vec<f32>,
    /// `[B, T]`, reward received on arriving at each observation.
    pub reward: Vec<f32>,
    /// `[B, T]`, 0 where the observation is terminal, else 1 (the episode's discount).
    pub cont: Vec<f32>,
    /// `B`.
    pub batch_size: usize,
    /// `T`.
    pub seq_len: usize,
    /// `A`.
    pub action_dim: usize,
}

/// Converts one HWC `u8` frame (`[64, 64, 3]`) into CHW `f32` (`[3, 64, 64]`) scaled to
/// `u8 / 255 - 0.5`, the model's input convention.
///
/// Returns an error if `src` is not 12288 bytes or `dst` not 12288 values.
pub fn frame_to_chw(src: &[u8], dst: &mut [f32]) -> Result<()> {
    if src.len() != FRAME_LEN || dst.len() != FRAME_LEN {
        return Err(DataError::invalid(
            "argument",
            format!(
                "frame_to_chw needs a {FRAME_LEN}-byte frame and a {FRAME_LEN}-value output, got {} and {}",
                src.len(),
                dst.len()
            ),
        ));
    }
    frame_to_chw_unchecked(src, dst, &pixel_lut());
    Ok(())
}

/// `lut[v] = v / 255 - 0.5`, computed once per batch so the inner loop is a table lookup.
fn pixel_lut() -> [f32; 256] {
    let mut lut = [0.0f32; 256];
    for (v, out) in lut.iter_mut().enumerate() {
        *out = v as f32 / 255.0 - 0.5;
    }
    lut
}

fn frame_to_chw_unchecked(src: &[u8], dst: &mut [f32], lut: &[f32; 256]) {
    let (r, rest) = dst.split_at_mut(PLANE);
    let (g, b) = rest.split_at_mut(PLANE);
    for (i, px) in src.chunks_exact(IMAGE_CHANNELS).enumerate() {
        r[i] = lut[px[0] as usize];
        g[i] = lut[px[1] as usize];
        b[i] = lut[px[2] as usize];
    }
}

/// A FIFO store of whole episodes with a capacity counted in steps.
///
/// When adding an episode pushes the total over capacity, the oldest episodes are dropped until
/// it fits again; the newest episode is always kept, even if it alone exceeds the capacity.
#[derive(Clone, Debug)]
pub struct ReplayBuffer {
    episodes: VecDeque<Episode>,
    capacity_steps: usize,
    total_steps: usize,
    action_dim: Option<usize>,
}

impl ReplayBuffer {
    /// An empty buffer that holds at most `capacity_steps` steps (over all episodes).
    /// Use `usize::MAX` for no limit.
    pub fn new(capacity_steps: usize) -> Result<Self> {
        if capacity_steps == 0 {
            return Err(DataError::invalid(
                "replay buffer",
                "capacity must be at least 1 step",
            ));
        }
        Ok(ReplayBuffer {
            episodes: VecDeque::new(),
            capacity_steps,
            total_steps: 0,
            action_dim: None,
        })
    }

    /// Adds an episode, dropping the oldest ones if the capacity is exceeded.
    ///
    /// All episodes must share one action dimension; a mismatch is an error and leaves the
    /// buffer unchanged.
    pub fn push(&mut self, episode: Episode) -> Result<()> {
        if let Some(a) = self.action_dim {
            if a != episode.action_dim() {
                return Err(DataError::invalid(
                    "replay buffer",
                    format!(
                        "episode has action_dim {}, the buffer holds action_dim {a}",
                        episode.action_dim()
                    ),
                ));
            }
        }
        self.action_dim = Some(episode.action_dim());
        self.total_steps += episode.len();
        self.episodes.push_back(episode);
        while self.total_steps > self.capacity_steps && self.episodes.len() > 1 {
            if let Some(old) = self.episodes.pop_front() {
                self.total_steps -= old.len();
            }
        }
        Ok(())
    }

    /// Adds several episodes in order (see [`ReplayBuffer::push`]).
    pub fn extend(&mut self, episodes: impl IntoIterator<Item = Episode>) -> Result<()> {
        episodes.into_iter().try_for_each(|ep| self.push(ep))
    }

    /// Number of episodes held.
    pub fn len(&self) -> usize {
        self.episodes.len()
    }

    /// Whether the buffer holds no episode.
    pub fn is_empty(&self) -> bool {
        self.episodes.is_empty()
    }

    /// Steps held over all episodes.
    pub fn total_steps(&self) -> usize {
        self.total_steps
    }

    /// Capacity in steps.
    pub fn capacity_steps(&self) -> usize {
        self.capacity_steps
    }

    /// Action dimension of the held episodes (`None` while empty and never filled).
    pub fn action_dim(&self) -> Option<usize> {
        self.action_dim
    }

    /// The episodes, oldest first.
    pub fn episodes(&self) -> impl ExactSizeIterator<Item = &Episode> {
        self.episodes.iter()
    }

    /// Number of distinct windows of `seq_len` steps that sampling can draw from.
    pub fn num_windows(&self, seq_len: usize) -> usize {
        if seq_len == 0 {
            return 0;
        }
        self.episodes
            .iter()
            .filter(|e| e.len() >= seq_len)
            .map(|e| e.len() - seq_len + 1)
            .sum()
    }

    /// Samples `batch_size` windows of `seq_len` steps, uniformly over all valid windows.
    ///
    /// Errors if either size is 0 or no episode has at least `seq_len` steps.
    pub fn sample<R: Rng + ?Sized>(
        &self,
        batch_size: usize,
        seq_len: usize,
        rng: &mut R,
    ) -> Result<Batch> {
        let mut batch = Batch::default();
        self.sample_into(&mut batch, batch_size, seq_len, rng)?;
        Ok(batch)
    }

    /// [`ReplayBuffer::sample`] with a fresh `StdRng` seeded by `seed`: the same buffer contents
    /// and seed give the same batch.
    pub fn sample_with_seed(&self, batch_size: usize, seq_len: usize, seed: u64) -> Result<Batch> {
        self.sample(batch_size, seq_len, &mut StdRng::seed_from_u64(seed))
    }

    /// Like [`ReplayBuffer::sample`] but fills `batch` in place, reusing its allocations (a
    /// default `B = 50, T = 50` batch holds 123 MB of images; reusing it avoids reallocating
    /// that every training step). On error `batch` is left unchanged.
    pub fn sample_into<R: Rng + ?Sized>(
        &self,
        batch: &mut Batch,
        batch_size: usize,
        seq_len: usize,
        rng: &mut R,
    ) -> Result<()> {
        if batch_size == 0 || seq_len == 0 {
            return Err(DataError::Sample(format!(
                "batch size and sequence length must be at least 1 (got B = {batch_size}, T = {seq_len})"
            )));
        }
        // Cumulative window counts over eligible episodes, for uniform sampling over windows.
        let mut eligible: Vec<(usize, usize)> = Vec::new(); // (episode index, cumulative windows)
        let mut total = 0usize;
        for (i, ep) in self.episodes.iter().enumerate() {
            if ep.len() >= seq_len {
                total += ep.len() - seq_len + 1;
                eligible.push((i, total));
            }
        }
        if total == 0 {
            let longest = self.episodes.iter().map(Episode::len).max().unwrap_or(0);
            return Err(DataError::Sample(format!(
                "no episode has at least T = {seq_len} steps (the buffer holds {} episode(s), longest {longest} steps)",
                self.episodes.len()
            )));
        }
        let a = self.action_dim.unwrap_or(0);
        let steps = batch_size * seq_len;
        batch.obs.resize(steps * FRAME_LEN, 0.0);
        batch.action.resize(steps * a, 0.0);
        batch.reward.resize(steps, 0.0);
        batch.cont.resize(steps, 0.0);
        batch.batch_size = batch_size;
        batch.seq_len = seq_len;
        batch.action_dim = a;
        let lut = pixel_lut();
        for b in 0..batch_size {
            let u = rng.random_range(0..total);
            let k = eligible.partition_point(|&(_, cum)| cum <= u);
            let (ep_index, cum) = eligible[k];
            let ep = &self.episodes[ep_index];
            let windows = ep.len() - seq_len + 1;
            let start = u - (cum - windows);
            let row = b * seq_len;
            for t in 0..seq_len {
                let dst = &mut batch.obs[(row + t) * FRAME_LEN..(row + t + 1) * FRAME_LEN];
                frame_to_chw_unchecked(ep.frame(start + t), dst, &lut);
            }
            batch.action[row * a..(row + seq_len) * a]
                .copy_from_slice(&ep.action()[start * a..(start + seq_len) * a]);
            batch.reward[row..row + seq_len].copy_from_slice(&ep.reward()[start..start + seq_len]);
            batch.cont[row..row + seq_len].copy_from_slice(&ep.discount()[start..start + seq_len]);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ep(len: usize, tag: u8) -> Episode {
        let image = (0..len)
            .flat_map(|t| vec![tag.wrapping_add(t as u8); FRAME_LEN])
            .collect();
        Episode::new(
            image,
            vec![0.0; len],
            (0..len).map(|t| t as f32).collect(),
            vec![1.0; len],
            1,
        )
        .unwrap()
    }

    #[test]
    fn capacity_drops_oldest_but_keeps_newest() {
        let mut rb = ReplayBuffer::new(10).unwrap();
        rb.push(ep(4, 0)).unwrap();
        rb.push(ep(4, 1)).unwrap();
        assert_eq!(rb.total_steps(), 8);
        rb.push(ep(4, 2)).unwrap();
        assert_eq!((rb.len(), rb.total_steps()), (2, 8));
        rb.push(ep(20, 3)).unwrap();
        assert_eq!((rb.len(), rb.total_steps()), (1, 20));
    }

    #[test]
    fn windows_cover_every_start_uniformly() {
        let mut rb = ReplayBuffer::new(usize::MAX).unwrap();
        rb.push(ep(5, 0)).unwrap(); // 3 windows of 3
        rb.push(ep(3, 100)).unwrap(); // 1 window
        rb.push(ep(2, 200)).unwrap(); // none
        assert_eq!(rb.num_windows(3), 4);
        let mut counts = std::collections::HashMap::new();
        let mut rng = StdRng::seed_from_u64(1);
        for _ in 0..4000 {
            let b = rb.sample(1, 3, &mut rng).unwrap();
            *counts.entry(b.obs[0].to_bits()).or_insert(0usize) += 1;
        }
        assert_eq!(counts.len(), 4);
        for &c in counts.values() {
            assert!((800..1200).contains(&c), "{counts:?}");
        }
    }
}
