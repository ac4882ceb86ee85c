"""Every way to vectorise a CLIP env works or refuses at once; none hangs.

Each case runs in a fresh Python (``run_bounded``): a deadlocked worker fails the test after a
timeout instead of stalling the suite. In the cases that fork, the main process has run torch
before (it scores reference frames first), which is what used to deadlock the workers.
"""

from __future__ import annotations

import numpy as np
import pytest
from conftest import PROMPTS, SIZE, run_bounded
from vlmrm_envs.rendering import render_device_for

PRELUDE = f"""
import json, sys
import numpy as np
from vlmrm_reward import load_reward_model

MODEL = sys.argv[1]
PROMPTS = {PROMPTS!r}
KWARGS = dict(model=MODEL, device="cpu", prompts=PROMPTS, baseline_prompts=["pole and cart"], **{SIZE!r})
reference_model = load_reward_model(MODEL, target_prompts=PROMPTS, device="cpu")
reference_model(np.zeros((2, 64, 64, 3), np.uint8))  # torch has run in this process


def step_twice(envs):
    envs.reset(seed=0)
    envs.action_space.seed(0)
    rewards, frames = [], []
    for _ in range(2):
        _, reward, terminated, truncated, info = envs.step(envs.action_space.sample())
        assert not terminated.any() and not truncated.any()
        rewards.append(np.asarray(reward).tolist())
        frames.append(np.stack(info["frame"]) if isinstance(info, dict) else np.stack([i["frame"] for i in info]))
    return {{
        "rewards": rewards,
        "reference": [reference_model(f).tolist() for f in frames],
        "frame_shape": list(frames[0].shape),
        "distinct": bool(np.any(frames[0][0] != frames[0][1])),
    }}
"""


def check_scored(result: dict) -> None:
    """The rewards are the reference model's rewards of the frames that came back."""
    assert result["frame_shape"] == [2, 64, 64, 3]
    np.testing.assert_allclose(result["rewards"], result["reference"], atol=1e-5)
    assert np.all(np.abs(result["rewards"]) <= 1) and np.all(np.asarray(result["rewards"]) != 0)


@pytest.mark.parametrize("context", [None, "spawn"], ids=["default-fork", "spawn"])
def test_gymnasium_async_vector_env_of_clip_envs_steps(context, tiny_model_spec):
    code = PRELUDE + (
        "import gymnasium as gym, vlmrm_envs\n"
        f"vector_kwargs = {{'context': {context!r}}} if {context!r} else {{}}\n"
        "envs = gym.make_vec('vlmrm/CartPole-CLIP-v0', num_envs=2, vectorization_mode='async',\n"
        "                    vector_kwargs=vector_kwargs, **KWARGS)\n"
        "result = step_twice(envs)\n"
        "envs.close()\n"
        "print(json.dumps(result))\n"
    )
    check_scored(run_bounded(code, tiny_model_spec))


def test_gymnasium_sync_vector_env_shares_one_model(tiny_model_spec):
    code = PRELUDE + (
        "import gymnasium as gym, vlmrm_envs\n"
        "envs = gym.make_vec('vlmrm/CartPole-CLIP-v0', num_envs=2, vectorization_mode='sync', **KWARGS)\n"
        "result = step_twice(envs)\n"
        "models = [env.get_wrapper_attr('reward_model').load() for env in envs.envs]\n"
        "result['shared'] = models[0] is models[1]\n"
        "envs.close()\n"
        "print(json.dumps(result))\n"
    )
    result = run_bounded(code, tiny_model_spec)
    check_scored(result)
    assert result["shared"]


def test_registered_vector_entry_point_scores_all_frames_in_the_main_process_in_one_batch(tiny_model_spec):
    code = PRELUDE + (
        "import os, gymnasium as gym, vlmrm_envs, vlmrm_reward\n"
        "batches = []\n"
        "score = vlmrm_reward.RewardModel.__call__\n"
        "def counted(self, frames):\n"
        "    batches.append((os.getpid(), len(frames)))\n"
        "    return score(self, frames)\n"
        "vlmrm_reward.RewardModel.__call__ = counted\n"
        "envs = gym.make_vec('vlmrm/CartPole-CLIP-v0', num_envs=2, **KWARGS)\n"
        "result = step_twice(envs)\n"
        "result['batches'] = batches[:2]\n"
        "result['main'] = os.getpid()\n"
        "result['type'] = type(envs.unwrapped).__name__\n"
        "envs.close()\n"
        "print(json.dumps(result))\n"
    )
    result = run_bounded(code, tiny_model_spec)
    check_scored(result)
    # Both steps: one call of the model in this process, with both frames.
    assert result["batches"] == [[result["main"], 2], [result["main"], 2]]
    assert result["type"] == "AsyncVectorEnv"


@pytest.mark.parametrize("start_method", ["fork", "forkserver", "spawn"])
def test_sb3_subproc_vec_env_steps_clip_envs(start_method, tiny_model_spec):
    # The parent imports no vlmrm_envs: the module-prefixed id imports it in the workers.
    code = PRELUDE + (
        "from stable_baselines3.common.env_util import make_vec_env\n"
        "from stable_baselines3.common.vec_env import SubprocVecEnv\n"
        "envs = make_vec_env('vlmrm_envs:vlmrm/CartPole-CLIP-v0', n_envs=2, seed=0,\n"
        f"                   vec_env_cls=SubprocVecEnv, vec_env_kwargs={{'start_method': {start_method!r}}},\n"
        "                   env_kwargs=KWARGS)\n"
        "envs.reset()\n"
        "_, rewards, dones, infos = envs.step(np.array([0, 1]))\n"
        "frames = np.stack([info['frame'] for info in infos])\n"
        "print(json.dumps({'rewards': [rewards.tolist()], 'reference': [reference_model(frames).tolist()],\n"
        "                  'frame_shape': list(frames.shape), 'dones': dones.tolist()}))\n"
        "envs.close()\n"
    )
    result = run_bounded(code, tiny_model_spec)
    check_scored(result)
    assert result["dones"] == [False, False]


def test_a_worker_forked_after_cuda_refuses_at_once_saying_what_to_use(tiny_model_spec):
    # No GPU here: the parent claims CUDA was initialised (the state torch reports after any
    # CUDA call), which is what a forked worker must not build on.
    code = PRELUDE + (
        "import torch, gymnasium as gym, vlmrm_envs\n"
        "torch.cuda.is_initialized = lambda: True\n"
        "kwargs = {**KWARGS, 'device': None}\n"
        "envs = gym.make_vec('vlmrm/CartPole-CLIP-v0', num_envs=2, vectorization_mode='async',\n"
        "                    vector_kwargs={'context': 'fork'}, **kwargs)\n"
        "try:\n"
        "    envs.reset(seed=0)\n"
        "    error = None\n"
        "except Exception as caught:\n"
        "    error = f'{type(caught).__name__}: {caught}'\n"
        "envs.close()\n"
        "print(json.dumps({'error': error}))\n"
    )
    error = run_bounded(code, tiny_model_spec)["error"]
    assert error is not None and error.startswith("RuntimeError")
    assert "forked from one that had already initialised CUDA" in error
    assert "gym.make_vec(env_id, num_envs=N)" in error and "forkserver" in error


def test_vector_entry_point_renders_each_worker_on_its_gpu(tiny_model_spec, monkeypatch):
    # One visible GPU id: every worker is given EGL device 0 (the only one Mesa has here).
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "0")
    monkeypatch.delenv("MUJOCO_EGL_DEVICE_ID", raising=False)
    code = (
        "import json, sys, vlmrm_envs\n"
        "envs = vlmrm_envs.make_clip_vector_env('vlmrm/Humanoid-CLIP-v0', 2, prompts=['a robot'],\n"
        "     model=sys.argv[1], device='cpu', width=64, height=64)\n"
        "envs.reset(seed=0)\n"
        "envs.step(envs.action_space.sample())\n"
        "reports = envs.unwrapped.get_attr('render_info')\n"
        "envs.close()\n"
        "print(json.dumps({'reports': reports}))\n"
    )
    reports = run_bounded(code, tiny_model_spec)["reports"]
    assert [report["egl_device_id"] for report in reports] == ["0", "0"]
    assert len({report["pid"] for report in reports}) == 2
    assert all(report["gl_renderer"] for report in reports)


# Rendering with Mesa's llvmpipe before open_clip (triton) is imported crashes the process (two
# LLVMs), so these scripts import open_clip first; GPU machines render with NVIDIA's EGL.
RENDER_IN_MAIN_PROCESS = (
    "import json, sys, time, open_clip, gymnasium as gym, vlmrm_envs\n"
    "env = gym.make('vlmrm/Humanoid-v0', width=32, height=32)\n"
    "env.reset(seed=0)\n"
    "env.render()  # this process now holds an EGL display, which forked workers inherit\n"
)


def test_vector_entry_point_works_after_the_main_process_rendered(tiny_model_spec):
    code = RENDER_IN_MAIN_PROCESS + (
        "envs = gym.make_vec('vlmrm/Humanoid-CLIP-v0', num_envs=2, prompts=['a robot'], model=sys.argv[1],\n"
        "                    device='cpu', width=32, height=32)\n"
        "envs.reset(seed=0)\n"
        "_, rewards, _, _, info = envs.step(envs.action_space.sample())\n"
        "envs.close()\n"
        "print(json.dumps({'rewards': rewards.tolist(), 'shape': list(info['frame'].shape)}))\n"
    )
    result = run_bounded(code, tiny_model_spec)
    assert result["shape"] == [2, 32, 32, 3] and all(reward != 0 for reward in result["rewards"])


def test_forked_workers_refuse_to_render_after_the_main_process_rendered():
    code = RENDER_IN_MAIN_PROCESS + (
        "began = time.monotonic()\n"
        "try:\n"
        "    envs = gym.make_vec('vlmrm/Humanoid-v0', num_envs=2, vectorization_mode='async',\n"
        "                        vector_kwargs={'context': 'fork'}, width=32, height=32)\n"
        "    envs.reset(seed=0)\n"
        "    envs.render()\n"
        "    failed = False\n"
        "except Exception:\n"
        "    failed = True\n"
        "print(json.dumps({'failed': failed, 'seconds': time.monotonic() - began}))\n"
    )
    result = run_bounded(code)
    # Gymnasium's parent sees its worker gone; the worker said why, in one line.
    assert result["failed"] and result["seconds"] < 60
    assert (
        "RuntimeError: this process was forked from one that had already rendered with MuJoCo"
        in result["stderr"]
    )
    assert "'spawn'" in result["stderr"]


def test_render_devices_go_round_robin_over_visible_gpus_unless_one_is_chosen(monkeypatch):
    monkeypatch.setenv("MUJOCO_GL", "egl")
    monkeypatch.delenv("MUJOCO_EGL_DEVICE_ID", raising=False)
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "4,5")
    assert [render_device_for(i) for i in range(3)] == [0, 1, 0]
    monkeypatch.setenv("MUJOCO_EGL_DEVICE_ID", "1")
    assert render_device_for(0) is None
    monkeypatch.delenv("MUJOCO_EGL_DEVICE_ID")
    monkeypatch.setenv("MUJOCO_GL", "osmesa")
    assert render_device_for(0) is None
    with pytest.raises(ValueError, match="worker_index"):
        render_device_for(-1)
