"""The Dreamer loop on any environment with the PixelEnv interface (reset() -> (frame, info),
step(action) -> (frame, reward, terminated, truncated, info), action_dim, physics_steps):
random prefill, then alternate training (world model + behaviour) with collecting an episode
with the actor, and evaluate the actor's mode after each. Writes, into the log folder:

- metrics.jsonl: one line per training round, collect and evaluation episode;
- returns.csv: env steps (physics steps), agent steps, seconds, evaluation return, random return;
- returns.png: the curve with the random policy's return beside it (needs matplotlib);
- checkpoint/: the agent (rssm.Dreamer.save: world model, actor, critic, replay).
"""

from __future__ import annotations

import argparse
import csv
import json
import os
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
    current = [None]

    def choose(_frame):
        if current[0] is None or rng.random() < 1.0 / max(hold, 1.0):
            current[0] = rng.uniform(-1.0, 1.0, action_dim).astype(np.float32)
        return current[0]

    return choose


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
    if args.resume:
        agent = rssm.Dreamer.load(ckpt, device=device)
        with open(state_path) as f:
            st = json.load(f)
        env.physics_steps = st["physics_steps"]
        print(f"resumed: {agent}")
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
    log = open(os.path.join(args.logdir, "metrics.jsonl"), "a")
    start = time.time() - st["seconds"]
    deadline = None if args.minutes is None else time.time() + 60 * args.minutes
    while env.physics_steps < args.env_steps and (deadline is None or time.time() < deadline):
        m = agent.update(args.train_steps)
        log.write(json.dumps({"kind": "train", "env_steps": env.physics_steps, **m}) + "\n")
        ret, n = run_episode(env, lambda f: agent.act(f, explore=True), args.seed * 1000 + st["episode"], agent.observe)
        st["episode"] += 1
        log.write(json.dumps({"kind": "collect", "env_steps": env.physics_steps, "return": ret}) + "\n")
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
        log.write(json.dumps({"kind": "eval", **row}) + "\n")
        log.flush()
        beh = f"actor {m['actor_loss']:.3f} return {m['mean_return']:.2f}" if m.get("behaviour_updates") else "behaviour waits"
        print(
            f"{env.physics_steps:6d} env steps | {secs:6.0f} s | wm loss {m['loss']:.1f} (image {m['image_nll']:.1f}, kl {m['kl']:.2f}) | {beh} | "
            f"collect {ret:8.1f} | eval {eval_ret:8.1f} (random {st['random_return']:.1f})",
            flush=True,
        )
        st["seconds"] = secs
        st["physics_steps"] = env.physics_steps
        agent.save(ckpt, replay=True)
        with open(state_path + ".tmp", "w") as f:
            json.dump(st, f, indent=1)
        os.replace(state_path + ".tmp", state_path)
        with open(os.path.join(args.logdir, "returns.csv"), "w", newline="") as f:
            w = csv.DictWriter(f, fieldnames=list(row))
            w.writeheader()
            w.writerows(st["evals"])
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
