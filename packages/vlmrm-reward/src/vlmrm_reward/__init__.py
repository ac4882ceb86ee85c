"""vlmrm-reward: vision-language models as zero-shot reward models.

>>> reward_model = load_reward_model(
...     "ViT-B-32/laion2b_s34b_b79k",
...     target_prompts=["a humanoid robot kneeling"],
...     baseline_prompts=["a humanoid robot"],
...     alpha=0.5,
... )  # doctest: +SKIP
>>> rewards = reward_model(frames)  # uint8 (N, H, W, 3) -> float32 (N,)  # doctest: +SKIP
"""

from __future__ import annotations

import importlib
import importlib.metadata
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from vlmrm_reward.backend import Backend, BackendLoader, JudgeBackend, VideoBackend, list_backends
    from vlmrm_reward.hookspecs import hookimpl
    from vlmrm_reward.judge import JudgeRewardModel
    from vlmrm_reward.model import Frames, Precision, RewardModel, load_reward_model, resolve_devices
    from vlmrm_reward.preprocess import PreprocessConfig, preprocess_frames
    from vlmrm_reward.reward import goal_baseline_projection, goal_baseline_reward, goal_embedding
    from vlmrm_reward.video import VideoRewardModel
    from vlmrm_reward.wrappers import CLIPReward, RewardFunction, VectorCLIPReward

# Imported on first use (PEP 562), so that importing the package, e.g. for the pytest plugin or a
# config check, does not pay for torch and open_clip.
_MODULE_OF = {
    **dict.fromkeys(("Backend", "BackendLoader", "JudgeBackend", "VideoBackend", "list_backends"), "backend"),
    "JudgeRewardModel": "judge",
    "VideoRewardModel": "video",
    "hookimpl": "hookspecs",
    **dict.fromkeys(("Frames", "Precision", "RewardModel", "load_reward_model", "resolve_devices"), "model"),
    **dict.fromkeys(("PreprocessConfig", "preprocess_frames"), "preprocess"),
    **dict.fromkeys(("goal_baseline_projection", "goal_baseline_reward", "goal_embedding"), "reward"),
    **dict.fromkeys(("CLIPReward", "RewardFunction", "VectorCLIPReward"), "wrappers"),
}


def __getattr__(name: str) -> Any:
    if name in _MODULE_OF:
        value = getattr(importlib.import_module(f"vlmrm_reward.{_MODULE_OF[name]}"), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'vlmrm_reward' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*globals(), *_MODULE_OF])


# The version lives in pyproject.toml only; installed metadata carries it here.
__version__ = importlib.metadata.version("vlmrm-reward")

__all__ = [
    "Backend",
    "BackendLoader",
    "CLIPReward",
    "Frames",
    "JudgeBackend",
    "JudgeRewardModel",
    "Precision",
    "PreprocessConfig",
    "RewardFunction",
    "RewardModel",
    "VectorCLIPReward",
    "VideoBackend",
    "VideoRewardModel",
    "goal_baseline_projection",
    "goal_baseline_reward",
    "goal_embedding",
    "hookimpl",
    "list_backends",
    "load_reward_model",
    "preprocess_frames",
    "resolve_devices",
]
