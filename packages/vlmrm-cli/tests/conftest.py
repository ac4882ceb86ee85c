"""Shared fixtures: a small CartPole config (the tiny CLIP, ``tiny_model_spec``, comes from vlmrm-reward's pytest plugin)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml


@pytest.fixture(autouse=True)
def _no_wandb_key(monkeypatch: pytest.MonkeyPatch) -> None:
    # Tests never log online, whatever the machine's environment holds.
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    monkeypatch.setenv("WANDB_SILENT", "true")


@pytest.fixture
def make_config(tmp_path: Path, tiny_model_spec: str) -> Callable[..., dict[str, Any]]:
    """``make_config(rl={"n_steps": 100}, ...)``: the CartPole config below, sections updated."""

    def make(**sections: Any) -> dict[str, Any]:
        return cartpole_config(tmp_path / "runs", tiny_model_spec, **sections)

    return make


def cartpole_config(base_path: Path, model: str, **sections: Any) -> dict[str, Any]:
    """A CartPole DQN run of a few hundred steps at 64x64 (seconds on a CPU)."""
    config: dict[str, Any] = {
        "env_name": "vlmrm/CartPole-v0",
        "base_path": str(base_path),
        "seed": 3,
        "description": "CartPole test run",
        "tags": ["test", "cartpole"],
        "reward": {
            "pretrained_model": model,
            "batch_size": 64,
            "alpha": 0.5,
            "target_prompts": ["pole vertically upright on top of the cart"],
            "baseline_prompts": ["pole and cart"],
        },
        "rl": {
            "n_steps": 300,
            "episode_length": 50,
            "learning_starts": 50,
            "train_freq": 50,
            "gradient_steps": 5,
            "batch_size": 16,
            "buffer_size": 1000,
            "policy_kwargs": {"net_arch": [16, 16]},
        },
        "logging": {"checkpoint_freq": 100, "video_freq": 150, "tensorboard_freq": 100},
        "render": {"width": 64, "height": 64},
        "wandb": {"mode": "disabled"},
    }
    for section, values in sections.items():
        if isinstance(values, dict):
            config[section] = {**config.get(section, {}), **values}
        else:
            config[section] = values
    return config


@pytest.fixture
def write_config(tmp_path: Path) -> Callable[[dict[str, Any]], Path]:
    """``write_config(config)``: the config as a YAML file; returns its path."""

    def write(config: dict[str, Any], name: str = "config.yaml") -> Path:
        path = tmp_path / name
        path.write_text(yaml.safe_dump(config, sort_keys=False))
        return path

    return write


def start_training(config_path: Path, *args: str, **environment: str) -> subprocess.Popen:
    """``vlmrm train CONFIG --no-progress ARGS`` in a subprocess, in a process group of its own (as a
    terminal's foreground job is), with ``environment`` added to its environment variables; it never
    logs online unless given ``WANDB_API_KEY``."""
    env = {**os.environ, "MUJOCO_GL": os.environ.get("MUJOCO_GL", "egl")}
    env.pop("WANDB_API_KEY", None)
    env.update(environment)
    return subprocess.Popen(
        [sys.executable, "-m", "vlmrm_cli", "train", str(config_path), "--no-progress", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        start_new_session=True,
    )


def kill_process_group(process: subprocess.Popen) -> None:
    """SIGKILL the process and everything left in its group (workers may outlive it)."""
    try:
        os.killpg(process.pid, signal.SIGKILL)
    except ProcessLookupError:  # the group is empty
        pass
    process.wait()


# The smallest in-domain CLIP whose CartPole reward still peaks at upright (measured: loss 4.8 -> 1.9,
# reward 0.56 at 0 degrees, 0.22-0.30 at 20 degrees, -0.35 lying flat). 150 optimiser steps at batch 128
# and 4000 rendered frames: 42 s on two idle cores (7-11 min when a dozen busy processes share them).
INDOMAIN_CARTPOLE = {"frames": 4000, "steps": 150, "batch_size": 128, "image_size": 64, "seed": 0}


@pytest.fixture(scope="session")
def indomain_cartpole_spec(tmp_path_factory: pytest.TempPathFactory) -> str:
    """``"local-dir:<folder>"`` of the in-domain CartPole CLIP, trained once per test session."""
    from vlmrm_cli.indomain import InDomainSettings, train_indomain_clip

    folder = tmp_path_factory.mktemp("indomain_cartpole")
    return train_indomain_clip("vlmrm/CartPole-v0", folder, InDomainSettings(**INDOMAIN_CARTPOLE))
