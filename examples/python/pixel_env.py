"""Gymnasium environments as the rssm agent sees them: 64x64 RGB uint8 frames, continuous
actions in [-1, 1], and an action repeat.

``PixelEnv(gym.make("Pendulum-v1", render_mode="rgb_array"))`` renders every step (state-based
environments), or takes the observation itself when it already is an image (``from_render=False``).
Frames larger than 64x64 are shrunk by averaging the pixels that fall into each output pixel
(area resampling), so thin lines fade rather than vanish.
"""

from __future__ import annotations

import numpy as np

import gymnasium as gym


def resize_area(image: np.ndarray, size: int = 64) -> np.ndarray:
    """Resize an ``(H, W, 3)`` image to ``(size, size, 3)`` uint8: area averaging when
    shrinking, nearest pixel when growing. Non-square images are stretched."""
    if image.ndim != 3 or image.shape[2] < 3:
        raise ValueError(f"expected an (H, W, 3) image, got shape {image.shape}")
    img = np.asarray(image[..., :3], dtype=np.float32)
    for axis in (0, 1):
        n = img.shape[axis]
        if n >= size:
            edges = (np.arange(size + 1) * n) // size
            img = np.add.reduceat(img, edges[:-1], axis=axis)
            counts = np.diff(edges).astype(np.float32)
            shape = [1, 1, 1]
            shape[axis] = size
            img = img / counts.reshape(shape)
        else:
            idx = (np.arange(size) * n) // size
            img = np.take(img, idx, axis=axis)
    return np.clip(np.rint(img), 0, 255).astype(np.uint8)


class PixelEnv(gym.Wrapper):
    """A Gymnasium environment with a continuous (Box) action space, seen through pixels.

    - observations: ``(64, 64, 3)`` uint8 frames, from ``env.render()`` (the environment must
      be made with ``render_mode="rgb_array"``) or from the observation when it is an image;
    - actions: ``(A,)`` floats in [-1, 1], mapped linearly onto the environment's bounds;
    - each action is applied ``action_repeat`` times, the rewards summed; the episode stops at
      the first ``terminated`` or ``truncated``.

    - ``reward_scale * r + reward_shift`` per physics step is what ``step`` returns (the
      environment's own reward sum is in ``info["env_reward"]``): Pendulum-v1's cost in
      [-16.27, 0] maps onto [0, 1] with scale 1 / 16.2736 and shift 1, the range of the
      DeepMind Control Suite's rewards that Dreamer's defaults were made for; over episodes of
      a fixed length a shift changes no policy's rank.

    ``physics_steps`` counts the underlying environment's steps (what "environment steps" means
    in the Dreamer papers).
    """

    def __init__(
        self,
        env: gym.Env,
        action_repeat: int = 2,
        size: int = 64,
        from_render: bool | None = None,
        reward_scale: float = 1.0,
        reward_shift: float = 0.0,
    ):
        super().__init__(env)
        space = env.action_space
        if not isinstance(space, gym.spaces.Box):
            raise ValueError(f"PixelEnv needs a continuous (Box) action space, got {space}")
        if action_repeat < 1:
            raise ValueError(f"action_repeat must be at least 1, got {action_repeat}")
        self._low = np.asarray(space.low, dtype=np.float64).reshape(-1)
        self._high = np.asarray(space.high, dtype=np.float64).reshape(-1)
        if not (np.all(np.isfinite(self._low)) and np.all(np.isfinite(self._high))):
            raise ValueError("PixelEnv needs finite action bounds")
        self._action_shape = space.shape
        obs_space = env.observation_space
        image_obs = isinstance(obs_space, gym.spaces.Box) and len(obs_space.shape) == 3 and obs_space.dtype == np.uint8
        self.from_render = (not image_obs) if from_render is None else from_render
        if self.from_render and env.render_mode != "rgb_array":
            raise ValueError(
                "this environment's observations are not images: make it with render_mode='rgb_array' "
                "(e.g. gym.make('Pendulum-v1', render_mode='rgb_array'))"
            )
        self.action_repeat = action_repeat
        self.size = size
        self.action_dim = int(self._low.size)
        self.action_space = gym.spaces.Box(-1.0, 1.0, (self.action_dim,), np.float32)
        self.observation_space = gym.spaces.Box(0, 255, (size, size, 3), np.uint8)
        self.reward_scale, self.reward_shift = float(reward_scale), float(reward_shift)
        self.physics_steps = 0

    def _frame(self, obs) -> np.ndarray:
        image = self.env.render() if self.from_render else obs
        if image is None:
            raise RuntimeError("render() returned None: make the environment with render_mode='rgb_array'")
        return resize_area(np.asarray(image), self.size)

    def reset(self, *, seed: int | None = None, options=None):
        obs, info = self.env.reset(seed=seed, options=options)
        return self._frame(obs), info

    def step(self, action):
        a = np.asarray(action, dtype=np.float64).reshape(-1)
        if a.size != self.action_dim:
            raise ValueError(f"action: expected {self.action_dim} components, got {a.size}")
        a = np.clip(a, -1.0, 1.0)
        env_action = (self._low + (a + 1.0) * 0.5 * (self._high - self._low)).reshape(self._action_shape)
        total = raw = 0.0
        terminated = truncated = False
        info: dict = {}
        for _ in range(self.action_repeat):
            obs, reward, terminated, truncated, info = self.env.step(env_action.astype(self.env.action_space.dtype))
            self.physics_steps += 1
            raw += float(reward)
            total += self.reward_scale * float(reward) + self.reward_shift
            if terminated or truncated:
                break
        info = dict(info, env_reward=raw)
        return self._frame(obs), total, terminated, truncated, info
