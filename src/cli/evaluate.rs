//! `rssm evaluate`: one loss evaluation on a given batch, with every gradient, written to a
//! safetensors file, so anyone can compare the engine with another framework.

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
}

pub fn run(opts: &GpuOptions, args: EvaluateArgs) -> Result<()> {
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
