"""RewardModel on a tiny random open_clip model loaded through open_clip's real local-dir path."""

from __future__ import annotations

import copy

import numpy as np
import open_clip
import pytest
import torch
from conftest import BASELINES, TARGETS
from PIL import Image
from test_reward_math import reference_reward
from vlmrm_reward import PreprocessConfig, RewardModel, load_reward_model, preprocess_frames, resolve_devices
from vlmrm_reward.open_clip_backend import OpenCLIPBackend, load_open_clip
from vlmrm_reward.testing import make_tiny_open_clip


def test_rewards_follow_the_formula_on_the_models_own_embeddings(reward_model, frames):
    rewards = reward_model(frames)
    assert rewards.dtype == np.float32 and rewards.shape == (len(frames),)
    expected = reference_reward(
        reward_model.embed_images(frames).astype(np.float64),
        reward_model.embed_text(TARGETS).astype(np.float64),
        reward_model.embed_text(BASELINES).astype(np.float64),
        alpha=0.5,
    )
    np.testing.assert_allclose(rewards, expected, atol=1e-5)


def test_embeddings_are_unit_norm(reward_model, frames):
    np.testing.assert_allclose(np.linalg.norm(reward_model.embed_images(frames), axis=1), 1.0, atol=1e-5)
    np.testing.assert_allclose(np.linalg.norm(reward_model.embed_text(TARGETS), axis=1), 1.0, atol=1e-5)


def test_text_embeddings_are_those_of_the_underlying_clip(tiny_model_spec, reward_model):
    clip, _, _ = open_clip.create_model_and_transforms(tiny_model_spec)
    tokens = open_clip.get_tokenizer(tiny_model_spec)(TARGETS)
    with torch.no_grad():
        expected = torch.nn.functional.normalize(clip.eval().encode_text(tokens), dim=-1)
    np.testing.assert_allclose(reward_model.embed_text(TARGETS), expected.numpy(), atol=1e-5)


@pytest.mark.parametrize("batch_size", [1, 2, 4, 5, 1000])
def test_rewards_do_not_depend_on_batch_size(tiny_model_spec, reward_model, frames, batch_size):
    other = load_reward_model(
        tiny_model_spec,
        target_prompts=TARGETS,
        baseline_prompts=BASELINES,
        alpha=0.5,
        device="cpu",
        batch_size=batch_size,
    )
    np.testing.assert_allclose(other(frames), reward_model(frames), atol=1e-5)


@pytest.mark.parametrize("batch_size", [1, 4, 256])
def test_rewards_do_not_depend_on_how_many_devices_share_the_work(
    tiny_model_spec, reward_model, frames, batch_size
):
    with load_reward_model(
        tiny_model_spec,
        target_prompts=TARGETS,
        baseline_prompts=BASELINES,
        alpha=0.5,
        devices=["cpu", "cpu", "cpu"],
        batch_size=batch_size,
    ) as split:
        assert len(split.devices) == 3
        np.testing.assert_allclose(split(frames), reward_model(frames), atol=1e-5)
        np.testing.assert_allclose(split.embed_images(frames), reward_model.embed_images(frames), atol=1e-5)


def test_single_frame_torch_input_and_non_contiguous_views(reward_model, frames):
    batch = reward_model(frames)
    assert reward_model(frames[3]).shape == (1,)
    np.testing.assert_allclose(reward_model(frames[3]), batch[3:4], atol=1e-6)
    np.testing.assert_allclose(reward_model(torch.from_numpy(frames)), batch, atol=1e-6)
    flipped = frames[:, ::-1, ::-1]  # negative strides
    np.testing.assert_allclose(reward_model(flipped), reward_model(np.ascontiguousarray(flipped)), atol=1e-6)
    assert reward_model(frames[:0]).shape == (0,)


def test_any_frame_size_is_accepted(reward_model):
    rng = np.random.default_rng(3)
    for height, width in [(7, 300), (300, 7), (32, 32), (480, 640)]:
        frame = rng.integers(0, 256, size=(2, height, width, 3), dtype=np.uint8)
        assert np.isfinite(reward_model(frame)).all()


@pytest.mark.parametrize("resize_mode", ["shortest", "longest", "squash"])
@pytest.mark.parametrize("height, width", [(48, 64), (100, 30), (32, 32), (17, 20), (400, 600)])
def test_batched_preprocessing_matches_open_clips_pil_transform(tmp_path, resize_mode, height, width):
    spec = make_tiny_open_clip(tmp_path, resize_mode=resize_mode, image_size=24)
    _, _, pil_transform = open_clip.create_model_and_transforms(spec)
    config = load_open_clip(spec).preprocess_config
    rng = np.random.default_rng(height * width)
    coarse = Image.fromarray(rng.integers(0, 256, size=(5, 5, 3), dtype=np.uint8))
    # A smooth image, and one of flat blocks with sharp edges as rendered frames have (where a
    # one-pass bicubic resize in floating point overshoots PIL's by several grey levels). Pillow
    # resizes one axis at a time and, for frames much taller than wide, picks the order of the two
    # passes by a rule of its own, which differs at sharp edges (by up to 5 levels at 100x30).
    sharp = Image.NEAREST if width >= height / 2 else Image.BILINEAR
    images = [np.array(coarse.resize((width, height), kind)) for kind in (Image.BILINEAR, sharp)]
    ours = preprocess_frames(torch.from_numpy(np.stack(images)), config)
    reference = torch.stack([pil_transform(Image.fromarray(image)) for image in images])
    assert ours.shape == reference.shape
    # PIL and torch's antialiased resampling agree to within one 8-bit grey level.
    one_level = 1.0 / (255 * min(config.std))
    assert (ours - reference).abs().max() <= one_level + 1e-4


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
@pytest.mark.parametrize("interpolation", ["bicubic", "bilinear"])
def test_preprocessing_on_a_gpu_matches_the_cpu(interpolation):
    """The GPU resizes in float32 (two passes, rounded between them), the CPU with torch's uint8 kernel."""
    rng = np.random.default_rng(0)
    coarse = Image.fromarray(rng.integers(0, 256, size=(6, 9, 3), dtype=np.uint8))
    frames = torch.from_numpy(np.stack([np.array(coarse.resize((600, 400), Image.NEAREST))] * 2))
    config = PreprocessConfig((224, 224), (0.5,) * 3, (0.25,) * 3, interpolation, "squash")
    on_cpu = preprocess_frames(frames, config)
    on_gpu = preprocess_frames(frames.cuda(), config).cpu()
    assert (on_gpu - on_cpu).abs().max() <= 1.0 / (255 * 0.25) + 1e-4


def test_bf16_autocast_on_cpu_is_close_to_fp32(tiny_model_spec, reward_model, frames):
    bf16 = load_reward_model(
        tiny_model_spec,
        target_prompts=TARGETS,
        baseline_prompts=BASELINES,
        alpha=0.5,
        device="cpu",
        precision="bf16",
    )
    np.testing.assert_allclose(bf16(frames), reward_model(frames), atol=0.05)


def test_closed_model_refuses_to_score_and_leaves_no_thread(tiny_model_spec, frames):
    import threading

    model = load_reward_model(tiny_model_spec, target_prompts=["x"], devices=["cpu", "cpu"], batch_size=4)
    model(frames)  # the device workers' threads start on first use
    assert sum(thread.name.startswith("vlmrm-reward-") for thread in threading.enumerate()) == 2
    model.close()
    assert not [thread.name for thread in threading.enumerate() if thread.name.startswith("vlmrm-reward-")]
    model.close()
    with pytest.raises(RuntimeError, match="closed"):
        model(frames)


class FailingCopies:
    """A backend whose deep copies fail to encode images: RewardModel puts a deep copy of its
    backend on every device after the first, so the second device's worker fails."""

    def __init__(self, backend: OpenCLIPBackend, failing: bool = False) -> None:
        self.backend = backend
        self.failing = failing
        self.preprocess_config = backend.preprocess_config

    def __deepcopy__(self, memo: dict) -> FailingCopies:
        return FailingCopies(copy.deepcopy(self.backend, memo), failing=True)

    def to(self, device: torch.device) -> FailingCopies:
        self.backend.to(device)
        return self

    def encode_images(self, pixels: torch.Tensor) -> torch.Tensor:
        if self.failing:
            raise RuntimeError("the second device failed")
        return self.backend.encode_images(pixels)

    def encode_text(self, prompts: list[str]) -> torch.Tensor:
        return self.backend.encode_text(prompts)


def test_a_failing_device_worker_raises_in_the_caller(tiny_model_spec, frames):
    backend = FailingCopies(load_open_clip(tiny_model_spec))
    model = RewardModel(backend, resolve_devices(devices=["cpu", "cpu"]), target_prompts=["x"], batch_size=4)
    with pytest.raises(RuntimeError, match="the second device failed"):
        model(frames)
    model.close()


def test_compiled_image_encoder_gives_the_same_rewards(tiny_model_spec, frames):
    kwargs = {"target_prompts": TARGETS, "device": "cpu", "batch_size": 4}
    compiled = load_reward_model(tiny_model_spec, compile=True, **kwargs)
    eager = load_reward_model(tiny_model_spec, **kwargs)
    np.testing.assert_allclose(compiled(frames), eager(frames), atol=1e-5)


def test_copying_and_pickling_are_refused_with_a_clear_message(reward_model):
    import copy
    import pickle

    with pytest.raises(TypeError, match="is not copied"):
        copy.deepcopy({"model": reward_model})
    with pytest.raises(TypeError, match="is not copied"):
        copy.copy(reward_model)
    with pytest.raises(TypeError, match="cannot be sent to another process"):
        pickle.dumps(reward_model)


def test_resize_mode_overrides_the_models_own(tiny_model_spec):
    # A 600x400 frame whose only detail is at its right edge, as MountainCar's flag is.
    frames = np.zeros((1, 400, 600, 3), np.uint8)
    frames[:, 150:250, 530:580] = 255
    models = {
        mode: load_reward_model(tiny_model_spec, target_prompts=TARGETS, device="cpu", resize_mode=mode)
        for mode in (None, "shortest", "squash")
    }
    try:
        assert models[None].preprocess_config.resize_mode == "shortest"  # the tiny model's own
        cropped = preprocess_frames(torch.from_numpy(frames), models["shortest"].preprocess_config)
        squashed = preprocess_frames(torch.from_numpy(frames), models["squash"].preprocess_config)
        # Each channel of the cropped input is one flat value: the crop cut the detail away.
        assert (cropped == cropped[..., :1, :1]).all()
        assert not (squashed == squashed[..., :1, :1]).all()
        assert models[None](frames) == models["shortest"](frames)
    finally:
        for model in models.values():
            model.close()
    with pytest.raises(ValueError, match="resize_mode must be one of"):
        load_reward_model("no-such-model/weights", target_prompts=TARGETS, resize_mode="crop")
