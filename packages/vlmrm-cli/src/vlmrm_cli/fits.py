"""Checks that a resolved config fits its env and this machine, so that every config accepted
trains: a device that exists, a policy for the env's observations, policy arguments the policy
takes, and a run whose memory fits the machine's."""

from __future__ import annotations

import difflib
import math
import os
from collections.abc import Callable
from typing import Any

import gymnasium as gym

from vlmrm_cli.algorithms import ALGORITHM_INFO
from vlmrm_cli.config import Config, ConfigError, resolve_config
from vlmrm_cli.envs import probe_env

__all__ = ["check_fits", "machine_memory_bytes", "memory_estimate", "one_line", "resolve"]

# Copies of the network weights a run holds: actor, two critics and their targets, each with a
# gradient and Adam's two moments (an upper bound for DQN, which has fewer).
WEIGHT_COPIES = 16
DEFAULT_LAYERS = [256, 256]


def resolve(
    config: Config, probe: Callable[[Config], tuple[gym.Space, gym.Space, int | None]] = probe_env
) -> Config:
    """:func:`~vlmrm_cli.config.resolve_config` with the env's spaces and episode length, from a
    probe env (``probe(config)``: ``(observation_space, action_space, episode_length)``; a sweep
    passes one that caches), then :func:`check_fits`. Imports neither SB3 nor torch for a config
    on the CPU with an MLP policy and an env that is not MuJoCo's (``vlmrm config show``)."""
    try:
        observation_space, action_space, episode_length = probe(config)
    except (ValueError, TypeError, ImportError, gym.error.Error) as error:  # ImportError: env_name's module
        raise ConfigError(
            f"env_name: cannot make {config.env_name!r} with this config ({one_line(error)})"
        ) from None
    resolved = resolve_config(config, action_space, episode_length)
    check_fits(resolved, observation_space, action_space)
    return resolved


def one_line(error: BaseException) -> str:
    """An error's message on one line (its type's name when it has none)."""
    text = " ".join(str(error).split())
    return text or type(error).__name__


def check_fits(config: Config, observation_space: gym.Space, action_space: gym.Space) -> None:
    """Raise :class:`ConfigError` (naming the key) for a config that could not train here."""
    _check_device(config.rl.device)
    _check_policy(config, observation_space)
    parts = memory_estimate(config, observation_space, action_space)
    total, available = sum(parts.values()), machine_memory_bytes()
    if total > available:
        largest = max(parts, key=parts.__getitem__)
        described = ", ".join(f"{key} {size / 1e9:.1f} GB" for key, size in parts.items())
        raise ConfigError(
            f"{largest}: the run would need about {total / 1e9:.1f} GB of memory ({described}), "
            f"more than this machine's {available / 1e9:.1f} GB"
        )


def machine_memory_bytes() -> int:
    """The machine's physical memory."""
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")


def _check_device(device: str) -> None:
    if device in ("auto", "cpu"):
        return
    import torch  # a GPU is counted by torch; the defaults need no torch to check

    try:
        parsed = torch.device(device)
    except (RuntimeError, ValueError):
        raise ConfigError(f"rl.device: {device!r} is not a torch device (auto, cpu, cuda, cuda:N)") from None
    if parsed.type == "cuda":
        if (parsed.index or 0) >= torch.cuda.device_count():
            raise ConfigError(
                f"rl.device: device {device!r} is not available ({torch.cuda.device_count()} GPUs)"
            )
    elif parsed.type == "mps":
        if not torch.backends.mps.is_available():
            raise ConfigError(f"rl.device: device {device!r} is not available")
    elif parsed.type != "cpu":
        raise ConfigError(f"rl.device: {device!r} is not supported (auto, cpu, cuda, cuda:N, mps)")


def _check_policy(config: Config, observation_space: gym.Space) -> None:
    name = config.rl.policy_name
    if "Cnn" in name and not _is_image_space(observation_space):
        raise ConfigError(
            f"rl.policy_name: {name} needs image observations, but {config.env_name} has {observation_space}"
        )
    if "MultiInput" in name and not isinstance(observation_space, gym.spaces.Dict):
        raise ConfigError(
            f"rl.policy_name: {name} needs Dict observations, but {config.env_name} has {observation_space}"
        )
    if "MultiInput" not in name and isinstance(observation_space, gym.spaces.Dict):
        raise ConfigError(f"rl.policy_name: {config.env_name} has Dict observations; use MultiInputPolicy")
    policy = ALGORITHM_INFO[config.rl.algorithm].policies[name]
    if policy.arguments is not None:
        for key in config.rl.policy_kwargs:
            if key not in policy.arguments:
                close = difflib.get_close_matches(str(key), sorted(policy.arguments), n=1)
                hint = f"; did you mean {close[0]!r}?" if close else ""
                raise ConfigError(f"rl.policy_kwargs.{key}: {policy.class_name} takes no such argument{hint}")
    _layer_lists(config.rl.policy_kwargs.get("net_arch", DEFAULT_LAYERS))


def _is_image_space(space: gym.Space) -> bool:
    """SB3's own test of what its CNN policies take (imported only for them: it imports torch)."""
    from stable_baselines3.common.preprocessing import is_image_space

    return is_image_space(space)


def _layer_lists(net_arch: Any) -> list[list[int]]:
    """``net_arch`` as lists of layer sizes (a list, or a dict of lists per network)."""
    lists = list(net_arch.values()) if isinstance(net_arch, dict) else [net_arch]
    for layers in lists:
        if not isinstance(layers, list) or not all(
            isinstance(size, int) and not isinstance(size, bool) and size > 0 for size in layers
        ):
            raise ConfigError(
                f"rl.policy_kwargs.net_arch: should be a list of layer sizes, e.g. [256, 256], or a dict "
                f"of such lists per network, got {net_arch!r}"
            )
    return lists


def _space_bytes(space: gym.Space) -> int:
    if isinstance(space, gym.spaces.Dict):
        return sum(_space_bytes(child) for child in space.spaces.values())
    shape = space.shape or (1,)
    dtype = getattr(space, "dtype", None)
    return math.prod(shape) * (dtype.itemsize if dtype is not None else 8)


def _space_size(space: gym.Space) -> int:
    if isinstance(space, gym.spaces.Discrete):
        return int(space.n)
    if isinstance(space, gym.spaces.Dict):
        return sum(_space_size(child) for child in space.spaces.values())
    return math.prod(space.shape or (1,))


# The largest frame (width, height) an env renders when the config leaves its size to the env.
DEFAULT_FRAME = (600, 480)


def memory_estimate(config: Config, observation_space: gym.Space, action_space: gym.Space) -> dict[str, int]:
    """Bytes the run would hold, by the key that sets each part: the replay buffer
    (``rl.buffer_size``), the networks with their copies (``rl.policy_kwargs.net_arch``), a training
    batch with its activations (``rl.batch_size``) and the frames of one episode of every env,
    kept until scored (``render.width``)."""
    rl = config.rl
    observation, action = _space_bytes(observation_space), _space_bytes(action_space)
    transition = 2 * observation + action + 3 * 4  # observation, next one, action, reward, done, timeout
    layer_lists = _layer_lists(rl.policy_kwargs.get("net_arch", DEFAULT_LAYERS))
    inputs, outputs = _space_size(observation_space), _space_size(action_space)
    weights = sum(
        sum(a * b + b for a, b in zip([inputs, *layers], [*layers, outputs], strict=True))
        for layers in layer_lists
    )
    widest = max((sum(layers) for layers in layer_lists), default=0)
    batch = rl.batch_size or 256
    # Left to the env, the frame size is at most the paper's (600x400 or 480x480): count 600x480.
    width, height = config.render.width or DEFAULT_FRAME[0], config.render.height or DEFAULT_FRAME[1]
    frames = config.n_envs * (rl.episode_length or 1000) * width * height * 3
    return {
        "rl.buffer_size": (rl.buffer_size or 1_000_000) * transition,
        "rl.policy_kwargs.net_arch": weights * 4 * WEIGHT_COPIES,
        "rl.batch_size": batch * (transition + 3 * 4 * widest),
        "render.width": frames,
    }
