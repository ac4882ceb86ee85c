"""The goal-baseline formula against an independent float64 NumPy computation."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from vlmrm_reward import goal_baseline_projection, goal_baseline_reward, goal_embedding


def _unit(x: np.ndarray) -> np.ndarray:
    return x / np.linalg.norm(x, axis=-1, keepdims=True)


def reference_reward(images, targets, baselines, alpha):
    """Paper eq. 3 written out with an explicit projection matrix, in float64."""
    x = _unit(images)
    g = _unit(targets).mean(axis=0)
    if baselines is None:
        projection = np.eye(len(g))
    else:
        d = g - _unit(baselines).mean(axis=0)
        projection = alpha * np.outer(d, d) / (d @ d) + (1 - alpha) * np.eye(len(g))
    return np.array([1 - np.sum((projection @ (xi - g)) ** 2) / 2 for xi in x])


@pytest.mark.parametrize("alpha", [0.0, 0.25, 0.5, 1.0])
@pytest.mark.parametrize("n_targets, n_baselines", [(1, 1), (3, 2), (2, None)])
def test_reward_matches_reference(alpha, n_targets, n_baselines):
    rng = np.random.default_rng(42)
    images, targets = rng.normal(size=(11, 24)), rng.normal(size=(n_targets, 24))
    baselines = None if n_baselines is None else rng.normal(size=(n_baselines, 24))
    goal = goal_embedding(torch.from_numpy(targets))
    baseline = None if baselines is None else goal_embedding(torch.from_numpy(baselines))
    projection = goal_baseline_projection(goal, baseline, alpha)
    rewards = goal_baseline_reward(torch.from_numpy(_unit(images)), goal, projection)
    np.testing.assert_allclose(
        rewards.numpy(), reference_reward(images, targets, baselines, alpha), atol=1e-12
    )


def test_alpha_zero_with_one_prompt_is_cosine_similarity():
    rng = np.random.default_rng(1)
    images, target = _unit(rng.normal(size=(5, 8))), rng.normal(size=(1, 8))
    goal = goal_embedding(torch.from_numpy(target))
    rewards = goal_baseline_reward(torch.from_numpy(images), goal, goal_baseline_projection(goal, None, 0.0))
    np.testing.assert_allclose(rewards.numpy(), images @ _unit(target)[0], atol=1e-12)


def test_goal_is_mean_of_unit_embeddings_without_renormalising():
    goal = goal_embedding(torch.tensor([[2.0, 0.0], [0.0, 5.0]]))
    torch.testing.assert_close(goal, torch.tensor([0.5, 0.5]))


def test_alpha_one_ignores_directions_orthogonal_to_baseline_to_goal():
    goal, baseline = torch.tensor([1.0, 0.0, 0.0]), torch.tensor([0.0, 0.0, 0.0])
    projection = goal_baseline_projection(goal, baseline, 1.0)
    images = torch.tensor([[1.0, 0.0, 0.0], [0.6, 0.8, 0.0], [0.6, 0.0, 0.8]])
    rewards = goal_baseline_reward(images, goal, projection)
    assert rewards[1] == pytest.approx(rewards[2])  # same component along the goal direction
    assert rewards[0] == pytest.approx(1.0)


@pytest.mark.parametrize("alpha", [-0.1, 1.5])
def test_alpha_outside_unit_interval_is_refused(alpha):
    with pytest.raises(ValueError, match="alpha"):
        goal_baseline_projection(torch.ones(3), torch.zeros(3), alpha)


def test_identical_target_and_baseline_with_alpha_is_refused():
    with pytest.raises(ValueError, match="same point"):
        goal_baseline_projection(torch.ones(3), torch.ones(3), 0.5)
