"""Helpers for tests that need a real open_clip model without a network.

:func:`make_tiny_open_clip` writes a tiny, randomly initialised open_clip model to a folder
(an ``open_clip_config.json`` and its weights), which loads through the same path as a real
model: ``load_reward_model("local-dir:" + folder, ...)``. Its rewards mean nothing; its shapes,
preprocessing and code paths are those of a real CLIP.
"""

from __future__ import annotations

import json
from pathlib import Path

import open_clip
import torch

__all__ = ["make_tiny_open_clip"]

OPENAI_MEAN = (0.48145466, 0.4578275, 0.40821073)
OPENAI_STD = (0.26862954, 0.26130258, 0.27577711)


def make_tiny_open_clip(
    folder: str | Path,
    *,
    image_size: int = 32,
    embed_dim: int = 16,
    patch_size: int = 8,
    resize_mode: str = "shortest",
    seed: int = 0,
) -> str:
    """Write a tiny random open_clip model into ``folder``; returns its spec ``"local-dir:<folder>"``."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    model_cfg = {
        "embed_dim": embed_dim,
        "vision_cfg": {
            "image_size": image_size,
            "layers": 2,
            "width": 32,
            "head_width": 16,
            "patch_size": patch_size,
        },
        "text_cfg": {"context_length": 16, "vocab_size": 49408, "width": 32, "heads": 2, "layers": 2},
    }
    preprocess_cfg = {
        "size": image_size,
        "mean": list(OPENAI_MEAN),
        "std": list(OPENAI_STD),
        "interpolation": "bicubic",
        "resize_mode": resize_mode,
    }
    generator_state = torch.random.get_rng_state()
    torch.manual_seed(seed)
    try:
        model = open_clip.CLIP(**model_cfg)
    finally:
        torch.random.set_rng_state(generator_state)
    (folder / "open_clip_config.json").write_text(
        json.dumps({"model_cfg": model_cfg, "preprocess_cfg": preprocess_cfg}, indent=2)
    )
    torch.save(model.state_dict(), folder / "open_clip_pytorch_model.bin")
    return f"local-dir:{folder}"
