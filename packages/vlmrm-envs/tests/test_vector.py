"""Subprocess vector envs: Gymnasium's AsyncVectorEnv and stable-baselines3's SubprocVecEnv."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
from conftest import PROMPTS, SIZE
from stable_baselines3.common.env_util import make_vec_env
from stable_baselines3.common.vec_env import SubprocVecEnv


def test_async_vector_humanoid_clip_env_reports_its_workers(tiny_model_spec, monkeypatch):
    # One visible GPU id: every worker is assigned EGL device 0 (the only one Mesa has here).
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "0")
    envs = gym.make_vec(
        "vlmrm/Humanoid-CLIP-v0",
        num_envs=2,
        vectorization_mode="async",
        vector_kwargs={"context": "spawn"},
        prompts=PROMPTS,
        model=tiny_model_spec,
        device="cpu",
        **SIZE,
    )
    try:
        envs.reset(seed=0)
        envs.action_space.seed(0)
        _, rewards, terminations, _, infos = envs.step(envs.action_space.sample())
        assert rewards.shape == (2,) and np.all(rewards != 0) and not terminations.any()
        assert infos["frame"].shape == (2, 64, 64, 3)
        reports = envs.get_attr("render_info")
        assert [report["worker_index"] for report in reports] == [0, 1]
        assert [report["egl_device_id"] for report in reports] == ["0", "0"]
        assert len({report["pid"] for report in reports}) == 2
        assert all(report["gl_renderer"] for report in reports)
    finally:
        envs.close()


def test_sb3_subproc_vec_env_steps_clip_envs(tiny_model_spec):
    # Spawned workers start without vlmrm_envs imported: the module-prefixed id imports it.
    envs = make_vec_env(
        "vlmrm_envs:vlmrm/MountainCarContinuous-CLIP-v0",
        n_envs=2,
        seed=0,
        vec_env_cls=SubprocVecEnv,
        vec_env_kwargs={"start_method": "spawn"},
        env_kwargs={"model": tiny_model_spec, "device": "cpu", **SIZE},
    )
    try:
        envs.reset()
        _, rewards, dones, infos = envs.step(np.zeros((2, 1), dtype=np.float32))
        assert rewards.shape == (2,) and np.all(np.abs(rewards) <= 1) and not dones.any()
        assert all(info["frame"].shape == (64, 64, 3) for info in infos)
    finally:
        envs.close()
