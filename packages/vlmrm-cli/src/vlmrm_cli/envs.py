"""The envs of a run: CLIP envs that defer their reward to the episode-end algorithm."""

from __future__ import annotations

import contextlib
import functools
import signal

import gymnasium as gym
from stable_baselines3.common.monitor import Monitor
from stable_baselines3.common.vec_env import DummyVecEnv, SubprocVecEnv, VecEnv

from vlmrm_cli.config import Config

__all__ = [
    "WORKER_DIED",
    "EnvWorkerDied",
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


def _is_clip_env(env_id: str) -> bool:
    import vlmrm_envs

    entry_point = vlmrm_envs.env_spec(env_id).entry_point
    return isinstance(entry_point, str) and entry_point.startswith("vlmrm_envs.clip_env:")


def make_env(config: Config, *, in_worker: bool = False) -> gym.Env:
    """One env of the run: renders every step into ``info["frame"]``, reward deferred (0.0).

    ``env_name`` may be a ``vlmrm/...-CLIP-v0`` id or any other id, which is wrapped with the
    CLIP reward. The frames are scored by the algorithm (``vlmrm_sb3``) at episode end.

    Args:
        in_worker: this runs in a vector-env worker process; it then ignores SIGINT, which a
            terminal sends to the whole process group, so that the main process alone decides
            how to stop (save a checkpoint, then close the workers).
    """
    if in_worker:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
    import vlmrm_envs  # sets MUJOCO_GL before MuJoCo is imported, and registers the vlmrm ids

    kwargs = {
        "defer_reward": True,
        "width": config.render.width,
        "height": config.render.height,
        "episode_length": config.rl.episode_length,
        **config.env_kwargs,
    }
    if _is_clip_env(config.env_name):
        return gym.make(config.env_name, **kwargs)
    return vlmrm_envs.make_clip_env(config.env_name, **kwargs)


def episode_length_of(env: gym.Env) -> int | None:
    """The ``TimeLimit`` of ``env`` (searched through its wrappers), or None when unlimited."""
    while True:
        if isinstance(env, gym.wrappers.TimeLimit):
            return env._max_episode_steps
        if not isinstance(env, gym.Wrapper):
            return None
        env = env.env


def probe_env(config: Config) -> tuple[gym.Space, int | None]:
    """Make one env to read its action space and episode length.

    It also draws one frame, so that a missing render dependency (pygame for Gymnasium's
    classic-control envs) is reported here, in one line, and not by every env worker. MuJoCo envs
    draw none: their render needs come with vlmrm-envs and are checked when they are made.
    """
    from gymnasium.envs.mujoco import MujocoEnv

    env = make_env(config)
    try:
        if not isinstance(env.unwrapped, MujocoEnv):
            env.reset(seed=config.seed)
            env.render()
        return env.action_space, episode_length_of(env)
    finally:
        env.close()


def _make_monitored_env(config: Config, in_worker: bool) -> gym.Env:
    return Monitor(make_env(config, in_worker=in_worker))


def make_vec_env(config: Config) -> VecEnv:
    """``config.n_envs`` envs, each in its own process when ``rl.vec_env`` says so."""
    subprocesses = config.rl.vec_env == "subproc" or (config.rl.vec_env == "auto" and config.n_envs > 1)
    factories = [functools.partial(_make_monitored_env, config, subprocesses) for _ in range(config.n_envs)]
    if subprocesses:
        # forkserver, not fork: torch (and perhaps CUDA) is already initialised in this process.
        return SubprocVecEnv(factories, start_method="forkserver")
    return DummyVecEnv(factories)


def close_vec_env(vec_env: VecEnv) -> None:
    """Close the envs and make sure every worker process is gone, dead or hung ones included.

    SB3's ``SubprocVecEnv.close`` waits on each worker without a limit and raises on a dead one;
    here each worker gets ``CLOSE_TIMEOUT_S`` to close its env, and is killed after that.
    """
    if not isinstance(vec_env, SubprocVecEnv):
        vec_env.close()
        return
    if vec_env.closed:
        return
    vec_env.closed = True
    for remote in vec_env.remotes:
        with contextlib.suppress(*WORKER_DIED, OSError):
            remote.send(("close", None))
    for process in vec_env.processes:
        process.join(CLOSE_TIMEOUT_S)
        if process.is_alive():
            process.kill()
            process.join()
    for remote in vec_env.remotes:
        remote.close()
