"""`vlmrm sweep`: expansion, validation before writing, Kubernetes manifests, local runs, results."""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import imageio.v3 as iio
import kubernetes_validate
import pytest
import yaml
from click.testing import CliRunner
from conftest import cartpole_config, kill_process_group
from vlmrm_cli.cli import main
from vlmrm_cli.config import load_config
from vlmrm_cli.sweep import load_sweep

REPO = Path(__file__).resolve().parents[3]
# The oldest Kubernetes whose Job has every field a sweep uses (backoffLimitPerIndex, FailIndex), and the newest.
KUBERNETES_VERSIONS = ("1.29.0", kubernetes_validate.latest_version())


def write_sweep_file(folder: Path, base: Any, **spec: Any) -> Path:
    path = folder / "sweep.yaml"
    path.write_text(yaml.safe_dump({"name": "cartpole-sweep", "base": base, **spec}, sort_keys=False))
    return path


def tiny_run(base_path: Path, model: str, n_steps: int = 150) -> dict[str, Any]:
    """The CartPole test config, shortened to ``n_steps`` steps without videos."""
    return cartpole_config(
        base_path,
        model,
        rl={"n_steps": n_steps},
        logging={"checkpoint_freq": 50, "video_freq": None, "tensorboard_freq": 50},
    )


def assert_valid_kubernetes(path: Path) -> list[dict[str, Any]]:
    documents = [document for document in yaml.safe_load_all(path.read_text()) if document]
    assert documents, f"{path} holds no manifest"
    for document in documents:
        for version in KUBERNETES_VERSIONS:
            kubernetes_validate.validate(document, version, strict=True)  # raises on the first error
    return documents


# -- expansion ----------------------------------------------------------------------------------


def test_grid_and_points_expand_into_every_combination(tmp_path: Path, tiny_model_spec: str) -> None:
    base = tmp_path / "base.yaml"
    base.write_text(yaml.safe_dump(cartpole_config(tmp_path / "runs", tiny_model_spec)))
    prompts = [["pole upright"], ["pole vertically upright on top of the cart"]]
    sweep = load_sweep(
        str(
            write_sweep_file(
                tmp_path,
                "base.yaml",  # relative to the sweep file
                set={"rl.n_steps": 1000},
                grid={"reward.alpha": [0.0, 1.0], "seed": [7, 8, 9]},
                points=[
                    {"reward.target_prompts": p, "description": f"prompt {i}"} for i, p in enumerate(prompts)
                ],
            )
        )
    )
    assert [point.index for point in sweep.points] == list(range(12))
    combinations = [
        (p.config.reward.target_prompts, p.config.reward.alpha, p.config.seed) for p in sweep.points
    ]
    assert combinations == [(p, a, s) for p in prompts for a in (0.0, 1.0) for s in (7, 8, 9)]
    assert all(point.config.rl.n_steps == 1000 for point in sweep.points)
    point = sweep.points[4]  # prompts[0], alpha 1.0, seed 8
    assert point.values == {
        "reward.target_prompts": prompts[0],
        "description": "prompt 0",
        "reward.alpha": 1.0,
        "seed": 8,
    }
    # Tagged with the sweep and the point, for wandb and for anyone reading the run's config.
    assert point.config.tags == ["test", "cartpole", "sweep:cartpole-sweep", "point:4"]
    assert point.config.description.startswith("prompt 0; cartpole-sweep point 4: ")
    assert "reward.alpha=1.0" in point.config.description and "seed=8" in point.config.description
    assert (point.config.wandb.group, point.config.wandb.name) == ("cartpole-sweep", "cartpole-sweep-point-4")


def test_seeds_alone_and_an_inline_base(tmp_path: Path, tiny_model_spec: str) -> None:
    sweep = load_sweep(
        str(write_sweep_file(tmp_path, tiny_run(tmp_path, tiny_model_spec), grid={"seed": [0, 1, 2]}))
    )
    assert [point.config.seed for point in sweep.points] == [0, 1, 2]
    assert [point.label for point in sweep.points] == ["seed=0", "seed=1", "seed=2"]


def test_a_sweep_without_axes_is_its_base_config(tmp_path: Path, tiny_model_spec: str) -> None:
    (point,) = load_sweep(str(write_sweep_file(tmp_path, tiny_run(tmp_path, tiny_model_spec)))).points
    assert point.values == {} and point.config.seed == 3


# -- refusals -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("axes", "expected"),
    [
        ({"grid": {"reward.alpha": [0.5, 1.5]}}, "cartpole-sweep point 1 (reward.alpha=1.5): reward.alpha: "),
        (
            {"grid": {"rl.n_stepz": [10]}},
            "cartpole-sweep point 0 (rl.n_stepz=10): rl.n_stepz: unknown key; did you mean 'rl.n_steps'?",
        ),
        # A key that the sweep extends (tags) keeps its wrong type for validation to name.
        (
            {"set": {"tags": "solo"}},
            "cartpole-sweep point 0 (base config): tags: Input should be a valid list",
        ),
        # Found only by resolving against the env: CartPole's actions are discrete.
        (
            {"points": [{"rl.algorithm": "dqn"}, {"rl.algorithm": "sac"}]},
            "cartpole-sweep point 1 (rl.algorithm=sac): rl.algorithm: sac needs a Box",
        ),
    ],
)
def test_one_bad_point_refuses_the_sweep_before_anything_is_written(
    tmp_path: Path, tiny_model_spec: str, axes: dict[str, Any], expected: str
) -> None:
    sweep_file = write_sweep_file(tmp_path, tiny_run(tmp_path, tiny_model_spec), **axes)
    out = tmp_path / "out"
    result = CliRunner().invoke(main, ["sweep", str(sweep_file), "--out", str(out), "--local"])
    assert result.exit_code == 2, result.output
    (line,) = result.stderr.strip().splitlines()
    assert line.startswith(f"Error: {expected}"), line
    assert not out.exists()


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ({"name": "Bad_Name"}, "name: String should match pattern"),
        ({"grids": {"seed": [1]}}, "grids: unknown key"),
        ({"grid": {"seed": []}}, "grid.seed: List should have at least 1 item"),
        ({"base": "missing.yaml"}, "base: no such config file"),
        ({"grid": {"seed": [1]}, "points": [{"seed": 2}]}, "points[0] and grid both set seed"),
    ],
)
def test_a_bad_sweep_file_is_one_line(
    tmp_path: Path, tiny_model_spec: str, spec: dict[str, Any], expected: str
) -> None:
    data = {"name": "cartpole-sweep", "base": tiny_run(tmp_path, tiny_model_spec), **spec}
    (tmp_path / "sweep.yaml").write_text(yaml.safe_dump(data))
    result = CliRunner().invoke(main, ["sweep", str(tmp_path / "sweep.yaml"), "--out", str(tmp_path / "out")])
    assert result.exit_code == 2, result.output
    assert len(result.stderr.strip().splitlines()) == 1 and expected in result.stderr, result.stderr
    assert not (tmp_path / "out").exists()


def test_a_folder_holding_another_sweep_is_refused_and_kept(tmp_path: Path, tiny_model_spec: str) -> None:
    out = tmp_path / "out"
    first = write_sweep_file(tmp_path, tiny_run(tmp_path, tiny_model_spec), grid={"seed": [0, 1]})
    assert CliRunner().invoke(main, ["sweep", str(first), "--out", str(out)]).exit_code == 0
    before = {path: path.read_bytes() for path in out.rglob("*") if path.is_file()}
    assert CliRunner().invoke(main, ["sweep", str(first), "--out", str(out)]).exit_code == 0  # the same: fine
    other = write_sweep_file(tmp_path, tiny_run(tmp_path, tiny_model_spec), grid={"seed": [5, 6]})
    result = CliRunner().invoke(main, ["sweep", str(other), "--out", str(out)])
    assert result.exit_code == 2 and "holds a sweep with other points" in result.stderr
    assert {path: path.read_bytes() for path in out.rglob("*") if path.is_file()} == before


# -- Kubernetes ---------------------------------------------------------------------------------


@pytest.mark.parametrize("manifest", sorted((REPO / "kube").glob("*.yaml")), ids=lambda path: path.name)
def test_every_manifest_in_kube_is_valid_kubernetes(manifest: Path) -> None:
    assert_valid_kubernetes(manifest)


def test_sweep_writes_one_configmap_and_one_indexed_job(tmp_path: Path, tiny_model_spec: str) -> None:
    sweep_file = write_sweep_file(
        tmp_path,
        tiny_run(tmp_path, tiny_model_spec),
        grid={"reward.alpha": [0.0, 0.5, 1.0]},
        kubernetes={
            "image": "registry.example/vlmrm:1",
            "parallelism": 2,
            "gpus": 2,
            "namespace": "research",
        },
    )
    out = tmp_path / "out"
    result = CliRunner().invoke(main, ["sweep", str(sweep_file), "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert f"kubectl apply -f {out / 'kubernetes.yaml'}" in result.stdout
    config_map, job = assert_valid_kubernetes(out / "kubernetes.yaml")
    assert (config_map["kind"], job["kind"]) == ("ConfigMap", "Job")
    spec = job["spec"]
    assert (spec["completionMode"], spec["completions"], spec["parallelism"]) == ("Indexed", 3, 2)
    pod = spec["template"]["spec"]
    (container,) = pod["containers"]
    assert container["image"] == "registry.example/vlmrm:1"
    assert container["resources"]["limits"]["nvidia.com/gpu"] == 2
    assert job["metadata"]["namespace"] == config_map["metadata"]["namespace"] == "research"
    # Pod i trains point i from the ConfigMap, in a run folder of its own that a new pod continues.
    assert container["args"] == [
        "vlmrm",
        "train",
        "/sweep/point-$(JOB_COMPLETION_INDEX).yaml",
        "--run-dir",
        "/runs/cartpole-sweep/point-$(JOB_COMPLETION_INDEX)",
        "--no-progress",
    ]
    (index_variable,) = [
        variable for variable in container["env"] if variable["name"] == "JOB_COMPLETION_INDEX"
    ]
    assert index_variable["valueFrom"]["fieldRef"]["fieldPath"] == (
        "metadata.annotations['batch.kubernetes.io/job-completion-index']"
    )
    mounts = {mount["name"]: mount["mountPath"] for mount in container["volumeMounts"]}
    volumes = {volume["name"]: volume for volume in pod["volumes"]}
    assert (
        mounts["points"] == "/sweep"
        and volumes["points"]["configMap"]["name"] == config_map["metadata"]["name"]
    )
    for index in range(3):
        text = config_map["data"][f"point-{index}.yaml"]
        assert text == (out / "points" / f"point-{index}.yaml").read_text()
        assert load_config(text).reward.alpha == [0.0, 0.5, 1.0][index]
    # Written unresolved: the pod resolves what depends on its own machine (render workers per GPU).
    assert load_config(config_map["data"]["point-0.yaml"]).rl.n_workers is None


# -- on this machine ----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def local_sweep(tmp_path_factory: pytest.TempPathFactory, tiny_model_spec: str) -> tuple[Any, Path]:
    """Two tiny CartPole points trained by `vlmrm sweep --local -j 2`."""
    folder = tmp_path_factory.mktemp("local_sweep")
    sweep_file = write_sweep_file(
        folder, tiny_run(folder / "unused", tiny_model_spec), grid={"reward.alpha": [0.0, 1.0]}
    )
    result = CliRunner().invoke(
        main, ["sweep", str(sweep_file), "--out", str(folder / "out"), "--local", "-j", "2"]
    )
    return result, folder / "out"


def test_local_sweep_trains_the_points_two_at_a_time(local_sweep) -> None:
    result, out = local_sweep
    assert result.exit_code == 0, result.output
    lines = result.stderr.splitlines()
    # Both started before either finished.
    first_finish = min(i for i, line in enumerate(lines) if line.endswith("finished"))
    assert all(any(line.startswith(f"point-{i} started") for line in lines[:first_finish]) for i in (0, 1))
    for index, alpha in enumerate((0.0, 1.0)):
        run = out / f"point-{index}"
        assert (run / "final_model.zip").is_file()
        saved = load_config(str(run / "config.yaml"))
        assert saved.reward.alpha == alpha and f"point:{index}" in saved.tags
        assert (out / "logs" / f"point-{index}.exit").read_text().strip() == "0"
    # TensorBoard over the sweep folder shows one run per point.
    assert sorted(path.parent.parent.name for path in out.glob("point-*/tensorboard/*")) == [
        "point-0",
        "point-1",
    ]


def test_sweep_status_and_a_second_run_see_every_point_finished(local_sweep) -> None:
    _, out = local_sweep
    status = CliRunner().invoke(main, ["sweep", "status", str(out)])
    assert status.exit_code == 0, status.output
    assert "point-0  finished  150/150  reward.alpha=0.0" in status.stdout
    assert "2 of 2 points finished" in status.stdout
    again = CliRunner().invoke(main, ["sweep", str(out.parent / "sweep.yaml"), "--out", str(out), "--local"])
    assert again.exit_code == 0 and again.stderr.count("already finished") == 2, again.output


def test_sweep_results_tabulates_returns_from_the_run_folders(local_sweep) -> None:
    _, out = local_sweep
    # What an evaluation writes beside the run: its success rate joins the table.
    (out / "point-1" / "eval").mkdir()
    (out / "point-1" / "eval" / "summary.json").write_text(json.dumps({"success_rate": 0.25, "episodes": 4}))
    result = CliRunner().invoke(main, ["sweep", "results", str(out)])
    assert result.exit_code == 0, result.output
    with open(out / "results.csv", newline="") as stream:
        rows = list(csv.DictReader(stream))
    assert [(row["point"], row["reward.alpha"], row["state"]) for row in rows] == [
        ("point-0", "0.0", "finished"),
        ("point-1", "1.0", "finished"),
    ]
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    for row in rows:
        events = EventAccumulator(str(out / row["point"] / "tensorboard"))
        events.Reload()
        logged = [event.value for event in events.Scalars("rollout/clip_ep_rew_mean")]
        truth = [event.value for event in events.Scalars("rollout/original_ep_rew_mean")]
        assert float(row["clip_return_final"]) == pytest.approx(logged[-1], rel=1e-5)
        assert float(row["clip_return_best"]) == pytest.approx(max(logged), rel=1e-5)
        assert float(row["true_return_final"]) == pytest.approx(truth[-1], rel=1e-5)
    assert [row["success_rate"] for row in rows] == ["", "0.25"]
    assert "point-1  finished" in result.stdout
    plot = iio.imread(out / "results.png")
    assert plot.ndim == 3 and plot.shape[0] > 200 and plot.std() > 0


def test_a_failing_point_is_reported_and_the_others_go_on(tmp_path: Path, tiny_model_spec: str) -> None:
    sweep_file = write_sweep_file(
        tmp_path,
        tiny_run(tmp_path, tiny_model_spec, n_steps=50),
        points=[{"reward.pretrained_model": f"local-dir:{tmp_path / 'no-model'}"}, {"seed": 4}],
    )
    out = tmp_path / "out"
    result = CliRunner().invoke(main, ["sweep", str(sweep_file), "--out", str(out), "--local"])
    assert result.exit_code == 1, result.output
    assert "point-0 failed (exit 2): Error: reward.pretrained_model: cannot load" in result.stderr
    assert "1 of 2 points failed: point-0" in result.stderr
    assert (out / "point-1" / "final_model.zip").is_file()
    status = CliRunner().invoke(main, ["sweep", "status", str(out)])
    assert "point-0  failed (exit 2)" in status.stdout and "1 of 2 points finished" in status.stdout


def test_status_of_a_folder_without_a_sweep_is_one_line(tmp_path: Path) -> None:
    for command in ("status", "results"):
        result = CliRunner().invoke(main, ["sweep", command, str(tmp_path)])
        assert result.exit_code == 2
        assert (
            result.stderr.strip()
            == f"Error: {tmp_path}: no sweep here (no sweep.yaml and no point-<i> run folders)"
        )


def test_the_kubernetes_readme_sweep_expands_and_writes_valid_manifests(tmp_path: Path) -> None:
    readme = (REPO / "kube" / "README.md").read_text()
    block = readme.split("```yaml\n# kneeling.yaml\n", 1)[1].split("```", 1)[0]
    (tmp_path / "configs").symlink_to(REPO / "configs")
    (tmp_path / "kneeling.yaml").write_text(block)
    sweep = load_sweep(str(tmp_path / "kneeling.yaml"))
    assert len(sweep.points) == 18
    assert {point.config.env_name for point in sweep.points} == {"vlmrm/Humanoid-v0"}
    result = CliRunner().invoke(
        main, ["sweep", str(tmp_path / "kneeling.yaml"), "--out", str(tmp_path / "out")]
    )
    assert result.exit_code == 0, result.output
    _, job = assert_valid_kubernetes(tmp_path / "out" / "kubernetes.yaml")
    assert (job["spec"]["completions"], job["spec"]["parallelism"]) == (18, 6)


def test_the_cli_readme_sweep_expands_into_nine_points(tmp_path: Path) -> None:
    readme = (REPO / "packages" / "vlmrm-cli" / "README.md").read_text()
    block = readme.split("## Sweeps", 1)[1].split("```yaml\n", 1)[1].split("```", 1)[0]
    (tmp_path / "configs").symlink_to(REPO / "configs")
    (tmp_path / "cartpole-alpha.yaml").write_text(block)
    sweep = load_sweep(str(tmp_path / "cartpole-alpha.yaml"))
    assert [(p.config.reward.alpha, p.config.seed) for p in sweep.points] == [
        (alpha, seed) for alpha in (0.0, 0.5, 1.0) for seed in (0, 1, 2)
    ]


def test_ctrl_c_reaches_every_running_point_once_and_each_keeps_a_checkpoint(
    tmp_path: Path, tiny_model_spec: str
) -> None:
    run = tiny_run(tmp_path, tiny_model_spec, n_steps=1_000_000)
    sweep_file = write_sweep_file(tmp_path, run, grid={"seed": [0, 1, 2]})
    out = tmp_path / "out"
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "vlmrm_cli",
            "sweep",
            str(sweep_file),
            "--out",
            str(out),
            "--local",
            "-j",
            "2",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 180
        while not all(list((out / f"point-{i}" / "checkpoints").glob("step_*.zip")) for i in (0, 1)):
            assert process.poll() is None, process.communicate()
            assert time.monotonic() < deadline, "no checkpoint appeared"
            time.sleep(0.2)
        os.killpg(process.pid, signal.SIGINT)  # Ctrl-C: the sweep's process group
        _, stderr = process.communicate(timeout=120)
    finally:
        kill_process_group(process)
    assert process.returncode == 130, stderr
    for index in (0, 1):
        # One SIGINT each, so a checkpoint rather than an abort; the point can be continued.
        log = (out / "logs" / f"point-{index}.log").read_text()
        assert "Stopped at step" in log, log
        assert (out / "logs" / f"point-{index}.exit").read_text().strip() == "130"
        assert f"point-{index} stopped with a checkpoint" in stderr
    assert not (out / "point-2").exists()  # none starts after the signal
    status = CliRunner().invoke(main, ["sweep", "status", str(out)])
    assert "point-0  stopped" in status.stdout and "point-2  not started" in status.stdout, status.stdout
