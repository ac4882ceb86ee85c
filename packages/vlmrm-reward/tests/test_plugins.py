"""A third-party backend, installed as a distribution with a `vlmrm` entry point, is found and used."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import numpy as np
import pytest
import vlmrm_reward
from vlmrm_reward.backend import plugin_manager

PLUGIN_MODULE = '''
import torch
from vlmrm_reward import PreprocessConfig, hookimpl

COLOURS = {"red": [1.0, 0.0, 0.0], "green": [0.0, 1.0, 0.0], "blue": [0.0, 0.0, 1.0]}


class MeanColourBackend:
    """Embeds an image as its mean RGB colour and a prompt as the colour it names."""

    preprocess_config = PreprocessConfig(size=(4, 4), mean=(0.0, 0.0, 0.0), std=(1.0, 1.0, 1.0))

    def __init__(self, model):
        self.model = model

    def to(self, device):
        return self

    def encode_images(self, pixels):
        return pixels.mean(dim=(2, 3))

    def encode_text(self, prompts):
        return torch.tensor([COLOURS[prompt] for prompt in prompts])


def load(model, *, cache_dir=None):
    return MeanColourBackend(model)


@hookimpl
def register_backends(register):
    register("mean_colour", load)
'''


@pytest.fixture
def installed_plugin(tmp_path, monkeypatch):
    """Install a tiny distribution the way pip would: a module plus a dist-info with entry_points.txt."""
    (tmp_path / "mean_colour_plugin.py").write_text(PLUGIN_MODULE)
    dist_info = tmp_path / "mean_colour_plugin-0.1.dist-info"
    dist_info.mkdir()
    (dist_info / "METADATA").write_text("Metadata-Version: 2.1\nName: mean-colour-plugin\nVersion: 0.1\n")
    (dist_info / "entry_points.txt").write_text(
        textwrap.dedent("""\
        [vlmrm]
        mean_colour = mean_colour_plugin
        """)
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    plugin_manager.cache_clear()
    yield
    plugin_manager.cache_clear()
    sys.modules.pop("mean_colour_plugin", None)


def test_builtin_open_clip_backend_comes_from_its_entry_point():
    names = {name for name, _ in plugin_manager().list_name_plugin()}
    assert "open_clip" in names
    assert "open_clip" in vlmrm_reward.list_backends()


def test_third_party_backend_is_discovered_and_used(installed_plugin):
    assert vlmrm_reward.list_backends() == ["mean_colour", "open_clip"]
    model = vlmrm_reward.load_reward_model("any", backend="mean_colour", target_prompts=["red"], device="cpu")
    red = np.zeros((1, 8, 8, 3), np.uint8)
    red[..., 0] = 255
    blue = np.zeros((1, 8, 8, 3), np.uint8)
    blue[..., 2] = 255
    rewards = model(np.concatenate([red, blue]))
    assert rewards[0] == pytest.approx(1.0, abs=1e-6)  # cosine similarity of red to "red"
    assert rewards[1] == pytest.approx(0.0, abs=1e-6)


def test_unknown_backend_lists_the_installed_ones(installed_plugin):
    with pytest.raises(ValueError, match="installed backends: mean_colour, open_clip"):
        vlmrm_reward.load_reward_model("any", backend="clap", target_prompts=["red"])


def test_the_pytest_plugin_imports_neither_torch_nor_open_clip():
    # pytest loads it into every test run where vlmrm-reward is installed, fixture used or not.
    code = "import sys, vlmrm_reward.pytest_plugin; print(sorted({'torch', 'open_clip'} & set(sys.modules)))"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"
