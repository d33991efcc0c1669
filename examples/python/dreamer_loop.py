"""The Dreamer loop on any environment with the PixelEnv interface (reset() -> (frame, info),
step(action) -> (frame, reward, terminated, truncated, info), action_dim, physics_steps):
random prefill, then alternate training (world model + behaviour) with collecting an episode
with the actor, and evaluate the actor's mode after each. Writes, into the log folder:

- metrics.jsonl: one line per training round, collect and evaluation episode, each with
  `round`: the episodes the agent has finished at the checkpoint that ends the round;
- returns.csv: env steps (physics steps), agent steps, seconds, evaluation return, random return;
- returns.png: the curve with the random policy's return beside it (needs matplotlib);
- checkpoint/: the agent (rssm.Dreamer.save: world model, actor, critic, replay), saved after
  each round, and loop_state.json, the loop's counters (for the last two checkpoints).

Killed and resumed (--resume), the run goes on from its last checkpoint: a crash loses at most
the round it was in. The records are cut back to that checkpoint first (metrics.jsonl keeps
the records of the rounds it ends, a torn last line is dropped; returns.csv and returns.png
are rewritten from the checkpoint's loop state), so they read as if the run had not stopped.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import sys
import time

import numpy as np

import rssm


def add_arguments(p: argparse.ArgumentParser, *, action_repeat: int, episodes_budget_steps: int, train_steps: int, actor_lr: float = 8e-5) -> None:
    p.add_argument("--preset", default="small", help="world-model preset: small (CPU devices), dreamer, tiny")
    p.add_argument("--action-repeat", type=int, default=action_repeat)
    p.add_argument("--env-steps", type=int, default=episodes_budget_steps, help="physics steps to collect in all, prefill included")
    p.add_argument("--minutes", type=float, default=None, help="stop after this many minutes (after the running round)")
    p.add_argument("--prefill", type=int, default=5, help="random episodes before training")
    p.add_argument("--prefill-hold", type=float, default=4.0, help="mean steps a prefill action is held")
    p.add_argument("--random-episodes", type=int, default=5, help="uniform random episodes for the baseline")
    p.add_argument("--final-episodes", type=int, default=10, help="episodes of the final policy (from its checkpoint) and of the random policy, on the same seeds, at the end")
    p.add_argument("--train-steps", type=int, default=train_steps, help="updates after each collected episode")
    p.add_argument("--behaviour-warmup", type=int, default=300, help="world-model steps before the first behaviour update")
    p.add_argument("--expl-noise", type=float, default=0.3)
    p.add_argument("--actor-lr", type=float, default=actor_lr)
    p.add_argument("--critic-lr", type=float, default=8e-5)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--logdir", required=True)
    p.add_argument("--resume", action="store_true", help="continue from logdir/checkpoint")
    p.add_argument("--progress", action=argparse.BooleanOptionalAction, default=None,
                   help="a progress bar on stderr for each round of updates (default: when stderr is a terminal)")


def update_progress(args: argparse.Namespace) -> bool:
    """The `progress` argument of `rssm.Dreamer.update`: --progress / --no-progress, by default
    a text bar when stderr is a terminal (not when the output goes to a log file). A callable
    `progress(done, total)` would do too, e.g. to drive a tqdm bar."""
    return sys.stderr.isatty() if args.progress is None else bool(args.progress)


def run_episode(env, choose, seed: int, observe=None):
    """One episode; `choose(frame) -> action`; `observe(frame, action, reward, terminal, done)`
    (action None for the first frame). Returns the episode's return (in the environment's own
    reward) and its agent steps."""
    frame, _ = env.reset(seed=seed)
    if observe:
        observe(frame, None, 0.0, False, False)
    total, steps = 0.0, 0
    while True:
        action = choose(frame)
        frame, reward, terminated, truncated, info = env.step(action)
        # Returns are reported in the environment's own reward (the agent may train on a
        # rescaled one).
        total += info.get("env_reward", reward)
        steps += 1
        if observe:
            observe(frame, action, reward, terminated, terminated or truncated)
        if terminated or truncated:
            return total, steps


def held_random(action_dim: int, hold: float, rng: np.random.Generator):
    """Uniform random actions, each held for a geometric number of steps with mean `hold`."""
    current: list[np.ndarray | None] = [None]

    def choose(_frame):
        if current[0] is None or rng.random() < 1.0 / max(hold, 1.0):
            current[0] = rng.uniform(-1.0, 1.0, action_dim).astype(np.float32)
        return current[0]

    return choose


def write_atomically(path: str, text: str) -> None:
    """Replace `path` with `text` through a temporary beside it (flushed, fsync'ed, renamed): a
    kill leaves the old file or the new one, never a part."""
    tmp = os.path.join(os.path.dirname(path), "." + os.path.basename(path) + ".tmp")
    with open(tmp, "w", newline="") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def remove_temporaries(logdir: str) -> None:
    """The temporaries (`.NAME.tmp`) a kill left in the log folder."""
    for name in os.listdir(logdir):
        if name.startswith(".") and name.endswith(".tmp") and os.path.isfile(os.path.join(logdir, name)):
            os.remove(os.path.join(logdir, name))


def cut_records(path: str, keep) -> int:
    """Rewrite the JSON-lines file `path` (atomically) with the records for which `keep(record)`
    is true, in order; a line that does not parse (the last one, torn by a kill) is dropped.
    Returns the number of lines removed."""
    if not os.path.exists(path):
        return 0
    with open(path, newline="") as f:
        lines = f.read().split("\n")
    kept = []
    for line in lines:
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except ValueError:
            continue
        if isinstance(record, dict) and keep(record):
            kept.append(line)
    removed = sum(1 for line in lines if line.strip()) - len(kept)
    text = "".join(line + "\n" for line in kept)
    if removed or text != "\n".join(lines):
        write_atomically(path, text)
    return removed


def in_checkpoint(record: dict, episodes: int, physics_steps: int, updates: int) -> bool:
    """Whether a metrics.jsonl record belongs to the checkpoint of an agent with `episodes`
    finished episodes: by its `round`, or, for records without one (older runs), by its
    environment steps and world-model step."""
    if "round" in record:
        return record["round"] <= episodes
    step = record.get("step")
    return record.get("env_steps", 0) <= physics_steps and (step is None or step <= updates)


def write_returns_csv(logdir: str, evals: list) -> None:
    if not evals:
        return
    import io

    out = io.StringIO()
    w = csv.DictWriter(out, fieldnames=list(evals[0]))
    w.writeheader()
    w.writerows(evals)
    write_atomically(os.path.join(logdir, "returns.csv"), out.getvalue())


def save_states(path: str, states: list) -> None:
    """The loop states of the last two checkpoints (the one being saved last): written before
    the agent, so whichever checkpoint a kill leaves has its state here."""
    write_atomically(path, json.dumps({"states": states}, indent=1))


def load_state(path: str, episodes: int) -> dict:
    """The loop state of the checkpoint whose agent has finished `episodes` episodes."""
    with open(path) as f:
        saved = json.load(f)
    states = saved.get("states", [saved])  # older runs: the state alone
    for st in reversed(states):
        if st.get("episode") == episodes:
            return st
    raise RuntimeError(f"{path} has no loop state for the checkpoint's {episodes} episodes")


def write_curve(logdir: str, rows: list, random_return: float, title: str) -> None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return
    steps = [r["env_steps"] for r in rows]
    fig, ax = plt.subplots(figsize=(7, 4))
    ax.plot(steps, [r["return"] for r in rows], "o-", ms=3, label="Dreamer (actor's mode)")
    ax.axhline(random_return, color="tab:orange", ls="--", label="uniform random policy")
    ax.set_xlabel("environment steps (physics)")
    ax.set_ylabel("episode return")
    ax.set_title(title)
    ax.legend()
    fig.tight_layout()
    tmp = os.path.join(logdir, ".returns.png.tmp")
    fig.savefig(tmp, dpi=100, format="png")
    plt.close(fig)
    os.replace(tmp, os.path.join(logdir, "returns.png"))


def train(env, args, title: str) -> dict:
    os.makedirs(args.logdir, exist_ok=True)
    ckpt = os.path.join(args.logdir, "checkpoint")
    state_path = os.path.join(args.logdir, "loop_state.json")
    device = rssm.Device()
    print(f"device: {device.info()['name']} ({device.info()['backend']}); env action_dim {env.action_dim}, action repeat {env.action_repeat}")
    eval_seed = 10_000
    metrics_path = os.path.join(args.logdir, "metrics.jsonl")
    remove_temporaries(args.logdir)
    if args.resume:
        agent = rssm.Dreamer.load(ckpt, device=device)
        st = load_state(state_path, agent.episodes)
        env.physics_steps = st["physics_steps"]
        # The records of a killed run, cut back to the checkpoint.
        removed = cut_records(metrics_path, lambda r: in_checkpoint(r, agent.episodes, st["physics_steps"], agent.updates))
        write_returns_csv(args.logdir, st["evals"])
        if st["evals"]:
            write_curve(args.logdir, st["evals"], st["random_return"], title)
        print(f"resumed: {agent}" + (f"; {removed} records after the checkpoint removed from metrics.jsonl" if removed else ""))
    else:
        config = rssm.Config(args.preset, seed=args.seed)
        agent = rssm.Dreamer(
            action_dim=env.action_dim,
            obs_shape=(64, 64, 3),
            config=config,
            device=device,
            behaviour_warmup=args.behaviour_warmup,
            expl_noise=args.expl_noise,
            actor_lr=args.actor_lr,
            critic_lr=args.critic_lr,
        )
        rng = np.random.default_rng(args.seed)
        uniform = lambda _f: rng.uniform(-1.0, 1.0, env.action_dim).astype(np.float32)
        rets = [run_episode(env, uniform, eval_seed + i)[0] for i in range(args.random_episodes)]
        st = {"random_return": float(np.mean(rets)), "evals": [], "seconds": 0.0, "episode": 0}
        env.physics_steps = 0
        prefill = held_random(env.action_dim, args.prefill_hold, rng)
        for i in range(args.prefill):
            ret, _ = run_episode(env, prefill, args.seed * 1000 + i, agent.observe)
            st["episode"] += 1
        st["physics_steps"] = env.physics_steps
        print(f"random policy: {st['random_return']:.1f} (mean of {args.random_episodes}); prefill {args.prefill} episodes, {env.physics_steps} physics steps")
        # A fresh run's records start empty.
        open(metrics_path, "w").close()
    saved = json.loads(json.dumps(st))  # the state of the last checkpoint
    log = open(metrics_path, "a")
    start = time.time() - st["seconds"]
    deadline = None if args.minutes is None else time.time() + 60 * args.minutes
    while env.physics_steps < args.env_steps and (deadline is None or time.time() < deadline):
        m = agent.update(args.train_steps, progress=update_progress(args))
        # `round`: the agent's finished episodes at the checkpoint that ends this round.
        log.write(json.dumps({"kind": "train", "round": st["episode"] + 1, "env_steps": env.physics_steps, **m}) + "\n")
        ret, n = run_episode(env, lambda f: agent.act(f, explore=True), args.seed * 1000 + st["episode"], agent.observe)
        st["episode"] += 1
        log.write(json.dumps({"kind": "collect", "round": st["episode"], "env_steps": env.physics_steps, "return": ret}) + "\n")
        # Evaluate the actor's mode (the agent's replay is not touched).
        # Evaluation steps are not training data: they do not count as env steps.
        counted = env.physics_steps
        agent.reset()
        eval_ret, _ = run_episode(env, lambda f: agent.act(f, explore=False), eval_seed + st["episode"])
        agent.reset()
        env.physics_steps = counted
        secs = time.time() - start
        row = {"env_steps": env.physics_steps, "agent_steps": agent.env_steps, "seconds": round(secs, 1), "return": eval_ret, "random_return": st["random_return"]}
        st["evals"].append(row)
        log.write(json.dumps({"kind": "eval", "round": st["episode"], **row}) + "\n")
        log.flush()
        beh = f"actor {m['actor_loss']:.3f} return {m['mean_return']:.2f}" if m.get("behaviour_updates") else "behaviour waits"
        print(
            f"{env.physics_steps:6d} env steps | {secs:6.0f} s | wm loss {m['loss']:.1f} (image {m['image_nll']:.1f}, kl {m['kl']:.2f}) | {beh} | "
            f"collect {ret:8.1f} | eval {eval_ret:8.1f} (random {st['random_return']:.1f})",
            flush=True,
        )
        st["seconds"] = secs
        st["physics_steps"] = env.physics_steps
        save_states(state_path, [saved, st])
        agent.save(ckpt, replay=True)  # the whole folder at once
        saved = json.loads(json.dumps(st))
        write_returns_csv(args.logdir, st["evals"])
        write_curve(args.logdir, st["evals"], st["random_return"], title)
    log.close()
    # The trained agent acting from its checkpoint alone (world model + actor weights), against
    # the uniform random policy on the same start states.
    print(f"done: {env.physics_steps} env steps in {time.time() - start:.0f} s")
    final = evaluate_checkpoint(env, ckpt, device, args.final_episodes, args.seed)
    with open(os.path.join(args.logdir, "final.json"), "w") as f:
        json.dump(final, f, indent=1)
    return {"random_return": st["random_return"], "evals": st["evals"], **final}


def evaluate_checkpoint(env, ckpt: str, device, episodes: int, seed: int) -> dict:
    """The policy loaded from `ckpt` (`rssm.Policy.load`: world model + actor weights, no
    training state) and the uniform random policy, each over `episodes` episodes from the
    same seeds (20,000 on, apart from the training and evaluation seeds)."""
    policy = rssm.Policy.load(ckpt, device=device)
    seeds = [20_000 + i for i in range(max(episodes, 1))]
    rng = np.random.default_rng(seed + 1)
    uniform = lambda _f: rng.uniform(-1.0, 1.0, env.action_dim).astype(np.float32)
    policy_rets, random_rets = [], []
    for s in seeds:
        policy.reset()
        policy_rets.append(run_episode(env, lambda f: policy.act(f), s)[0])
        random_rets.append(run_episode(env, uniform, s)[0])
    out = {
        "seeds": seeds,
        "policy_returns": policy_rets,
        "random_returns": random_rets,
        "policy_mean": float(np.mean(policy_rets)),
        "random_mean": float(np.mean(random_rets)),
        "policy_better_on": int(sum(p > r for p, r in zip(policy_rets, random_rets))),
    }
    print(
        f"the policy loaded from {ckpt} (world model + actor weights): {out['policy_mean']:.1f} "
        f"on average over {len(seeds)} episodes; the uniform random policy on the same seeds: "
        f"{out['random_mean']:.1f}; the policy did better on {out['policy_better_on']} of {len(seeds)}"
    )
    return out
