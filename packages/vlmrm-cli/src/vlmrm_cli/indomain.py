"""A small CLIP trained on our own envs' frames: an instrument to test the pipeline offline.

:func:`train_indomain_clip` renders frames of hand-set states (exactly as training renders them,
then downscaled by the same preprocessing the reward model applies), captions each from its state
(:mod:`vlmrm_cli.scenes`), trains an open_clip ``CLIP`` (a ResNet image tower and a small text
transformer) with open_clip's contrastive ``ClipLoss``, and saves a folder that loads like any
model: ``load_reward_model("local-dir:" + folder, ...)``.

It is a test instrument: it knows only the few hundred sentences its captions are made of and the
scenes it was trained on. It never replaces a pretrained CLIP for real tasks.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import open_clip
import torch
from vlmrm_reward import PreprocessConfig, preprocess_frames

from vlmrm_cli.scenes import Scene, get_scene, render_states

__all__ = ["InDomainSettings", "render_dataset", "train_indomain_clip"]

INTERPOLATION = "bilinear"
RESIZE_MODE = "squash"  # the whole scene, never a centre crop that would hide the cart at the track's ends


@dataclass(frozen=True)
class InDomainSettings:
    """How much to render and train. The defaults take a few minutes on two CPU cores; half the
    frames and steps (the tests' settings) already give a reward that peaks at the upright pole.

    ``seconds`` bounds the training time (the cosine learning-rate decay then follows the time
    spent); ``steps`` bounds the optimiser steps. Training stops at whichever comes first.
    """

    frames: int = 8000
    steps: int = 300
    seconds: float | None = None
    batch_size: int = 128
    image_size: int = 64
    learning_rate: float = 5e-4
    seed: int = 0

    def __post_init__(self) -> None:
        for name in ("frames", "steps", "batch_size"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        if self.image_size < 32 or self.image_size % 32:
            raise ValueError(
                f"image_size must be a multiple of 32 (the ResNet's stride), got {self.image_size}"
            )
        if self.seconds is not None and not self.seconds > 0:
            raise ValueError(f"seconds must be positive, got {self.seconds}")
        if self.frames < self.batch_size:
            raise ValueError(f"frames ({self.frames}) must be at least batch_size ({self.batch_size})")


def model_config(image_size: int) -> dict:
    """open_clip's model config: ResNet image tower (layers 1,1,1,1, width 16), 2-layer text tower."""
    return {
        "embed_dim": 64,
        "vision_cfg": {"image_size": image_size, "layers": [1, 1, 1, 1], "width": 16, "head_width": 64},
        "text_cfg": {"context_length": 32, "vocab_size": 49408, "width": 128, "heads": 4, "layers": 2},
    }


def render_dataset(
    scene: Scene, count: int, image_size: int, rng: np.random.Generator
) -> tuple[np.ndarray, list[str]]:
    """``count`` frames of sampled states, downscaled to uint8 (count, size, size, 3), and captions."""
    states = scene.sample_states(rng, count)
    captions = [scene.caption(state, rng) for state in states]
    # Mean 0 and std 1/255 keep preprocess_frames' resized pixels in 0..255: the reward model's own
    # resize, so the model sees at training time what it sees when scoring.
    resize_only = PreprocessConfig(
        size=(image_size, image_size), mean=(0.0,) * 3, std=(1 / 255,) * 3,
        interpolation=INTERPOLATION, resize_mode=RESIZE_MODE,
    )  # fmt: skip
    images = np.empty((count, image_size, image_size, 3), np.uint8)
    chunk: list[np.ndarray] = []
    done = 0
    for frame, _ in render_states(scene, states):
        chunk.append(frame)
        if len(chunk) == 256 or done + len(chunk) == count:
            resized = preprocess_frames(torch.from_numpy(np.stack(chunk)), resize_only)
            images[done : done + len(chunk)] = (
                resized.permute(0, 2, 3, 1).round().clamp(0, 255).byte().numpy()
            )
            done += len(chunk)
            chunk = []
    return images, captions


def train_indomain_clip(
    env_id: str,
    folder: str | Path,
    settings: InDomainSettings = InDomainSettings(),
    log: Callable[[str], None] = lambda line: None,
) -> str:
    """Train the in-domain CLIP of ``env_id`` and save it into ``folder``; returns ``"local-dir:<folder>"``.

    The folder holds ``open_clip_config.json`` (the model and its preprocessing: squash to
    ``image_size``, the training data's per-channel mean and std), ``open_clip_pytorch_model.bin``
    and ``training.json`` (settings, loss curve, example captions).
    """
    scene = get_scene(env_id)
    folder = Path(folder)
    rng = np.random.default_rng(settings.seed)
    torch.manual_seed(settings.seed)

    began = time.perf_counter()
    images, captions = render_dataset(scene, settings.frames, settings.image_size, rng)
    render_seconds = time.perf_counter() - began
    log(f"rendered {len(images)} frames of {env_id} in {render_seconds:.0f} s; {len(set(captions))} captions")

    pixels = torch.from_numpy(images).permute(0, 3, 1, 2).float().div_(255.0)
    mean = pixels.mean(dim=(0, 2, 3))
    std = pixels.std(dim=(0, 2, 3)).clamp_min(1e-3)
    pixels = (pixels - mean.view(1, 3, 1, 1)) / std.view(1, 3, 1, 1)

    cfg = model_config(settings.image_size)
    preprocess_cfg = {
        "size": settings.image_size,
        "mean": mean.tolist(),
        "std": std.tolist(),
        "interpolation": INTERPOLATION,
        "resize_mode": RESIZE_MODE,
    }
    folder.mkdir(parents=True, exist_ok=True)
    config_path = folder / "open_clip_config.json"
    config_path.write_text(json.dumps({"model_cfg": cfg, "preprocess_cfg": preprocess_cfg}, indent=2))
    tokenizer = open_clip.get_tokenizer(f"local-dir:{folder}")  # the tokenizer the loader will use
    tokens = tokenizer(captions)

    model = open_clip.CLIP(**cfg)
    model.train()
    loss_fn = open_clip.ClipLoss()
    optimizer = torch.optim.AdamW(model.parameters(), lr=settings.learning_rate, weight_decay=0.1)
    generator = torch.Generator().manual_seed(settings.seed)
    losses: list[float] = []
    train_began = time.perf_counter()
    step = 0
    while step < settings.steps:
        elapsed = time.perf_counter() - train_began
        progress = step / settings.steps
        if settings.seconds is not None:
            if elapsed >= settings.seconds:
                break
            progress = max(progress, elapsed / settings.seconds)
        for group in optimizer.param_groups:
            group["lr"] = settings.learning_rate * 0.5 * (1 + math.cos(math.pi * progress))
        batch = torch.randint(len(pixels), (settings.batch_size,), generator=generator)
        image_features, text_features, logit_scale = model(pixels[batch], tokens[batch])
        loss = loss_fn(image_features, text_features, logit_scale)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        with torch.no_grad():
            model.logit_scale.clamp_(0, math.log(100))
        losses.append(loss.item())
        step += 1
        if step % 50 == 0:
            log(f"step {step}: loss {np.mean(losses[-50:]):.3f} ({time.perf_counter() - train_began:.0f} s)")
    train_seconds = time.perf_counter() - train_began

    torch.save(model.state_dict(), folder / "open_clip_pytorch_model.bin")
    (folder / "training.json").write_text(
        json.dumps(
            {
                "purpose": "in-domain CLIP: an offline test instrument, not a substitute for pretrained CLIP",
                "env_id": env_id,
                "settings": asdict(settings),
                "steps": step,
                "render_seconds": round(render_seconds, 1),
                "train_seconds": round(train_seconds, 1),
                "loss_first": losses[0] if losses else None,
                "loss_last_50": float(np.mean(losses[-50:])) if losses else None,
                "loss": [round(value, 4) for value in losses],
                "example_captions": sorted(set(captions))[:20],
            },
            indent=2,
        )
    )
    log(f"trained {step} steps in {train_seconds:.0f} s; saved local-dir:{folder}")
    return f"local-dir:{folder}"
