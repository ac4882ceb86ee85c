"""``vlmrm sweep``: a base config and axes of values, expanded into one validated config per point.

A sweep file::

    name: kneeling-alpha                 # names the folder, the Kubernetes Job and the wandb group
    base: ../configs/humanoid_kneeling.yaml   # a config file (relative to this file) or a mapping
    set: {rl.n_workers: 1}               # keys set in every point
    grid:                                # every combination of these values ...
      reward.alpha: [0.0, 0.5, 1.0]
      seed: [0, 1, 2]
    points:                              # ... for each of these sets of keys changed together
      - {reward.target_prompts: [a humanoid robot kneeling]}
      - {reward.target_prompts: [a humanoid robot kneeling on both knees]}
    kubernetes: {image: registry/vlmrm:latest, parallelism: 4, gpus: 1}

Point ``i``'s config is written to ``<sweep dir>/points/point-<i>.yaml`` and its run lives in
``<sweep dir>/point-<i>/`` (``vlmrm train --run-dir``), so a sweep run again continues every
point from its latest checkpoint. ``kubernetes.yaml`` holds one ConfigMap with every point's
config and one Indexed Job whose pod ``i`` trains point ``i``.
"""

from __future__ import annotations

import itertools
import json
import math
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from vlmrm_cli.checkpoints import latest_checkpoint
from vlmrm_cli.config import (
    Config,
    ConfigError,
    dump_config,
    parse_yaml,
    read_config_source,
    set_key,
    validate_config,
)

__all__ = [
    "INDEX_FILE",
    "KubernetesSettings",
    "Point",
    "PointResult",
    "Sweep",
    "SweepSpec",
    "kubernetes_manifests",
    "load_sweep",
    "point_results",
    "run_local",
    "write_results",
    "write_sweep",
]

INDEX_FILE = "sweep.yaml"
POINTS_FOLDER = "points"
LOGS_FOLDER = "logs"
MANIFEST_FILE = "kubernetes.yaml"
# Kubernetes keeps objects in etcd, whose requests are limited to about 1.5 MB; a ConfigMap to 1 MiB.
CONFIGMAP_MAX_BYTES = 1024 * 1024
# Where the pod mounts the points' configs and the runs volume.
POINTS_MOUNT = "/sweep"
RUNS_MOUNT = "/runs"

# A DNS-1123 label, short enough that "<name>-points" and Job pod names stay within 63 characters.
SweepName = Annotated[str, Field(pattern=r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$", max_length=40)]


def point_name(index: int) -> str:
    """``point-<index>``: the run folder and config file stem of point ``index``."""
    return f"point-{index}"


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid")


class KubernetesSettings(_Section):
    """``kubernetes``: the Indexed Job's image, parallelism and resources per point."""

    image: str = "DOCKER_USER/vlmrm:latest"
    parallelism: Annotated[int, Field(gt=0)] | None = None
    """Points trained at once; default: all of them."""
    gpus: Annotated[int, Field(ge=0)] = 1
    cpu: str = "8"
    memory: str = "64Gi"
    retries_per_point: Annotated[int, Field(ge=0)] = 2
    """Failures a point may have before it is given up (preemptions and evictions do not count)."""
    namespace: str | None = None
    runs_claim: str = "vlmrm-runs"
    model_cache_claim: str = "vlmrm-model-cache"
    wandb_secret: str = "wandb"
    shm_size: str = "16Gi"


class SweepSpec(_Section):
    """A sweep file (see the module docstring)."""

    name: SweepName
    base: str | dict[str, Any]
    set: dict[str, Any] = {}
    grid: dict[str, Annotated[list[Any], Field(min_length=1)]] = {}
    points: list[dict[str, Any]] = []
    kubernetes: KubernetesSettings = Field(default_factory=KubernetesSettings)


@dataclass
class Point:
    """One point of a sweep: its index, the keys it sets, and its validated config."""

    index: int
    values: dict[str, Any]
    config: Config

    @property
    def name(self) -> str:
        return point_name(self.index)

    @property
    def label(self) -> str:
        """``key=value`` pairs on one line, long values shortened."""
        return label_of(self.values)


@dataclass
class Sweep:
    """A validated sweep: its spec and every point."""

    spec: SweepSpec
    points: list[Point] = field(default_factory=list)

    @property
    def name(self) -> str:
        return self.spec.name


def label_of(values: dict[str, Any], width: int = 40, separator: str = " ") -> str:
    """``key=value`` pairs, each value shortened to ``width`` characters."""
    parts = []
    for key, value in values.items():
        text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
        text = " ".join(str(text).split())
        parts.append(f"{key}={text if len(text) <= width else text[: width - 3] + '...'}")
    return separator.join(parts) or "base config"


def _one_line_validation_error(error: ValidationError, where: str) -> ConfigError:
    first = error.errors(include_url=False)[0]
    path = ".".join(str(part) for part in first["loc"]) or "sweep"
    message = first["msg"]
    if first["type"] == "extra_forbidden":
        message = f"unknown key; a sweep has {', '.join(SweepSpec.model_fields)}"
    elif "input" in first and not isinstance(first["input"], (dict, list)):
        message += f" (got {first['input']!r})"
    return ConfigError(f"{where}: {path}: {message}")


def load_sweep(source: str, probe: Callable[[Config], Any] | None = None) -> Sweep:
    """Read a sweep file (or YAML text), expand its points and validate each of them.

    Every point is validated as ``vlmrm train`` validates a config, and resolved against its env
    (algorithm, policy, ``algorithm_kwargs``), before the caller writes anything. Raises
    :class:`ConfigError` with one line naming the point and the key.

    Args:
        probe: ``probe(config) -> (observation_space, action_space, episode_length)``; default: make the env once
            per distinct env setting.
    """
    from vlmrm_cli.envs import probe_env
    from vlmrm_cli.fits import resolve

    data, where = read_config_source(source)
    try:
        spec = SweepSpec.model_validate(data)
    except ValidationError as error:
        raise _one_line_validation_error(error, where) from None
    if isinstance(spec.base, dict):
        base = spec.base
    else:
        path = Path(spec.base)
        if not path.is_absolute() and where != "config text":
            path = Path(where).parent / path
        if not path.is_file():
            raise ConfigError(f"{where}: base: no such config file {path}")
        base, _ = read_config_source(str(path))
    for i, point in enumerate(spec.points):
        overlap = sorted(set(point) & set(spec.grid))
        if overlap:
            raise ConfigError(f"{where}: points[{i}] and grid both set {overlap[0]}; set it in one of them")

    probed: dict[str, Any] = {}

    def cached_probe(config: Config) -> Any:
        key = json.dumps(
            [config.env_name, config.env_kwargs, config.render.model_dump(), config.rl.episode_length],
            sort_keys=True,
            default=str,
        )
        if key not in probed:
            probed[key] = (probe or probe_env)(config)
        return probed[key]

    sweep = Sweep(spec)
    combinations = list(itertools.product(*spec.grid.values()))
    for index, (chosen, combination) in enumerate(itertools.product(spec.points or [{}], combinations)):
        values = {**chosen, **dict(zip(spec.grid, combination, strict=True))}
        try:
            config = yaml.safe_load(yaml.safe_dump(base))
            for key, value in {**spec.set, **values}.items():
                set_key(config, key, value)
            _tag(config, spec.name, index, values)
            validated = validate_config(config)
            resolve(validated, probe=cached_probe)
        except ConfigError as error:
            raise ConfigError(f"{spec.name} point {index} ({label_of(values)}): {error}") from None
        sweep.points.append(Point(index, values, validated))
    return sweep


def _tag(config: dict[str, Any], sweep_name: str, index: int, values: dict[str, Any]) -> None:
    """Name the sweep and point ``index`` (setting ``values``) in the config's tags, description and
    wandb group and name.

    Keys of the wrong type are left as they are, for validation to name them.
    """
    tags = config.get("tags") or []
    if isinstance(tags, list):
        config["tags"] = [*tags, f"sweep:{sweep_name}", f"point:{index}"]
    description = f"{sweep_name} point {index}: {label_of(values)}"
    given = config.get("description")
    if not given:
        config["description"] = description
    elif isinstance(given, str):
        config["description"] = f"{given}; {description}"
    wandb = config.setdefault("wandb", {})
    if isinstance(wandb, dict):
        wandb.setdefault("group", sweep_name)
        wandb.setdefault("name", f"{sweep_name}-{point_name(index)}")


# -- writing ------------------------------------------------------------------------------------


def point_configs(sweep: Sweep) -> dict[str, str]:
    """``point-<i>.yaml`` -> the point's config as YAML (unresolved: the pod resolves it)."""
    return {f"{point.name}.yaml": dump_config(point.config) for point in sweep.points}


def index_text(sweep: Sweep) -> str:
    """The sweep's index: its name and each point's index and values."""
    index = {
        "name": sweep.name,
        "points": [{"index": point.index, "values": point.values} for point in sweep.points],
    }
    return yaml.safe_dump(index, sort_keys=False, allow_unicode=True, width=100)


def kubernetes_manifests(sweep: Sweep) -> list[dict[str, Any]]:
    """One ConfigMap holding every point's config, and one Indexed Job training point i in pod i."""
    settings, name = sweep.spec.kubernetes, sweep.name
    labels = {"app": "vlmrm", "vlmrm/sweep": name}
    metadata = {"labels": labels, **({"namespace": settings.namespace} if settings.namespace else {})}
    data = {INDEX_FILE: index_text(sweep), **point_configs(sweep)}
    # JOB_COMPLETION_INDEX is the pod's index in the container's environment, and the kubelet
    # expands $(VAR) in args from it: pod i reads point i's config and keeps its run in a folder
    # of its own, which a pod restarted after preemption finds and continues.
    index = "$(JOB_COMPLETION_INDEX)"
    container = {
        "name": "train",
        "image": settings.image,
        # args, not command: the image's entrypoint (tini) stays, and forwards SIGTERM to vlmrm.
        "args": [
            "vlmrm",
            "train",
            f"{POINTS_MOUNT}/point-{index}.yaml",
            "--run-dir",
            f"{RUNS_MOUNT}/{name}/point-{index}",
            "--no-progress",
        ],
        "env": [
            # The Job controller adds this variable itself; declared here too, the args' use of it
            # does not depend on that.
            {
                "name": "JOB_COMPLETION_INDEX",
                "valueFrom": {
                    "fieldRef": {
                        "fieldPath": "metadata.annotations['batch.kubernetes.io/job-completion-index']"
                    }
                },
            },
            {
                "name": "WANDB_API_KEY",
                "valueFrom": {
                    "secretKeyRef": {"name": settings.wandb_secret, "key": "WANDB_API_KEY", "optional": True}
                },
            },
        ],
        "resources": {
            "limits": {
                "memory": settings.memory,
                **({"nvidia.com/gpu": settings.gpus} if settings.gpus else {}),
            },
            "requests": {"cpu": settings.cpu, "memory": settings.memory},
        },
        "volumeMounts": [
            {"name": "points", "mountPath": POINTS_MOUNT, "readOnly": True},
            {"name": "model-cache", "mountPath": "/home/vlmrm/.cache"},
            {"name": "runs", "mountPath": RUNS_MOUNT},
            {"name": "dshm", "mountPath": "/dev/shm"},
        ],
    }
    config_map = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": f"{name}-points", **metadata},
        "data": data,
    }
    job = {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": name, **metadata},
        "spec": {
            "completionMode": "Indexed",
            "completions": len(sweep.points),
            "parallelism": min(settings.parallelism or len(sweep.points), len(sweep.points)),
            # Each point has its own retries: one point that keeps failing does not end the others.
            "backoffLimitPerIndex": settings.retries_per_point,
            "podFailurePolicy": {
                "rules": [
                    # Preempted, evicted or drained: not the run's fault; a new pod continues it.
                    {"action": "Ignore", "onPodConditions": [{"type": "DisruptionTarget", "status": "True"}]},
                    # Exit code 2 is a bad config or model: retrying cannot help.
                    {
                        "action": "FailIndex",
                        "onExitCodes": {"containerName": "train", "operator": "In", "values": [2]},
                    },
                ]
            },
            "template": {
                "metadata": {"labels": labels},
                "spec": {
                    "restartPolicy": "Never",  # podFailurePolicy needs it; the Job makes the new pod
                    "terminationGracePeriodSeconds": 120,  # time for the checkpoint written on SIGTERM
                    "securityContext": {"runAsUser": 1000, "runAsGroup": 1000, "fsGroup": 1000},
                    "containers": [container],
                    "volumes": [
                        {"name": "points", "configMap": {"name": f"{name}-points"}},
                        {
                            "name": "model-cache",
                            "persistentVolumeClaim": {"claimName": settings.model_cache_claim},
                        },
                        {"name": "runs", "persistentVolumeClaim": {"claimName": settings.runs_claim}},
                        {"name": "dshm", "emptyDir": {"medium": "Memory", "sizeLimit": settings.shm_size}},
                    ],
                },
            },
        },
    }
    return [config_map, job]


def write_sweep(sweep: Sweep, folder: Path) -> Path:
    """Write the index, every point's config and the Kubernetes manifests into ``folder``.

    A folder that holds another sweep (other points or configs) is refused with
    :class:`ConfigError` before anything is written; the same sweep is written again (its runs
    continue). Returns the manifests' path.
    """
    configs = point_configs(sweep)
    manifests = kubernetes_manifests(sweep)
    size = sum(len(text.encode()) for text in manifests[0]["data"].values())
    if size > CONFIGMAP_MAX_BYTES:
        raise ConfigError(
            f"{sweep.name}: the {len(sweep.points)} points' configs take {size} bytes, more than a "
            f"Kubernetes ConfigMap holds ({CONFIGMAP_MAX_BYTES}); split the sweep"
        )
    if (folder / INDEX_FILE).is_file():
        written = {
            path.name: path.read_text(encoding="utf-8")
            for path in (folder / POINTS_FOLDER).glob("point-*.yaml")
        }
        if written != configs:
            raise ConfigError(
                f"{folder} holds a sweep with other points; give another --out folder, or delete it"
            )
    (folder / POINTS_FOLDER).mkdir(parents=True, exist_ok=True)
    for file_name, text in configs.items():
        (folder / POINTS_FOLDER / file_name).write_text(text, encoding="utf-8")
    (folder / INDEX_FILE).write_text(index_text(sweep), encoding="utf-8")
    manifest = folder / MANIFEST_FILE
    header = (
        f"# Sweep {sweep.name}: {len(sweep.points)} points, written by `vlmrm sweep`.\n"
        f"#   kubectl apply -f {manifest}\n"
        f"# Runs land in the {sweep.spec.kubernetes.runs_claim} volume under {RUNS_MOUNT}/{sweep.name}/point-<i>.\n"
    )
    text = yaml.dump_all(manifests, Dumper=_PlainDumper, sort_keys=False, allow_unicode=True, width=100)
    manifest.write_text(header + text, encoding="utf-8")
    return manifest


class _PlainDumper(yaml.SafeDumper):
    """Writes a value used twice (the labels) twice, rather than as a YAML anchor and alias."""

    def ignore_aliases(self, data: Any) -> bool:
        return True


# -- running on this machine --------------------------------------------------------------------


def run_local(
    sweep: Sweep,
    folder: Path,
    jobs: int,
    echo: Callable[[str], None] = print,
    command: Sequence[str] = (sys.executable, "-m", "vlmrm_cli"),
) -> int:
    """Train the points ``jobs`` at a time, each ``vlmrm train --run-dir`` in a process of its own.

    Finished points are skipped; stopped ones continue from their checkpoints. A point that
    fails is reported and the others go on. SIGINT / SIGTERM are passed on to the running
    points (each saves a checkpoint and exits) and no further point starts; a second signal is
    passed on too (the points stop without a checkpoint). Each point's output goes to
    ``logs/point-<i>.log`` and its exit code to ``logs/point-<i>.exit``.

    Returns the exit code: 0 when every point finished, 128 + the signal after a signal, else 1.
    """
    logs = folder / LOGS_FOLDER
    logs.mkdir(parents=True, exist_ok=True)
    pending = []
    for point in sweep.points:
        if (folder / point.name / "final_model.zip").is_file():
            echo(f"{point.name} already finished: {point.label}")
        else:
            pending.append(point)
    running: dict[int, tuple[Point, subprocess.Popen, Any]] = {}
    failed: list[int] = []
    received: list[int] = []

    def forward(signum: int, frame: object) -> None:
        received.append(signum)
        echo(f"{signal.Signals(signum).name}: passed on to the {len(running)} running point(s); none starts")
        for _, process, _ in running.values():
            if process.poll() is None:
                process.send_signal(signum)

    previous = {signum: signal.signal(signum, forward) for signum in (signal.SIGINT, signal.SIGTERM)}
    try:
        while running or (pending and not received):
            while pending and not received and len(running) < jobs:
                point = pending.pop(0)
                log = open(logs / f"{point.name}.log", "a", encoding="utf-8")  # closed when the point ends
                process = subprocess.Popen(
                    [
                        *command,
                        "train",
                        str(folder / POINTS_FOLDER / f"{point.name}.yaml"),
                        "--run-dir",
                        str(folder / point.name),
                        "--no-progress",
                    ],
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    # Its own session: a Ctrl-C at the terminal reaches the points once, through forward().
                    start_new_session=True,
                )
                running[point.index] = (point, process, log)
                echo(f"{point.name} started: {point.label} (log: {logs / point.name}.log)")
            for index, (point, process, log) in list(running.items()):
                code = process.poll()
                if code is None:
                    continue
                log.close()
                del running[index]
                (logs / f"{point.name}.exit").write_text(f"{code}\n")
                if code == 0:
                    echo(f"{point.name} finished")
                elif received and code in (128 + signal.SIGINT, 128 + signal.SIGTERM):
                    echo(f"{point.name} stopped with a checkpoint; the same command continues it")
                else:
                    failed.append(index)
                    echo(f"{point.name} failed (exit {code}): {_last_line(logs / f'{point.name}.log')}")
            time.sleep(0.1)
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
        for _, process, log in running.values():  # only after an exception: stop what runs
            process.kill()
            process.wait()
            log.close()
    if received:
        return 128 + received[0]
    if failed:
        echo(
            f"{len(failed)} of {len(sweep.points)} points failed: {', '.join(point_name(i) for i in failed)}"
        )
        return 1
    return 0


def _last_line(path: Path) -> str:
    lines = [line.strip() for line in path.read_text(encoding="utf-8", errors="replace").splitlines()]
    lines = [line for line in lines if line]
    return lines[-1] if lines else "no output"


# -- status and results -------------------------------------------------------------------------

CLIP_RETURN = "rollout/clip_ep_rew_mean"
TRUE_RETURN = "rollout/original_ep_rew_mean"
SUCCESS_RATE = "eval/success_rate"
EVAL_SUMMARY = Path("eval") / "summary.json"
"""A run's evaluation summary (``vlmrm eval``); its ``success_rate`` is read when present."""


@dataclass
class PointResult:
    """What a point's run folder tells: state, steps, and its returns and success rate if logged."""

    index: int
    values: dict[str, Any]
    state: str
    steps: int
    n_steps: int | None
    clip_return_final: float | None = None
    clip_return_best: float | None = None
    true_return_final: float | None = None
    true_return_best: float | None = None
    success_rate: float | None = None

    @property
    def name(self) -> str:
        return point_name(self.index)


def read_index(folder: Path) -> list[tuple[int, dict[str, Any]]]:
    """The points of the sweep in ``folder``: from its index file, else from its ``point-<i>`` folders."""
    index_path = folder / INDEX_FILE
    if index_path.is_file():
        index = parse_yaml(index_path.read_text(encoding="utf-8"), str(index_path))
        try:
            return [(int(point["index"]), dict(point.get("values") or {})) for point in index["points"]]
        except (TypeError, KeyError, ValueError):
            raise ConfigError(f"{index_path}: not a sweep index written by `vlmrm sweep`") from None
    found = sorted(
        int(path.name.removeprefix("point-"))
        for path in folder.glob("point-*")
        if path.is_dir() and path.name.removeprefix("point-").isdigit()
    )
    if not found:
        raise ConfigError(f"{folder}: no sweep here (no {INDEX_FILE} and no point-<i> run folders)")
    return [(index, {}) for index in found]


def point_results(folder: Path, metrics: bool = True) -> list[PointResult]:
    """Each point's state (finished, stopped, started, failed, not started) and, with ``metrics``,
    the final and best CLIP and ground-truth returns (TensorBoard) and the success rate."""
    results = []
    for index, values in read_index(folder):
        run = folder / point_name(index)
        config_path = run / "config.yaml"
        if not config_path.is_file():
            config_path = folder / POINTS_FOLDER / f"{point_name(index)}.yaml"
        n_steps = None
        if config_path.is_file():
            data = parse_yaml(config_path.read_text(encoding="utf-8"), str(config_path)) or {}
            n_steps = (data.get("rl") or {}).get("n_steps")
        latest = latest_checkpoint(run / "checkpoints")
        steps = latest[1] if latest else 0
        exit_file = folder / LOGS_FOLDER / f"{point_name(index)}.exit"
        exit_code = int(exit_file.read_text().strip() or 0) if exit_file.is_file() else None
        if (run / "final_model.zip").is_file():
            state = "finished"
        elif exit_code not in (None, 0, 130, 143):
            state = f"failed (exit {exit_code})"
        elif latest is not None:
            state = "stopped" if exit_code is not None else "running or stopped"
        elif run.is_dir():
            state = "started"
        else:
            state = "not started"
        result = PointResult(index, values, state, steps, n_steps)
        if metrics and run.is_dir():
            _read_metrics(run, result)
        results.append(result)
    return results


def _read_metrics(run: Path, result: PointResult) -> None:
    scalars = _scalars(run / "tensorboard", (CLIP_RETURN, TRUE_RETURN, SUCCESS_RATE))
    for tag, final_name, best_name in (
        (CLIP_RETURN, "clip_return_final", "clip_return_best"),
        (TRUE_RETURN, "true_return_final", "true_return_best"),
    ):
        values = [value for _, value in scalars.get(tag, []) if math.isfinite(value)]
        if values:
            setattr(result, final_name, values[-1])
            setattr(result, best_name, max(values))
    result.success_rate = _summary_success_rate(run)
    if result.success_rate is None and scalars.get(SUCCESS_RATE):
        result.success_rate = scalars[SUCCESS_RATE][-1][1]


def _scalars(folder: Path, tags: Sequence[str]) -> dict[str, list[tuple[int, float]]]:
    """``tag -> [(step, value), ...]`` in step order from the TensorBoard events in ``folder``.

    A resumed run logs again from its checkpoint's step: for a step logged twice, the later wins.
    """
    if not folder.is_dir():
        return {}
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(folder), size_guidance={"scalars": 0})
    events.Reload()
    found = set(events.Tags().get("scalars", []))
    scalars = {}
    for tag in tags:
        if tag in found:
            by_step = {
                event.step: event.value for event in sorted(events.Scalars(tag), key=lambda e: e.wall_time)
            }
            scalars[tag] = sorted(by_step.items())
    return scalars


def _summary_success_rate(run: Path) -> float | None:
    """``success_rate`` from the run's newest evaluation summary (``eval/summary.json``, or one
    in a folder under ``eval/``), if any."""
    candidates = [run / EVAL_SUMMARY, *(run / "eval").glob("*/summary.json")]
    existing = [path for path in candidates if path.is_file()]
    for path in sorted(existing, key=lambda path: path.stat().st_mtime, reverse=True):
        try:
            rate = json.loads(path.read_text(encoding="utf-8")).get("success_rate")
        except (OSError, ValueError, AttributeError):
            continue
        if isinstance(rate, (int, float)) and not isinstance(rate, bool):
            return float(rate)
    return None


RESULT_COLUMNS = (
    "clip_return_final",
    "clip_return_best",
    "true_return_final",
    "true_return_best",
    "success_rate",
)


def result_rows(results: Sequence[PointResult]) -> tuple[list[str], list[list[str]]]:
    """The results table: a header and one row per point (values as text, empty when unknown)."""
    keys = list(dict.fromkeys(key for result in results for key in result.values))
    header = ["point", "state", "steps", *keys, *RESULT_COLUMNS]
    rows = []
    for result in results:
        values = [
            v if isinstance(v, str) else json.dumps(v, ensure_ascii=False)
            for v in (result.values.get(key, "") for key in keys)
        ]
        numbers = [getattr(result, column) for column in RESULT_COLUMNS]
        steps = f"{result.steps}/{result.n_steps}" if result.n_steps else str(result.steps)
        rows.append(
            [result.name, result.state, steps, *values, *("" if n is None else f"{n:.6g}" for n in numbers)]
        )
    return header, rows


def write_results(results: Sequence[PointResult], csv_path: Path, plot_path: Path | None) -> None:
    """Write the results table as CSV and, with ``plot_path``, a PNG bar chart of it."""
    import csv

    header, rows = result_rows(results)
    with open(csv_path, "w", newline="", encoding="utf-8") as stream:
        writer = csv.writer(stream)
        writer.writerow(header)
        writer.writerows(rows)
    if plot_path is not None:
        results_plot(results, plot_path)


def results_plot(results: Sequence[PointResult], path: Path) -> None:
    """Bars per point: final CLIP return, ground-truth return and success rate; dots: the best."""
    from matplotlib.figure import Figure

    panels = [("CLIP return", "clip_return"), ("ground-truth return", "true_return")]
    if any(result.success_rate is not None for result in results):
        panels.append(("success rate", "success_rate"))
    figure = Figure(figsize=(max(6.0, 0.6 * len(results) + 2), 2.6 * len(panels)), layout="constrained")
    axes = figure.subplots(len(panels), 1, sharex=True, squeeze=False)[:, 0]
    positions = list(range(len(results)))
    nan = float("nan")
    for ax, (title, metric) in zip(axes, panels, strict=True):
        if metric == "success_rate":
            ax.bar(
                positions, [nan if r.success_rate is None else r.success_rate for r in results], color="C2"
            )
            ax.set_ylim(0, 1)
        else:
            final = [getattr(r, f"{metric}_final") for r in results]
            best = [getattr(r, f"{metric}_best") for r in results]
            ax.bar(positions, [nan if v is None else v for v in final], color="C0", label="final")
            ax.plot(positions, [nan if v is None else v for v in best], "o", color="C1", label="best")
            ax.legend(loc="best", fontsize="small")
        ax.set_ylabel(title)
        ax.grid(axis="y", alpha=0.3)
    axes[-1].set_xticks(
        positions, [f"{r.name}\n{label_of(r.values, 16, chr(10))}" for r in results], fontsize="x-small"
    )
    axes[0].set_title("sweep results per point")
    figure.savefig(path, dpi=100)
