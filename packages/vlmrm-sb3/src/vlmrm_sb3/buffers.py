"""Replay buffers whose rewards arrive after their transitions.

A transition is added with its reward unknown (NaN) and becomes sampleable once its reward is
written with :meth:`LabelledBufferMixin.write_rewards`. Sampling draws rows exactly as SB3 does
and redraws only the rows that hold an unlabelled transition, so a fully labelled buffer consumes
the same random numbers, and returns the same samples, as SB3's own buffer.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
from stable_baselines3.common.buffers import DictReplayBuffer, ReplayBuffer
from stable_baselines3.common.vec_env import VecNormalize

__all__ = ["LabelledBufferMixin", "LabelledDictReplayBuffer", "LabelledReplayBuffer"]

# Rejection rounds before falling back to listing the sampleable rows (O(buffer size)); with a
# few recent episodes unlabelled, nearly every batch is settled in the first one or two rounds.
_REDRAW_ROUNDS = 32


if TYPE_CHECKING:
    # What the mixin is mixed into, for mypy: the buffer attributes and methods it uses and overrides.
    _Buffer = ReplayBuffer
else:
    _Buffer = object


class LabelledBufferMixin(_Buffer):
    """Adds a labelled mask to an SB3 replay buffer; put it before the buffer class in the bases.

    Attributes:
        labelled: bool (buffer_size, n_envs), True where the stored reward is final. Rows not yet
            filled count as labelled.
        n_unlabelled: number of stored transitions whose reward is not yet written.
        rows_added: rows added since the buffer was made; a transition's *add index* is the
            value this had when it was added, and its row is ``add_index % buffer_size``.

    The unit of sampling is the row (one step of all envs), as in SB3, which draws the row and
    then the env index separately: a row is sampleable when all of its n_envs transitions are
    labelled.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.labelled = np.ones((self.buffer_size, self.n_envs), dtype=bool)
        self.n_unlabelled = 0
        self.rows_added = 0

    def add(self, *args: Any, **kwargs: Any) -> None:
        """Add one row of transitions, unlabelled, with NaN rewards until they are written."""
        row = self.pos
        super().add(*args, **kwargs)
        # The transitions this row held before the wrap are gone, labelled or not.
        self.n_unlabelled += self.n_envs - int(np.count_nonzero(~self.labelled[row]))
        self.labelled[row] = False
        # NaN rather than the env's reward: if an unlabelled reward ever reached a loss, it would show.
        self.rewards[row] = np.nan
        self.rows_added += 1

    def write_rewards(self, add_indices: np.ndarray, env_indices: np.ndarray, rewards: np.ndarray) -> int:
        """Write rewards and mark their transitions sampleable.

        Args:
            add_indices: int (N,), each transition's add index (see the class attributes).
            env_indices: int (N,), each transition's env index.
            rewards: float (N,).

        Returns:
            How many were written: transitions overwritten since (an episode longer than the
            buffer) are skipped.
        """
        if len(add_indices) and (add_indices.min() < 0 or add_indices.max() >= self.rows_added):
            raise ValueError(f"add_indices must lie in [0, rows_added={self.rows_added}): transitions added")
        live = add_indices >= self.rows_added - self.buffer_size
        rows, envs = add_indices[live] % self.buffer_size, env_indices[live]
        self.rewards[rows, envs] = rewards[live]
        self.n_unlabelled -= int(np.count_nonzero(~self.labelled[rows, envs]))
        self.labelled[rows, envs] = True
        return int(np.count_nonzero(live))

    def reset(self) -> None:
        super().reset()
        self.labelled[:] = True
        self.n_unlabelled = 0
        # Keep add indices growing (so that pending ones from before the reset read as overwritten)
        # while pos = 0 stays the row of the next add index.
        self.rows_added = (self.rows_added // self.buffer_size + 2) * self.buffer_size

    def has_sampleable_row(self) -> bool:
        """Whether :meth:`sample` has a row to return."""
        n_candidates = (self.buffer_size if self.full else self.pos) - int(
            self.optimize_memory_usage and self.full
        )
        # Each unlabelled row holds at least one unlabelled transition, so this is O(1) but for the
        # first rows of a run, when the scan below is short.
        if self.n_unlabelled < n_candidates:
            return True
        return bool(self.labelled[self._candidate_rows()].all(axis=1).any())

    def sample(self, batch_size: int, env: VecNormalize | None = None) -> Any:
        """Sample like SB3's buffer, uniformly over the rows whose transitions are all labelled."""
        rows = self._draw_rows(batch_size)
        if self.n_unlabelled > 0:
            self._redraw_unlabelled(rows)
        return self._get_samples(rows, env=env)

    def _draw_rows(self, n: int) -> np.ndarray:
        # The same calls as ReplayBuffer.sample / BaseBuffer.sample, so that the random stream matches SB3's.
        if self.optimize_memory_usage and self.full:
            return (np.random.randint(1, self.buffer_size, size=n) + self.pos) % self.buffer_size
        return np.random.randint(0, self.buffer_size if self.full else self.pos, size=n)

    def _candidate_rows(self) -> np.ndarray:
        """The rows :meth:`_draw_rows` can return."""
        rows = np.arange(self.buffer_size if self.full else self.pos)
        if self.optimize_memory_usage and self.full:
            rows = rows[rows != self.pos]  # its next observation is being overwritten
        return rows

    def _redraw_unlabelled(self, rows: np.ndarray) -> None:
        """Replace, in place, the rows that hold an unlabelled transition by sampleable ones."""
        bad = np.flatnonzero(~self.labelled[rows].all(axis=1))
        for _ in range(_REDRAW_ROUNDS):
            if len(bad) == 0:
                return
            rows[bad] = self._draw_rows(len(bad))
            bad = bad[~self.labelled[rows[bad]].all(axis=1)]
        if len(bad) == 0:
            return
        candidates = self._candidate_rows()
        sampleable = candidates[self.labelled[candidates].all(axis=1)]
        if len(sampleable) == 0:
            raise RuntimeError("no labelled transition to sample: score pending frames before training")
        rows[bad] = sampleable[np.random.randint(0, len(sampleable), size=len(bad))]


class LabelledReplayBuffer(LabelledBufferMixin, ReplayBuffer):
    """SB3's :class:`~stable_baselines3.common.buffers.ReplayBuffer` with rewards written later."""


class LabelledDictReplayBuffer(LabelledBufferMixin, DictReplayBuffer):
    """SB3's :class:`~stable_baselines3.common.buffers.DictReplayBuffer` with rewards written later."""
