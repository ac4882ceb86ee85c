"""The ready configs in configs/: valid as written, the paper's settings, and they train.

Cross-package: configs/ + vlmrm-cli + vlmrm-envs + vlmrm-sb3 + vlmrm-reward.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner
from vlmrm_cli.checkpoints import latest_checkpoint
from vlmrm_cli.cli import main

CONFIGS = Path(__file__).resolve().parents[1] / "configs"
NAMES = ["cartpole.yaml", "mountain_car.yaml", "humanoid_kneeling.yaml"]


def _show(path: Path, *overrides: str) -> dict:
    result = CliRunner().invoke(main, ["config", "show", str(path), *(f"--set={o}" for o in overrides)])
    assert result.exit_code == 0, result.output
    return yaml.safe_load(result.stdout)


def test_every_config_is_listed() -> None:
    assert sorted(path.name for path in CONFIGS.glob("*.yaml")) == sorted(NAMES)


@pytest.mark.parametrize("name", NAMES)
def test_config_is_valid_as_written_with_the_paper_frames(name: str) -> None:
    config = _show(CONFIGS / name)
    assert config["env_name"].startswith("vlmrm/")
    assert config["render"] == {"width": None, "height": None}  # the env's own, the paper's size


def test_humanoid_kneeling_uses_the_paper_model_and_says_how_to_run_a_small_one() -> None:
    text = (CONFIGS / "humanoid_kneeling.yaml").read_text()
    assert _show(CONFIGS / "humanoid_kneeling.yaml")["reward"]["pretrained_model"] == (
        "ViT-bigG-14/laion2b_s39b_b160k"
    )
    small = "--set reward.pretrained_model=ViT-B-32/laion2b_s34b_b79k"
    assert small in text and "not expected to kneel" in text
    assert _show(CONFIGS / "humanoid_kneeling.yaml", small.split(" ", 1)[1])["reward"][
        "pretrained_model"
    ] == ("ViT-B-32/laion2b_s34b_b79k")


def test_paper_settings() -> None:
    humanoid = _show(CONFIGS / "humanoid_kneeling.yaml")
    assert humanoid["reward"]["target_prompts"] == ["a humanoid robot kneeling"]
    assert humanoid["reward"]["baseline_prompts"] == ["a humanoid robot"]
    assert humanoid["reward"]["alpha"] == 0.0 and humanoid["reward"]["batch_size"] == 3200
    rl = humanoid["rl"]
    assert (rl["algorithm"], rl["n_steps"], rl["episode_length"], rl["learning_starts"]) == (
        "sac",
        10**7,
        100,
        50_000,
    )
    assert (rl["train_freq"], rl["gradient_steps"], rl["tau"], rl["gamma"], rl["learning_rate"]) == (
        100, 100, 0.005, 0.95, 6e-4,
    )  # fmt: skip
    assert humanoid["logging"]["checkpoint_freq"] == 128_000

    cartpole = _show(CONFIGS / "cartpole.yaml")
    rl = cartpole["rl"]
    assert (rl["algorithm"], rl["n_steps"], rl["episode_length"], rl["learning_starts"]) == (
        "dqn",
        3 * 10**6,
        200,
        75_000,
    )
    assert (rl["train_freq"], rl["gradient_steps"], rl["learning_rate"]) == (200, 200, 2.3e-3)
    assert rl["policy_kwargs"]["net_arch"] == [256, 256]
    assert cartpole["reward"]["target_prompts"] == ["pole vertically upright on top of the cart"]

    mountain_car = _show(CONFIGS / "mountain_car.yaml")
    rl = mountain_car["rl"]
    assert (rl["algorithm"], rl["n_steps"], rl["tau"], rl["gamma"], rl["learning_rate"]) == (
        "sac",
        3 * 10**6,
        0.01,
        0.9999,
        1e-4,
    )
    assert rl["algorithm_kwargs"]["ent_coef"] == 0.1 and rl["policy_kwargs"]["net_arch"] == [64, 64]
    assert mountain_car["reward"]["target_prompts"] == [
        "a car at the peak of the mountain, next to the yellow flag"
    ]


@pytest.mark.parametrize("name", NAMES)
def test_config_trains(
    name: str, tiny_model_spec: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each config runs end to end, made small: a tiny local CLIP, 64x64 frames, one env, 120 steps."""
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    overrides = [
        f"reward.pretrained_model={tiny_model_spec}", f"base_path={tmp_path / 'runs'}", "render.width=64", "render.height=64",
        "rl.n_steps=120", "rl.n_envs_per_worker=1", "rl.n_workers=1", "rl.episode_length=60", "rl.learning_starts=60",
        "rl.train_freq=30", "rl.gradient_steps=2", "rl.batch_size=16", "rl.buffer_size=500", "rl.device=cpu",
        "reward.batch_size=32", "reward.devices=[cpu]", "logging.checkpoint_freq=60", "logging.video_freq=null",
        "wandb.mode=disabled",
    ]  # fmt: skip
    args = ["train", str(CONFIGS / name), "--no-progress", *(f"--set={o}" for o in overrides)]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    (run_dir,) = (tmp_path / "runs").iterdir()
    assert latest_checkpoint(run_dir / "checkpoints")[1] == 120
    assert (run_dir / "final_model.zip").is_file()
