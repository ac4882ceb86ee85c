"""`vlmrm score`, `vlmrm envs`, `vlmrm fps`, videos and plots, atomic checkpoint files."""

from __future__ import annotations

import csv
import io
from pathlib import Path

import imageio.v2 as imageio
import imageio.v3 as iio
import numpy as np
import pytest
from click.testing import CliRunner
from vlmrm_cli.checkpoints import atomic_write, latest_checkpoint
from vlmrm_cli.cli import main
from vlmrm_cli.video import read_frames, reward_plot, write_reward_video
from vlmrm_reward import load_reward_model


def _frames(n: int, size: int = 48, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, size=(n, size, size, 3), dtype=np.uint8)


def test_score_images_and_video_table_csv_plot(tiny_model_spec: str, tmp_path: Path) -> None:
    images = _frames(2)
    for index, image in enumerate(images):
        iio.imwrite(tmp_path / f"frame{index}.png", image)
    video = tmp_path / "episode.mp4"
    write_reward_video(video, _frames(5, 64, seed=1), np.linspace(0, 1, 5), fps=10)
    csv_path, plot_path = tmp_path / "rewards.csv", tmp_path / "rewards.png"
    files = [str(tmp_path / "frame0.png"), str(tmp_path / "frame1.png"), str(video)]
    result = CliRunner().invoke(
        main,
        ["score", "--prompt", "a pole", "--baseline", "a cart", "--alpha", "0.5", "--model", tiny_model_spec,
         "--device", "cpu", "--csv", str(csv_path), "--plot", str(plot_path), *files],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    table = result.stdout.strip().splitlines()
    assert table[0].split() == ["file", "frame", "reward"]
    assert len(table) == 1 + 2 + 5

    with open(csv_path, newline="") as stream:
        rows = list(csv.DictReader(stream))
    assert [row["file"] for row in rows] == files[:1] + files[1:2] + files[2:] * 5
    assert [int(row["frame"]) for row in rows] == [0, 0, 0, 1, 2, 3, 4]
    # PNGs are lossless: the rewards are those of the reward model on the same pixels.
    with load_reward_model(
        tiny_model_spec, target_prompts=["a pole"], baseline_prompts=["a cart"], alpha=0.5, device="cpu"
    ) as reward_model:
        expected = reward_model(images)
    np.testing.assert_allclose([float(row["reward"]) for row in rows[:2]], expected, rtol=1e-5)

    plot = iio.imread(plot_path)
    assert plot.shape == (480, 960, 3)


def test_score_csv_to_stdout(tiny_model_spec: str, tmp_path: Path) -> None:
    iio.imwrite(tmp_path / "a.png", _frames(1)[0])
    result = CliRunner().invoke(
        main,
        [
            "score",
            "--prompt",
            "x",
            "--model",
            tiny_model_spec,
            "--device",
            "cpu",
            "--csv",
            "-",
            str(tmp_path / "a.png"),
        ],
    )
    assert result.exit_code == 0, result.output
    rows = list(csv.reader(io.StringIO(result.stdout)))
    assert rows[0] == ["file", "frame", "reward"] and len(rows) == 2


def test_score_bad_input(tiny_model_spec: str, tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("not an image")
    result = CliRunner().invoke(
        main, ["score", "--prompt", "x", "--model", tiny_model_spec, str(tmp_path / "notes.txt")]
    )
    assert result.exit_code == 2 and "not a readable image or video" in result.stderr
    result = CliRunner().invoke(main, ["score", "--prompt", "x", str(tmp_path / "missing.png")])
    assert result.exit_code == 2 and "does not exist" in result.stderr
    result = CliRunner().invoke(
        main,
        ["score", "--prompt", "x", "--model", tiny_model_spec, "--alpha", "2", str(tmp_path / "notes.txt")],
    )
    assert result.exit_code == 2 and "--alpha" in result.stderr
    image = tmp_path / "frame.png"
    imageio.imwrite(image, np.zeros((8, 8, 3), np.uint8))
    missing = f"local-dir:{tmp_path / 'no-model'}"
    for command in (
        ["score", "--prompt", "x", "--model", missing, str(image)],
        ["fps", "--env", "vlmrm/CartPole-v0", "--steps", "2", "--model", missing],
    ):
        result = CliRunner().invoke(main, command)
        assert result.exit_code == 2, result.output
        assert f"--model {missing!r}: cannot load" in result.stderr and "Traceback" not in result.output


def test_read_frames_converts_to_rgb(tmp_path: Path) -> None:
    gray = np.arange(256, dtype=np.uint8).reshape(16, 16)
    iio.imwrite(tmp_path / "gray.png", gray)
    rgba = np.zeros((8, 8, 4), np.uint8)
    rgba[..., 0] = 200
    iio.imwrite(tmp_path / "rgba.png", rgba)
    (frame,) = read_frames(tmp_path / "gray.png")
    assert frame.shape == (16, 16, 3) and (frame[..., 0] == gray).all()
    (frame,) = read_frames(tmp_path / "rgba.png")
    assert frame.shape == (8, 8, 3) and (frame[..., 0] == 200).all()


def test_reward_video_has_one_frame_per_step_and_plot_beside(tmp_path: Path) -> None:
    frames = _frames(12, 64)
    path = write_reward_video(tmp_path / "v.mp4", frames, np.sin(np.arange(12)), fps=12)
    reader = imageio.get_reader(path, format="FFMPEG")
    decoded = np.stack([frame for frame in reader])  # list(reader) trips on its length of inf
    reader.close()
    assert decoded.shape[0] == 12
    assert decoded.shape[1] >= 256 and decoded.shape[2] >= 2 * decoded.shape[1]
    # The env frame (enlarged 4x) is on the left, the plot on a white panel on the right.
    enlarged = frames[3].repeat(4, axis=0).repeat(4, axis=1).astype(int)
    assert np.abs(decoded[3, :256, :256].astype(int) - enlarged).mean() < 40
    assert decoded[3, :, 300:].mean() > 200
    assert not list(tmp_path.glob(".*"))  # the temporary file was renamed


def test_reward_video_rejects_mismatch_and_leaves_no_file(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="one reward per frame"):
        write_reward_video(tmp_path / "v.mp4", _frames(3), np.zeros(2))
    assert list(tmp_path.iterdir()) == []


def test_reward_plot_marks_the_cursor() -> None:
    rewards = np.array([0.1, 0.5, 0.2, 0.9])
    plain = reward_plot(rewards, 320, 200)
    marked = reward_plot(rewards, 320, 200, cursor=1)
    assert plain.shape == marked.shape == (200, 320, 3) and plain.dtype == np.uint8
    red = (marked[..., 0] > 180) & (marked[..., 1] < 80)
    assert red.any() and not ((plain[..., 0] > 180) & (plain[..., 1] < 80)).any()
    assert reward_plot(np.array([0.3]), 120, 80).shape == (80, 120, 3)  # one point, flat range
    with pytest.raises(ValueError, match="too small"):
        reward_plot(rewards, 20, 10)


def test_atomic_write_keeps_the_old_file_when_writing_fails(tmp_path: Path) -> None:
    path = tmp_path / "step_0000000100.zip"
    atomic_write(path, lambda file: file.write(b"good checkpoint"))

    def crash(file) -> None:
        file.write(b"half a checkp")
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError, match="disk full"):
        atomic_write(path, crash)
    assert path.read_bytes() == b"good checkpoint"
    assert [p.name for p in tmp_path.iterdir()] == [path.name]  # no temporary file left
    atomic_write(path, lambda file: file.write(b"newer"))
    assert path.read_bytes() == b"newer"


def test_latest_checkpoint_ignores_partial_and_foreign_files(tmp_path: Path) -> None:
    assert latest_checkpoint(tmp_path) is None
    for name in ("step_0000000100.zip", "step_0000000900.zip", ".step_0000009999.zip.abc.tmp", "notes.zip"):
        (tmp_path / name).write_bytes(b"")
    assert latest_checkpoint(tmp_path) == (tmp_path / "step_0000000900.zip", 900)


def test_envs_lists_vlmrm_ids() -> None:
    result = CliRunner().invoke(main, ["envs"])
    assert result.exit_code == 0, result.output
    for env_id in ("vlmrm/Humanoid-CLIP-v0", "vlmrm/CartPole-CLIP-v0", "vlmrm/MountainCarContinuous-CLIP-v0"):
        assert env_id in result.stdout
    assert "CartPole-v1" in CliRunner().invoke(main, ["envs", "--all"]).stdout


def test_fps_reports_render_and_reward_throughput(tiny_model_spec: str) -> None:
    result = CliRunner().invoke(
        main,
        ["fps", "--env", "vlmrm/CartPole-v0", "--model", tiny_model_spec, "--steps", "20", "--width", "64",
         "--height", "64", "--device", "cpu"],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert "vlmrm/CartPole-v0 at 64x64" in lines[0] and "steps/s" in lines[0]
    assert "on cpu" in lines[1] and "frames/s" in lines[1]
    rates = [float(line.split(":")[-1].split()[0]) for line in lines]
    assert all(rate > 0 for rate in rates)


def test_fps_bad_env() -> None:
    result = CliRunner().invoke(main, ["fps", "--env", "NoSuchEnv-v0", "--steps", "1"])
    assert result.exit_code == 2 and "NoSuchEnv-v0" in result.stderr


def test_fps_with_the_humanoid_default_does_not_crash(tiny_model_spec: str) -> None:
    """MuJoCo's EGL rendering, then the reward model, in one process of its own (a crash there is a
    segmentation fault, which would end the test session itself)."""
    import os
    import subprocess
    import sys

    result = subprocess.run(
        [sys.executable, "-m", "vlmrm_cli", "fps", "--model", tiny_model_spec, "--steps", "3",
         "--width", "32", "--height", "32", "--batch-size", "4", "--device", "cpu"],
        capture_output=True, text=True, timeout=300,
        env={**os.environ, "MUJOCO_GL": os.environ.get("MUJOCO_GL", "egl")},
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "vlmrm/Humanoid-v0 at 32x32" in result.stdout and "frames/s" in result.stdout


@pytest.mark.parametrize("backend", ["osmesa", "glfw"])
def test_a_render_backend_that_cannot_work_here_is_one_line(backend: str, tiny_model_spec: str) -> None:
    import ctypes.util
    import os
    import subprocess
    import sys

    if backend == "osmesa" and ctypes.util.find_library("OSMesa"):
        pytest.skip("libOSMesa is installed here")
    environment = {
        key: value for key, value in os.environ.items() if key not in ("DISPLAY", "WAYLAND_DISPLAY")
    }
    result = subprocess.run(
        [sys.executable, "-m", "vlmrm_cli", "fps", "--model", tiny_model_spec, "--steps", "2"],
        capture_output=True, text=True, timeout=300, env={**environment, "MUJOCO_GL": backend},
    )  # fmt: skip
    assert result.returncode == 2, result.stderr
    lines = [line for line in result.stderr.splitlines() if line.startswith("Error: ")]
    assert len(lines) == 1 and f"MUJOCO_GL={backend} needs" in lines[0], result.stderr
    assert "Traceback" not in result.stderr and len(result.stderr.splitlines()) <= 4, result.stderr
