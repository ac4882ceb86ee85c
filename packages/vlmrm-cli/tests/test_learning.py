"""A sentence trains an agent: DQN on the in-domain CLIP reward beats a random policy on the ground truth."""

from __future__ import annotations

from vlmrm_cli.learning import TASKS, learning_curve
from vlmrm_reward import load_reward_model


def test_clip_reward_policy_beats_random_on_ground_truth(indomain_cartpole_spec: str) -> None:
    task = TASKS["cartpole"]
    with load_reward_model(
        indomain_cartpole_spec,
        target_prompts=list(task.target_prompts),
        baseline_prompts=list(task.baseline_prompts),
        alpha=0.0,
        device="cpu",
    ) as reward_model:
        clip = learning_curve(task, "clip", steps=8000, eval_every=8000, seed=0, reward_model=reward_model)
    random = learning_curve(task, "random", steps=0, eval_every=1, seed=0)
    # Episodes of 200 steps: a random policy keeps the pole upright for about 20 of them.
    assert clip.steps == [0, 8000] and random.steps == [0]
    assert clip.returns[-1] >= max(2 * random.returns[0], random.returns[0] + 50), (clip, random)
