"""One reward model per process and spec, loaded on first use, shared by every env that asks.

The registered CLIP envs take a model *spec* (model name, prompts, alpha, device), never a
loaded model: Gymnasium copies an env's keyword arguments into ``env.spec``, and vector envs
pickle them to worker processes. :class:`SharedRewardModel` is that spec made callable. It loads
nothing until the first frame is scored (or :meth:`SharedRewardModel.load` is called, as a CLIP
env does on ``reset``), so that making an env runs no torch: Gymnasium's ``AsyncVectorEnv``
makes one env in the main process and then forks its workers, and torch's CPU thread pool
(OpenMP) deadlocks in a child forked after it ran.

In a worker process (a child started by ``multiprocessing``, with any start method) a model
scores on one CPU thread: a pool inherited through fork cannot be used, and N workers keep N
cores busy anyway. A worker forked from a process that had already initialised CUDA cannot use
CUDA; it refuses with a one-line error that says what to use instead.
"""

from __future__ import annotations

import multiprocessing
import os
import sys
import threading
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    import torch
    from vlmrm_reward import RewardModel

# torch and vlmrm_reward's model are imported where a device is parsed or a model loaded, so that
# registering and making the envs (and checking a config) does not import torch.

if TYPE_CHECKING:
    from vlmrm_reward import JudgeRewardModel, VideoRewardModel

    # What load_reward_model returns, by the kind of model the spec names.
    LoadedModel = RewardModel | VideoRewardModel | JudgeRewardModel

__all__ = ["FORKED_AFTER_CUDA", "RewardSpec", "SharedRewardModel"]

FORKED_AFTER_CUDA = (
    "this process was forked from one that had already initialised CUDA, and CUDA cannot start "
    "again in a forked process: make CLIP vector envs with gym.make_vec(env_id, num_envs=N) "
    "(workers render, the main process scores), start the workers with 'forkserver' or 'spawn' "
    "(vector_kwargs={'context': 'forkserver'}, SubprocVecEnv(..., start_method='forkserver')), "
    "or score on device='cpu'"
)
"""The error raised when a reward model would start CUDA in a process forked after CUDA."""


@dataclass(frozen=True)
class RewardSpec:
    """What to load: an open_clip model spec, the prompts, alpha, and the device (None: default).

    Two envs whose specs are equal share one loaded model in a process.
    """

    model: str
    target_prompts: tuple[str, ...]
    baseline_prompts: tuple[str, ...] = ()
    alpha: float = 0.0
    device: str | None = None
    resize_mode: str | None = "squash"

    def __post_init__(self) -> None:
        if not isinstance(self.model, str) or not self.model.strip():
            raise ValueError(
                f"model must be a model spec string such as 'ViT-B-32/openai', got {self.model!r}"
            )
        for name in ("target_prompts", "baseline_prompts"):
            value = getattr(self, name)
            if isinstance(value, str):
                raise TypeError(f"{name} must be a list of strings, got the single string {value!r}")
            object.__setattr__(self, name, tuple(value))
        if not self.target_prompts:
            raise ValueError("prompts is empty: give at least one goal description")
        alpha = self.alpha
        if isinstance(alpha, bool) or not isinstance(alpha, (int, float)) or not 0.0 <= alpha <= 1.0:
            raise ValueError(f"alpha must be a number in [0, 1], got {alpha!r}")
        if self.device is not None:
            import torch

            try:
                object.__setattr__(self, "device", str(torch.device(self.device)))
            except (RuntimeError, TypeError) as error:
                raise ValueError(f"{self.device!r} is not a torch device ({error})") from None


class SharedRewardModel:
    """Callable uint8 frames (N, H, W, 3) -> rewards (N,): this process's model for ``spec``.

    Every instance with an equal spec uses the same loaded :class:`vlmrm_reward.RewardModel`,
    loaded on the first call or :meth:`load`; :meth:`close` gives this instance's use back, and
    the model is freed when no instance uses it. Copies and pickles carry the spec only: a copy
    in another process loads that process's own model.
    """

    def __init__(self, spec: RewardSpec) -> None:
        self.spec = spec
        self._model: LoadedModel | None = None
        self._pid: int | None = None

    @property
    def target_prompts(self) -> list[str]:
        return list(self.spec.target_prompts)

    @property
    def loaded(self) -> bool:
        """Whether this instance holds the loaded model in this process."""
        return self._model is not None and self._pid == os.getpid()

    def load(self) -> LoadedModel:
        """The loaded model (loading it if no env of this process has yet)."""
        if not self.loaded:
            self._model = _acquire(self.spec)
            self._pid = os.getpid()
        assert self._model is not None
        return self._model

    def __call__(self, frames: np.ndarray) -> np.ndarray:
        return self.load()(frames)

    def close(self) -> None:
        """Give this instance's use of the model back. Idempotent."""
        if self.loaded:
            _release(self.spec)
        self._model = None
        self._pid = None

    def __getstate__(self) -> dict[str, Any]:
        return {"spec": self.spec}

    def __setstate__(self, state: dict[str, Any]) -> None:
        type(self).__init__(self, state["spec"])

    def __repr__(self) -> str:
        return f"SharedRewardModel({self.spec}, loaded={self.loaded})"


# -- the process's models ------------------------------------------------------------------------

_lock = threading.Lock()
_models: dict[tuple[RewardSpec, str], LoadedModel] = {}
_users: dict[tuple[RewardSpec, str], int] = {}
_keys: dict[RewardSpec, tuple[RewardSpec, str]] = {}
_forked = False
# Set in a forked child: whether its parent had initialised CUDA when it forked.
_cuda_before_fork = False
_parent_cuda_initialised = False


def _acquire(spec: RewardSpec) -> LoadedModel:
    with _lock:
        key = _keys.get(spec)
        if key is None:
            key = (spec, str(_resolve_device(spec.device)))
            _keys[spec] = key
        model = _models.get(key)
        if model is None:
            import torch
            from vlmrm_reward import load_reward_model

            if multiprocessing.parent_process() is not None or _forked:
                torch.set_num_threads(1)
            model = load_reward_model(
                spec.model,
                target_prompts=spec.target_prompts,
                baseline_prompts=spec.baseline_prompts,
                alpha=spec.alpha,
                device=key[1],
                resize_mode=spec.resize_mode,
            )
            _models[key] = model
        _users[key] = _users.get(key, 0) + 1
        return model


def _release(spec: RewardSpec) -> None:
    with _lock:
        key = _keys.get(spec)
        if key is None or key not in _users:
            return
        _users[key] -= 1
        if _users[key] == 0:
            del _users[key]
            _models.pop(key).close()


def _resolve_device(device: str | None) -> torch.device:
    import torch
    from vlmrm_reward import resolve_devices

    if _cuda_before_fork and (device is None or torch.device(device).type == "cuda"):
        # torch.cuda.is_available() itself may fail in such a process; decide before asking it.
        raise RuntimeError(FORKED_AFTER_CUDA)
    return resolve_devices(device)[0]


def _before_fork() -> None:
    global _parent_cuda_initialised
    # Without torch imported, CUDA cannot have been initialised.
    torch = sys.modules.get("torch")
    _parent_cuda_initialised = _cuda_before_fork or (torch is not None and torch.cuda.is_initialized())


def _after_fork_in_child() -> None:
    # The parent's models (threads, device memory) are not usable here: forget them, load anew.
    global _lock, _forked, _cuda_before_fork
    _lock = threading.Lock()
    _cuda_before_fork = _parent_cuda_initialised
    _models.clear()
    _users.clear()
    _keys.clear()
    _forked = True


os.register_at_fork(before=_before_fork, after_in_child=_after_fork_in_child)
