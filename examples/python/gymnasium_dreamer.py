"""Train a Dreamer agent on a Gymnasium task from pixels (default: Pendulum-v1 from its
rendering), with the rssm Python package.

    pip install ./python gymnasium[classic-control] matplotlib
    python examples/python/gymnasium_dreamer.py --logdir runs/gym_pendulum --minutes 60

Writes metrics.jsonl, returns.csv, returns.png and checkpoint/ into --logdir (see
dreamer_loop.py); `rssm imagine --checkpoint LOGDIR/checkpoint` dreams with the trained actor
(in the built-in pendulum: the CLI's environments are its own).
"""

import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import gymnasium as gym  # noqa: E402

from dreamer_loop import add_arguments, train  # noqa: E402
from pixel_env import PixelEnv  # noqa: E402


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--env", default="Pendulum-v1", help="a Gymnasium id with a continuous action space")
    add_arguments(p, action_repeat=2, episodes_budget_steps=100_000)
    args = p.parse_args()
    env = PixelEnv(gym.make(args.env, render_mode="rgb_array"), action_repeat=args.action_repeat)
    train(env, args, title=f"{args.env} from pixels, preset {args.preset}, action repeat {args.action_repeat}")


if __name__ == "__main__":
    main()
