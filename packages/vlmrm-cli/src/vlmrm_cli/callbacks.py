"""stable-baselines3 callbacks of a ``vlmrm train`` run: stop on signal, logs, checkpoints, videos, progress.

Frequencies count env steps summed over all envs (SB3's ``num_timesteps``); an event fires
whenever the count passes a multiple of its frequency.
"""

from __future__ import annotations

import signal
import sys
import time
from collections.abc import Callable
from pathlib import Path
from types import FrameType
from typing import Any

import gymnasium as gym
import numpy as np
from stable_baselines3.common.callbacks import BaseCallback

from vlmrm_cli.checkpoints import save_checkpoint
from vlmrm_cli.tracking import STEP_METRIC
from vlmrm_cli.video import write_reward_video

__all__ = [
    "CheckpointCallback",
    "LogCallback",
    "ProgressCallback",
    "SignalStop",
    "StopCallback",
    "VideoCallback",
]

# A video of an env without a time limit stops here.
MAX_VIDEO_STEPS = 1000


class SignalStop:
    """While active, SIGINT and SIGTERM ask the run to stop at its next step; a second one aborts.

    Use as a context manager in the main thread. ``signum`` is the first signal received.
    """

    SIGNALS = (signal.SIGINT, signal.SIGTERM)

    def __init__(self) -> None:
        self.signum: int | None = None
        self._previous: dict[int, Any] = {}

    def __enter__(self) -> SignalStop:
        self._previous = {signum: signal.signal(signum, self._handle) for signum in self.SIGNALS}
        return self

    def __exit__(self, *exc_info: object) -> None:
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        if self.signum is not None:
            raise KeyboardInterrupt  # asked twice: stop now, without a checkpoint
        self.signum = signum
        name = signal.Signals(signum).name
        print(
            f"\n{name} received: stopping after this step and saving a checkpoint (again to abort)",
            file=sys.stderr,
        )

    @property
    def exit_code(self) -> int:
        """128 + the signal number (130 for SIGINT, 143 for SIGTERM), as shells report it; 0 if none."""
        return 0 if self.signum is None else 128 + self.signum


class StopCallback(BaseCallback):
    """Ends ``learn`` at the step after a signal, or once ``total_steps`` are reached.

    SB3's off-policy ``learn`` checks its step budget only between rollouts, so it would run up
    to ``train_freq`` steps past it; a run here ends at ``total_steps`` (rounded up to a whole
    step of all envs).
    """

    def __init__(self, stop: SignalStop, total_steps: int) -> None:
        super().__init__()
        self.stop = stop
        self.total_steps = total_steps

    def _on_step(self) -> bool:
        return self.stop.signum is None and self.num_timesteps < self.total_steps


class _Periodic(BaseCallback):
    """Calls :meth:`_on_event` whenever ``num_timesteps`` passes a multiple of ``freq``."""

    def __init__(self, freq: int) -> None:
        super().__init__()
        self.freq = freq
        self._last_event = 0

    def _on_training_start(self) -> None:
        self._last_event = self.num_timesteps // self.freq

    def _on_step(self) -> bool:
        event = self.num_timesteps // self.freq
        if event > self._last_event:
            self._last_event = event
            self._on_event()
        return True

    def _on_event(self) -> None:
        raise NotImplementedError


class LogCallback(_Periodic):
    """Writes the logged values (TensorBoard, wandb) every ``freq`` steps, and at the end."""

    def _on_event(self) -> None:
        self.model.dump_logs()
        self._dumped_at = self.num_timesteps

    def _on_training_start(self) -> None:
        super()._on_training_start()
        self._dumped_at = self.num_timesteps

    def _on_training_end(self) -> None:
        if self._dumped_at != self.num_timesteps:
            self._on_event()


class CheckpointCallback(_Periodic):
    """Saves an atomic checkpoint (model, optionally the replay buffer) every ``freq`` steps."""

    def __init__(self, freq: int, folder: Path, *, replay_buffer: bool) -> None:
        super().__init__(freq)
        self.folder = folder
        self.replay_buffer = replay_buffer

    def _on_event(self) -> None:
        save_checkpoint(self.model, self.folder, replay_buffer=self.replay_buffer)


class VideoCallback(_Periodic):
    """Every ``freq`` steps, films one episode of the current policy with its CLIP rewards.

    The episode runs in an env of its own (``make_env()``, reward deferred), with deterministic
    actions; its frames are scored in one batch and written to ``folder/step_<steps>.mp4`` with
    the per-step reward plotted beside them.
    """

    def __init__(
        self,
        freq: int,
        folder: Path,
        make_env: Callable[[], gym.Env],
        reward_model: Callable[[np.ndarray], np.ndarray],
        *,
        fps: int,
        seed: int,
        wandb_run: Any | None = None,
    ) -> None:
        super().__init__(freq)
        self.folder = folder
        self.make_env = make_env
        self.reward_model = reward_model
        self.fps = fps
        self.seed = seed
        self.wandb_run = wandb_run
        self._env: gym.Env | None = None

    def _on_event(self) -> None:
        if self._env is None:
            self._env = self.make_env()
        observation, _ = self._env.reset(seed=self.seed)
        frames, original_return = [], 0.0
        for _ in range(MAX_VIDEO_STEPS):
            action, _ = self.model.predict(observation, deterministic=True)
            observation, _, terminated, truncated, info = self._env.step(action)
            frames.append(np.array(info["frame"]))
            original_return += float(info.get("original_reward", 0.0))
            if terminated or truncated:
                break
        rewards = np.asarray(self.reward_model(np.stack(frames)), dtype=np.float32)
        path = write_reward_video(
            self.folder / f"step_{self.num_timesteps:010d}.mp4", np.stack(frames), rewards, fps=self.fps
        )
        self.logger.record("video/clip_return", float(rewards.sum(dtype=np.float64)))
        self.logger.record("video/original_return", original_return)
        if self.wandb_run is not None:
            import wandb

            self.wandb_run.log(
                {"video/episode": wandb.Video(str(path), format="mp4"), STEP_METRIC: self.num_timesteps}
            )

    def _on_training_end(self) -> None:
        if self._env is not None:
            self._env.close()
            self._env = None


class ProgressCallback(BaseCallback):
    """A tqdm bar: steps, steps/s, mean CLIP and ground-truth episode return (last 100 episodes)."""

    def __init__(self, total_steps: int) -> None:
        super().__init__()
        self.total_steps = total_steps
        self._bar: Any = None
        self._shown = 0
        self._postfix_time = 0.0

    def _on_training_start(self) -> None:
        from tqdm.auto import tqdm

        interactive = sys.stderr.isatty()
        self._shown = self.num_timesteps
        self._bar = tqdm(
            total=self.total_steps,
            initial=self.num_timesteps,
            unit="step",
            dynamic_ncols=True,
            mininterval=0.5 if interactive else 30.0,
            smoothing=0.05,
        )

    def _on_step(self) -> bool:
        self._bar.update(self.num_timesteps - self._shown)
        self._shown = self.num_timesteps
        now = time.monotonic()
        if now - self._postfix_time > 1.0:
            self._postfix_time = now
            self._bar.set_postfix_str(self._returns(), refresh=False)
        return True

    def _returns(self) -> str:
        parts = []
        for label, name in (("clip_return", "reward_returns"), ("true_return", "original_returns")):
            returns = getattr(self.model, name, None)  # vlmrm_sb3's; a stock SB3 model has neither
            if returns:
                parts.append(f"{label}={np.mean(returns):.4g}")
        return " ".join(parts) or "no episode finished yet"

    def _on_training_end(self) -> None:
        if self._bar is not None:
            self._bar.set_postfix_str(self._returns(), refresh=False)
            self._bar.close()
            self._bar = None
