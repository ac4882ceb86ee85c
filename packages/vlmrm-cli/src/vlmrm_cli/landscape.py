"""Reward landscapes: the reward of several candidates along one state variable, success shaded.

The states are set by hand and rendered exactly as training renders them (:mod:`vlmrm_cli.scenes`);
:func:`write_landscape` writes ``landscape_<sweep>.csv`` (one row per state and candidate) and
``landscape_<sweep>.png``; :func:`write_ranking` does the same for labelled frames ranked by
ROC-AUC.
"""

from __future__ import annotations

import csv
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from vlmrm_cli.candidates import Candidate, scoring
from vlmrm_cli.ranking import roc_auc, spearman
from vlmrm_cli.scenes import Scene, Sweep, render_states

__all__ = ["Ranked", "rank_candidates", "score_landscape", "write_landscape", "write_ranking"]


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")  # files only, never a window
    import matplotlib.pyplot as plt

    return plt


def _success_spans(values: np.ndarray, success: np.ndarray) -> list[tuple[float, float]]:
    """Contiguous runs of successful sweep values as (first, last) pairs, widened by half a step."""
    half = (values[1] - values[0]) / 2 if len(values) > 1 else 0.0
    spans, start = [], None
    for index, ok in enumerate(success):
        if ok and start is None:
            start = index
        if start is not None and (not ok or index == len(success) - 1):
            last = index if ok else index - 1
            spans.append((float(values[start] - half), float(values[last] + half)))
            start = None
    return spans


def score_landscape(
    scene: Scene,
    sweep: Sweep,
    candidates: Sequence[Candidate],
    points: int,
    load: Callable[..., Any],
    **load_options: Any,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(sweep values (points,), success (points,), rewards (candidates, points))."""
    values, states = scene.sweep_states(sweep, points)
    rendered = list(render_states(scene, states))
    frames = np.stack([frame for frame, _ in rendered])
    success = np.array([ok for _, ok in rendered], dtype=bool)
    rewards = np.empty((len(candidates), points), np.float32)
    for index, candidate in enumerate(candidates):
        with scoring(candidate, load, **load_options) as reward_model:
            rewards[index] = reward_model(frames)
    return values, success, rewards


def write_landscape(
    out_dir: Path,
    scene: Scene,
    sweep: Sweep,
    candidates: Sequence[Candidate],
    values: np.ndarray,
    success: np.ndarray,
    rewards: np.ndarray,
) -> tuple[Path, Path]:
    """Write ``landscape_<sweep>.csv`` and ``.png`` into ``out_dir``; returns both paths."""
    out_dir.mkdir(parents=True, exist_ok=True)
    csv_path, png_path = out_dir / f"landscape_{sweep.name}.csv", out_dir / f"landscape_{sweep.name}.png"
    with open(csv_path, "w", newline="", encoding="utf-8") as stream:
        writer = csv.writer(stream)
        writer.writerow(
            ["env", "variable", "value", "unit", "success", "candidate", "model", "alpha", "reward"]
        )
        for candidate, row in zip(candidates, rewards, strict=True):
            for value, ok, reward in zip(values, success, row, strict=True):
                writer.writerow(
                    [scene.env_id, sweep.name, f"{value:.6g}", sweep.unit, int(ok), candidate.name,
                     candidate.model, f"{candidate.alpha:g}", f"{reward:.8g}"]
                )  # fmt: skip
    plt = _pyplot()
    figure, axes = plt.subplots(figsize=(8, 4.5), dpi=100)
    for first, last in _success_spans(values, success):
        axes.axvspan(first, last, color="tab:green", alpha=0.15, lw=0)
    for candidate, row in zip(candidates, rewards, strict=True):
        axes.plot(values, row, label=candidate.name, lw=1.8)
    axes.plot([], [], color="tab:green", alpha=0.3, lw=8, label="ground-truth success")
    axes.set_xlabel(f"{sweep.name.replace('_', ' ')} ({sweep.unit})")
    axes.set_ylabel("CLIP reward")
    axes.set_title(f"{scene.env_id}: reward along {sweep.name.replace('_', ' ')}", fontsize=10)
    axes.legend(fontsize=7, loc="best")
    axes.grid(alpha=0.3)
    figure.tight_layout()
    figure.savefig(png_path)
    plt.close(figure)
    return csv_path, png_path


@dataclass(frozen=True)
class Ranked:
    """One candidate's separation of success from failure frames."""

    candidate: Candidate
    auc: float
    spearman: float
    mean_success: float
    mean_failure: float


def rank_candidates(
    frames: np.ndarray,
    labels: np.ndarray,
    candidates: Sequence[Candidate],
    load: Callable[..., Any],
    **load_options: Any,
) -> list[Ranked]:
    """Score uint8 ``frames`` (N, H, W, 3) with every candidate; best ROC-AUC first."""
    labels = np.asarray(labels, dtype=bool)
    ranked = []
    for candidate in candidates:
        with scoring(candidate, load, **load_options) as reward_model:
            rewards = np.asarray(reward_model(frames), dtype=np.float64)
        ranked.append(
            Ranked(
                candidate,
                roc_auc(rewards, labels),
                spearman(rewards, labels),
                float(rewards[labels].mean()),
                float(rewards[~labels].mean()),
            )
        )
    return sorted(ranked, key=lambda item: (-item.auc, -item.spearman))


def write_ranking(out_dir: Path, ranked: Sequence[Ranked]) -> tuple[Path, Path]:
    """Write ``ranking.csv`` and ``ranking.png`` (ROC-AUC and rank correlation per candidate)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    csv_path, png_path = out_dir / "ranking.csv", out_dir / "ranking.png"
    with open(csv_path, "w", newline="", encoding="utf-8") as stream:
        writer = csv.writer(stream)
        writer.writerow(
            ["rank", "candidate", "model", "target_prompts", "baseline_prompts", "alpha", "roc_auc",
             "spearman", "mean_reward_success", "mean_reward_failure"]
        )  # fmt: skip
        for position, item in enumerate(ranked, start=1):
            candidate = item.candidate
            writer.writerow(
                [position, candidate.name, candidate.model, " | ".join(candidate.target_prompts),
                 " | ".join(candidate.baseline_prompts), f"{candidate.alpha:g}", f"{item.auc:.6f}",
                 f"{item.spearman:.6f}", f"{item.mean_success:.8g}", f"{item.mean_failure:.8g}"]
            )  # fmt: skip
    plt = _pyplot()
    figure, axes = plt.subplots(figsize=(8, 1.2 + 0.45 * len(ranked)), dpi=100)
    positions = np.arange(len(ranked))[::-1]
    axes.barh(positions + 0.2, [item.auc for item in ranked], height=0.4, label="ROC-AUC")
    axes.barh(positions - 0.2, [item.spearman for item in ranked], height=0.4, label="Spearman")
    axes.axvline(0.5, color="grey", lw=0.8, ls="--")
    axes.set_yticks(positions, [item.candidate.name for item in ranked], fontsize=7)
    axes.set_xlim(min(0.0, *(item.spearman for item in ranked)), 1.0)
    axes.set_xlabel("separation of success from failure frames (0.5 AUC = chance)")
    axes.legend(fontsize=7, loc="lower right")
    figure.tight_layout()
    figure.savefig(png_path)
    plt.close(figure)
    return csv_path, png_path
