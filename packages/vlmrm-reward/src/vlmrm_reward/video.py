"""Video-language rewards: whole episodes in, one reward per step out.

A :class:`~vlmrm_reward.VideoBackend` embeds clips of ``F = frames_per_clip`` frames; the reward
of a clip is the goal-baseline reward of its unit embedding (:mod:`vlmrm_reward.reward`, as for
frames). Two modes turn an episode of T frames into T rewards:

- ``"episode"`` (RoboCLIP, Sontakke et al., 2023): F frames sampled evenly from the whole
  episode make one clip; its reward is given at the last step and 0 at every other step.
- ``"window"``: step t is scored on the clip of its last ``window_size`` frames
  (frames max(0, t - K + 1) .. t), F frames sampled evenly from them (repeated while the
  episode is shorter than F), so every step gets a reward of the motion that led to it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import numpy as np
import torch

from vlmrm_reward.backend import VideoBackend
from vlmrm_reward.model import (
    DEFAULT_BATCH_SIZE,
    Frames,
    GoalBaselineMixin,
    Precision,
    _unit,
    as_frame_batch,
)

__all__ = ["VIDEO_REWARD_MODES", "VideoRewardMode", "VideoRewardModel", "clip_indices"]

VideoRewardMode = Literal["episode", "window"]
VIDEO_REWARD_MODES: tuple[str, ...] = ("episode", "window")
DEFAULT_WINDOW_SIZE = 16


def clip_indices(length: int, frames_per_clip: int, mode: VideoRewardMode, window_size: int) -> np.ndarray:
    """Frame indices of the clips scored for an episode of ``length`` frames: int64 (C, F).

    ``"episode"``: C = 1 clip over the whole episode; ``"window"``: C = ``length`` clips, row t
    over frames max(0, t - window_size + 1) .. t. F indices are spread evenly (rounded) from the
    first to the last frame of the span, both included.
    """
    if length == 0:
        return np.zeros((0, frames_per_clip), dtype=np.int64)
    ends = np.array([length - 1]) if mode == "episode" else np.arange(length)
    starts = np.zeros_like(ends) if mode == "episode" else np.maximum(ends - window_size + 1, 0)
    steps = np.linspace(0.0, 1.0, frames_per_clip)
    return np.rint(starts[:, None] + (ends - starts)[:, None] * steps[None, :]).astype(np.int64)


class VideoRewardModel(GoalBaselineMixin[VideoBackend]):
    """A video-language model with fixed prompts that maps episodes to per-step rewards.

    ``score_episodes(episodes)`` is the episode-aware form that ``vlmrm_sb3``'s algorithms call
    with every finished episode's frames; ``model(frames)`` scores one episode. Rewards come from
    the goal-baseline formula applied to unit clip embeddings (see the module docstring for the
    two modes).

    Args:
        backend: a loaded :class:`~vlmrm_reward.VideoBackend`.
        mode: ``"episode"`` or ``"window"``.
        window_size: frames per window in ``"window"`` mode (K >= 1).
        batch_size: clips per micro-batch across all devices.

    The other arguments are those of :class:`~vlmrm_reward.RewardModel`.
    """

    def __init__(
        self,
        backend: VideoBackend,
        devices: Sequence[torch.device],
        *,
        target_prompts: Sequence[str],
        baseline_prompts: Sequence[str] = (),
        alpha: float = 0.0,
        mode: VideoRewardMode = "episode",
        window_size: int = DEFAULT_WINDOW_SIZE,
        batch_size: int = DEFAULT_BATCH_SIZE,
        precision: Precision = "auto",
        resize_mode: str | None = None,
    ) -> None:
        check_video_options(mode, window_size)
        super().__init__(
            backend, devices, batch_size=batch_size, precision=precision, resize_mode=resize_mode
        )
        self.mode = mode
        self.window_size = window_size
        self.frames_per_clip = int(backend.frames_per_clip)
        self._fix_prompts(target_prompts, baseline_prompts, alpha)

    def __call__(self, frames: Frames) -> np.ndarray:
        """Per-step rewards of one episode's uint8 frames (T, H, W, 3): float32 (T,)."""
        return self.score_episodes([frames])[0]

    def score_episodes(self, episodes: Sequence[Frames]) -> list[np.ndarray]:
        """One float32 reward array (T_i,) per episode of uint8 RGB frames (T_i, H, W, 3).

        The clips of all episodes are scored together, in micro-batches of ``batch_size`` clips.
        """
        batches = [_as_numpy(as_frame_batch(frames)) for frames in episodes]
        clips, offset, kept = [], 0, []
        for frames in batches:
            indices = clip_indices(len(frames), self.frames_per_clip, self.mode, self.window_size)
            if self.mode == "episode" and len(frames):
                kept.append(frames[indices[0]])  # only the sampled frames travel to the device
                indices = np.arange(offset, offset + self.frames_per_clip)[None, :]
            else:
                kept.append(frames)
                indices = indices + offset
            offset += len(kept[-1])
            clips.append(indices)
        if offset == 0:
            return [np.zeros(0, dtype=np.float32) for _ in batches]
        frames = np.concatenate(kept)
        scores = self._map(
            lambda replica, rows: self._score_clips(replica, frames, rows), np.concatenate(clips), (0,)
        )
        rewards, start = [], 0
        for episode, indices in zip(batches, clips, strict=True):
            episode_scores = scores[start : start + len(indices)]
            start += len(indices)
            if self.mode == "episode":
                episode_rewards = np.zeros(len(episode), dtype=np.float32)
                episode_rewards[-1:] = episode_scores
            else:
                episode_rewards = episode_scores.astype(np.float32)
            rewards.append(episode_rewards)
        return rewards

    def embed_videos(self, clips: Frames) -> np.ndarray:
        """Unit-norm embeddings of uint8 clips (N, F, H, W, 3), F = ``frames_per_clip``: (N, D)."""
        clips = _as_numpy(clips) if isinstance(clips, torch.Tensor) else np.asarray(clips)
        if clips.ndim != 5 or clips.shape[1] != self.frames_per_clip:
            raise ValueError(
                f"clips must have shape (N, {self.frames_per_clip}, H, W, 3), got {tuple(clips.shape)}"
            )
        frames = _as_numpy(as_frame_batch(clips.reshape(-1, *clips.shape[2:])))
        rows = np.arange(len(frames)).reshape(len(clips), self.frames_per_clip)
        return self._map(
            lambda replica, shard: self._embed_clips(replica, frames, shard), rows, (0, self.goal.shape[0])
        )

    def __repr__(self) -> str:
        devices = ", ".join(str(d) for d in self.devices)
        return (
            f"VideoRewardModel(target_prompts={self.target_prompts}, mode={self.mode!r}, "
            f"window_size={self.window_size}, frames_per_clip={self.frames_per_clip}, alpha={self.alpha}, "
            f"devices=[{devices}], batch_size={self.batch_size}, precision={self.precision!r})"
        )

    def _embed_clips(self, replica: int, frames: np.ndarray, rows: np.ndarray) -> torch.Tensor:
        """Unit embeddings (n, D) of the clips whose frame indices are ``rows`` (n, F)."""
        # Each frame a micro-batch needs is preprocessed once, however many windows hold it.
        needed, inverse = np.unique(rows, return_inverse=True)
        with torch.inference_mode(), self._autocast(self.devices[replica]):
            pixels = self._pixels(replica, frames[needed])
            index = torch.from_numpy(inverse.reshape(rows.shape)).to(pixels.device)
            embeddings = self._replicas[replica].encode_videos(pixels[index])
        return _unit(embeddings.float())

    def _score_clips(self, replica: int, frames: np.ndarray, rows: np.ndarray) -> torch.Tensor:
        return self._reward(replica, self._embed_clips(replica, frames, rows))


def check_video_options(mode: object, window_size: object) -> None:
    if mode not in VIDEO_REWARD_MODES:
        raise ValueError(f"video reward mode must be one of {VIDEO_REWARD_MODES}, got {mode!r}")
    if isinstance(window_size, bool) or not isinstance(window_size, int) or window_size < 1:
        raise ValueError(f"window_size must be a positive integer, got {window_size!r}")


def _as_numpy(frames: Frames) -> np.ndarray:
    return frames.cpu().numpy() if isinstance(frames, torch.Tensor) else frames
