//! Floating-point operations of the benchmarked workloads, counted from the shapes: the
//! matmuls and convolutions only (2 FLOPs per multiply-add), forward and backward. Elementwise
//! work, reductions and Adam are left out (they are a few percent of the total and
//! memory-bound), so `FLOPs / time` is a lower bound on the arithmetic rate.
//!
//! Backward convention: a layer on the gradient's path costs its forward again for the input
//! gradient, and a layer whose weights train costs it again for the weight gradient. Inputs
//! that are data (the images, the critic's detached features) get no input gradient; frozen
//! layers (the world model and the critic inside the behaviour update) get no weight gradient.
//! The engine and PyTorch skip the same work, so the count is the same for both, except in the
//! behaviour update, where the engine does not evaluate the critic twice (see there).

use crate::model::Config;

/// FLOPs of one workload, split into the forward and the backward pass.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Flops {
    pub forward: f64,
    pub backward: f64,
}

impl Flops {
    /// Forward + backward.
    pub fn total(&self) -> f64 {
        self.forward + self.backward
    }
}

impl std::ops::AddAssign for Flops {
    fn add_assign(&mut self, o: Flops) {
        self.forward += o.forward;
        self.backward += o.backward;
    }
}

/// Whether a layer's input and weight gradients are computed.
#[derive(Clone, Copy)]
struct Grad {
    input: bool,
    weight: bool,
}

const TRAIN: Grad = Grad {
    input: true,
    weight: true,
};
/// Trained, but its input is data.
const TRAIN_FROM_DATA: Grad = Grad {
    input: false,
    weight: true,
};
/// Frozen, on the gradient's path.
const FROZEN: Grad = Grad {
    input: true,
    weight: false,
};
const NO_GRAD: Grad = Grad {
    input: false,
    weight: false,
};

/// One layer of `macs` multiply-adds.
fn layer(macs: f64, g: Grad) -> Flops {
    let f = 2.0 * macs;
    Flops {
        forward: f,
        backward: f * (g.input as u8 + g.weight as u8) as f64,
    }
}

/// `rows x inp -> rows x out`.
fn linear(rows: usize, inp: usize, out: usize, g: Grad) -> Flops {
    layer(rows as f64 * inp as f64 * out as f64, g)
}

/// An MLP head: `layers` hidden layers of `units`, then `out`.
fn mlp(
    rows: usize,
    inp: usize,
    units: usize,
    layers: usize,
    out: usize,
    first: Grad,
    rest: Grad,
) -> Flops {
    let mut f = linear(rows, inp, units, first);
    for _ in 1..layers {
        f += linear(rows, units, units, rest);
    }
    f += linear(rows, units, out, rest);
    f
}

/// FLOPs of `m x k` times `k x n`.
pub fn matmul(m: usize, n: usize, k: usize) -> f64 {
    2.0 * m as f64 * n as f64 * k as f64
}

/// Multiply-adds of a conv (or transposed conv) between a `small` and a `large` square image:
/// every kernel tap meets every pixel of the smaller image once.
fn conv_macs(n: usize, small: usize, ci: usize, co: usize, k: usize) -> f64 {
    n as f64 * (small * small) as f64 * ci as f64 * co as f64 * (k * k) as f64
}

/// Encoder convs over `n` images: 64 -> 31 -> 14 -> 6 -> 2, channels 3 -> d -> 2d -> 4d -> 8d.
fn encoder(cfg: &Config, n: usize, grad: bool) -> Flops {
    let d = cfg.depth;
    let ch = [3, d, 2 * d, 4 * d, 8 * d];
    let sizes = [31, 14, 6, 2];
    let mut f = Flops::default();
    for i in 0..4 {
        let g = match (grad, i) {
            (false, _) => NO_GRAD,
            (true, 0) => TRAIN_FROM_DATA,
            _ => TRAIN,
        };
        f += layer(conv_macs(n, sizes[i], ch[i], ch[i + 1], 4), g);
    }
    f
}

/// Decoder: linear feat -> embed, then transposed convs 1 -> 5 -> 13 -> 30 -> 64 with
/// kernels 5, 5, 6, 6 and channels embed -> 4d -> 2d -> d -> 3.
fn decoder(cfg: &Config, n: usize) -> Flops {
    let d = cfg.depth;
    let ch = [cfg.embed(), 4 * d, 2 * d, d, 3];
    let k = [5, 5, 6, 6];
    let inputs = [1, 5, 13, 30];
    let mut f = linear(n, cfg.feat(), cfg.embed(), TRAIN);
    for i in 0..4 {
        f += layer(conv_macs(n, inputs[i], ch[i], ch[i + 1], k[i]), TRAIN);
    }
    f
}

/// The prior step on `rows` states: img_in (stoch + action -> hidden), the GRU's two matmuls,
/// img_out and img_stats.
fn img_step(cfg: &Config, rows: usize, g: Grad) -> Flops {
    let (s, a, h, d) = (cfg.stoch, cfg.action_dim, cfg.hidden, cfg.deter);
    let mut f = linear(rows, s + a, h, g);
    f += linear(rows, h, 3 * d, g);
    f += linear(rows, d, 3 * d, g);
    f += linear(rows, d, h, g);
    f += linear(rows, h, 2 * s, g);
    f
}

/// The posterior step: obs_out (deter + embed -> hidden) and obs_stats.
fn obs_step(cfg: &Config, rows: usize, g: Grad) -> Flops {
    let mut f = linear(rows, cfg.deter + cfg.embed(), cfg.hidden, g);
    f += linear(rows, cfg.hidden, 2 * cfg.stoch, g);
    f
}

/// One world-model update on a `cfg.batch x cfg.seq_len` batch: encoder, `seq_len` RSSM steps
/// (prior and posterior) on `batch` rows, decoder, reward and continue heads, all trained.
pub fn world_model_update(cfg: &Config) -> Flops {
    let n = cfg.batch * cfg.seq_len;
    let mut f = encoder(cfg, n, true);
    f += img_step(cfg, n, TRAIN);
    f += obs_step(cfg, n, TRAIN);
    f += decoder(cfg, n);
    f += mlp(n, cfg.feat(), cfg.units, 2, 1, TRAIN, TRAIN);
    f += mlp(n, cfg.feat(), cfg.units, 3, 1, TRAIN, TRAIN);
    f
}

/// The observe-only forward: encoder and the RSSM over the batch, no heads, no backward.
pub fn observe_forward(cfg: &Config) -> Flops {
    let n = cfg.batch * cfg.seq_len;
    let mut f = encoder(cfg, n, false);
    f += img_step(cfg, n, NO_GRAD);
    f += obs_step(cfg, n, NO_GRAD);
    f
}

/// The actor on `rows` features: 4 hidden layers of `units`, then `2 * action_dim`. Its input
/// is always data to it (a stop-gradient in imagination), so its first layer never computes an
/// input gradient.
fn actor(cfg: &Config, rows: usize, g: Grad) -> Flops {
    let first = Grad {
        input: false,
        weight: g.weight,
    };
    mlp(rows, cfg.feat(), cfg.units, 4, 2 * cfg.action_dim, first, g)
}

/// A long imagination, forward only ([`crate::agent::imagine`] on a no-grad tape): `horizon`
/// steps of the actor and the prior from `starts` states, then the reward and continue heads
/// on the `(horizon + 1) starts` imagined states.
pub fn imagination(cfg: &Config, starts: usize, horizon: usize) -> Flops {
    let mut f = Flops::default();
    for _ in 0..horizon {
        f += actor(cfg, starts, NO_GRAD);
        f += img_step(cfg, starts, NO_GRAD);
    }
    let all = (horizon + 1) * starts;
    f += mlp(all, cfg.feat(), cfg.units, 2, 1, NO_GRAD, NO_GRAD);
    f += mlp(all, cfg.feat(), cfg.units, 3, 1, NO_GRAD, NO_GRAD);
    f
}

/// One behaviour update from `starts` states with imagination horizon `horizon`: the actor tape
/// (the rollout; reward, continue and frozen critic heads on the `(H+1) N` imagined states;
/// gradients through the frozen world model into the actor) and the critic tape's backward
/// (the critic on the `H N` detached features of steps 0..H-1). The engine takes that tape's
/// forward from the actor tape's critic pass (the same features and weights), so it is not
/// counted; PyTorch's reference (`benches/pytorch/compare.py`), like DreamerV1, evaluates the
/// critic there again: `H N` rows of the critic's forward more than this count.
pub fn behaviour_update(cfg: &Config, starts: usize, horizon: usize) -> Flops {
    let all = (horizon + 1) * starts;
    let mut f = Flops::default();
    for _ in 0..horizon {
        f += actor(cfg, starts, TRAIN);
        f += img_step(cfg, starts, FROZEN);
    }
    f += mlp(all, cfg.feat(), cfg.units, 2, 1, FROZEN, FROZEN);
    f += mlp(all, cfg.feat(), cfg.units, 3, 1, FROZEN, FROZEN);
    f += mlp(all, cfg.feat(), cfg.units, 3, 1, FROZEN, FROZEN);
    let critic_tape = mlp(
        horizon * starts,
        cfg.feat(),
        cfg.units,
        3,
        1,
        TRAIN_FROM_DATA,
        TRAIN,
    );
    f.backward += critic_tape.backward;
    f
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A configuration small enough to count by hand.
    fn hand() -> Config {
        Config {
            deter: 2,
            stoch: 1,
            hidden: 3,
            depth: 1,
            units: 2,
            batch: 1,
            seq_len: 2,
            action_dim: 1,
            ..Config::dreamer()
        }
    }

    #[test]
    fn world_model_update_matches_a_hand_count() {
        let c = hand();
        // N = 2 images. Encoder (d = 1: 3 -> 1 -> 2 -> 4 -> 8 channels, 4x4 kernels):
        //   31^2*3*1*16 = 46128, 14^2*1*2*16 = 6272, 6^2*2*4*16 = 4608, 2^2*4*8*16 = 2048
        //   per image; 59056 per image, 118112 for two.
        let enc = 2.0 * 59056.0;
        // Decoder: linear 3 -> 32 (96), deconvs 1^2*32*4*25 = 3200, 5^2*4*2*25 = 5000,
        //   13^2*2*1*36 = 12168, 30^2*1*3*36 = 97200: 117664 per image.
        let dec = 2.0 * 117_664.0;
        // RSSM per row: img_in 2*3 = 6, gru 3*6 + 2*6 = 30, img_out 2*3 = 6, stats 3*2 = 6,
        //   obs_out (2 + 32)*3 = 102, obs_stats 6: 156 per row, 312 for two.
        let rssm = 2.0 * 156.0;
        // Heads: reward 3*2 + 2*2 + 2*1 = 12, continue 3*2 + 2*2 + 2*2 + 2 = 16 per row.
        let heads = 2.0 * 28.0;
        let macs = enc + dec + rssm + heads;
        let f = world_model_update(&c);
        assert_eq!(f.forward, 2.0 * macs);
        // Backward: twice the forward, less the first conv's input gradient.
        let first_conv = 2.0 * 2.0 * 46128.0;
        assert_eq!(f.backward, 2.0 * f.forward - first_conv);
        let o = observe_forward(&c);
        assert_eq!(o.forward, 2.0 * (enc + rssm));
        assert_eq!(o.backward, 0.0);
    }

    #[test]
    fn behaviour_and_imagination_match_a_hand_count() {
        let c = hand();
        let (n, h) = (4, 3);
        // Actor per row: 3*2 + 3 * 2*2 + 2*2 = 22; prior step per row 48 (see above).
        let step = 22.0 + 48.0;
        let im = imagination(&c, n, h);
        // Reward and continue heads on the (H+1) N = 16 imagined states: 12 + 16 per row.
        assert_eq!(im.forward, 2.0 * ((n * h) as f64 * step + 16.0 * 28.0));
        assert_eq!(im.backward, 0.0);
        // Heads on (H+1) N = 16 rows: reward 12, continue 16, critic 16 per row (the critic
        // tape reuses the critic's forward on its H N = 12 rows).
        let fwd = (n * h) as f64 * step + 16.0 * 44.0;
        let b = behaviour_update(&c, n, h);
        assert_eq!(b.forward, 2.0 * fwd);
        // Backward: the actor twice less its first layer's input gradient (its input is a
        // stop-gradient: 3*2 per row), the prior and the heads once, the critic tape twice
        // less its first layer's input gradient (3*2 per row).
        let bwd =
            (n * h) as f64 * (2.0 * 22.0 - 6.0 + 48.0) + 16.0 * 44.0 + 12.0 * (2.0 * 16.0 - 6.0);
        assert_eq!(b.backward, 2.0 * bwd);
        assert_eq!(matmul(512, 512, 512), 2.0 * 512f64.powi(3));
    }
}
