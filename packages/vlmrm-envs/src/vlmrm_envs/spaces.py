"""The spaces of the vlmrm MuJoCo envs, known without making them (and so without importing
MuJoCo): checking a config needs an env's spaces and episode length, not the env itself."""

from __future__ import annotations

from typing import Any, NamedTuple

import gymnasium as gym
import numpy as np
from gymnasium import spaces

__all__ = ["EnvSpaces", "known_spaces"]


class EnvSpaces(NamedTuple):
    """What an env made with these arguments would have, read without making it."""

    observation_space: gym.Space
    action_space: gym.Space
    max_episode_steps: int | None
    """Steps per episode (its ``TimeLimit``); None: unlimited."""


def _humanoid_spaces() -> tuple[gym.Space, gym.Space]:
    # Humanoid-v5's defaults: 348 float64 observations (positions without the root's x and y,
    # velocities, and the bodies' inertia, velocity, actuator and external forces); 17 motors
    # whose ctrlrange is [-0.4, 0.4].
    observation_space = spaces.Box(-np.inf, np.inf, shape=(348,), dtype=np.float64)
    action_space = spaces.Box(-0.4, 0.4, shape=(17,), dtype=np.float32)
    return observation_space, action_space


# id -> (the env whose registered TimeLimit it has, its spaces). A test checks every entry
# against the made env, and that every vlmrm MuJoCo id has one.
_MUJOCO_ENVS = {
    "vlmrm/Humanoid-v0": "vlmrm/Humanoid-v0",
    "vlmrm/Humanoid-CLIP-v0": "vlmrm/Humanoid-v0",
}
_SPACES = {"vlmrm/Humanoid-v0": _humanoid_spaces}

# Arguments that change neither space: make_clip_env's (the CLIP reward wraps the env without
# touching its spaces), the Humanoid's look and rendering, and Humanoid-v5's reward, reset and
# termination settings. Any other argument (xml_file, the include_*/exclude_* observation
# switches, a new one) may change the spaces: known_spaces then knows nothing.
_SPACE_NEUTRAL_ARGUMENTS = frozenset(
    {
        # make_clip_env
        "prompts",
        "baseline_prompts",
        "alpha",
        "model",
        "reward_model",
        "device",
        "resize_mode",
        "defer_reward",
        "render_device",
        # vlmrm_envs.humanoid.HumanoidEnv and MujocoEnv
        "render_mode",
        "width",
        "height",
        "camera",
        "textured",
        "texture_dir",
        "camera_id",
        "camera_name",
        "default_camera_config",
        "max_geom",
        "visual_options",
        "frame_skip",
        # Humanoid-v5
        "forward_reward_weight",
        "ctrl_cost_weight",
        "contact_cost_weight",
        "contact_cost_range",
        "healthy_reward",
        "terminate_when_unhealthy",
        "healthy_z_range",
        "reset_noise_scale",
    }
)
_EPISODE_LENGTH_ARGUMENTS = ("episode_length", "max_episode_steps")


def known_spaces(env_id: str, **env_kwargs: Any) -> EnvSpaces | None:
    """The spaces and episode length of ``make_clip_env(env_id, **env_kwargs)`` (and of
    ``gym.make(env_id, **env_kwargs)``) for the vlmrm MuJoCo envs, read from a table.

    Imports no MuJoCo and makes no env; it does not check the arguments' values (making the env
    does). ``episode_length`` or ``max_episode_steps`` set the episode length; default: the
    registered one (a CLIP id's is its base env's).

    Returns:
        None for an env the table does not know (not a vlmrm MuJoCo id, e.g. a classic-control
        env, which is cheap to make) and for an argument that may change a space (e.g.
        ``exclude_current_positions_from_observation``): make the env to know its spaces.
    """
    base_id = _MUJOCO_ENVS.get(env_id)
    if base_id is None:
        return None
    if set(env_kwargs) - _SPACE_NEUTRAL_ARGUMENTS - set(_EPISODE_LENGTH_ARGUMENTS):
        return None
    episode_lengths = [
        env_kwargs[name] for name in _EPISODE_LENGTH_ARGUMENTS if env_kwargs.get(name) is not None
    ]
    max_episode_steps = episode_lengths[0] if episode_lengths else gym.spec(base_id).max_episode_steps
    observation_space, action_space = _SPACES[base_id]()
    return EnvSpaces(observation_space, action_space, max_episode_steps)
