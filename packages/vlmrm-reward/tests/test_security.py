"""Model files are loaded with ``weights_only=True``: a checkpoint cannot run code when loaded."""

from __future__ import annotations

import pathlib
from pathlib import Path

import pytest
import torch
from vlmrm_reward import load_reward_model
from vlmrm_reward.testing import make_tiny_open_clip


class _RunsCodeWhenUnpickled:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (pathlib.Path.touch, (self.marker,))


def test_a_checkpoint_that_would_run_code_is_refused_unrun(tmp_path: Path) -> None:
    spec = make_tiny_open_clip(tmp_path / "model")
    weights = tmp_path / "model" / "open_clip_pytorch_model.bin"
    state = torch.load(weights, weights_only=True)
    marker = tmp_path / "code-ran"
    torch.save({**state, "payload": _RunsCodeWhenUnpickled(marker)}, weights)

    with pytest.raises(
        ValueError, match=r"Python objects besides tensors .*weights_only=True\). .*Unsupported global"
    ) as caught:
        load_reward_model(spec, target_prompts=["a robot"], device="cpu")
    assert not marker.exists(), "unpickling ran code from the checkpoint"
    assert "\n" not in str(caught.value)
