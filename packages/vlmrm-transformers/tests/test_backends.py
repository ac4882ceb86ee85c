"""Each model family loads through the `transformers` entry point and from_pretrained, and scores."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import vlmrm_reward
from vlmrm_reward import JudgeRewardModel, RewardModel, VideoRewardModel, load_reward_model
from vlmrm_reward.video import clip_indices

FRAMES = np.random.default_rng(0).integers(0, 256, size=(6, 40, 60, 3), dtype=np.uint8)
PROMPT = ["a humanoid robot kneeling"]


def load(spec: str, **options):
    return load_reward_model(spec, backend="transformers", target_prompts=PROMPT, device="cpu", **options)


def test_the_plugin_is_found_through_its_entry_point():
    assert "transformers" in vlmrm_reward.list_backends()


@pytest.mark.parametrize("family", ["clip", "siglip", "siglip2"])
def test_image_text_reward_is_the_cosine_of_unit_embeddings(tiny_specs, family):
    with load(tiny_specs[family], batch_size=4) as model:
        assert isinstance(model, RewardModel)
        rewards = model(FRAMES)
        images, text = model.embed_images(FRAMES), model.embed_text(PROMPT)
    np.testing.assert_allclose(np.linalg.norm(images, axis=1), 1.0, rtol=1e-5)
    np.testing.assert_allclose(rewards, images @ text[0], atol=1e-5)
    assert len(set(np.round(rewards, 6))) > 1  # frames differ, so do their rewards


def test_siglip_prompts_are_padded_to_full_length_as_trained(tiny_specs):
    from vlmrm_transformers.plugin import load_transformers

    backend = load_transformers(tiny_specs["siglip"])
    short, long = backend.encode_text(["a robot"]), backend.encode_text(["a robot", PROMPT[0]])
    torch.testing.assert_close(short[0], long[0])  # no padding difference between batches


@pytest.mark.parametrize("family", ["clip", "siglip2"])
def test_embeddings_match_the_checkpoints_own_processor_pipeline(tiny_specs, family):
    """Device preprocessing reproduces the checkpoint's image processor (up to resampling); for
    SigLIP 2 NaFlex on square frames, whose patch grid is then the same."""
    from transformers import AutoImageProcessor, AutoModel

    square = FRAMES[:, :, 10:50]
    folder = tiny_specs[family].removeprefix("hf:")
    processor, network = AutoImageProcessor.from_pretrained(folder), AutoModel.from_pretrained(folder)
    with torch.inference_mode():
        reference = network.get_image_features(**processor(images=list(square), return_tensors="pt"))
    reference = getattr(reference, "pooler_output", reference)
    reference = torch.nn.functional.normalize(reference, dim=-1).numpy()
    with load(tiny_specs[family]) as model:
        ours = model.embed_images(square)
    assert np.min(np.sum(ours * reference, axis=1)) > 0.999
    # Tiny random towers embed every image alike: other frames fall short of that bar, though not far.
    assert np.min(np.sum(ours * reference[::-1], axis=1)) < 0.999


def test_video_episode_mode_rewards_the_last_step_with_the_whole_episodes_clip(tiny_specs):
    with load(tiny_specs["xclip"]) as model:
        assert isinstance(model, VideoRewardModel) and model.mode == "episode"
        first, second = model.score_episodes([FRAMES, FRAMES[:3]])
        whole_clip = FRAMES[clip_indices(len(FRAMES), model.frames_per_clip, "episode", 1)]
        clip_reward = model.embed_videos(whole_clip) @ model.goal.numpy()
    assert first.shape == (6,) and second.shape == (3,)
    np.testing.assert_array_equal(first[:-1], 0.0)
    np.testing.assert_array_equal(second[:-1], 0.0)
    assert first[-1] != 0.0 and first[-1] != second[-1]
    np.testing.assert_allclose(first[-1], clip_reward[0], atol=1e-5)  # alpha=0, one prompt: cosine


def test_video_window_mode_scores_each_step_on_its_last_frames(tiny_specs):
    with load(tiny_specs["xclip"], video_mode="window", window_size=3, batch_size=4) as model:
        rewards = model(FRAMES)
        together = model.score_episodes([FRAMES[:4], FRAMES])
        step_four = model.embed_videos(FRAMES[None, clip_indices(6, model.frames_per_clip, "window", 3)[4]])
    assert rewards.shape == (6,) and np.all(rewards != 0.0)
    np.testing.assert_allclose(together[1], rewards, atol=1e-5)  # batching episodes changes nothing
    np.testing.assert_allclose(together[0], rewards[:4], atol=1e-5)  # a step sees only its past
    np.testing.assert_allclose(rewards[4], step_four[0] @ model.goal.numpy(), atol=1e-5)


def test_clip_indices_span_the_episode_or_the_window():
    np.testing.assert_array_equal(clip_indices(10, 4, "episode", 3), [[0, 3, 6, 9]])
    windows = clip_indices(5, 3, "window", 3)
    np.testing.assert_array_equal(windows, [[0, 0, 0], [0, 0, 1], [0, 1, 2], [1, 2, 3], [2, 3, 4]])


def test_judge_reward_is_the_probability_of_yes_or_its_log_odds(tiny_specs):
    with load(tiny_specs["llava"], batch_size=4) as judge:
        assert isinstance(judge, JudgeRewardModel)
        assert judge.questions == ["Does this image show a humanoid robot kneeling?"]
        probabilities = judge(FRAMES)
    with load(tiny_specs["llava"], judge_reward="log_odds", batch_size=6) as judge:
        log_odds = judge(FRAMES)
    assert np.all((probabilities > 0) & (probabilities < 1))
    np.testing.assert_allclose(probabilities, 1 / (1 + np.exp(-log_odds)), atol=1e-5)


def test_judge_batches_agree_with_single_frames(tiny_specs):
    with load(tiny_specs["llava"], batch_size=6) as judge:
        batched = judge(FRAMES)
        single = np.concatenate([judge(frame) for frame in FRAMES])
    np.testing.assert_allclose(batched, single, atol=1e-5)


def test_options_of_another_kind_are_refused_in_one_line(tiny_specs):
    with pytest.raises(ValueError, match="video_mode applies to video models only"):
        load(tiny_specs["clip"], video_mode="window")
    with pytest.raises(ValueError, match="judge_reward applies to judge models only"):
        load(tiny_specs["xclip"], judge_reward="log_odds")
    with pytest.raises(ValueError, match="video reward mode must be one of"):
        load(tiny_specs["xclip"], video_mode="steps")
    with pytest.raises(ValueError, match="takes no baseline_prompts"):
        load(tiny_specs["llava"], baseline_prompts=["a robot"])
