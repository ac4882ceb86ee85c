"""Ground-truth success of the paper's tasks, read from the simulator state (never from frames).

Each criterion has a per-step test on the state and a rule that turns the steps of one episode
into the episode's success:

============================  =======================================  ===============================
env                           a step succeeds when                     an episode succeeds when
============================  =======================================  ===============================
CartPole                      the pole is within 12 degrees of         every step did (balanced
                              upright and the cart within +-2.4        throughout)
                              (Gymnasium's own failure test)
MountainCar (continuous)      the car is at the flag (position         any step did (the flag was
                              >= ``goal_position``, 0.45)              reached)
Humanoid                      the body kneels (:func:`humanoid_kneeling`)  the last step did (it ends
                                                                       kneeling)
============================  =======================================  ===============================

The Humanoid test is a documented pose proxy: the paper's kneeling success rates come from
people labelling frames, not from a state test. The envs of this package report the episode's
success so far in ``info["is_success"]`` after every step, which is the value SB3 reads at the
end of an episode (``rollout/success_rate``); :func:`step_success` gives the per-step label.

>>> import gymnasium as gym, vlmrm_envs
>>> from vlmrm_envs.success import step_success, episode_success
>>> env = gym.make("vlmrm/CartPole-v0", render_mode=None)
>>> _ = env.reset(seed=0)
>>> step_success(env)
True
>>> episode_success([True, True, False], "vlmrm/CartPole-v0")
False
"""

from __future__ import annotations

import math
import sys
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium.envs.classic_control.cartpole import CartPoleEnv as GymnasiumCartPoleEnv
from gymnasium.envs.classic_control.continuous_mountain_car import Continuous_MountainCarEnv
from gymnasium.envs.classic_control.mountain_car import MountainCarEnv as GymnasiumMountainCarEnv

__all__ = [
    "CARTPOLE_ANGLE_LIMIT",
    "CARTPOLE_POSITION_LIMIT",
    "KNEELING",
    "MOUNTAIN_CAR_GOAL",
    "SuccessCriterion",
    "cartpole_balanced",
    "criterion_for",
    "episode_success",
    "humanoid_kneeling",
    "mountain_car_at_flag",
    "step_success",
]

CARTPOLE_ANGLE_LIMIT = 12 * 2 * math.pi / 360
"""Radians: Gymnasium's CartPole fails beyond this pole angle (12 degrees)."""
CARTPOLE_POSITION_LIMIT = 2.4
"""Metres: Gymnasium's CartPole fails beyond this cart position."""
MOUNTAIN_CAR_GOAL = 0.45
"""The flag of MountainCarContinuous (Gymnasium's ``goal_position``)."""

KNEELING: dict[str, float] = {
    "max_knee_height": 0.15,
    "min_hip_above_knee": 0.2,
    "min_torso_uprightness": 0.5,
}
"""Thresholds of :func:`humanoid_kneeling`, in metres and (uprightness) the cosine of the torso's
tilt from vertical: 0.5 is 60 degrees. For scale, standing: knees at 0.52 m, pelvis 0.97 m;
kneeling upright: knees 0.08 m, pelvis 0.50 m; sitting with legs out: knees 0.08 m, pelvis 0.12 m."""


def cartpole_balanced(state: Any) -> bool:
    """Whether CartPole ``state`` (x, x_dot, theta, theta_dot) passes Gymnasium's failure test.

    The pole within 12 degrees of upright and the cart strictly inside +-2.4 m.
    """
    x, _, theta, _ = (float(value) for value in np.asarray(state, dtype=np.float64).reshape(4))
    # Strictly inside the track: vlmrm/CartPole-v0 stops a cart that leaves it at exactly +-2.4.
    return abs(theta) <= CARTPOLE_ANGLE_LIMIT and abs(x) < CARTPOLE_POSITION_LIMIT


def mountain_car_at_flag(state: Any, goal_position: float = MOUNTAIN_CAR_GOAL) -> bool:
    """Whether MountainCar ``state`` (position, velocity) is at or past the flag."""
    return float(np.asarray(state, dtype=np.float64).reshape(-1)[0]) >= goal_position


def humanoid_kneeling(model: Any, data: Any) -> bool:
    """Whether a MuJoCo humanoid (Gymnasium's ``humanoid.xml``) kneels: a pose proxy for human labels.

    The body kneels when all three hold (thresholds in :data:`KNEELING`):

    - a knee is on the ground: the lower knee joint (origin of a ``*_shin`` body) at most
      0.15 m high (the shin's capsule has a 0.05 m radius);
    - the hip is above that knee: the pelvis at least 0.2 m higher than it, so that a body
      sitting with its legs out flat does not count;
    - the torso is upright: its axis within 60 degrees of vertical, so that a body lying on
      the ground, or on all fours, does not count.

    Kneeling on one knee or both, upright or sitting back on the heels, all count. Positions
    are computed from ``data.qpos`` (``mj_kinematics``), so a hand-set ``qpos`` is read right.
    """
    import mujoco

    mujoco.mj_kinematics(model, data)

    def body(name: str) -> int:
        index = mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_BODY, name)
        if index < 0:
            raise ValueError(f"the MuJoCo model has no body {name!r}: not Gymnasium's humanoid")
        return index

    knee_height = min(float(data.xpos[body(name)][2]) for name in ("right_shin", "left_shin"))
    hip_height = float(data.xpos[body("pelvis")][2])
    # Row 2 of the body's rotation matrix, column 2: the world-z component of the torso's own z-axis.
    uprightness = float(data.xmat[body("torso")].reshape(3, 3)[2, 2])
    return (
        knee_height <= KNEELING["max_knee_height"]
        and hip_height - knee_height >= KNEELING["min_hip_above_knee"]
        and uprightness >= KNEELING["min_torso_uprightness"]
    )


@dataclass(frozen=True)
class SuccessCriterion:
    """A task's ground truth: ``step(env.unwrapped) -> bool`` and ``episode(step flags) -> bool``."""

    name: str
    """Short name, e.g. ``"cartpole_balanced"``."""
    description: str
    """One sentence: what a successful episode is."""
    # Any: each criterion reads its own env class's attributes (CartPole's ``state``, ...).
    step: Callable[[Any], bool]
    episode: Callable[[list[bool]], bool]
    proxy: bool = False
    """True when the criterion stands in for human judgement (Humanoid kneeling)."""


def _last(flags: list[bool]) -> bool:
    return bool(flags) and flags[-1]


_CARTPOLE = SuccessCriterion(
    "cartpole_balanced",
    "the pole stayed within 12 degrees of upright and the cart within +-2.4 at every step",
    lambda env: cartpole_balanced(env.unwrapped.state),
    lambda flags: bool(flags) and all(flags),
)
_MOUNTAIN_CAR = SuccessCriterion(
    "mountain_car_reached_flag",
    "the car reached the flag (position >= 0.45) at some step",
    lambda env: mountain_car_at_flag(env.unwrapped.state, env.unwrapped.goal_position),
    lambda flags: any(flags),
)
_KNEELING = SuccessCriterion(
    "humanoid_kneeling",
    "the humanoid kneels at the last step (a knee on the ground, hip above it, torso upright): "
    "a pose proxy for the paper's human labels",
    lambda env: humanoid_kneeling(env.unwrapped.model, env.unwrapped.data),
    _last,
    proxy=True,
)


def _humanoid_classes() -> tuple[type, ...]:
    from gymnasium.envs.mujoco.humanoid_v4 import HumanoidEnv as HumanoidV4
    from gymnasium.envs.mujoco.humanoid_v5 import HumanoidEnv as HumanoidV5

    return HumanoidV4, HumanoidV5


def _criterion_of_class(cls: type) -> SuccessCriterion | None:
    if issubclass(cls, GymnasiumCartPoleEnv):
        return _CARTPOLE
    if issubclass(cls, (Continuous_MountainCarEnv, GymnasiumMountainCarEnv)):
        return _MOUNTAIN_CAR
    # A MuJoCo env class exists only once mujoco is imported; do not import it for other envs.
    if "mujoco" in sys.modules and issubclass(cls, _humanoid_classes()):
        return _KNEELING
    return None


# The CLIP envs are made by functions; their base env decides.
_CLIP_BASES = {
    "vlmrm/Humanoid-CLIP-v0": "vlmrm/Humanoid-v0",
    "vlmrm/CartPole-CLIP-v0": "vlmrm/CartPole-v0",
    "vlmrm/MountainCarContinuous-CLIP-v0": "vlmrm/MountainCarContinuous-v0",
}


def criterion_for(env_or_id: gym.Env | str) -> SuccessCriterion | None:
    """The success criterion of an env (made) or env id, or None for an env without one.

    CartPole, MountainCar (continuous or discrete) and Humanoid (v4, v5 and ``vlmrm/``) have
    one, whatever wrappers or id prefix (``"module:EnvId"``) they come with.
    """
    if isinstance(env_or_id, gym.Env):
        return _criterion_of_class(type(env_or_id.unwrapped))
    from gymnasium.envs.registration import load_env_creator

    from vlmrm_envs.clip_env import env_spec

    spec = env_spec(env_or_id)
    if spec.id in _CLIP_BASES:
        spec = env_spec(_CLIP_BASES[spec.id])
    creator = load_env_creator(spec.entry_point) if isinstance(spec.entry_point, str) else spec.entry_point
    return _criterion_of_class(creator) if isinstance(creator, type) else None


def _required(env_or_id: gym.Env | str) -> SuccessCriterion:
    criterion = criterion_for(env_or_id)
    if criterion is None:
        name = env_or_id if isinstance(env_or_id, str) else type(env_or_id.unwrapped).__name__
        raise ValueError(f"{name} has no ground-truth success criterion (CartPole, MountainCar, Humanoid do)")
    return criterion


def step_success(env: gym.Env) -> bool:
    """Whether the current state of ``env`` (wrappers allowed) is a success; ValueError if it has no criterion."""
    return bool(_required(env).step(env))


def episode_success(step_flags: Iterable[bool], env_id: str | gym.Env) -> bool:
    """Whether an episode whose steps had these :func:`step_success` flags succeeded."""
    return bool(_required(env_id).episode([bool(flag) for flag in step_flags]))
