"""CLIP and SigLIP (and the fixed-resolution SigLIP 2 checkpoints) from transformers.

Both give an image and a text embedding; the reward model normalises them and applies the
goal-baseline reward, so with one target prompt and ``alpha=0`` the reward is the cosine
similarity of frame and prompt, as for open_clip.

SigLIP was trained with a sigmoid loss: each image-text pair is scored on its own as
``sigmoid(t * cos + b)`` (learnt temperature t and bias b) rather than by a softmax over a batch.
That score is a monotone function of the same cosine similarity, so the cosine reward ranks
frames exactly as SigLIP's own match probability does; it stays linear where the sigmoid
saturates, and ``t`` and ``b`` (fixed numbers) would only rescale and shift it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from vlmrm_reward import PreprocessConfig

__all__ = ["ImageTextBackend"]


def pooled(output: Any) -> torch.Tensor:
    """The projected embedding from a ``get_*_features`` call (a tensor or a model output)."""
    return output if isinstance(output, torch.Tensor) else output.pooler_output


class ImageTextBackend:
    """A transformers dual encoder (``get_image_features``/``get_text_features``) as a ``vlmrm_reward.Backend``.

    Args:
        pad_to_max_length: pad prompts to the text tower's full length without an attention
            mask, as SigLIP was trained; CLIP pads to the longest prompt and masks.
    """

    def __init__(
        self,
        model: torch.nn.Module,
        tokenizer: Any,
        preprocess_config: PreprocessConfig,
        *,
        pad_to_max_length: bool,
    ) -> None:
        self.model = model.eval().requires_grad_(False)
        self.tokenizer = tokenizer
        self.preprocess_config = preprocess_config
        self.pad_to_max_length = pad_to_max_length

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    def to(self, device: torch.device) -> ImageTextBackend:
        self.model.to(device)
        return self

    def encode_images(self, pixels: torch.Tensor) -> torch.Tensor:
        return pooled(self.model.get_image_features(pixel_values=pixels))

    def encode_text(self, prompts: Sequence[str]) -> torch.Tensor:
        return pooled(self.model.get_text_features(**tokenize(self, prompts)))


def tokenize(backend: Any, prompts: Sequence[str]) -> dict[str, torch.Tensor]:
    """Token ids (and the attention mask, unless padded to full length) on the backend's device."""
    text_config = backend.model.config.text_config
    max_length = getattr(text_config, "max_position_embeddings", None)
    tokens = backend.tokenizer(
        list(prompts),
        padding="max_length" if backend.pad_to_max_length else True,
        truncation=True,
        max_length=max_length,
        return_tensors="pt",
    )
    inputs = {"input_ids": tokens["input_ids"].to(backend.device)}
    if not backend.pad_to_max_length:
        inputs["attention_mask"] = tokens["attention_mask"].to(backend.device)
    return inputs
