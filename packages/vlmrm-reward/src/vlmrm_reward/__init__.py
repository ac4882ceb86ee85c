"""vlmrm-reward: vision-language models as zero-shot reward models.

>>> reward_model = load_reward_model(
...     "ViT-B-32/laion2b_s34b_b79k",
...     target_prompts=["a humanoid robot kneeling"],
...     baseline_prompts=["a humanoid robot"],
...     alpha=0.5,
... )  # doctest: +SKIP
>>> rewards = reward_model(frames)  # uint8 (N, H, W, 3) -> float32 (N,)  # doctest: +SKIP
"""

from vlmrm_reward.backend import Backend, BackendLoader, JudgeBackend, VideoBackend, list_backends
from vlmrm_reward.hookspecs import hookimpl
from vlmrm_reward.judge import JudgeRewardModel
from vlmrm_reward.model import Frames, Precision, RewardModel, load_reward_model, resolve_devices
from vlmrm_reward.preprocess import PreprocessConfig, preprocess_frames
from vlmrm_reward.reward import goal_baseline_projection, goal_baseline_reward, goal_embedding
from vlmrm_reward.video import VideoRewardModel
from vlmrm_reward.wrappers import CLIPReward, RewardFunction, VectorCLIPReward

__version__ = "0.1.0"

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
