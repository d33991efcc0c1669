"""Killed mid-round and resumed, the example loop (examples/python/dreamer_loop.py) leaves the
records of an uninterrupted run: metrics.jsonl and returns.csv cut back to the checkpoint, the
agent's counters, replay and episode files in agreement."""

import argparse
import csv
import json
import shutil

import gymnasium as gym

import rssm
from dreamer_loop import add_arguments, train
from pixel_env import PixelEnv


def loop_args(logdir, env_steps, resume=False):
    p = argparse.ArgumentParser()
    add_arguments(p, action_repeat=4, episodes_budget_steps=env_steps, train_steps=2)
    argv = ["--preset", "tiny", "--logdir", str(logdir), "--prefill", "2", "--random-episodes", "1",
            "--final-episodes", "1", "--behaviour-warmup", "1"]
    return p.parse_args(argv + (["--resume"] if resume else []))


def test_a_killed_loop_resumes_with_its_records_cut_back_to_the_checkpoint(tmp_path, device):
    env = PixelEnv(gym.make("Pendulum-v1", render_mode="rgb_array"), action_repeat=4)
    logdir = tmp_path / "run"
    # Prefill (2 episodes of 200 physics steps), then two rounds: the checkpoint counts 4.
    train(env, loop_args(logdir, 800), title="test")
    ckpt = logdir / "checkpoint"
    assert rssm.Dreamer.load(ckpt, device=device).episodes == 4
    # What a kill in the next round leaves: its records (one torn), its loop state written
    # ahead of the agent's save, a stale temporary, an episode file past the counters.
    with open(logdir / "metrics.jsonl", "a") as f:
        f.write(json.dumps({"kind": "train", "round": 5, "env_steps": 800, "step": 6}) + "\n")
        f.write(json.dumps({"kind": "collect", "round": 5, "env_steps": 1000, "return": 0.0}) + "\n")
        f.write('{"kind": "eval", "round": 5, "env_st')
    states = json.loads((logdir / "loop_state.json").read_text())["states"]
    ahead = dict(states[-1], episode=5, physics_steps=1000)
    (logdir / "loop_state.json").write_text(json.dumps({"states": [states[-1], ahead]}))
    with open(logdir / "returns.csv", "a") as f:
        f.write("1000,250,1.0,0.0,0.0\n")
    (logdir / ".returns.csv.tmp").write_text("half")
    shutil.copy(ckpt / "episodes" / "episode_000003.npz", ckpt / "episodes" / "episode_000007.npz")

    train(env, loop_args(logdir, 1000, resume=True), title="test")

    records = [json.loads(line) for line in (logdir / "metrics.jsonl").read_text().splitlines()]
    keys = [(r["kind"], r["round"]) for r in records]
    assert sorted(keys) == sorted((kind, n) for kind in ("train", "collect", "eval") for n in (3, 4, 5)), keys
    with open(logdir / "returns.csv") as f:
        rows = list(csv.DictReader(f))
    assert [int(r["env_steps"]) for r in rows] == [600, 800, 1000]
    evals = [r for r in records if r["kind"] == "eval"]
    assert [float(r["return"]) for r in rows] == [r["return"] for r in evals]
    assert not list(logdir.glob(".*.tmp")) and not list(tmp_path.glob(".*.tmp"))
    # The checkpoint: 5 episodes of 50 agent steps counted, each once in the replay.
    agent = rssm.Dreamer.load(ckpt, device=device)
    assert (agent.episodes, agent.env_steps, agent.replay_steps) == (5, 250, 5 * 51)
