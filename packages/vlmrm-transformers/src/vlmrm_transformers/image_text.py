"""CLIP, SigLIP and SigLIP 2 from transformers.

SigLIP 2's fixed-resolution checkpoints are SigLIP models. Its NaFlex checkpoints (``Siglip2Model``)
take a variable grid of patches; here every frame is resized to the square grid of
``max_num_patches`` patches (16 x 16 for 256), so a frame that is not square is stretched to it
rather than kept at its aspect ratio as NaFlex's own processor would.

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

import math
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import torch
from vlmrm_reward import PreprocessConfig

from vlmrm_transformers.loading import rgb_values

if TYPE_CHECKING:
    from transformers import PreTrainedModel

__all__ = ["ImageTextBackend", "NaFlexBackend"]


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
        model: PreTrainedModel,
        tokenizer: Any,
        preprocess_config: PreprocessConfig,
        *,
        pad_to_max_length: bool,
    ) -> None:
        # Any: get_image_features and get_text_features are each model class's own (CLIPModel, ...).
        self.model: Any = model.eval().requires_grad_(False)
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


class NaFlexBackend(ImageTextBackend):
    """SigLIP 2 NaFlex: the preprocessed square frame is cut into its grid of patches."""

    def __init__(
        self, model: PreTrainedModel, tokenizer: Any, preprocess_config: PreprocessConfig, patch_size: int
    ):
        super().__init__(model, tokenizer, preprocess_config, pad_to_max_length=True)
        self.patch_size = patch_size

    def encode_images(self, pixels: torch.Tensor) -> torch.Tensor:
        batch, channels, height, width = pixels.shape
        size = self.patch_size
        rows, columns = height // size, width // size
        # (N, C, rows, p, columns, p) -> (N, rows * columns, p * p * C), as the processor orders them.
        patches = pixels.reshape(batch, channels, rows, size, columns, size).permute(0, 2, 4, 3, 5, 1)
        patches = patches.reshape(batch, rows * columns, size * size * channels)
        mask = torch.ones(batch, rows * columns, dtype=torch.long, device=pixels.device)
        shapes = torch.tensor([[rows, columns]], device=pixels.device).expand(batch, 2)
        return pooled(
            self.model.get_image_features(
                pixel_values=patches, pixel_attention_mask=mask, spatial_shapes=shapes
            )
        )


def naflex_preprocess_config(image_processor: Any) -> tuple[PreprocessConfig, int]:
    """The square frame size of ``max_num_patches`` patches, and the patch size."""
    size = int(image_processor.patch_size)
    side = math.isqrt(int(image_processor.max_num_patches)) * size
    interpolation = (
        "bilinear"
        if int(getattr(image_processor.resample, "value", image_processor.resample)) == 2
        else "bicubic"
    )
    config = PreprocessConfig(
        size=(side, side),
        mean=rgb_values(image_processor.image_mean),
        std=rgb_values(image_processor.image_std),
        interpolation=interpolation,
        resize_mode="squash",
    )
    return config, size


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
