"""The envs of a run: CLIP ids and plain ids alike defer their reward; each worker renders on its GPU."""

from __future__ import annotations

import pytest
from vlmrm_cli.config import Config
from vlmrm_cli.envs import close_vec_env, make_env, make_vec_env


@pytest.mark.parametrize("env_name", ["vlmrm/CartPole-CLIP-v0", "vlmrm/CartPole-v0", "CartPole-v1"])
def test_every_id_renders_and_defers_its_reward(env_name, make_config):
    config = Config.model_validate(make_config(env_name=env_name))
    env = make_env(config)
    env.reset(seed=0)
    _, reward, _, _, info = env.step(0)
    assert reward == 0.0 and info["frame"].ndim == 3
    assert env.get_wrapper_attr("defer") is True
    env.close()


def test_subprocess_workers_render_on_the_gpu_their_index_gives(make_config, monkeypatch):
    # One visible GPU id: each worker is given EGL device 0 (the only one Mesa has here).
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "0")
    monkeypatch.delenv("MUJOCO_EGL_DEVICE_ID", raising=False)
    raw = make_config(env_name="vlmrm/Humanoid-v0", render={"width": 32, "height": 32})
    raw["rl"] = {**raw["rl"], "vec_env": "subproc", "n_envs_per_worker": 2}
    config = Config.model_validate(raw)
    vec_env = make_vec_env(config)
    try:
        vec_env.reset()
        vec_env.step([vec_env.action_space.sample() for _ in range(vec_env.num_envs)])
        reports = vec_env.get_attr("render_info")
    finally:
        close_vec_env(vec_env)
    assert [report["egl_device_id"] for report in reports] == ["0", "0"]
    assert len({report["pid"] for report in reports}) == 2
