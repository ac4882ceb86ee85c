"""bench/gpu_check.py --smoke: every section of the GPU check runs on the CPU and lands in its JSON.

Cross-package: bench/ + vlmrm-envs (EGL rendering) + vlmrm-reward (scorer) + vlmrm-sb3 (training).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[1] / "bench"


@pytest.fixture(scope="module")
def smoke_report(tmp_path_factory: pytest.TempPathFactory) -> dict:
    out = tmp_path_factory.mktemp("gpu_check") / "report.json"
    completed = subprocess.run(
        [sys.executable, str(BENCH / "gpu_check.py"), "--smoke", "--out", str(out)],
        capture_output=True,
        text=True,
        timeout=900,
        env={**os.environ, "MUJOCO_GL": os.environ.get("MUJOCO_GL", "egl")},
    )
    assert completed.returncode == 0, completed.stdout + completed.stderr
    report = json.loads(out.read_text())
    assert f"report: {out}" in completed.stdout
    return report


def test_no_section_failed_or_was_skipped(smoke_report: dict) -> None:
    assert smoke_report["smoke"] is True
    assert smoke_report["errors"] == {} and smoke_report["skipped"] == []
    assert smoke_report["machine"]["device"] == "cpu" and smoke_report["bf16_peak_tflops"] is None


def test_egl_verdict_names_the_renderer(smoke_report: dict) -> None:
    egl = smoke_report["egl"]
    assert egl["backend"] == "egl" and egl["gl_renderer"]
    # On a machine without an NVIDIA GPU, frames come from Mesa's CPU rasteriser: not the NVIDIA driver.
    assert egl["nvidia"] is False and egl["software_renderer"] is True


def test_render_figures_for_one_and_several_workers(smoke_report: dict) -> None:
    render = smoke_report["render"]
    assert render["env"] == "vlmrm/Humanoid-v0" and render["size"] == [64, 64]
    assert [row["workers"] for row in render["results"]] == [1, 2]
    assert all(row["frames_per_second"] > 0 and row["renderers"] for row in render["results"])


def test_scorer_rows_for_every_batch_size_with_and_without_compile(smoke_report: dict) -> None:
    rows = smoke_report["scorer"]
    assert sorted((row["batch_size"], row["compile"]) for row in rows) == [
        (8, False),
        (8, True),
        (16, False),
        (16, True),
    ]
    for row in rows:
        assert row["precision"] == "bf16" and row["frames_per_second"] > 0
        assert row["gflops_per_frame"] > 0 and row["tflops"] == pytest.approx(
            row["frames_per_second"] * row["gflops_per_frame"] / 1e3
        )
        assert row["percent_of_bf16_peak"] is None  # no peak known for a CPU


def test_end_to_end_compares_per_step_and_episode_end_scoring(smoke_report: dict) -> None:
    e2e = smoke_report["end_to_end"]
    assert set(e2e["env_steps_per_second"]) == {"per-step", "episode-end", "episode-end async"}
    assert all(figure > 0 for figure in e2e["env_steps_per_second"].values())
    speedup = e2e["env_steps_per_second"]["episode-end"] / e2e["env_steps_per_second"]["per-step"]
    assert e2e["episode_end_speedup"] == pytest.approx(speedup)


@pytest.fixture
def gpu_check(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.syspath_prepend(str(BENCH))
    import gpu_check

    return gpu_check


def test_the_gpu_settings_are_what_the_check_promises(gpu_check) -> None:
    import episode_end_batching

    settings = gpu_check.gpu_settings()
    assert settings.device == "cuda:0" and settings.render_size == 480
    assert settings.models == ["ViT-B-32/random", "ViT-L-14/random", "ViT-bigG-14/random"]
    assert settings.batch_sizes == [256, 512] and settings.compile_modes == [False, True]
    assert settings.render_workers[0] == 1 and len(settings.render_workers) >= 1
    args = episode_end_batching.build_parser().parse_args(settings.end_to_end)
    assert (args.env, args.device, args.model) == ("humanoid", "cuda:0", "ViT-B-32/random")


@pytest.mark.parametrize(
    ("vendor", "renderer", "nvidia"),
    [
        ("NVIDIA Corporation", "NVIDIA H200/PCIe/SSE2", True),
        ("Mesa", "llvmpipe (LLVM 15.0.6, 256 bits)", False),
        ("Mesa/X.org", "softpipe", False),
    ],
)
def test_egl_verdict(gpu_check, vendor: str, renderer: str, nvidia: bool) -> None:
    report = {"backend": "egl", "gl_vendor": vendor, "gl_renderer": renderer, "cuda_device": 0}
    assert gpu_check.egl_verdict(report)["nvidia"] is nvidia
    assert gpu_check.egl_verdict({**report, "backend": "osmesa"})["nvidia"] is False
    assert gpu_check.egl_verdict(None)["nvidia"] is False
