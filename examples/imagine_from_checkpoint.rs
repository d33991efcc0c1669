//! Load a trained world model and let it dream: observe a few real frames of the pendulum,
//! then imagine forward from random actions with the prior alone, and save the decoded frames
//! as a PNG strip.
//!
//! ```sh
//! cargo run --release -- train --steps 300            # writes runs/train/checkpoint
//! cargo run --release --example imagine_from_checkpoint -- runs/train/checkpoint dream.png
//! ```

use std::path::PathBuf;

use rand::{Rng, SeedableRng};
use rssm::data::replay::frame_to_chw;
use rssm::envs::collect::{collect_episode_with_limit, RandomPolicy};
use rssm::gpu::{Gpu, GpuOptions};
use rssm::model::open_loop::filter_then_imagine;
use rssm::model::{Checkpoint, Trainer};
use rssm::tensor::{Tape, Tensor};
use rssm::{ops, Error, Result};

const CONTEXT: usize = 5;
const IMAGINED: usize = 30;

fn main() -> Result<()> {
    let mut args = std::env::args().skip(1);
    let dir = PathBuf::from(
        args.next()
            .unwrap_or_else(|| "runs/train/checkpoint".into()),
    );
    let out = PathBuf::from(args.next().unwrap_or_else(|| "dream.png".into()));
    // The checkpoint records its configuration; a model of that size loads its weights.
    let cfg = Checkpoint::new(&dir).config()?;
    let gpu = Gpu::new(&GpuOptions::default())?;
    let mut trainer = Trainer::new(&gpu, &cfg)?;
    trainer.load(&dir)?;
    let model = &trainer.model;

    // A real start: the first frames of a random pendulum episode.
    let mut env = rssm::envs::make_env("pendulum", None)?;
    if env.action_dim() != cfg.action_dim {
        return Err(Error::Invalid(format!(
            "this example observes the pendulum (1 action); the model takes {}",
            cfg.action_dim
        )));
    }
    let mut policy = RandomPolicy::new(1, 0);
    let ep = collect_episode_with_limit(env.as_mut(), &mut policy, 0, Some(CONTEXT))?;
    let mut frames = vec![0f32; CONTEXT * 3 * 64 * 64];
    for (t, chw) in frames.chunks_mut(3 * 64 * 64).enumerate() {
        frame_to_chw(ep.frame(t), chw)?;
    }

    // Observe the context, then imagine; decode every step. One no-grad tape, one submit.
    let steps = CONTEXT + IMAGINED;
    let t = Tape::no_grad(&gpu);
    let p = model.params.bind_frozen(&t);
    let obs = t.constant(&Tensor::from_vec(&gpu, &[CONTEXT, 3, 64, 64], &frames)?);
    let embed = model.encode(&t, &p, obs)?;
    let embed = ops::reshape(&t, embed, &[1, CONTEXT, cfg.embed()])?;
    let mut rng = rand::rngs::StdRng::seed_from_u64(1);
    let feat = filter_then_imagine(model, &t, &p, embed, CONTEXT, steps, |_, step| {
        let a = if step < CONTEXT {
            ep.action_at(step).to_vec()
        } else {
            vec![rng.random_range(-1.0f32..=1.0)]
        };
        Ok(t.constant(&Tensor::from_vec(&gpu, &[1, 1], &a)?))
    })?;
    let decoded = t.value(model.decode(&t, &p, feat)?).to_vec()?;

    // A strip: CONTEXT observed frames, then the dream.
    let (w, h) = (steps * 64, 64);
    let mut rgb = vec![0u8; w * h * 3];
    for (i, chw) in decoded.chunks(3 * 64 * 64).enumerate() {
        for c in 0..3 {
            for y in 0..64 {
                for x in 0..64 {
                    let v = ((chw[c * 4096 + y * 64 + x] + 0.5) * 255.0).clamp(0.0, 255.0);
                    rgb[(y * w + i * 64 + x) * 3 + c] = v as u8;
                }
            }
        }
    }
    rssm::data::atomic::write_atomically(&out, |file| {
        let mut enc = png::Encoder::new(file, w as u32, h as u32);
        enc.set_color(png::ColorType::Rgb);
        let bad = |e: png::EncodingError| rssm::data::DataError::Invalid {
            what: "png".into(),
            reason: e.to_string(),
        };
        enc.write_header()
            .and_then(|mut wr| wr.write_image_data(&rgb))
            .map_err(bad)
    })?;
    println!(
        "{}: {CONTEXT} observed then {IMAGINED} imagined frames",
        out.display()
    );
    Ok(())
}
