from __future__ import annotations

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
