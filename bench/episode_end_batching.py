"""Training env-steps/s: scoring each frame as it is rendered vs scoring whole episodes at once.

Side by side in one run, with the same envs, reward model and SAC settings:

- per-step: stock ``stable_baselines3.SAC`` on envs wrapped in ``vlmrm_reward.CLIPReward``, which
  scores one frame per env per step (what plain Gymnasium + SB3 gives you);
- episode-end: ``vlmrm_sb3.SAC`` on envs that defer their reward (``info["frame"]``), scoring the
  frames of every episode that ends, together, in calls of ``--reward-batch-size`` frames;
- episode-end async: the same with ``async_reward=True``: the reward model runs on a background
  thread while the envs step on. Every gradient phase first waits for the rewards, so the overlap
  lasts from an episode end to the next gradient phase: none with ``--train-freq 1`` (SAC's
  default), up to ``--train-freq`` vector steps otherwise.

``--env pendulum`` is Pendulum with a cheap synthetic frame (a rod drawn with numpy), so that the
reward model, not rendering, is what differs. ``--env humanoid`` is vlmrm-envs'
``vlmrm/Humanoid-v0``, rendered with MuJoCo (EGL), end to end as in the paper.

``--vec-env dummy`` steps all envs in this process; ``subproc`` in one process each (SB3's
``SubprocVecEnv``, forkserver). A ``RewardModel`` cannot be pickled, so for per-step scoring under
``subproc`` each process loads its own copy of the reward model.

Rounds alternate between the modes to share any drift in machine load; the best round of each
is reported.

    python bench/episode_end_batching.py [--train-freq 64]                 # CPU, tiny model, 64x64
    MUJOCO_GL=egl python bench/episode_end_batching.py --env humanoid --n-envs 4 --episode-length 25 --steps 200
    python bench/episode_end_batching.py --device cuda --train-freq 64    # ViT-B-32/random, 224x224
    MUJOCO_GL=egl python bench/episode_end_batching.py --env humanoid --vec-env subproc --device cuda \
        --n-envs 16 --train-freq 64
"""

from __future__ import annotations

import argparse
import tempfile
import time
from collections.abc import Callable

import gymnasium as gym
import numpy as np
import stable_baselines3 as sb3
import torch
import vlmrm_sb3
from stable_baselines3.common.vec_env import DummyVecEnv, SubprocVecEnv, VecEnv
from vlmrm_reward import CLIPReward, RewardModel, load_reward_model
from vlmrm_reward.testing import make_tiny_open_clip

# (target prompts, baseline prompts) of each env.
PROMPTS = {
    "pendulum": (["a pendulum pointing up"], ["a pendulum"]),
    "humanoid": (["a humanoid robot kneeling"], ["a humanoid robot"]),
}


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


def load(env: str, spec: str, device: torch.device) -> RewardModel:
    target, baseline = PROMPTS[env]
    return load_reward_model(spec, target_prompts=target, baseline_prompts=baseline, alpha=0.5, device=device)


def make_env(env: str, size: int, episode_length: int, reward_model: RewardModel | None) -> gym.Env:
    """The env with its CLIP reward computed at each step, or deferred (frame in info) when reward_model is None."""
    if env == "humanoid":
        import vlmrm_envs  # in the worker too, before MuJoCo: it sets up headless rendering

        return vlmrm_envs.make_clip_env(
            "vlmrm/Humanoid-v0",
            reward_model=reward_model,
            defer_reward=reward_model is None,
            width=size,
            height=size,
            episode_length=episode_length,
        )
    pendulum = gym.make("Pendulum-v1", render_mode="rgb_array", max_episode_steps=episode_length)
    return CLIPReward(SyntheticFrame(pendulum, size), reward_model, defer=reward_model is None)


def steps_per_second(model, steps: int, device: torch.device) -> float:
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    began, first_step = time.perf_counter(), model.num_timesteps
    model.learn(steps, reset_num_timesteps=False)
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    # learn() may overshoot `steps` to finish a rollout of train_freq vector steps.
    return (model.num_timesteps - first_step) / (time.perf_counter() - began)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--env", choices=sorted(PROMPTS), default="pendulum")
    parser.add_argument("--vec-env", choices=["dummy", "subproc"], default="dummy")
    parser.add_argument(
        "--model",
        default=None,
        help="reward model spec; default ViT-B-32/random on cuda, else a tiny random one",
    )
    parser.add_argument("--device", default="cpu", help="device of the reward model and of SAC")
    parser.add_argument("--n-envs", type=int, default=16)
    parser.add_argument("--episode-length", type=int, default=100)
    parser.add_argument("--frame-size", type=int, default=None, help="default 224 on cuda, else 64")
    parser.add_argument("--steps", type=int, default=1600, help="env steps measured per round and mode")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--reward-batch-size", type=int, default=None)
    parser.add_argument("--gradient-steps", type=int, default=1, help="SAC updates per vector step")
    parser.add_argument(
        "--train-freq",
        type=int,
        default=1,
        help="vector steps per gradient phase (of train-freq x gradient-steps updates)",
    )
    parser.add_argument("--batch-size", type=int, default=64, help="SAC minibatch")
    parser.add_argument("--net-arch", type=int, nargs="+", default=[64, 64], help="SAC hidden layers")
    parser.add_argument("--buffer-size", type=int, default=100_000, help="replay buffer transitions")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads; default torch's")
    return parser


def compare(args: argparse.Namespace) -> tuple[dict[str, list[float]], str, int]:
    """Train the three scorings side by side; returns (env-steps/s of each round per mode, the
    reward model spec, the frame size)."""
    if args.threads:
        torch.set_num_threads(args.threads)

    device = torch.device(args.device)
    on_gpu = device.type == "cuda"
    spec = args.model or (
        "ViT-B-32/random" if on_gpu else make_tiny_open_clip(tempfile.mkdtemp(prefix="tiny-clip-"))
    )
    size = args.frame_size or (224 if on_gpu else 64)
    reward_model = load(args.env, spec, device)

    def envs(scoring: str) -> VecEnv:
        def factory() -> Callable[[], gym.Env]:
            if scoring != "per-step":
                return lambda: make_env(args.env, size, args.episode_length, None)
            if args.vec_env == "dummy":
                return lambda: make_env(args.env, size, args.episode_length, reward_model)
            return lambda: make_env(args.env, size, args.episode_length, load(args.env, spec, device))

        factories = [factory() for _ in range(args.n_envs)]
        if args.vec_env == "subproc":
            # forkserver, not fork: torch (and perhaps CUDA) is already initialised in this process.
            return SubprocVecEnv(factories, start_method="forkserver")
        return DummyVecEnv(factories)

    def sac_kwargs() -> dict:  # a new dict per model: SB3 adds keys to policy_kwargs in place
        return {
            "learning_starts": 0,
            "train_freq": args.train_freq,
            "gradient_steps": args.train_freq * args.gradient_steps,
            "batch_size": args.batch_size,
            "buffer_size": args.buffer_size,
            "policy_kwargs": {"net_arch": args.net_arch},
            "device": device,
            "seed": 0,
        }

    def episode_end(async_reward: bool) -> vlmrm_sb3.SAC:
        return vlmrm_sb3.SAC(
            "MlpPolicy",
            envs("episode-end"),
            reward_model=reward_model,
            reward_batch_size=args.reward_batch_size,
            async_reward=async_reward,
            **sac_kwargs(),
        )

    models = {
        "per-step": sb3.SAC("MlpPolicy", envs("per-step"), **sac_kwargs()),
        "episode-end": episode_end(async_reward=False),
        "episode-end async": episode_end(async_reward=True),
    }
    # Warm-up: kernels, allocator, renderers, and a first learn() that sets up the env and logger.
    for model in models.values():
        model.learn(args.n_envs * args.episode_length)

    results: dict[str, list[float]] = {name: [] for name in models}
    for _ in range(args.rounds):
        for name, model in models.items():
            results[name].append(steps_per_second(model, args.steps, device))
    for model in models.values():
        model.env.close()
    reward_model.close()

    return results, spec, size


def main() -> None:
    args = build_parser().parse_args()
    results, spec, size = compare(args)
    device = torch.device(args.device)
    on_gpu = device.type == "cuda"
    device_name = torch.cuda.get_device_name(device) if on_gpu else f"CPU ({torch.get_num_threads()} threads)"
    print(f"{args.env}, {args.vec_env} vec env, {args.n_envs} envs, episodes of {args.episode_length} steps,")
    print(
        f"{size}x{size} frames; reward model {spec} on {device_name}; SAC {args.net_arch}, "
        f"minibatch {args.batch_size}, {args.gradient_steps} update(s) per vector step, "
        f"gradient phase every {args.train_freq} vector step(s)"
    )
    baseline = max(results["per-step"])
    print(f"| scoring | env-steps/s | vs per-step | rounds ({args.steps} env steps each) |")
    print("|---|---|---|---|")
    for name, figures in results.items():
        rounds = ", ".join(f"{figure:.1f}" for figure in figures)
        print(f"| {name} | {max(figures):.1f} | {max(figures) / baseline:.2f}x | {rounds} |")


if __name__ == "__main__":
    main()
