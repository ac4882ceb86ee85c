"""Candidate rewards to compare: a model, target and baseline prompts, an alpha.

Read from a YAML file (``vlmrm landscape --candidates`` and ``vlmrm rank-prompts --candidates``)::

    candidates:
      - name: paper                      # optional; default made from the prompts and alpha
        model: local-dir:/models/clip    # optional; default the command's --model
        backend: open_clip               # optional; default the command's --backend
        target_prompts: [pole vertically upright on top of the cart]
        baseline_prompts: [pole and cart]  # optional
        alpha: [0.0, 0.5]                # one value or a list: one candidate per value

or from the command line's ``--prompt/--baseline/--alpha/--model`` options (one candidate per
model and alpha).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

__all__ = ["Candidate", "CandidateError", "candidates_from_options", "load_candidates", "scoring"]


class CandidateError(ValueError):
    """A candidates file or option that cannot be used; the message names the culprit."""


@dataclass(frozen=True)
class Candidate:
    name: str
    model: str
    target_prompts: tuple[str, ...]
    baseline_prompts: tuple[str, ...]
    alpha: float
    backend: str = "open_clip"


def _default_name(
    target: Sequence[str], baseline: Sequence[str], alpha: float, model: str, models: int
) -> str:
    name = " / ".join(target)
    if baseline:
        name += f" vs {' / '.join(baseline)}"
    name += f" (alpha {alpha:g})"
    return f"{name} [{model}]" if models > 1 else name


def candidates_from_options(
    prompts: Sequence[str],
    baselines: Sequence[str],
    alphas: Sequence[float],
    models: Sequence[str],
    backend: str = "open_clip",
) -> list[Candidate]:
    """One candidate per model and alpha, all with the same prompts."""
    if not prompts:
        raise CandidateError("give --prompt (repeatable) or --candidates FILE")
    return [
        Candidate(
            _default_name(prompts, baselines, alpha, model, len(models)),
            model,
            tuple(prompts),
            tuple(baselines),
            float(alpha),
            backend,
        )
        for model in models
        for alpha in alphas
    ]


def _strings(value: Any, where: str, required: bool) -> tuple[str, ...]:
    if value is None:
        value = []
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not all(isinstance(item, str) and item.strip() for item in value):
        raise CandidateError(f"{where}: must be a list of non-empty sentences")
    if required and not value:
        raise CandidateError(f"{where}: at least one prompt is needed")
    return tuple(value)


def _alphas(value: Any, where: str) -> list[float]:
    values = value if isinstance(value, list) else [value]
    result = []
    for item in values:
        if isinstance(item, bool) or not isinstance(item, (int, float)) or not 0 <= item <= 1:
            raise CandidateError(f"{where}: alpha must be a number in [0, 1] or a list of them, got {item!r}")
        result.append(float(item))
    if not result:
        raise CandidateError(f"{where}: alpha is an empty list")
    return result


def load_candidates(path: Path, default_model: str, default_backend: str = "open_clip") -> list[Candidate]:
    """The candidates of a YAML file (see the module docstring); CandidateError names what is wrong."""
    try:
        document = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as error:
        raise CandidateError(f"{path}: cannot read ({error})") from None
    except yaml.YAMLError as error:
        raise CandidateError(f"{path}: not valid YAML ({' '.join(str(error).split())})") from None
    entries = document.get("candidates") if isinstance(document, dict) else None
    if not isinstance(entries, list) or not entries:
        raise CandidateError(f"{path}: needs a non-empty list under the key 'candidates'")
    allowed = {"name", "model", "backend", "target_prompts", "baseline_prompts", "alpha"}
    expanded: list[tuple[str | None, str, tuple[str, ...], tuple[str, ...], float, str]] = []
    for index, entry in enumerate(entries):
        where = f"{path}: candidates[{index}]"
        if not isinstance(entry, dict):
            raise CandidateError(f"{where}: must be a mapping with target_prompts, baseline_prompts, alpha")
        unknown = sorted(set(entry) - allowed)
        if unknown:
            raise CandidateError(f"{where}.{unknown[0]}: unknown key; allowed: {', '.join(sorted(allowed))}")
        model = entry.get("model", default_model)
        if not isinstance(model, str) or not model.strip():
            raise CandidateError(f"{where}.model: must be a model spec such as local-dir:/models/clip")
        backend = entry.get("backend", default_backend)
        if not isinstance(backend, str) or not backend.strip():
            raise CandidateError(f"{where}.backend: must be a backend name such as open_clip or transformers")
        target = _strings(entry.get("target_prompts"), f"{where}.target_prompts", required=True)
        baseline = _strings(entry.get("baseline_prompts"), f"{where}.baseline_prompts", required=False)
        name = entry.get("name")
        if name is not None and not isinstance(name, str):
            raise CandidateError(f"{where}.name: must be a string")
        alphas = _alphas(entry.get("alpha", 0.0), f"{where}.alpha")
        for alpha in alphas:
            label = None if name is None else (f"{name} (alpha {alpha:g})" if len(alphas) > 1 else name)
            expanded.append((label, model, target, baseline, alpha, backend))
    models = len({item[1] for item in expanded})
    candidates = [
        Candidate(
            name or _default_name(target, baseline, alpha, model, models),
            model,
            target,
            baseline,
            alpha,
            backend,
        )
        for name, model, target, baseline, alpha, backend in expanded
    ]
    names = [candidate.name for candidate in candidates]
    duplicate = next((name for name in names if names.count(name) > 1), None)
    if duplicate is not None:
        raise CandidateError(f"{path}: two candidates are named {duplicate!r}; give them different names")
    return candidates


@contextmanager
def scoring(candidate: Candidate, load: Any, **options: Any) -> Iterator[Any]:
    """The candidate's reward model, loaded with ``load(model, **options)`` and closed afterwards."""
    reward_model = load(
        candidate.model,
        target_prompts=list(candidate.target_prompts),
        baseline_prompts=list(candidate.baseline_prompts),
        alpha=candidate.alpha,
        backend=candidate.backend,
        **options,
    )
    try:
        yield reward_model
    finally:
        reward_model.close()
