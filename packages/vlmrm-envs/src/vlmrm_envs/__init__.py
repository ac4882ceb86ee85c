"""vlmrm-envs: headless-rendered Gymnasium envs with CLIP rewards, made by id.

>>> import gymnasium as gym
>>> import vlmrm_envs
>>> gym.register_envs(vlmrm_envs)
>>> env = gym.make("vlmrm/Humanoid-CLIP-v0", prompts=["a humanoid robot kneeling"])  # doctest: +SKIP

Importing this package sets ``MUJOCO_GL=egl`` on a machine without a display (unless the user
chose a backend), and changes no other setting, so import it before anything imports MuJoCo;
see :mod:`vlmrm_envs.rendering`.
"""

import importlib.metadata

from vlmrm_envs.rendering import configure_mujoco_gl

# Must run before anything imports mujoco or OpenGL.
configure_mujoco_gl()

import importlib  # noqa: E402
from typing import TYPE_CHECKING, Any  # noqa: E402

import gymnasium as gym  # noqa: E402

from vlmrm_envs.spaces import EnvSpaces, known_spaces  # noqa: E402  (no MuJoCo: a table)

if TYPE_CHECKING:
    from vlmrm_envs.clip_env import DEFAULT_MODEL, env_spec, make_clip_env, make_clip_vector_env

# Imported on first use (PEP 562): registering the ids, e.g. to check a config, imports neither
# torch nor MuJoCo; the envs import what they need when they are made.
_CLIP_ENV_NAMES = ("DEFAULT_MODEL", "env_spec", "make_clip_env", "make_clip_vector_env")


def __getattr__(name: str) -> Any:
    if name in _CLIP_ENV_NAMES:
        value = getattr(importlib.import_module("vlmrm_envs.clip_env"), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'vlmrm_envs' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*globals(), *_CLIP_ENV_NAMES])


# The version lives in pyproject.toml only; installed metadata carries it here.
__version__ = importlib.metadata.version("vlmrm-envs")

__all__ = [
    "DEFAULT_MODEL",
    "EnvSpaces",
    "env_spec",
    "known_spaces",
    "list_envs",
    "make_clip_env",
    "make_clip_vector_env",
]

NAMESPACE = "vlmrm"

# id -> (entry point, max_episode_steps). Episode lengths are the paper's (Humanoid 100,
# CartPole 200); MountainCar keeps Gymnasium's 999.
_ENVS: dict[str, tuple[str, int | None]] = {
    "vlmrm/Humanoid-v0": ("vlmrm_envs.humanoid:HumanoidEnv", 100),
    "vlmrm/CartPole-v0": ("vlmrm_envs.classic_control:CartPoleEnv", 200),
    "vlmrm/MountainCarContinuous-v0": ("vlmrm_envs.classic_control:MountainCarContinuousEnv", 999),
    # The CLIP envs' episode length is their base env's (episode_length= changes it).
    "vlmrm/Humanoid-CLIP-v0": ("vlmrm_envs.clip_env:humanoid_clip_env", None),
    "vlmrm/CartPole-CLIP-v0": ("vlmrm_envs.clip_env:cartpole_clip_env", None),
    "vlmrm/MountainCarContinuous-CLIP-v0": ("vlmrm_envs.clip_env:mountain_car_clip_env", None),
}

# gym.make_vec(<CLIP id>, num_envs=N) renders in N workers and scores in the main process.
_VECTOR_ENTRY_POINTS: dict[str, str] = {
    "vlmrm/Humanoid-CLIP-v0": "vlmrm_envs.clip_env:humanoid_clip_vector_env",
    "vlmrm/CartPole-CLIP-v0": "vlmrm_envs.clip_env:cartpole_clip_vector_env",
    "vlmrm/MountainCarContinuous-CLIP-v0": "vlmrm_envs.clip_env:mountain_car_clip_vector_env",
}

for _env_id, (_entry_point, _max_episode_steps) in _ENVS.items():
    if _env_id not in gym.registry:
        gym.register(
            id=_env_id,
            entry_point=_entry_point,
            max_episode_steps=_max_episode_steps,
            vector_entry_point=_VECTOR_ENTRY_POINTS.get(_env_id),
        )


def list_envs() -> list[str]:
    """The ids registered in the ``vlmrm`` namespace, sorted."""
    return sorted(env_id for env_id, spec in gym.registry.items() if spec.namespace == NAMESPACE)
