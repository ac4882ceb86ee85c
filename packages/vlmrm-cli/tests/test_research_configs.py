"""Configs written for the research code run unchanged, and plain Gymnasium ids train.

``data/research_readme_config.yaml`` is the research code's README config, copied verbatim.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner
from conftest import kill_process_group, start_training
from vlmrm_cli.checkpoints import latest_checkpoint
from vlmrm_cli.cli import main

RESEARCH_README_CONFIG = Path(__file__).parent / "data" / "research_readme_config.yaml"


def _show(*args: str) -> tuple[int, dict | None, str]:
    result = CliRunner().invoke(main, ["config", "show", *args])
    config = yaml.safe_load(result.stdout) if result.exit_code == 0 else None
    return result.exit_code, config, result.stderr


def test_research_readme_config_validates_as_the_paper_humanoid_and_says_so() -> None:
    code, config, stderr = _show(str(RESEARCH_README_CONFIG))
    assert code == 0, stderr
    assert config["env_name"] == "vlmrm/Humanoid-v0"
    assert config["rl"]["algorithm"] == "sac" and config["rl"]["episode_length"] == 200
    (notice,) = [line for line in stderr.splitlines() if line.startswith("env_name:")]
    assert "Humanoid-v4" in notice and "vlmrm/Humanoid-v0" in notice
    assert "env_name: gymnasium:Humanoid-v4" in notice  # how to opt out


@pytest.mark.parametrize(
    ("env_name", "expected"),
    [
        ("CartPole-v1", "vlmrm/CartPole-v0"),
        ("MountainCarContinuous-v0", "vlmrm/MountainCarContinuous-v0"),
        ("gymnasium:CartPole-v1", "gymnasium:CartPole-v1"),  # the stock env, no notice
    ],
)
def test_research_env_names_resolve_to_the_paper_envs(
    env_name: str, expected: str, make_config, write_config
) -> None:
    code, config, stderr = _show(str(write_config(make_config(env_name=env_name))))
    assert code == 0, stderr
    assert config["env_name"] == expected
    assert ("research code's name" in stderr) == (expected != env_name)


def test_research_schema_keys_are_moved_where_vlmrm_keeps_them(make_config, write_config) -> None:
    config = make_config(
        env_name="Humanoid-v4",
        rl={"ent_coef": 0.1, "use_sde": False, "rl_kwargs": {"target_entropy": -5.0}},
        reward={"camera_config": {"distance": 4.0}, "textured": False},
        render={"width": 32, "height": 32},
    )
    code, shown, stderr = _show(str(write_config(config)))
    assert code == 0, stderr
    assert shown["rl"]["algorithm_kwargs"] == {"ent_coef": 0.1, "use_sde": False, "target_entropy": -5.0}
    assert shown["env_kwargs"] == {"camera": {"distance": 4.0}, "textured": False}

    clash = make_config(rl={"target_update_interval": 5, "algorithm_kwargs": {"target_update_interval": 9}})
    result = CliRunner().invoke(main, ["config", "show", str(write_config(clash))])
    assert result.exit_code == 2
    assert result.output.count("\n") == 1 and "target_update_interval is given twice" in result.output


@pytest.mark.parametrize("env_name", ["gymnasium:CartPole-v1", "Pendulum-v1"])
def test_plain_gymnasium_ids_train(env_name: str, make_config, write_config, tmp_path: Path) -> None:
    # Gymnasium's own classic-control envs, drawn by pygame at their own size.
    config = make_config(
        env_name=env_name,
        render={"width": None, "height": None},
        rl={"n_steps": 100, "learning_starts": 50, "train_freq": 50},
        logging={"checkpoint_freq": 100, "video_freq": None},
    )
    result = CliRunner().invoke(main, ["train", str(write_config(config)), "--no-progress"])
    assert result.exit_code == 0, result.output
    (run_dir,) = (tmp_path / "runs").iterdir()
    assert latest_checkpoint(run_dir / "checkpoints")[1] == 100


def test_a_missing_render_dependency_is_one_line_before_any_worker(
    make_config, write_config, tmp_path: Path
) -> None:
    # A pygame that cannot be imported, as on an install without gymnasium[classic-control].
    shadow = tmp_path / "no_pygame" / "pygame"
    shadow.mkdir(parents=True)
    (shadow / "__init__.py").write_text("raise ImportError('No module named pygame')\n")
    config = make_config(env_name="gymnasium:CartPole-v1", rl={"n_envs_per_worker": 2})
    environment = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(shadow.parent), os.environ.get("PYTHONPATH", "")]),
    }
    result = subprocess.run(
        [sys.executable, "-m", "vlmrm_cli", "train", str(write_config(config)), "--no-progress"],
        capture_output=True,
        text=True,
        env=environment,
        timeout=300,
    )
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    (error,) = [line for line in result.stderr.splitlines() if line.startswith("Error:")]
    assert "pygame" in error and "env_name" in error
    assert not (tmp_path / "runs").exists()  # nothing started, nothing written


def test_research_readme_config_trains_unchanged_but_for_the_model(
    tiny_model_spec: str, tmp_path: Path
) -> None:
    """The README config as it is (2 envs, 200-step Humanoid episodes at 480x480, a checkpoint and a
    video every 800 steps), with only the model swapped; stopped with Ctrl-C after its first checkpoint."""
    run_dir = tmp_path / "run"
    process = start_training(
        RESEARCH_README_CONFIG,
        "--set",
        f"reward.pretrained_model={tiny_model_spec}",
        "--run-dir",
        str(run_dir),
    )
    try:
        deadline = time.monotonic() + 900
        video = run_dir / "videos" / "step_0000000800.mp4"
        while latest_checkpoint(run_dir / "checkpoints") is None or not video.is_file():
            if process.poll() is not None:
                pytest.fail(f"training ended early with {process.returncode}: {process.communicate()}")
            if time.monotonic() > deadline:
                pytest.fail("no checkpoint and video within 15 minutes")
            time.sleep(0.5)
        os.killpg(process.pid, signal.SIGINT)
        _, stderr = process.communicate(timeout=300)
    finally:
        kill_process_group(process)
    assert process.returncode == 130, stderr
    assert latest_checkpoint(run_dir / "checkpoints")[1] >= 800
    saved = yaml.safe_load((run_dir / "config.yaml").read_text())
    assert saved["env_name"] == "vlmrm/Humanoid-v0" and saved["reward"]["pretrained_model"] == tiny_model_spec
