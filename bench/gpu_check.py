"""One command for a GPU machine: is everything on the GPU, and how fast is it? At most ~5 minutes.

Prints each figure as it is measured and writes them all as JSON (``--out``):

- ``egl``: whether MuJoCo renders through EGL on the NVIDIA driver (GL vendor and renderer
  strings; a software rasteriser such as llvmpipe means frames are drawn on the CPU, ~40x slower);
- ``render``: vlmrm/Humanoid-v0 frames/s (step + render) at the paper's 480x480, with 1 and with
  several worker processes rendering at once (spread over the visible GPUs as in training);
- ``scorer``: reward-model frames/s and the share of the GPU's dense bf16 peak for ViT-B-32,
  ViT-L-14 and ViT-bigG-14 (random weights) at batch 256 and 512, bf16, ``torch.compile`` off
  and on; FLOPs per frame counted as bench/reward_throughput.py counts them;
- ``end_to_end``: SAC env-steps/s on vlmrm/Humanoid-v0 with ViT-B-32, scoring each frame as it is
  rendered vs whole episodes at once (bench/episode_end_batching.py, same settings side by side).

A section that fails is recorded with its error and the others go on (exit code 1). Items
that would run past ``--budget-s`` are skipped and listed under ``skipped``.

    MUJOCO_GL=egl python bench/gpu_check.py --out gpu_check.json    # one GPU, <= 5 minutes
    python bench/gpu_check.py --smoke --out /tmp/gpu_check.json      # CPU, tiny sizes: the same code paths
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import functools
import json
import multiprocessing
import os
import platform
import subprocess
import sys
import tempfile
import time
import traceback
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

HUMANOID = "vlmrm/Humanoid-v0"
# What a frame rendered on the CPU reports as its GL renderer (vlmrm_envs.rendering's list).
SOFTWARE_RENDERER_HINTS = ("llvmpipe", "softpipe", "swrast", "software rasterizer", "lavapipe")


@dataclass
class Settings:
    """Sizes of every measurement; :func:`gpu_settings` and :func:`smoke_settings` fill them."""

    device: str
    render_size: int
    render_workers: list[int]
    render_frames: int
    models: list[str]
    batch_sizes: list[int]
    compile_modes: list[bool]
    scorer_repeats: int
    end_to_end: list[str] = field(default_factory=list)
    """Arguments of bench/episode_end_batching.py."""


def gpu_settings() -> Settings:
    cpus = os.cpu_count() or 1
    return Settings(
        device="cuda:0",
        render_size=480,  # the paper's Humanoid frames
        render_workers=sorted({1, min(4, cpus), min(8, cpus)}),
        render_frames=300,
        models=["ViT-B-32/random", "ViT-L-14/random", "ViT-bigG-14/random"],
        batch_sizes=[256, 512],
        compile_modes=[False, True],
        scorer_repeats=5,
        end_to_end=(
            "--env humanoid --vec-env dummy --device cuda:0 --model ViT-B-32/random --n-envs 8 "
            "--episode-length 50 --frame-size 224 --steps 800 --rounds 1 --train-freq 64 --reward-batch-size 256"
        ).split(),
    )


def smoke_settings(tiny_model: str) -> Settings:
    return Settings(
        device="cpu",
        render_size=64,
        render_workers=[1, 2],
        render_frames=5,
        models=[tiny_model],
        batch_sizes=[8, 16],
        compile_modes=[False, True],
        scorer_repeats=1,
        end_to_end=[
            *"--env humanoid --vec-env dummy --device cpu --n-envs 2 --episode-length 5 --frame-size 64".split(),
            *"--steps 10 --rounds 1 --train-freq 5 --net-arch 16 --batch-size 8 --model".split(),
            tiny_model,
        ],
    )


class Budget:
    """Seconds left of ``limit_s``; items that would start after it are skipped and named."""

    def __init__(self, limit_s: float) -> None:
        self.began = time.monotonic()
        self.limit_s = limit_s
        self.skipped: list[str] = []

    @property
    def elapsed_s(self) -> float:
        return time.monotonic() - self.began

    def allows(self, item: str, needs_s: float = 0.0) -> bool:
        if self.elapsed_s + needs_s <= self.limit_s:
            return True
        self.skipped.append(item)
        say(f"skipped (time budget): {item}")
        return False


def say(line: str) -> None:
    print(line, flush=True)


# -- the machine --------------------------------------------------------------------------------


def machine(device: str) -> dict[str, Any]:
    import open_clip
    import torch
    from reward_throughput import device_peak_tflops

    info: dict[str, Any] = {
        "device": device,
        "python": platform.python_version(),
        "torch": torch.__version__,
        "open_clip": open_clip.__version__,
        "cpus": os.cpu_count(),
    }
    if device.startswith("cuda"):
        index = torch.device(device).index or 0
        info["name"] = torch.cuda.get_device_name(index)
        info["cuda"] = torch.version.cuda
        info["memory_gb"] = round(torch.cuda.get_device_properties(index).total_memory / 1e9, 1)
        info["bf16_supported"] = torch.cuda.is_bf16_supported()
        info["bf16_peak_tflops"] = device_peak_tflops(torch.device(device))
        with contextlib.suppress(OSError, subprocess.SubprocessError):
            info["driver"] = subprocess.run(
                ["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader", f"--id={index}"],
                capture_output=True,
                text=True,
                timeout=20,
            ).stdout.strip()
    else:
        info["name"] = platform.processor() or platform.machine()
        info["bf16_peak_tflops"] = None
    return info


# -- rendering ----------------------------------------------------------------------------------


def _render_worker(size: int, frames: int, barrier: Any, results: Any) -> None:
    """In a process of its own: make Humanoid, render ``frames`` frames after the barrier, report."""
    try:
        import gymnasium as gym
        import vlmrm_envs  # noqa: F401  (before MuJoCo: settles MUJOCO_GL and this worker's GPU)
        from vlmrm_envs.rendering import render_report

        env = gym.make(HUMANOID, width=size, height=size)
        env.reset(seed=0)
        env.action_space.seed(0)
        env.step(env.action_space.sample())
        first = env.render()  # creates the GL context; not timed
        report = render_report()
        barrier.wait(timeout=300)
        began = time.perf_counter()
        for _ in range(frames):
            _, _, terminated, truncated, _ = env.step(env.action_space.sample())
            env.render()
            if terminated or truncated:
                env.reset()
        seconds = time.perf_counter() - began
        env.close()
        results.put({"frames": frames, "seconds": seconds, "report": report, "shape": list(first.shape)})
    except BaseException as error:  # reported by the parent; the barrier must not wait forever
        barrier.abort()
        results.put({"error": f"{type(error).__name__}: {error}"})


def render(settings: Settings, budget: Budget) -> dict[str, Any]:
    """Humanoid frames/s with 1..N render processes started together; the first one's GL report."""
    context = multiprocessing.get_context("spawn")  # fresh processes: no GL or CUDA state inherited
    section: dict[str, Any] = {"env": HUMANOID, "size": [settings.render_size] * 2, "results": []}
    for workers in settings.render_workers:
        if not budget.allows(f"render with {workers} workers", needs_s=20):
            continue
        barrier, results = context.Barrier(workers), context.Queue()
        processes = [
            context.Process(
                target=_render_worker, args=(settings.render_size, settings.render_frames, barrier, results)
            )
            for _ in range(workers)
        ]
        for process in processes:
            process.start()
        reports = [results.get(timeout=600) for _ in processes]
        for process in processes:
            process.join(timeout=60)
        errors = [report["error"] for report in reports if "error" in report]
        if errors:
            raise RuntimeError(f"a render worker failed: {errors[0]}")
        total = sum(report["frames"] for report in reports)
        # All started at the barrier: the slowest one's time is the wall time of all the frames.
        fps = total / max(report["seconds"] for report in reports)
        renderers = sorted({f"{r['report']['gl_vendor']} / {r['report']['gl_renderer']}" for r in reports})
        devices = sorted({str(r["report"]["cuda_device"]) for r in reports})
        section["results"].append(
            {"workers": workers, "frames_per_second": fps, "renderers": renderers, "cuda_devices": devices}
        )
        section.setdefault("first_worker", reports[0]["report"])
        say(
            f"render   {HUMANOID} {settings.render_size}x{settings.render_size}, {workers} worker(s): {fps:9.1f} frames/s"
        )
    return section


def egl_verdict(report: dict[str, Any] | None) -> dict[str, Any]:
    """Whether frames are drawn by the NVIDIA driver through EGL, from a worker's render report."""
    if not report:
        return {"nvidia": False, "reason": "no frame was rendered"}
    vendor, renderer = report.get("gl_vendor") or "", report.get("gl_renderer") or ""
    software = any(hint in renderer.lower() for hint in SOFTWARE_RENDERER_HINTS)
    nvidia = report.get("backend") == "egl" and "nvidia" in f"{vendor} {renderer}".lower() and not software
    return {
        "nvidia": nvidia,
        "backend": report.get("backend"),
        "gl_vendor": vendor,
        "gl_renderer": renderer,
        "cuda_device": report.get("cuda_device"),
        "software_renderer": software,
    }


# -- the scorer ---------------------------------------------------------------------------------


def scorer(settings: Settings, peak_tflops: float | None, budget: Budget) -> list[dict[str, Any]]:
    """frames/s per model, batch size and compile mode, bf16; TFLOP/s and % of the bf16 peak."""
    import torch
    from reward_throughput import image_tower_flops, time_calls
    from vlmrm_reward import load_reward_model

    device = torch.device(settings.device)
    rows: list[dict[str, Any]] = []
    flops: dict[str, float] = {}
    rng = np.random.default_rng(0)
    # Compile off for every model first: if the budget runs out, the slow compiles are what is left.
    for compiled in settings.compile_modes:
        for model in settings.models:
            label = model if not model.startswith("local-dir:") else "tiny (random)"
            if not budget.allows(
                f"scorer {label} compile={compiled}", needs_s=30 if device.type == "cuda" else 0
            ):
                continue
            began = time.perf_counter()
            # Random weights initialised on the GPU itself: a 2.5B-parameter init on the CPU takes minutes.
            with torch.device(device) if device.type == "cuda" else contextlib.nullcontext():
                reward_model = load_reward_model(
                    model,
                    target_prompts=["a humanoid robot kneeling"],
                    device=device,
                    precision="bf16",
                    compile=compiled,
                )
            load_s = time.perf_counter() - began
            try:
                if model not in flops:
                    flops[model] = image_tower_flops(reward_model)
                height, width = reward_model.preprocess_config.size
                for batch_size in settings.batch_sizes:
                    reward_model.batch_size = batch_size
                    frames = rng.integers(0, 256, size=(batch_size, height, width, 3), dtype=np.uint8)
                    began = time.perf_counter()
                    reward_model(frames)  # first call at this size: compiles when compile is on
                    first_call_s = time.perf_counter() - began
                    seconds = time_calls(reward_model, frames, settings.scorer_repeats, device)
                    fps = batch_size / seconds
                    tflops = fps * flops[model] / 1e12
                    share = 100 * tflops / peak_tflops if peak_tflops else None
                    rows.append(
                        {
                            "model": label,
                            "batch_size": batch_size,
                            "compile": compiled,
                            "precision": "bf16",
                            "frame_size": [height, width],
                            "frames_per_second": fps,
                            "gflops_per_frame": flops[model] / 1e9,
                            "tflops": tflops,
                            "percent_of_bf16_peak": share,
                            "load_s": load_s,
                            "first_call_s": first_call_s,
                        }
                    )
                    say(
                        f"scorer   {label:<20} batch {batch_size:>4} compile {'on ' if compiled else 'off'}: "
                        f"{fps:9.1f} frames/s {tflops:8.2f} TFLOP/s"
                        + (f" {share:5.1f}% of bf16 peak" if share is not None else "")
                    )
            finally:
                reward_model.close()
                del reward_model
                if device.type == "cuda":
                    torch.cuda.empty_cache()
    return rows


# -- end to end ---------------------------------------------------------------------------------


def end_to_end(settings: Settings, budget: Budget) -> dict[str, Any] | None:
    """bench/episode_end_batching.py's comparison, per-step vs episode-end scoring, with its pieces."""
    import episode_end_batching

    if not budget.allows("end to end", needs_s=60 if settings.device.startswith("cuda") else 0):
        return None
    args = episode_end_batching.build_parser().parse_args(settings.end_to_end)
    results, spec, size = episode_end_batching.compare(args)
    best = {name: max(figures) for name, figures in results.items()}
    for name, figure in best.items():
        say(f"e2e      {name:<18}: {figure:9.1f} env-steps/s ({figure / best['per-step']:.2f}x per-step)")
    return {
        "env": HUMANOID,
        "model": spec if not spec.startswith("local-dir:") else "tiny (random)",
        "frame_size": [size, size],
        "arguments": settings.end_to_end,
        "env_steps_per_second": best,
        "rounds": results,
        "episode_end_speedup": best["episode-end"] / best["per-step"],
    }


# -- main ---------------------------------------------------------------------------------------


def run(settings: Settings, budget: Budget, smoke: bool, peak_tflops: float | None = None) -> dict[str, Any]:
    report: dict[str, Any] = {
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "smoke": smoke,
        "settings": asdict(settings),
        "errors": {},
    }

    def section(name: str, measure: Any) -> None:
        try:
            report[name] = measure()
        except Exception as error:  # one failed section must not lose the others' figures
            traceback.print_exc()
            report[name] = None
            report["errors"][name] = f"{type(error).__name__}: {' '.join(str(error).split())}"
            say(f"{name}: FAILED ({report['errors'][name]})")

    section("machine", functools.partial(machine, settings.device))
    section("render", functools.partial(render, settings, budget))
    report["egl"] = egl_verdict((report.get("render") or {}).get("first_worker"))
    say(
        f"egl      {'NVIDIA driver' if report['egl']['nvidia'] else 'NOT the NVIDIA driver'}: "
        f"{report['egl'].get('gl_vendor')} / {report['egl'].get('gl_renderer')}"
    )
    peak = peak_tflops or (report.get("machine") or {}).get("bf16_peak_tflops")
    # End to end before the big models: it needs one small model, and the budget may end in bigG's compile.
    section("end_to_end", functools.partial(end_to_end, settings, budget))
    section("scorer", functools.partial(scorer, settings, peak, budget))
    report["bf16_peak_tflops"] = peak
    report["skipped"] = budget.skipped
    report["seconds"] = budget.elapsed_s
    return report


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--out", default="gpu_check.json", help="where the JSON report goes")
    parser.add_argument(
        "--smoke", action="store_true", help="CPU, tiny model and frames: checks the code paths"
    )
    parser.add_argument(
        "--budget-s", type=float, default=280.0, help="skip what would start after this many s"
    )
    parser.add_argument(
        "--peak-tflops",
        type=float,
        default=None,
        help="the GPU's dense bf16 peak, if not in reward_throughput's table",
    )
    args = parser.parse_args()

    import torch

    if args.smoke:
        from vlmrm_reward.testing import make_tiny_open_clip

        settings = smoke_settings(make_tiny_open_clip(tempfile.mkdtemp(prefix="gpu-check-clip-")))
        # Dynamo captures the graph as on the GPU; its eager backend stands in for inductor, whose C++
        # code generation alone takes minutes on a small CPU.
        torch.compile = functools.partial(torch.compile, backend="eager")
    else:
        if not torch.cuda.is_available():
            sys.exit("gpu_check: no CUDA device is visible; on a CPU, run it with --smoke")
        settings = gpu_settings()
    report = run(settings, Budget(args.budget_s), args.smoke, args.peak_tflops)
    with open(args.out, "w", encoding="utf-8") as stream:
        json.dump(report, stream, indent=2)
    say(f"report: {args.out} ({report['seconds']:.0f} s)")
    if report["errors"]:
        sys.exit(1)


if __name__ == "__main__":
    main()
