//! The world model of the specification: conv encoder, RSSM, conv decoder, reward and continue
//! heads, and the loss with KL balancing and free nats.
//!
//! `loss` records the whole batch — encoder over all B*T images, `observe` over the T steps,
//! decoder and heads over all B*T features, the loss — onto one tape; with `backward` and the
//! optimiser that is one submit per training step, with no host round trip per time step.

use rand::SeedableRng;

use crate::error::{shape_err, Result};
use crate::gpu::Gpu;
pub use crate::gpu::RssmPath;
use crate::model::Config;
use crate::nn::{Bound, GruCell, Init, Linear, Mlp, ParamId, ParamStore};
use crate::ops::gaussian::{gaussian_head, normal_noise, Noise};
use crate::ops::kl::kl_balanced;
use crate::ops::loss::{bce_with_logits, mean_of_sum, mse_nll};
use crate::ops::rssm::{fused_plan, ObserveDims, RssmParams};
use crate::ops::{self, conv, Act};
use crate::tensor::{Tape, Tensor, Var};

/// A conv or deconv layer: `{name}.weight`, `{name}.bias`.
#[derive(Clone, Copy, Debug)]
pub struct ConvLayer {
    pub weight: ParamId,
    pub bias: ParamId,
}

/// The RSSM's parameters.
#[derive(Clone, Debug)]
pub struct Rssm {
    pub img_in: Linear,
    /// `rssm.gru.*`
    pub gru: GruCell,
    pub img_out: Linear,
    pub img_stats: Linear,
    pub obs_out: Linear,
    pub obs_stats: Linear,
}

/// Encoder, RSSM, decoder and heads, with their parameters.
pub struct WorldModel {
    pub cfg: Config,
    pub params: ParamStore,
    pub encoder: Vec<ConvLayer>,
    pub decoder_linear: Linear,
    pub decoder: Vec<ConvLayer>,
    pub rssm: Rssm,
    pub reward: Mlp,
    pub cont: Mlp,
}

/// One batch on the device: `obs [B,T,3,64,64]` in [-0.5, 0.5], `action [B,T,A]`,
/// `reward [B,T]`, `cont [B,T]`, and optionally the posterior noise `eps [B,T,stoch]`.
pub struct DeviceBatch {
    pub obs: Tensor,
    pub action: Tensor,
    pub reward: Tensor,
    pub cont: Tensor,
    pub eps: Option<Tensor>,
}

/// What `loss` produces. Scalars are `[1]` tensors (read them back together at the end of a step).
pub struct LossOut {
    pub loss: Var,
    pub image_nll: Tensor,
    pub reward_nll: Tensor,
    pub cont_nll: Tensor,
    pub kl: Tensor,
    pub kl_loss: Tensor,
    pub posterior_mean: Tensor,
    pub prior_mean: Tensor,
    /// The stds of the two distributions in the KL, `[B,T,stoch]` (for checks of the balanced
    /// KL's gradient, which needs both sides' statistics).
    pub posterior_std: Tensor,
    pub prior_std: Tensor,
    pub deter: Tensor,
    /// The posterior samples `[B,T,stoch]` (with `deter`, the starts of imagination).
    pub stoch: Tensor,
    /// The decoded mean images `[B,T,3,64,64]` (for pictures).
    pub decoded: Tensor,
}

/// The state after `observe`, per step stacked as `[B, T, ...]`.
pub struct Observed {
    pub deter: Var,
    pub stoch: Var,
    pub post_stats: Var,
    pub prior_stats: Var,
    /// Which path recorded it.
    pub path: RssmPath,
}

impl Observed {
    /// The last step's state `(h [B, deter], s [B, stoch])`, to continue with the prior.
    pub fn last_state(&self, t: &Tape) -> Result<(Var, Var)> {
        let steps = t.shape(self.deter)[1];
        Ok((
            ops::slice_time(t, self.deter, steps - 1)?,
            ops::slice_time(t, self.stoch, steps - 1)?,
        ))
    }
}

fn conv_layer(
    store: &mut ParamStore,
    gpu: &Gpu,
    name: &str,
    shape: [usize; 4],
    transpose: bool,
    rng: &mut rand::rngs::StdRng,
) -> Result<ConvLayer> {
    // PyTorch's fans: dim 1 times the receptive field is fan_in, dim 0 times it fan_out, for
    // Conv2d [out, in, k, k] and ConvTranspose2d [in, out, k, k] alike.
    let rf = shape[2] * shape[3];
    let (fan_in, fan_out) = (shape[1] * rf, shape[0] * rf);
    let out_c = if transpose { shape[1] } else { shape[0] };
    Ok(ConvLayer {
        weight: store.add(
            gpu,
            &format!("{name}.weight"),
            &shape,
            Init::XavierUniform { fan_in, fan_out },
            rng,
        )?,
        bias: store.add(gpu, &format!("{name}.bias"), &[out_c], Init::Zeros, rng)?,
    })
}

impl WorldModel {
    /// Build the model with freshly initialised weights (seeded by `cfg.seed`).
    pub fn new(gpu: &Gpu, cfg: &Config) -> Result<WorldModel> {
        cfg.validate()?;
        if cfg.action_dim == 0 {
            return Err(crate::error::Error::Invalid(
                "config: action_dim must be set (from the environment or the data)".into(),
            ));
        }
        let mut rng = rand::rngs::StdRng::seed_from_u64(cfg.seed);
        let mut p = ParamStore::new();
        let d = cfg.depth;
        let enc_ch = [3, d, 2 * d, 4 * d, 8 * d];
        let mut encoder = Vec::new();
        for i in 0..4 {
            encoder.push(conv_layer(
                &mut p,
                gpu,
                &format!("encoder.conv{i}"),
                [enc_ch[i + 1], enc_ch[i], 4, 4],
                false,
                &mut rng,
            )?);
        }
        let decoder_linear = Linear::new(
            &mut p,
            gpu,
            "decoder.linear",
            cfg.feat(),
            cfg.embed(),
            &mut rng,
        )?;
        let dec_ch = [cfg.embed(), 4 * d, 2 * d, d, 3];
        let dec_k = [5, 5, 6, 6];
        let mut decoder = Vec::new();
        for i in 0..4 {
            decoder.push(conv_layer(
                &mut p,
                gpu,
                &format!("decoder.deconv{i}"),
                [dec_ch[i], dec_ch[i + 1], dec_k[i], dec_k[i]],
                true,
                &mut rng,
            )?);
        }
        let (s, a, h, dd) = (cfg.stoch, cfg.action_dim, cfg.hidden, cfg.deter);
        let img_in = Linear::new(&mut p, gpu, "rssm.img_in", s + a, h, &mut rng)?;
        let gru = GruCell::new(&mut p, gpu, "rssm.gru", h, dd, &mut rng)?;
        let img_out = Linear::new(&mut p, gpu, "rssm.img_out", dd, h, &mut rng)?;
        let img_stats = Linear::new(&mut p, gpu, "rssm.img_stats", h, 2 * s, &mut rng)?;
        let obs_out = Linear::new(&mut p, gpu, "rssm.obs_out", dd + cfg.embed(), h, &mut rng)?;
        let obs_stats = Linear::new(&mut p, gpu, "rssm.obs_stats", h, 2 * s, &mut rng)?;
        let reward = Mlp::new(&mut p, gpu, "reward", cfg.feat(), cfg.units, 2, 1, &mut rng)?;
        let cont = Mlp::new(&mut p, gpu, "cont", cfg.feat(), cfg.units, 3, 1, &mut rng)?;
        Ok(WorldModel {
            cfg: cfg.clone(),
            params: p,
            encoder,
            decoder_linear,
            decoder,
            rssm: Rssm {
                img_in,
                gru,
                img_out,
                img_stats,
                obs_out,
                obs_stats,
            },
            reward,
            cont,
        })
    }

    /// The device handle the model was made with: its kernel choices are the ones the model's
    /// training, imagination and dreams run (see [`Gpu::with_tuning`]).
    pub fn gpu(&self) -> &Gpu {
        self.params.tensors()[0].gpu()
    }

    /// `[N,3,64,64] -> [N, embed]`: four k4 s2 convs with ReLU (one `ops::conv::stack` call),
    /// flattened in C,H,W order.
    pub fn encode(&self, t: &Tape, p: &Bound, images: Var) -> Result<Var> {
        let layers = Self::stack(p, &self.encoder, |_| Act::Relu);
        let x = conv::conv2d_stack(t, images, &layers, 2)?;
        let n = t.shape(x)[0];
        ops::reshape(t, x, &[n, self.cfg.embed()])
    }

    /// `feat [N, stoch+deter] -> [N,3,64,64]` mean image.
    pub fn decode(&self, t: &Tape, p: &Bound, feat: Var) -> Result<Var> {
        let n = t.value(feat).rows();
        let x = self.decoder_linear.forward(t, p, feat, Act::None)?;
        let x = ops::reshape(t, x, &[n, self.cfg.embed(), 1, 1])?;
        let layers = Self::stack(
            p,
            &self.decoder,
            |i| if i < 3 { Act::Relu } else { Act::None },
        );
        conv::conv_transpose2d_stack(t, x, &layers, 2)
    }

    /// These conv layers as a stack for `ops::conv`, layer `i` with activation `act(i)`.
    fn stack(p: &Bound, layers: &[ConvLayer], act: impl Fn(usize) -> Act) -> Vec<conv::StackLayer> {
        layers
            .iter()
            .enumerate()
            .map(|(i, l)| conv::StackLayer {
                weight: p.var(l.weight),
                bias: p.var(l.bias),
                act: act(i),
            })
            .collect()
    }

    /// Prior step: `(s_prev [B,S], a_prev [B,A], h_prev [B,D]) -> (h [B,D], prior stats [B,2S])`.
    pub fn img_step(
        &self,
        t: &Tape,
        p: &Bound,
        s_prev: Var,
        a_prev: Var,
        h_prev: Var,
    ) -> Result<(Var, Var)> {
        let r = &self.rssm;
        let sa = ops::concat_last(t, &[s_prev, a_prev])?;
        let x = r.img_in.forward(t, p, sa, Act::Elu)?;
        let h = r.gru.forward(t, p, x, h_prev)?;
        let y = r.img_out.forward(t, p, h, Act::Elu)?;
        let stats = r.img_stats.forward(t, p, y, Act::None)?;
        Ok((h, stats))
    }

    /// Posterior step: `(h [B,D], embed [B,E]) -> posterior stats [B,2S]`.
    pub fn obs_step(&self, t: &Tape, p: &Bound, h: Var, embed: Var) -> Result<Var> {
        let r = &self.rssm;
        let he = ops::concat_last(t, &[h, embed])?;
        let y = r.obs_out.forward(t, p, he, Act::Elu)?;
        r.obs_stats.forward(t, p, y, Act::None)
    }

    /// The RSSM's parameters as tape variables, in `ops::rssm`'s grouping.
    pub fn rssm_vars(&self, p: &Bound) -> RssmParams<Var> {
        let r = &self.rssm;
        let bias = |l: &Linear| p.var(l.bias);
        RssmParams {
            img_in_w: p.var(r.img_in.weight),
            img_in_b: bias(&r.img_in),
            w_ih: p.var(r.gru.weight_ih),
            w_hh: p.var(r.gru.weight_hh),
            b_ih: p.var(r.gru.bias_ih),
            b_hh: p.var(r.gru.bias_hh),
            img_out_w: p.var(r.img_out.weight),
            img_out_b: bias(&r.img_out),
            img_stats_w: p.var(r.img_stats.weight),
            img_stats_b: bias(&r.img_stats),
            obs_out_w: p.var(r.obs_out.weight),
            obs_out_b: bias(&r.obs_out),
            obs_stats_w: p.var(r.obs_stats.weight),
            obs_stats_b: bias(&r.obs_stats),
        }
    }

    /// The path `observe` takes for a `[batch, steps]` sequence on `gpu`, and, when it is the
    /// per-op one, why: the device's tuning (`path`: fused on GPUs; per-op on CPU drivers,
    /// where a workgroup's threads run as a loop on one core, so the persistent kernels'
    /// serial steps gain nothing while the per-op GEMMs over all rows use the SIMD lanes;
    /// docs/performance.md), and per-op where the fused kernels do not fit the shapes.
    pub fn observe_path(&self, gpu: &Gpu, batch: usize, steps: usize) -> (RssmPath, String) {
        let c = &self.cfg;
        let dims = ObserveDims {
            batch,
            steps,
            stoch: c.stoch,
            action: c.action_dim,
            deter: c.deter,
            hidden: c.hidden,
            embed: c.embed(),
        };
        match gpu.tuning().path {
            RssmPath::PerOp => (RssmPath::PerOp, "the device's tuning".into()),
            RssmPath::Fused => match fused_plan(gpu, &dims) {
                Ok(_) => (RssmPath::Fused, String::new()),
                Err(why) => (RssmPath::PerOp, why),
            },
        }
    }

    /// The path imagination takes for `starts` start states and `horizon` steps with the
    /// specification's actor (`units` wide) on `gpu`, and, when it is the per-op one, why:
    /// chosen like [`WorldModel::observe_path`]'s (lavapipe, spec widths: a behaviour update
    /// from 800 starts 3.5 s per-op, 29.8 s fused; docs/performance.md). (`_with_grad` does
    /// not change the choice; it stays in the signature for the callers that pass it.)
    pub fn imagine_path(
        &self,
        gpu: &Gpu,
        starts: usize,
        horizon: usize,
        _with_grad: bool,
    ) -> (RssmPath, String) {
        let c = &self.cfg;
        let dims = crate::ops::imagine::ImagineDims {
            starts,
            horizon,
            stoch: c.stoch,
            action: c.action_dim,
            deter: c.deter,
            hidden: c.hidden,
            embed: c.embed(),
            units: c.units,
        };
        match gpu.tuning().path {
            RssmPath::PerOp => (RssmPath::PerOp, "the device's tuning".into()),
            RssmPath::Fused => match crate::ops::imagine::imagine_plan(gpu, &dims) {
                Ok(_) => (RssmPath::Fused, String::new()),
                Err(why) => (RssmPath::PerOp, why),
            },
        }
    }

    /// Run the RSSM over a `[B,T]` batch of embeddings and actions from a zero state, sampling
    /// the posterior with `eps [B,T,S]`. Every step is only recorded: on the fused path the
    /// whole sequence is a handful of dispatches, on the per-op path about 16 per step.
    pub fn observe(
        &self,
        t: &Tape,
        p: &Bound,
        embed: Var,
        action: Var,
        eps: &Tensor,
    ) -> Result<Observed> {
        let es = t.shape(embed);
        let (path, _) = self.observe_path(t.gpu(), es[0], es[1]);
        // The fused op treats the actions as constants (they are data in the world model).
        if path == RssmPath::Fused && !t.requires_grad(action) {
            let o = ops::rssm::observe(
                t,
                embed,
                &t.value(action),
                eps,
                self.rssm_vars(p),
                self.cfg.min_std,
            )?;
            return Ok(Observed {
                deter: o.deter,
                stoch: o.stoch,
                post_stats: o.post,
                prior_stats: o.prior,
                path: RssmPath::Fused,
            });
        }
        self.observe_per_op(t, p, embed, action, eps)
    }

    /// The per-op `observe`: `img_step`, `obs_step` and the Gaussian head recorded per time
    /// step. The reference the fused kernels are tested against.
    pub fn observe_per_op(
        &self,
        t: &Tape,
        p: &Bound,
        embed: Var,
        action: Var,
        eps: &Tensor,
    ) -> Result<Observed> {
        let es = t.shape(embed);
        let (b, steps) = (es[0], es[1]);
        let cfg = &self.cfg;
        let gpu = t.gpu();
        let mut h = t.constant(&Tensor::zeros(gpu, &[b, cfg.deter])?);
        let mut s = t.constant(&Tensor::zeros(gpu, &[b, cfg.stoch])?);
        let eps_v = t.constant(eps);
        let (mut hs, mut ss, mut qs, mut ps) = (vec![], vec![], vec![], vec![]);
        for step in 0..steps {
            let a = ops::slice_time(t, action, step)?;
            let e = ops::slice_time(t, embed, step)?;
            let (h_new, prior) = self.img_step(t, p, s, a, h)?;
            let post = self.obs_step(t, p, h_new, e)?;
            let noise = t.value(ops::slice_time(t, eps_v, step)?);
            let q = gaussian_head(t, post, cfg.min_std, Noise::Given(noise))?;
            h = h_new;
            s = q.sample;
            hs.push(h);
            ss.push(s);
            qs.push(post);
            ps.push(prior);
        }
        Ok(Observed {
            deter: ops::stack_time(t, &hs)?,
            stoch: ops::stack_time(t, &ss)?,
            post_stats: ops::stack_time(t, &qs)?,
            prior_stats: ops::stack_time(t, &ps)?,
            path: RssmPath::PerOp,
        })
    }

    /// Check a batch against the configuration.
    pub fn check_batch(&self, batch: &DeviceBatch) -> Result<(usize, usize)> {
        let os = batch.obs.shape();
        if os.len() != 5 || os[2..] != [3, 64, 64] {
            return shape_err(
                "world model",
                format!("obs must be [B,T,3,64,64], got {os:?}"),
            );
        }
        let (b, steps) = (os[0], os[1]);
        let a = self.cfg.action_dim;
        if batch.action.shape() != [b, steps, a] {
            return shape_err(
                "world model",
                format!(
                    "action must be [{b},{steps},{a}], got {:?}",
                    batch.action.shape()
                ),
            );
        }
        for (name, tns) in [("reward", &batch.reward), ("cont", &batch.cont)] {
            if tns.shape() != [b, steps] {
                return shape_err(
                    "world model",
                    format!("{name} must be [{b},{steps}], got {:?}", tns.shape()),
                );
            }
        }
        if let Some(e) = &batch.eps {
            if e.shape() != [b, steps, self.cfg.stoch] {
                return shape_err(
                    "world model",
                    format!(
                        "eps must be [{b},{steps},{}], got {:?}",
                        self.cfg.stoch,
                        e.shape()
                    ),
                );
            }
        }
        Ok((b, steps))
    }

    /// The world-model loss of one batch, recorded on `t`. `noise_offset` selects the posterior
    /// noise stream when the batch brings no `eps` (e.g. the step number).
    pub fn loss(
        &self,
        t: &Tape,
        p: &Bound,
        batch: &DeviceBatch,
        noise_offset: u64,
    ) -> Result<LossOut> {
        let (b, steps) = self.check_batch(batch)?;
        let cfg = &self.cfg;
        let gpu = t.gpu();
        let n = b * steps;
        let eps = match &batch.eps {
            Some(e) => e.clone(),
            None => normal_noise(gpu, n * cfg.stoch, cfg.seed, noise_offset)?
                .reshape(&[b, steps, cfg.stoch])?,
        };
        let obs = t.constant(&batch.obs);
        let images = ops::reshape(t, obs, &[n, 3, 64, 64])?;
        let embed = self.encode(t, p, images)?;
        let embed = ops::reshape(t, embed, &[b, steps, cfg.embed()])?;
        let action = t.constant(&batch.action);
        let o = self.observe(t, p, embed, action, &eps)?;
        // Features of every step: [B*T, stoch + deter], stochastic part first.
        let feat = ops::concat_last(t, &[o.stoch, o.deter])?;
        let feat = ops::reshape(t, feat, &[n, cfg.feat()])?;
        let decoded = self.decode(t, p, feat)?;
        let image_nll = mse_nll(t, decoded, images, 3 * 64 * 64)?;
        let reward_pred = self.reward.forward(t, p, feat)?;
        let reward_t = t.constant(&batch.reward.reshape(&[n, 1])?);
        let reward_nll = mse_nll(t, reward_pred, reward_t, 1)?;
        let cont_logit = self.cont.forward(t, p, feat)?;
        let cont_t = t.constant(&batch.cont.reshape(&[n, 1])?);
        let cont_nll = bce_with_logits(t, cont_logit, cont_t)?;
        let nll = mean_of_sum(t, &[image_nll, reward_nll, cont_nll])?;
        // KL balancing over all B*T steps.
        let post = ops::reshape(t, o.post_stats, &[n, 2 * cfg.stoch])?;
        let prior = ops::reshape(t, o.prior_stats, &[n, 2 * cfg.stoch])?;
        let q = gaussian_head(
            t,
            post,
            cfg.min_std,
            Noise::Given(Tensor::zeros(gpu, &[n, cfg.stoch])?),
        )?;
        let pr = gaussian_head(
            t,
            prior,
            cfg.min_std,
            Noise::Given(Tensor::zeros(gpu, &[n, cfg.stoch])?),
        )?;
        let kl = kl_balanced(
            t,
            (q.mean, q.std),
            (pr.mean, pr.std),
            cfg.kl_balance,
            cfg.free_nats,
        )?;
        let kl_term = ops::scale(t, kl.value, cfg.kl_scale, 0.0)?;
        let loss = ops::add(t, nll, kl_term)?;
        let means = |v: Var| -> Result<Tensor> {
            let nt = Tape::no_grad(gpu);
            let c = nt.constant(&t.value(v));
            Ok(nt.value(ops::mean_all(&nt, c)?))
        };
        Ok(LossOut {
            loss,
            image_nll: means(image_nll)?,
            reward_nll: means(reward_nll)?,
            cont_nll: means(cont_nll)?,
            kl: kl.mean_kl.clone(),
            kl_loss: t.value(kl.value),
            posterior_mean: t.value(q.mean).reshape(&[b, steps, cfg.stoch])?,
            prior_mean: t.value(pr.mean).reshape(&[b, steps, cfg.stoch])?,
            posterior_std: t.value(q.std).reshape(&[b, steps, cfg.stoch])?,
            prior_std: t.value(pr.std).reshape(&[b, steps, cfg.stoch])?,
            deter: t.value(o.deter),
            stoch: t.value(o.stoch),
            decoded: t.value(decoded).reshape(&[b, steps, 3, 64, 64])?,
        })
    }
}
