"""Does a sentence train an agent? The same algorithm trained on a CLIP reward and on the ground truth.

:func:`learning_curve` trains one seeded agent (``"clip"``: the CLIP reward of the rendered frames,
scored at episode end in batches; ``"ground_truth"``: the env's own reward; ``"random"``: uniform
random actions, no training) and measures, every ``eval_every`` steps, the ground-truth return and
success rate of the deterministic policy on separate evaluation episodes. ``bench/learning.py``
puts the three side by side over several seeds.

Ground truth is the env's own, measured as ``vlmrm eval`` measures it
(:func:`vlmrm_cli.evaluation.run_episodes`): the env's reward summed over an episode (CartPole:
steps with the pole upright and the cart on the track) and the success criterion of
:mod:`vlmrm_envs.success` (CartPole balanced throughout, MountainCar reached the flag).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import gymnasium as gym
import numpy as np
import vlmrm_envs  # noqa: F401  (registers the vlmrm/... ids)

from vlmrm_cli.evaluation import Episode, run_episodes

__all__ = ["METHODS", "TASKS", "Curve", "Task", "ground_truth_episodes", "learning_curve"]

METHODS = ("clip", "ground_truth", "random")


@dataclass(frozen=True)
class Task:
    """An env, its CLIP env, the paper's prompts and an algorithm with settings that learn it."""

    env_id: str
    clip_env_id: str
    target_prompts: tuple[str, ...]
    baseline_prompts: tuple[str, ...]
    algorithm: str  # a vlmrm_sb3 / stable_baselines3 class name
    hyperparameters: dict[str, Any] = field(default_factory=dict)


TASKS: dict[str, Task] = {
    "cartpole": Task(
        "vlmrm/CartPole-v0",
        "vlmrm/CartPole-CLIP-v0",
        ("pole vertically upright on top of the cart",),
        ("pole and cart",),
        "DQN",
        # rl-zoo's CartPole DQN with gamma 0.95: with its 0.99, DQN often collapses after learning,
        # whichever the reward.
        {
            "learning_rate": 2.3e-3,
            "batch_size": 64,
            "buffer_size": 100_000,
            "learning_starts": 1000,
            "gamma": 0.95,
            "target_update_interval": 10,
            "train_freq": 256,
            "gradient_steps": 128,
            "exploration_fraction": 0.16,
            "exploration_final_eps": 0.04,
            "policy_kwargs": {"net_arch": [256, 256]},
        },
    ),
    "mountain_car": Task(
        "vlmrm/MountainCarContinuous-v0",
        "vlmrm/MountainCarContinuous-CLIP-v0",
        ("a car at the peak of the mountain, next to the yellow flag",),
        ("a car in the mountain",),
        "SAC",
        # rl-zoo's MountainCarContinuous SAC.
        {
            "learning_rate": 3e-4,
            "buffer_size": 50_000,
            "batch_size": 512,
            "ent_coef": 0.1,
            "train_freq": 32,
            "gradient_steps": 32,
            "gamma": 0.9999,
            "tau": 0.01,
            "learning_starts": 0,
            "use_sde": True,
            "policy_kwargs": {"log_std_init": -3.67, "net_arch": [64, 64]},
        },
    ),
}


@dataclass
class Curve:
    """Ground-truth return and success rate (mean over evaluation episodes) against env steps."""

    method: str
    seed: int
    steps: list[int] = field(default_factory=list)
    returns: list[float] = field(default_factory=list)
    success: list[float] = field(default_factory=list)


def ground_truth_episodes(
    act: Callable[[np.ndarray], Any], env_id: str, episodes: int, seed: int
) -> list[Episode]:
    """``episodes`` episodes of ``act`` in a fresh ``env_id`` (episode ``i`` reset with ``seed + i``),
    judged by the ground truth alone (no frame is rendered)."""
    env = gym.make(env_id, render_mode=None)
    try:
        return run_episodes(act, env, None, episodes=episodes, seed=seed)
    finally:
        env.close()


def learning_curve(
    task: Task,
    method: str,
    *,
    steps: int,
    eval_every: int,
    seed: int,
    eval_episodes: int = 5,
    reward_model: Any = None,
    hyperparameters: dict[str, Any] | None = None,
    log: Callable[[str], None] = lambda line: None,
) -> Curve:
    """Train ``method`` on ``task`` for ``steps`` env steps; evaluate every ``eval_every`` steps.

    ``reward_model`` (for ``"clip"``): a loaded ``vlmrm_reward.RewardModel`` with the task's prompts.
    """
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, got {method!r}")
    curve = Curve(method, seed)

    def evaluate(act: Callable[[np.ndarray], Any], at: int) -> None:
        episodes = ground_truth_episodes(act, task.env_id, eval_episodes, seed=10_000 + seed)
        returns = np.array([episode.ground_truth_return for episode in episodes])
        success = np.array([bool(episode.success) for episode in episodes])
        curve.steps.append(at)
        curve.returns.append(float(returns.mean()))
        curve.success.append(float(success.mean()))
        log(
            f"{task.env_id} {method} seed {seed} step {at}: return {returns.mean():.1f}, success {success.mean():.2f}"
        )

    if method == "random":
        space = gym.make(task.env_id).action_space
        space.seed(seed)
        for at in range(0, steps + 1, eval_every):
            evaluate(lambda _: space.sample(), at)
        return curve

    import stable_baselines3
    import vlmrm_sb3
    from stable_baselines3.common.callbacks import BaseCallback

    settings = {**task.hyperparameters, **(hyperparameters or {})}
    if method == "clip":
        if reward_model is None:
            raise ValueError("method 'clip' needs a reward_model")
        env = gym.make(task.clip_env_id, defer_reward=True)
        algorithm = getattr(vlmrm_sb3, task.algorithm)
        model = algorithm("MlpPolicy", env, reward_model=reward_model, seed=seed, **settings)
    else:
        env = gym.make(task.env_id)
        model = getattr(stable_baselines3, task.algorithm)("MlpPolicy", env, seed=seed, **settings)

    def act(observation: np.ndarray) -> Any:
        return model.predict(observation, deterministic=True)[0]

    class Evaluate(BaseCallback):
        def _on_step(self) -> bool:
            if self.num_timesteps % eval_every == 0:
                evaluate(act, self.num_timesteps)
            return True

    evaluate(act, 0)
    try:
        model.learn(steps, callback=Evaluate())
    finally:
        env.close()
    return curve


def summarise(curves: Sequence[Curve]) -> dict[str, tuple[float, float, float, float]]:
    """Per method: (mean, std over seeds of the final return, mean, std of the final success rate)."""
    summary = {}
    for method in dict.fromkeys(curve.method for curve in curves):
        finals = [curve for curve in curves if curve.method == method]
        returns = np.array([curve.returns[-1] for curve in finals])
        success = np.array([curve.success[-1] for curve in finals])
        summary[method] = (
            float(returns.mean()),
            float(returns.std()),
            float(success.mean()),
            float(success.std()),
        )
    return summary
