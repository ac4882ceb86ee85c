"""SB3 off-policy algorithms whose rewards come from a reward model, scored at episode end.

Each env step must put its rendered frame in ``info["frame"]`` (``vlmrm_reward.CLIPReward(env,
reward_model, defer=True)`` does, and vlmrm-envs' envs do). The frame is held, with the replay-
buffer slot of its transition, until the episode ends in that env; then the frames of every episode
that ended at that step are scored together, in calls of at most ``reward_batch_size`` frames, and
the rewards written into their slots. Until then the slots cannot be sampled (see
:mod:`vlmrm_sb3.buffers`), so no gradient step sees a reward that is not yet written.

With ``async_reward=True`` the reward model runs on a background thread while the envs step on;
its rewards are written on the main thread, and all of them before each gradient phase, so
training samples exactly what it would have sampled with synchronous scoring.
"""

from __future__ import annotations

import io
import pathlib
import time
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

import numpy as np
import sb3_contrib
import stable_baselines3 as sb3
from gymnasium import spaces
from numpy.typing import ArrayLike
from stable_baselines3.common.buffers import DictReplayBuffer, ReplayBuffer
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.off_policy_algorithm import OffPolicyAlgorithm
from stable_baselines3.common.type_aliases import MaybeCallback
from stable_baselines3.common.utils import safe_mean

from vlmrm_sb3.buffers import LabelledBufferMixin, LabelledDictReplayBuffer, LabelledReplayBuffer
from vlmrm_sb3.safe_loading import check_saved_model, load_pickle, saved_file

__all__ = [
    "DQN",
    "QRDQN",
    "SAC",
    "TD3",
    "TQC",
    "EpisodeRewardFunction",
    "EpisodeRewardMixin",
    "RewardFunction",
]

RewardFunction = Callable[[np.ndarray], ArrayLike]
"""Frames (N, ...) stacked from ``info["frame"]`` (uint8 (N, H, W, 3) images for CLIP) -> rewards (N,)."""


@runtime_checkable
class EpisodeRewardFunction(Protocol):
    """An episode-aware reward model, e.g. ``vlmrm_reward.VideoRewardModel``: it sees whole episodes.

    ``score_episodes(episodes)`` takes one array of frames (T_i, ...) per episode, stacked from
    ``info["frame"]`` in step order, and returns one array of rewards (T_i,) per episode. An
    algorithm given such a model calls it instead of scoring frame by frame; the frames of an
    episode scored before it ends (``train`` before any episode has ended, ``save_replay_buffer``,
    a reset by ``learn``) are handed as the episode so far, and its later steps as a new one.
    """

    def score_episodes(self, episodes: Sequence[np.ndarray]) -> Sequence[ArrayLike]: ...


SCORING_THREAD_PREFIX = "vlmrm-reward-scoring"
"""Name prefix of the thread that calls the reward model when ``async_reward=True``."""


@dataclass
class _Episode:
    """The running episode of one env: frames not yet scored, and its returns so far."""

    frames: list[np.ndarray] = field(default_factory=list)
    add_indices: list[int] = field(default_factory=list)  # the replay-buffer add index of each frame
    reward_return: float = 0.0  # of the frames already scored
    original_return: float | None = None  # sum of info["original_reward"], when the env gives it


def _check_reward_settings(reward_model: object, reward_batch_size: object, async_reward: object) -> None:
    """The constructor's own arguments; checked again by learn(), since they are plain attributes."""
    if reward_model is not None and not (
        callable(reward_model) or isinstance(reward_model, EpisodeRewardFunction)
    ):
        raise TypeError(
            "reward_model must be callable frames -> rewards or have score_episodes(episodes), "
            f"got {type(reward_model).__name__}"
        )
    if reward_batch_size is not None:
        if not isinstance(reward_batch_size, int) or isinstance(reward_batch_size, bool):
            raise TypeError(
                f"reward_batch_size must be an int or None, got {type(reward_batch_size).__name__}"
            )
        if reward_batch_size < 1:
            raise ValueError(f"reward_batch_size must be positive or None, got {reward_batch_size}")
    if not isinstance(async_reward, bool):
        raise TypeError(f"async_reward must be a bool, got {type(async_reward).__name__}")


def _held_frames(episodes: Sequence[tuple[int, _Episode]]) -> list[list[np.ndarray]]:
    """The held frames of each of ``episodes``, in order."""
    return [episode.frames for _, episode in episodes]


if TYPE_CHECKING:
    # What the mixin is mixed into, for mypy: the SB3 attributes and methods it uses and overrides.
    _Algorithm = OffPolicyAlgorithm
else:
    _Algorithm = object


class EpisodeRewardMixin(_Algorithm):
    """Turns an SB3 off-policy algorithm into one whose rewards are scored at episode end.

    Put it first in the bases: ``class SAC(EpisodeRewardMixin, stable_baselines3.SAC)``. The
    constructor takes the parent's arguments plus:

    Args:
        reward_model: frames (N, ...) -> rewards (N,), e.g. a ``vlmrm_reward.RewardModel``, or an
            :class:`EpisodeRewardFunction` (e.g. ``vlmrm_reward.VideoRewardModel``), which is
            handed whole episodes. It is not saved with the model: pass it again to ``load``.
            May be None for a model that is only evaluated.
        reward_batch_size: the most frames per reward_model call (an episode-aware model gets
            whole episodes, so one longer than this goes alone); None scores all frames that
            are due in one call.
        async_reward: score the frames of ended episodes on a background thread (named
            ``vlmrm-reward-scoring_0``) while the main thread goes on stepping the envs, so that
            reward-model time overlaps env time. Rewards are written on the main thread: as
            they arrive (checked at each env step), and all of them before each gradient phase,
            ``save``, ``save_replay_buffer``, ``load_replay_buffer`` and the end of ``learn``;
            so training is exactly that of the default synchronous scoring (same samples, same
            weights). The overlap thus lasts from an episode end to the next gradient phase:
            it needs ``train_freq`` of several steps (with SAC's default of 1 there is none).
            An error of the reward model is raised by ``learn`` at the next env step or
            gradient phase; if ``learn`` raises, rewards still pending are dropped (their
            transitions stay unlabelled, never sampled). The thread lives only during ``learn``.
            Use it when the reward model runs on a GPU or otherwise releases the GIL.

    Logged through SB3's logger: ``rollout/clip_ep_rew_mean`` (episode return under the reward
    model), ``rollout/original_ep_rew_mean`` (of ``info["original_reward"]``, when present),
    ``reward_model/seconds`` and ``reward_model/frames`` (spent in reward_model calls during this
    ``learn``), and ``reward_model/frames_per_second``. SB3's own ``rollout/ep_rew_mean`` shows
    the env's reward, which is 0.0 for an env that defers its CLIP reward.
    """

    def __init__(
        self,
        *args: Any,
        reward_model: RewardFunction | None = None,
        reward_batch_size: int | None = None,
        async_reward: bool = False,
        **kwargs: Any,
    ) -> None:
        _check_reward_settings(reward_model, reward_batch_size, async_reward)
        self.reward_model = reward_model
        self.reward_batch_size = reward_batch_size
        self.async_reward = async_reward
        self._episodes: list[_Episode] = []
        # Ended episodes handed to the scoring thread, oldest first, with their (rewards, seconds).
        self._pending_scores: deque[tuple[list[tuple[int, _Episode]], Future[tuple[np.ndarray, float]]]] = (
            deque()
        )
        self._scoring_executor: ThreadPoolExecutor | None = None  # made at the first submission
        self._reward_returns: deque[float] | None = None
        self._original_returns: deque[float] | None = None
        self._reward_seconds = 0.0
        self._reward_frames = 0
        super().__init__(*args, **kwargs)

    @property
    def reward_returns(self) -> tuple[float, ...]:
        """Returns under the reward model of the last ``stats_window_size`` scored episodes, oldest first
        (what ``rollout/clip_ep_rew_mean`` averages); empty before the first ``learn``."""
        return tuple(self._reward_returns or ())

    @property
    def original_returns(self) -> tuple[float, ...]:
        """Returns of ``info["original_reward"]`` of the same episodes (``rollout/original_ep_rew_mean``);
        empty when the env gives no original reward."""
        return tuple(self._original_returns or ())

    @property
    def reward_frames(self) -> int:
        """Frames the reward model has scored during the current (or last) ``learn``."""
        return self._reward_frames

    @property
    def held_frames(self) -> tuple[int, ...]:
        """Per env, how many frames of its running episode wait to be scored when it ends."""
        return tuple(len(episode.frames) for episode in self._episodes)

    @property
    def pending_scores(self) -> int:
        """Batches of ended episodes submitted to the scoring thread whose rewards are not yet in the
        replay buffer (always 0 without ``async_reward``)."""
        return len(self._pending_scores)

    def wait_for_scoring(self, timeout: float | None = None) -> bool:
        """Block until the scoring thread has finished every batch submitted so far, without writing
        their rewards (that happens at the next env step, gradient phase, ``save`` or the end of
        ``learn``, which also raise a reward model's error); e.g. from a callback during ``learn``.

        Args:
            timeout: the most seconds to wait; None waits as long as it takes.

        Returns:
            Whether every batch finished within ``timeout`` (True at once without ``async_reward``).
        """
        _, not_done = wait([future for _, future in self._pending_scores], timeout=timeout)
        return not not_done

    @property
    def has_scoring_thread(self) -> bool:
        """Whether the ``async_reward`` scoring thread is running; ``learn`` stops it when it returns."""
        return self._scoring_executor is not None

    def _setup_model(self) -> None:
        if self.n_steps > 1:
            raise ValueError(
                f"n_steps={self.n_steps} is not supported: n-step returns would read rewards not yet scored"
            )
        buffer_class = self.replay_buffer_class
        if buffer_class in (None, ReplayBuffer, DictReplayBuffer):
            dict_obs = buffer_class is DictReplayBuffer or (
                buffer_class is None and isinstance(self.observation_space, spaces.Dict)
            )
            self.replay_buffer_class = LabelledDictReplayBuffer if dict_obs else LabelledReplayBuffer
        elif not issubclass(buffer_class, LabelledBufferMixin):
            raise ValueError(
                f"replay_buffer_class={buffer_class.__name__} is not supported (HER included): "
                "use ReplayBuffer, DictReplayBuffer or a subclass of vlmrm_sb3.LabelledBufferMixin"
            )
        super()._setup_model()

    def _setup_learn(
        self,
        total_timesteps: int,
        callback: MaybeCallback = None,
        reset_num_timesteps: bool = True,
        tb_log_name: str = "run",
        progress_bar: bool = False,
    ) -> tuple[int, BaseCallback]:
        if self.reward_model is None:
            raise ValueError("reward_model is None: pass reward_model= to the constructor or to load()")
        _check_reward_settings(self.reward_model, self.reward_batch_size, self.async_reward)
        if self._vec_normalize_env is not None and self._vec_normalize_env.norm_reward:
            raise ValueError(
                "VecNormalize(norm_reward=True) would normalise with statistics of the env's reward, "
                "not the reward model's: use norm_reward=False"
            )
        self._apply_scores(wait=True)  # learn() leaves none; collect_rollouts() called directly may
        if reset_num_timesteps or self._last_obs is None or len(self._episodes) != self.n_envs:
            # SB3 resets the env: the running episodes stop without a done, but their transitions
            # stay in the buffer and need their rewards.
            self._score(list(enumerate(self._episodes)))
            self._episodes = [_Episode() for _ in range(self.n_envs)]
        if reset_num_timesteps or self._reward_returns is None:
            self._reward_returns = deque(maxlen=self._stats_window_size)
            self._original_returns = deque(maxlen=self._stats_window_size)
        self._reward_seconds, self._reward_frames = 0.0, 0
        return super()._setup_learn(total_timesteps, callback, reset_num_timesteps, tb_log_name, progress_bar)

    def learn(self, *args: Any, **kwargs: Any) -> Any:
        try:
            super().learn(*args, **kwargs)
            self._apply_scores(wait=True)  # so that the buffer and the returns are complete
        finally:
            # No thread outlives learn(). On an error, the call under way ends and the rest are dropped.
            if self._scoring_executor is not None:
                self._scoring_executor.shutdown(wait=True, cancel_futures=True)
                self._scoring_executor = None
            self._pending_scores.clear()
        return self

    def _store_transition(
        self,
        replay_buffer: ReplayBuffer,
        buffer_action: np.ndarray,
        new_obs: np.ndarray | dict[str, np.ndarray],
        reward: np.ndarray,
        dones: np.ndarray,
        infos: list[dict[str, Any]],
    ) -> None:
        self._apply_scores(wait=False)
        frames = _frames_of(infos)
        add_index = _labelled(replay_buffer).rows_added
        super()._store_transition(replay_buffer, buffer_action, new_obs, reward, dones, infos)
        for episode, frame, info in zip(self._episodes, frames, infos, strict=True):
            episode.frames.append(frame)
            episode.add_indices.append(add_index)
            if "original_reward" in info:
                episode.original_return = (episode.original_return or 0.0) + float(info["original_reward"])
        ended = [(int(env_index), self._episodes[env_index]) for env_index in np.flatnonzero(dones)]
        if not ended:
            return
        for env_index, _ in ended:
            self._episodes[env_index] = _Episode()
        if not self.async_reward:
            self._score(ended, ended=True)
            return
        if self._scoring_executor is None:
            self._scoring_executor = ThreadPoolExecutor(
                max_workers=1, thread_name_prefix=SCORING_THREAD_PREFIX
            )
        # The thread only calls the reward model: the buffer is written on this thread, which adds to it.
        future = self._scoring_executor.submit(self._call_reward_model, _held_frames(ended))
        self._pending_scores.append((ended, future))

    def train(self, gradient_steps: int, *args: Any, **kwargs: Any) -> None:
        self._apply_scores(wait=True)  # the buffer is then as synchronous scoring would have left it
        if not _labelled(self.replay_buffer).has_sampleable_row():
            # Training starts before any episode has ended: score the running episodes up to now.
            self._score(list(enumerate(self._episodes)))
        super().train(gradient_steps, *args, **kwargs)

    def _score(self, episodes: Sequence[tuple[int, _Episode]], ended: bool = False) -> None:
        """Score the held frames of ``episodes`` (env index, episode) now, on this thread; see :meth:`_write_scores`."""
        frames = _held_frames(episodes)
        if any(frames):
            rewards, seconds = self._call_reward_model(frames)
            self._write_scores(episodes, rewards, seconds, ended=ended)

    def _apply_scores(self, wait: bool) -> None:
        """Write the scores the scoring thread has finished, in submission order; ``wait``: all of them."""
        while self._pending_scores and (wait or self._pending_scores[0][1].done()):
            episodes, future = self._pending_scores.popleft()
            rewards, seconds = future.result()  # raises the model's error
            self._write_scores(episodes, rewards, seconds, ended=True)

    def _write_scores(
        self, episodes: Sequence[tuple[int, _Episode]], rewards: np.ndarray, seconds: float, ended: bool
    ) -> None:
        """Write the rewards of the held frames of ``episodes``, drop the frames; ``ended``: log their returns."""
        self._reward_seconds += seconds
        self._reward_frames += len(rewards)
        _labelled(self.replay_buffer).write_rewards(
            np.array([index for _, episode in episodes for index in episode.add_indices], dtype=np.int64),
            np.array([env_index for env_index, episode in episodes for _ in episode.frames], dtype=np.int64),
            rewards,
        )
        start = 0
        for _, episode in episodes:
            end = start + len(episode.frames)
            episode.reward_return += float(rewards[start:end].sum(dtype=np.float64))
            episode.frames, episode.add_indices, start = [], [], end
        if ended:
            assert self._reward_returns is not None and self._original_returns is not None
            for _, episode in episodes:
                self._reward_returns.append(episode.reward_return)
                if episode.original_return is not None:
                    self._original_returns.append(episode.original_return)

    def _call_reward_model(self, episodes: list[list[np.ndarray]]) -> tuple[np.ndarray, float]:
        """Rewards float32 (N,) of the N frames of ``episodes`` (frames per episode), in calls of at
        most reward_batch_size frames, and the seconds spent in those calls. Touches no state: the
        scoring thread runs it."""
        assert self.reward_model is not None
        if isinstance(self.reward_model, EpisodeRewardFunction):
            return self._call_episode_reward_model([frames for frames in episodes if frames])
        frames = [frame for episode in episodes for frame in episode]
        batch_size = self.reward_batch_size or len(frames)
        rewards = np.empty(len(frames), dtype=np.float32)
        seconds = 0.0
        for start in range(0, len(frames), batch_size):
            batch = np.stack(frames[start : start + batch_size])
            began = time.perf_counter()
            batch_rewards = np.asarray(self.reward_model(batch), dtype=np.float32)
            seconds += time.perf_counter() - began
            if batch_rewards.shape != (len(batch),):
                raise ValueError(
                    f"reward_model returned shape {batch_rewards.shape} for {len(batch)} frames; expected ({len(batch)},)"
                )
            rewards[start : start + len(batch)] = batch_rewards
        return rewards, seconds

    def _call_episode_reward_model(self, episodes: list[list[np.ndarray]]) -> tuple[np.ndarray, float]:
        """As :meth:`_call_reward_model` for an episode-aware model: whole episodes per call."""
        assert isinstance(self.reward_model, EpisodeRewardFunction)
        calls: list[list[list[np.ndarray]]] = []
        for frames in episodes:
            frames_in_call = sum(len(episode) for episode in calls[-1]) if calls else 0
            if not calls or (
                self.reward_batch_size and frames_in_call + len(frames) > self.reward_batch_size
            ):
                calls.append([])
            calls[-1].append(frames)
        rewards, seconds = [], 0.0
        for call in calls:
            began = time.perf_counter()
            episode_rewards = list(self.reward_model.score_episodes([np.stack(frames) for frames in call]))
            seconds += time.perf_counter() - began
            lengths = [len(frames) for frames in call]
            shapes = [np.shape(episode) for episode in episode_rewards]
            if shapes != [(length,) for length in lengths]:
                raise ValueError(
                    f"reward_model.score_episodes returned rewards of shapes {shapes} for episodes of "
                    f"{lengths} frames; expected one (T,) array per episode"
                )
            rewards.extend(np.asarray(episode, dtype=np.float32) for episode in episode_rewards)
        return np.concatenate(rewards) if rewards else np.zeros(0, dtype=np.float32), seconds

    def dump_logs(self) -> None:
        if self._reward_returns:
            self.logger.record("rollout/clip_ep_rew_mean", safe_mean(list(self._reward_returns)))
        if self._original_returns:
            self.logger.record("rollout/original_ep_rew_mean", safe_mean(list(self._original_returns)))
        self.logger.record("reward_model/seconds", self._reward_seconds)
        self.logger.record("reward_model/frames", self._reward_frames)
        if self._reward_seconds > 0:
            self.logger.record("reward_model/frames_per_second", self._reward_frames / self._reward_seconds)
        super().dump_logs()

    def save_replay_buffer(self, path: str | pathlib.Path | io.BufferedIOBase) -> None:
        """Save the replay buffer, first scoring the running episodes so that it is fully labelled."""
        self._apply_scores(wait=True)
        self._score(list(enumerate(self._episodes)))
        super().save_replay_buffer(path)

    def load_replay_buffer(
        self, path: str | pathlib.Path | io.BufferedIOBase, truncate_last_traj: bool = True
    ) -> None:
        """Load a replay buffer saved by a vlmrm_sb3 algorithm; frames held for the old buffer are dropped.

        Unpickled with :class:`vlmrm_sb3.safe_loading.RestrictedUnpickler`: a file that would run
        code raises :class:`~vlmrm_sb3.safe_loading.UnsafePickleError`. (``truncate_last_traj``
        concerns SB3's ``HerReplayBuffer``, which these algorithms do not support.)
        """
        self._apply_scores(wait=True)  # into the old buffer: their add indices are its own
        if isinstance(path, (str, pathlib.Path)):
            path = saved_file(path, "pkl")
        loaded = load_pickle(path)
        if not isinstance(loaded, LabelledBufferMixin):
            raise TypeError(
                f"the replay buffer in {path!r} is a {type(loaded).__name__}, not a vlmrm_sb3 labelled buffer"
            )
        loaded.device = self.device  # the saving run's device may not exist here
        self.replay_buffer = loaded
        for episode in self._episodes:
            episode.frames, episode.add_indices = [], []

    @classmethod
    def load(cls, path: str | pathlib.Path | io.BufferedIOBase, *args: Any, **kwargs: Any) -> Any:
        """SB3's ``load`` (same arguments, plus ``reward_model=...``), after checking that the zip's
        pickled entries name nothing that could run code (:func:`vlmrm_sb3.safe_loading.check_saved_model`)."""
        check_saved_model(path)
        return super().load(path, *args, **kwargs)

    def save(self, *args: Any, **kwargs: Any) -> None:
        self._apply_scores(wait=True)  # so that the saved episode returns are complete
        super().save(*args, **kwargs)

    def _excluded_save_params(self) -> list[str]:
        # The reward model may hold GPUs and weights of gigabytes; held frames belong to the replay
        # buffer; a thread and its futures cannot be pickled (the thread is made again when needed).
        return [
            *super()._excluded_save_params(),
            "reward_model",
            "_episodes",
            "_pending_scores",
            "_scoring_executor",
        ]


def _labelled(replay_buffer: ReplayBuffer | None) -> LabelledBufferMixin:
    """The algorithm's replay buffer, which ``_setup_model`` made a labelled one."""
    assert isinstance(replay_buffer, LabelledBufferMixin)
    return replay_buffer


def _frames_of(infos: list[dict[str, Any]]) -> list[np.ndarray]:
    frames = []
    for env_index, info in enumerate(infos):
        frame = info.get("frame")
        if frame is None:
            raise ValueError(
                f"env {env_index} gave no info['frame'] at this step: episode-end reward algorithms score "
                "rendered frames; wrap the env in vlmrm_reward.CLIPReward(env, reward_model, defer=True)"
            )
        frames.append(np.array(frame))  # a copy: renderers may reuse their output array
    return frames


class SAC(EpisodeRewardMixin, sb3.SAC):
    """stable-baselines3's SAC with rewards from ``reward_model``, scored at episode end.

    ``SAC(policy, env, reward_model=..., reward_batch_size=None, **sac_kwargs)``; see
    :class:`EpisodeRewardMixin`.
    """


class TD3(EpisodeRewardMixin, sb3.TD3):
    """stable-baselines3's TD3 with rewards from ``reward_model``; see :class:`EpisodeRewardMixin`."""


class DQN(EpisodeRewardMixin, sb3.DQN):
    """stable-baselines3's DQN with rewards from ``reward_model``; see :class:`EpisodeRewardMixin`."""


class TQC(EpisodeRewardMixin, sb3_contrib.TQC):
    """sb3-contrib's TQC with rewards from ``reward_model``; see :class:`EpisodeRewardMixin`."""


class QRDQN(EpisodeRewardMixin, sb3_contrib.QRDQN):
    """sb3-contrib's QRDQN with rewards from ``reward_model``; see :class:`EpisodeRewardMixin`."""
