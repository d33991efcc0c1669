//! Train a world model on your own recorded episodes.
//!
//! Your data: per episode, `T` RGB frames of 64x64 pixels (HWC `u8`), the `T` actions that led
//! to them (the first is all zeros), the `T` rewards received on arriving and the `T`
//! discounts (0 where a frame is terminal). Here a made-up task stands in for it: a square
//! that the two action components push around.
//!
//! ```sh
//! cargo run --release --example train_on_your_data -- 50   # training steps (default 20)
//! ```

use rssm::data::{Episode, ReplayBuffer, FRAME_LEN};
use rssm::gpu::{Gpu, GpuOptions};
use rssm::model::{Config, DeviceBatch, Trainer};

fn main() -> rssm::Result<()> {
    let steps: u64 = match std::env::args().nth(1) {
        Some(s) => s
            .parse()
            .map_err(|_| rssm::Error::Invalid(format!("steps must be a number, got '{s}'")))?,
        None => 20,
    };
    // 1. Episodes into a replay buffer (or `rssm::data::load_dir` for a folder of `.npz`).
    let mut replay = ReplayBuffer::new(100_000)?;
    for seed in 0..4 {
        replay.push(my_episode(seed, 50)?)?;
    }
    // 2. A model sized for the device, its action size from the data.
    let gpu = Gpu::new(&GpuOptions::default())?;
    let (preset, cfg) = Config::default_for(gpu.report().is_cpu());
    let cfg = Config {
        action_dim: replay.action_dim().unwrap_or(1),
        ..cfg
    };
    println!("{} with preset '{preset}'", gpu.report().short());
    let mut trainer = Trainer::new(&gpu, &cfg)?;
    // 3. Train: sample windows, upload, step.
    for step in 0..steps {
        let batch = replay.sample_with_seed(cfg.batch, cfg.seq_len, step)?;
        let m = trainer.train_step(&DeviceBatch::upload(&gpu, &batch)?)?;
        if step % 5 == 0 || step + 1 == steps {
            println!(
                "step {:>4}: loss {:8.1} (image {:8.1}, reward {:.3}, kl {:.2})",
                m.step, m.loss, m.image_nll, m.reward_nll, m.kl
            );
        }
    }
    // 4. Save: `rssm imagine --checkpoint <dir>` draws what the model learned.
    let dir = std::env::temp_dir().join("rssm-example-checkpoint");
    trainer.save(&dir)?;
    println!("checkpoint in {}", dir.display());
    Ok(())
}

/// A square pushed by the action; reward for being near the centre.
fn my_episode(seed: u64, len: usize) -> rssm::Result<Episode> {
    let (mut x, mut y) = (10.0 + seed as f32 * 9.0, 40.0 - seed as f32 * 5.0);
    let (mut image, mut action, mut reward) = (Vec::new(), Vec::new(), Vec::new());
    for t in 0..len {
        let a = if t == 0 {
            [0.0, 0.0]
        } else {
            let phase = (t as f32 * 0.3 + seed as f32).sin();
            [phase, (t as f32 * 0.17).cos()]
        };
        x = (x + 3.0 * a[0]).clamp(0.0, 56.0);
        y = (y + 3.0 * a[1]).clamp(0.0, 56.0);
        let mut frame = vec![20u8; FRAME_LEN];
        for py in y as usize..y as usize + 8 {
            for px in x as usize..x as usize + 8 {
                frame[(py * 64 + px) * 3..(py * 64 + px) * 3 + 3].copy_from_slice(&[240, 200, 40]);
            }
        }
        image.extend_from_slice(&frame);
        action.extend_from_slice(&a);
        reward.push(1.0 - ((x - 28.0).abs() + (y - 28.0).abs()) / 56.0);
    }
    Ok(Episode::new(image, action, reward, vec![1.0; len], 2)?)
}
