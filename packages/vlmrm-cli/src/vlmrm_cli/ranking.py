"""How well a reward separates labelled frames: ROC-AUC and rank correlation, no SciPy needed."""

from __future__ import annotations

import numpy as np

__all__ = ["average_ranks", "roc_auc", "spearman"]


def average_ranks(values: np.ndarray) -> np.ndarray:
    """Ranks 1..n of ``values`` (n,), ties sharing the mean of their ranks (as SciPy's rankdata)."""
    values = np.asarray(values, dtype=np.float64)
    order = np.argsort(values, kind="mergesort")
    sorted_values = values[order]
    # Boundaries of runs of equal values; every member of a run gets the run's mean rank.
    starts = np.flatnonzero(np.r_[True, sorted_values[1:] != sorted_values[:-1]])
    ends = np.r_[starts[1:], len(values)]
    mean_ranks = (starts + ends + 1) / 2.0
    ranks = np.empty(len(values))
    ranks[order] = np.repeat(mean_ranks, ends - starts)
    return ranks


def roc_auc(scores: np.ndarray, labels: np.ndarray) -> float:
    """Area under the ROC curve of ``scores`` (n,) for boolean ``labels`` (n,): the chance that a
    random positive scores above a random negative, ties counting one half (Mann-Whitney U)."""
    labels = np.asarray(labels, dtype=bool)
    positives, negatives = int(labels.sum()), int((~labels).sum())
    if positives == 0 or negatives == 0:
        raise ValueError("ROC-AUC needs at least one positive and one negative label")
    ranks = average_ranks(scores)
    u = ranks[labels].sum() - positives * (positives + 1) / 2.0
    return float(u / (positives * negatives))


def spearman(scores: np.ndarray, labels: np.ndarray) -> float:
    """Spearman's rank correlation of ``scores`` (n,) with ``labels`` (n,), ties at mean ranks;
    0.0 when either is constant."""
    x, y = average_ranks(scores), average_ranks(np.asarray(labels, dtype=np.float64))
    x, y = x - x.mean(), y - y.mean()
    denominator = float(np.sqrt((x * x).sum() * (y * y).sum()))
    return float((x * y).sum() / denominator) if denominator > 0 else 0.0
