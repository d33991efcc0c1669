"""The Dreamer agent from Python, on a Gymnasium task seen through pixels."""

import gymnasium as gym
import numpy as np
import pytest

import rssm
from pixel_env import PixelEnv, resize_area


def pendulum(action_repeat=4):
    return PixelEnv(gym.make("Pendulum-v1", render_mode="rgb_array"), action_repeat=action_repeat)


def run_episode(env, agent, seed, choose):
    frame, _ = env.reset(seed=seed)
    agent.observe(frame)
    total = 0.0
    while True:
        action = choose(frame)
        frame, reward, terminated, truncated, _ = env.step(action)
        total += reward
        agent.observe(frame, action, reward, terminated, terminated or truncated)
        if terminated or truncated:
            return total


def test_pixel_env_gives_64x64_frames_and_maps_actions():
    env = pendulum(action_repeat=3)
    frame, _ = env.reset(seed=0)
    assert frame.shape == (64, 64, 3) and frame.dtype == np.uint8
    assert env.action_dim == 1 and env.action_space.low[0] == -1.0
    frame, reward, terminated, truncated, _ = env.step(np.array([1.0]))
    assert env.physics_steps == 3 and reward <= 0.0
    # Area resampling keeps the mean colour.
    img = np.random.default_rng(0).integers(0, 256, (500, 500, 3), dtype=np.uint8)
    small = resize_area(img)
    assert small.shape == (64, 64, 3)
    assert abs(float(small.mean()) - float(img.mean())) < 1.0
    with pytest.raises(ValueError, match="render_mode"):
        PixelEnv(gym.make("Pendulum-v1"))


def test_a_short_gymnasium_run_learns_and_acts_from_its_checkpoint(tmp_path, device):
    """Tiny preset, a few Pendulum-v1 episodes: the loop completes, the world-model loss falls,
    the behaviour trains after its warm-up, and the checkpoint acts on its own."""
    env = pendulum()
    agent = rssm.Dreamer(action_dim=env.action_dim, obs_shape=(64, 64, 3), config=rssm.Config("tiny", seed=1, lr=3e-3),
                         device=device, behaviour_warmup=20)
    assert not agent.can_update
    with pytest.raises(ValueError, match="seq_len"):
        agent.update(1)
    rng = np.random.default_rng(0)
    for ep in range(2):
        run_episode(env, agent, ep, lambda _f: rng.uniform(-1, 1, 1).astype(np.float32))
    assert agent.episodes == 2 and agent.env_steps == 100 and agent.replay_steps == 102
    first = agent.update(10)
    for ep in range(2, 4):
        ret = run_episode(env, agent, ep, lambda f: agent.act(f, explore=True))
        assert np.isfinite(ret)
        m = agent.update(15)
    assert agent.updates == 40 and agent.behaviour_updates == 20
    assert m["behaviour_updates"] == 15 and np.isfinite(m["actor_loss"])
    print("world-model loss, mean of the first 10 updates:", first["loss"], "of the last 15:", m["loss"])
    assert m["loss"] < 0.9 * first["loss"], (first, m)
    # Acting: actions in [-1, 1]; the mode is deterministic.
    frame, _ = env.reset(seed=9)
    agent.reset()
    a = agent.act(frame, explore=False)
    assert a.shape == (1,) and a.dtype == np.float32 and np.all(np.abs(a) <= 1)
    # Save, then act from the checkpoint's weights alone: the same actions as the agent.
    ckpt = tmp_path / "agent"
    agent.save(ckpt)
    assert (ckpt / "actor.safetensors").exists() and len(list((ckpt / "episodes").glob("*.npz"))) == 4
    policy = rssm.Policy.load(ckpt, device=device)
    assert policy.action_dim == 1 and policy.config == agent.config
    agent.reset()
    frame, _ = env.reset(seed=11)
    for _ in range(5):
        want = agent.act(frame, explore=False)
        got = policy.act(frame)
        np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-6)
        frame, *_ = env.step(got)
    # The whole agent reloads and goes on training where it stopped.
    back = rssm.Dreamer.load(ckpt, device=device)
    assert (back.updates, back.behaviour_updates, back.episodes, back.replay_steps) == (40, 20, 4, agent.replay_steps)
    assert back.update(1)["step"] == 41
    # And the world model alone loads from the agent's folder.
    wm = rssm.WorldModel.load(ckpt, device=device)
    assert wm.step == 40


def test_the_cli_reads_an_agent_saved_from_python(tmp_path, device, run_cli):
    env = pendulum()
    agent = rssm.Dreamer(action_dim=1, config=rssm.Config("tiny"), device=device, behaviour_warmup=0)
    rng = np.random.default_rng(1)
    run_episode(env, agent, 0, lambda _f: rng.uniform(-1, 1, 1))
    agent.update(2)
    agent.save(tmp_path / "ckpt", replay=False)
    assert not (tmp_path / "ckpt" / "episodes").exists()
    p = run_cli("imagine", "--checkpoint", tmp_path / "ckpt", "--steps", "3", "--out", tmp_path / "d.png")
    assert "the actor" in p.stdout


def test_agent_arguments_are_checked(device):
    with pytest.raises(ValueError, match=r"obs_shape: the model sees \(64, 64, 3\)"):
        rssm.Dreamer(action_dim=1, obs_shape=(84, 84, 3), device=device)
    with pytest.raises(ValueError, match="action_dim"):
        rssm.Dreamer(action_dim=0, device=device)
    with pytest.raises(ValueError, match="horizon"):
        rssm.Dreamer(action_dim=1, config=rssm.Config("tiny"), device=device, horizon=0)
    agent = rssm.Dreamer(action_dim=2, config=rssm.Config("tiny"), device=device)
    frame = np.zeros((64, 64, 3), np.uint8)
    with pytest.raises(ValueError, match=r"obs: expected a uint8 array of shape \(64, 64, 3\).*got float32 array of shape \(64, 64, 3\)"):
        agent.act(frame.astype(np.float32))
    with pytest.raises(ValueError, match=r"obs: .*got uint8 array of shape \(500, 500, 3\)"):
        agent.act(np.zeros((500, 500, 3), np.uint8))
    with pytest.raises(ValueError, match="no episode is open"):
        agent.observe(frame, np.zeros(2), 0.0)
    agent.observe(frame)
    with pytest.raises(ValueError, match=r"action: expected a float array of shape \(2,\), got float64 array of shape \(3,\)"):
        agent.observe(frame, np.zeros(3), 0.0)
    with pytest.raises(ValueError, match=r"action: values must lie in \[-1, 1\]"):
        agent.observe(frame, np.array([2.0, 0.0]), 0.0)
    with pytest.raises(ValueError, match="action: values must be finite, found NaN at index \\(0,\\)"):
        agent.observe(frame, np.array([np.nan, 0.0]), 0.0)
    with pytest.raises(ValueError, match="reward: must be finite"):
        agent.observe(frame, np.zeros(2), float("inf"))
    agent.observe(frame, [0.5, -0.5], 1.0, False, True)
    assert agent.episodes == 1 and agent.env_steps == 1
