"""`vlmrm score` and `vlmrm train` with the transformers plugin's video and judge models (tiny,
random, from folders): the config and options choose the reward kind, nothing else changes."""

from __future__ import annotations

import csv
import io
from pathlib import Path

import imageio.v3 as iio
import numpy as np
import pytest
from click.testing import CliRunner
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from vlmrm_cli.cli import main

pytest.importorskip("vlmrm_transformers", reason="vlmrm-transformers is a test dependency of this session")
from vlmrm_transformers.testing import make_tiny_llava, make_tiny_siglip, make_tiny_xclip


@pytest.fixture(scope="module")
def xclip(tmp_path_factory: pytest.TempPathFactory) -> str:
    return make_tiny_xclip(tmp_path_factory.mktemp("xclip"))


def _score(*args: str) -> list[float]:
    result = CliRunner().invoke(
        main,
        ["score", "--prompt", "a pole", "--backend", "transformers", "--device", "cpu", "--csv", "-", *args],
    )
    assert result.exit_code == 0, result.output
    return [float(row["reward"]) for row in csv.DictReader(io.StringIO(result.stdout))]


@pytest.fixture(scope="module")
def episode(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Six lossless PNG frames would be six files; a video file is one episode: write it as GIF."""
    path = tmp_path_factory.mktemp("episode") / "episode.gif"
    frames = np.random.default_rng(0).integers(0, 256, size=(6, 48, 48, 3), dtype=np.uint8)
    iio.imwrite(path, frames, loop=0)
    return path


def test_score_takes_a_video_as_one_episode(xclip: str, episode: Path) -> None:
    whole = _score("--model", xclip, str(episode))
    assert len(whole) == 6 and whole[:5] == [0.0] * 5 and whole[5] != 0.0
    windows = _score("--model", xclip, "--video-mode", "window", "--window-size", "3", str(episode))
    assert len(windows) == 6 and all(reward != 0.0 for reward in windows)


def test_score_with_a_judge_gives_probabilities(tmp_path: Path, episode: Path) -> None:
    rewards = _score("--model", make_tiny_llava(tmp_path / "llava"), str(episode))
    assert len(rewards) == 6 and all(0.0 < reward < 1.0 for reward in rewards)


def test_an_option_of_another_kind_is_one_line_exit_2(tiny_model_spec: str, episode: Path) -> None:
    result = CliRunner().invoke(
        main, ["score", "--prompt", "a", "--model", tiny_model_spec, "--video-mode", "window", str(episode)]
    )
    assert result.exit_code == 2
    assert "video_mode applies to video models only" in result.output and "Traceback" not in result.output


def test_train_with_a_video_reward_in_window_mode(
    make_config, write_config, xclip: str, tmp_path: Path
) -> None:
    config = make_config(
        reward={"backend": "transformers", "pretrained_model": xclip, "video_mode": "window", "window_size": 4,
                "alpha": 0.0, "baseline_prompts": []},
        rl={"n_steps": 120, "learning_starts": 40, "train_freq": 40},
        logging={"checkpoint_freq": None, "video_freq": 120, "tensorboard_freq": 40},
    )  # fmt: skip
    result = CliRunner().invoke(main, ["train", str(write_config(config)), "--no-progress"])
    assert result.exit_code == 0, result.output
    (run_dir,) = (tmp_path / "runs").iterdir()
    (events,) = run_dir.rglob("events.out.tfevents*")
    accumulator = EventAccumulator(str(events))
    accumulator.Reload()
    returns = [event.value for event in accumulator.Scalars("rollout/clip_ep_rew_mean")]
    frames = [event.value for event in accumulator.Scalars("reward_model/frames")]
    assert returns and all(np.isfinite(returns)) and all(value != 0.0 for value in returns)
    assert sum(frames) > 0
    assert list((run_dir / "videos").glob("step_*.mp4"))  # the evaluation episode, rewarded as one episode


def test_landscape_and_rank_prompts_take_any_backend(tmp_path: Path) -> None:
    siglip = make_tiny_siglip(tmp_path / "siglip")
    options = ["--prompt", "a pole", "--backend", "transformers", "--model", siglip, "--device", "cpu"]
    result = CliRunner().invoke(
        main,
        [
            "landscape",
            "vlmrm/CartPole-v0",
            "--sweep",
            "pole_angle",
            "--points",
            "3",
            "--out",
            str(tmp_path / "l"),
            *options,
        ],
    )
    assert result.exit_code == 0, result.output
    rows = list(csv.DictReader((tmp_path / "l").glob("*.csv").__next__().open()))
    assert len(rows) == 3
    frames = tmp_path / "frames"
    for label, value in (("success", 200), ("failure", 30)):
        (frames / label).mkdir(parents=True)
        iio.imwrite(frames / label / "a.png", np.full((32, 48, 3), value, np.uint8))
    result = CliRunner().invoke(main, ["rank-prompts", str(frames), "--out", str(tmp_path / "r"), *options])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "r" / "ranking.csv").is_file()
