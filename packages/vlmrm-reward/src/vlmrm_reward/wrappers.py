"""Gymnasium wrappers that replace an env's reward with the CLIP reward of its rendered frame.

Where they go relative to episode statistics: a statistics wrapper records the return of the
rewards it sees, so put one *inside* the CLIP wrapper for the ground-truth return and one
*outside* it for the CLIP return::

    env = gym.make("CartPole-v1", render_mode="rgb_array")
    env = RecordEpisodeStatistics(env, stats_key="original_episode")  # ground truth
    env = CLIPReward(env, reward_model)
    env = RecordEpisodeStatistics(env)  # CLIP: info["episode"]["r"]

With stable-baselines3, wrap the outermost layer in ``Monitor`` instead of the second
``RecordEpisodeStatistics`` (SB3 logs ``rollout/ep_rew_mean`` from it); the ground-truth return
then arrives in ``info["original_episode"]`` at the end of each episode.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, SupportsFloat, cast

import gymnasium as gym
import numpy as np
from gymnasium.core import ActType, ObsType
from gymnasium.vector import AutoresetMode, VectorEnv, VectorWrapper

__all__ = ["CLIPReward", "RewardFunction", "VectorCLIPReward"]

RewardFunction = Callable[[np.ndarray], np.ndarray]
"""Anything mapping uint8 frames (N, H, W, 3) to rewards (N,), e.g. a RewardModel."""


def _check_reward_setup(render_mode: str | None, reward_model: RewardFunction | None, defer: bool) -> None:
    if render_mode != "rgb_array":
        raise ValueError(
            f"the CLIP reward needs frames: make the env with render_mode='rgb_array' (it has {render_mode!r})"
        )
    if reward_model is None and not defer:
        raise ValueError("reward_model is None: pass a RewardModel, or defer=True to score frames elsewhere")
    if hasattr(reward_model, "score_episodes") and not defer:
        raise ValueError(
            "this reward model scores whole episodes, not single frames: wrap with defer=True and train "
            "with an episode-end algorithm (vlmrm_sb3), which hands it each finished episode"
        )


class CLIPReward(gym.Wrapper[ObsType, ActType, ObsType, ActType]):
    """Reward = the CLIP reward of the frame rendered right after each step.

    ``info["original_reward"]`` keeps the env's own reward and ``info["frame"]`` carries the
    uint8 frame (H, W, 3) that was scored, so that an algorithm can reuse it without rendering
    again. With ``defer=True`` the wrapper only renders: the reward is 0.0 and the frame is left
    for an episode-end algorithm (``vlmrm_sb3``) to score in a large batch.
    """

    def __init__(
        self,
        env: gym.Env[ObsType, ActType],
        reward_model: RewardFunction | None,
        *,
        defer: bool = False,
    ) -> None:
        _check_reward_setup(env.render_mode, reward_model, defer)
        super().__init__(env)
        self.reward_model = reward_model
        self.defer = defer

    def step(self, action: ActType) -> tuple[ObsType, SupportsFloat, bool, bool, dict[str, Any]]:
        observation, reward, terminated, truncated, info = self.env.step(action)
        # render_mode is "rgb_array" (checked in __init__): the frame is one array.
        frame = cast(np.ndarray, self.env.render())
        info = {**info, "original_reward": reward, "frame": frame}
        clip_reward = 0.0
        if not self.defer and self.reward_model is not None:  # None only with defer (checked in __init__)
            clip_reward = float(self.reward_model(frame)[0])
        return observation, clip_reward, terminated, truncated, info


class VectorCLIPReward(VectorWrapper):
    """The vector-env counterpart of :class:`CLIPReward`: all sub-envs' frames in one batch.

    Under Gymnasium's default next-step autoreset, the step after a sub-env terminates only
    resets it: that step is not a transition, so it is not scored and its reward is 0.0
    (``info["_frame"]`` is False there). The terminal step itself is scored on its own frame.
    ``info["frame"]`` is (num_envs, H, W, 3) uint8 and ``info["original_reward"]`` (num_envs,).
    """

    def __init__(self, env: VectorEnv, reward_model: RewardFunction | None, *, defer: bool = False) -> None:
        _check_reward_setup(env.render_mode, reward_model, defer)
        autoreset_mode = env.metadata.get("autoreset_mode", AutoresetMode.NEXT_STEP)
        if autoreset_mode == AutoresetMode.SAME_STEP:
            raise ValueError(
                "VectorCLIPReward needs autoreset_mode NEXT_STEP or DISABLED: under SAME_STEP the "
                "frame rendered after a terminal step already shows the next episode"
            )
        super().__init__(env)
        self.reward_model = reward_model
        self.defer = defer
        self._next_step_autoreset = autoreset_mode == AutoresetMode.NEXT_STEP
        self._resetting = np.zeros(self.num_envs, dtype=bool)

    def reset(self, *, seed: int | list[int] | None = None, options: dict[str, Any] | None = None):
        self._resetting[:] = False
        # A list of seeds, one per sub-env, is what Gymnasium's vector envs take; VectorEnv.reset's
        # annotation says int | None only.
        return self.env.reset(seed=seed, options=options)  # type: ignore[arg-type]

    def step(self, actions):
        observations, rewards, terminations, truncations, infos = self.env.step(actions)
        # render_mode is "rgb_array" (checked in __init__): one array per sub-env.
        frames = np.stack(cast(tuple[np.ndarray, ...], self.env.render()))
        is_transition = ~self._resetting
        clip_rewards = np.zeros(self.num_envs, dtype=np.float64)
        # reward_model is None only with defer (checked in __init__).
        if not self.defer and self.reward_model is not None and is_transition.any():
            clip_rewards[is_transition] = self.reward_model(frames[is_transition])
        if self._next_step_autoreset:
            self._resetting = np.logical_or(terminations, truncations)
        infos = {
            **infos,
            "frame": frames,
            "_frame": is_transition,
            "original_reward": rewards,
            "_original_reward": is_transition,
        }
        return observations, clip_rewards, terminations, truncations, infos
