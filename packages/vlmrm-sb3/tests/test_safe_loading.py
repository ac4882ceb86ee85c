"""Saved models and replay buffers load without running code they might carry."""

from __future__ import annotations

import base64
import json
import pathlib
import pickle
import zipfile

import gymnasium as gym
import numpy as np
import pytest
from conftest import RewardInFrame, reward_in_frame
from stable_baselines3.common.noise import NormalActionNoise
from vlmrm_sb3 import DQN, QRDQN, SAC, TD3, TQC
from vlmrm_sb3.safe_loading import UnsafePickleError, load_pickle


def _env(discrete: bool) -> gym.Env:
    return RewardInFrame(gym.make("CartPole-v1" if discrete else "Pendulum-v1", max_episode_steps=10))


ALGORITHMS = [
    (SAC, {"ent_coef": "auto"}),
    (TD3, {"action_noise": NormalActionNoise(np.zeros(1), np.full(1, 0.1))}),
    (TQC, {}),
    (DQN, {"exploration_fraction": 0.5}),
    (QRDQN, {}),
]


@pytest.mark.parametrize(("cls", "kwargs"), ALGORITHMS, ids=[cls.__name__ for cls, _ in ALGORITHMS])
def test_every_algorithm_saves_and_loads_through_the_restricted_unpickler(cls, kwargs, tmp_path) -> None:
    env = _env(discrete=cls in (DQN, QRDQN))
    model = cls(
        "MlpPolicy", env, reward_model=reward_in_frame, learning_starts=5, batch_size=4, seed=0, **kwargs
    )
    model.learn(30)
    model.save(tmp_path / "model")
    model.save_replay_buffer(tmp_path / "buffer")
    loaded = cls.load(tmp_path / "model", env=env, reward_model=reward_in_frame, device="cpu")
    loaded.load_replay_buffer(tmp_path / "buffer")
    assert (
        loaded.num_timesteps == model.num_timesteps
        and loaded.replay_buffer.size() == model.replay_buffer.size()
    )
    np.testing.assert_array_equal(loaded.replay_buffer.rewards, model.replay_buffer.rewards)
    loaded.learn(10, reset_num_timesteps=False)


class _RunsCode:
    def __init__(self, marker: pathlib.Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (pathlib.Path.touch, (self.marker,))


def test_a_model_zip_that_would_run_code_is_refused_unrun(tmp_path) -> None:
    env = _env(discrete=False)
    SAC("MlpPolicy", env, reward_model=reward_in_frame, seed=0).save(tmp_path / "model.zip")
    marker = tmp_path / "code-ran"
    with zipfile.ZipFile(tmp_path / "model.zip") as archive:
        entries = {name: archive.read(name) for name in archive.namelist()}
    data = json.loads(entries["data"])
    data["observation_space"][":serialized:"] = base64.b64encode(pickle.dumps(_RunsCode(marker))).decode()
    entries["data"] = json.dumps(data).encode()
    with zipfile.ZipFile(tmp_path / "model.zip", "w") as archive:
        for name, content in entries.items():
            archive.writestr(name, content)

    with pytest.raises(UnsafePickleError, match=r"observation_space: refused pathlib.*Path.touch"):
        SAC.load(tmp_path / "model.zip", reward_model=reward_in_frame)
    assert not marker.exists()


def test_a_replay_buffer_that_would_run_code_is_refused_unrun(tmp_path) -> None:
    model = SAC("MlpPolicy", _env(discrete=False), reward_model=reward_in_frame, seed=0)
    marker = tmp_path / "code-ran"
    (tmp_path / "buffer.pkl").write_bytes(pickle.dumps({"buffer": _RunsCode(marker)}))
    with pytest.raises(UnsafePickleError, match="refused"):
        model.load_replay_buffer(tmp_path / "buffer.pkl")
    assert not marker.exists()


@pytest.mark.parametrize(
    "payload",
    [
        b"cbuiltins\ngetattr\n.",  # the usual first step of a pickle exploit
        b"cos\nsystem\n.",
        b"cantigravity\nfly\n.",  # a module not imported: never imported by unpickling
    ],
)
def test_dangerous_names_are_refused(payload: bytes, tmp_path) -> None:
    (tmp_path / "file.pkl").write_bytes(payload)
    with pytest.raises(UnsafePickleError, match="refused"):
        load_pickle(tmp_path / "file.pkl")


def test_paths_without_their_suffix_load_as_sb3_finds_them(tmp_path) -> None:
    """SB3 appends ".zip" / ".pkl" to a path that does not exist; so does the safety check, so it
    checks the very file SB3 then loads (not "run.zip" for "run.v1")."""
    env = _env(discrete=False)
    model = SAC("MlpPolicy", env, reward_model=reward_in_frame, learning_starts=5, batch_size=4, seed=0)
    model.learn(20)
    model.save(tmp_path / "run.v1.zip")
    model.save_replay_buffer(tmp_path / "run.v1.pkl")
    (tmp_path / "run.zip").write_bytes(b"not a checkpoint")
    (tmp_path / "run.pkl").write_bytes(b"cos\nsystem\n.")
    loaded = SAC.load(tmp_path / "run.v1", env=env, reward_model=reward_in_frame, device="cpu")
    loaded.load_replay_buffer(tmp_path / "run.v1")
    assert loaded.replay_buffer.size() == model.replay_buffer.size() == 20


def test_a_policy_pth_that_would_run_code_is_refused_unrun_naming_it(tmp_path) -> None:
    import io

    import torch

    env = _env(discrete=False)
    SAC("MlpPolicy", env, reward_model=reward_in_frame, seed=0).save(tmp_path / "model.zip")
    marker = tmp_path / "code-ran"
    with zipfile.ZipFile(tmp_path / "model.zip") as archive:
        entries = {name: archive.read(name) for name in archive.namelist()}
    tampered = io.BytesIO()
    torch.save({"weights": _RunsCode(marker)}, tampered)
    entries["policy.pth"] = tampered.getvalue()
    with zipfile.ZipFile(tmp_path / "model.zip", "w") as archive:
        for name, content in entries.items():
            archive.writestr(name, content)

    with pytest.raises(UnsafePickleError, match=r"^policy.pth: refused by torch's weights-only loader"):
        SAC.load(tmp_path / "model.zip", reward_model=reward_in_frame)
    assert not marker.exists()


class _Allocates:
    """Names only allowed callables, but asks one of them for gigabytes."""

    def __init__(self, function, *args) -> None:
        self.function, self.args = function, args

    def __reduce__(self):
        return (self.function, self.args)


@pytest.mark.parametrize(
    "payload",
    [
        _Allocates(bytearray, 300_000_000),  # 300 MB here; a file may ask for any size
        _Allocates(
            np.zeros(1).__reduce__()[0], np.ndarray, (10**11,), b"b"
        ),  # numpy's _reconstruct  # 100 GB
    ],
    ids=["bytearray", "numpy-reconstruct"],
)
def test_a_pickle_that_would_allocate_gigabytes_is_refused_before_allocating(payload, tmp_path) -> None:
    (tmp_path / "buffer.pkl").write_bytes(pickle.dumps({"buffer": payload}, protocol=4))
    with pytest.raises(UnsafePickleError, match=r"refused .*: would allocate"):
        load_pickle(tmp_path / "buffer.pkl")
