"""Gymnasium envs whose reward is the CLIP reward of their rendered frames."""

from __future__ import annotations

import importlib
import inspect
from collections.abc import Sequence
from typing import Any

import gymnasium as gym
import torch
from gymnasium.envs.registration import load_env_creator
from vlmrm_reward import CLIPReward, RewardFunction, RewardModel, load_reward_model, resolve_devices

from vlmrm_envs.rendering import check_mujoco_gl

__all__ = ["DEFAULT_MODEL", "env_spec", "make_clip_env"]

DEFAULT_MODEL = "ViT-B-32/laion2b_s34b_b79k"
"""The default open_clip model: small enough for any GPU. The paper's Humanoid results need
``"ViT-bigG-14/laion2b_s39b_b160k"``; smaller CLIPs did not learn kneeling."""


class _CLIPEnv(CLIPReward):
    """The CLIPReward that :func:`make_clip_env` returns.

    Frees the reward model on close when it loaded the model itself.
    """

    def __init__(self, env: gym.Env, reward_model: RewardFunction | None, *, defer: bool, owns_model: bool):
        super().__init__(env, reward_model, defer=defer)
        self.owns_model = owns_model
        # Scoring needs frames: no other render mode can be made.
        self.metadata = {**env.metadata, "render_modes": ["rgb_array"]}

    def close(self) -> None:
        super().close()
        if self.owns_model:
            self.reward_model.close()


def make_clip_env(
    env_id: str,
    *,
    prompts: Sequence[str] | None = None,
    baseline_prompts: Sequence[str] = (),
    alpha: float = 0.0,
    model: str | None = None,
    reward_model: RewardFunction | None = None,
    device: str | torch.device | None = None,
    resize_mode: str | None = "squash",
    defer_reward: bool = False,
    width: int | None = None,
    height: int | None = None,
    episode_length: int | None = None,
    **env_kwargs: Any,
) -> gym.Env:
    """Make ``env_id`` (any Gymnasium env that renders ``rgb_array``) with a CLIP reward.

    Each step's reward is the CLIP reward of the frame rendered after the step; the env's
    own reward is kept in ``info["original_reward"]`` and the frame, uint8 (height, width, 3),
    in ``info["frame"]``.

    Args:
        env_id: a registered id, e.g. ``"Ant-v5"`` or ``"vlmrm/Humanoid-v0"``.
        prompts: descriptions of the goal state, e.g. ``["a humanoid robot kneeling"]``.
        baseline_prompts: descriptions of the environment in general (goal-baseline reward).
        alpha: goal-baseline regularisation strength in [0, 1]; 0 is plain CLIP similarity.
        model: model spec to load (see ``vlmrm_reward.load_reward_model``); default
            :data:`DEFAULT_MODEL`.
        reward_model: an already loaded ``RewardModel``, or any callable mapping uint8 frames
            (N, H, W, 3) to rewards (N,), shared by many envs. Excludes ``model`` and ``device``.
        device: where a model loaded here runs (default: the first GPU, else the CPU).
        resize_mode: how a model loaded here turns a frame that is not square into its square
            input: ``"squash"`` (the paper's: the whole frame, aspect ratio ignored),
            ``"shortest"`` (crop), ``"longest"`` (pad), None (the model's own config).
        defer_reward: reward 0.0 in ``step``; an episode-end algorithm scores ``info["frame"]``
            later in large batches. No model is loaded.
        width, height: frame size in pixels, for envs whose constructor takes them (MuJoCo and
            vlmrm envs); default, and for other envs: the env's own size (the paper's frames for
            the vlmrm envs). CLIP's preprocessing handles any size.
        episode_length: steps per episode (a ``TimeLimit``); default: the env's registered limit.
        **env_kwargs: passed to ``gym.make`` (e.g. ``camera=...`` for ``vlmrm/Humanoid-v0``).

    Raises:
        ValueError, TypeError: for bad arguments, before any model is loaded.
    """
    if not isinstance(env_id, str):
        raise TypeError(f"env_id must be a registered env id string, got {type(env_id).__name__}")
    if episode_length is not None and (
        isinstance(episode_length, bool) or not isinstance(episode_length, int) or episode_length < 1
    ):
        raise ValueError(f"episode_length must be a positive integer or None, got {episode_length!r}")
    render_mode = env_kwargs.pop("render_mode", "rgb_array")
    if render_mode != "rgb_array":
        raise ValueError(f"CLIP envs render rgb_array frames to score; got render_mode={render_mode!r}")
    check_mujoco_gl()
    frame_size = {name: value for name, value in (("width", width), ("height", height)) if value is not None}
    if frame_size and _takes_frame_size(env_id):
        env_kwargs = {**frame_size, **env_kwargs}
    scorer = _reward_function(
        prompts, baseline_prompts, alpha, model, reward_model, device, resize_mode, defer_reward
    )
    try:
        env = gym.make(env_id, render_mode="rgb_array", max_episode_steps=episode_length, **env_kwargs)
    except BaseException:
        if scorer is not reward_model:
            scorer.close()
        raise
    return _CLIPEnv(
        env, scorer, defer=defer_reward, owns_model=scorer is not None and scorer is not reward_model
    )


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
    """The given reward model, a newly loaded one, or None when scoring is deferred."""
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
    loaded: RewardModel = load_reward_model(
        model if model is not None else DEFAULT_MODEL,
        target_prompts=prompts,
        baseline_prompts=baseline_prompts,
        alpha=alpha,
        device=resolve_devices(device)[0],
        resize_mode=resize_mode,
    )
    return loaded


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
    try:
        parameters = inspect.signature(creator).parameters.values()
    except (TypeError, ValueError):
        return False
    names = {parameter.name for parameter in parameters}
    return {"width", "height"} <= names or any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters)


# -- entry points of the registered CLIP envs (strings in the registry, so that vector-env
# workers import them by name) ------------------------------------------------------------------


def _make_task(
    base_id: str,
    default_prompts: Sequence[str] | None,
    default_baseline: Sequence[str],
    prompts: Sequence[str] | None,
    baseline_prompts: Sequence[str] | None,
    **kwargs: Any,
) -> gym.Env:
    return make_clip_env(
        base_id,
        prompts=default_prompts if prompts is None and kwargs.get("reward_model") is None else prompts,
        baseline_prompts=default_baseline if baseline_prompts is None else baseline_prompts,
        **kwargs,
    )


def humanoid_clip_env(
    prompts: Sequence[str] | None = None, baseline_prompts: Sequence[str] | None = None, **kwargs: Any
) -> gym.Env:
    """``vlmrm/Humanoid-CLIP-v0``: give ``prompts``; the baseline is ``["a humanoid robot"]``."""
    return _make_task("vlmrm/Humanoid-v0", None, ["a humanoid robot"], prompts, baseline_prompts, **kwargs)


def cartpole_clip_env(
    prompts: Sequence[str] | None = None, baseline_prompts: Sequence[str] | None = None, **kwargs: Any
) -> gym.Env:
    """``vlmrm/CartPole-CLIP-v0``, by default with the paper's prompts."""
    return _make_task(
        "vlmrm/CartPole-v0",
        ["pole vertically upright on top of the cart"],
        ["pole and cart"],
        prompts,
        baseline_prompts,
        **kwargs,
    )


def mountain_car_clip_env(
    prompts: Sequence[str] | None = None, baseline_prompts: Sequence[str] | None = None, **kwargs: Any
) -> gym.Env:
    """``vlmrm/MountainCarContinuous-CLIP-v0``, by default with the paper's prompts."""
    return _make_task(
        "vlmrm/MountainCarContinuous-v0",
        ["a car at the peak of the mountain, next to the yellow flag"],
        ["a car in the mountain"],
        prompts,
        baseline_prompts,
        **kwargs,
    )
