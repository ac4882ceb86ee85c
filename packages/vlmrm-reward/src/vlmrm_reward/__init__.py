"""vlmrm-reward: vision-language models as zero-shot reward models.

>>> reward_model = load_reward_model(
...     "ViT-B-32/laion2b_s34b_b79k",
...     target_prompts=["a humanoid robot kneeling"],
...     baseline_prompts=["a humanoid robot"],
...     alpha=0.5,
... )  # doctest: +SKIP
>>> rewards = reward_model(frames)  # uint8 (N, H, W, 3) -> float32 (N,)  # doctest: +SKIP
"""

import importlib.metadata

from vlmrm_reward.backend import Backend, BackendLoader, list_backends
from vlmrm_reward.hookspecs import hookimpl
from vlmrm_reward.model import Frames, Precision, RewardModel, load_reward_model, resolve_devices
from vlmrm_reward.preprocess import PreprocessConfig, preprocess_frames
from vlmrm_reward.reward import goal_baseline_projection, goal_baseline_reward, goal_embedding
from vlmrm_reward.wrappers import CLIPReward, RewardFunction, VectorCLIPReward

# The version lives in pyproject.toml only; installed metadata carries it here.
__version__ = importlib.metadata.version("vlmrm-reward")

__all__ = [
    "Backend",
    "BackendLoader",
    "CLIPReward",
    "Frames",
    "Precision",
    "PreprocessConfig",
    "RewardFunction",
    "RewardModel",
    "VectorCLIPReward",
    "goal_baseline_projection",
    "goal_baseline_reward",
    "goal_embedding",
    "hookimpl",
    "list_backends",
    "load_reward_model",
    "preprocess_frames",
    "resolve_devices",
]
