"""Constructor checks, clear errors, save/load, continued learning, callbacks and logging."""

from __future__ import annotations

import csv
import threading
import zipfile

import gymnasium as gym
import numpy as np
import pytest
import stable_baselines3 as sb3
import torch
from conftest import CountingEnv, RewardInFrame, reward_in_frame
from stable_baselines3 import HerReplayBuffer
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.logger import configure
from stable_baselines3.common.monitor import Monitor
from stable_baselines3.common.vec_env import DummyVecEnv, VecNormalize
from vlmrm_sb3 import DQN, SAC, TD3, LabelledReplayBuffer


def small() -> dict:
    """Small-network settings; a new dict each time, since SB3 adds keys to policy_kwargs in place."""
    return {"policy_kwargs": {"net_arch": [8]}, "batch_size": 8, "device": "cpu"}


def pendulum(max_episode_steps: int = 10) -> gym.Env:
    return RewardInFrame(gym.make("Pendulum-v1", max_episode_steps=max_episode_steps))


class UnpicklableRewardModel:
    """Like a RewardModel holding GPUs and threads: it cannot be pickled."""

    def __init__(self) -> None:
        self.lock = threading.Lock()

    def __call__(self, frames: np.ndarray) -> np.ndarray:
        return reward_in_frame(frames)


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"reward_model": "ViT-B-32"}, TypeError, "reward_model must be callable"),
        ({"reward_batch_size": 0}, ValueError, "reward_batch_size must be positive"),
        ({"reward_batch_size": 2.5}, TypeError, "reward_batch_size must be an int"),
        ({"n_steps": 3}, ValueError, "n_steps=3 is not supported"),
        ({"replay_buffer_class": HerReplayBuffer}, ValueError, "HerReplayBuffer is not supported"),
    ],
)
def test_bad_arguments(kwargs, error, match):
    with pytest.raises(error, match=match):
        SAC("MlpPolicy", pendulum(), **{"reward_model": reward_in_frame, **kwargs})


def test_env_without_frames_fails_at_the_first_step():
    model = SAC("MlpPolicy", gym.make("Pendulum-v1"), reward_model=reward_in_frame, **small())
    with pytest.raises(ValueError, match=r"env 0 gave no info\['frame'\]"):
        model.learn(5)
    assert model.replay_buffer.pos == 0


def test_learning_without_reward_model_or_with_reward_normalisation_fails():
    with pytest.raises(ValueError, match="reward_model is None"):
        SAC("MlpPolicy", pendulum(), **small()).learn(5)
    env = VecNormalize(DummyVecEnv([pendulum]), norm_reward=True)
    with pytest.raises(ValueError, match="norm_reward=True"):
        SAC("MlpPolicy", env, reward_model=reward_in_frame, **small()).learn(5)
    SAC(
        "MlpPolicy", VecNormalize(DummyVecEnv([pendulum]), norm_reward=False), reward_model=reward_in_frame
    ).learn(5)


def test_reward_model_of_the_wrong_shape_fails():
    model = SAC("MlpPolicy", pendulum(), reward_model=lambda frames: frames, **small())
    with pytest.raises(
        ValueError, match=r"reward_model returned shape \(10, 1\) for 10 frames; expected \(10,\)"
    ):
        model.learn(10)


def test_save_and_load_round_trip(tmp_path):
    model = SAC(
        "MlpPolicy", pendulum(), reward_model=UnpicklableRewardModel(), reward_batch_size=4, seed=0, **small()
    )
    model.learn(25)  # ends inside an episode: frames are held
    assert model.held_frames[0] == 5
    model.save(tmp_path / "sac")
    with zipfile.ZipFile(tmp_path / "sac.zip") as archive:
        data = archive.read("data").decode()
    assert '"reward_model"' not in data and '"_episodes"' not in data and '"reward_batch_size": 4' in data

    evaluation_only = SAC.load(tmp_path / "sac", device="cpu")
    assert evaluation_only.reward_model is None and evaluation_only.reward_batch_size == 4
    observation = np.zeros(3, dtype=np.float32)
    assert np.array_equal(
        evaluation_only.predict(observation, deterministic=True)[0],
        model.predict(observation, deterministic=True)[0],
    )
    for name, parameter in model.policy.state_dict().items():
        assert torch.equal(parameter, evaluation_only.policy.state_dict()[name])

    loaded = SAC.load(tmp_path / "sac", env=pendulum(), reward_model=reward_in_frame, device="cpu")
    assert loaded.reward_model is reward_in_frame
    loaded.learn(35, reset_num_timesteps=False)  # in a new buffer (not saved) and a reset env
    assert loaded.num_timesteps == 60 and loaded.replay_buffer.rows_added == 35
    assert loaded.replay_buffer.n_unlabelled == 5


def test_replay_buffer_round_trip_is_fully_labelled(tmp_path):
    model = SAC("MlpPolicy", pendulum(), reward_model=reward_in_frame, **small())
    model.learn(25)
    assert model.replay_buffer.n_unlabelled == 5
    model.save_replay_buffer(tmp_path / "buffer.pkl")  # scores the running episode first
    assert model.replay_buffer.n_unlabelled == 0 and model.held_frames[0] == 0
    saved = model.replay_buffer.rewards[:25, 0].copy()
    assert np.isfinite(saved).all()

    model.load_replay_buffer(tmp_path / "buffer.pkl")
    assert isinstance(model.replay_buffer, LabelledReplayBuffer) and model.replay_buffer.rows_added == 25
    np.testing.assert_array_equal(model.replay_buffer.rewards[:25, 0], saved)
    model.learn(15, reset_num_timesteps=False)
    assert model.replay_buffer.n_unlabelled == 0  # the episode ended at step 30 and at step 40

    stock = sb3.SAC("MlpPolicy", pendulum(), **small())
    stock.learn(3)
    stock.save_replay_buffer(tmp_path / "stock.pkl")
    previous = model.replay_buffer
    with pytest.raises(TypeError, match="is a ReplayBuffer, not a vlmrm_sb3 labelled buffer"):
        model.load_replay_buffer(tmp_path / "stock.pkl")
    assert model.replay_buffer is previous


def test_episode_spanning_two_learn_calls_is_scored_whole():
    model = TD3("MlpPolicy", pendulum(max_episode_steps=10), reward_model=reward_in_frame, **small())
    model.learn(15)
    assert model.replay_buffer.n_unlabelled == 5
    model.learn(5, reset_num_timesteps=False)  # the same episode goes on and ends
    buffer = model.replay_buffer
    assert buffer.n_unlabelled == 0
    assert model.reward_returns[-1] == pytest.approx(buffer.rewards[10:20, 0].sum(), rel=1e-6)
    assert len(model.reward_returns) == 2

    model.learn(5, reset_num_timesteps=False)
    assert buffer.n_unlabelled == 5
    model.learn(15)  # reset_num_timesteps=True: SB3 resets the env; the cut episode is scored
    assert buffer.n_unlabelled == 5 and np.isfinite(buffer.rewards[:35]).all()
    assert len(model.reward_returns) == 1  # statistics restart with the counters, as SB3's


def test_callbacks_see_every_step_and_can_stop_training():
    class StopAt(BaseCallback):
        def __init__(self, stop_at: int) -> None:
            super().__init__()
            self.stop_at, self.calls = stop_at, 0

        def _on_step(self) -> bool:
            self.calls += 1
            assert "infos" in self.locals and "frame" in self.locals["infos"][0]
            return self.num_timesteps < self.stop_at

    results = []
    for algorithm, kwargs in ((sb3.DQN, {}), (DQN, {"reward_model": reward_in_frame})):
        env = RewardInFrame(gym.make("CartPole-v1"))
        model = algorithm("MlpPolicy", env, learning_starts=5, seed=0, **small(), **kwargs)
        callback = StopAt(37)
        model.learn(100, callback=callback)
        results.append((callback.calls, model.num_timesteps, model.replay_buffer.pos))
    assert results[0] == results[1] == (37, 37, 36)  # the stopping step is not stored, as in SB3


def test_logging(tmp_path):
    env = DummyVecEnv([lambda i=i: Monitor(CountingEnv(i, (4, 4))) for i in range(2)])
    model = SAC(
        "MlpPolicy", env, reward_model=lambda frames: np.ones(len(frames)), learning_starts=1000, **small()
    )
    model.set_logger(configure(str(tmp_path), ["csv"]))
    model.learn(40, log_interval=1)
    with open(tmp_path / "progress.csv") as file:
        rows = list(csv.DictReader(file))
    assert len(rows) == 10  # one dump per episode end in either env (log_interval=1)
    for row in rows:
        assert float(row["rollout/clip_ep_rew_mean"]) == 4.0
        assert float(row["rollout/original_ep_rew_mean"]) == -4.0
        assert float(row["rollout/ep_rew_mean"]) == 0.0  # the env's own (deferred) reward
        assert float(row["reward_model/frames_per_second"]) > 0 and float(row["reward_model/seconds"]) > 0
    assert [int(row["reward_model/frames"]) for row in rows] == [8, 8, 16, 16, 24, 24, 32, 32, 40, 40]
