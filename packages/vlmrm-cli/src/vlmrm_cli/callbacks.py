"""stable-baselines3 callbacks of a ``vlmrm train`` run: stop on signal, logs, checkpoints, videos,
evaluations, progress.

Frequencies count env steps summed over all envs (SB3's ``num_timesteps``); an event fires
whenever the count passes a multiple of its frequency.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
from stable_baselines3.common.callbacks import BaseCallback

from vlmrm_cli.checkpoints import save_checkpoint
from vlmrm_cli.evaluation import Episode, run_episodes, summarise
from vlmrm_cli.signals import SignalStop
from vlmrm_cli.tracking import STEP_METRIC
from vlmrm_cli.video import write_reward_video

__all__ = [
    "CheckpointCallback",
    "EvalCallback",
    "LogCallback",
    "ProgressCallback",
    "StopCallback",
    "VideoCallback",
]


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
        return not self.stop.requested and self.num_timesteps < self.total_steps


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


class _EpisodeCallback(_Periodic):
    """Every ``freq`` steps, runs episodes of the current policy (deterministic actions) in an env
    of its own (``make_env()``, reward deferred, made at the first event and closed at the end),
    scoring their frames with ``reward_model``."""

    def __init__(
        self,
        freq: int,
        make_env: Callable[[], gym.Env],
        reward_model: Callable[[np.ndarray], np.ndarray],
        *,
        seed: int,
        batch_size: int = 256,
        stopping: Callable[[], bool] = lambda: False,
    ) -> None:
        super().__init__(freq)
        self.stopping = stopping
        self.make_env = make_env
        self.reward_model = reward_model
        self.seed = seed
        self.batch_size = batch_size
        self._env: gym.Env | None = None

    def _run_episodes(self, episodes: int, *, film: int = 0) -> list[Episode]:
        if self._env is None:
            self._env = self.make_env()
        model = self.model
        return run_episodes(
            lambda observation: model.predict(observation, deterministic=True)[0],
            self._env,
            self.reward_model,
            episodes=episodes,
            seed=self.seed,
            batch_size=self.batch_size,
            film=film,
            stopping=self.stopping,
        )

    def _on_training_end(self) -> None:
        if self._env is not None:
            self._env.close()
            self._env = None


class VideoCallback(_EpisodeCallback):
    """Every ``freq`` steps, films one episode of the current policy with its CLIP rewards.

    The episode runs in an env of its own (``make_env()``, reward deferred), with deterministic
    actions; its frames are scored in one batch and written to ``folder/step_<steps>.mp4`` with
    the per-step reward plotted beside them. Once ``stopping()`` is true, the episode is dropped.
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
        stopping: Callable[[], bool] = lambda: False,
    ) -> None:
        super().__init__(freq, make_env, reward_model, seed=seed, stopping=stopping)
        self.folder = folder
        self.fps = fps
        self.wandb_run = wandb_run

    def _on_event(self) -> None:
        episodes = self._run_episodes(1, film=1)
        if not episodes:  # a signal: the run stops now, this video is not finished
            return
        (episode,) = episodes
        path = write_reward_video(
            self.folder / f"step_{self.num_timesteps:010d}.mp4",
            np.stack(episode.frames),
            episode.clip_rewards,
            fps=self.fps,
        )
        self.logger.record("video/clip_return", episode.clip_return)
        self.logger.record("video/original_return", episode.ground_truth_return)
        if self.wandb_run is not None:
            import wandb

            self.wandb_run.log(
                {"video/episode": wandb.Video(str(path), format="mp4"), STEP_METRIC: self.num_timesteps}
            )


class EvalCallback(_EpisodeCallback):
    """Every ``freq`` steps, evaluates the policy as ``vlmrm eval`` does and logs ``eval/*`` scalars.

    ``episodes`` deterministic episodes (episode ``i`` reset with ``seed + i``, the same each
    time, so that evaluations are comparable); logged (TensorBoard, wandb) at the step of the
    evaluation: ``eval/success_rate`` (the env's ground-truth criterion,
    :mod:`vlmrm_envs.success`; left out for an env without one), ``eval/ground_truth_return``,
    ``eval/clip_return`` (means over the episodes) and ``eval/episode_length``.
    """

    def __init__(
        self,
        freq: int,
        make_env: Callable[[], gym.Env],
        reward_model: Callable[[np.ndarray], np.ndarray],
        *,
        episodes: int,
        seed: int,
        batch_size: int = 256,
    ) -> None:
        super().__init__(freq, make_env, reward_model, seed=seed, batch_size=batch_size)
        self.episodes = episodes

    def _on_event(self) -> None:
        summary = summarise(self._run_episodes(self.episodes))
        if summary["success_rate"] is not None:
            self.logger.record("eval/success_rate", summary["success_rate"]["mean"])
        self.logger.record("eval/ground_truth_return", summary["ground_truth_return"]["mean"])
        self.logger.record("eval/clip_return", summary["clip_return"]["mean"])
        self.logger.record("eval/episode_length", summary["episode_length"])
        # Written now, at this step: the next regular dump may be up to tensorboard_freq steps later.
        self.logger.dump(self.num_timesteps)


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
