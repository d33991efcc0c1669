//! The actor and the critic of the specification, each with its own parameters (spec names),
//! its own flat parameter buffer and its own clipped Adam, and the actor's action distribution.
//!
//! Actor: `actor.l0..l3` (units, ELU), `actor.out` -> `2 * action_dim` = `[m | r]`;
//! `mean = 5 tanh(m / 5)`, `std = softplus(r + init_std_raw) + 1e-4` with
//! `init_std_raw = ln(e^5 - 1)` (so `std = 5` at `r = 0`), `a = tanh(mean + std * eps)`.
//! Critic: `critic.l0..l2` (units, ELU), `critic.out` -> 1.
//!
//! # The action head, in dispatches
//! [`action_head`] is built from existing ops, 10 dispatches forward when sampling:
//! `split_last` into `[m | r]` (2 copies), `5 tanh(m / 5)` (3: affine, tanh, affine),
//! `r + init_std_raw` (1 affine), `concat_last` back into `[mean | raw]` (2 copies), the
//! Gaussian head `ops::gaussian::gaussian_head` with `min_std = 1e-4` (1: softplus, noise and
//! the reparameterised sample in one kernel) and the final tanh (1). Its backward is about as
//! many. A fused kernel would save about 8 dispatches per imagined step (~120 of the ~1,500 of a
//! behaviour update, see `agent::behaviour`), not enough to justify a new kernel family.

use rand::rngs::StdRng;

use crate::error::{shape_err, Result};
use crate::gpu::Gpu;
use crate::model::Config;
use crate::nn::{Bound, Mlp, ParamStore};
use crate::ops::adam::{Adam, AdamConfig, FlatParams};
use crate::ops::gaussian::{tanh_gaussian_head, Noise, TanhHead};
use crate::ops::imagine::ActorWeights;
use crate::tensor::{Gradients, Tape, Tensor, Var};

/// `ln(e^5 - 1)`: the shift that makes `softplus(r + init_std_raw) = 5` at `r = 0`.
pub fn init_std_raw() -> f32 {
    ((5.0f64).exp() - 1.0).ln() as f32
}

/// The floor added to the actor's std.
pub const ACTOR_MIN_STD: f32 = 1e-4;

/// The bound `5 tanh(m / 5)` puts on the pre-squash mean.
pub const MEAN_SCALE: f32 = 5.0;

/// A parameter set with its own flat buffer and clipped Adam.
pub struct Optimised {
    pub params: ParamStore,
    pub flat: FlatParams,
    pub adam: Adam,
}

impl Optimised {
    fn new(gpu: &Gpu, params: ParamStore, lr: f64, clip: f64) -> Result<Optimised> {
        let named: Vec<(&str, &Tensor)> = params
            .names()
            .iter()
            .map(|n| n.as_str())
            .zip(params.tensors())
            .collect();
        let flat = FlatParams::from_tensors(gpu, &named)?;
        let adam = Adam::new(&flat, AdamConfig::new(lr).with_clip(clip))?;
        Ok(Optimised { params, flat, adam })
    }

    /// Save the weights (`{name}.safetensors`, spec key names) and Adam's state
    /// (`{name}_optimizer.safetensors`) into `dir`, atomically.
    pub fn save(&self, dir: &std::path::Path, name: &str) -> Result<()> {
        use crate::data::safetensors_io::{save_safetensors, HostTensor};
        std::fs::create_dir_all(dir)?;
        let (m, v, t) = self.adam.state()?;
        let vals = m.gpu().read_many(&[m.buf(), v.buf()])?;
        let mut opt = std::collections::BTreeMap::new();
        opt.insert(
            "adam.m".to_string(),
            HostTensor::new(vec![m.len()], vals[0].clone())?,
        );
        opt.insert(
            "adam.v".to_string(),
            HostTensor::new(vec![v.len()], vals[1].clone())?,
        );
        let meta = std::collections::HashMap::from([("adam_t".to_string(), t.to_string())]);
        let ckpt = crate::model::Checkpoint::new(dir);
        save_safetensors(ckpt.part_optimizer(name), &opt, Some(meta))?;
        self.params.save(&ckpt.part_weights(name))
    }

    /// Load what [`Optimised::save`] wrote; names, shapes and sizes must match.
    pub fn load(&mut self, dir: &std::path::Path, name: &str) -> Result<()> {
        use crate::error::Error;
        let ckpt = crate::model::Checkpoint::new(dir);
        let (wpath, opath) = (ckpt.part_weights(name), ckpt.part_optimizer(name));
        let weights = crate::nn::load_file(&wpath)?;
        self.params.check_host(&weights).map_err(|e| Error::File {
            path: wpath.clone(),
            msg: e.to_string(),
        })?;
        let (opt, meta) = crate::data::safetensors_io::load_safetensors(&opath)?;
        let n = self.flat.len();
        let bad = |msg: String| Error::File {
            path: opath.clone(),
            msg,
        };
        let t: u64 = meta
            .get("adam_t")
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| bad("no adam_t in metadata".into()))?;
        let (m, v) = match (opt.get("adam.m"), opt.get("adam.v")) {
            (Some(m), Some(v)) if m.data.len() == n && v.data.len() == n => (m, v),
            _ => return Err(bad(format!("adam.m / adam.v must both hold {n} values"))),
        };
        for pname in self.params.names() {
            self.flat.set(pname, &weights[pname].data)?;
        }
        let gpu = self.flat.flat().gpu().clone();
        let mt = Tensor::from_vec(&gpu, &[n], &m.data)?;
        let vt = Tensor::from_vec(&gpu, &[n], &v.data)?;
        self.adam.set_state(&mt, &vt, t)
    }

    /// Record one Adam step from the gradients of `bound` (this set's parameters on a tape).
    pub fn step(&mut self, bound: &Bound, grads: &Gradients) -> Result<()> {
        let g: Vec<Option<&Tensor>> = bound.vars().iter().map(|v| grads.get(*v)).collect();
        self.adam.step(&self.flat, &g)
    }
}

/// The actor network and its optimiser.
pub struct Actor {
    pub net: Mlp,
    pub action_dim: usize,
    pub opt: Optimised,
}

/// The critic network and its optimiser.
pub struct Critic {
    pub net: Mlp,
    pub opt: Optimised,
}

impl Actor {
    /// `actor.l0..l3` (`cfg.units`, ELU) and `actor.out` -> `2 * cfg.action_dim`, Xavier
    /// weights and zero biases; Adam with `lr`, global-norm clip `clip`.
    pub fn new(gpu: &Gpu, cfg: &Config, lr: f64, clip: f64, rng: &mut StdRng) -> Result<Actor> {
        if cfg.action_dim == 0 {
            return Err(crate::error::Error::Invalid(
                "actor: action_dim must be set".into(),
            ));
        }
        let mut p = ParamStore::new();
        let net = Mlp::new(
            &mut p,
            gpu,
            "actor",
            cfg.feat(),
            cfg.units,
            4,
            2 * cfg.action_dim,
            rng,
        )?;
        Ok(Actor {
            net,
            action_dim: cfg.action_dim,
            opt: Optimised::new(gpu, p, lr, clip)?,
        })
    }

    /// The parameters (spec names `actor.*`).
    pub fn params(&self) -> &ParamStore {
        &self.opt.params
    }

    /// The parameters on `t` as leaves that want gradients (constants on a no-grad tape).
    pub fn bind(&self, t: &Tape) -> Bound {
        self.opt.params.bind(t)
    }

    /// The parameters on `t` as constants.
    pub fn bind_frozen(&self, t: &Tape) -> Bound {
        self.opt.params.bind_frozen(t)
    }

    /// The network's raw output `[N, 2A]` = `[m | r]` for `feat [N, stoch + deter]`.
    pub fn forward(&self, t: &Tape, p: &Bound, feat: Var) -> Result<Var> {
        self.net.forward(t, p, feat)
    }

    /// The weights as the fused imagination reads them (`ops::imagine`; four hidden layers).
    pub fn fused_weights(&self) -> ActorWeights<'_> {
        let ls = self.net.linears();
        let p = self.params();
        ActorWeights {
            weights: std::array::from_fn(|l| p.tensor(ls[l].weight)),
            biases: std::array::from_fn(|l| p.tensor(ls[l].bias)),
            std_shift: init_std_raw(),
            min_std: ACTOR_MIN_STD,
        }
    }

    /// The action for `feat`: sampled with `noise` (`Some`), or `tanh(mean)` (`None`).
    pub fn act(&self, t: &Tape, p: &Bound, feat: Var, noise: Option<Noise>) -> Result<ActionOut> {
        let out = self.forward(t, p, feat)?;
        action_head(t, out, noise)
    }
}

impl Critic {
    /// `critic.l0..l2` (`cfg.units`, ELU) and `critic.out` -> 1; Adam with `lr`, clip `clip`.
    pub fn new(gpu: &Gpu, cfg: &Config, lr: f64, clip: f64, rng: &mut StdRng) -> Result<Critic> {
        let mut p = ParamStore::new();
        let net = Mlp::new(&mut p, gpu, "critic", cfg.feat(), cfg.units, 3, 1, rng)?;
        Ok(Critic {
            net,
            opt: Optimised::new(gpu, p, lr, clip)?,
        })
    }

    /// The parameters (spec names `critic.*`).
    pub fn params(&self) -> &ParamStore {
        &self.opt.params
    }

    /// The parameters on `t` as leaves that want gradients.
    pub fn bind(&self, t: &Tape) -> Bound {
        self.opt.params.bind(t)
    }

    /// The parameters on `t` as constants.
    pub fn bind_frozen(&self, t: &Tape) -> Bound {
        self.opt.params.bind_frozen(t)
    }

    /// The value `[N, 1]` of `feat [N, stoch + deter]`.
    pub fn forward(&self, t: &Tape, p: &Bound, feat: Var) -> Result<Var> {
        self.net.forward(t, p, feat)
    }
}

/// The action distribution's outputs, all `[..., A]`.
#[derive(Clone, Debug)]
pub struct ActionOut {
    /// The action in (-1, 1).
    pub action: Var,
    /// `5 tanh(m / 5)` (before the final tanh).
    pub mean: Var,
    /// `softplus(r + init_std_raw) + 1e-4` (when sampling).
    pub std: Option<Var>,
    /// The noise used (when sampling).
    pub eps: Option<Tensor>,
}

/// The actor's action distribution from its raw output `out [..., 2A] = [m | r]`:
/// `a = tanh(5 tanh(m / 5) + (softplus(r + init_std_raw) + 1e-4) * eps)` with eps from `noise`
/// (reparameterised: gradients flow to `m` and `r`), or `a = tanh(5 tanh(m / 5))` when `noise`
/// is `None` (deterministic, for evaluation). 10 dispatches sampling, 7 deterministic.
pub fn action_head(t: &Tape, out: Var, noise: Option<Noise>) -> Result<ActionOut> {
    let shape = t.shape(out);
    let width = shape.last().copied().unwrap_or(0);
    if width == 0 || !width.is_multiple_of(2) {
        return shape_err(
            "action_head",
            format!("actor output must be [..., 2A] = [m | r], got {shape:?}"),
        );
    }
    let a = width / 2;
    let tanh = TanhHead {
        scale: MEAN_SCALE,
        shift: init_std_raw(),
    };
    match noise {
        None => {
            // The mode: zero noise; the std is not an output then.
            let mut zshape = shape.clone();
            *zshape.last_mut().unwrap() = a;
            let zeros = Tensor::zeros(t.gpu(), &zshape)?;
            let g = tanh_gaussian_head(t, out, ACTOR_MIN_STD, tanh, Noise::Given(zeros))?;
            Ok(ActionOut {
                action: g.sample,
                mean: g.mean,
                std: None,
                eps: None,
            })
        }
        Some(noise) => {
            let g = tanh_gaussian_head(t, out, ACTOR_MIN_STD, tanh, noise)?;
            Ok(ActionOut {
                action: g.sample,
                mean: g.mean,
                std: Some(g.std),
                eps: Some(g.eps),
            })
        }
    }
}

/// Plain-Rust f64 references for the tests.
pub mod reference {
    fn softplus(x: f64) -> f64 {
        x.max(0.0) + (-x.abs()).exp().ln_1p()
    }

    /// The action for `out [rows, 2A]` and `eps [rows, A]` (`None`: deterministic).
    pub fn action(out: &[f32], a: usize, eps: Option<&[f32]>) -> Vec<f32> {
        let init = ((5.0f64).exp() - 1.0).ln();
        let rows = out.len() / (2 * a);
        let mut act = Vec::with_capacity(rows * a);
        for row in 0..rows {
            for c in 0..a {
                let m = out[row * 2 * a + c] as f64;
                let r = out[row * 2 * a + a + c] as f64;
                let mean = 5.0 * (m / 5.0).tanh();
                let x = match eps {
                    Some(e) => mean + (softplus(r + init) + 1e-4) * e[row * a + c] as f64,
                    None => mean,
                };
                act.push(x.tanh() as f32);
            }
        }
        act
    }
}
