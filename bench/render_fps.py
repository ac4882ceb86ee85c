"""Rendering throughput of the vlmrm envs: frames/s and env steps/s with and without rendering.

    MUJOCO_GL=egl python bench/render_fps.py [--size 224] [--steps 200]

Prints, per env: the GL renderer used, frames/s of env.render() alone, env steps/s without
rendering (render_mode=None), and env steps/s with a render after every step (what a CLIP
env does, without the CLIP model). One process, one env; vector envs scale with CPU cores
(physics) and GPUs (EGL rendering).
"""

from __future__ import annotations

import argparse
import time

import gymnasium as gym
import vlmrm_envs

ENV_IDS = ["vlmrm/Humanoid-v0", "vlmrm/CartPole-v0", "vlmrm/MountainCarContinuous-v0"]


def rate(fn, count: int) -> float:
    start = time.perf_counter()
    for _ in range(count):
        fn()
    return count / (time.perf_counter() - start)


def bench(env_id: str, size: int, steps: int) -> dict[str, object]:
    env = gym.make(env_id, width=size, height=size)
    env.reset(seed=0)
    env.action_space.seed(0)
    env.render()  # creates the GL context; not timed
    render_fps = rate(env.render, steps)

    def step_and_render() -> None:
        env.step(env.action_space.sample())
        env.render()

    rendered_sps = rate(step_and_render, steps)
    renderer = getattr(env.unwrapped, "render_info", None) or {"gl_renderer": "numpy (CPU)"}
    env.close()

    headless = gym.make(env_id, render_mode=None)
    headless.reset(seed=0)
    headless.action_space.seed(0)
    plain_sps = rate(lambda: headless.step(headless.action_space.sample()), steps * 5)
    headless.close()
    return {
        "env": env_id,
        "renderer": renderer["gl_renderer"],
        "render fps": render_fps,
        "steps/s (no render)": plain_sps,
        "steps/s (render)": rendered_sps,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--size", type=int, default=224, help="frame width and height in pixels")
    parser.add_argument("--steps", type=int, default=200, help="frames timed per figure")
    args = parser.parse_args()
    gym.register_envs(vlmrm_envs)
    print(f"frame size {args.size}x{args.size}")
    rows = [bench(env_id, args.size, args.steps) for env_id in ENV_IDS]
    header = list(rows[0])
    print(" | ".join(header))
    for row in rows:
        print(
            " | ".join(f"{value:.0f}" if isinstance(value, float) else str(value) for value in row.values())
        )


if __name__ == "__main__":
    main()
