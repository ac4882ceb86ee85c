"""Gymnasium envs whose reward is the CLIP reward of their rendered frames."""

from __future__ import annotations

import functools
import importlib
import inspect
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import gymnasium as gym
from gymnasium.envs.registration import load_env_creator
from gymnasium.vector import VectorEnv
from vlmrm_reward import CLIPReward, RewardFunction, VectorCLIPReward

from vlmrm_envs.rendering import assign_render_device, check_mujoco_gl, egl_display_open, render_device_for
from vlmrm_envs.shared_reward import RewardSpec, SharedRewardModel

if TYPE_CHECKING:
    import torch

__all__ = ["DEFAULT_MODEL", "REGISTERED_TAKES_SPECS", "env_spec", "make_clip_env", "make_clip_vector_env"]

DEFAULT_MODEL = "ViT-B-32/laion2b_s34b_b79k"
"""The default open_clip model: small enough for any GPU. The paper's Humanoid results need
``"ViT-bigG-14/laion2b_s39b_b160k"``; smaller CLIPs did not learn kneeling."""


REGISTERED_TAKES_SPECS = (
    "the registered CLIP envs take the model as a spec (model=, prompts=, alpha=, device=), loaded "
    "once per process and shared by every env with the same spec, because Gymnasium copies an "
    "env's keyword arguments into env.spec; to score with a model you loaded yourself, use "
    "vlmrm_envs.make_clip_env(env_id, reward_model=...) or vlmrm_reward.VectorCLIPReward"
)


@dataclass(frozen=True)
class _Task:
    base_id: str
    prompts: tuple[str, ...] | None
    baseline_prompts: tuple[str, ...]


# The registered CLIP tasks: the base env they score, and the paper's prompts.
_TASKS: dict[str, _Task] = {
    "vlmrm/Humanoid-CLIP-v0": _Task("vlmrm/Humanoid-v0", None, ("a humanoid robot",)),
    "vlmrm/CartPole-CLIP-v0": _Task(
        "vlmrm/CartPole-v0", ("pole vertically upright on top of the cart",), ("pole and cart",)
    ),
    "vlmrm/MountainCarContinuous-CLIP-v0": _Task(
        "vlmrm/MountainCarContinuous-v0",
        ("a car at the peak of the mountain, next to the yellow flag",),
        ("a car in the mountain",),
    ),
}


class _CLIPEnv(CLIPReward):
    """The CLIPReward that :func:`make_clip_env` returns.

    Loads its shared reward model on ``reset`` (not when made: see :mod:`vlmrm_envs.shared_reward`)
    and gives it back on close.
    """

    def __init__(self, env: gym.Env, reward_model: RewardFunction | None, *, defer: bool):
        super().__init__(env, reward_model, defer=defer)
        # Scoring needs frames: no other render mode can be made.
        self.metadata = {**env.metadata, "render_modes": ["rgb_array"]}

    def reset(self, **kwargs: Any) -> tuple[Any, dict[str, Any]]:
        if isinstance(self.reward_model, SharedRewardModel):
            self.reward_model.load()
        return super().reset(**kwargs)

    def close(self) -> None:
        super().close()
        if isinstance(self.reward_model, SharedRewardModel):
            self.reward_model.close()


class _VectorCLIPEnv(VectorCLIPReward):
    """The VectorCLIPReward that :func:`make_clip_vector_env` returns (loads on reset, frees on close)."""

    def reset(self, **kwargs: Any) -> tuple[Any, dict[str, Any]]:
        if isinstance(self.reward_model, SharedRewardModel):
            self.reward_model.load()
        return super().reset(**kwargs)

    def close(self, **kwargs: Any) -> None:
        super().close(**kwargs)
        if isinstance(self.reward_model, SharedRewardModel):
            self.reward_model.close()


def make_clip_env(
    env_id: str,
    *,
    prompts: Sequence[str] | None = None,
    baseline_prompts: Sequence[str] | None = None,
    alpha: float = 0.0,
    model: str | None = None,
    reward_model: RewardFunction | None = None,
    device: str | torch.device | None = None,
    resize_mode: str | None = "squash",
    defer_reward: bool = False,
    width: int | None = None,
    height: int | None = None,
    episode_length: int | None = None,
    render_device: int | None = None,
    **env_kwargs: Any,
) -> gym.Env:
    """Make ``env_id`` (any Gymnasium env that renders ``rgb_array``) with a CLIP reward.

    Each step's reward is the CLIP reward of the frame rendered after the step; the env's
    own reward is kept in ``info["original_reward"]`` and the frame, uint8 (height, width, 3),
    in ``info["frame"]``.

    Args:
        env_id: a registered id, e.g. ``"Ant-v5"`` or ``"vlmrm/Humanoid-v0"``; or a vlmrm CLIP
            id (``"vlmrm/CartPole-CLIP-v0"``): its base env with its default prompts.
        prompts: descriptions of the goal state, e.g. ``["a humanoid robot kneeling"]``.
        baseline_prompts: descriptions of the environment in general (goal-baseline reward);
            default: the CLIP task's, else none.
        alpha: goal-baseline regularisation strength in [0, 1]; 0 is plain CLIP similarity.
        model: model spec to load (see ``vlmrm_reward.load_reward_model``); default
            :data:`DEFAULT_MODEL`. Loaded on the first ``reset`` or step, once per process for
            all envs with the same model, prompts, alpha and device.
        reward_model: an already loaded ``RewardModel``, or any callable mapping uint8 frames
            (N, H, W, 3) to rewards (N,), shared by many envs. Excludes ``model`` and ``device``.
        device: where the model runs (default: the first GPU, else the CPU).
        resize_mode: how the model turns a frame that is not square into its square input:
            ``"squash"`` (the paper's: the whole frame, aspect ratio ignored), ``"shortest"``
            (crop), ``"longest"`` (pad), None (the model's own config).
        defer_reward: reward 0.0 in ``step``; an episode-end algorithm scores ``info["frame"]``
            later in large batches. No model is loaded.
        width, height: frame size in pixels, for envs whose constructor takes them (MuJoCo and
            vlmrm envs); default, and for other envs: the env's own size (the paper's frames for
            the vlmrm envs). CLIP's preprocessing handles any size.
        episode_length: steps per episode (a ``TimeLimit``); default: the env's registered limit.
        render_device: the GPU that MuJoCo renders on with EGL, for this whole process (see
            :func:`vlmrm_envs.rendering.assign_render_device`); default ``MUJOCO_EGL_DEVICE_ID``.
        **env_kwargs: passed to ``gym.make`` (e.g. ``camera=...`` for ``vlmrm/Humanoid-v0``).

    Raises:
        ValueError, TypeError: for bad arguments, before any model is loaded.
    """
    env_id, prompts, baseline_prompts, env_kwargs = _base_env_arguments(
        env_id, prompts, baseline_prompts, reward_model, width, height, episode_length, env_kwargs
    )
    scorer = _reward_function(
        prompts, baseline_prompts, alpha, model, reward_model, device, resize_mode, defer_reward
    )
    if render_device is not None:
        assign_render_device(render_device)
    env = gym.make(env_id, render_mode="rgb_array", max_episode_steps=episode_length, **env_kwargs)
    return _CLIPEnv(env, scorer, defer=defer_reward)


def make_clip_vector_env(
    env_id: str,
    num_envs: int,
    *,
    prompts: Sequence[str] | None = None,
    baseline_prompts: Sequence[str] | None = None,
    alpha: float = 0.0,
    model: str | None = None,
    reward_model: RewardFunction | None = None,
    device: str | torch.device | None = None,
    resize_mode: str | None = "squash",
    defer_reward: bool = False,
    width: int | None = None,
    height: int | None = None,
    episode_length: int | None = None,
    asynchronous: bool = True,
    context: str | None = None,
    **env_kwargs: Any,
) -> VectorEnv:
    """``num_envs`` copies of ``env_id`` that render in worker processes, scored here in one batch.

    The workers run the base env only (no torch); each step, the main process renders all
    frames and scores them with one model call (``vlmrm_reward.VectorCLIPReward``: rewards
    (num_envs,), ``info["frame"]`` (num_envs, H, W, 3), ``info["original_reward"]``). Worker
    ``i`` renders on GPU :func:`vlmrm_envs.rendering.render_device_for` ``(i)``. This is the
    vector entry point of the registered CLIP ids: ``gym.make_vec("vlmrm/Humanoid-CLIP-v0",
    num_envs=8, prompts=[...])``.

    Args:
        asynchronous: False runs the envs in this process (``SyncVectorEnv``).
        context: the workers' ``multiprocessing`` start method (default: the platform's, or
            ``"spawn"`` once this process has rendered with EGL, which forked workers cannot).
        the rest: as for :func:`make_clip_env`.
    """
    if isinstance(num_envs, bool) or not isinstance(num_envs, int) or num_envs < 1:
        raise ValueError(f"num_envs must be a positive integer, got {num_envs!r}")
    env_id, prompts, baseline_prompts, env_kwargs = _base_env_arguments(
        env_id, prompts, baseline_prompts, reward_model, width, height, episode_length, env_kwargs
    )
    env_kwargs = {"render_mode": "rgb_array", "max_episode_steps": episode_length, **env_kwargs}
    scorer = _reward_function(
        prompts, baseline_prompts, alpha, model, reward_model, device, resize_mode, defer_reward
    )
    if asynchronous:
        if context is None and egl_display_open():
            context = "spawn"
        env_fns = [
            functools.partial(_make_render_env, env_id, render_device_for(index), env_kwargs)
            for index in range(num_envs)
        ]
        envs: VectorEnv = gym.vector.AsyncVectorEnv(env_fns, context=context)
    else:
        envs = gym.vector.SyncVectorEnv(
            [functools.partial(_make_render_env, env_id, None, env_kwargs)] * num_envs
        )
    return _VectorCLIPEnv(envs, scorer, defer=defer_reward)


def _make_render_env(env_id: str, render_device: int | None, kwargs: dict[str, Any]) -> gym.Env:
    """One worker's env: chooses the worker's GPU before its first frame, then makes the env."""
    check_mujoco_gl()
    if render_device is not None:
        assign_render_device(render_device)
    return gym.make(env_id, **kwargs)


def _base_env_arguments(
    env_id: str,
    prompts: Sequence[str] | None,
    baseline_prompts: Sequence[str] | None,
    reward_model: RewardFunction | None,
    width: int | None,
    height: int | None,
    episode_length: int | None,
    env_kwargs: dict[str, Any],
) -> tuple[str, Sequence[str] | None, Sequence[str], dict[str, Any]]:
    """Check the arguments that :func:`make_clip_env` and :func:`make_clip_vector_env` share;
    returns the base env to make, its prompts and baseline, and its ``gym.make`` arguments
    (``render_mode`` taken out, ``width``/``height`` added where the env takes them)."""
    if not isinstance(env_id, str):
        raise TypeError(f"env_id must be a registered env id string, got {type(env_id).__name__}")
    _check_episode_length(episode_length)
    env_kwargs = dict(env_kwargs)
    render_mode = env_kwargs.pop("render_mode", "rgb_array")
    if render_mode != "rgb_array":
        raise ValueError(f"CLIP envs render rgb_array frames to score; got render_mode={render_mode!r}")
    check_mujoco_gl()
    env_id, prompts, baseline = _task_defaults(env_id, prompts, baseline_prompts, reward_model)
    frame_size = {name: value for name, value in (("width", width), ("height", height)) if value is not None}
    if frame_size and _takes_frame_size(env_id):
        env_kwargs = {**frame_size, **env_kwargs}
    return env_id, prompts, baseline, env_kwargs


def _check_episode_length(episode_length: int | None) -> None:
    if episode_length is not None and (
        isinstance(episode_length, bool) or not isinstance(episode_length, int) or episode_length < 1
    ):
        raise ValueError(f"episode_length must be a positive integer or None, got {episode_length!r}")


def _task_defaults(
    env_id: str,
    prompts: Sequence[str] | None,
    baseline_prompts: Sequence[str] | None,
    reward_model: RewardFunction | None,
) -> tuple[str, Sequence[str] | None, Sequence[str]]:
    """(env to make, prompts, baseline prompts): a CLIP id's base env and defaults, else as given."""
    task = _TASKS.get(env_spec(env_id).id)
    if task is None:
        return env_id, prompts, () if baseline_prompts is None else baseline_prompts
    if prompts is None and reward_model is None:
        prompts = task.prompts
    return task.base_id, prompts, task.baseline_prompts if baseline_prompts is None else baseline_prompts


def _reward_function(
    prompts: Sequence[str] | None,
    baseline_prompts: Sequence[str],
    alpha: float,
    model: str | None,
    reward_model: RewardFunction | None,
    device: str | torch.device | None,
    resize_mode: str | None,
    defer: bool,
) -> RewardFunction | None:
    """The given reward model, this process's shared one for the spec, or None when deferred."""
    if reward_model is not None:
        if model is not None or device is not None:
            raise ValueError("reward_model is already loaded: leave out model and device")
        if not callable(reward_model):
            raise TypeError(
                f"reward_model must be callable frames -> rewards, got {type(reward_model).__name__}"
            )
        target = getattr(reward_model, "target_prompts", None)
        if prompts is not None and target is not None and list(prompts) != list(target):
            raise ValueError(
                f"prompts {list(prompts)} differ from reward_model.target_prompts {list(target)}"
            )
        return reward_model
    if defer:
        if model is not None:
            raise ValueError(
                "defer_reward=True loads no model (frames are scored elsewhere): leave out model"
            )
        return None
    if prompts is None:
        raise ValueError("prompts is required: the goal descriptions, e.g. ['a humanoid robot kneeling']")
    # Each env scores one frame per step: one device is enough, and a replica per GPU per env
    # would waste memory.
    spec = RewardSpec(
        model if model is not None else DEFAULT_MODEL,
        # RewardSpec turns any sequence but a lone string into a tuple, and names a lone string.
        target_prompts=prompts,  # type: ignore[arg-type]  # a Sequence, made a tuple
        baseline_prompts=baseline_prompts,  # type: ignore[arg-type]  # a Sequence, made a tuple
        alpha=alpha,
        device=None if device is None else str(device),
        resize_mode=resize_mode,
    )
    return SharedRewardModel(spec)


def env_spec(env_id: str) -> gym.envs.registration.EnvSpec:
    """``gym.spec`` that also reads ``gym.make``'s ``"module:EnvId"`` form (importing the module)."""
    if ":" in env_id:
        module, _, env_id = env_id.partition(":")
        importlib.import_module(module)
    return gym.spec(env_id)


def _takes_frame_size(env_id: str) -> bool:
    """Whether the env's constructor accepts ``width`` and ``height`` (directly or as **kwargs)."""
    entry_point = env_spec(env_id).entry_point
    creator = load_env_creator(entry_point) if isinstance(entry_point, str) else entry_point
    if creator is None:
        return False
    try:
        parameters = inspect.signature(creator).parameters.values()
    except (TypeError, ValueError):
        return False
    names = {parameter.name for parameter in parameters}
    return {"width", "height"} <= names or any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters)


# -- entry points of the registered CLIP envs (strings in the registry, so that vector-env
# workers import them by name) ------------------------------------------------------------------


def _registered(env_id: str, kwargs: dict[str, Any]) -> dict[str, Any]:
    if "reward_model" in kwargs:
        raise TypeError(REGISTERED_TAKES_SPECS)
    return kwargs


def humanoid_clip_env(**kwargs: Any) -> gym.Env:
    """``vlmrm/Humanoid-CLIP-v0``: give ``prompts``; the baseline is ``["a humanoid robot"]``."""
    return make_clip_env("vlmrm/Humanoid-CLIP-v0", **_registered("vlmrm/Humanoid-CLIP-v0", kwargs))


def cartpole_clip_env(**kwargs: Any) -> gym.Env:
    """``vlmrm/CartPole-CLIP-v0``, by default with the paper's prompts."""
    return make_clip_env("vlmrm/CartPole-CLIP-v0", **_registered("vlmrm/CartPole-CLIP-v0", kwargs))


def mountain_car_clip_env(**kwargs: Any) -> gym.Env:
    """``vlmrm/MountainCarContinuous-CLIP-v0``, by default with the paper's prompts."""
    env_id = "vlmrm/MountainCarContinuous-CLIP-v0"
    return make_clip_env(env_id, **_registered(env_id, kwargs))


# Vector entry points: gym.make_vec(<CLIP id>, num_envs=N, ...) renders in N workers and scores
# all N frames here in one batch. Gymnasium passes max_episode_steps when the spec has one.


def _registered_vector(env_id: str, num_envs: int, kwargs: dict[str, Any]) -> VectorEnv:
    kwargs = dict(_registered(env_id, kwargs))
    max_episode_steps = kwargs.pop("max_episode_steps", None)
    kwargs.setdefault("episode_length", max_episode_steps)
    return make_clip_vector_env(env_id, num_envs, **kwargs)


def humanoid_clip_vector_env(num_envs: int = 1, **kwargs: Any) -> VectorEnv:
    """``gym.make_vec("vlmrm/Humanoid-CLIP-v0", num_envs=N, prompts=[...])``."""
    return _registered_vector("vlmrm/Humanoid-CLIP-v0", num_envs, kwargs)


def cartpole_clip_vector_env(num_envs: int = 1, **kwargs: Any) -> VectorEnv:
    """``gym.make_vec("vlmrm/CartPole-CLIP-v0", num_envs=N)``."""
    return _registered_vector("vlmrm/CartPole-CLIP-v0", num_envs, kwargs)


def mountain_car_clip_vector_env(num_envs: int = 1, **kwargs: Any) -> VectorEnv:
    """``gym.make_vec("vlmrm/MountainCarContinuous-CLIP-v0", num_envs=N)``."""
    return _registered_vector("vlmrm/MountainCarContinuous-CLIP-v0", num_envs, kwargs)
