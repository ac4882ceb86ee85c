"""Headless MuJoCo rendering: backend choice, GPU assignment and the traps around them.

MuJoCo picks its OpenGL backend from ``MUJOCO_GL`` when it is imported, and PyOpenGL fixes its
platform (EGL, GLX, OSMesa) the first time it is imported, so the backend has to be settled
before either happens. ``import vlmrm_envs`` therefore calls :func:`configure_mujoco_gl`, which
sets ``MUJOCO_GL=egl`` on a Linux machine without a display unless the user chose a backend.
Every vlmrm MuJoCo env then calls :func:`check_mujoco_gl` before it creates a GL context, and
:func:`check_renderer` on its first frame, so that a misconfiguration fails loudly instead of
rendering black frames, rendering on the wrong GPU or rendering far slower on the CPU.

GPU choice (EGL only): an env's ``render_device`` option, else ``MUJOCO_EGL_DEVICE_ID``, else
the default device. Whoever makes many envs passes each its device from its index
(:func:`render_device_for`: round-robin over the visible GPUs), as the CLIP envs' vector entry
point and the ``vlmrm`` command line do. MuJoCo opens one EGL display per process, on the first
context, so all envs in one process render on the same device. With MuJoCo >= 4, a device id
indexes the CUDA-visible GPUs in CUDA order (EGL's own order can differ from CUDA's);
:func:`render_report` states the CUDA device the driver actually renders on.
"""

from __future__ import annotations

import ctypes.util
import difflib
import os
import re
import sys
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

__all__ = [
    "EGL_INSTALL_HINT",
    "FORKED_AFTER_EGL",
    "MUJOCO_GL_BACKENDS",
    "assign_render_device",
    "check_mujoco_gl",
    "check_mujoco_gl_can_render",
    "check_renderer",
    "configure_mujoco_gl",
    "egl_device_for_worker",
    "egl_display_open",
    "nvidia_gpu_visible",
    "render_device_for",
    "render_report",
    "visible_render_devices",
]

MUJOCO_GL_BACKENDS: tuple[str, ...] = ("egl", "osmesa", "glfw")
"""The values of ``MUJOCO_GL`` that Gymnasium's MuJoCo renderer accepts (case-sensitive)."""

# Substrings of GL_RENDERER that mean the frames are rasterised on the CPU.
SOFTWARE_RENDERERS: tuple[str, ...] = ("llvmpipe", "softpipe", "swrast", "software rasterizer", "lavapipe")

EGL_INSTALL_HINT = (
    "EGL rendering is unavailable. Install an EGL driver: on a GPU server the NVIDIA driver's EGL "
    "library (libEGL_nvidia.so, e.g. apt-get install libnvidia-gl-<driver version>; in Docker set "
    "NVIDIA_DRIVER_CAPABILITIES=compute,utility,graphics), on a CPU-only machine Mesa's "
    "(apt-get install libegl1 libgl1-mesa-dri); or render in software with MUJOCO_GL=osmesa "
    "(apt-get install libosmesa6)"
)

FORKED_AFTER_EGL = (
    "this process was forked from one that had already rendered with MuJoCo (EGL), and the GL "
    "state it inherited cannot render here: start the workers with 'forkserver' or 'spawn' "
    "(vector_kwargs={'context': 'spawn'}, SubprocVecEnv(..., start_method='forkserver')), make "
    "the vector env before rendering in the main process, or use gym.make_vec(<CLIP id>, num_envs=N), "
    "which chooses for you"
)

# The PyOpenGL platform class that each backend needs; glfw works with whichever it loaded.
_PYOPENGL_PLATFORMS = {"egl": "EGLPlatform", "osmesa": "OSMesaPlatform"}


def configure_mujoco_gl() -> str | None:
    """Settle the render backend before MuJoCo is imported; returns ``MUJOCO_GL``.

    On Linux without ``DISPLAY``/``WAYLAND_DISPLAY`` and with ``MUJOCO_GL`` unset, sets
    ``MUJOCO_GL=egl``; changes nothing else. Never raises: bad settings are reported by
    :func:`check_mujoco_gl` when an env is made.
    """
    headless = not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))
    if "MUJOCO_GL" not in os.environ and sys.platform.startswith("linux") and headless:
        os.environ["MUJOCO_GL"] = "egl"
    return os.environ.get("MUJOCO_GL")


def check_mujoco_gl() -> str | None:
    """Raise a one-line error if ``MUJOCO_GL`` cannot work in this process; returns it.

    Catches a misspelled value, ``MUJOCO_GL=egl`` with ``PYOPENGL_PLATFORM`` set to another
    platform, and a backend chosen after PyOpenGL had been imported for another platform (it
    keeps the platform it found at import, so the change is otherwise ignored or crashes later).
    """
    backend = os.environ.get("MUJOCO_GL")
    if backend is None:
        return None
    if backend not in MUJOCO_GL_BACKENDS:
        close = difflib.get_close_matches(backend.strip().lower(), MUJOCO_GL_BACKENDS, n=1, cutoff=0.3)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        raise ValueError(
            f"MUJOCO_GL={backend!r} is not a MuJoCo render backend; use one of {', '.join(MUJOCO_GL_BACKENDS)}{hint}"
        )
    pyopengl_platform = os.environ.get("PYOPENGL_PLATFORM")
    if backend == "egl" and pyopengl_platform and pyopengl_platform.lower() != "egl":
        raise ValueError(
            f"MUJOCO_GL=egl needs PYOPENGL_PLATFORM unset or 'egl', but it is {pyopengl_platform!r}"
        )
    expected = _PYOPENGL_PLATFORMS.get(backend)
    platform_module = sys.modules.get("OpenGL.platform")
    loaded = type(getattr(platform_module, "PLATFORM", None)).__name__
    if expected and platform_module is not None and loaded != expected:
        raise RuntimeError(
            f"MUJOCO_GL={backend} was set after PyOpenGL had been imported for {loaded} (it picks its "
            f"platform once, at import): set MUJOCO_GL={backend} in the shell, or at the top of the script "
            "before importing mujoco, OpenGL or gymnasium's MuJoCo envs"
        )
    return backend


def check_mujoco_gl_can_render() -> None:
    """Raise a one-line error if the chosen backend cannot render here: ``MUJOCO_GL=osmesa``
    without the OSMesa library, ``MUJOCO_GL=glfw`` without a display. (MuJoCo itself would fail
    at the first frame, with a long traceback that does not say why.)"""
    backend = os.environ.get("MUJOCO_GL")
    if backend == "osmesa" and ctypes.util.find_library("OSMesa") is None:
        raise ValueError(
            "MUJOCO_GL=osmesa needs the OSMesa library, which is not installed "
            "(apt-get install libosmesa6); or render with MUJOCO_GL=egl"
        )
    if backend == "glfw" and sys.platform.startswith("linux"):
        if not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")):
            raise ValueError(
                "MUJOCO_GL=glfw needs a display, and DISPLAY is not set; on a machine without one "
                "render with MUJOCO_GL=egl (or osmesa)"
            )


def visible_render_devices() -> list[int]:
    """``MUJOCO_EGL_DEVICE_ID`` values of the GPUs this process may render on: 0..k-1.

    k is the number of entries in ``CUDA_VISIBLE_DEVICES`` when it is set, else the number of
    NVIDIA device files (``/dev/nvidia<N>``); 0 on a machine without NVIDIA GPUs.
    """
    cuda_visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if cuda_visible is not None:
        entries = [entry.strip() for entry in cuda_visible.split(",") if entry.strip()]
        # CUDA stops at the first invalid entry (e.g. -1).
        count = next((i for i, entry in enumerate(entries) if entry.startswith("-")), len(entries))
        return list(range(count))
    return list(range(len([p for p in Path("/dev").glob("nvidia*") if re.fullmatch(r"nvidia\d+", p.name)])))


def egl_device_for_worker(worker_index: int, visible_devices: Sequence[int]) -> int | None:
    """The EGL device for vector-env worker ``worker_index``: round-robin over ``visible_devices``.

    Returns None when no device is visible (render on the default device).
    """
    if isinstance(worker_index, bool) or not isinstance(worker_index, int) or worker_index < 0:
        raise ValueError(f"worker_index must be a non-negative integer, got {worker_index!r}")
    if not visible_devices:
        return None
    return visible_devices[worker_index % len(visible_devices)]


def render_device_for(index: int) -> int | None:
    """The render device for the ``index``-th of many envs, each in its own process.

    Round-robin over the visible GPUs (:func:`egl_device_for_worker`) when MuJoCo renders with
    EGL; None (keep the process's device) when it does not, when ``MUJOCO_EGL_DEVICE_ID`` is set
    (the user chose one device for all), or when no GPU is visible.
    """
    if os.environ.get("MUJOCO_GL") != "egl" or "MUJOCO_EGL_DEVICE_ID" in os.environ:
        egl_device_for_worker(index, [])  # still reject a bad index
        return None
    return egl_device_for_worker(index, visible_render_devices())


def nvidia_gpu_visible() -> bool:
    """Whether this process can see an NVIDIA GPU (driver loaded and a device not hidden)."""
    return Path("/proc/driver/nvidia/version").exists() and bool(visible_render_devices())


def assign_render_device(render_device: int | None) -> str | None:
    """Choose the EGL device for envs made in this process; returns ``MUJOCO_EGL_DEVICE_ID``.

    ``render_device`` (an int) takes precedence over ``MUJOCO_EGL_DEVICE_ID`` set by the user;
    None keeps it. Raises :data:`FORKED_AFTER_EGL` in a process forked after its parent had
    rendered with EGL (its first frame would hang). Must run before this process renders its
    first frame: afterwards the device is fixed, and a different request only warns.
    """
    if render_device is not None and (
        isinstance(render_device, bool) or not isinstance(render_device, int) or render_device < 0
    ):
        raise ValueError(f"render_device must be a non-negative integer GPU index, got {render_device!r}")
    if _forked_after_egl and os.environ.get("MUJOCO_GL") == "egl":
        raise RuntimeError(FORKED_AFTER_EGL)
    current = os.environ.get("MUJOCO_EGL_DEVICE_ID")
    if render_device is None or str(render_device) == current:
        return current
    if egl_display_open():
        warnings.warn(
            f"render_device={render_device} ignored: this process already renders on EGL device "
            f"{current or 'default'}, and MuJoCo opens one EGL display per process; make the env in "
            "its own process (a vector-env worker) to render on another GPU",
            RuntimeWarning,
            stacklevel=3,
        )
        return current
    os.environ["MUJOCO_EGL_DEVICE_ID"] = str(render_device)
    return os.environ["MUJOCO_EGL_DEVICE_ID"]


def check_renderer(gl_renderer: str, gpu_visible: bool) -> str | None:
    """A warning text if frames are rasterised on the CPU although a GPU is visible, else None."""
    if not gpu_visible or not any(name in gl_renderer.lower() for name in SOFTWARE_RENDERERS):
        return None
    return (
        f"MuJoCo renders with the software rasteriser {gl_renderer!r} although an NVIDIA GPU is visible: "
        "far slower than the GPU (compare with `vlmrm fps`). NVIDIA's EGL library is missing or hidden; "
        + EGL_INSTALL_HINT.split(". ", 1)[1]
    )


def render_report() -> dict[str, Any]:
    """Where this process renders; call it after a frame was rendered (a GL context is current).

    Keys: ``pid``, ``backend`` (``MUJOCO_GL``), ``egl_device_id``
    (``MUJOCO_EGL_DEVICE_ID`` or None), ``cuda_device`` (the CUDA id of the EGL device in
    use, if the driver tells; None on Mesa), ``gl_vendor``, ``gl_renderer``.
    """
    report: dict[str, Any] = {
        "pid": os.getpid(),
        "backend": os.environ.get("MUJOCO_GL"),
        "egl_device_id": os.environ.get("MUJOCO_EGL_DEVICE_ID"),
        "cuda_device": _egl_cuda_device() if os.environ.get("MUJOCO_GL") == "egl" else None,
        "gl_vendor": None,
        "gl_renderer": None,
    }
    try:
        from OpenGL import GL

        report["gl_vendor"] = GL.glGetString(GL.GL_VENDOR).decode()
        report["gl_renderer"] = GL.glGetString(GL.GL_RENDERER).decode()
    except Exception:  # no current context, or a backend PyOpenGL cannot query
        pass
    return report


def egl_display_open() -> bool:
    """Whether this process has opened MuJoCo's EGL display (it has rendered a frame with EGL).

    A child forked after that cannot render (:data:`FORKED_AFTER_EGL`).
    """
    egl = sys.modules.get("mujoco.egl")
    return egl is not None and getattr(egl, "EGL_DISPLAY", None) is not None


_forked_after_egl = False


def _after_fork_in_child() -> None:
    global _forked_after_egl
    _forked_after_egl = _forked_after_egl or egl_display_open()


os.register_at_fork(after_in_child=_after_fork_in_child)


def _egl_cuda_device() -> int | None:
    """CUDA id of the device behind MuJoCo's EGL display (EGL_NV_device_cuda), if available."""
    if not egl_display_open():
        return None
    try:
        import ctypes

        from mujoco.egl import EGL_DISPLAY, egl_ext

        egl_device_ext = 0x322C  # EGL_DEVICE_EXT, from EGL_EXT_device_query
        query = ctypes.CFUNCTYPE(
            egl_ext.EGLBoolean, egl_ext.EGLDisplay, egl_ext.EGLint, ctypes.POINTER(ctypes.c_ssize_t)
        )(egl_ext.eglGetProcAddress("eglQueryDisplayAttribEXT"))
        device = ctypes.c_ssize_t()
        if query(EGL_DISPLAY, egl_device_ext, ctypes.byref(device)) != egl_ext.EGL_TRUE:
            return None
        return int(
            egl_ext.eglQueryDeviceAttribEXT(egl_ext.EGLDeviceEXT(device.value), egl_ext.EGL_CUDA_DEVICE_NV)
        )
    except Exception:  # the extension is optional; Mesa has none
        return None
