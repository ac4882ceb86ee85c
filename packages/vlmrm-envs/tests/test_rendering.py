from __future__ import annotations

import os
import subprocess
import sys

import gymnasium as gym
import pytest
from vlmrm_envs import rendering
from vlmrm_envs.rendering import (
    check_mujoco_gl,
    check_renderer,
    egl_device_for_worker,
    visible_render_devices,
)


def test_workers_are_spread_round_robin_over_visible_gpus():
    assert [egl_device_for_worker(i, [0, 1, 2, 3]) for i in range(8)] == [0, 1, 2, 3, 0, 1, 2, 3]
    assert [egl_device_for_worker(i, [0, 1]) for i in range(3)] == [0, 1, 0]
    assert egl_device_for_worker(5, []) is None
    with pytest.raises(ValueError, match="worker_index"):
        egl_device_for_worker(-1, [0])


@pytest.mark.parametrize(
    ("value", "expected"), [("2,3", [0, 1]), ("", []), ("1,-1,0", [0]), ("GPU-ab12", [0])]
)
def test_visible_render_devices_follow_cuda_visible_devices(value, expected, monkeypatch):
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", value)
    assert visible_render_devices() == expected


def test_software_renderer_on_a_gpu_machine_is_flagged():
    message = check_renderer("llvmpipe (LLVM 15.0.6, 256 bits)", gpu_visible=True)
    assert message is not None and "far slower" in message and "libnvidia-gl" in message
    assert check_renderer("llvmpipe (LLVM 15.0.6, 256 bits)", gpu_visible=False) is None
    assert check_renderer("NVIDIA H100 80GB HBM3/PCIe/SSE2", gpu_visible=True) is None


@pytest.mark.parametrize(("value", "match"), [("elg", "did you mean 'egl'"), ("EGL", "did you mean 'egl'")])
def test_misspelled_mujoco_gl_is_a_clear_error(value, match, monkeypatch):
    monkeypatch.setenv("MUJOCO_GL", value)
    with pytest.raises(ValueError, match=match):
        check_mujoco_gl()
    with pytest.raises(ValueError, match=match):
        gym.make("vlmrm/Humanoid-v0")


def test_pyopengl_platform_conflicting_with_egl_is_a_clear_error(monkeypatch):
    monkeypatch.setenv("MUJOCO_GL", "egl")
    monkeypatch.setenv("PYOPENGL_PLATFORM", "glx")
    with pytest.raises(ValueError, match="PYOPENGL_PLATFORM"):
        check_mujoco_gl()


def _run(code: str, **env: str) -> subprocess.CompletedProcess:
    environment = {
        k: v
        for k, v in os.environ.items()
        if k not in ("MUJOCO_GL", "PYOPENGL_PLATFORM", "DISPLAY", "WAYLAND_DISPLAY")
    }
    return subprocess.run(
        [sys.executable, "-c", code], env={**environment, **env}, capture_output=True, text=True, timeout=120
    )


def test_import_defaults_to_egl_on_a_headless_machine_unless_chosen():
    code = "import os, vlmrm_envs; print(os.environ.get('MUJOCO_GL'))"
    assert _run(code).stdout.strip() == "egl"
    assert _run(code, MUJOCO_GL="osmesa").stdout.strip() == "osmesa"


def test_import_sets_no_other_variable_even_in_a_worker_process():
    code = (
        "import multiprocessing, os\n"
        "multiprocessing.current_process().name = 'Worker<AsyncVectorEnv>-1'\n"
        "before = dict(os.environ)\n"
        "import vlmrm_envs\n"
        "print(sorted(k for k in os.environ if os.environ[k] != before.get(k)))\n"
    )
    result = _run(code, CUDA_VISIBLE_DEVICES="0,1")
    assert result.stdout.strip() == "['MUJOCO_GL']", result.stderr


def test_backend_chosen_after_pyopengl_was_imported_is_a_clear_error():
    code = (
        "import OpenGL.GL\n"  # PyOpenGL picks GLX here, before MUJOCO_GL=egl is set
        "import gymnasium as gym, vlmrm_envs\n"
        "gym.make('vlmrm/Humanoid-v0')\n"
    )
    result = _run(code)
    assert result.returncode != 0
    assert (
        "RuntimeError: MUJOCO_GL=egl was set after PyOpenGL had been imported for GLXPlatform"
        in result.stderr
    )


def test_render_device_option_sets_the_egl_device_and_is_reported():
    code = (
        "import warnings, gymnasium as gym, vlmrm_envs\n"
        "env = gym.make('vlmrm/Humanoid-v0', width=32, height=32, render_device=0)\n"
        "env.reset(seed=0); env.render()\n"
        "info = env.unwrapped.render_info\n"
        "print(info['egl_device_id'], info['backend'], bool(info['gl_renderer']))\n"
        "with warnings.catch_warnings(record=True) as caught:\n"
        "    warnings.simplefilter('always')\n"
        "    gym.make('vlmrm/Humanoid-v0', width=32, height=32, render_device=1)\n"
        "print(any('already renders on EGL device 0' in str(w.message) for w in caught))\n"
    )
    result = _run(code)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["0", "egl", "True", "True"]


def test_render_device_must_be_a_gpu_index():
    with pytest.raises(ValueError, match="render_device"):
        rendering.assign_render_device("cuda:1")
