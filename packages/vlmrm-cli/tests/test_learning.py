"""Learning curves of bench/learning.py: each method trains and is scored on the ground truth.

Whether the CLIP-reward agent learns is proved by the README's offline try
(test_readme.py::test_offline_try_trains_an_agent_from_the_sentence); here, short runs check the
curves' bookkeeping for every method.
"""

from __future__ import annotations

import pytest
from vlmrm_cli.learning import METHODS, TASKS, learning_curve, summarise
from vlmrm_reward import load_reward_model


def test_every_method_gives_a_curve_scored_on_the_ground_truth(tiny_model_spec: str) -> None:
    task = TASKS["cartpole"]
    settings = {
        "learning_starts": 100,
        "train_freq": 50,
        "gradient_steps": 5,
        "policy_kwargs": {"net_arch": [16]},
    }
    with load_reward_model(
        tiny_model_spec, target_prompts=list(task.target_prompts), device="cpu"
    ) as reward_model:
        curves = [
            learning_curve(task, method, steps=400, eval_every=200, seed=1, eval_episodes=1,
                           reward_model=reward_model, hyperparameters=settings)
            for method in METHODS
        ]  # fmt: skip
    for curve in curves:
        assert curve.steps == [0, 200, 400]
        # Ground-truth returns of 200-step CartPole episodes: steps upright, at least 1 and at most 200.
        assert all(1 <= value <= 200 for value in curve.returns), curve
        assert all(0.0 <= value <= 1.0 for value in curve.success)
    summary = summarise(curves)
    assert set(summary) == set(METHODS)
    assert summary["random"][0] == pytest.approx(curves[2].returns[-1])


def test_clip_method_needs_a_reward_model() -> None:
    with pytest.raises(ValueError, match="reward_model"):
        learning_curve(TASKS["cartpole"], "clip", steps=10, eval_every=10, seed=0)
    with pytest.raises(ValueError, match="method must be one of"):
        learning_curve(TASKS["cartpole"], "expert", steps=10, eval_every=10, seed=0)
