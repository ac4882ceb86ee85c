from __future__ import annotations

import numpy as np
import pytest
from vlmrm_reward import RewardModel, load_reward_model

TARGETS = ["a humanoid robot kneeling", "a robot on its knees"]
BASELINES = ["a humanoid robot"]


@pytest.fixture(scope="session")
def reward_model(tiny_model_spec: str) -> RewardModel:
    model = load_reward_model(
        tiny_model_spec, target_prompts=TARGETS, baseline_prompts=BASELINES, alpha=0.5, device="cpu"
    )
    yield model
    model.close()


@pytest.fixture
def frames() -> np.ndarray:
    """Smooth random RGB frames (so that resizing has something to do), (9, 48, 64, 3) uint8."""
    rng = np.random.default_rng(0)
    coarse = rng.integers(0, 256, size=(9, 6, 8, 3)).astype(np.uint8)
    return np.repeat(np.repeat(coarse, 8, axis=1), 8, axis=2)
