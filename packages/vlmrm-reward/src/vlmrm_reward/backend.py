"""The interface a VLM backend implements, and the registry plugins fill."""

from __future__ import annotations

import difflib
from collections.abc import Callable, Sequence
from functools import cache
from typing import Protocol, runtime_checkable

import pluggy
import torch

from vlmrm_reward import hookspecs
from vlmrm_reward.preprocess import PreprocessConfig

__all__ = [
    "Backend",
    "BackendLoader",
    "JudgeBackend",
    "VideoBackend",
    "get_backend_loader",
    "list_backends",
    "plugin_manager",
]


@runtime_checkable
class Backend(Protocol):
    """A vision-language model as the reward model sees it.

    ``encode_images`` takes preprocessed pixels (N, 3, h, w) float32 on the backend's device
    and returns (N, D) embeddings; ``encode_text`` takes P prompts and returns (P, D)
    embeddings on the same device. Neither needs to normalise: the reward model does.
    """

    preprocess_config: PreprocessConfig

    def encode_images(self, pixels: torch.Tensor) -> torch.Tensor: ...

    def encode_text(self, prompts: Sequence[str]) -> torch.Tensor: ...

    def to(self, device: torch.device) -> Backend:
        """Move the weights to ``device`` (in place) and return self."""
        ...


@runtime_checkable
class VideoBackend(Protocol):
    """A video-language model: scores clips of ``frames_per_clip`` frames against prompts.

    ``encode_videos`` takes preprocessed clips (N, F, 3, h, w) float32 on the backend's device,
    F = ``frames_per_clip``, and returns (N, D) embeddings; ``encode_text`` as for
    :class:`Backend`. A loader returning one makes :func:`~vlmrm_reward.load_reward_model`
    build a :class:`~vlmrm_reward.VideoRewardModel`.
    """

    preprocess_config: PreprocessConfig
    frames_per_clip: int

    def encode_videos(self, pixels: torch.Tensor) -> torch.Tensor: ...

    def encode_text(self, prompts: Sequence[str]) -> torch.Tensor: ...

    def to(self, device: torch.device) -> VideoBackend: ...


@runtime_checkable
class JudgeBackend(Protocol):
    """A generative VLM asked a yes/no question about each image.

    ``yes_log_odds`` takes preprocessed pixels (N, 3, h, w) float32 on the backend's device and
    one question, and returns (N,) float log-odds log P(yes) - log P(no) of the model's first
    answer token. A loader returning one makes :func:`~vlmrm_reward.load_reward_model` build a
    :class:`~vlmrm_reward.JudgeRewardModel`.
    """

    preprocess_config: PreprocessConfig

    def yes_log_odds(self, pixels: torch.Tensor, question: str) -> torch.Tensor: ...

    def to(self, device: torch.device) -> JudgeBackend: ...


BackendLoader = Callable[..., Backend | VideoBackend | JudgeBackend]
"""``loader(model: str, *, cache_dir: str | None) -> Backend | VideoBackend | JudgeBackend``,
weights on the CPU."""


@cache
def plugin_manager() -> pluggy.PluginManager:
    """The process-wide plugin manager, with every ``vlmrm`` entry point loaded."""
    manager = pluggy.PluginManager(hookspecs.PROJECT_NAME)
    manager.add_hookspecs(hookspecs)
    manager.load_setuptools_entrypoints(hookspecs.PROJECT_NAME)
    return manager


def _registered_loaders() -> dict[str, BackendLoader]:
    loaders: dict[str, BackendLoader] = {}

    def register(name: str, loader: BackendLoader) -> None:
        if name in loaders:
            raise ValueError(f"two vlmrm plugins both register a backend named {name!r}")
        loaders[name] = loader

    plugin_manager().hook.register_backends(register=register)
    return loaders


def list_backends() -> list[str]:
    """Names of the installed backends, sorted."""
    return sorted(_registered_loaders())


def get_backend_loader(name: str) -> BackendLoader:
    loaders = _registered_loaders()
    if name not in loaders:
        installed = ", ".join(sorted(loaders)) or "none (is vlmrm-reward installed with pip?)"
        close = difflib.get_close_matches(name, loaders, n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise ValueError(f"unknown backend {name!r}{hint}; installed backends: {installed}")
    return loaders[name]
