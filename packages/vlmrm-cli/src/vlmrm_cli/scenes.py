"""Env states set by hand and rendered exactly as training renders them, with captions.

A :class:`Scene` knows one env's state variables: how to sample states, how to caption a state
in words (for the in-domain CLIP), which one-variable sweeps make a reward landscape, and which
states count as success (the env's own ``info["is_success"]`` rule, evaluated on a state set by
hand). Frames come from ``env.render()`` of the env made by ``gym.make(env_id)`` at its own size,
so they are the frames a training run scores, whatever renderer the env uses.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import gymnasium as gym
import numpy as np

__all__ = [
    "SCENES",
    "CartPoleScene",
    "HumanoidScene",
    "MountainCarScene",
    "Scene",
    "Sweep",
    "get_scene",
    "render_states",
]


@dataclass(frozen=True)
class Sweep:
    """One state variable swept over ``[low, high]`` with the others at their rest value.

    ``unit`` names the unit of the values written in CSVs and plots (``degrees`` for angles, whose
    state values are radians, converted by ``to_display``)."""

    name: str
    low: float
    high: float
    unit: str
    to_display: float = 1.0

    def values(self, count: int) -> np.ndarray:
        """``count`` evenly spaced values from ``low`` to ``high``, in display units.

        Rounded to 9 decimals, so that a grid point meant to land on a threshold (MountainCar's
        flag at 0.45) is not a rounding error below it."""
        return np.linspace(self.low, self.high, count).round(9)


class Scene:
    """One env's hand-set states; subclasses fill in the variables."""

    env_id: str
    sweeps: tuple[Sweep, ...]

    def sample_states(self, rng: np.random.Generator, count: int) -> np.ndarray:
        """``count`` states (count, state_dim) for training data, in the env's state units."""
        raise NotImplementedError

    def sweep_states(self, sweep: Sweep, count: int) -> tuple[np.ndarray, np.ndarray]:
        """(values in display units (count,), states (count, state_dim)) along ``sweep``."""
        raise NotImplementedError

    def caption(self, state: np.ndarray, rng: np.random.Generator) -> str:
        """A sentence describing ``state``, with a template drawn by ``rng``."""
        raise NotImplementedError

    def is_success(self, env: gym.Env, state: np.ndarray) -> bool:
        """The env's ground-truth success (its ``info["is_success"]``) for a state set by hand."""
        raise NotImplementedError

    def set_state(self, env: gym.Env, state: np.ndarray) -> None:
        base: Any = env.unwrapped  # a classic-control env class, which has its own ``state``
        base.state = np.asarray(state, dtype=np.float64).copy()

    def get_sweep(self, name: str) -> Sweep:
        for sweep in self.sweeps:
            if sweep.name == name:
                return sweep
        names = ", ".join(sweep.name for sweep in self.sweeps)
        raise ValueError(f"{self.env_id} has no sweep {name!r}; choose one of {names}")


# Words for CartPole pole angles (absolute degrees, upper bound exclusive) and cart positions
# (metres). The phrases avoid the exact prompts of configs/cartpole.yaml, so that a reward from
# those prompts is a test of generalisation, not of memorised text.
_POLE_ANGLES: tuple[tuple[float, tuple[str, ...]], ...] = (
    (
        4.0,
        ("pole standing upright", "pole balanced vertically", "pole pointing straight up", "vertical pole"),
    ),
    (12.0, ("pole tilted slightly to the {side}", "pole leaning a little to the {side}")),
    (30.0, ("pole tilted to the {side}", "pole leaning to the {side}")),
    (60.0, ("pole falling over to the {side}", "pole leaning far to the {side}")),
    (91.0, ("pole lying flat to the {side}", "fallen pole lying on the track to the {side}")),
)
_CART_POSITIONS: tuple[tuple[float, str], ...] = (
    (-1.6, "at the left end of the track"),
    (-0.5, "on the left of the track"),
    (0.5, "in the middle of the track"),
    (1.6, "on the right of the track"),
    (math.inf, "at the right end of the track"),
)
_CARTPOLE_TEMPLATES = (
    "{pole} on the cart {position}",
    "a cart {position} with its {pole}",
    "{pole}, cart {position}",
    "the cart is {position} and the {pole}",
    "a {pole} on top of a cart {position}",
    "photo of a {pole} on a cart {position}",
)


class CartPoleScene(Scene):
    """vlmrm/CartPole-v0: state (x, x_dot, theta, theta_dot); theta > 0 leans the pole to +x."""

    env_id = "vlmrm/CartPole-v0"
    sweeps = (
        Sweep("pole_angle", -90.0, 90.0, "degrees", 180.0 / math.pi),
        Sweep("cart_position", -2.4, 2.4, "metres"),
    )

    def sample_states(self, rng: np.random.Generator, count: int) -> np.ndarray:
        # Half the angles near upright, where the reward must be sharp; the rest anywhere the env goes.
        near = rng.random(count) < 0.5
        theta = np.where(
            near, rng.normal(0.0, math.radians(10.0), count), rng.uniform(-1, 1, count) * math.pi / 2
        )
        theta = np.clip(theta, -math.pi / 2, math.pi / 2)
        x = rng.uniform(-2.4, 2.4, count)
        return np.stack([x, np.zeros(count), theta, np.zeros(count)], axis=1)

    def sweep_states(self, sweep: Sweep, count: int) -> tuple[np.ndarray, np.ndarray]:
        values = sweep.values(count)
        states = np.zeros((count, 4))
        states[:, 2 if sweep.name == "pole_angle" else 0] = values / sweep.to_display
        return values, states

    def caption(self, state: np.ndarray, rng: np.random.Generator) -> str:
        x, theta = float(state[0]), float(state[2])
        degrees = abs(math.degrees(theta))
        phrases = next(words for bound, words in _POLE_ANGLES if degrees < bound)
        pole = str(rng.choice(phrases)).format(side="right" if theta > 0 else "left")
        position = next(words for bound, words in _CART_POSITIONS if x < bound)
        return str(rng.choice(_CARTPOLE_TEMPLATES)).format(pole=pole, position=position)

    def is_success(self, env: gym.Env, state: np.ndarray) -> bool:
        base: Any = env.unwrapped  # CartPole's env class, with its own thresholds
        return bool(abs(state[2]) <= base.theta_threshold_radians and abs(state[0]) <= base.x_threshold)


# MountainCar positions (upper bound exclusive) in words; the goal is at 0.45.
_CAR_POSITIONS: tuple[tuple[float, tuple[str, ...]], ...] = (
    (-0.9, ("high up the left slope", "near the top of the left hill")),
    (-0.7, ("on the left slope", "on the left side of the valley")),
    (-0.35, ("at the bottom of the valley", "down in the valley")),
    (0.1, ("low on the right slope", "starting up the right hill")),
    (0.45, ("high on the right slope below the flag", "climbing close to the flag")),
    (math.inf, ("on the summit next to the yellow flag", "at the top of the right hill by the flag")),
)
_MOUNTAIN_TEMPLATES = (
    "a red car {position}",
    "the car is {position}",
    "a small car driving {position}",
    "a mountain road with a car {position}",
)


class MountainCarScene(Scene):
    """vlmrm/MountainCarContinuous-v0: state (position, velocity); the flag is at 0.45."""

    env_id = "vlmrm/MountainCarContinuous-v0"
    sweeps = (Sweep("car_position", -1.2, 0.6, "position"),)

    def sample_states(self, rng: np.random.Generator, count: int) -> np.ndarray:
        position = rng.uniform(-1.2, 0.6, count)
        # A quarter near the flag, where success begins.
        near = rng.random(count) < 0.25
        position = np.where(near, rng.uniform(0.25, 0.6, count), position)
        return np.stack([position, np.zeros(count)], axis=1)

    def sweep_states(self, sweep: Sweep, count: int) -> tuple[np.ndarray, np.ndarray]:
        values = sweep.values(count)
        return values, np.stack([values, np.zeros(count)], axis=1)

    def caption(self, state: np.ndarray, rng: np.random.Generator) -> str:
        position = float(state[0])
        phrases = next(words for bound, words in _CAR_POSITIONS if position < bound)
        return str(rng.choice(_MOUNTAIN_TEMPLATES)).format(position=rng.choice(phrases))

    def is_success(self, env: gym.Env, state: np.ndarray) -> bool:
        base: Any = env.unwrapped  # MountainCar's env class, with its own goal_position
        return bool(state[0] >= base.goal_position)


# Kneeling: thighs upright, shins flat on the floor behind the knees, the body lowered onto them.
_KNEELING_JOINTS_DEGREES = {
    "right_knee": -100.0,
    "left_knee": -100.0,
    "right_hip_y": -5.0,
    "left_hip_y": -5.0,
}


class HumanoidScene(Scene):
    """vlmrm/Humanoid-v0: a pose sweep from standing (``kneel`` 0) to kneeling (``kneel`` 1).

    The knee and hip-flexion angles are interpolated from the standing pose to
    ``_KNEELING_JOINTS_DEGREES``, the body upright, and the body lowered until its lowest point
    touches the floor. Success is a proxy pose test on the MuJoCo state (the paper judged
    kneeling by eye): both knees within 0.15 m of the floor and the torso within 30 degrees of
    upright. No captions: the in-domain CLIP covers CartPole and MountainCar only.
    """

    env_id = "vlmrm/Humanoid-v0"
    sweeps = (Sweep("kneel", 0.0, 1.0, "fraction of the way from standing to kneeling"),)

    def sweep_states(self, sweep: Sweep, count: int) -> tuple[np.ndarray, np.ndarray]:
        values = sweep.values(count)
        return values, values[:, None]

    def set_state(self, env: gym.Env, state: np.ndarray) -> None:
        import mujoco

        base: Any = env.unwrapped
        model, data = base.model, base.data
        qpos = base.init_qpos.copy()
        for name, degrees in _KNEELING_JOINTS_DEGREES.items():
            qpos[model.joint(name).qposadr[0]] = math.radians(degrees) * float(state[0])
        base.set_state(qpos, np.zeros(model.nv))
        # Lower the free root joint until the lowest geom (capsules and spheres) touches the floor.
        bodies = model.geom_bodyid > 0
        axis_z = np.abs(data.geom_xmat[:, 8])
        half_length = np.where(model.geom_type == mujoco.mjtGeom.mjGEOM_CAPSULE, model.geom_size[:, 1], 0.0)
        bottom = data.geom_xpos[:, 2] - axis_z * half_length - model.geom_size[:, 0]
        qpos[2] -= float(bottom[bodies].min())
        base.set_state(qpos, np.zeros(model.nv))

    def is_success(self, env: gym.Env, state: np.ndarray) -> bool:
        base: Any = env.unwrapped
        data = base.data
        knees = [float(data.body(name).xpos[2]) for name in ("right_shin", "left_shin")]
        torso_up = float(data.body("torso").xmat[8])  # cosine of the torso's tilt from vertical
        return max(knees) <= 0.15 and torso_up >= math.cos(math.radians(30))


SCENES: dict[str, Scene] = {
    scene.env_id: scene for scene in (CartPoleScene(), MountainCarScene(), HumanoidScene())
}


def get_scene(env_id: str) -> Scene:
    """The scene of ``env_id``; ValueError naming the supported ids otherwise."""
    try:
        return SCENES[env_id]
    except KeyError:
        raise ValueError(f"no hand-set states for env {env_id!r}; supported: {', '.join(SCENES)}") from None


def render_states(
    scene: Scene, states: Sequence[np.ndarray] | np.ndarray, **env_kwargs: Any
) -> Iterator[tuple[np.ndarray, bool]]:
    """(uint8 frame (H, W, 3) from ``env.render()``, ground-truth success) for every state."""
    import vlmrm_envs  # noqa: F401  (registers the vlmrm/... ids)

    env = gym.make(scene.env_id, **env_kwargs)
    try:
        env.reset(seed=0)
        for state in states:
            scene.set_state(env, state)
            yield np.asarray(env.render()), scene.is_success(env, state)
    finally:
        env.close()
