"""``vlmrm train``: config -> run folder, envs, reward model, algorithm, callbacks; signals and resume.

A run folder ``<base_path>/<YYYY-mm-dd_HH-MM-SS>_<description slug>`` holds::

    config.yaml            the resolved config, every default written out
    checkpoints/           step_<steps>.zip (+ replay_buffer_step_<steps>.pkl), written atomically
    tensorboard/           TensorBoard events
    videos/                step_<steps>.mp4: an episode with its per-step CLIP reward
    wandb/                 the offline wandb run (when not logging online)
    final_model.zip        the model at the end of training
"""

from __future__ import annotations

import contextlib
import functools
import pickle
import re
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
from stable_baselines3.common.callbacks import CallbackList
from vlmrm_sb3 import UnsafePickleError

from vlmrm_cli.callbacks import (
    CheckpointCallback,
    EvalCallback,
    LogCallback,
    ProgressCallback,
    StopCallback,
    VideoCallback,
)
from vlmrm_cli.checkpoints import (
    CONFIG_FILE,
    FINAL_MODEL,
    atomic_write,
    latest_checkpoint,
    latest_good_checkpoint,
    remove_temporary_files,
    replay_buffer_path,
    save_checkpoint,
)
from vlmrm_cli.config import (
    ALGORITHM_ARGUMENTS,
    Config,
    ConfigError,
    algorithm_class,
    dump_config,
    load_config,
)
from vlmrm_cli.envs import (
    WORKER_DIED,
    EnvWorkerDied,
    a_worker_died,
    close_vec_env,
    make_env,
    make_vec_env,
)
from vlmrm_cli.fits import one_line as _one_line
from vlmrm_cli.fits import resolve
from vlmrm_cli.signals import SignalStop, StepTimedOut
from vlmrm_cli.tracking import init_wandb, make_logger

__all__ = ["RunResult", "make_run_dir", "resolve", "train"]

WANDB_ID_FILE = "wandb_run_id"
# Held (flock) by the one `vlmrm train` that writes the run folder; the kernel frees it when the
# process ends, however it ends, so a lock file left by a killed run blocks nothing.
LOCK_FILE = ".vlmrm-train.lock"

# Keys a resumed run may change; anything else would not fit the saved model, buffer or envs.
RESUMABLE_CHANGES = re.compile(
    r"^(rl\.n_steps|rl\.device|rl\.vec_env|rl\.async_reward|reward\.(devices|batch_size|precision|cache_dir)|logging\..*|wandb\..*"
    r"|description|tags.*)$"
)


@dataclass
class RunResult:
    """What ``train`` did: its run folder, the steps reached and the process exit code."""

    run_dir: Path
    steps: int
    exit_code: int


def _slug(text: str) -> str:
    slug = re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")[:60].strip("-")
    return slug or "run"


def make_run_dir(config: Config, now: datetime | None = None) -> Path:
    """Create ``<base_path>/<YYYY-mm-dd_HH-MM-SS>_<slug of description>`` (``-2``, ... if taken)."""
    now = now or datetime.now()
    base = Path(config.base_path).expanduser()
    name = f"{now:%Y-%m-%d_%H-%M-%S}_{_slug(config.description)}"
    base.mkdir(parents=True, exist_ok=True)
    for attempt in range(1, 1000):
        run_dir = base / (name if attempt == 1 else f"{name}-{attempt}")
        try:
            run_dir.mkdir()
        except FileExistsError:
            continue
        return run_dir
    raise FileExistsError(f"{base / name}: too many runs with this name")


def _flatten(data: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(data, dict) and data:
        flat: dict[str, Any] = {}
        for key, value in data.items():
            flat.update(_flatten(value, f"{prefix}.{key}" if prefix else str(key)))
        return flat
    return {prefix: data}


def _check_resume_changes(saved: Config, config: Config) -> None:
    before, after = _flatten(saved.model_dump(mode="json")), _flatten(config.model_dump(mode="json"))
    for key in sorted(before.keys() | after.keys()):
        if before.get(key) != after.get(key) and not RESUMABLE_CHANGES.match(key):
            raise ConfigError(
                f"{key}: cannot change when resuming (the run has {before.get(key)!r}); start a new run instead"
            )


def load_reward_model_for(config: Config) -> Any:
    """The run's reward model; bad settings raise :class:`ConfigError` naming ``reward``."""
    import torch  # loaded by vlmrm_reward anyway
    from vlmrm_reward import load_reward_model, resolve_devices

    reward = config.reward
    try:
        devices = resolve_devices(devices=reward.devices)
    except (ValueError, TypeError) as error:
        raise ConfigError(f"reward.devices: {_one_line(error)}") from None
    try:
        return load_reward_model(
            reward.pretrained_model,
            target_prompts=reward.target_prompts,
            baseline_prompts=reward.baseline_prompts,
            alpha=reward.alpha,
            backend=reward.backend,
            video_mode=reward.video_mode,
            window_size=reward.window_size,
            judge_reward=reward.judge_reward,
            devices=devices,
            batch_size=reward.batch_size,
            precision=reward.precision,
            cache_dir=reward.cache_dir,
            resize_mode=None if reward.resize_mode == "model" else reward.resize_mode,
        )
    except (ValueError, TypeError) as error:
        raise ConfigError(f"reward: {_one_line(error)}") from None
    except torch.OutOfMemoryError:  # a RuntimeError, but not a config error
        raise
    except (OSError, RuntimeError) as error:  # open_clip: unknown model or tag, missing folder or file
        raise ConfigError(
            f"reward.pretrained_model: cannot load {reward.pretrained_model!r} ({_one_line(error)})"
        ) from None


def train(
    config: Config,
    *,
    resume_dir: Path | None = None,
    run_dir: Path | None = None,
    overrides: tuple[str, ...] = (),
    progress: bool = True,
    echo: Callable[[str], None] = print,
    stop: SignalStop | None = None,
) -> RunResult:
    """Run (or, with ``resume_dir``, continue) a training run; returns where and how it ended.

    With ``resume_dir``, ``config`` is ignored: the run's own ``config.yaml`` is read and
    ``overrides`` are applied to it (only :data:`RESUMABLE_CHANGES` keys may change), and
    training continues from the latest checkpoint, with its step count.

    With ``run_dir``, the run lives in that folder instead of a new one named by time: a
    folder that holds a checkpoint is continued (``config`` may differ from the run's only in
    :data:`RESUMABLE_CHANGES` keys), otherwise a new run starts there. A Job that is restarted
    after preemption runs the same command and picks up where it stopped.

    SIGINT / SIGTERM (handled by ``stop``, else by a :class:`SignalStop` of its own) stop the run
    after the current step; a checkpoint is saved and the exit code is 130 / 143. Before training
    begins, they raise :class:`~vlmrm_cli.signals.StopRequested` where start-up is. Bad configs raise :class:`ConfigError` before any run folder is made.
    """
    with (
        contextlib.nullcontext(stop) if stop is not None else SignalStop() as stop,
        contextlib.ExitStack() as locks,
    ):
        return _start(config, stop, locks, resume_dir, run_dir, overrides, progress, echo)


@contextlib.contextmanager
def _sole_writer(run_dir: Path) -> Iterator[None]:
    """Hold the run folder's lock; another live ``vlmrm train`` holding it raises :class:`ConfigError`."""
    import filelock

    lock = filelock.FileLock(run_dir / LOCK_FILE)
    try:
        lock.acquire(timeout=0)
    except filelock.Timeout:
        raise ConfigError(
            f"{run_dir}: another vlmrm train is running in this folder; one run folder has one writer, "
            "so stop that one first"
        ) from None
    try:
        yield
    finally:
        lock.release()


def _start(
    config: Config,
    stop: SignalStop,
    locks: contextlib.ExitStack,
    resume_dir: Path | None,
    run_dir: Path | None,
    overrides: tuple[str, ...],
    progress: bool,
    echo: Callable[[str], None],
) -> RunResult:
    import vlmrm_envs  # noqa: F401  (sets MUJOCO_GL before MuJoCo is imported)

    existing = resume_dir if resume_dir is not None else run_dir
    locked = False
    if existing is not None and Path(existing).expanduser().is_dir():
        locked = True
        locks.enter_context(_sole_writer(Path(existing).expanduser()))
        remove_temporary_files(Path(existing).expanduser())  # left by a kill -9; no one else writes here
    if run_dir is not None and latest_checkpoint(Path(run_dir) / "checkpoints") is not None:
        resume_dir = Path(run_dir)
        saved = load_config(str(resume_dir / CONFIG_FILE))
        if config.rl.n_workers is None:  # resolved from this machine's GPUs: the run keeps its own
            config = config.model_copy(
                update={"rl": config.rl.model_copy(update={"n_workers": saved.rl.n_workers})}
            )
        config = resolve(config)  # the saved config is resolved too
        _check_resume_changes(saved, config)
    elif resume_dir is not None:
        resume_dir = Path(resume_dir)
        saved = load_config(str(resume_dir / CONFIG_FILE))
        config = resolve(load_config(str(resume_dir / CONFIG_FILE), overrides))
        _check_resume_changes(saved, config)
    else:
        config = resolve(config)
    if resume_dir is not None:
        found = latest_good_checkpoint(resume_dir / "checkpoints", echo)
        if found is None:
            raise ConfigError(f"{resume_dir}: no checkpoint in {resume_dir / 'checkpoints'} to resume from")
        checkpoint, steps = found
        if steps >= config.rl.n_steps:
            echo(
                f"{resume_dir} is finished: it has trained {steps} of rl.n_steps={config.rl.n_steps} steps; "
                "raise it with --set rl.n_steps=... to train longer"
            )
            return RunResult(resume_dir, steps, 0)

    # Loaded before the run folder is made, so that a bad model spec or device leaves nothing behind.
    reward_model = load_reward_model_for(config)
    try:
        if resume_dir is None:
            if run_dir is None:
                with _folder_error("base_path", config.base_path):
                    run_dir = make_run_dir(config)
            else:
                run_dir = Path(run_dir).expanduser()
                with _folder_error("--run-dir", run_dir):
                    run_dir.mkdir(parents=True, exist_ok=True)
            if not locked:  # a new folder: locked once made
                locks.enter_context(_sole_writer(run_dir))
            echo(f"Run folder: {run_dir}")
        else:
            run_dir = resume_dir
            echo(f"Resuming {run_dir} from {checkpoint.name} at step {steps} of {config.rl.n_steps}")
        atomic_write(run_dir / CONFIG_FILE, lambda file: file.write(dump_config(config).encode()))
        return _run(
            config,
            run_dir,
            stop,
            reward_model,
            resume=resume_dir is not None,
            progress=progress,
            echo=echo,
        )
    finally:
        reward_model.close()


def _run(
    config: Config,
    run_dir: Path,
    stop: SignalStop,
    reward_model: Any,
    *,
    resume: bool,
    progress: bool,
    echo: Callable[[str], None],
) -> RunResult:
    checkpoints, videos = run_dir / "checkpoints", run_dir / "videos"
    vec_env = wandb_run = logger = None
    callbacks: list[Any] = []
    finished = False
    try:
        vec_env = make_vec_env(config)
        cls = algorithm_class(config.rl.algorithm)
        if resume:
            latest = latest_checkpoint(checkpoints)
            assert latest is not None  # resume is set only where a checkpoint was found
            path, steps = latest
            buffer = replay_buffer_path(checkpoints, steps)
            with refused_if_unsafe(path):
                # force_reset: the saved observation belongs to envs that no longer exist.
                model = cls.load(
                    path, env=vec_env, reward_model=reward_model, device=config.rl.device, force_reset=True
                )
            if buffer.is_file():
                with refused_if_unsafe(buffer):
                    try:
                        model.load_replay_buffer(buffer)
                    except UnsafePickleError:
                        raise
                    except (EOFError, pickle.UnpicklingError, ValueError, TypeError, AttributeError) as error:
                        echo(
                            f"Warning: {buffer} is damaged ({_one_line(error)}): the replay buffer starts empty"
                        )
            else:
                echo(f"No replay buffer saved with {path.name}: the replay buffer starts empty")
            model.async_reward = config.rl.async_reward
        else:
            model = cls(
                config.rl.policy_name,
                vec_env,
                reward_model=reward_model,
                async_reward=config.rl.async_reward,
                seed=config.seed,
                device=config.rl.device,
                policy_kwargs=config.rl.policy_kwargs or None,
                verbose=0,
                **{key: getattr(config.rl, key) for key in _algorithm_arguments(config)},
                **config.rl.algorithm_kwargs,
            )
        wandb_run = init_wandb(config, run_dir, _wandb_id(run_dir))
        logger = make_logger(run_dir, wandb_run)
        model.set_logger(logger)

        replay_buffer = _keep_replay_buffer(model, config, echo)
        callbacks = [StopCallback(stop, config.rl.n_steps), LogCallback(config.logging.tensorboard_freq)]
        if config.logging.checkpoint_freq:
            callbacks.append(
                CheckpointCallback(config.logging.checkpoint_freq, checkpoints, replay_buffer=replay_buffer)
            )
        if config.logging.video_freq:
            videos.mkdir(exist_ok=True)
            callbacks.append(
                VideoCallback(
                    config.logging.video_freq,
                    videos,
                    functools.partial(make_env, config),
                    reward_model,
                    fps=config.logging.video_fps,
                    seed=config.seed,
                    wandb_run=wandb_run,
                    stopping=lambda: stop.requested,
                )
            )
        if config.logging.eval_freq:
            callbacks.append(
                EvalCallback(
                    config.logging.eval_freq,
                    functools.partial(make_env, config),
                    reward_model,
                    episodes=config.logging.eval_episodes,
                    seed=config.seed,
                    batch_size=config.reward.batch_size,
                )
            )
        if progress:
            callbacks.append(ProgressCallback(config.rl.n_steps))
        start_steps = model.num_timesteps
        stop.defer()  # from here on, a signal stops training after the current step
        try:
            model.learn(
                total_timesteps=config.rl.n_steps - model.num_timesteps,
                callback=CallbackList(callbacks),
                log_interval=None,  # LogCallback dumps every tensorboard_freq steps instead
                reset_num_timesteps=not resume,
            )
        except WORKER_DIED as error:
            if not a_worker_died(vec_env):  # a broken pipe elsewhere: its own error is the cause
                raise
            latest = latest_checkpoint(checkpoints)
            then = (
                f"continue from step {latest[1]} with `vlmrm train --resume {run_dir}`"
                if latest
                else "no checkpoint was written yet"
            )
            raise EnvWorkerDied(
                f"an env worker process died at step {model.num_timesteps} (its error is printed above); {then}"
            ) from error
        except StepTimedOut as error:  # a hung env worker: checkpoint what the run has, then stop
            echo(f"{error}: stopping without it (an env worker may hang)")
        stop.training_ended()
        if stop.requested:
            if model.num_timesteps > start_steps:
                path = save_checkpoint(model, checkpoints, replay_buffer=replay_buffer)
                echo(
                    f"Stopped at step {model.num_timesteps}: checkpoint {path}; continue with `vlmrm train --resume {run_dir}`"
                )
            finished = True
            return RunResult(run_dir, model.num_timesteps, stop.exit_code)
        latest = latest_checkpoint(checkpoints)
        if latest is None or latest[1] != model.num_timesteps:
            save_checkpoint(model, checkpoints, replay_buffer=replay_buffer)
        atomic_write(run_dir / FINAL_MODEL, model.save)
        echo(f"Done: {model.num_timesteps} steps; final model {run_dir / FINAL_MODEL}")
        finished = True
        return RunResult(run_dir, model.num_timesteps, 0)
    finally:
        for callback in callbacks:
            if isinstance(callback, (VideoCallback, EvalCallback, ProgressCallback)):
                callback.on_training_end()  # idempotent; learn skips it when it raises
        if logger is not None:
            logger.close()
        if vec_env is not None:
            close_vec_env(vec_env)
        if wandb_run is not None:
            wandb_run.finish(exit_code=0 if finished else 1)


@contextlib.contextmanager
def _folder_error(key: str, folder: str | Path) -> Iterator[None]:
    try:
        yield
    except OSError as error:  # e.g. under /proc, /dev/null, read-only, no space
        raise ConfigError(
            f"{key}: cannot make a run folder in {str(folder)!r} ({_one_line(error)})"
        ) from None


@contextlib.contextmanager
def refused_if_unsafe(path: Path) -> Iterator[None]:
    try:
        yield
    except UnsafePickleError as error:
        raise ConfigError(f"{path}: not loaded, since loading it could run code ({error})") from None


def _keep_replay_buffer(model: Any, config: Config, echo: Callable[[str], None]) -> bool:
    """Whether checkpoints include the replay buffer: its allocated size within ``replay_buffer_max_gb``."""
    limit = config.logging.replay_buffer_max_gb
    if limit is None or limit == 0:
        return limit is None
    arrays = vars(model.replay_buffer).values()
    size_gb = sum(array.nbytes for array in arrays if isinstance(array, np.ndarray)) / 1e9
    if size_gb <= limit:
        return True
    echo(
        f"The replay buffer takes {size_gb:.1f} GB > logging.replay_buffer_max_gb={limit:g}: checkpoints "
        "leave it out, and a resumed run starts with an empty one"
    )
    return False


def _algorithm_arguments(config: Config) -> list[str]:
    return [key for key in ALGORITHM_ARGUMENTS if getattr(config.rl, key) is not None]


def _wandb_id(run_dir: Path) -> str:
    """The run's wandb id, kept in the run folder so that a resumed run continues the same wandb run."""
    path = run_dir / WANDB_ID_FILE
    if path.is_file():
        return path.read_text().strip()
    run_id = uuid.uuid4().hex[:12]
    atomic_write(path, lambda file: file.write(run_id.encode()))
    return run_id
