"""rssm: train Recurrent State-Space Models (Dreamer world models) and Dreamer agents on any
GPU (or CPU Vulkan driver) through wgpu."""

# Type stubs of the extension module built from src/lib.rs; maturin ships this file as
# rssm/__init__.pyi with rssm/py.typed. `.ci/run` checks it against the built module
# (`python -m mypy.stubtest rssm`) and type-checks examples/python against it; tests/
# test_stubs.py checks that it names everything the module exports. Keep the docstrings the
# Rust doc comments.

import os
from typing import Any, Callable, ClassVar, TypedDict, Union, final

import numpy as np
import numpy.typing as npt

__all__ = [
    "Device",
    "Config",
    "WorldModel",
    "Dreamer",
    "Policy",
    "_engine_panic",
    "EngineError",
    "__version__",
]

__version__: str

_Path = Union[str, os.PathLike[str]]
_F32 = npt.NDArray[np.float32]
_U8 = npt.NDArray[np.uint8]

# A long call's `progress`: None or False (off, the default), True (a text bar on
# sys.stderr) or a callable progress(done, total).
_Progress = Union[Callable[[int, int], object], bool, None]

class _DeviceInfo(TypedDict):
    name: str
    backend: str
    device_type: str
    driver: str
    is_cpu: bool
    max_storage_binding: int
    max_buffer: int
    timestamps: bool
    subgroup_lanes: int | None
    matmul_kernel: str
    tuning: str
    tuning_why: list[str]
    features: str
    profile: str | None
    profile_shortfalls: list[str]
    closest_profile: str

class _StepMetrics(TypedDict):
    """The loss terms of one training step, as `rssm train` logs them."""

    step: int
    loss: float
    image_nll: float
    reward_nll: float
    cont_nll: float
    kl: float
    kl_loss: float
    grad_norm: float

class _Observation(TypedDict):
    """What `WorldModel.observe` returns."""

    deter: _F32
    stoch: _F32
    prior_mean: _F32
    decoded: _U8

class _UpdateMeans(TypedDict):
    updates: int
    step: int | None
    loss: float
    image_nll: float
    reward_nll: float
    cont_nll: float
    kl: float
    kl_loss: float
    grad_norm: float
    first_loss: float | None
    last_loss: float | None
    behaviour_updates: int

class _UpdateMetrics(_UpdateMeans, total=False):
    """What `Dreamer.update` returns; the behaviour's terms only when it had behaviour
    updates."""

    actor_loss: float
    critic_loss: float
    mean_return: float
    mean_value: float
    actor_mean_rms: float
    actor_std: float

class EngineError(RuntimeError):
    """An error of the GPU device or of the engine itself."""

@final
class Device:
    """A GPU (or CPU Vulkan/GL driver) chosen as `rssm` chooses it: the best adapter found, or the
    one whose name contains `adapter` (also `WGPU_ADAPTER_NAME`); `WGPU_BACKEND` restricts the
    backends searched. `tuning` forces kernel choices over the device's rules and `RSSM_TUNING`
    (comma-separated key=value, e.g. "lanes=off,path=per-op"; `info()["tuning"]` prints them).
    `profile` runs it as another class of device (webgpu, downlevel, apple-m, nvidia, amd-rdna,
    intel-igpu, mobile; also `RSSM_DEVICE_PROFILE`): that class's limits, each capped at the
    adapter's, features, subgroup widths and device type, so the engine chooses as there.
    `tune` is how world models and agents made on it get their kernel choices: "auto" (the
    default, also `RSSM_TUNE`: those `rssm tune` measured and cached for their configuration,
    else the rules), "off" (the rules) or "force" (measure now, about a minute, and cache)."""

    def __new__(
        cls,
        adapter: str | None = None,
        tuning: str | None = None,
        profile: str | None = None,
        tune: str | None = None,
    ) -> Device: ...
    def info(self) -> _DeviceInfo:
        """The adapter's name, backend, device type, driver, limits, features, subgroup width, the
        matmul kernel it takes and its kernel choices (`tuning`, in the `RSSM_TUNING` syntax,
        with `tuning_why`: a line per choice); the device profile it runs under (`profile`,
        `None` without one, and `profile_shortfalls`: the limits the adapter offers less of) and
        the one the adapter is closest to (`closest_profile`)."""

    @staticmethod
    def adapters() -> list[str]:
        """Every adapter wgpu finds."""

@final
class Config:
    """A world-model configuration: a preset (`dreamer`, the specification; `small`, for CPU
    devices; `tiny`, for tests) with any of the specification's keys overridden, e.g.
    `Config("small", deter=64, seed=3)`. Unknown keys are an error."""

    __hash__: ClassVar[None]  # type: ignore[assignment]
    def __new__(cls, preset: str = "dreamer", **keys: float) -> Config: ...
    @staticmethod
    def from_file(path: _Path) -> Config:
        """A configuration file (.json or .toml) with the specification's keys."""

    def replace(self, **keys: float) -> Config:
        """A copy with some keys changed."""

    def to_dict(self) -> dict[str, int | float | str]:
        """Every key and its value."""

    def to_json(self) -> str:
        """The configuration as JSON (the format `rssm --config` reads)."""

    def __getattr__(self, name: str) -> Any:
        """A key's value (`config.deter`, `config.batch`, ...), as in `to_dict`."""

    def __eq__(self, value: object, /) -> bool: ...

@final
class WorldModel:
    """The world model with its Adam state: `train_step`, `observe`, `imagine`, checkpoints in the
    layout `rssm train` writes (`checkpoint.safetensors` + `optimizer.safetensors` in a folder)."""

    def __new__(
        cls,
        config: Config | None = None,
        action_dim: int | None = None,
        device: Device | None = None,
    ) -> WorldModel:
        """A fresh world model for `config` (default: the preset for the device) with `action_dim`
        action components (default: the configuration's)."""

    @staticmethod
    def load(path: _Path, config: Config | None = None, device: Device | None = None) -> WorldModel:
        """Load a checkpoint folder (`checkpoint.safetensors` + `optimizer.safetensors`, as written
        by `save`, `rssm train` or `rssm dreamer`): weights, Adam state and step. A weights file
        alone loads with `config=` (a fresh optimiser, step 0)."""

    def save(self, path: _Path) -> None:
        """Write the checkpoint folder `path` (atomically): the layout `rssm train` writes, which
        `rssm imagine`, `rssm evaluate` (its `checkpoint.safetensors`) and `rssm train --resume`
        read."""

    @property
    def config(self) -> Config: ...
    @property
    def step(self) -> int:
        """Training steps done."""

    @property
    def num_parameters(self) -> int:
        """Number of weights."""

    def train_step(
        self,
        obs: npt.ArrayLike,
        action: npt.ArrayLike,
        reward: npt.ArrayLike,
        cont: npt.ArrayLike,
        eps: npt.ArrayLike | None = None,
    ) -> _StepMetrics:
        """One training step (loss, backward, clipped Adam) on a batch: `obs` uint8
        `(B, T, 64, 64, 3)` or float `(B, T, 3, 64, 64)` in [-0.5, 0.5], `action (B, T, A)`
        (the action that led to each frame), `reward (B, T)`, `cont (B, T)` (0 at terminal
        frames), optional `eps (B, T, stoch)` (the posterior noise; by default drawn from the
        step number). Returns the loss terms before the update, as `rssm train` logs them."""

    def observe(self, obs: npt.ArrayLike, action: npt.ArrayLike, sample: bool = False) -> _Observation:
        """Filter a batch with the posterior from the zero state: `obs` as in `train_step`,
        `action (B, T, A)`. Returns `deter (B, T, deter)`, `stoch (B, T, stoch)` (the
        posterior's mean, or a sample with `sample=True`), `prior_mean (B, T, stoch)` and
        `decoded` (uint8 reconstructions `(B, T, 64, 64, 3)`)."""

    def imagine(
        self,
        start: _Observation | dict[str, npt.ArrayLike] | tuple[npt.ArrayLike, npt.ArrayLike],
        actions: npt.ArrayLike | None = None,
        actor: Dreamer | Policy | None = None,
        steps: int | None = None,
    ) -> _U8:
        """Decode a rollout of the prior imagined from `start` (the dict `observe` returns, whose
        last step is used, or `(deter (B, deter), stoch (B, stoch))`), driven by `actions
        (B, steps, A)` or by `actor` (an `rssm.Dreamer` or `rssm.Policy`, its mode) for `steps`
        steps. Returns uint8 frames `(B, steps, 64, 64, 3)`."""

@final
class Dreamer:
    """A whole Dreamer agent: replay of episodes, world model, actor and critic.

    The loop, with a Gymnasium-style environment giving 64x64x3 uint8 frames and taking
    actions in [-1, 1] (see `examples/python`)::

        obs, _ = env.reset()
        agent.observe(obs)                      # the first frame of an episode
        while True:
            action = agent.act(obs)             # explore=True: sample + noise
            obs, reward, terminated, truncated, _ = env.step(action)
            agent.observe(obs, action, reward, terminated, terminated or truncated)
            if terminated or truncated: break
        agent.update(100)                       # world model + behaviour
    """

    def __new__(
        cls,
        action_dim: int,
        obs_shape: tuple[int, int, int] = ...,  # (64, 64, 3), the only shape it takes
        config: Config | None = None,
        device: Device | None = None,
        *,
        behaviour_warmup: int = 300,
        expl_noise: float = 0.3,
        horizon: int = 15,
        gamma: float = 0.99,
        lambda_: float = 0.95,
        actor_lr: float = 8e-5,
        critic_lr: float = 8e-5,
        replay_capacity: int = 2000000,
    ) -> Dreamer:
        """A fresh agent for `action_dim` continuous actions in [-1, 1] and 64x64 RGB frames.
        `config`: the world model's (default: the preset for the device); the rest are the
        agent's settings (`rssm dreamer`'s defaults)."""

    def act(self, obs: npt.ArrayLike, explore: bool = True) -> _F32:
        """The action (float32 `(A,)` in [-1, 1]) for `obs` (uint8 `(64, 64, 3)`): sampled plus
        exploration noise when `explore`, the actor's mode otherwise."""

    def observe(
        self,
        obs: npt.ArrayLike,
        action: npt.ArrayLike | None = None,
        reward: float = 0.0,
        terminal: bool = False,
        done: bool = False,
    ) -> None:
        """Record what the environment did. `observe(obs)` (no action): the first frame of an
        episode. `observe(obs, action, reward, terminal, done)`: `action` was executed,
        `reward` received and `obs` reached; `terminal` if `obs` is a terminal state (not a
        time limit), `done` if the episode ended (terminal or truncated). A finished episode
        goes into the replay."""

    def reset(self) -> None:
        """Forget the recurrent filter state (the next `act` starts an episode)."""

    def update(self, n: int = 1, progress: _Progress = None) -> _UpdateMetrics:
        """`n` updates, each a world-model step on a batch from the replay and (past the warm-up)
        a behaviour update. Returns the means of the loss terms over the `n` updates, with
        `first_loss` and `last_loss`. `progress`: `None` or `False` (the default) reports
        nothing, `True` draws a text bar on `sys.stderr`, a callable `progress(done, total)` is
        called before the first update (`done = 0`) and after each one, with the GIL held and
        the agent free to use; an exception it raises stops the updates and propagates."""

    def save(self, path: _Path, replay: bool = True) -> None:
        """Write the checkpoint folder `path`: world model, actor, critic, their Adam states,
        `agent.json` and, with `replay=True`, the replay's episodes as `.npz`. `rssm imagine
        --checkpoint path` and `rssm.Policy.load(path)` read it."""

    @staticmethod
    def load(path: _Path, device: Device | None = None) -> Dreamer:
        """Load a folder written by `save` (training continues where it stopped)."""

    @property
    def config(self) -> Config: ...
    @property
    def action_dim(self) -> int: ...
    @property
    def env_steps(self) -> int:
        """Transitions observed."""

    @property
    def episodes(self) -> int:
        """Episodes finished."""

    @property
    def updates(self) -> int:
        """World-model steps done."""

    @property
    def behaviour_updates(self) -> int:
        """Behaviour updates done."""

    @property
    def replay_steps(self) -> int:
        """Steps in the replay."""

    @property
    def can_update(self) -> bool:
        """True when the replay holds a sequence long enough to train on."""

@final
class Policy:
    """A trained agent that acts from a checkpoint folder's weights alone (world model and actor;
    no optimiser state, critic or replay): `Policy.load(path)`, then `act(obs)` per step and
    `reset()` between episodes."""

    @staticmethod
    def load(path: _Path, device: Device | None = None) -> Policy: ...
    def act(self, obs: npt.ArrayLike, explore: bool = False, expl_noise: float = 0.0) -> _F32:
        """The action for `obs` (uint8 `(64, 64, 3)`): the actor's mode, or a sample plus
        Gaussian noise of std `expl_noise` with `explore=True`."""

    def reset(self) -> None:
        """Start a new episode."""

    @property
    def config(self) -> Config: ...
    @property
    def action_dim(self) -> int: ...

def _engine_panic() -> None:
    """Raise what a panic inside the engine becomes (for the tests of this boundary)."""
