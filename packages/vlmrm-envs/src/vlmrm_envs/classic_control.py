"""CartPole and MountainCarContinuous as in the paper: no termination, rendered for CLIP.

Termination is removed so that the CLIP reward alone shapes behaviour: the pole may fall and
swing freely, and the car may reach the flag and is held there. CartPole frames are Gymnasium's
own (pygame, 600x400), as the paper's agents saw them. MountainCar frames are drawn here with
numpy at any size (600x400 by default): a sky, distant ranges, a grassy hill with a road, a red
car and a yellow flag, since the paper found the stock flat-colour render could not be learned
from CLIP rewards, and its own scene images are not public.
"""

from __future__ import annotations

import math
from functools import lru_cache
from typing import Any, overload

import numpy as np
from gymnasium import spaces
from gymnasium.envs.classic_control.cartpole import CartPoleEnv as GymnasiumCartPoleEnv
from gymnasium.envs.classic_control.continuous_mountain_car import Continuous_MountainCarEnv
from PIL import Image

from vlmrm_envs.success import cartpole_balanced, mountain_car_at_flag

__all__ = ["CartPoleEnv", "MountainCarContinuousEnv"]

Color = tuple[float, float, float]


def _check_size(width: int, height: int) -> None:
    for name, value in (("width", width), ("height", height)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 16:
            raise ValueError(f"{name} must be an integer of at least 16 (pixels), got {value!r}")


def _check_render_mode(render_mode: str | None) -> None:
    if render_mode not in (None, "rgb_array"):
        raise ValueError(f"render_mode must be 'rgb_array' or None, got {render_mode!r}")


class _Canvas:
    """A float RGB image with anti-aliased shapes given by signed distances in pixels."""

    def __init__(self, pixels: np.ndarray) -> None:
        self.pixels = pixels
        self.height, self.width = pixels.shape[:2]

    def _region(self, cx: float, cy: float, radius: float) -> tuple[slice, slice, np.ndarray, np.ndarray]:
        # Clamped to the canvas; a shape partly or wholly off it gets a partial or empty region.
        x0 = min(max(math.floor(cx - radius) - 1, 0), self.width)
        x1 = max(min(math.ceil(cx + radius) + 2, self.width), x0)
        y0 = min(max(math.floor(cy - radius) - 1, 0), self.height)
        y1 = max(min(math.ceil(cy + radius) + 2, self.height), y0)
        ys, xs = np.mgrid[y0:y1, x0:x1].astype(np.float32) + 0.5
        return slice(y0, y1), slice(x0, x1), xs - cx, ys - cy

    def _paint(self, rows: slice, cols: slice, distance: np.ndarray, color: Color) -> None:
        coverage = np.clip(0.5 - distance, 0.0, 1.0)[..., None]
        patch = self.pixels[rows, cols]
        patch += coverage * (np.asarray(color, np.float32) - patch)

    def box(
        self,
        cx: float,
        cy: float,
        half_w: float,
        half_h: float,
        angle: float,
        color: Color,
        rounding: float = 0,
    ) -> None:
        """A rectangle centred at (cx, cy), turned by ``angle`` radians counter-clockwise on screen."""
        rows, cols, dx, dy = self._region(cx, cy, math.hypot(half_w, half_h) + rounding)
        cos, sin = math.cos(angle), math.sin(angle)
        # Screen y points down, so a counter-clockwise turn on screen is clockwise in (dx, dy).
        local_x, local_y = cos * dx - sin * dy, sin * dx + cos * dy
        qx, qy = np.abs(local_x) - half_w, np.abs(local_y) - half_h
        outside = np.hypot(np.maximum(qx, 0), np.maximum(qy, 0))
        self._paint(rows, cols, outside + np.minimum(np.maximum(qx, qy), 0) - rounding, color)

    def circle(self, cx: float, cy: float, radius: float, color: Color) -> None:
        rows, cols, dx, dy = self._region(cx, cy, radius)
        self._paint(rows, cols, np.hypot(dx, dy) - radius, color)

    def to_uint8(self) -> np.ndarray:
        return (np.clip(self.pixels, 0.0, 1.0) * 255 + 0.5).astype(np.uint8)


def _sky(height: int, width: int, top: Color, horizon: Color, horizon_row: float) -> np.ndarray:
    t = np.clip(np.arange(height, dtype=np.float32) / max(horizon_row, 1.0), 0, 1)[:, None, None]
    column = (1 - t) * np.asarray(top, np.float32) + t * np.asarray(horizon, np.float32)
    return np.broadcast_to(column, (height, width, 3)).copy()


def _fill_below(pixels: np.ndarray, surface_rows: np.ndarray, color: Color) -> None:
    """Paint every pixel below ``surface_rows`` (one float row per column), anti-aliased."""
    rows = np.arange(pixels.shape[0], dtype=np.float32)[:, None] + 0.5
    coverage = np.clip(rows - surface_rows[None, :] + 0.5, 0.0, 1.0)[..., None]
    pixels += coverage * (np.asarray(color, np.float32) - pixels)


class CartPoleEnv(GymnasiumCartPoleEnv):
    """Gymnasium's CartPole-v1 as the paper trained it: no termination, Gymnasium's own frames.

    Frames are drawn by Gymnasium's CartPole renderer (pygame) at its 600x400, the picture the
    paper's agents saw; ``width`` and ``height`` resize that picture (area averaging), which
    shrinks frames in memory and between processes but draws the same scene. As in the research
    code, the pole swings freely through the track (its angle is wrapped to [-pi, pi]); the cart
    stops at the ends of its track (x = +-2.4, velocity set to 0).
    ``original_reward`` is 1.0 while the pole is within CartPole-v1's limits (12 degrees, cart
    inside the track ends) and 0.0 otherwise; ``info["is_success"]`` says whether it has been so
    at every step of the episode (:mod:`vlmrm_envs.success`), the value SB3 reads at the
    episode's end.
    """

    # An instance attribute as gymnasium.Env declares it (not a ClassVar, which ruff asks for).
    metadata: dict[str, Any] = {"render_modes": ["rgb_array"], "render_fps": 50}  # noqa: RUF012
    balanced_so_far = True
    """Whether the pole has been balanced at every step of this episode."""

    def __init__(
        self, render_mode: str | None = "rgb_array", width: int | None = None, height: int | None = None
    ) -> None:
        _check_render_mode(render_mode)
        super().__init__(render_mode=render_mode)
        self.width, self.height = _frame_size(width, height, self.screen_width, self.screen_height)
        limit = np.finfo(np.float32).max
        high = np.array([self.x_threshold, limit, math.pi, limit], dtype=np.float32)
        self.observation_space = spaces.Box(-high, high, dtype=np.float32)

    def reset(self, *, seed: int | None = None, options: dict | None = None) -> tuple[np.ndarray, dict]:
        self.balanced_so_far = True
        return super().reset(seed=seed, options=options)

    def step(self, action: int | np.ndarray) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        _, _, _, truncated, info = super().step(action)
        # The parent counts steps after its termination to warn; there is no termination here.
        self.steps_beyond_terminated = None
        assert self.state is not None  # the parent's step has set it
        upright = cartpole_balanced(self.state)
        self.balanced_so_far = self.balanced_so_far and upright
        x, x_dot, theta, theta_dot = (float(v) for v in self.state)
        if abs(x) > self.x_threshold:
            x, x_dot = math.copysign(self.x_threshold, x), 0.0
        theta = (theta + math.pi) % (2 * math.pi) - math.pi
        self.state = np.array((x, x_dot, theta, theta_dot), dtype=np.float64)
        observation = np.array(self.state, dtype=np.float32)
        return observation, float(upright), False, truncated, {**info, "is_success": self.balanced_so_far}

    def render(self) -> np.ndarray | None:
        """uint8 (height, width, 3): Gymnasium's CartPole frame, resized when asked."""
        if self.render_mode is None:
            return None
        if self.state is None:  # Gymnasium draws nothing before the first reset
            self.state = np.zeros(4)
        return _resized(super().render(), self.width, self.height)


def _frame_size(
    width: int | None, height: int | None, native_width: int, native_height: int
) -> tuple[int, int]:
    """The frame size to return: the renderer's own unless given (each at least 16 pixels)."""
    width = native_width if width is None else width
    height = native_height if height is None else height
    _check_size(width, height)
    return width, height


def _resized(frame: np.ndarray, width: int, height: int) -> np.ndarray:
    """``frame`` at (height, width), averaging the pixels each output pixel covers."""
    if frame.shape[:2] == (height, width):
        return frame
    return np.asarray(Image.fromarray(frame).resize((width, height), Image.Resampling.BOX))


class MountainCarContinuousEnv(Continuous_MountainCarEnv):
    """Gymnasium's MountainCarContinuous-v0 as the paper trained it, with a realistic render.

    No termination: once the car reaches the flag (position >= 0.45) it is held there for the
    rest of the episode, as in the research code, and ``info["is_success"]`` stays True
    (:mod:`vlmrm_envs.success`).
    The reward is Gymnasium's up to the flag (the action cost, and +100 on the step that reaches
    it); the steps held at the flag pay nothing, so an episode's return is the one Gymnasium's env
    pays for the same actions, where that step ends the episode. Frames are 600x400 (Gymnasium's
    size) unless ``width``/``height`` say otherwise; the scene is drawn at any size directly.
    """

    # An instance attribute as gymnasium.Env declares it (not a ClassVar, which ruff asks for).
    metadata: dict[str, Any] = {"render_modes": ["rgb_array"], "render_fps": 30}  # noqa: RUF012

    def __init__(
        self,
        render_mode: str | None = "rgb_array",
        goal_velocity: float = 0,
        width: int | None = None,
        height: int | None = None,
    ) -> None:
        _check_render_mode(render_mode)
        super().__init__(render_mode=render_mode, goal_velocity=goal_velocity)
        self.width, self.height = _frame_size(width, height, self.screen_width, self.screen_height)
        self.reached_flag = False

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[np.ndarray, dict[str, Any]]:
        self.reached_flag = False
        return super().reset(seed=seed, options=options)

    def step(self, action: np.ndarray) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        observation, reward, _, truncated, info = super().step(action)
        if self.reached_flag:
            # Held at the flag since an earlier step: Gymnasium's episode would have ended there.
            reward = 0.0
        elif mountain_car_at_flag(self.state, self.goal_position):
            # Gymnasium's reward for the step that reaches the flag.
            reward = 100.0 - 0.1 * float(np.asarray(action).reshape(-1)[0]) ** 2
            self.reached_flag = True
        if self.reached_flag:
            self.state = np.array([self.goal_position, 0.0])
            observation = np.array(self.state, dtype=np.float32)
        return observation, float(reward), False, truncated, {**info, "is_success": self.reached_flag}

    def render(self) -> np.ndarray | None:
        """uint8 (height, width, 3): a red car on a road over a green hill, a flag at the goal."""
        if self.render_mode is None:
            return None
        position = self.min_position if self.state is None else float(self.state[0])
        scale, base_row, left = _mountain_layout(self.width, self.height)
        canvas = _Canvas(_mountain_background(self.width, self.height, self.goal_position).copy())
        slope = math.atan(0.45 * 3 * math.cos(3 * position))
        normal = (-math.sin(slope), math.cos(slope))  # world coordinates, y up
        ground_x, ground_y = position, _hill(position)

        def to_screen(along: float, up: float) -> tuple[float, float]:
            wx = ground_x + along * math.cos(slope) + up * normal[0]
            wy = ground_y + along * math.sin(slope) + up * normal[1]
            return left + (wx - self.min_position) * scale, base_row - wy * scale

        body, cabin, dark = (0.78, 0.12, 0.10), (0.72, 0.84, 0.92), (0.12, 0.12, 0.13)
        canvas.box(*to_screen(0.0, 0.055), 0.075 * scale, 0.022 * scale, slope, body, rounding=0.008 * scale)
        canvas.box(*to_screen(-0.01, 0.09), 0.04 * scale, 0.016 * scale, slope, body, rounding=0.006 * scale)
        canvas.box(
            *to_screen(-0.01, 0.09), 0.032 * scale, 0.010 * scale, slope, cabin, rounding=0.004 * scale
        )
        for along in (-0.048, 0.048):
            canvas.circle(*to_screen(along, 0.028), 0.024 * scale, dark)
            canvas.circle(*to_screen(along, 0.028), 0.01 * scale, (0.6, 0.6, 0.6))
        return canvas.to_uint8()


@overload
def _hill(x: float) -> float: ...
@overload
def _hill(x: np.ndarray) -> np.ndarray: ...
def _hill(x: float | np.ndarray) -> float | np.ndarray:
    """Height of the MountainCar track (Gymnasium's): sin(3x) * 0.45 + 0.55."""
    return np.sin(3 * x) * 0.45 + 0.55


def _mountain_layout(width: int, height: int) -> tuple[float, float, float]:
    """Pixels per world unit, the row of height 0 and the column of x = -1.2.

    The scene (the track [-1.2, 0.6], heights 0 to 1.2 with the flag) fits the frame, centred.
    """
    scale = min(width / 1.8, height / 1.25)
    return scale, height / 2 + 0.625 * scale, (width - 1.8 * scale) / 2


@lru_cache(maxsize=8)
def _mountain_background(width: int, height: int, goal_position: float) -> np.ndarray:
    scale, base_row, left = _mountain_layout(width, height)
    world_x = -1.2 + (np.arange(width, dtype=np.float32) + 0.5 - left) / scale
    horizon = base_row - 0.75 * scale
    pixels = _sky(height, width, (0.30, 0.50, 0.80), (0.82, 0.88, 0.94), horizon)
    # Two ranges behind the track: far and hazy blue-grey, then nearer and greener.
    far = 0.82 + 0.16 * np.sin(2.3 * world_x + 0.4) + 0.07 * np.sin(6.1 * world_x + 1.3)
    _fill_below(pixels, base_row - far * scale, (0.58, 0.64, 0.74))
    near = 0.55 + 0.10 * np.sin(3.7 * world_x + 2.0) + 0.05 * np.sin(9.3 * world_x)
    _fill_below(pixels, base_row - near * scale, (0.42, 0.56, 0.44))
    surface = base_row - _hill(world_x) * scale
    _fill_below(pixels, surface, (0.36, 0.30, 0.24))  # road
    _fill_below(pixels, surface + 0.025 * scale, (0.30, 0.52, 0.22))  # grass under the road
    canvas = _Canvas(pixels)
    pole_x, pole_foot = left + (goal_position + 1.2) * scale, base_row - float(_hill(goal_position)) * scale
    pole_h = 0.16 * scale
    canvas.box(pole_x, pole_foot - pole_h / 2, 0.008 * scale, pole_h / 2, 0.0, (0.25, 0.22, 0.2))
    canvas.box(
        pole_x + 0.06 * scale,
        pole_foot - pole_h + 0.035 * scale,
        0.055 * scale,
        0.035 * scale,
        0.0,
        (0.98, 0.82, 0.10),
    )
    pixels.setflags(write=False)
    return pixels
