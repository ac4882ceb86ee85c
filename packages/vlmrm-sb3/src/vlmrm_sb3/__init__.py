"""vlmrm-sb3: SB3 off-policy algorithms that score rendered frames in large batches at episode end.

>>> from vlmrm_sb3 import SAC
>>> model = SAC("MlpPolicy", env, reward_model=reward_model)  # doctest: +SKIP
>>> model.learn(100_000)  # doctest: +SKIP
>>> model = SAC.load("sac.zip", env=env, reward_model=reward_model)  # doctest: +SKIP

The env puts each step's frame in ``info["frame"]``; see :class:`EpisodeRewardMixin`.
"""

import importlib.metadata

from vlmrm_sb3.algorithms import (
    DQN,
    QRDQN,
    SAC,
    TD3,
    TQC,
    EpisodeRewardFunction,
    EpisodeRewardMixin,
    RewardFunction,
)
from vlmrm_sb3.buffers import LabelledBufferMixin, LabelledDictReplayBuffer, LabelledReplayBuffer
from vlmrm_sb3.safe_loading import UnsafePickleError

# The version lives in pyproject.toml only; installed metadata carries it here.
__version__ = importlib.metadata.version("vlmrm-sb3")

__all__ = [
    "DQN",
    "QRDQN",
    "SAC",
    "TD3",
    "TQC",
    "EpisodeRewardFunction",
    "EpisodeRewardMixin",
    "LabelledBufferMixin",
    "LabelledDictReplayBuffer",
    "LabelledReplayBuffer",
    "RewardFunction",
    "UnsafePickleError",
]
