"""The envs of a run: CLIP envs that defer their reward to the episode-end algorithm."""

from __future__ import annotations

import contextlib
import functools
import os
import signal
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import gymnasium as gym

from vlmrm_cli.config import Config

if TYPE_CHECKING:
    from stable_baselines3.common.vec_env import VecEnv

# SB3 (and with it torch) is imported by the functions that make or close vector envs, so that
# probing an env to check a config imports neither.

__all__ = [
    "WORKER_DIED",
    "EnvWorkerDied",
    "a_worker_died",
    "close_vec_env",
    "episode_length_of",
    "make_env",
    "make_vec_env",
    "probe_env",
]

# What a SubprocVecEnv raises in the main process when one of its workers has died.
WORKER_DIED = (EOFError, BrokenPipeError, ConnectionResetError)

# How long a worker may take to close its env before it is killed.
CLOSE_TIMEOUT_S = 10.0


class EnvWorkerDied(RuntimeError):
    """An env worker process died; the worker printed its own error before it went."""


def make_env(config: Config, *, in_worker: bool = False, render_device: int | None = None) -> gym.Env:
    """One env of the run: renders every step into ``info["frame"]``, reward deferred (0.0).

    ``env_name`` may be a ``vlmrm/...-CLIP-v0`` id or any other id, which is wrapped with the
    CLIP reward. The frames are scored by the algorithm (``vlmrm_sb3``) at episode end.

    Args:
        in_worker: this runs in a vector-env worker process; it then ignores SIGINT and SIGTERM,
            which a terminal, Slurm, systemd or ``timeout`` send to the whole process group, so
            that the main process alone decides how to stop (save a checkpoint, then close the
            workers). A worker whose main process is gone ends when its pipe closes.
        render_device: the GPU this env's process renders on (EGL); ``env_kwargs.render_device``
            overrides it.
    """
    if in_worker:
        for signum in (signal.SIGINT, signal.SIGTERM):
            signal.signal(signum, signal.SIG_IGN)
    import vlmrm_envs  # sets MUJOCO_GL before MuJoCo is imported, and registers the vlmrm ids

    return vlmrm_envs.make_clip_env(config.env_name, **_env_arguments(config, render_device))


def _env_arguments(config: Config, render_device: int | None) -> dict[str, Any]:
    """``make_clip_env``'s arguments for one env of the run."""
    return {
        "defer_reward": True,
        "width": config.render.width,
        "height": config.render.height,
        "episode_length": config.rl.episode_length,
        "render_device": render_device,
        **config.env_kwargs,
    }


def episode_length_of(env: gym.Env) -> int | None:
    """The ``TimeLimit`` of ``env`` (searched through its wrappers), or None when unlimited."""
    while True:
        if isinstance(env, gym.wrappers.TimeLimit):
            return env._max_episode_steps
        if not isinstance(env, gym.Wrapper):
            return None
        env = env.env


def probe_env(config: Config) -> tuple[gym.Space, gym.Space, int | None]:
    """Make one env to read its observation space, action space and episode length.

    It also draws one frame, so that a missing render dependency (pygame for Gymnasium's
    classic-control envs) is reported here, in one line, and not by every env worker. MuJoCo envs
    draw none: their render needs come with vlmrm-envs and are checked when they are made.

    A vlmrm MuJoCo env with no ``env_kwargs`` is not made: its spaces come from
    ``vlmrm_envs.known_spaces``, so that checking its config imports no MuJoCo. With
    ``env_kwargs`` it is made, which also checks their values.
    """
    import vlmrm_envs  # registers the vlmrm ids; imports neither torch nor MuJoCo

    if not config.env_kwargs:
        known = vlmrm_envs.known_spaces(config.env_name, **_env_arguments(config, None))
        if known is not None:
            return known.observation_space, known.action_space, known.max_episode_steps
    env = make_env(config)
    try:
        # An env made without importing Gymnasium's MuJoCo module is no MuJoCo env.
        mujoco_env = sys.modules.get("gymnasium.envs.mujoco.mujoco_env")
        if mujoco_env is None or not isinstance(env.unwrapped, mujoco_env.MujocoEnv):
            env.reset(seed=config.seed)
            env.render()
        return env.observation_space, env.action_space, episode_length_of(env)
    finally:
        env.close()


def _make_monitored_env(config: Config, in_worker: bool, render_device: int | None) -> gym.Env:
    from stable_baselines3.common.monitor import Monitor

    return Monitor(make_env(config, in_worker=in_worker, render_device=render_device))


def make_vec_env(config: Config) -> VecEnv:
    """``config.n_envs`` envs, each in its own process when ``rl.vec_env`` says so.

    Env ``i`` of a subprocess vector env renders on GPU ``render_device_for(i)``: round-robin
    over the visible GPUs (see ``vlmrm_envs.rendering``).
    """
    from stable_baselines3.common.vec_env import DummyVecEnv, SubprocVecEnv
    from vlmrm_envs.rendering import render_device_for

    subprocesses = config.rl.vec_env == "subproc" or (config.rl.vec_env == "auto" and config.n_envs > 1)
    factories: list[Callable[[], gym.Env]] = [
        functools.partial(
            _make_monitored_env, config, subprocesses, render_device_for(index) if subprocesses else None
        )
        for index in range(config.n_envs)
    ]
    if subprocesses:
        # forkserver, not fork: torch (and perhaps CUDA) is already initialised in this process.
        return SubprocVecEnv(factories, start_method="forkserver")
    return DummyVecEnv(factories)


def _exists(pid: int | None) -> bool:
    """Whether process ``pid`` is still there, and not an ended zombie waiting to be reaped."""
    if pid is None:
        return False
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:  # gone (or no /proc: ask the kernel)
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True
        return Path("/proc").is_dir() is False
    return stat.rpartition(")")[2].split()[0] != "Z"


def a_worker_died(vec_env: VecEnv, wait_s: float = 5.0) -> bool:
    """Whether a worker process of ``vec_env`` has ended, waiting up to ``wait_s`` for one that is
    ending (its pipe closes a moment before it is gone); False for envs in this process."""
    from stable_baselines3.common.vec_env import SubprocVecEnv

    if not isinstance(vec_env, SubprocVecEnv):
        return False
    deadline = time.monotonic() + wait_s
    while True:
        if any(not _exists(process.pid) for process in vec_env.processes):
            return True
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)


def close_vec_env(vec_env: VecEnv) -> None:
    """Close the envs and make sure every worker process is gone, dead or hung ones included.

    SB3's ``SubprocVecEnv.close`` waits on each worker without a limit and raises on a dead one;
    here each worker gets ``CLOSE_TIMEOUT_S`` to close its env, and is killed after that.
    """
    from stable_baselines3.common.vec_env import SubprocVecEnv

    if not isinstance(vec_env, SubprocVecEnv):
        vec_env.close()
        return
    if vec_env.closed:
        return
    vec_env.closed = True
    for remote in vec_env.remotes:
        with contextlib.suppress(*WORKER_DIED, OSError):
            remote.send(("close", None))
    deadline = time.monotonic() + CLOSE_TIMEOUT_S
    for process in vec_env.processes:
        process.join(max(0.0, deadline - time.monotonic()))
        # Asked by pid too: a forkserver killed by a signal to the process group reports its
        # children as ended (it can no longer tell), while a hung one may still be there.
        while _exists(process.pid) and time.monotonic() < deadline:
            time.sleep(0.05)
        if process.is_alive() or _exists(process.pid):
            with contextlib.suppress(ProcessLookupError):
                os.kill(process.pid, signal.SIGKILL)
            process.join(1.0)
    for remote in vec_env.remotes:
        remote.close()
