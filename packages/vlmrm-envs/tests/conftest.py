from __future__ import annotations

import json
import os
import signal
import subprocess
import sys

import pytest
import vlmrm_envs  # noqa: F401  (registers the envs; sets MUJOCO_GL before mujoco is imported)
from vlmrm_reward import RewardModel, load_reward_model

SIZE = {"width": 64, "height": 64}
BASE_IDS = ["vlmrm/Humanoid-v0", "vlmrm/CartPole-v0", "vlmrm/MountainCarContinuous-v0"]
CLIP_IDS = ["vlmrm/Humanoid-CLIP-v0", "vlmrm/CartPole-CLIP-v0", "vlmrm/MountainCarContinuous-CLIP-v0"]
PROMPTS = ["a humanoid robot kneeling"]


@pytest.fixture(scope="session")
def reward_model(tiny_model_spec: str) -> RewardModel:
    model = load_reward_model(
        tiny_model_spec, target_prompts=PROMPTS, baseline_prompts=["a robot"], device="cpu"
    )
    yield model
    model.close()


def make_kwargs(env_id: str, tiny_model_spec: str) -> dict:
    """Small frames; the CLIP envs load the tiny model on the CPU."""
    if "CLIP" in env_id:
        return {**SIZE, "model": tiny_model_spec, "device": "cpu", "prompts": PROMPTS}
    return dict(SIZE)


def run_bounded(code: str, *args: str, timeout: float = 300.0) -> dict:
    """Run ``code`` in a fresh Python, in a process group of its own; returns its last stdout line,
    a JSON object, with its stderr under ``"stderr"``. A run that outlives ``timeout`` (a hang) is killed with all its workers and
    fails the test, so that a deadlock fails instead of stalling the suite."""
    process = subprocess.Popen(
        [sys.executable, "-c", code, *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        stdout, stderr = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.communicate()
        pytest.fail(f"hung: no result after {timeout:.0f} s")
    assert process.returncode == 0, stderr
    return {**json.loads(stdout.strip().splitlines()[-1]), "stderr": stderr}
