"""X-CLIP from transformers: clips of frames and prompts embedded in one space.

X-CLIP encodes each frame with a CLIP vision tower and pools the frames with a small
cross-frame transformer (``get_video_features``). Its text embedding is taken as
``get_text_features`` gives it, without the video-conditioned prompt generator of X-CLIP's
classification head, so that the prompts are embedded once and every clip is scored with the
same goal-baseline reward as frames are.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import torch
from vlmrm_reward import PreprocessConfig

if TYPE_CHECKING:
    from transformers import PreTrainedModel

from vlmrm_transformers.image_text import pooled, tokenize

__all__ = ["VideoTextBackend"]


class VideoTextBackend:
    """A transformers video-text model (``get_video_features``/``get_text_features``) as a
    ``vlmrm_reward.VideoBackend``; ``frames_per_clip`` is the model's ``num_frames``."""

    pad_to_max_length = False

    def __init__(self, model: PreTrainedModel, tokenizer: Any, preprocess_config: PreprocessConfig) -> None:
        # Any: get_video_features and get_text_features are each model class's own (XCLIPModel, ...).
        self.model: Any = model.eval().requires_grad_(False)
        self.tokenizer = tokenizer
        self.preprocess_config = preprocess_config
        vision_config: Any = model.config.vision_config  # XCLIPVisionConfig, ...
        self.frames_per_clip = int(vision_config.num_frames)

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    def to(self, device: torch.device) -> VideoTextBackend:
        self.model.to(device)
        return self

    def encode_videos(self, pixels: torch.Tensor) -> torch.Tensor:
        return pooled(self.model.get_video_features(pixel_values=pixels))

    def encode_text(self, prompts: Sequence[str]) -> torch.Tensor:
        return pooled(self.model.get_text_features(**tokenize(self, prompts)))
