"""The in-domain CLIP (`vlmrm clip-indomain`), reward landscapes and prompt ranking, through the CLI."""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path

import imageio.v3 as iio
import numpy as np
import pytest
import yaml
from click.testing import CliRunner
from vlmrm_cli.cli import main
from vlmrm_cli.scenes import get_scene, render_states
from vlmrm_reward import load_reward_model

CONFIGS = Path(__file__).resolve().parents[3] / "configs"
TARGET = "pole vertically upright on top of the cart"
BASELINE = "pole and cart"


def _cartpole_frames(degrees: list[float], x: float = 0.0) -> np.ndarray:
    states = [np.array([x, 0.0, math.radians(angle), 0.0]) for angle in degrees]
    return np.stack([frame for frame, _ in render_states(get_scene("vlmrm/CartPole-v0"), states)])


@pytest.mark.parametrize("alpha", [0.0, 0.5])
def test_indomain_reward_peaks_at_upright(indomain_cartpole_spec: str, alpha: float) -> None:
    frames = _cartpole_frames([0.0, -20.0, 20.0, -90.0, 90.0])
    with load_reward_model(
        indomain_cartpole_spec,
        target_prompts=[TARGET],
        baseline_prompts=[BASELINE],
        alpha=alpha,
        device="cpu",
    ) as reward_model:
        upright, *tilted = reward_model(frames)
    assert upright > max(tilted), (upright, tilted)


def test_indomain_folder_carries_its_normalisation(indomain_cartpole_spec: str) -> None:
    folder = Path(indomain_cartpole_spec.removeprefix("local-dir:"))
    config = json.loads((folder / "open_clip_config.json").read_text())
    preprocess = config["preprocess_cfg"]
    assert preprocess["resize_mode"] == "squash" and preprocess["size"] == 64
    # The training data's statistics, not CLIP's: a light sky and track give a mean far above 0.48.
    assert all(0.5 < mean < 1.0 for mean in preprocess["mean"])
    training = json.loads((folder / "training.json").read_text())
    assert training["loss_last_50"] < training["loss_first"] - 1.0


@pytest.mark.parametrize("env_id", ["vlmrm/CartPole-v0", "vlmrm/MountainCarContinuous-v0"])
def test_captions_never_hold_the_configs_prompts(env_id: str) -> None:
    prompts = []
    for config in CONFIGS.glob("*.yaml"):
        reward = yaml.safe_load(config.read_text())["reward"]
        prompts += reward["target_prompts"] + reward.get("baseline_prompts", [])
    scene = get_scene(env_id)
    rng = np.random.default_rng(0)
    captions = {scene.caption(state, rng) for state in scene.sample_states(rng, 3000)}
    assert len(captions) >= 40  # many sentences, not a label per state
    assert not [caption for caption in captions for prompt in prompts if prompt in caption]


def test_success_of_hand_set_states_follows_the_env() -> None:
    scene = get_scene("vlmrm/CartPole-v0")
    values, states = scene.sweep_states(scene.get_sweep("pole_angle"), 37)
    success = [ok for _, ok in render_states(scene, states)]
    assert success == [abs(value) <= 12 for value in values]
    car = get_scene("vlmrm/MountainCarContinuous-v0")
    values, states = car.sweep_states(car.get_sweep("car_position"), 37)  # steps of 0.05
    assert [ok for _, ok in render_states(car, states)] == [value >= 0.45 for value in values]
    assert 0.45 in values  # the flag itself is a grid point, and a success
    humanoid = get_scene("vlmrm/Humanoid-v0")
    _, states = humanoid.sweep_states(humanoid.get_sweep("kneel"), 3)
    rendered = list(render_states(humanoid, states))
    assert [ok for _, ok in rendered] == [False, False, True]  # standing, half way, kneeling
    assert not np.array_equal(rendered[0][0], rendered[-1][0])


def _one_line_error(result, *words: str) -> None:
    assert result.exit_code == 2, result.output
    lines = result.output.strip().splitlines()
    assert "Traceback" not in result.output
    assert all(word in lines[-1] for word in words), lines


def test_clip_indomain_command_saves_a_loadable_folder(tmp_path: Path) -> None:
    out = tmp_path / "clip"
    result = CliRunner().invoke(
        main,
        ["clip-indomain", "vlmrm/MountainCarContinuous-v0", "--out", str(out), "--frames", "64", "--steps", "2",
         "--batch-size", "32"],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert result.stdout.strip() == f"local-dir:{out}"
    with load_reward_model(f"local-dir:{out}", target_prompts=["a red car"], device="cpu") as reward_model:
        assert reward_model(np.zeros((2, 40, 60, 3), np.uint8)).shape == (2,)
    assert json.loads((out / "training.json").read_text())["steps"] == 2


def test_clip_indomain_stops_after_its_time_budget(tmp_path: Path) -> None:
    out = tmp_path / "clip"
    result = CliRunner().invoke(
        main,
        ["clip-indomain", "vlmrm/CartPole-v0", "--out", str(out), "--frames", "64", "--steps", "1000000",
         "--batch-size", "32", "--seconds", "1"],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert json.loads((out / "training.json").read_text())["steps"] < 1000000
    assert (out / "open_clip_pytorch_model.bin").is_file()


def test_clip_indomain_refuses_bad_input(tmp_path: Path) -> None:
    runner = CliRunner()
    _one_line_error(
        runner.invoke(main, ["clip-indomain", "Pong-v5", "--out", str(tmp_path / "a")]), "Pong-v5"
    )
    kept = tmp_path / "kept"
    kept.mkdir()
    (kept / "notes.txt").write_text("mine")
    result = runner.invoke(main, ["clip-indomain", "vlmrm/CartPole-v0", "--out", str(kept)])
    _one_line_error(result, str(kept), "not an empty folder")
    assert (kept / "notes.txt").read_text() == "mine"
    result = runner.invoke(main, ["clip-indomain", "vlmrm/CartPole-v0", "--out", str(tmp_path / "b"),
                                  "--image-size", "50"])  # fmt: skip
    _one_line_error(result, "image_size")
    assert not (tmp_path / "b").exists()


def test_landscape_writes_csv_and_plot_with_success_marked(
    indomain_cartpole_spec: str, tmp_path: Path
) -> None:
    out = tmp_path / "landscape"
    result = CliRunner().invoke(
        main,
        ["landscape", "vlmrm/CartPole-v0", "--sweep", "pole_angle", "--points", "13", "--model",
         indomain_cartpole_spec, "--prompt", TARGET, "--baseline", BASELINE, "--alpha", "0", "--alpha", "0.5",
         "--device", "cpu", "--out", str(out)],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    with open(out / "landscape_pole_angle.csv", newline="") as stream:
        rows = list(csv.DictReader(stream))
    assert len(rows) == 2 * 13
    assert {row["alpha"] for row in rows} == {"0", "0.5"}
    for row in rows:
        assert row["success"] == str(int(abs(float(row["value"])) <= 12))
    for alpha in ("0", "0.5"):
        rewards = {float(row["value"]): float(row["reward"]) for row in rows if row["alpha"] == alpha}
        # The in-domain reward peaks near upright and is far higher there than for a falling pole.
        assert abs(max(rewards, key=rewards.get)) <= 15, rewards
        assert rewards[0.0] > max(value for angle, value in rewards.items() if abs(angle) >= 45), rewards
    assert iio.imread(out / "landscape_pole_angle.png").shape[-1] in (3, 4)
    assert "peak at 0 degrees" in result.output


def test_landscape_refuses_bad_input(tiny_model_spec: str, tmp_path: Path) -> None:
    runner = CliRunner()
    base = ["--model", tiny_model_spec, "--device", "cpu", "--out", str(tmp_path / "out")]
    _one_line_error(runner.invoke(main, ["landscape", "vlmrm/CartPole-v0", "--sweep", "pole_length", "--prompt",
                                         "x", *base]), "pole_length", "pole_angle")  # fmt: skip
    _one_line_error(runner.invoke(main, ["landscape", "CartPole-v1", "--prompt", "x", *base]), "CartPole-v1")
    _one_line_error(runner.invoke(main, ["landscape", "vlmrm/CartPole-v0", *base]), "--prompt")
    bad = tmp_path / "candidates.yaml"
    bad.write_text("candidates:\n  - target_prompts: [a pole]\n    alpha: 2\n")
    _one_line_error(runner.invoke(main, ["landscape", "vlmrm/CartPole-v0", "--candidates", str(bad), *base]),
                    "candidates[0].alpha")  # fmt: skip
    assert not (tmp_path / "out").exists()


def _write_labelled_frames(folder: Path) -> None:
    for label, angles in (("success", [0.0, -3.0, 4.0, 8.0]), ("failure", [-40.0, 25.0, 60.0, -90.0])):
        (folder / label).mkdir(parents=True)
        for index, frame in enumerate(_cartpole_frames(angles, x=0.5)):
            iio.imwrite(folder / label / f"{index}.png", frame)


def test_rank_prompts_ranks_candidates_by_auc(indomain_cartpole_spec: str, tmp_path: Path) -> None:
    frames = tmp_path / "frames"
    _write_labelled_frames(frames)
    candidates = tmp_path / "candidates.yaml"
    candidates.write_text(
        yaml.safe_dump(
            {"candidates": [
                {"name": "fallen", "target_prompts": ["pole lying flat on the track"], "alpha": 0.0},
                {"name": "paper", "target_prompts": [TARGET], "baseline_prompts": [BASELINE], "alpha": [0.0, 0.5]},
            ]}
        )
    )  # fmt: skip
    result = CliRunner().invoke(
        main,
        ["rank-prompts", str(frames), "--candidates", str(candidates), "--model", indomain_cartpole_spec,
         "--device", "cpu", "--out", str(tmp_path / "out")],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "4 success and 4 failure frames" in result.stdout
    with open(tmp_path / "out" / "ranking.csv", newline="") as stream:
        rows = list(csv.DictReader(stream))
    assert [row["rank"] for row in rows] == ["1", "2", "3"]
    by_name = {row["candidate"]: row for row in rows}
    assert set(by_name) == {"fallen", "paper (alpha 0)", "paper (alpha 0.5)"}
    assert rows[-1]["candidate"] == "fallen" and float(by_name["fallen"]["roc_auc"]) < 0.5
    assert float(by_name["paper (alpha 0)"]["roc_auc"]) > 0.8
    assert (tmp_path / "out" / "ranking.png").stat().st_size > 0


def test_rank_prompts_refuses_bad_input(tiny_model_spec: str, tmp_path: Path) -> None:
    runner = CliRunner()
    frames = tmp_path / "frames"
    (frames / "success").mkdir(parents=True)
    iio.imwrite(frames / "success" / "a.png", np.zeros((32, 32, 3), np.uint8))
    args = ["--prompt", "x", "--model", tiny_model_spec, "--device", "cpu"]
    _one_line_error(runner.invoke(main, ["rank-prompts", str(frames), *args]), "failure", "no frames")
    (frames / "failure").mkdir()
    (frames / "failure" / "b.png").write_text("not an image")
    _one_line_error(runner.invoke(main, ["rank-prompts", str(frames), *args]), "b.png")
    assert not (frames / "ranking.csv").exists()
