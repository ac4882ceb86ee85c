"""`vlmrm eval` on a short real CartPole run (tiny CLIP), and periodic evaluation during training."""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import imageio.v2 as imageio
import imageio.v3 as iio
import numpy as np
import pytest
import yaml
from click.testing import CliRunner, Result
from conftest import cartpole_config
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from vlmrm_cli.cli import main
from vlmrm_cli.evaluation import mean_interval, wilson_interval
from vlmrm_reward import load_reward_model

EPISODE_LENGTH = 50


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory: pytest.TempPathFactory, tiny_model_spec: str) -> Path:
    """A 300-step run with checkpoints at 100, 200, 300 and an evaluation of 2 episodes every 100 steps."""
    base = tmp_path_factory.mktemp("eval")
    config = cartpole_config(
        base / "runs",
        tiny_model_spec,
        logging={"video_freq": None, "eval_freq": 100, "eval_episodes": 2},
    )
    path = base / "config.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    result = CliRunner().invoke(main, ["train", str(path), "--no-progress"])
    assert result.exit_code == 0, result.output
    (found,) = (base / "runs").iterdir()
    return found


def _eval(*args: str) -> Result:
    return CliRunner().invoke(main, ["eval", *args, "--no-progress"])


def _read_csv(path: Path) -> list[dict[str, str]]:
    with open(path, newline="", encoding="utf-8") as file:
        return list(csv.DictReader(file))


def test_periodic_evaluation_writes_eval_scalars_to_tensorboard(run_dir: Path) -> None:
    events = EventAccumulator(str(run_dir / "tensorboard"))
    events.Reload()
    tags = events.Tags()["scalars"]
    for tag in ("eval/success_rate", "eval/ground_truth_return", "eval/clip_return", "eval/episode_length"):
        assert [event.step for event in events.Scalars(tag)] == [100, 200, 300], tag
    assert all(event.value in (0.0, 0.5, 1.0) for event in events.Scalars("eval/success_rate"))  # 2 episodes
    assert all(0 <= event.value <= EPISODE_LENGTH for event in events.Scalars("eval/ground_truth_return"))
    assert all(event.value == EPISODE_LENGTH for event in events.Scalars("eval/episode_length"))
    # SB3's own reading of info["is_success"] at each training episode's end.
    assert "rollout/success_rate" in tags


def test_eval_writes_every_file_and_the_summary_agrees_with_the_episodes(
    run_dir: Path, tmp_path: Path, tiny_model_spec: str
) -> None:
    out = tmp_path / "eval"
    result = _eval(str(run_dir), "--episodes", "3", "--save-frames", "--out", str(out), "--seed", "5")
    assert result.exit_code == 0, result.output
    assert "final_model.zip (step 300): success rate" in result.stdout

    summary = json.loads((out / "summary.json").read_text())
    assert summary["success_criterion"]["name"] == "cartpole_balanced"
    assert summary["seeds"] == [5, 6, 7]
    (entry,) = summary["checkpoints"]
    assert entry["checkpoint"] == str(run_dir / "final_model.zip") and entry["steps"] == 300
    rows = _read_csv(out / "episodes.csv")
    assert [int(row["seed"]) for row in rows] == [5, 6, 7]
    assert all(int(row["length"]) == EPISODE_LENGTH for row in rows)
    for name, column in (
        ("success_rate", "success"),
        ("ground_truth_return", "ground_truth_return"),
        ("clip_return", "clip_return"),
    ):
        values = [float(row[column]) for row in rows]
        assert entry[name]["mean"] == pytest.approx(np.mean(values), rel=1e-6)
        assert entry[name]["low"] <= entry[name]["mean"] <= entry[name]["high"]
    for row in rows:
        # CartPole's own reward is 1 per balanced step; the episode succeeds only if every step was.
        assert float(row["ground_truth_return"]) == int(row["success_steps"])
        assert int(row["success"]) == (int(row["success_steps"]) == EPISODE_LENGTH)

    # The video: every step of episode 0, the reward plotted beside the frame.
    reader = imageio.get_reader(out / "videos" / "final_model_episode_000.mp4", format="FFMPEG")
    assert reader.count_frames() == EPISODE_LENGTH
    reader.close()
    grid = iio.imread(out / "grid_final_model.png")
    assert grid.ndim == 3 and grid.shape[0] > 3 * 64 and grid.std() > 10  # 3 rows of frames

    # Every frame lies in the folder of its label, and labels.csv lists them with their rewards.
    labels = _read_csv(out / "frames" / "labels.csv")
    assert len(labels) == 3 * EPISODE_LENGTH
    on_disk = {str(path.relative_to(out / "frames")) for path in (out / "frames").glob("*/*.png")}
    assert on_disk == {row["file"] for row in labels}
    assert all(row["file"].startswith(row["label"] + "/") for row in labels)
    for index, row in enumerate(rows):
        steps = [label for label in labels if int(label["episode"]) == index]
        assert sum(label["label"] == "success" for label in steps) == int(row["success_steps"])
    # The frames are the ones scored: the reward model gives their CLIP return back.
    config = yaml.safe_load((run_dir / "config.yaml").read_text())["reward"]
    model = load_reward_model(
        tiny_model_spec,
        target_prompts=config["target_prompts"],
        baseline_prompts=config["baseline_prompts"],
        alpha=config["alpha"],
        device="cpu",
    )
    try:
        episode = [label for label in labels if label["episode"] == "0"]
        frames = np.stack([iio.imread(out / "frames" / label["file"]) for label in episode])
        rewards = model(frames)
    finally:
        model.close()
    np.testing.assert_allclose(rewards, [float(label["clip_reward"]) for label in episode], rtol=1e-5)
    assert float(rows[0]["clip_return"]) == pytest.approx(float(rewards.sum()), rel=1e-5)


def test_a_checkpoint_is_evaluated_deterministically(run_dir: Path, tmp_path: Path) -> None:
    # The last checkpoint holds the final model's weights: the same seeds give the same episodes.
    first, second = tmp_path / "a", tmp_path / "b"
    result = _eval(str(run_dir), "--episodes", "2", "--videos", "0", "--out", str(first))
    assert result.exit_code == 0, result.output
    checkpoint = run_dir / "checkpoints" / "step_0000000300.zip"
    result = _eval(str(checkpoint), "--episodes", "2", "--videos", "0", "--out", str(second))
    assert result.exit_code == 0, result.output
    columns = ("seed", "success", "success_steps", "ground_truth_return", "clip_return")
    assert [[row[c] for c in columns] for row in _read_csv(first / "episodes.csv")] == [
        [row[c] for c in columns] for row in _read_csv(second / "episodes.csv")
    ]


def test_set_changes_the_config_for_the_evaluation_only(run_dir: Path, tmp_path: Path) -> None:
    before = (run_dir / "config.yaml").read_text()
    out = tmp_path / "short"
    result = _eval(
        str(run_dir), "--episodes", "1", "--videos", "0", "--out", str(out), "--set", "rl.episode_length=7"
    )
    assert result.exit_code == 0, result.output
    assert [row["length"] for row in _read_csv(out / "episodes.csv")] == ["7"]
    assert (run_dir / "config.yaml").read_text() == before


def test_every_checkpoint_is_plotted_and_the_best_named(run_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "all"
    result = _eval(
        str(run_dir), "--checkpoints", "all", "--best", "--episodes", "2", "--videos", "0", "--out", str(out)
    )
    assert result.exit_code == 0, result.output
    summary = json.loads((out / "summary.json").read_text())
    assert [entry["steps"] for entry in summary["checkpoints"]] == [100, 200, 300]
    best = max(summary["checkpoints"], key=lambda entry: entry["clip_return"]["mean"])
    assert summary["best"]["checkpoint"] == best["checkpoint"]
    assert f"Best checkpoint (highest mean CLIP return): {best['checkpoint']}" in result.stdout
    plot = iio.imread(out / "progress.png")
    assert plot.shape[0] > 300 and plot.std() > 10
    assert len(_read_csv(out / "episodes.csv")) == 3 * 2
    assert sorted(path.name for path in out.glob("grid_*.png")) == [
        f"grid_step_{steps:010d}.png" for steps in (100, 200, 300)
    ]


def test_bad_input_exits_2_with_one_line(run_dir: Path, tmp_path: Path) -> None:
    no_checkpoints = tmp_path / "empty-run"
    no_checkpoints.mkdir()
    shutil.copy(run_dir / "config.yaml", no_checkpoints / "config.yaml")
    corrupt = tmp_path / "corrupt-run"
    (corrupt / "checkpoints").mkdir(parents=True)
    shutil.copy(run_dir / "config.yaml", corrupt / "config.yaml")
    (corrupt / "checkpoints" / "step_0000000010.zip").write_bytes(b"not a zip")
    notes = tmp_path / "notes.txt"
    notes.write_text("hello")
    cases = [
        ([str(tmp_path / "missing")], "no such run folder or checkpoint"),
        ([str(tmp_path)], "not a run folder (no config.yaml"),
        ([str(no_checkpoints)], "no checkpoint to evaluate"),
        ([str(notes)], "not a checkpoint"),
        ([str(run_dir / "final_model.zip"), "--checkpoints", "all"], "take a run folder"),
        ([str(corrupt)], "cannot load the model"),
        ([str(run_dir), "--episodes", "0"], "--episodes"),
        ([str(run_dir), "--episodes", "many"], "--episodes"),
        ([str(run_dir), "--seed", "-1"], "--seed"),
        ([str(run_dir), "--checkpoints", "some"], "--checkpoints"),
        ([str(run_dir), "--set", "rl.n_step=5"], "rl.n_step: unknown key"),
        (
            [str(run_dir), "--set", "reward.pretrained_model=local-dir:/no/such/model"],
            "reward.pretrained_model",
        ),
        ([], "RUN_DIR_OR_CHECKPOINT"),
    ]
    for args, message in cases:
        result = _eval(*args, "--out", str(tmp_path / "out"))
        assert result.exit_code == 2, (args, result.output)
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("Error: ") and message in lines[0], (args, lines)
    assert not (tmp_path / "out").exists()  # nothing written


def test_intervals() -> None:
    assert wilson_interval(0, 3).low == 0.0 and wilson_interval(3, 3).high == 1.0
    interval = wilson_interval(5, 10)
    assert (interval.mean, round(interval.low, 4), round(interval.high, 4)) == (0.5, 0.2366, 0.7634)
    assert mean_interval([2.0, 2.0, 2.0]).as_dict() == {"mean": 2.0, "low": 2.0, "high": 2.0}
    spread = mean_interval(np.arange(100.0))
    assert spread.low < 49.5 < spread.high and spread.high - spread.low < 15
