//! `rssm evaluate`: one loss evaluation on a given batch, with every gradient, written to a
//! safetensors file, so anyone can compare the engine with another framework. With
//! `--behaviour`, the same for one behaviour update's objectives: imagination from given start
//! states with given noise, lambda-returns, the actor's and the critic's losses and gradients.

use std::collections::BTreeMap;
use std::path::PathBuf;

use rssm::data::safetensors_io::{load_safetensors, save_safetensors, HostTensor};
use rssm::gpu::GpuOptions;
use rssm::model::{Config, DeviceBatch, WorldModel};
use rssm::tensor::{Tape, Tensor};
use rssm::{Error, Result};

use crate::cli::common::open_gpu;

#[derive(clap::Args, Debug)]
pub struct EvaluateArgs {
    /// Configuration file (.json or .toml) with the spec's keys (action_dim must be set).
    #[arg(long)]
    pub config: PathBuf,
    /// Weights with the spec's key names.
    #[arg(long)]
    pub checkpoint: PathBuf,
    /// `obs [B,T,3,64,64]`, `action [B,T,A]`, `reward [B,T]`, `cont [B,T]`, optional `eps [B,T,stoch]`.
    #[arg(long)]
    pub batch: PathBuf,
    /// Output: the loss terms, `grad.<name>` for every parameter, posterior_mean, prior_mean, deter.
    #[arg(long)]
    pub out: PathBuf,
    /// Evaluate the behaviour objectives instead: `--batch` holds `start_h [N,deter]`,
    /// `start_s [N,stoch]`, `action_eps [H,N,A]` and `prior_eps [H,N,stoch]`; the actor and
    /// critic weights (`actor.*`, `critic.*`) come from `--actor` / `--critic` or, without them,
    /// from the `--checkpoint` file beside the world model's.
    #[arg(long)]
    pub behaviour: bool,
    /// Actor weights (spec names `actor.*`), with `--behaviour`.
    #[arg(long, requires = "behaviour")]
    pub actor: Option<PathBuf>,
    /// Critic weights (spec names `critic.*`), with `--behaviour`.
    #[arg(long, requires = "behaviour")]
    pub critic: Option<PathBuf>,
    /// Discount of the lambda-returns, with `--behaviour` (the spec's default 0.99).
    #[arg(long, requires = "behaviour")]
    pub gamma: Option<f32>,
    /// Lambda of the lambda-returns, with `--behaviour` (the spec's default 0.95).
    #[arg(long, requires = "behaviour")]
    pub lambda: Option<f32>,
}

pub fn run(opts: &GpuOptions, args: EvaluateArgs) -> Result<()> {
    if args.behaviour {
        return run_behaviour(opts, args);
    }
    let gpu = open_gpu(opts)?;
    let cfg = Config::from_file(&args.config)?;
    let model = WorldModel::new(&gpu, &cfg)?;
    let weights = rssm::nn::load_file(&args.checkpoint)?;
    model.params.load_host(&weights).map_err(|e| Error::File {
        path: args.checkpoint.clone(),
        msg: e.to_string(),
    })?;
    let (batch, _) = load_safetensors(&args.batch)?;
    let get = |k: &str| -> Result<Tensor> {
        let t = batch.get(k).ok_or_else(|| Error::File {
            path: args.batch.clone(),
            msg: format!("missing '{k}'"),
        })?;
        Tensor::from_vec(&gpu, &t.shape, &t.data)
    };
    let db = DeviceBatch {
        obs: get("obs")?,
        action: get("action")?,
        reward: get("reward")?,
        cont: get("cont")?,
        eps: if batch.contains_key("eps") {
            Some(get("eps")?)
        } else {
            None
        },
    };
    rssm::data::safetensors_io::check_finite(&batch)?;
    let tape = Tape::new(&gpu);
    let p = model.params.bind(&tape);
    let out = model.loss(&tape, &p, &db, 0).map_err(|e| Error::File {
        path: args.batch.clone(),
        msg: e.to_string(),
    })?;
    let loss = tape.value(out.loss);
    let vars = p.vars().to_vec();
    let grads = tape.backward(out.loss)?;
    let mut result: BTreeMap<String, HostTensor> = BTreeMap::new();
    let mut put = |name: String, t: &Tensor| -> Result<()> {
        result.insert(name, HostTensor::new(t.shape().to_vec(), t.to_vec()?)?);
        Ok(())
    };
    put("loss".into(), &loss)?;
    put("image_nll".into(), &out.image_nll)?;
    put("reward_nll".into(), &out.reward_nll)?;
    put("cont_nll".into(), &out.cont_nll)?;
    put("kl".into(), &out.kl.reshape(&[1])?)?;
    put("kl_loss".into(), &out.kl_loss.reshape(&[1])?)?;
    put("posterior_mean".into(), &out.posterior_mean)?;
    put("prior_mean".into(), &out.prior_mean)?;
    put("deter".into(), &out.deter)?;
    for (name, v) in model.params.names().iter().zip(&vars) {
        let g = match grads.get(*v) {
            Some(g) => g.clone(),
            None => Tensor::zeros(
                &gpu,
                model.params.tensor(model.params.id(name).unwrap()).shape(),
            )?,
        };
        put(format!("grad.{name}"), &g)?;
    }
    save_safetensors(&args.out, &result, None)?;
    println!(
        "loss {} written to {}",
        result["loss"].data[0],
        args.out.display()
    );
    Ok(())
}

/// The tensors of `map` whose names start with `prefix` (or, with `prefix` empty, those that
/// belong to no agent part: the world model's).
fn part(map: &BTreeMap<String, HostTensor>, prefix: &str) -> BTreeMap<String, HostTensor> {
    map.iter()
        .filter(|(k, _)| {
            if prefix.is_empty() {
                !k.starts_with("actor.") && !k.starts_with("critic.")
            } else {
                k.starts_with(prefix)
            }
        })
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect()
}

/// `rssm evaluate --behaviour`: the actor's objective (imagination, heads, lambda-returns,
/// `-mean(weight R)`) and the critic's (`0.5 mean(weight (v - sg(R))^2)`) on given start states
/// and noise, with the gradients of every actor and critic parameter.
fn run_behaviour(opts: &GpuOptions, args: EvaluateArgs) -> Result<()> {
    use rssm::agent::{Behaviour, BehaviourConfig, ImagineNoise, Starts};
    let gpu = open_gpu(opts)?;
    let cfg = Config::from_file(&args.config)?;
    let file_err = |path: &PathBuf| {
        let path = path.clone();
        move |e: Error| Error::File {
            path: path.clone(),
            msg: e.to_string(),
        }
    };
    let weights = rssm::nn::load_file(&args.checkpoint)?;
    let (batch, _) = load_safetensors(&args.batch)?;
    rssm::data::safetensors_io::check_finite(&batch)?;
    let get = |k: &str| -> Result<Tensor> {
        let t = batch.get(k).ok_or_else(|| Error::File {
            path: args.batch.clone(),
            msg: format!(
                "missing '{k}' (behaviour batches hold start_h, start_s, action_eps, prior_eps)"
            ),
        })?;
        Tensor::from_vec(&gpu, &t.shape, &t.data)
    };
    let (start_h, start_s) = (get("start_h")?, get("start_s")?);
    let (action_eps, prior_eps) = (get("action_eps")?, get("prior_eps")?);
    let horizon = action_eps.shape().first().copied().unwrap_or(0);
    let n = start_h.shape().first().copied().unwrap_or(0);
    let want = [
        ("start_h", start_h.shape().to_vec(), vec![n, cfg.deter]),
        ("start_s", start_s.shape().to_vec(), vec![n, cfg.stoch]),
        (
            "action_eps",
            action_eps.shape().to_vec(),
            vec![horizon, n, cfg.action_dim],
        ),
        (
            "prior_eps",
            prior_eps.shape().to_vec(),
            vec![horizon, n, cfg.stoch],
        ),
    ];
    for (name, got, shape) in want {
        if got != shape || horizon == 0 || n == 0 {
            return Err(Error::File {
                path: args.batch.clone(),
                msg: format!(
                    "{name} must be {shape:?} (N start states, H steps, both at least 1), got {got:?}"
                ),
            });
        }
    }
    let model = WorldModel::new(&gpu, &cfg)?;
    model
        .params
        .load_host(&part(&weights, ""))
        .map_err(file_err(&args.checkpoint))?;
    let defaults = BehaviourConfig::default();
    let bcfg = BehaviourConfig {
        horizon,
        gamma: args.gamma.unwrap_or(defaults.gamma),
        lambda: args.lambda.unwrap_or(defaults.lambda),
        ..defaults
    };
    bcfg.validate()?;
    let b = Behaviour::new(&gpu, &cfg, bcfg)?;
    for (path, prefix, store) in [
        (&args.actor, "actor.", b.actor.params()),
        (&args.critic, "critic.", b.critic.params()),
    ] {
        let (map, from) = match path {
            Some(p) => (rssm::nn::load_file(p)?, p),
            None => (part(&weights, prefix), &args.checkpoint),
        };
        store.load_host(&map).map_err(file_err(from))?;
    }
    let starts = Starts::new(&start_h, &start_s)?;
    let noise = ImagineNoise::Given {
        actor: action_eps,
        prior: prior_eps,
    };
    let t = Tape::new(&gpu);
    let obj = b.actor_objective_fixed(&t, &model, &starts, &noise, None, None)?;
    let im = &obj.imagined;
    let fdim = cfg.feat();
    let mut result: BTreeMap<String, HostTensor> = BTreeMap::new();
    let mut put = |name: &str, t: &Tensor, shape: &[usize]| -> Result<()> {
        result.insert(name.into(), HostTensor::new(shape.to_vec(), t.to_vec()?)?);
        Ok(())
    };
    let feat_all = t.value(im.feat_all);
    put("features", &feat_all, &[horizon + 1, n, fdim])?;
    put(
        "actions",
        &t.value(im.actions),
        &[horizon, n, cfg.action_dim],
    )?;
    put("rewards", &t.value(im.rewards), &[horizon + 1, n])?;
    put("continues", &t.value(im.conts), &[horizon + 1, n])?;
    put("values", &t.value(obj.values), &[horizon + 1, n])?;
    let returns = t.value(obj.returns);
    put("returns", &returns, &[horizon, n])?;
    put("weights", &obj.weights, &[horizon, n])?;
    put("actor_loss", &t.value(obj.loss), &[1])?;
    let feats = Tensor::empty(&gpu, &[horizon * n, fdim])?;
    gpu.copy(feat_all.buf(), 0, feats.buf(), 0, horizon * n * fdim);
    let weights_t = obj.weights.clone();
    let actor_vars = obj.actor_params.vars().to_vec();
    let grads = t.backward(obj.loss)?;
    let tc = Tape::new(&gpu);
    let c = b.critic_objective(&tc, &feats, &returns, &weights_t)?;
    put("critic_loss", &tc.value(c.loss), &[1])?;
    let critic_vars = c.critic_params.vars().to_vec();
    let cgrads = tc.backward(c.loss)?;
    for (store, vars, grads) in [
        (b.actor.params(), &actor_vars, &grads),
        (b.critic.params(), &critic_vars, &cgrads),
    ] {
        for (i, (name, v)) in store.names().iter().zip(vars).enumerate() {
            let shape = store.tensors()[i].shape().to_vec();
            let g = match grads.get(*v) {
                Some(g) => g.clone(),
                None => Tensor::zeros(&gpu, &shape)?,
            };
            put(&format!("grad.{name}"), &g, &shape)?;
        }
    }
    save_safetensors(&args.out, &result, None)?;
    println!(
        "actor loss {}, critic loss {} ({} imagination) written to {}",
        result["actor_loss"].data[0],
        result["critic_loss"].data[0],
        im.path,
        args.out.display()
    );
    Ok(())
}
