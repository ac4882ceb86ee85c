"""Loading saved models and replay buffers without letting them run code.

stable-baselines3 loads a model's tensors with ``torch.load(weights_only=True)``, but keeps its
spaces, schedules and classes as cloudpickle inside the zip, and saves replay buffers as plain
pickles: unpickling either can call any function the file names. Here they are unpickled with
:class:`RestrictedUnpickler`, which resolves only what a saved model or buffer needs:

- a few exact names: numpy's array and random-generator rebuilders, ``collections.deque``,
  ``torch.device``, SB3's schedules and ``TrainFreq``, and harmless builtins;
- classes that derive from gymnasium's ``Space``, SB3's ``BasePolicy``, ``BaseBuffer`` and
  ``ActionNoise``, torch's ``Module`` and ``Optimizer``, numpy's scalar types, or ``enum.Enum``,
  from modules already imported (unpickling never imports a module, so a file cannot run an
  import's side effects either).

Anything else (``os.system``, ``builtins.getattr``, a cloudpickled function) is refused with
:class:`UnsafePickleError`, before it is called.
"""

from __future__ import annotations

import base64
import enum
import io
import json
import pathlib
import pickle
import sys
import zipfile
from typing import IO, Any, TypeAlias

import gymnasium as gym
import numpy as np
import torch
from stable_baselines3.common.buffers import BaseBuffer
from stable_baselines3.common.noise import ActionNoise, VectorizedActionNoise
from stable_baselines3.common.policies import BasePolicy

__all__ = ["RestrictedUnpickler", "UnsafePickleError", "check_saved_model", "load_pickle", "saved_file"]

_ALLOWED_NAMES = {
    ("builtins", name) for name in ("set", "frozenset", "complex", "slice", "range", "bytearray", "object")
} | {
    ("collections", "deque"),
    ("collections", "OrderedDict"),
    ("copyreg", "_reconstructor"),
    ("numpy", "dtype"),
    ("numpy", "ndarray"),
    ("torch", "device"),
    ("stable_baselines3.common.type_aliases", "TrainFreq"),
    ("stable_baselines3.common.type_aliases", "TrainFrequencyUnit"),
    *(
        ("stable_baselines3.common.utils", name)
        for name in ("FloatSchedule", "ConstantSchedule", "LinearSchedule")
    ),
    *(
        (f"numpy.{core}.{module}", name)
        for core in ("core", "_core")
        for module, name in (
            ("numeric", "_frombuffer"),
            ("multiarray", "scalar"),
            ("multiarray", "_reconstruct"),
        )
    ),
    *(
        ("numpy.random._pickle", name)
        for name in ("__generator_ctor", "__bit_generator_ctor", "__randomstate_ctor")
    ),
    ("numpy.random.bit_generator", "__pyx_unpickle_SeedSequence"),
    ("numpy.random.bit_generator", "SeedSequence"),
}

_ALLOWED_BASES: tuple[type, ...] = (
    gym.Space,
    BasePolicy,
    BaseBuffer,
    ActionNoise,
    VectorizedActionNoise,
    torch.nn.Module,
    torch.optim.Optimizer,
    enum.Enum,
    np.generic,  # numpy's scalar types
)

# numpy's bit generators (PCG64, MT19937, ...) are rebuilt by class.
_BIT_GENERATOR_MODULES = (
    "numpy.random._pcg64",
    "numpy.random._mt19937",
    "numpy.random._philox",
    "numpy.random._sfc64",
)


class UnsafePickleError(pickle.UnpicklingError):
    """A saved file names something that unpickling it would have to call, and is not allowed."""


# Allowed callables that allocate what their arguments ask for, not what the file holds: a few bytes
# of pickle could ask for gigabytes. What a saved model or buffer passes them is small.
_MAX_EMPTY_ALLOCATION_BYTES = 1 << 20


def _bytearray_of_data(function: Any) -> Any:
    def bytearray_of_data(*args: Any) -> bytearray:
        if args and not isinstance(args[0], (str, bytes, bytearray)):  # bytearray(n): n zero bytes
            raise UnsafePickleError(
                f"refused builtins.bytearray({args[0]!r}): would allocate memory the file does not hold"
            )
        return function(*args)

    return bytearray_of_data


def _small_reconstruct(function: Any) -> Any:
    def small_reconstruct(cls: Any, shape: Any, dtype: Any) -> Any:
        try:
            size = int(np.prod(shape, dtype=np.float64)) * np.dtype(dtype).itemsize
        except (TypeError, ValueError):
            raise UnsafePickleError(
                f"refused numpy _reconstruct({shape!r}, {dtype!r}): not an array shape"
            ) from None
        if size > _MAX_EMPTY_ALLOCATION_BYTES:
            raise UnsafePickleError(
                f"refused numpy _reconstruct of shape {shape!r}: would allocate {size} bytes"
            )
        return function(cls, shape, dtype)

    return small_reconstruct


_SIZE_CHECKED = {"bytearray": _bytearray_of_data, "_reconstruct": _small_reconstruct}


class RestrictedUnpickler(pickle.Unpickler):
    """``pickle.Unpickler`` that resolves only the names a saved SB3 model or buffer needs."""

    def find_class(self, module: str, name: str) -> Any:
        found = _resolve(module, name)
        if found is None:
            raise UnsafePickleError(f"refused {module}.{name}: not something a saved model or buffer holds")
        return found


def _resolve(module: str, name: str) -> Any:
    loaded = sys.modules.get(module)  # never import: an import can run code
    if loaded is None or "." in name:
        return None
    found = getattr(loaded, name, None)
    if found is None:
        return None
    if (module, name) in _ALLOWED_NAMES or module in _BIT_GENERATOR_MODULES:
        return _SIZE_CHECKED.get(name, lambda function: function)(found)
    if isinstance(found, type) and issubclass(found, _ALLOWED_BASES):
        return found
    return None


BinaryFile: TypeAlias = IO[bytes] | io.BufferedIOBase
"""A binary file open for reading: ``typing.IO[bytes]``, or ``io.BufferedIOBase`` as SB3 annotates them."""


def load_pickle(file: str | pathlib.Path | BinaryFile) -> Any:
    """Unpickle ``file`` (a path or a binary file) with :class:`RestrictedUnpickler`."""
    if isinstance(file, (str, pathlib.Path)):
        with open(file, "rb") as stream:
            return RestrictedUnpickler(stream).load()
    return RestrictedUnpickler(file).load()


def saved_file(path: str | pathlib.Path, suffix: str) -> pathlib.Path:
    """The file SB3's loaders read for ``path``: the path itself, else it with ``.suffix`` appended."""
    path = pathlib.Path(path)
    return path if path.exists() else pathlib.Path(f"{path}.{suffix}")


def check_saved_model(path: str | pathlib.Path | io.BufferedIOBase) -> None:
    """Raise :class:`UnsafePickleError` if the pickled entries of an SB3 model zip name anything not allowed.

    The tensors (``*.pth``) are left to SB3, which loads them with ``weights_only=True``; so is
    a file that is missing or not a zip, which SB3's ``load`` then reports.
    """
    if isinstance(path, (str, pathlib.Path)):
        path = saved_file(path, "zip")
        if not path.is_file():
            return
        data, tensors = _model_data(path)
    else:
        start = path.tell()
        data, tensors = _model_data(path)
        path.seek(start)
    for name, content in tensors.items():
        try:  # onto the meta device: the weights are read, never allocated
            torch.load(io.BytesIO(content), weights_only=True, map_location="meta")
        except pickle.UnpicklingError as error:
            first = next((line for line in str(error).splitlines() if "WeightsUnpickler error" in line), "")
            raise UnsafePickleError(
                f"{name}: refused by torch's weights-only loader, since loading it could run code ({first.strip()})"
            ) from None
        except Exception:  # a damaged file: SB3's load reports it
            pass
    for key, value in data.items():
        if isinstance(value, dict) and ":serialized:" in value:
            try:
                load_pickle(io.BytesIO(base64.b64decode(value[":serialized:"])))
            except UnsafePickleError as error:
                raise UnsafePickleError(f"{key}: {error}") from None


def _model_data(file: pathlib.Path | BinaryFile) -> tuple[dict[str, Any], dict[str, bytes]]:
    """The zip's ``data`` (JSON) and its ``*.pth`` tensor files."""
    try:
        with zipfile.ZipFile(file) as archive:
            names = archive.namelist()
            data = json.loads(archive.read("data")) if "data" in names else {}
            return data, {name: archive.read(name) for name in names if name.endswith(".pth")}
    except (zipfile.BadZipFile, json.JSONDecodeError):
        return {}, {}
