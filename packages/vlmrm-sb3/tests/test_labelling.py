"""Rewards land in the slots of their own transitions, with several envs whose episodes end at
different steps, across the buffer's wrap, and never get sampled before they are written."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
import torch
from conftest import CountingEnv, RecordingRewardModel, counting_reward
from gymnasium import spaces
from stable_baselines3.common.vec_env import DummyVecEnv
from vlmrm_sb3 import DQN, SAC, LabelledDictReplayBuffer, LabelledReplayBuffer

N_ENVS = 3


def counting_vec_env(lengths=(1, 9), box_actions=True) -> DummyVecEnv:
    return DummyVecEnv(
        [lambda i=i: CountingEnv(i, lengths, box_actions) for i in range(N_ENVS)]  # type: ignore[misc]
    )


def check_buffer(buffer: LabelledReplayBuffer) -> None:
    """Every labelled slot holds the reward of its own transition's frame; the unlabelled slots
    are exactly those of each env's running episode."""
    stored = buffer.buffer_size if buffer.full else buffer.pos
    assert buffer.n_unlabelled == np.count_nonzero(~buffer.labelled[:stored])
    order = (buffer.pos + np.arange(stored)) % stored if buffer.full else np.arange(stored)  # oldest first
    if buffer.optimize_memory_usage and buffer.full:
        order = order[1:]  # the oldest row's observation is already the newest next observation
    labelled, rewards = buffer.labelled[order], buffer.rewards[order]
    # The frame of the step from observation (env_id, episode, t - 1) is (env_id, episode, t).
    expected = counting_reward(buffer.observations[order].reshape(-1, 3)).reshape(len(order), N_ENVS) + 1
    np.testing.assert_array_equal(rewards[labelled], expected[labelled])
    assert np.isnan(rewards[~labelled]).all()
    for env in range(N_ENVS):
        first_unlabelled = len(order) if labelled[:, env].all() else int(np.argmin(labelled[:, env]))
        assert labelled[first_unlabelled:, env].sum() == 0, (
            f"env {env}: a labelled slot after an unlabelled one"
        )
        assert not buffer.dones[order[first_unlabelled:], env].any(), (
            f"env {env}: an ended episode unlabelled"
        )


def test_staggered_episode_ends_several_envs():
    reward_model = RecordingRewardModel()
    model = SAC(
        "MlpPolicy",
        counting_vec_env(),
        reward_model=reward_model,
        learning_starts=20,
        batch_size=8,
        policy_kwargs={"net_arch": [8]},
        seed=0,
        device="cpu",
    )
    model.learn(150)
    buffer = model.replay_buffer
    dones = buffer.dones[: buffer.pos]
    assert (dones.sum(axis=0) >= 5).all()
    assert (dones.any(axis=1) & ~dones.all(axis=1)).sum() >= 10  # steps where only some envs' episodes end
    check_buffer(buffer)
    # Each frame scored once, when its episode ended.
    assert sum(reward_model.call_sizes) == N_ENVS * buffer.pos - buffer.n_unlabelled
    assert torch.isfinite(torch.cat([p.flatten() for p in model.policy.parameters()])).all()


def test_episodes_ending_together_are_scored_in_one_call_of_at_most_reward_batch_size():
    reward_model = RecordingRewardModel()
    model = DQN(
        "MlpPolicy",
        counting_vec_env(lengths=(10, 10), box_actions=False),
        reward_model=reward_model,
        learning_starts=1000,
        device="cpu",
    )
    model.learn(30 * N_ENVS)
    assert reward_model.call_sizes == [10 * N_ENVS] * 3

    reward_model.call_sizes.clear()
    model.reward_batch_size = 7
    model.learn(10 * N_ENVS, reset_num_timesteps=False)
    assert reward_model.call_sizes == [7, 7, 7, 7, 2]
    check_buffer(model.replay_buffer)


@pytest.mark.parametrize(
    ("optimize_memory_usage", "learning_starts"),
    # Without training no running episode is scored early, so slots get overwritten while pending.
    [(False, 5), (True, 5), (False, 10**6)],
)
def test_buffer_wrap_around_with_episodes_longer_than_the_buffer(optimize_memory_usage, learning_starts):
    reward_model = RecordingRewardModel()
    model = SAC(
        "MlpPolicy",
        counting_vec_env(lengths=(1, 12)),
        reward_model=reward_model,
        buffer_size=7 * N_ENVS,  # 7 rows: some episodes outlive their first transitions' slots
        optimize_memory_usage=optimize_memory_usage,
        replay_buffer_kwargs={"handle_timeout_termination": not optimize_memory_usage},
        learning_starts=learning_starts,
        batch_size=8,
        policy_kwargs={"net_arch": [8]},
        seed=1,
        device="cpu",
    )
    for _ in range(4):  # the check after several wraps, landing at different positions
        model.learn(23 * N_ENVS, reset_num_timesteps=False)
        buffer = model.replay_buffer
        assert buffer.full
        check_buffer(buffer)
    assert buffer.rows_added == 4 * 23
    assert torch.isfinite(torch.cat([p.flatten() for p in model.policy.parameters()])).all()


def test_dict_observations():
    class DictCounting(gym.ObservationWrapper):
        def __init__(self, env: gym.Env) -> None:
            super().__init__(env)
            self.observation_space = spaces.Dict({"state": env.observation_space})

        def observation(self, observation: np.ndarray) -> dict:
            return {"state": observation}

    env = DummyVecEnv([lambda i=i: DictCounting(CountingEnv(i)) for i in range(N_ENVS)])
    model = SAC(
        "MultiInputPolicy", env, reward_model=counting_reward, learning_starts=10, batch_size=8, device="cpu"
    )
    model.learn(30 * N_ENVS)
    buffer = model.replay_buffer
    assert isinstance(buffer, LabelledDictReplayBuffer)
    labelled = buffer.labelled[: buffer.pos]
    expected = (
        counting_reward(buffer.observations["state"][: buffer.pos].reshape(-1, 3)).reshape(-1, N_ENVS) + 1
    )
    np.testing.assert_array_equal(buffer.rewards[: buffer.pos][labelled], expected[labelled])
    assert labelled.sum() > 2 * N_ENVS * 10
