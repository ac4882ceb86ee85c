"""Training env-steps/s: scoring each frame as it is rendered vs scoring whole episodes at once.

Side by side in one run, with the same env, reward model and SAC settings:

- per-step: stock ``stable_baselines3.SAC`` on envs wrapped in ``vlmrm_reward.CLIPReward``, which
  scores one frame per env per step (what plain Gymnasium + SB3 gives you);
- episode-end: ``vlmrm_sb3.SAC`` on envs wrapped in ``CLIPReward(..., defer=True)``, which scores
  the frames of every episode that ends, together, in calls of ``--reward-batch-size`` frames.

The env is Pendulum with a cheap synthetic frame (a rod drawn with numpy), so that the reward
model, not rendering, is what differs. Rounds alternate between the two to share any drift in
machine load; the best round of each is reported.

    python bench/episode_end_batching.py                                           # CPU, tiny model
    python bench/episode_end_batching.py --model ViT-B-32/random --device cuda --frame-size 224
"""

from __future__ import annotations

import argparse
import tempfile
import time

import gymnasium as gym
import numpy as np
import stable_baselines3 as sb3
import torch
import vlmrm_sb3
from stable_baselines3.common.vec_env import DummyVecEnv
from vlmrm_reward import CLIPReward, load_reward_model
from vlmrm_reward.testing import make_tiny_open_clip


class SyntheticFrame(gym.Wrapper):
    """Pendulum whose render() is a (size, size, 3) uint8 frame of the rod, drawn with numpy."""

    def __init__(self, env: gym.Env, size: int) -> None:
        super().__init__(env)
        self.size = size
        coordinates = (np.arange(size) - size / 2) / (size / 2)
        self._x, self._y = np.meshgrid(coordinates, -coordinates)

    def render(self) -> np.ndarray:
        theta = self.env.unwrapped.state[0]
        tip_x, tip_y = 0.8 * np.sin(theta), 0.8 * np.cos(theta)
        # Distance of each pixel to the segment from the pivot to the tip.
        along = np.clip((self._x * tip_x + self._y * tip_y) / 0.64, 0.0, 1.0)
        distance = np.hypot(self._x - along * tip_x, self._y - along * tip_y)
        frame = np.full((self.size, self.size, 3), 255, dtype=np.uint8)
        frame[distance < 0.08] = (200, 60, 60)
        return frame


def make_env(reward_model, size: int, episode_length: int, defer: bool) -> gym.Env:
    env = gym.make("Pendulum-v1", render_mode="rgb_array", max_episode_steps=episode_length)
    return CLIPReward(SyntheticFrame(env, size), reward_model, defer=defer)


def steps_per_second(model, steps: int, device: torch.device) -> float:
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    began = time.perf_counter()
    model.learn(steps, reset_num_timesteps=False)
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return steps / (time.perf_counter() - began)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=None, help="reward model spec; default: a tiny random open_clip")
    parser.add_argument("--device", default="cpu", help="device of the reward model and of SAC")
    parser.add_argument("--n-envs", type=int, default=16)
    parser.add_argument("--episode-length", type=int, default=100)
    parser.add_argument("--frame-size", type=int, default=64)
    parser.add_argument("--steps", type=int, default=1600, help="env steps measured per round and side")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--reward-batch-size", type=int, default=None)
    parser.add_argument("--gradient-steps", type=int, default=1, help="SAC updates per vector step")
    parser.add_argument("--batch-size", type=int, default=64, help="SAC minibatch")
    parser.add_argument("--net-arch", type=int, nargs="+", default=[64, 64], help="SAC hidden layers")
    args = parser.parse_args()

    device = torch.device(args.device)
    spec = args.model or make_tiny_open_clip(tempfile.mkdtemp(prefix="tiny-clip-"))
    reward_model = load_reward_model(
        spec,
        target_prompts=["a pendulum pointing up"],
        baseline_prompts=["a pendulum"],
        alpha=0.5,
        device=device,
    )

    def sac_kwargs() -> dict:  # a new dict per model: SB3 adds keys to policy_kwargs in place
        return {
            "learning_starts": 0,
            "gradient_steps": args.gradient_steps,
            "batch_size": args.batch_size,
            "policy_kwargs": {"net_arch": args.net_arch},
            "device": device,
            "seed": 0,
        }

    def envs(defer: bool) -> DummyVecEnv:
        return DummyVecEnv(
            [lambda: make_env(reward_model, args.frame_size, args.episode_length, defer)] * args.n_envs
        )

    models = {
        "per-step": sb3.SAC("MlpPolicy", envs(defer=False), **sac_kwargs()),
        "episode-end": vlmrm_sb3.SAC(
            "MlpPolicy",
            envs(defer=True),
            reward_model=reward_model,
            reward_batch_size=args.reward_batch_size,
            **sac_kwargs(),
        ),
    }
    # Warm-up: kernels, allocator, and a first learn() that sets up the env and logger.
    for model in models.values():
        model.learn(args.n_envs * args.episode_length)

    results: dict[str, list[float]] = {name: [] for name in models}
    for _ in range(args.rounds):
        for name, model in models.items():
            results[name].append(steps_per_second(model, args.steps, device))

    device_name = (
        torch.cuda.get_device_name(device)
        if device.type == "cuda"
        else f"CPU ({torch.get_num_threads()} threads)"
    )
    print(
        f"reward model {spec} on {device_name}; {args.n_envs} envs, episodes of {args.episode_length} steps,"
    )
    print(
        f"{args.frame_size}x{args.frame_size} frames; SAC {args.net_arch}, minibatch {args.batch_size}, "
        f"{args.gradient_steps} update(s) per vector step"
    )
    for name, figures in results.items():
        print(
            f"  {name:12s} {max(figures):8.1f} env-steps/s  (rounds: {', '.join(f'{f:.1f}' for f in figures)})"
        )
    print(f"  speed-up     {max(results['episode-end']) / max(results['per-step']):8.1f}x")
    reward_model.close()


if __name__ == "__main__":
    main()
