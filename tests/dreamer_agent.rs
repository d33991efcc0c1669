//! The library Dreamer agent (`rssm::agent::Dreamer`): episodes recorded through
//! `begin_episode` / `observe` reach the replay, bad input is refused, updates are
//! deterministic, a saved agent resumes exactly, and `CheckpointPolicy` acts like the agent
//! from the weights alone.

mod common;

use common::gpu;
use rssm::agent::{dream, CheckpointPolicy, DreamActions, Dreamer, DreamerSettings};
use rssm::envs::make_env;
use rssm::model::Config;
use rssm::tensor::Tensor;

fn tmpdir(name: &str) -> std::path::PathBuf {
    let d = std::env::temp_dir().join(format!("rssm-dreamer-agent-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn agent(warmup: u64) -> Dreamer {
    let cfg = Config {
        action_dim: 1,
        seed: 3,
        ..Config::tiny()
    };
    let settings = DreamerSettings {
        behaviour_warmup: warmup,
        ..DreamerSettings::default()
    };
    Dreamer::new(&gpu(), &cfg, settings).unwrap()
}

/// Record `episodes` episodes of at most `len` actions of the built-in pendulum, acting with
/// the agent (explore) or with a fixed action pattern.
fn collect(agent: &mut Dreamer, episodes: u64, len: usize, with_actor: bool) {
    let mut env = make_env("pendulum", Some(4)).unwrap();
    for e in 0..episodes {
        let mut frame = env.reset(100 + e);
        agent.begin_episode(&frame).unwrap();
        for t in 0..len {
            let a = if with_actor {
                agent.act(&frame, true).unwrap()
            } else {
                vec![((t as f32) * 0.37).sin()]
            };
            let step = env.step(&a).unwrap();
            let done = step.done || t + 1 == len;
            agent
                .observe(&a, step.reward, &step.obs, step.terminal, done)
                .unwrap();
            frame = step.obs;
            if done {
                break;
            }
        }
    }
}

#[test]
fn episodes_reach_the_replay_and_bad_input_is_refused() {
    let mut a = agent(0);
    let frame = vec![0u8; 64 * 64 * 3];
    let e = a.observe(&[0.0], 0.0, &frame, false, false).unwrap_err();
    assert!(e.to_string().contains("no episode is open"), "{e}");
    let e = a.update().unwrap_err();
    assert!(e.to_string().contains("seq_len"), "{e}");
    collect(&mut a, 2, 10, false);
    assert_eq!(a.counters.episodes, 2);
    assert_eq!(a.counters.env_steps, 20);
    assert_eq!(a.replay.total_steps(), 22);
    a.begin_episode(&frame).unwrap();
    for (action, what) in [
        (vec![0.0, 0.0], "components"),
        (vec![1.5], "[-1, 1]"),
        (vec![f32::NAN], "[-1, 1]"),
    ] {
        let e = a.observe(&action, 0.0, &frame, false, false).unwrap_err();
        assert!(e.to_string().contains(what), "{e}");
    }
    let e = a
        .observe(&[0.0], f32::INFINITY, &frame, false, false)
        .unwrap_err();
    assert!(e.to_string().contains("reward"), "{e}");
    let e = a.act(&frame[1..], false).unwrap_err();
    assert!(e.to_string().contains("64x64x3"), "{e}");
    // An open episode with transitions is kept (as cut by a time limit) when the next begins.
    a.observe(&[0.5], 1.0, &frame, false, false).unwrap();
    a.begin_episode(&frame).unwrap();
    assert_eq!(a.counters.episodes, 3);
    assert_eq!(a.replay.total_steps(), 24);
}

#[test]
fn updates_are_deterministic_and_a_saved_agent_resumes_exactly() {
    let run = |dir: Option<&std::path::Path>| {
        let mut a = agent(2);
        collect(&mut a, 2, 12, false);
        let mut out = vec![];
        for _ in 0..3 {
            let m = a.update().unwrap();
            out.push((m.world_model.loss, m.behaviour.map(|b| b.actor_loss)));
        }
        collect(&mut a, 1, 12, true);
        if let Some(d) = dir {
            a.save(d, true).unwrap();
            a = Dreamer::load(&gpu(), d).unwrap();
        }
        for _ in 0..2 {
            let m = a.update().unwrap();
            out.push((m.world_model.loss, m.behaviour.map(|b| b.actor_loss)));
        }
        (out, a.trainer.step, a.behaviour.updates, a.counters.clone())
    };
    let d = tmpdir("resume");
    let straight = run(None);
    let resumed = run(Some(&d));
    assert_eq!(straight, resumed);
    assert_eq!(straight.1, 5);
    // Behaviour updates start after the warm-up of 2 world-model steps.
    assert_eq!(straight.2, 3);
    assert!(straight.0[0].1.is_none() && straight.0[2].1.is_some());
    assert_eq!(
        std::fs::read_dir(d.join("episodes")).unwrap().count(),
        3,
        "one file per episode"
    );
    std::fs::remove_dir_all(&d).ok();
}

#[test]
fn a_checkpoint_policy_acts_like_the_agent_and_dreams_decode() {
    let mut a = agent(0);
    collect(&mut a, 1, 12, false);
    for _ in 0..2 {
        a.update().unwrap();
    }
    let d = tmpdir("policy");
    a.save(&d, false).unwrap();
    assert!(!d.join("episodes").exists());
    let mut p = CheckpointPolicy::load(&gpu(), &d).unwrap();
    assert_eq!(p.config(), a.config());
    let mut env = make_env("pendulum", Some(4)).unwrap();
    let mut frame = env.reset(7);
    a.reset_state();
    for _ in 0..4 {
        let want = a.act(&frame, false).unwrap();
        let got = p.act(&frame, false, 0.0).unwrap();
        assert_eq!(want, got);
        frame = env.step(&got).unwrap().obs;
    }
    // Without the actor's weights there is no policy.
    std::fs::remove_file(d.join("actor.safetensors")).unwrap();
    let e = CheckpointPolicy::load(&gpu(), &d).err().unwrap();
    assert!(e.to_string().contains("actor.safetensors"), "{e}");
    // Dreams: the actor's or given actions, checked shapes.
    let cfg = a.config().clone();
    let h = Tensor::zeros(&gpu(), &[2, cfg.deter]).unwrap();
    let s = Tensor::zeros(&gpu(), &[2, cfg.stoch]).unwrap();
    let out = dream(
        &a.trainer.model,
        &h,
        &s,
        DreamActions::Actor(&a.behaviour.actor),
        3,
    )
    .unwrap();
    assert_eq!(out.shape(), [2, 3, 3, 64, 64]);
    let acts = Tensor::zeros(&gpu(), &[2, 3, 1]).unwrap();
    let given = dream(&a.trainer.model, &h, &s, DreamActions::Given(&acts), 3).unwrap();
    assert!(given.to_vec().unwrap().iter().all(|v| v.is_finite()));
    let bad = Tensor::zeros(&gpu(), &[2, 4, 1]).unwrap();
    let e = dream(&a.trainer.model, &h, &s, DreamActions::Given(&bad), 3).unwrap_err();
    assert!(e.to_string().contains("actions must be [2, 3, 1]"), "{e}");
    std::fs::remove_dir_all(&d).ok();
}
