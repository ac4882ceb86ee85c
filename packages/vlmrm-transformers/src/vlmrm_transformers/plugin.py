"""The ``transformers`` backend: registered under the ``vlmrm`` entry-point group (see pyproject.toml).

``load_transformers(model, cache_dir=...)`` reads the checkpoint's config and picks the backend
by its architecture: a dual encoder (CLIP, SigLIP) gives per-frame embeddings, X-CLIP clip
embeddings, an image-text-to-text model (LLaVA-style) a yes/no judge.
"""

from __future__ import annotations

from typing import Any

import torch
from vlmrm_reward import hookimpl

from vlmrm_transformers.image_text import ImageTextBackend, NaFlexBackend, naflex_preprocess_config
from vlmrm_transformers.judge import VLMJudgeBackend
from vlmrm_transformers.loading import from_pretrained, model_source, preprocess_config_of
from vlmrm_transformers.video import VideoTextBackend

__all__ = ["BACKEND_NAME", "DUAL_ENCODERS", "VIDEO_ENCODERS", "load_transformers", "register_backends"]

BACKEND_NAME = "transformers"
DUAL_ENCODERS = {"clip": False, "siglip": True}
"""model_type -> whether prompts are padded to full length without a mask (SigLIP's training)."""
VIDEO_ENCODERS = ("xclip",)


def load_transformers(model: str, *, cache_dir: str | None = None) -> Any:
    """Load ``model`` (``"hf:org/repo"``, ``"hf:/folder"`` or a folder) on the CPU in fp32, whatever
    the checkpoint's dtype: the reward model's ``precision`` decides the compute dtype (autocast)."""
    from transformers import (
        AutoConfig,
        AutoImageProcessor,
        AutoModel,
        AutoModelForImageTextToText,
        AutoProcessor,
        AutoTokenizer,
    )

    source = model_source(model)
    config = from_pretrained(AutoConfig, source, cache_dir=cache_dir)
    model_type = config.model_type.replace("-", "")
    if model_type == "siglip2":
        network = from_pretrained(AutoModel, source, cache_dir=cache_dir, dtype=torch.float32)
        tokenizer = from_pretrained(AutoTokenizer, source, cache_dir=cache_dir)
        image_processor = from_pretrained(AutoImageProcessor, source, cache_dir=cache_dir)
        return NaFlexBackend(network, tokenizer, *naflex_preprocess_config(image_processor))
    if model_type in DUAL_ENCODERS or model_type in VIDEO_ENCODERS:
        network = from_pretrained(AutoModel, source, cache_dir=cache_dir, dtype=torch.float32)
        tokenizer = from_pretrained(AutoTokenizer, source, cache_dir=cache_dir)
        preprocess = preprocess_config_of(from_pretrained(AutoImageProcessor, source, cache_dir=cache_dir))
        if model_type in VIDEO_ENCODERS:
            return VideoTextBackend(network, tokenizer, preprocess)
        return ImageTextBackend(network, tokenizer, preprocess, pad_to_max_length=DUAL_ENCODERS[model_type])
    if hasattr(config, "vision_config") and hasattr(config, "text_config"):
        processor = from_pretrained(AutoProcessor, source, cache_dir=cache_dir)
        try:
            network = from_pretrained(
                AutoModelForImageTextToText, source, cache_dir=cache_dir, dtype=torch.float32
            )
        except ValueError as error:
            raise ValueError(
                f"model {model!r} ({config.model_type}) is no image-text-to-text model: {error}"
            ) from None
        return VLMJudgeBackend(network, processor, preprocess_config_of(processor.image_processor))
    supported = ", ".join(
        (*DUAL_ENCODERS, "siglip2", *VIDEO_ENCODERS, "image-text-to-text VLMs such as llava")
    )
    raise ValueError(
        f"model {model!r} is a {config.model_type!r} model; the transformers backend takes {supported}"
    )


@hookimpl
def register_backends(register) -> None:
    register(BACKEND_NAME, load_transformers)
