"""Batched image preprocessing as tensor ops on the scoring device.

Backends describe their expected input with a :class:`PreprocessConfig` (the fields mirror
open_clip's ``PreprocessCfg``); :func:`preprocess_frames` reproduces the model's evaluation
transform (resize, crop or pad, scale to [0, 1], normalise) for a whole batch at once instead
of a per-image PIL loop.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F

__all__ = ["PreprocessConfig", "preprocess_frames"]

RESIZE_MODES = ("shortest", "longest", "squash")
INTERPOLATIONS = ("bicubic", "bilinear")


@dataclass(frozen=True)
class PreprocessConfig:
    """What a backend's image encoder expects.

    Attributes:
        size: output (height, width) in pixels.
        mean, std: per-channel normalisation of [0, 1] RGB values.
        interpolation: ``"bicubic"`` or ``"bilinear"`` (antialiased, like PIL).
        resize_mode: ``"shortest"`` (scale the short side to fit, centre-crop the rest),
            ``"longest"`` (scale the long side to fit, pad with ``fill_color``) or
            ``"squash"`` (resize to ``size`` ignoring aspect ratio).
        fill_color: padding value in [0, 255] for ``"longest"``.
    """

    size: tuple[int, int]
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    interpolation: str = "bicubic"
    resize_mode: str = "shortest"
    fill_color: int = 0

    def __post_init__(self) -> None:
        if self.resize_mode not in RESIZE_MODES:
            raise ValueError(f"resize_mode must be one of {RESIZE_MODES}, got {self.resize_mode!r}")
        # open_clip's "random" interpolation is a training augmentation; evaluation uses bicubic.
        if self.interpolation not in INTERPOLATIONS:
            object.__setattr__(self, "interpolation", "bicubic")


def _resized_shape(height: int, width: int, config: PreprocessConfig) -> tuple[int, int]:
    target_h, target_w = config.size
    if config.resize_mode == "squash":
        return target_h, target_w
    ratio_h, ratio_w = height / target_h, width / target_w
    # "shortest" fits the short side (then crops); "longest" fits the long side (then pads).
    ratio = min(ratio_h, ratio_w) if config.resize_mode == "shortest" else max(ratio_h, ratio_w)
    if config.resize_mode == "shortest" and target_h == target_w:
        # torchvision's Resize(int): short side exactly `size`, long side truncated.
        short = target_h
        if height <= width:
            return short, int(short * width / height)
        return int(short * height / width), short
    return max(1, round(height / ratio)), max(1, round(width / ratio))  # a thin frame keeps a pixel


def _center_crop_or_pad(images: torch.Tensor, size: tuple[int, int], fill: float) -> torch.Tensor:
    crop_h, crop_w = size
    height, width = images.shape[-2:]
    if crop_h > height or crop_w > width:
        pad_w, pad_h = max(crop_w - width, 0), max(crop_h - height, 0)
        images = F.pad(images, (pad_w // 2, (pad_w + 1) // 2, pad_h // 2, (pad_h + 1) // 2), value=fill)
        height, width = images.shape[-2:]
    # torchvision's center_crop rounds the offsets this way.
    top = round((height - crop_h) / 2.0)
    left = round((width - crop_w) / 2.0)
    return images[..., top : top + crop_h, left : left + crop_w]


def _keep_what_the_crop_keeps(
    images: torch.Tensor, new_shape: tuple[int, int], size: tuple[int, int]
) -> tuple[torch.Tensor, tuple[int, int]]:
    """Before a resize whose result is mostly cropped away, cut the frame to the centre part that the
    crop keeps (and the reach of the resize kernel), so that a thin frame (1x20000) does not become a
    huge intermediate image; frames of ordinary proportions are left whole."""
    spans = []
    for old, new, target in zip(images.shape[-2:], new_shape, size, strict=True):
        if new <= 8 * target:  # ordinary proportions: resized whole, as the model's own transform does
            spans.append((0, old, new))
            continue
        scale = old / new
        span = min(old, math.ceil(target * scale) + 2 * (math.ceil(2 * max(1.0, scale)) + 1))
        spans.append(((old - span) // 2, span, max(target, round(span / scale))))
    (top, rows, new_height), (left, columns, new_width) = spans
    return images[..., top : top + rows, left : left + columns], (new_height, new_width)


def _resize(images: torch.Tensor, shape: tuple[int, int], interpolation: str) -> torch.Tensor:
    """Antialiased resize of uint8 (N, 3, H, W) images to ``shape``, as PIL does it: one axis at a
    time (width first), each pass rounded and clipped to whole 8-bit levels. A single 2-D pass in
    floating point overshoots at sharp edges (up to 9 grey levels from PIL's bicubic on rendered
    frames); this stays within one level.

    On the CPU, torch's uint8 kernel does exactly this, about 5x faster than converting the frame to
    float first; elsewhere the two passes run in float32.
    """
    if images.device.type == "cpu":
        return F.interpolate(images, size=shape, mode=interpolation, antialias=True, align_corners=False)
    resized = images.float()
    for step in ((resized.shape[-2], shape[1]), shape):
        if step != tuple(resized.shape[-2:]):
            resized = F.interpolate(
                resized, size=step, mode=interpolation, antialias=True, align_corners=False
            )
            resized = resized.round_().clamp_(0.0, 255.0)
    return resized


def preprocess_frames(frames: torch.Tensor, config: PreprocessConfig) -> torch.Tensor:
    """uint8 RGB frames (N, H, W, 3) on any device -> normalised float32 (N, 3, h, w) there.

    Resized as the model's own PIL-based transform resizes (see :func:`_resize`): the result
    matches it to within one grey level.
    """
    images = frames.permute(0, 3, 1, 2)  # a channels-last view, which torch's uint8 kernel wants
    height, width = images.shape[-2:]
    new_shape = _resized_shape(height, width, config)
    if config.resize_mode == "shortest":
        images, new_shape = _keep_what_the_crop_keeps(images, new_shape, config.size)
    if new_shape != (height, width):
        images = _resize(images, new_shape, config.interpolation)
    images = images.float()
    if images.shape[-2:] != config.size:
        images = _center_crop_or_pad(images, config.size, float(config.fill_color))
    mean = torch.tensor(config.mean, device=images.device).view(1, 3, 1, 1) * 255.0
    std = torch.tensor(config.std, device=images.device).view(1, 3, 1, 1) * 255.0
    return (images - mean) / std
