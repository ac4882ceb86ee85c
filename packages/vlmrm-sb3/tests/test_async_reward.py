"""async_reward=True: the reward model runs on a background thread, and training is exactly that of
synchronous scoring; errors reach learn(); the thread never outlives learn()."""

from __future__ import annotations

import threading
import time
import zipfile
from collections.abc import Callable

import numpy as np
import pytest
import torch
from conftest import CountingEnv, counting_reward, record_logs
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.vec_env import DummyVecEnv
from vlmrm_sb3 import DQN, SAC
from vlmrm_sb3.algorithms import SCORING_THREAD_PREFIX

BUFFER_FIELDS = ("observations", "next_observations", "actions", "rewards", "dones", "timeouts", "labelled")


class SlowReward:
    """A bounded function of (env_id, episode, t), slow enough that the envs step on while it runs;
    remembers the size and the thread of every call."""

    def __init__(self, seconds: float = 0.002) -> None:
        self.seconds = seconds
        self.calls: list[tuple[int, str]] = []

    def __call__(self, frames: np.ndarray) -> np.ndarray:
        self.calls.append((len(frames), threading.current_thread().name))
        time.sleep(self.seconds)
        return np.sin(counting_reward(frames))


def scoring_threads() -> list[threading.Thread]:
    return [thread for thread in threading.enumerate() if thread.name.startswith(SCORING_THREAD_PREFIX)]


def counting_envs(
    n_envs: int = 4, lengths: tuple[int, int] = (1, 9), box_actions: bool = True
) -> DummyVecEnv:
    """Episodes of random lengths: they end at different steps in different envs."""
    return DummyVecEnv([lambda i=i: CountingEnv(i, lengths, box_actions) for i in range(n_envs)])


def small(**kwargs) -> dict:
    return {"policy_kwargs": {"net_arch": [8]}, "batch_size": 8, "device": "cpu", **kwargs}


def train(algorithm: type, async_reward: bool, box_actions: bool) -> tuple:
    reward_model = SlowReward()
    model = algorithm(
        "MlpPolicy",
        counting_envs(box_actions=box_actions),
        reward_model=reward_model,
        reward_batch_size=5,
        async_reward=async_reward,
        buffer_size=200,  # 50 rows: the buffer wraps, overwriting transitions while they are pending
        learning_starts=8,
        train_freq=5,  # vector steps between gradient phases, over which scoring overlaps stepping
        gradient_steps=3,
        seed=5,
        **small(),
    )
    logs = record_logs(model)
    model.learn(300)
    assert not scoring_threads()
    model.learn(100, reset_num_timesteps=False)  # the running episodes go on
    model.learn(60)  # SB3 resets the envs: the cut episodes are scored
    assert not scoring_threads()
    return model, logs, reward_model


@pytest.mark.parametrize(("algorithm", "box_actions"), [(SAC, True), (DQN, False)], ids=["SAC", "DQN"])
def test_async_training_matches_synchronous(algorithm, box_actions):
    sync, sync_logs, sync_reward = train(algorithm, async_reward=False, box_actions=box_actions)
    async_, async_logs, async_reward = train(algorithm, async_reward=True, box_actions=box_actions)

    assert {thread for _, thread in sync_reward.calls} == {"MainThread"}
    assert any(thread.startswith(SCORING_THREAD_PREFIX) for _, thread in async_reward.calls)
    assert [size for size, _ in async_reward.calls] == [size for size, _ in sync_reward.calls]

    sync_buffer, async_buffer = sync.replay_buffer, async_.replay_buffer
    assert sync_buffer.full and async_buffer.rows_added == sync_buffer.rows_added
    assert async_buffer.pos == sync_buffer.pos and async_buffer.n_unlabelled == sync_buffer.n_unlabelled
    assert async_.pending_scores == 0
    for name in BUFFER_FIELDS:  # unlabelled rewards are NaN in both; assert_array_equal matches NaNs
        np.testing.assert_array_equal(getattr(async_buffer, name), getattr(sync_buffer, name), err_msg=name)

    assert async_.reward_returns == sync.reward_returns != []
    assert async_.original_returns == sync.original_returns != []
    assert async_.reward_frames == sync.reward_frames > 0
    assert async_logs.latest["train/n_updates"] == sync_logs.latest["train/n_updates"] > 0
    sync_parameters, async_parameters = sync.policy.state_dict(), async_.policy.state_dict()
    for name, parameter in sync_parameters.items():
        assert torch.equal(parameter, async_parameters[name]), name


class FailingReward:
    """Scores its first `good_calls` calls, then raises (and sets `failed` just before).

    `failed_at` is the step count (`step_count()`) when it failed."""

    def __init__(self, good_calls: int) -> None:
        self.good_calls = good_calls
        self.failed = threading.Event()
        self.error = RuntimeError("reward model broke")
        self.step_count: Callable[[], int] = lambda: -1
        self.failed_at: int | None = None

    def __call__(self, frames: np.ndarray) -> np.ndarray:
        if self.good_calls == 0:
            self.failed_at = self.step_count()
            self.failed.set()
            raise self.error
        self.good_calls -= 1
        return counting_reward(frames)


class WaitOnFailure(BaseCallback):
    """Once it sees the reward model's failure, waits for the scoring thread to finish the failed
    call, so that this step's poll must find it."""

    def __init__(self, reward_model: FailingReward) -> None:
        super().__init__()
        self.reward_model = reward_model
        self.waited = False

    def _on_step(self) -> bool:
        if not self.waited and self.reward_model.failed.is_set():
            self.waited = True
            assert self.model.wait_for_scoring(timeout=60)
        return True


def test_reward_model_error_is_raised_by_learn_at_the_next_step():
    reward_model = FailingReward(good_calls=2)
    model = SAC(
        "MlpPolicy",
        counting_envs(n_envs=2, lengths=(3, 3)),
        reward_model=reward_model,
        async_reward=True,
        learning_starts=10**6,  # no gradient phase: only the per-step poll can find the error
        **small(),
    )
    reward_model.step_count = lambda: model.num_timesteps
    with pytest.raises(RuntimeError, match="reward model broke") as raised:
        model.learn(10**5, callback=WaitOnFailure(reward_model))
    assert raised.value is reward_model.error
    # Raised by the poll of the vector step during which the scoring thread failed, or by the next
    # one's (a failure after this step's poll); never later.
    assert reward_model.failed_at is not None
    assert model.num_timesteps - reward_model.failed_at in (0, model.n_envs)
    assert not scoring_threads() and model.pending_scores == 0 and not model.has_scoring_thread


def test_reward_model_error_is_raised_by_learn_before_training():
    reward_model = FailingReward(good_calls=1)  # the first call scores the running episode at step 1
    model = SAC(
        "MlpPolicy",
        counting_envs(n_envs=1, lengths=(5, 5)),
        reward_model=reward_model,
        async_reward=True,
        learning_starts=0,
        **small(),
    )
    logs = record_logs(model)
    with pytest.raises(RuntimeError, match="reward model broke") as raised:
        model.learn(10**5)
    assert raised.value is reward_model.error
    assert model.num_timesteps == 5  # the first episode end; no gradient step read its rewards
    assert logs.latest["train/n_updates"] == 4 and not scoring_threads()

    # learn() goes on with a working model; the dropped episode's transitions are never sampled.
    model.reward_model = counting_reward
    model.learn(10, reset_num_timesteps=False)
    assert model.replay_buffer.n_unlabelled == 4 and not scoring_threads()  # steps 2 to 5


def test_save_during_learn_applies_pending_scores_and_pickles_no_thread(tmp_path):
    class SaveWhilePending(BaseCallback):
        def __init__(self) -> None:
            super().__init__()
            self.saved_with_pending = 0

        def _on_step(self) -> bool:
            if self.model.pending_scores and not self.saved_with_pending:
                self.saved_with_pending = self.model.pending_scores
                self.model.save(tmp_path / "sac")
                assert self.model.pending_scores == 0
                self.model.save_replay_buffer(tmp_path / "buffer.pkl")
                assert self.model.replay_buffer.n_unlabelled == 0
            return True

    model = SAC(
        "MlpPolicy",
        counting_envs(),
        reward_model=SlowReward(seconds=0.05),
        async_reward=True,
        learning_starts=10**6,
        **small(),
    )
    callback = SaveWhilePending()
    model.learn(80, callback=callback)
    assert callback.saved_with_pending > 0
    with zipfile.ZipFile(tmp_path / "sac.zip") as archive:
        data = archive.read("data").decode()
    assert '"async_reward": true' in data
    assert "_scoring_executor" not in data and "_pending_scores" not in data

    loaded = SAC.load(tmp_path / "sac", env=counting_envs(), reward_model=SlowReward(), device="cpu")
    assert loaded.async_reward and not loaded.has_scoring_thread and loaded.pending_scores == 0
    loaded.learn(40)
    assert any(thread.startswith(SCORING_THREAD_PREFIX) for _, thread in loaded.reward_model.calls)
    assert not scoring_threads()


def test_async_reward_must_be_a_bool():
    with pytest.raises(TypeError, match="async_reward must be a bool, got int"):
        SAC("MlpPolicy", counting_envs(), reward_model=counting_reward, async_reward=1)


def test_tiny_clip_async_matches_synchronous(tiny_model_spec):
    """The real thing: a RewardModel (itself threaded) called from the scoring thread."""
    import gymnasium as gym
    from vlmrm_reward import CLIPReward, load_reward_model

    reward_model = load_reward_model(tiny_model_spec, target_prompts=["a pendulum pointing up"])

    def make_env(length: int):
        env = gym.make("Pendulum-v1", render_mode="rgb_array", max_episode_steps=length)
        return CLIPReward(env, reward_model, defer=True)

    models = []
    for async_reward in (False, True):
        envs = DummyVecEnv([lambda length=length: make_env(length) for length in (7, 11)])
        model = SAC(
            "MlpPolicy",
            envs,
            reward_model=reward_model,
            async_reward=async_reward,
            learning_starts=10,
            seed=1,
            **small(),
        )
        model.learn(60, reset_num_timesteps=False)
        models.append(model)
    reward_model.close()

    sync_buffer, async_buffer = models[0].replay_buffer, models[1].replay_buffer
    assert async_buffer.n_unlabelled == sync_buffer.n_unlabelled > 0  # the running episodes
    for name in BUFFER_FIELDS:
        np.testing.assert_array_equal(getattr(async_buffer, name), getattr(sync_buffer, name), err_msg=name)
    for name, parameter in models[0].policy.state_dict().items():
        assert torch.equal(parameter, models[1].policy.state_dict()[name]), name
    assert not scoring_threads()
