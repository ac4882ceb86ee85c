"""Checkpoints that a crash or a signal can never leave half-written.

A checkpoint is ``checkpoints/step_<steps>.zip`` (the stable-baselines3 model) plus, optionally,
``checkpoints/replay_buffer_step_<steps>.pkl``. Each file is written to a temporary file in the
same folder, flushed to disk and renamed over its final name, so a reader sees either the old
file or the complete new one. The model is written last: its presence marks a whole checkpoint.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import tempfile
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

__all__ = [
    "CONFIG_FILE",
    "FINAL_MODEL",
    "atomic_write",
    "checkpoint_path",
    "checkpoint_problem",
    "checkpoint_steps",
    "latest_checkpoint",
    "latest_good_checkpoint",
    "list_checkpoints",
    "remove_temporary_files",
    "replay_buffer_path",
    "save_checkpoint",
]

CONFIG_FILE = "config.yaml"
"""The run's resolved config, in the run folder."""
FINAL_MODEL = "final_model.zip"
"""The model at the end of training, in the run folder."""
# What a stable-baselines3 model zip must hold to be loaded.
_REQUIRED_ENTRIES = ("data", "policy.pth")
_REQUIRED_DATA = ("policy_class", "num_timesteps", "observation_space", "action_space")

_CHECKPOINT = re.compile(r"^step_(\d+)\.zip$")


def atomic_write(path: str | Path, write: Callable[[BinaryIO], object]) -> Path:
    """Call ``write(file)`` on a temporary file beside ``path``, then atomically replace ``path``.

    If ``write`` raises (or the process dies), ``path`` keeps its previous content and the
    temporary file is removed (or left under a hidden ``.<name>.*.tmp`` name).
    """
    path = Path(path)
    descriptor, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(descriptor, "wb") as file:
            write(file)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temporary)
        raise
    # The rename is durable only once the folder itself is on disk.
    folder = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(folder)
    finally:
        os.close(folder)
    return path


def checkpoint_path(folder: str | Path, steps: int) -> Path:
    return Path(folder) / f"step_{steps:010d}.zip"


def replay_buffer_path(folder: str | Path, steps: int) -> Path:
    return Path(folder) / f"replay_buffer_step_{steps:010d}.pkl"


def save_checkpoint(model, folder: str | Path, *, replay_buffer: bool) -> Path:
    """Save ``model`` (a stable-baselines3 algorithm) at its step count; returns the model path.

    With ``replay_buffer``, also saves the replay buffer and deletes older replay buffers (they
    are large); older model checkpoints are kept.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    steps = model.num_timesteps
    buffer_path = replay_buffer_path(folder, steps)
    if replay_buffer:
        atomic_write(buffer_path, model.save_replay_buffer)
    path = atomic_write(checkpoint_path(folder, steps), model.save)
    for old in folder.glob("replay_buffer_step_*.pkl"):
        if old != buffer_path or not replay_buffer:
            old.unlink(missing_ok=True)
    return path


def checkpoint_steps(path: str | Path) -> int | None:
    """The step count in a checkpoint's name (``step_<steps>.zip``), or None for another name."""
    match = _CHECKPOINT.match(Path(path).name)
    return int(match.group(1)) if match else None


def list_checkpoints(folder: str | Path) -> list[tuple[Path, int]]:
    """The checkpoints in ``folder`` with their step counts, fewest steps first."""
    found = [
        (path, steps)
        for path in Path(folder).glob("step_*.zip")
        if (steps := checkpoint_steps(path)) is not None
    ]
    return sorted(found, key=lambda item: item[1])


def latest_checkpoint(folder: str | Path) -> tuple[Path, int] | None:
    """The checkpoint with the most steps in ``folder`` and its step count, or None."""
    found = list_checkpoints(folder)
    return found[-1] if found else None


def checkpoint_problem(path: str | Path) -> str | None:
    """Why the model zip at ``path`` cannot be loaded (truncated, empty, not a zip, entries or keys
    missing, a checksum that does not match), or None when it looks whole. Nothing in it is unpickled."""
    try:
        with zipfile.ZipFile(path) as archive:
            missing = [name for name in _REQUIRED_ENTRIES if name not in archive.namelist()]
            if missing:
                return f"no {', '.join(missing)} in the zip"
            broken = archive.testzip()
            if broken is not None:
                return f"{broken} does not match its checksum"
            data = json.loads(archive.read("data"))
    except (OSError, zipfile.BadZipFile, json.JSONDecodeError, UnicodeDecodeError, EOFError) as error:
        return " ".join(str(error).split()) or type(error).__name__
    if not isinstance(data, dict):
        return "its data is not a mapping"
    missing = [key for key in _REQUIRED_DATA if key not in data]
    return f"its data lacks {', '.join(missing)}" if missing else None


def latest_good_checkpoint(folder: str | Path, warn: Callable[[str], None]) -> tuple[Path, int] | None:
    """:func:`latest_checkpoint`, passing over damaged ones: each is renamed ``*.damaged`` (kept, but no
    longer a checkpoint) and reported in one line through ``warn``."""
    while (found := latest_checkpoint(folder)) is not None:
        path, _ = found
        problem = checkpoint_problem(path)
        if problem is None:
            return found
        aside = path.with_name(path.name + ".damaged")
        os.replace(path, aside)
        warn(
            f"Warning: {path} is damaged ({problem}): set aside as {aside.name}; using the checkpoint before it"
        )
    return None


def remove_temporary_files(folder: str | Path) -> list[Path]:
    """Remove the temporary files that :func:`atomic_write` leaves when its process is killed, in
    ``folder`` and its subfolders; call only while no other process writes there. Returns them."""
    removed = []
    for path in Path(folder).rglob(".*.tmp"):
        if path.is_file():
            path.unlink(missing_ok=True)
            removed.append(path)
    return removed
