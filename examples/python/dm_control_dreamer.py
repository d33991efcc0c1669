"""Train a Dreamer agent on a DeepMind Control Suite task from pixels (default: cartpole
swing-up), with the rssm Python package.

    pip install ./python dm_control matplotlib
    MUJOCO_GL=egl python examples/python/dm_control_dreamer.py --logdir runs/dmc_cartpole
    # without a GPU: MUJOCO_GL=osmesa (Debian: apt-get install libosmesa6)

The suite renders 64x64 frames itself (camera 0); actions are already in [-1, 1]; episodes are
1000 physics steps (time limit, never terminal). See dreamer_loop.py for what it writes.
"""

import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import numpy as np  # noqa: E402

from dreamer_loop import add_arguments, train  # noqa: E402


class DMCPixels:
    """A dm_control task with the PixelEnv interface."""

    def __init__(self, domain: str, task: str, action_repeat: int, size: int = 64, camera: int = 0):
        from dm_control import suite

        self._domain, self._task = domain, task
        self._env = suite.load(domain, task)
        spec = self._env.action_spec()
        self._low, self._high = spec.minimum, spec.maximum
        self.action_dim = int(np.prod(spec.shape))
        self.action_repeat = action_repeat
        self.size, self.camera = size, camera
        self.physics_steps = 0

    def _frame(self):
        return self._env.physics.render(self.size, self.size, camera_id=self.camera).copy()

    def reset(self, seed=None):
        if seed is not None:
            from dm_control import suite

            self._env = suite.load(self._domain, self._task, task_kwargs={"random": seed})
        self._env.reset()
        return self._frame(), {}

    def step(self, action):
        a = np.clip(np.asarray(action, dtype=np.float64), -1.0, 1.0)
        a = self._low + (a + 1.0) * 0.5 * (self._high - self._low)
        total, last = 0.0, False
        for _ in range(self.action_repeat):
            ts = self._env.step(a)
            self.physics_steps += 1
            total += ts.reward or 0.0
            if ts.last():
                last = True
                break
        # dm_control episodes end by their time limit: truncated, never terminal.
        return self._frame(), total, False, last, {}


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--task", default="cartpole-swingup", help="domain-task, e.g. cartpole-swingup, walker-walk")
    add_arguments(p, action_repeat=8, episodes_budget_steps=500_000, train_steps=50)
    args = p.parse_args()
    domain, task = args.task.split("-", 1)
    env = DMCPixels(domain, task.replace("-", "_"), args.action_repeat)
    train(env, args, title=f"dm_control {args.task} from pixels, preset {args.preset}")


if __name__ == "__main__":
    main()
