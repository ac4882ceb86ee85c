"""Draw the pictures in the vlmrm-envs README: the Humanoid's looks side by side, and the frames of
CartPole and MountainCar. Run: MUJOCO_GL=egl python packages/vlmrm-envs/docs/make_pictures.py"""

from __future__ import annotations

from pathlib import Path

import gymnasium as gym
import numpy as np
import vlmrm_envs  # noqa: F401  (sets MUJOCO_GL before MuJoCo is imported)
from PIL import Image, ImageDraw

HERE = Path(__file__).resolve().parent
SIZE = 320


def _humanoid_frame(env: gym.Env, qpos: np.ndarray) -> np.ndarray:
    env.reset(seed=0)
    model_env = env.unwrapped
    model_env.set_state(qpos, np.zeros(model_env.model.nv))
    return env.render()


def _labelled(frames: list[tuple[str, np.ndarray]], height: int) -> Image.Image:
    tiles = []
    for label, frame in frames:
        image = Image.fromarray(frame)
        image = image.resize((round(image.width * height / image.height), height), Image.Resampling.BOX)
        canvas = Image.new("RGB", (image.width, height + 22), "white")
        canvas.paste(image, (0, 22))
        ImageDraw.Draw(canvas).text((6, 5), label, fill="black")
        tiles.append(canvas)
    sheet = Image.new("RGB", (sum(t.width for t in tiles) + 8 * (len(tiles) - 1), tiles[0].height), "white")
    x = 0
    for tile in tiles:
        sheet.paste(tile, (x, 0))
        x += tile.width + 8
    return sheet


def main() -> None:
    # One kneeling-like pose for every look: a few random steps from the seeded start.
    env = gym.make("vlmrm/Humanoid-v0", width=SIZE, height=SIZE)
    env.reset(seed=0)
    env.action_space.seed(0)
    for _ in range(30):
        env.step(env.action_space.sample())
    qpos = env.unwrapped.data.qpos.copy()
    looks = [
        ("Gymnasium Humanoid-v5", gym.make("Humanoid-v5", render_mode="rgb_array", width=SIZE, height=SIZE)),
        ("stock look, paper camera", gym.make("vlmrm/Humanoid-v0", textured=False, width=SIZE, height=SIZE)),
        ("vlmrm/Humanoid-v0", env),
    ]
    _labelled([(label, _humanoid_frame(e, qpos)) for label, e in looks], SIZE).save(
        HERE / "humanoid_looks.png"
    )

    cartpole = gym.make("vlmrm/CartPole-v0")
    cartpole.reset(seed=0)
    cartpole.unwrapped.state = np.array([0.4, 0.0, 0.15, 0.0])
    mountain_car = gym.make("vlmrm/MountainCarContinuous-v0")
    mountain_car.reset(seed=0)
    mountain_car.unwrapped.state = np.array([-0.3, 0.0])
    frames = [
        ("vlmrm/CartPole-v0", cartpole.render()),
        ("vlmrm/MountainCarContinuous-v0", mountain_car.render()),
    ]
    _labelled(frames, 240).save(HERE / "classic_control_frames.png")


if __name__ == "__main__":
    main()
