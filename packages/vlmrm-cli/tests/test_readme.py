"""The README's examples run as written (paths moved to a temp dir) and its config validates."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import yaml
from click.testing import CliRunner
from vlmrm_cli.checkpoints import latest_checkpoint
from vlmrm_cli.cli import main
from vlmrm_cli.config import Config, validate_config
from vlmrm_reward.testing import make_tiny_open_clip

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


def test_offline_try_runs_and_makes_every_artifact(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    monkeypatch.chdir(REPO)
    lines = _block("bash", "A try without any download").replace("\\\n", " ").replace("/tmp/", f"{tmp_path}/")
    make, train = lines.strip().splitlines()
    tiny = make_tiny_open_clip(re.search(r"make_tiny_open_clip\('(.*?)'\)", make).group(1))
    assert tiny == f"local-dir:{tmp_path}/tiny-clip"
    args = shlex.split(train)
    assert args[:2] == ["vlmrm", "train"]
    result = CliRunner().invoke(main, [*args[1:], "--set", "wandb.mode=disabled", "--no-progress"])
    assert result.exit_code == 0, result.output
    (run_dir,) = (tmp_path / "runs").iterdir()
    assert latest_checkpoint(run_dir / "checkpoints")[1] == 400
    assert len(list((run_dir / "videos").glob("*.mp4"))) == 2
    assert (run_dir / "final_model.zip").is_file() and list((run_dir / "tensorboard").iterdir())


def test_every_command_in_the_table_exists() -> None:
    table = README[README.index("## Commands") : README.index("## The config")]
    for command in re.findall(r"`vlmrm ([a-z]+(?: show)?)", table):
        result = CliRunner().invoke(main, [*command.split(), "--help"])
        assert result.exit_code == 0, command
