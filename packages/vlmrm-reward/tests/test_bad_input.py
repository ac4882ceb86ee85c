"""Every bad input gets a ValueError/TypeError that names the culprit."""

from __future__ import annotations

import huggingface_hub.constants
import numpy as np
import pytest
import torch
from vlmrm_reward import hookimpl, load_reward_model
from vlmrm_reward.backend import plugin_manager


@pytest.mark.parametrize(
    "bad, error, message",
    [
        (np.zeros((2, 2, 8, 8, 3), np.uint8), ValueError, "shape"),
        (np.zeros((8, 8), np.uint8), ValueError, "shape"),
        (np.zeros((2, 3, 8, 8), np.uint8), ValueError, "channels-first"),
        (np.zeros((2, 8, 8, 4), np.uint8), ValueError, "alpha channel"),
        (np.zeros((2, 8, 8, 3), np.float32), TypeError, "uint8"),
        (torch.zeros((2, 8, 8, 3)), TypeError, "uint8"),
        (np.zeros((2, 0, 8, 3), np.uint8), ValueError, "zero height"),
        ("frames.png", TypeError, "numpy array or torch tensor"),
    ],
)
def test_bad_frames(reward_model, bad, error, message):
    with pytest.raises(error, match=message):
        reward_model(bad)


BAD_ARGUMENTS = [
    ({"target_prompts": []}, ValueError, "target_prompts is empty"),
    ({"target_prompts": "a robot"}, TypeError, "single string"),
    ({"target_prompts": ["ok", ""]}, ValueError, "non-empty strings"),
    ({"target_prompts": ["x"], "baseline_prompts": [3]}, ValueError, "baseline_prompts"),
    ({"target_prompts": ["x"], "alpha": 1.5}, ValueError, "alpha"),
    ({"target_prompts": ["x"], "alpha": -0.1}, ValueError, "alpha"),
    ({"target_prompts": ["x"], "batch_size": 0}, ValueError, "batch_size"),
    ({"target_prompts": ["x"], "precision": "fp8"}, ValueError, "precision"),
    ({"target_prompts": ["x"], "device": "cuda:0"}, ValueError, "not available"),
    ({"target_prompts": ["x"], "device": "gpu"}, ValueError, "not a torch device"),
    ({"target_prompts": ["x"], "devices": []}, ValueError, "empty list"),
    ({"target_prompts": ["x"], "devices": "cpu"}, TypeError, "must be a list"),
    ({"target_prompts": ["x"], "device": "cpu", "devices": ["cpu"]}, ValueError, "not both"),
    ({"target_prompts": ["x"], "resize_mode": "stretch"}, ValueError, "resize_mode"),
    ({"target_prompts": ["x"], "compile": "yes"}, TypeError, "compile"),
    ({"target_prompts": ["x"], "cache_dir": 3}, TypeError, "cache_dir"),
    ({"target_prompts": ["x"], "video_mode": "clip"}, ValueError, "video reward mode"),
    ({"target_prompts": ["x"], "window_size": 0}, ValueError, "window_size"),
    ({"target_prompts": ["x"], "judge_reward": "odds"}, ValueError, "judge reward"),
    ({"target_prompts": ["x"], "question_template": "Is it?"}, ValueError, "question_template"),
]


@pytest.mark.parametrize(
    "kwargs, error, message",
    [
        *BAD_ARGUMENTS,
        ({"target_prompts": ["x"], "backend": "open-clip"}, ValueError, "did you mean 'open_clip'"),
    ],
)
def test_bad_arguments(tiny_model_spec, kwargs, error, message):
    with pytest.raises(error, match=message):
        load_reward_model(tiny_model_spec, **kwargs)


class CountingLoads:
    """A backend plugin, registered through the plugin manager, that counts its loads."""

    def __init__(self) -> None:
        self.loads = 0

    @hookimpl
    def register_backends(self, register) -> None:
        register("counting", self.load)

    def load(self, model: str, *, cache_dir: str | None = None) -> None:
        self.loads += 1
        raise RuntimeError("loading weights")


@pytest.mark.parametrize("kwargs, error, message", BAD_ARGUMENTS)
def test_bad_arguments_are_refused_before_any_weights_load(kwargs, error, message):
    plugin = CountingLoads()
    plugin_manager().register(plugin)
    try:
        with pytest.raises(error, match=message):
            load_reward_model("any", backend="counting", **kwargs)
        with pytest.raises(RuntimeError, match="loading weights"):  # good arguments do load
            load_reward_model("any", backend="counting", target_prompts=["x"], device="cpu")
    finally:
        plugin_manager().unregister(plugin)
    assert plugin.loads == 1


def test_same_target_and_baseline_with_alpha(tiny_model_spec):
    with pytest.raises(ValueError, match="same point"):
        load_reward_model(
            tiny_model_spec, target_prompts=["a"], baseline_prompts=["a"], alpha=0.5, device="cpu"
        )


def test_alpha_without_baseline_warns_and_gives_plain_clip_reward(tiny_model_spec, frames):
    with pytest.warns(UserWarning, match="no effect without baseline_prompts"):
        regularised = load_reward_model(tiny_model_spec, target_prompts=["a"], alpha=0.7, device="cpu")
    plain = load_reward_model(tiny_model_spec, target_prompts=["a"], device="cpu")
    np.testing.assert_allclose(regularised(frames), plain(frames))


@pytest.mark.parametrize(
    "model, message",
    [
        ("ViT-B-33/openai", "Close matches: ViT-B-32"),
        ("ViT-B-32/laion2b_s34b_b78k", "Close matches: laion2b_s34b_b79k"),
        ("ViT-B-32", "names no weights.*laion2b_s34b_b79k"),
        ("", "model spec"),
    ],
)
def test_unknown_architecture_or_tag_lists_close_matches(model, message):
    with pytest.raises(ValueError, match=message):
        load_reward_model(model, target_prompts=["x"], device="cpu")


def test_missing_local_dir_is_reported(tmp_path):
    with pytest.raises(FileNotFoundError, match="not found"):
        load_reward_model(f"local-dir:{tmp_path / 'nowhere'}", target_prompts=["x"], device="cpu")


def test_weights_that_cannot_be_downloaded_say_how_to_get_them(monkeypatch, tmp_path):
    # Offline mode makes the hub client fail at once instead of touching the network.
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    with pytest.raises(RuntimeError, match=r"could not get the weights.*cache_dir.*local-dir:"):
        load_reward_model(
            "ViT-B-32/laion2b_s34b_b79k", target_prompts=["x"], device="cpu", cache_dir=str(tmp_path)
        )


def test_a_hub_model_without_a_hub_fails_at_once_in_one_short_line(monkeypatch, tmp_path):
    """No hub (nothing listens at its address): one connection attempt, then the cache only; the
    message says so and gives the offline recipe, without the hub client's retries and text."""
    monkeypatch.setattr(huggingface_hub.constants, "ENDPOINT", "http://127.0.0.1:9")
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", False)
    for name in ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy", "ALL_PROXY", "all_proxy"):
        monkeypatch.delenv(name, raising=False)
    with pytest.raises(RuntimeError) as error:
        load_reward_model(
            "ViT-B-32/laion2b_s34b_b79k", target_prompts=["x"], device="cpu", cache_dir=str(tmp_path)
        )
    message = str(error.value)
    assert message.startswith(
        "could not get the weights of 'ViT-B-32/laion2b_s34b_b79k' (the model hub http://127.0.0.1:9 "
        "cannot be reached and they are not in the cache). On a machine with internet, run"
    ), message
    assert "\n" not in message and len(message) < 400 + 2 * len(str(tmp_path)), message


@pytest.mark.parametrize(
    ("setting", "message"),
    [
        ({"batch_size": 0}, "batch_size"),
        ({"precision": "fp8"}, "precision"),
        ({"compile": "yes"}, "compile"),
        ({"cache_dir": 3}, "cache_dir"),
    ],
)
def test_every_argument_is_checked_before_the_weights_load(tmp_path, setting, message):
    # The model folder is missing: reaching the loader would raise about it instead.
    with pytest.raises((ValueError, TypeError), match=message):
        load_reward_model(f"local-dir:{tmp_path / 'missing'}", target_prompts=["x"], **setting)
