"""Reading and checking a config is fast: it imports neither torch, MuJoCo, SB3 nor open_clip;
what it needs to know of the algorithms is tabled, and the tables equal what SB3 says."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from vlmrm_cli.algorithms import ALGORITHM_INFO, introspect
from vlmrm_cli.config import ALGORITHM_ARGUMENTS, ALGORITHMS

CONFIGS = Path(__file__).resolve().parents[3] / "configs"
HEAVY = ("torch", "mujoco", "stable_baselines3", "open_clip")

# Runs the CLI's entry point in a fresh interpreter, then prints which heavy modules it imported.
CLI_THEN_MODULES = """
import sys
from vlmrm_cli.cli import main
try:
    main(sys.argv[1:], prog_name="vlmrm")  # exits with the CLI's status
finally:
    print(sorted(set({heavy!r}) & set(sys.modules)), file=sys.stderr)
"""


def _heavy_modules_after(*args: str) -> tuple[str, list[str]]:
    result = subprocess.run(
        [sys.executable, "-c", CLI_THEN_MODULES.format(heavy=HEAVY), *args],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout, result.stderr.strip().splitlines()[-1]


@pytest.mark.parametrize("name", ["cartpole.yaml", "mountain_car.yaml"])
def test_config_show_imports_no_heavy_module(name):
    shown, imported = _heavy_modules_after("config", "show", str(CONFIGS / name))
    assert "algorithm:" in shown and "learning_starts:" in shown  # resolved: the algorithm's defaults
    assert imported == "[]"


@pytest.mark.parametrize("research_name", [False, True])
def test_config_show_of_a_mujoco_env_imports_no_heavy_module(tmp_path, research_name):
    # The vlmrm MuJoCo envs' spaces come from vlmrm_envs.known_spaces: no env is made.
    args = ["config", "show", str(CONFIGS / "humanoid_kneeling.yaml")]
    if research_name:  # the research code's name for the same env
        args += ["--set", "env_name=Humanoid-v4"]
    shown, imported = _heavy_modules_after(*args)
    resolved = yaml.safe_load(shown)
    assert resolved["env_name"] == "vlmrm/Humanoid-v0"
    assert resolved["rl"]["algorithm"] == "sac" and resolved["rl"]["buffer_size"] == 1_000_000
    assert imported == "[]"


def test_config_show_of_a_bad_config_refuses_without_heavy_modules(tmp_path):
    # The refusal of an argument the algorithm does not take comes from the tables.
    code = CLI_THEN_MODULES.format(heavy=HEAVY)
    override = "rl.algorithm_kwargs={exploration_fractoin: 0.1}"
    result = subprocess.run(
        [sys.executable, "-c", code, "config", "show", str(CONFIGS / "cartpole.yaml"), "--set", override],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 2
    assert "DQN takes no such argument; did you mean 'exploration_fraction'?" in result.stderr
    assert result.stderr.strip().splitlines()[-1] == "[]"


def test_load_config_imports_no_heavy_module():
    code = (
        "import sys\n"
        "from vlmrm_cli.config import load_config\n"
        f"for name in ('cartpole.yaml', 'mountain_car.yaml', 'humanoid_kneeling.yaml'):\n"
        f"    load_config({str(CONFIGS)!r} + '/' + name)\n"
        f"print(sorted(set({HEAVY!r}) & set(sys.modules)))\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


@pytest.mark.parametrize("name", sorted(ALGORITHMS))
def test_algorithm_tables_equal_the_installed_classes(name):
    assert ALGORITHM_INFO[name] == introspect(name, ALGORITHM_ARGUMENTS)
