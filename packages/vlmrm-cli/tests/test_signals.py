"""Ctrl-C and SIGTERM in a real process: checkpoint, workers stopped, exit 130 / 143, then resume."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

import psutil
import pytest
from click.testing import CliRunner
from conftest import kill_process_group, start_training
from vlmrm_cli.checkpoints import latest_checkpoint
from vlmrm_cli.cli import main


def _wait_for_checkpoint(run_base: Path, process: subprocess.Popen, timeout: float = 180.0) -> Path:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = list(run_base.glob("*/checkpoints/step_*.zip"))
        if found:
            return found[0].parents[1]
        if process.poll() is not None:
            pytest.fail(f"training ended early with {process.returncode}: {process.communicate()}")
        time.sleep(0.2)
    process.kill()
    pytest.fail("no checkpoint appeared")


def _assert_all_gone(processes: list[psutil.Process], timeout: float = 10.0) -> None:
    """None of ``processes`` is alive or a zombie within ``timeout`` seconds of the run's exit."""
    _, alive = psutil.wait_procs(processes, timeout=timeout)
    left = [f"{p.pid} {p.name()} ({p.status()})" for p in alive if p.is_running()]
    for process in alive:
        process.kill()
    assert not left, f"processes of the run left behind: {left}"


@pytest.mark.parametrize(
    ("signum", "exit_code", "n_envs_per_worker"),
    [(signal.SIGINT, 130, 3), (signal.SIGTERM, 143, 2)],
    ids=["SIGINT-to-process-group", "SIGTERM-to-main-process"],
)
def test_signal_saves_checkpoint_and_exits(
    signum: int, exit_code: int, n_envs_per_worker: int, make_config, write_config, tmp_path: Path
) -> None:
    config = make_config(
        rl={"n_steps": 1_000_000, "n_envs_per_worker": n_envs_per_worker},
        logging={"checkpoint_freq": 100, "video_freq": None},
    )
    process = start_training(write_config(config))
    try:
        run_dir = _wait_for_checkpoint(tmp_path / "runs", process)
        # Env workers, the forkserver, wandb's service: everything the run started.
        descendants = psutil.Process(process.pid).children(recursive=True)
        assert len(descendants) >= n_envs_per_worker
        if signum == signal.SIGINT:
            os.killpg(process.pid, signum)  # what Ctrl-C does: the whole group, workers included
        else:
            process.send_signal(signum)
        _, stderr = process.communicate(timeout=120)
    finally:
        kill_process_group(process)
    assert process.returncode == exit_code, stderr
    _assert_all_gone(descendants)
    assert "Traceback" not in stderr, stderr
    path, steps = latest_checkpoint(run_dir / "checkpoints")
    assert f"Stopped at step {steps}: checkpoint {path}" in stderr
    assert (run_dir / "checkpoints" / f"replay_buffer_step_{steps:010d}.pkl").is_file()
    assert not list(run_dir.rglob("*.tmp"))
    assert not (run_dir / "final_model.zip").exists()

    if signum == signal.SIGTERM:
        result = CliRunner().invoke(
            main, ["train", "--resume", str(run_dir), "--set", f"rl.n_steps={steps + 60}", "--no-progress"]
        )
        assert result.exit_code == 0, result.output
        assert f"from step_{steps:010d}.zip at step {steps} of {steps + 60}" in result.stderr
        assert latest_checkpoint(run_dir / "checkpoints")[1] == steps + 60
