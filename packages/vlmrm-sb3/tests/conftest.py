"""Envs whose frames tell the reward model exactly which transition they belong to."""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces
from stable_baselines3.common.logger import Logger


class RewardInFrame(gym.Wrapper):
    """Puts the env's own reward in info["frame"] (as a (1,) array), so that `reward_in_frame`
    given as reward model reproduces the env's rewards."""

    def step(self, action: Any):
        observation, reward, terminated, truncated, info = self.env.step(action)
        info = {**info, "frame": np.array([reward], dtype=np.float64), "original_reward": reward}
        return observation, reward, terminated, truncated, info


def reward_in_frame(frames: np.ndarray) -> np.ndarray:
    return frames[:, 0]


class CountingEnv(gym.Env):
    """Observation (env_id, episode, t); episodes of varying length, ending by termination (odd
    episodes) or truncation (even ones). info["frame"] is the new observation, so a reward model
    can check that it was given the frame of the transition whose reward it writes."""

    def __init__(self, env_id: int, lengths: tuple[int, int] = (1, 9), box_actions: bool = True) -> None:
        self.env_id = env_id
        self.lengths = lengths
        self.observation_space = spaces.Box(0.0, 10_000.0, shape=(3,), dtype=np.float32)
        self.action_space = spaces.Box(-1.0, 1.0, shape=(1,)) if box_actions else spaces.Discrete(2)
        self._rng = np.random.default_rng(env_id)
        self._episode = -1

    def _obs(self) -> np.ndarray:
        return np.array([self.env_id, self._episode, self._t], dtype=np.float32)

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        self._episode += 1
        self._t = 0
        self._length = int(self._rng.integers(self.lengths[0], self.lengths[1] + 1))
        return self._obs(), {}

    def step(self, action: Any):
        self._t += 1
        done = self._t >= self._length
        observation = self._obs()
        terminated, truncated = (done, False) if self._episode % 2 else (False, done)
        info = {"frame": observation.copy(), "original_reward": -1.0}
        return observation, 0.0, terminated, truncated, info


def counting_reward(frames: np.ndarray) -> np.ndarray:
    """Injective in (env_id, episode, t)."""
    return frames[:, 0] * 1_000_000 + frames[:, 1] * 100 + frames[:, 2]


class RecordingRewardModel:
    """`counting_reward`, remembering the size of every call."""

    def __init__(self) -> None:
        self.call_sizes: list[int] = []

    def __call__(self, frames: np.ndarray) -> np.ndarray:
        self.call_sizes.append(len(frames))
        return counting_reward(frames)


class LatestRecords(Logger):
    """SB3's logger, writing nowhere, that keeps the latest value recorded under each key, whether
    dumped or not: e.g. ``train/n_updates``, the gradient steps SB3 has taken."""

    def __init__(self) -> None:
        super().__init__(folder=None, output_formats=[])
        self.latest: dict[str, Any] = {}

    def record(self, key: str, value: Any, exclude: str | tuple[str, ...] | None = None) -> None:
        self.latest[key] = value
        super().record(key, value, exclude)


def record_logs(model: Any) -> LatestRecords:
    """Give ``model`` (any SB3 algorithm) a :class:`LatestRecords` logger; returns it."""
    logger = LatestRecords()
    model.set_logger(logger)
    return logger
