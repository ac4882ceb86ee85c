"""Where metrics go: TensorBoard events in the run folder, and wandb (online or offline)."""

from __future__ import annotations

import contextlib
import os
import sys
from pathlib import Path
from typing import Any, Literal

import numpy as np
from stable_baselines3.common.logger import KVWriter, Logger, TensorBoardOutputFormat

from vlmrm_cli.config import Config

__all__ = ["GuardedRun", "WandbOutputFormat", "init_wandb", "make_logger", "wandb_mode"]

# wandb's step must only grow, but a resumed run logs again from its checkpoint's step: every
# metric is therefore plotted against this one instead.
STEP_METRIC = "global_step"

# How long wandb may take to start (it then falls back to offline; WANDB_INIT_TIMEOUT overrides)
# and to finish uploading.
INIT_TIMEOUT_S = 30.0
FINISH_TIMEOUT_S = 60.0


WandbMode = Literal["online", "offline", "disabled"]


def wandb_mode(config: Config) -> WandbMode:
    """``online`` / ``offline`` / ``disabled``; ``auto`` is online exactly when ``WANDB_API_KEY`` is set."""
    if config.wandb.mode != "auto":
        return config.wandb.mode
    return "online" if os.environ.get("WANDB_API_KEY") else "offline"


def init_wandb(config: Config, run_dir: Path, run_id: str) -> Any | None:
    """Start (or, with the same ``run_id``, continue) the run's wandb run; None when disabled.

    Offline runs are written under ``run_dir/wandb`` (upload later with ``wandb sync``). An
    online start that fails or takes longer than ``INIT_TIMEOUT_S`` falls back to offline: the
    training never waits on a network. The API key is read by wandb from the environment and
    never written anywhere by vlmrm.
    """
    mode = wandb_mode(config)
    if mode == "disabled":
        return None
    import wandb

    def start(mode: WandbMode) -> Any:
        return wandb.init(
            project=config.wandb.project,
            entity=config.wandb.entity,
            group=config.wandb.group,
            name=config.wandb.name or run_dir.name,
            id=run_id,
            resume="allow",
            dir=run_dir,
            mode=mode,
            config=config.model_dump(mode="json"),
            notes=config.description or None,
            tags=[tag[:64] for tag in config.tags] or None,  # wandb's limit per tag
            settings=wandb.Settings(
                init_timeout=float(os.environ.get("WANDB_INIT_TIMEOUT", INIT_TIMEOUT_S)),
                finish_timeout=FINISH_TIMEOUT_S,
                console="off",  # keeps the progress bar on the terminal, not in wandb's log
                silent=True,
            ),
        )

    try:
        run = start(mode)
    except Exception as error:  # wandb raises many kinds (CommError, UsageError, timeouts)
        if mode != "online":
            raise
        reason = " ".join(str(error).split()) or type(error).__name__
        print(
            f"wandb could not start online ({reason}); logging offline into {run_dir / 'wandb'}",
            file=sys.stderr,
        )
        # The failed online run still holds the run id in wandb's service process; start afresh.
        wandb.teardown()
        run = start("offline")
    run.define_metric(STEP_METRIC)
    run.define_metric("*", step_metric=STEP_METRIC)
    return GuardedRun(run)


class GuardedRun:
    """A wandb run whose failures (its service process killed, a full disk) do not end training:
    the first one is reported in one line, and from then on the run is left alone (TensorBoard
    goes on). ``log`` and ``finish`` are wandb's; anything else is passed through."""

    def __init__(self, run: Any) -> None:
        self.run = run
        self.failed = False

    def __getattr__(self, name: str) -> Any:
        return getattr(self.run, name)

    def log(self, *args: Any, **kwargs: Any) -> None:
        self._guarded("log", *args, **kwargs)

    def finish(self, *args: Any, **kwargs: Any) -> None:
        self._guarded("finish", *args, **kwargs)

    def _guarded(self, method: str, *args: Any, **kwargs: Any) -> None:
        if self.failed:
            return
        try:
            getattr(self.run, method)(*args, **kwargs)
        except Exception as error:  # wandb raises many kinds; its service may be gone (BrokenPipeError)
            self.failed = True
            reason = " ".join(str(error).split()) or type(error).__name__
            print(
                f"wandb stopped working ({type(error).__name__}: {reason}); training goes on, "
                "logging to TensorBoard only",
                file=sys.stderr,
            )
            import wandb

            with contextlib.suppress(Exception):  # drops wandb's exit hook, which would fail the same way
                wandb.teardown()


class WandbOutputFormat(KVWriter):
    """Sends stable-baselines3's logged scalars to a wandb run, against ``global_step``."""

    def __init__(self, run: Any) -> None:
        self.run = run

    def write(
        self, key_values: dict[str, Any], key_excluded: dict[str, tuple[str, ...]], step: int = 0
    ) -> None:
        scalars = {
            key: float(value)
            for key, value in key_values.items()
            if isinstance(value, (int, float, np.number))
            and not isinstance(value, bool)
            and "wandb" not in (key_excluded.get(key) or ())
        }
        if scalars:
            self.run.log({**scalars, STEP_METRIC: step})

    def close(self) -> None:
        pass  # the run is finished by its owner


def make_logger(run_dir: Path, wandb_run: Any | None) -> Logger:
    """An SB3 logger writing TensorBoard events to ``run_dir/tensorboard`` (and to wandb)."""
    formats: list[KVWriter] = [TensorBoardOutputFormat(str(run_dir / "tensorboard"))]
    if wandb_run is not None:
        formats.append(WandbOutputFormat(wandb_run))
    return Logger(str(run_dir), formats)
