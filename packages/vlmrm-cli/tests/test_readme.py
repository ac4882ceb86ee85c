"""The README's examples run as written (paths moved to a temp dir) and its config validates."""

from __future__ import annotations

import re
import shlex
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import yaml
from click.testing import CliRunner
from vlmrm_cli.checkpoints import latest_checkpoint
from vlmrm_cli.cli import main
from vlmrm_cli.config import Config, validate_config
from vlmrm_cli.learning import TASKS, ground_truth_episodes
from vlmrm_sb3 import DQN

README = (Path(__file__).parents[1] / "README.md").read_text()
REPO = Path(__file__).resolve().parents[3]


def _block(language: str, after: str) -> str:
    return re.search(rf"{re.escape(after)}.*?```{language}\n(.*?)```", README, re.DOTALL).group(1)


def test_config_reference_validates_and_names_every_key() -> None:
    text = _block("yaml", "## The config")
    config = validate_config(yaml.safe_load(text))
    assert config.rl.algorithm == "dqn" and config.reward.alpha == 0.5
    # Every key of the schema appears in the reference, so it cannot fall behind.
    for name, field in Config.model_fields.items():
        assert re.search(rf"^{name}:", text, re.MULTILINE), name
        section = getattr(field.annotation, "model_fields", {})
        for key in section:
            assert re.search(rf"\b{key}:", text), f"{name}.{key}"


def test_offline_try_trains_an_agent_from_the_sentence(
    indomain_cartpole_spec: str, tmp_path: Path, monkeypatch
) -> None:
    """The try, run as written but with the session's in-domain CLIP (the tests' smaller settings)
    in place of the first command's: the agent, trained on the CLIP reward alone, beats a random
    policy on the ground truth by a clear margin."""
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    monkeypatch.chdir(REPO)
    block = _block("bash", "A try without any download").replace("\\\n", " ").replace("/tmp/", f"{tmp_path}/")
    indomain, landscape, train, evaluate = (shlex.split(line) for line in block.strip().splitlines())
    assert indomain[:3] == ["vlmrm", "clip-indomain", "vlmrm/CartPole-v0"]
    shutil.copytree(indomain_cartpole_spec.removeprefix("local-dir:"), indomain[indomain.index("--out") + 1])

    result = CliRunner().invoke(main, landscape[1:])
    assert result.exit_code == 0, result.output
    peaks = re.findall(r"peak at (\S+) degrees", result.output)
    assert len(peaks) == 2 and all(abs(float(peak)) <= 12 for peak in peaks), result.output  # upright
    result = CliRunner().invoke(main, [*train[1:], "--set", "wandb.mode=disabled", "--no-progress"])
    assert result.exit_code == 0, result.output
    run_dir = Path(train[train.index("--run-dir") + 1])
    assert latest_checkpoint(run_dir / "checkpoints")[1] == 10000
    assert len(list((run_dir / "videos").glob("*.mp4"))) == 2  # at 5000 and 10000 steps

    agent = DQN.load(run_dir / "final_model.zip", device="cpu")
    task = TASKS["cartpole"]

    def returns(act: Callable[[np.ndarray], Any]) -> np.ndarray:
        episodes = ground_truth_episodes(act, task.env_id, 5, 0)
        return np.array([episode.ground_truth_return for episode in episodes])

    trained = returns(lambda obs: agent.predict(obs, deterministic=True)[0])
    space = gym.make(task.env_id).action_space
    space.seed(0)
    random = returns(lambda obs: space.sample())
    # Episodes of 200 steps: a random policy keeps the pole upright for about 20 of them.
    assert trained.mean() >= max(2 * random.mean(), random.mean() + 50), (trained, random)

    assert evaluate[:3] == ["vlmrm", "eval", str(run_dir)]
    result = CliRunner().invoke(main, evaluate[1:])
    assert result.exit_code == 0, result.output
    rate = re.search(r"success rate (\S+)", result.output)
    assert rate and 0.0 <= float(rate.group(1)) <= 1.0, result.output
    assert list((run_dir / "eval").rglob("*.mp4")), "vlmrm eval films the balanced pole"


def test_every_command_in_the_table_exists() -> None:
    start = README.index("## Commands")
    table = README[start : README.index("\n## ", start)]
    for command in re.findall(r"`vlmrm ([a-z-]+(?: show)?)", table):
        result = CliRunner().invoke(main, [*command.split(), "--help"])
        assert result.exit_code == 0, command
