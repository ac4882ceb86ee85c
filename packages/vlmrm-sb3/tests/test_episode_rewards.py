"""An episode-aware reward model (``score_episodes``) is handed each finished episode whole."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import counting_reward
from test_labelling import N_ENVS, check_buffer, counting_vec_env
from vlmrm_sb3 import DQN, SAC, EpisodeRewardFunction


class EpisodeCountingReward:
    """`counting_reward` of each frame, computed per episode; remembers the episodes of each call."""

    def __init__(self) -> None:
        self.calls: list[list[np.ndarray]] = []

    def score_episodes(self, episodes):
        self.calls.append(list(episodes))
        return [counting_reward(frames) for frames in episodes]


def test_whole_episodes_are_handed_over_and_their_rewards_land_in_their_slots():
    reward_model = EpisodeCountingReward()
    assert isinstance(reward_model, EpisodeRewardFunction) and not callable(reward_model)
    model = SAC(
        "MlpPolicy",
        counting_vec_env(),
        reward_model=reward_model,
        learning_starts=10**6,  # no training phase, so no episode is scored before it ends
        device="cpu",
    )
    model.learn(150)
    check_buffer(model.replay_buffer)
    episodes = [episode for call in reward_model.calls for episode in call]
    assert len(episodes) >= 20
    for frames in episodes:
        env_id, episode, steps = frames[:, 0], frames[:, 1], frames[:, 2]
        assert (env_id == env_id[0]).all() and (episode == episode[0]).all()
        np.testing.assert_array_equal(steps, np.arange(1, len(frames) + 1))  # whole, in step order


def test_reward_batch_size_groups_whole_episodes_and_never_splits_one():
    reward_model = EpisodeCountingReward()
    model = DQN(
        "MlpPolicy",
        counting_vec_env(lengths=(10, 10), box_actions=False),
        reward_model=reward_model,
        reward_batch_size=25,
        learning_starts=1000,
        device="cpu",
    )
    model.learn(10 * N_ENVS)
    assert [[len(frames) for frames in call] for call in reward_model.calls] == [[10, 10], [10]]
    reward_model.calls.clear()
    model.reward_batch_size = 7
    model.learn(10 * N_ENVS, reset_num_timesteps=False)
    assert [[len(frames) for frames in call] for call in reward_model.calls] == [[10]] * 3
    check_buffer(model.replay_buffer)


class WrongLengths(EpisodeCountingReward):
    def score_episodes(self, episodes):
        return [np.zeros(len(frames) + 1) for frames in episodes]


def test_rewards_of_the_wrong_length_fail_naming_the_episode_lengths():
    model = DQN(
        "MlpPolicy",
        counting_vec_env(lengths=(4, 4), box_actions=False),
        reward_model=WrongLengths(),
        learning_starts=1000,
        device="cpu",
    )
    with pytest.raises(
        ValueError, match=r"shapes \[\(5,\), \(5,\), \(5,\)\] for episodes of \[4, 4, 4\] frames"
    ):
        model.learn(4 * N_ENVS)
