"""Unlabelled transitions are never sampled; labelled ones are sampled as SB3 samples them."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from conftest import CountingEnv, RecordingRewardModel, counting_reward
from gymnasium import spaces
from stable_baselines3.common.buffers import ReplayBuffer
from stable_baselines3.common.vec_env import DummyVecEnv
from vlmrm_sb3 import SAC, LabelledReplayBuffer

OBSERVATION_SPACE = spaces.Box(-np.inf, np.inf, shape=(1,), dtype=np.float32)
ACTION_SPACE = spaces.Box(-1.0, 1.0, shape=(1,), dtype=np.float32)


def filled(buffer_class: type, rows: int, n_envs: int = 2, **kwargs) -> ReplayBuffer:
    """A 16-row buffer after adding `rows` rows (wrapping when more); observation = add index."""
    buffer = buffer_class(16 * n_envs, OBSERVATION_SPACE, ACTION_SPACE, device="cpu", n_envs=n_envs, **kwargs)
    for index in range(rows):
        column = np.full((n_envs, 1), index, dtype=np.float32)
        buffer.add(column, column + 1, np.zeros((n_envs, 1)), column[:, 0], np.zeros(n_envs), [{}] * n_envs)
    return buffer


def label_everything(buffer: LabelledReplayBuffer) -> None:
    indices = np.arange(max(0, buffer.rows_added - buffer.buffer_size), buffer.rows_added).repeat(
        buffer.n_envs
    )
    envs = np.tile(np.arange(buffer.n_envs), len(indices) // buffer.n_envs)
    buffer.write_rewards(indices, envs, indices.astype(np.float32))


@pytest.mark.parametrize("optimize_memory_usage", [False, True])
def test_labelled_buffer_samples_exactly_like_sb3(optimize_memory_usage):
    kwargs = {"optimize_memory_usage": optimize_memory_usage, "handle_timeout_termination": False}
    for rows in (5, 16, 37):  # partly filled, just full, wrapped
        stock = filled(ReplayBuffer, rows, **kwargs)
        labelled = filled(LabelledReplayBuffer, rows, **kwargs)
        label_everything(labelled)
        assert labelled.n_unlabelled == 0
        np.testing.assert_array_equal(labelled.rewards, stock.rewards)
        np.random.seed(0)
        expected, expected_next_draw = stock.sample(64), np.random.randint(1 << 30)
        np.random.seed(0)
        got, next_draw = labelled.sample(64), np.random.randint(1 << 30)
        for name, value in expected._asdict().items():
            assert value is None is getattr(got, name) or torch.equal(getattr(got, name), value), name
        assert next_draw == expected_next_draw  # no extra random numbers


@pytest.mark.parametrize("optimize_memory_usage", [False, True])
def test_unlabelled_rows_are_never_sampled_and_the_rest_uniformly(optimize_memory_usage):
    buffer = filled(
        LabelledReplayBuffer,
        37,
        optimize_memory_usage=optimize_memory_usage,
        handle_timeout_termination=False,
    )
    label_everything(buffer)
    # Unlabel one env of some rows, as pending episodes do.
    unlabelled_indices = np.array([22, 23, 30, 35, 36])
    buffer.labelled[unlabelled_indices % 16, [0, 1, 1, 0, 1]] = False
    buffer.rewards[unlabelled_indices % 16] = np.nan
    buffer.n_unlabelled = 5
    np.random.seed(1)
    sampled = np.concatenate([buffer.sample(256).observations[:, 0].numpy() for _ in range(40)])
    assert not np.isin(sampled, unlabelled_indices).any()
    candidates = set(range(21, 37)) - set(unlabelled_indices)
    if optimize_memory_usage:
        candidates.discard(21)  # the row at pos, whose next observation is being overwritten
    counts = np.array([np.count_nonzero(sampled == index) for index in sorted(candidates)])
    assert set(sampled.tolist()) == candidates
    assert counts.min() > 0.7 * counts.mean() and counts.max() < 1.3 * counts.mean()


def test_nothing_labelled():
    buffer = filled(LabelledReplayBuffer, 4)
    assert buffer.n_unlabelled == 8 and not buffer.has_sampleable_row()
    with pytest.raises(RuntimeError, match="no labelled transition"):
        buffer.sample(4)
    buffer.write_rewards(np.array([2, 2]), np.array([0, 1]), np.array([5.0, 6.0]))
    assert buffer.has_sampleable_row()
    assert set(buffer.sample(64).rewards[:, 0].tolist()) == {5.0, 6.0}  # the only sampleable row


def test_reset_makes_pending_indices_stale():
    buffer = filled(LabelledReplayBuffer, 20)
    pending = buffer.rows_added - 1
    buffer.reset()
    assert buffer.n_unlabelled == 0 and buffer.pos == 0
    assert buffer.rows_added % buffer.buffer_size == 0
    filled_again = buffer.rows_added
    column = np.zeros((2, 1), dtype=np.float32)
    buffer.add(column, column, column, column[:, 0], np.zeros(2), [{}, {}])
    assert buffer.write_rewards(np.array([pending]), np.array([0]), np.array([1.0])) == 0
    assert buffer.write_rewards(np.array([filled_again]), np.array([0]), np.array([1.0])) == 1
    assert buffer.rewards[0, 0] == 1.0 and buffer.n_unlabelled == 1


class CheckedBuffer(LabelledReplayBuffer):
    """Keeps every batch that training samples."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.batches: list = []

    def sample(self, batch_size, env=None):
        batch = super().sample(batch_size, env)
        self.batches.append(batch)
        return batch


def test_training_samples_only_labelled_rows():
    model = SAC(
        "MlpPolicy",
        DummyVecEnv([lambda i=i: CountingEnv(i, (3, 15)) for i in range(4)]),
        reward_model=RecordingRewardModel(),
        replay_buffer_class=CheckedBuffer,
        learning_starts=10,
        batch_size=32,
        policy_kwargs={"net_arch": [8]},
        device="cpu",
    )
    buffer = model.replay_buffer
    model.learn(400)
    assert len(buffer.batches) > 50
    for batch in buffer.batches:
        # An unlabelled transition's reward is NaN; a labelled one's is the reward model's score of
        # its frame, the observation it led to.
        expected = counting_reward(batch.next_observations.numpy())
        np.testing.assert_array_equal(batch.rewards[:, 0].numpy(), expected)
    assert buffer.n_unlabelled > 0  # there was something to avoid
