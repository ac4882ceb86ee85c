"""The goal-baseline regularised CLIP reward (Rocamonde et al., 2024, eq. 3).

Everything the reward *is* lives in this file; the rest of the package only moves frames
to devices and turns them into unit embeddings.

    x = unit image embedding                    (N, D)
    g = mean of unit target-prompt embeddings   (D,)   -- not re-normalised
    b = mean of unit baseline-prompt embeddings (D,)
    d = g - b
    P = alpha * d d^T / |d|^2 + (1 - alpha) * I (D, D)
    reward = 1 - |P (x - g)|^2 / 2              (N,)

alpha = 0 gives P = I and reward = 1 - |x - g|^2 / 2, i.e. the cosine similarity to the goal
when there is one target prompt. alpha = 1 keeps only the component of x - g along the
baseline-to-goal direction.
"""

from __future__ import annotations

import torch

__all__ = ["goal_baseline_projection", "goal_baseline_reward", "goal_embedding"]


def goal_embedding(prompt_embeddings: torch.Tensor) -> torch.Tensor:
    """Mean of unit prompt embeddings, shape (P, D) -> (D,). Deliberately not re-normalised."""
    unit = prompt_embeddings / prompt_embeddings.norm(dim=-1, keepdim=True)
    return unit.mean(dim=0)


def goal_baseline_projection(goal: torch.Tensor, baseline: torch.Tensor | None, alpha: float) -> torch.Tensor:
    """The (D, D) matrix P that partially projects onto the baseline-to-goal direction.

    Without a baseline there is no direction, so P = I (the plain CLIP reward).
    """
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"alpha must be in [0, 1], got {alpha}")
    identity = torch.eye(goal.shape[-1], dtype=goal.dtype, device=goal.device)
    if baseline is None or alpha == 0.0:
        return identity
    direction = goal - baseline
    squared_norm = direction.dot(direction)
    if squared_norm <= torch.finfo(direction.dtype).eps:
        raise ValueError(
            "target and baseline prompts embed to the same point, so alpha > 0 has no "
            "direction to project on; use different baseline_prompts or alpha=0"
        )
    return alpha * torch.outer(direction, direction) / squared_norm + (1.0 - alpha) * identity


def goal_baseline_reward(
    image_embeddings: torch.Tensor, goal: torch.Tensor, projection: torch.Tensor
) -> torch.Tensor:
    """reward = 1 - |P (x - g)|^2 / 2 for unit image embeddings x of shape (N, D); returns (N,)."""
    residual = (image_embeddings - goal) @ projection.T
    return 1.0 - 0.5 * residual.pow(2).sum(dim=-1)
