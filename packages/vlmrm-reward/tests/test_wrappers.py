"""The Gymnasium wrappers on real CartPole envs, rendering rgb_array frames."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.vector import AutoresetMode
from gymnasium.wrappers import RecordEpisodeStatistics
from vlmrm_reward import CLIPReward, VectorCLIPReward


def make_cartpole(**kwargs) -> gym.Env:
    return gym.make("CartPole-v1", render_mode="rgb_array", **kwargs)


def test_step_reward_is_the_clip_reward_of_the_frame_after_the_step(reward_model):
    env = CLIPReward(make_cartpole(), reward_model)
    env.reset(seed=0)
    _, reward, _, _, info = env.step(1)
    assert info["original_reward"] == 1.0
    assert info["frame"].shape == (400, 600, 3) and info["frame"].dtype == np.uint8
    np.testing.assert_array_equal(info["frame"], env.render())
    assert reward == pytest.approx(float(reward_model(info["frame"])[0]))
    env.close()


def test_deferred_scoring_only_renders(reward_model):
    env = CLIPReward(make_cartpole(), None, defer=True)
    env.reset(seed=0)
    _, reward, _, _, info = env.step(0)
    assert reward == 0.0 and info["frame"].any()


def test_wrapper_refuses_an_env_that_does_not_render_frames(reward_model):
    with pytest.raises(ValueError, match="render_mode='rgb_array'"):
        CLIPReward(gym.make("CartPole-v1"), reward_model)
    with pytest.raises(ValueError, match="reward_model is None"):
        CLIPReward(make_cartpole(), None)


def test_documented_statistics_placement_shows_clip_and_ground_truth_returns(reward_model):
    env = RecordEpisodeStatistics(make_cartpole(max_episode_steps=5), stats_key="original_episode")
    env = RecordEpisodeStatistics(CLIPReward(env, reward_model))
    env.reset(seed=0)
    clip_return, done = 0.0, False
    while not done:
        _, reward, terminated, truncated, info = env.step(env.action_space.sample())
        clip_return += reward
        done = terminated or truncated
    assert info["episode"]["r"] == pytest.approx(clip_return, rel=1e-6)
    assert info["original_episode"]["r"] == info["original_episode"]["l"]  # CartPole: 1 per step
    assert clip_return != info["original_episode"]["r"]


def test_vector_wrapper_scores_terminal_frames_and_skips_autoreset_steps(reward_model):
    lengths = [3, 5]
    envs = gym.vector.SyncVectorEnv([lambda n=n: make_cartpole(max_episode_steps=n) for n in lengths])
    env = VectorCLIPReward(envs, reward_model)
    env.reset(seed=[0, 1])
    # Replay sub-env 0 alone to know what its terminal frame must look like.
    single = make_cartpole(max_episode_steps=lengths[0])
    single.reset(seed=0)
    for step in range(1, 5):
        _, rewards, _, truncations, info = env.step(np.array([1, 1]))
        if step <= lengths[0]:
            single.step(1)
        if step == lengths[0]:
            assert truncations[0] and not truncations[1]
            np.testing.assert_array_equal(info["frame"][0], single.render())
            assert rewards[0] == pytest.approx(float(reward_model(single.render())[0]), abs=1e-6)
        if step == lengths[0] + 1:  # sub-env 0 only resets on this step: not a transition
            assert rewards[0] == 0.0 and not info["_frame"][0]
            assert info["_frame"][1] and rewards[1] == pytest.approx(
                float(reward_model(info["frame"][1])[0]), abs=1e-6
            )
        np.testing.assert_array_equal(info["original_reward"][info["_frame"]], 1.0)
    env.close()


def test_vector_wrapper_refuses_same_step_autoreset(reward_model):
    envs = gym.vector.SyncVectorEnv([make_cartpole], autoreset_mode=AutoresetMode.SAME_STEP)
    with pytest.raises(ValueError, match="SAME_STEP"):
        VectorCLIPReward(envs, reward_model)
