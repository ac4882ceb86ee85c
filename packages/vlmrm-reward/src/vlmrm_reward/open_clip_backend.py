"""The built-in open_clip backend, registered through the ``vlmrm`` entry point like any plugin.

Model spellings (as open_clip names them):

- ``"ARCH/PRETRAINED_TAG"``, e.g. ``"ViT-bigG-14/laion2b_s39b_b160k"``: weights downloaded once
  into ``cache_dir`` (or open_clip's default cache);
- ``"ARCH/path/to/checkpoint.pt"``: weights from a local file;
- ``"ARCH/random"``: randomly initialised weights (benchmarks only: the reward is meaningless);
- ``"hf-hub:org/repo"`` and ``"local-dir:/path/to/folder"``: config and weights together.
"""

from __future__ import annotations

import contextlib
import difflib
import logging
import os
import pickle
import socket
import urllib.parse
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import open_clip
import torch

from vlmrm_reward.hookspecs import hookimpl
from vlmrm_reward.preprocess import PreprocessConfig

__all__ = ["OpenCLIPBackend", "load_open_clip", "register_backends"]

RANDOM_WEIGHTS_TAG = "random"
SCHEMA_PREFIXES = ("local-dir:", "hf-hub:")


class OpenCLIPBackend:
    """An open_clip ``CLIP`` model and its tokenizer, behind the :class:`Backend` interface."""

    def __init__(
        self,
        model: open_clip.CLIP | open_clip.CustomTextCLIP,
        tokenizer: Callable[[list[str]], torch.Tensor],
        preprocess_config: PreprocessConfig,
    ) -> None:
        self.model = model.eval().requires_grad_(False)
        self.tokenizer = tokenizer
        self.preprocess_config = preprocess_config

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    def to(self, device: torch.device) -> OpenCLIPBackend:
        self.model.to(device)
        return self

    def encode_images(self, pixels: torch.Tensor) -> torch.Tensor:
        return self.model.encode_image(pixels)

    def encode_text(self, prompts: Sequence[str]) -> torch.Tensor:
        tokens = self.tokenizer(list(prompts)).to(self.device)
        return self.model.encode_text(tokens)


def _split_spec(model: str) -> tuple[str, str | None]:
    """'ARCH/TAG' -> (ARCH, TAG); schema spellings pass through whole."""
    if model.startswith(SCHEMA_PREFIXES):
        return model, None
    arch, _, pretrained = model.partition("/")
    known = open_clip.list_models()
    if arch not in known:
        close = difflib.get_close_matches(arch, known, n=5, cutoff=0.5)
        suggestion = f" Close matches: {', '.join(close)}." if close else ""
        raise ValueError(
            f"unknown open_clip architecture {arch!r} in model {model!r}.{suggestion} "
            "See open_clip.list_models() for all of them."
        )
    tags = open_clip.list_pretrained_tags_by_model(arch)
    if not pretrained:
        raise ValueError(
            f"model {model!r} names no weights: write it as '{arch}/TAG' with TAG one of "
            f"{', '.join(tags) or '(none published)'}, a checkpoint path, or "
            f"'{arch}/{RANDOM_WEIGHTS_TAG}' for random weights"
        )
    if pretrained == RANDOM_WEIGHTS_TAG:
        return arch, None
    if pretrained in tags or Path(pretrained).is_file():
        return arch, pretrained
    close = difflib.get_close_matches(pretrained, tags, n=5, cutoff=0.4)
    raise ValueError(
        f"unknown pretrained tag {pretrained!r} for {arch} (and no such checkpoint file). "
        f"Close matches: {', '.join(close or tags) or 'none'}."
    )


def _download_hint(model: str, cache_dir: str | None, reason: str) -> RuntimeError:
    arch, _, tag = model.partition("/")
    folder = cache_dir or "/models"
    return RuntimeError(
        f"could not get the weights of {model!r} ({reason}). "
        f'On a machine with internet, run `python -c "import open_clip; '
        f"open_clip.create_model('{arch}', pretrained='{tag}', cache_dir='{folder}')\"`, copy {folder} "
        f"here and pass it as cache_dir, or load a saved model folder as 'local-dir:/path/to/folder'"
    )


_PROXY_VARIABLES = ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy", "ALL_PROXY", "all_proxy")


def _unreachable_hub() -> str | None:
    """The model hub's address when a connection to it fails within 3 s, else None. Not tried in
    offline mode or behind a proxy (where a direct connection tells nothing)."""
    import huggingface_hub.constants as hub

    if hub.HF_HUB_OFFLINE or any(os.environ.get(name) for name in _PROXY_VARIABLES):
        return None
    url = urllib.parse.urlsplit(hub.ENDPOINT)
    try:
        socket.create_connection(
            (url.hostname, url.port or (443 if url.scheme == "https" else 80)), timeout=3
        ).close()
    except OSError:
        return hub.ENDPOINT
    return None


@contextlib.contextmanager
def _hub_offline(offline: bool) -> Iterator[None]:
    """With ``offline``, the hub client reads its cache only: no request, so no minute of retries."""
    import huggingface_hub.constants as hub

    before = hub.HF_HUB_OFFLINE
    hub.HF_HUB_OFFLINE = before or offline
    if offline:  # open_clip logs each failed download at ERROR level; the caller says it in one line
        logging.disable(logging.ERROR)
    try:
        yield
    finally:
        hub.HF_HUB_OFFLINE = before
        if offline:
            logging.disable(logging.NOTSET)


def load_open_clip(model: str, *, cache_dir: str | None = None) -> OpenCLIPBackend:
    """Load an open_clip model on the CPU in fp32 (see the module docstring for spellings)."""
    name, pretrained = _split_spec(model)
    local = name.startswith("local-dir:") or bool(pretrained and Path(pretrained).is_file())
    unreachable = None if local else _unreachable_hub()
    try:
        with _hub_offline(unreachable is not None):  # then only cached weights can load
            clip, _, _ = open_clip.create_model_and_transforms(
                name, pretrained=pretrained, cache_dir=cache_dir
            )
    except FileNotFoundError:
        raise
    except pickle.UnpicklingError as error:
        # torch.load(weights_only=True) met a Python object that unpickling would have to run.
        lines = str(error).splitlines()
        reason = next(
            (line.split(" Please")[0].strip() for line in lines if "Unsupported global" in line), ""
        )
        raise ValueError(
            f"{model}: the checkpoint holds Python objects besides tensors and was not loaded, since "
            f"loading them could run code (weights_only=True). {reason}".strip()
        ) from None
    except (RuntimeError, OSError) as error:
        if local:
            raise
        if unreachable is not None:
            reason = f"the model hub {unreachable} cannot be reached and they are not in the cache"
            raise _download_hint(model, cache_dir, reason) from None
        raise _download_hint(model, cache_dir, f"{type(error).__name__}: {error}") from error
    visual_cfg = dict(clip.visual.preprocess_cfg)
    size = visual_cfg.get("size", 224)
    size = (size, size) if isinstance(size, int) else tuple(size)
    preprocess_config = PreprocessConfig(
        size=size,
        mean=tuple(visual_cfg["mean"]),
        std=tuple(visual_cfg["std"]),
        interpolation=visual_cfg.get("interpolation", "bicubic"),
        resize_mode=visual_cfg.get("resize_mode", "shortest"),
        fill_color=int(visual_cfg.get("fill_color", 0)),
    )
    tokenizer = open_clip.get_tokenizer(name, cache_dir=cache_dir)
    return OpenCLIPBackend(clip, tokenizer, preprocess_config)


@hookimpl
def register_backends(register) -> None:
    register("open_clip", load_open_clip)
