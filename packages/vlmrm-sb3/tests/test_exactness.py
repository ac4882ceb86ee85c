"""With a reward model that returns the env's own reward, one env, train_freq=(1, "episode") and the
same seed, training is bit-for-bit that of the stock algorithm: same replay buffer, same weights."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
import sb3_contrib
import stable_baselines3 as sb3
import torch
import vlmrm_sb3
from conftest import RewardInFrame, record_logs, reward_in_frame

CONTINUOUS = {"env_id": "Pendulum-v1", "max_episode_steps": 20, "total_timesteps": 100}
DISCRETE = {"env_id": "CartPole-v1", "max_episode_steps": 40, "total_timesteps": 300}

CASES = [
    (sb3.SAC, vlmrm_sb3.SAC, CONTINUOUS),
    (sb3.TD3, vlmrm_sb3.TD3, CONTINUOUS),
    (sb3_contrib.TQC, vlmrm_sb3.TQC, CONTINUOUS),
    (sb3.DQN, vlmrm_sb3.DQN, DISCRETE),
    (sb3_contrib.QRDQN, vlmrm_sb3.QRDQN, DISCRETE),
]


def train(algorithm: type, setting: dict, **kwargs) -> tuple:
    env = RewardInFrame(gym.make(setting["env_id"], max_episode_steps=setting["max_episode_steps"]))
    model = algorithm(
        "MlpPolicy",
        env,
        seed=3,
        train_freq=(1, "episode"),
        gradient_steps=-1,  # as many as the episode had steps: many samples per episode
        learning_starts=30,
        batch_size=16,
        policy_kwargs={"net_arch": [16, 16]},
        device="cpu",
        **kwargs,
    )
    logs = record_logs(model)
    model.learn(setting["total_timesteps"])
    _, keys, position, *_ = np.random.get_state()
    return model, logs, (keys.copy(), position), torch.get_rng_state()


@pytest.mark.parametrize(("stock_class", "our_class", "setting"), CASES, ids=[c[0].__name__ for c in CASES])
def test_matches_stock_algorithm(stock_class, our_class, setting):
    stock, stock_logs, stock_np_state, stock_torch_state = train(stock_class, setting)
    ours, our_logs, our_np_state, our_torch_state = train(
        our_class, setting, reward_model=reward_in_frame, reward_batch_size=7
    )

    stock_buffer, our_buffer = stock.replay_buffer, ours.replay_buffer
    assert our_buffer.pos == stock_buffer.pos > 0
    assert our_buffer.n_unlabelled == 0  # episode train_freq: learning stops at an episode end
    for name in ("observations", "next_observations", "actions", "rewards", "dones", "timeouts"):
        np.testing.assert_array_equal(getattr(our_buffer, name), getattr(stock_buffer, name), err_msg=name)

    stock_parameters, our_parameters = stock.policy.state_dict(), ours.policy.state_dict()
    assert stock_parameters.keys() == our_parameters.keys()
    for name, parameter in stock_parameters.items():
        assert torch.equal(parameter, our_parameters[name]), name
    assert our_logs.latest["train/n_updates"] == stock_logs.latest["train/n_updates"] > 0
    # No extra random numbers drawn, anywhere.
    np.testing.assert_array_equal(our_np_state[0], stock_np_state[0])
    assert our_np_state[1] == stock_np_state[1]
    assert torch.equal(our_torch_state, stock_torch_state)
