"""Generative-VLM rewards: ask an instruction-tuned VLM whether each frame shows the goal.

For every target prompt p the model is asked ``question_template.format(prompt=p)`` (by default
"Does this image show a humanoid robot kneeling?") about each frame, and only the first answer
token is read: the log-odds ``log P(yes) - log P(no)`` of that token. The reward is either the
probability of "yes" among {yes, no} (``"probability"``: sigmoid of the log-odds, in (0, 1)) or
the log-odds themselves (``"log_odds"``: unbounded, linear where the probability saturates).
With several target prompts the reward is the mean over prompts.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import numpy as np
import torch

from vlmrm_reward.backend import JudgeBackend
from vlmrm_reward.model import (
    DEFAULT_BATCH_SIZE,
    Frames,
    Precision,
    ReplicatedModel,
    _check_prompts,
    as_frame_batch,
)

__all__ = ["DEFAULT_QUESTION", "JUDGE_REWARDS", "JudgeReward", "JudgeRewardModel"]

JudgeReward = Literal["probability", "log_odds"]
JUDGE_REWARDS: tuple[str, ...] = ("probability", "log_odds")
DEFAULT_QUESTION = "Does this image show {prompt}?"


class JudgeRewardModel(ReplicatedModel[JudgeBackend]):
    """A generative VLM with fixed yes/no questions that maps frames to rewards.

    Args:
        backend: a loaded :class:`~vlmrm_reward.JudgeBackend`.
        target_prompts: descriptions of the goal state, each turned into one question.
        reward: ``"probability"`` or ``"log_odds"`` of "yes" (see the module docstring).
        question_template: the question, with ``{prompt}`` where the prompt goes.
        batch_size: frames per micro-batch across all devices.

    ``devices``, ``precision`` and ``resize_mode`` are as for :class:`~vlmrm_reward.RewardModel`.
    """

    def __init__(
        self,
        backend: JudgeBackend,
        devices: Sequence[torch.device],
        *,
        target_prompts: Sequence[str],
        reward: JudgeReward = "probability",
        question_template: str = DEFAULT_QUESTION,
        batch_size: int = DEFAULT_BATCH_SIZE,
        precision: Precision = "auto",
        resize_mode: str | None = None,
    ) -> None:
        target_prompts = _check_prompts(target_prompts, "target_prompts", required=True)
        check_judge_options(reward, question_template)
        super().__init__(
            backend, devices, batch_size=batch_size, precision=precision, resize_mode=resize_mode
        )
        self.target_prompts = target_prompts
        self.reward = reward
        self.questions = [question_template.format(prompt=prompt) for prompt in target_prompts]

    def __call__(self, frames: Frames) -> np.ndarray:
        """Rewards of uint8 RGB frames (N, H, W, 3) or (H, W, 3): float32 array of shape (N,)."""
        return self._map(self._score, as_frame_batch(frames), empty_shape=(0,))

    def __repr__(self) -> str:
        devices = ", ".join(str(d) for d in self.devices)
        return (
            f"JudgeRewardModel(questions={self.questions}, reward={self.reward!r}, devices=[{devices}], "
            f"batch_size={self.batch_size}, precision={self.precision!r})"
        )

    def _score(self, replica: int, frames: Frames) -> torch.Tensor:
        with torch.inference_mode(), self._autocast(self.devices[replica]):
            pixels = self._pixels(replica, frames)
            log_odds = torch.stack(
                [
                    self._replicas[replica].yes_log_odds(pixels, question).float()
                    for question in self.questions
                ]
            )
        scores = torch.sigmoid(log_odds) if self.reward == "probability" else log_odds
        return scores.mean(dim=0)


def check_judge_options(reward: object, question_template: object) -> None:
    if reward not in JUDGE_REWARDS:
        raise ValueError(f"judge reward must be one of {JUDGE_REWARDS}, got {reward!r}")
    if not isinstance(question_template, str) or "{prompt}" not in question_template:
        raise ValueError(
            f"question_template must be a string holding '{{prompt}}', got {question_template!r}"
        )
