"""Model specs, the offline rules, and image-processor settings shared by every backend.

Spellings of a model: ``"hf:org/repo"`` (a Hugging Face Hub repository, downloaded once into
``cache_dir`` or the Hub's default cache), ``"hf:/path/to/folder"`` (a folder written by
``save_pretrained``), or a bare path to such a folder.

A repository already in the cache loads without touching the network. One that is not is
downloaded only when the Hub answers within a few seconds; otherwise (no network, or
``HF_HUB_OFFLINE=1``) loading fails at once with one line saying how to bring the files over,
instead of the Hub client's minute of retries.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Iterable
from functools import cache
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from vlmrm_reward import PreprocessConfig

__all__ = ["HUB_PROBE_SECONDS", "SPEC_PREFIX", "from_pretrained", "model_source", "preprocess_config_of"]

SPEC_PREFIX = "hf:"
HUB_PROBE_SECONDS = 3.0
# PIL's resampling codes, which image processors store.
_INTERPOLATIONS = {2: "bilinear", 3: "bicubic"}


def model_source(model: str) -> str:
    """The repository id or folder of a spec (see the module docstring)."""
    source = model[len(SPEC_PREFIX) :] if model.startswith(SPEC_PREFIX) else model
    if not source.strip():
        raise ValueError(f"model {model!r} names nothing: write 'hf:org/repo' or 'hf:/path/to/folder'")
    if _is_path(source) and not Path(source).is_dir():
        raise FileNotFoundError(f"model {model!r}: no folder {source}")
    if not _is_path(source) and source.count("/") != 1 and not model.startswith(SPEC_PREFIX):
        raise ValueError(f"model {model!r} is neither a folder nor a spec 'hf:org/repo'")
    return source


def _is_path(source: str) -> bool:
    return source.startswith(("/", "./", "../", "~")) or Path(source).is_dir()


def _offline() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in ("1", "true", "yes", "on")


@cache
def _hub_reachable() -> bool:
    from huggingface_hub import constants

    url = urlparse(constants.ENDPOINT)
    try:
        with socket.create_connection(
            (url.hostname, url.port or (443 if url.scheme == "https" else 80)), timeout=HUB_PROBE_SECONDS
        ):
            return True
    except OSError:
        return False


def from_pretrained(cls: Any, source: str, *, cache_dir: str | None, **kwargs: Any) -> Any:
    """``cls.from_pretrained(source)``: from the folder, else the cache, else the Hub if it answers."""
    if _is_path(source):
        return cls.from_pretrained(source, **kwargs)
    try:
        return cls.from_pretrained(source, cache_dir=cache_dir, local_files_only=True, **kwargs)
    except OSError as error:
        if _offline() or not _hub_reachable():
            folder = cache_dir or "~/.cache/huggingface/hub"
            raise OSError(
                f"{source} is not in the cache ({folder}) and the Hugging Face Hub cannot be reached. "
                f"On a machine with internet, run `huggingface-cli download {source} --cache-dir {folder}` "
                f"and copy {folder} here (pass it as cache_dir), or load a saved folder as 'hf:/path/to/folder'"
            ) from error
    return cls.from_pretrained(source, cache_dir=cache_dir, **kwargs)


def _size(value: Any) -> dict[str, int]:
    if value is None:
        return {}
    if isinstance(value, int):
        return {"height": value, "width": value}
    return {key: int(item) for key, item in dict(value).items() if item is not None}


def rgb_values(values: Iterable[float]) -> tuple[float, float, float]:
    """An image processor's per-channel mean or std, (red, green, blue), as floats."""
    red, green, blue = (float(value) for value in values)
    return red, green, blue


def preprocess_config_of(image_processor: Any) -> PreprocessConfig:
    """The :class:`~vlmrm_reward.PreprocessConfig` that reproduces ``image_processor`` on the device.

    A processor that resizes the short side and centre-crops (CLIP, X-CLIP, LLaVA) becomes
    ``"shortest"`` at the crop size; one that resizes to a fixed height and width (SigLIP)
    becomes ``"squash"``.
    """
    size = _size(getattr(image_processor, "size", None))
    crop = _size(getattr(image_processor, "crop_size", None))
    if getattr(image_processor, "do_center_crop", False) and crop:
        shape, mode = (crop["height"], crop["width"]), "shortest"
    elif "height" in size and "width" in size:
        shape, mode = (size["height"], size["width"]), "squash"
    elif "shortest_edge" in size:
        shape, mode = (size["shortest_edge"], size["shortest_edge"]), "shortest"
    else:
        raise ValueError(f"cannot read an image size from {type(image_processor).__name__} (size={size})")
    resample = getattr(image_processor, "resample", 3)
    interpolation = _INTERPOLATIONS.get(int(getattr(resample, "value", resample) or 3), "bicubic")
    return PreprocessConfig(
        size=shape,
        mean=rgb_values(image_processor.image_mean),
        std=rgb_values(image_processor.image_std),
        interpolation=interpolation,
        resize_mode=mode,
    )
