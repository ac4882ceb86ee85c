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


class MeanColourVideoBackend(MeanColourBackend):
    """Embeds a clip of two frames as its mean RGB colour."""

    frames_per_clip = 2

    def encode_videos(self, pixels):
        return pixels.mean(dim=(1, 3, 4))


class RednessJudge(MeanColourBackend):
    """Answers "yes" with log-odds 4 * (mean red - mean blue), whatever the question."""

    def __init__(self, model):
        super().__init__(model)
        self.questions = []

    def yes_log_odds(self, pixels, question):
        self.questions.append(question)
        return 4.0 * (pixels[:, 0].mean(dim=(1, 2)) - pixels[:, 2].mean(dim=(1, 2)))


def load(model, *, cache_dir=None):
    return MeanColourBackend(model)


@hookimpl
def register_backends(register):
    register("mean_colour", load)
    register("mean_colour_video", lambda model, cache_dir=None: MeanColourVideoBackend(model))
    register("redness_judge", lambda model, cache_dir=None: RednessJudge(model))
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
    # Other installed plugins (vlmrm-transformers, say) may be listed too.
    assert {"mean_colour", "mean_colour_video", "open_clip", "redness_judge"} <= set(
        vlmrm_reward.list_backends()
    )
    model = vlmrm_reward.load_reward_model("any", backend="mean_colour", target_prompts=["red"], device="cpu")
    red = np.zeros((1, 8, 8, 3), np.uint8)
    red[..., 0] = 255
    blue = np.zeros((1, 8, 8, 3), np.uint8)
    blue[..., 2] = 255
    rewards = model(np.concatenate([red, blue]))
    assert rewards[0] == pytest.approx(1.0, abs=1e-6)  # cosine similarity of red to "red"
    assert rewards[1] == pytest.approx(0.0, abs=1e-6)


def test_unknown_backend_lists_the_installed_ones(installed_plugin):
    with pytest.raises(
        ValueError,
        match=r"installed backends: mean_colour, mean_colour_video, open_clip, redness_judge($|, )",
    ):
        vlmrm_reward.load_reward_model("any", backend="clap", target_prompts=["red"])


def _frames(*colours: int) -> np.ndarray:
    """One 8x8 frame per colour channel index (0 red, 2 blue), fully saturated."""
    frames = np.zeros((len(colours), 8, 8, 3), np.uint8)
    for index, channel in enumerate(colours):
        frames[index, ..., channel] = 255
    return frames


def test_a_video_backend_gives_episode_rewards(installed_plugin):
    red, blue = 0, 2
    with vlmrm_reward.load_reward_model(
        "any", backend="mean_colour_video", target_prompts=["red"], device="cpu"
    ) as model:
        assert isinstance(model, vlmrm_reward.VideoRewardModel) and model.mode == "episode"
        # The clip of the whole episode is its first and last frames: half red, half blue.
        first, second = model.score_episodes([_frames(red, red, blue), _frames(red)])
    np.testing.assert_allclose(first, [0.0, 0.0, np.sqrt(0.5)], atol=1e-6)
    np.testing.assert_allclose(second, [1.0], atol=1e-6)


def test_a_video_backend_in_window_mode_scores_each_step_on_its_last_frames(installed_plugin):
    red, blue = 0, 2
    with vlmrm_reward.load_reward_model(
        "any",
        backend="mean_colour_video",
        target_prompts=["red"],
        device="cpu",
        video_mode="window",
        window_size=2,
    ) as model:
        rewards = model(_frames(red, blue, blue, red))
    # Windows: (red, red), (red, blue), (blue, blue), (blue, red).
    np.testing.assert_allclose(rewards, [1.0, np.sqrt(0.5), 0.0, np.sqrt(0.5)], atol=1e-6)


def test_a_judge_backend_gives_the_probability_of_yes_or_its_log_odds(installed_plugin):
    red, blue = 0, 2
    with vlmrm_reward.load_reward_model(
        "any", backend="redness_judge", target_prompts=["a red square"], device="cpu"
    ) as judge:
        assert judge.questions == ["Does this image show a red square?"]
        probabilities = judge(_frames(red, blue))
    with vlmrm_reward.load_reward_model(
        "any", backend="redness_judge", target_prompts=["a red square"], device="cpu", judge_reward="log_odds"
    ) as judge:
        log_odds = judge(_frames(red, blue))
    np.testing.assert_allclose(log_odds, [4.0, -4.0], atol=1e-6)
    np.testing.assert_allclose(probabilities, 1 / (1 + np.exp(-log_odds)), atol=1e-6)


def test_a_video_reward_model_is_refused_by_a_per_step_wrapper(installed_plugin):
    import gymnasium as gym

    with vlmrm_reward.load_reward_model(
        "any", backend="mean_colour_video", target_prompts=["red"], device="cpu"
    ) as model:
        env = gym.make("CartPole-v1", render_mode="rgb_array")
        with pytest.raises(
            ValueError, match="scores whole episodes, not single frames: wrap with defer=True"
        ):
            vlmrm_reward.CLIPReward(env, model)
        assert vlmrm_reward.CLIPReward(env, model, defer=True).defer
        env.close()


def test_the_pytest_plugin_imports_neither_torch_nor_open_clip():
    # pytest loads it into every test run where vlmrm-reward is installed, fixture used or not.
    code = "import sys, vlmrm_reward.pytest_plugin; print(sorted({'torch', 'open_clip'} & set(sys.modules)))"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"
