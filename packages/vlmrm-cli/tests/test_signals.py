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
    ("signum", "exit_code", "n_envs_per_worker", "to_group"),
    [(signal.SIGINT, 130, 3, True), (signal.SIGTERM, 143, 2, False), (signal.SIGTERM, 143, 2, True)],
    ids=["SIGINT-to-process-group", "SIGTERM-to-main-process", "SIGTERM-to-process-group"],
)
def test_signal_saves_checkpoint_and_exits(
    signum: int,
    exit_code: int,
    n_envs_per_worker: int,
    to_group: bool,
    make_config,
    write_config,
    tmp_path: Path,
) -> None:
    """SIGINT to the group is Ctrl-C; SIGTERM to the group is what Slurm, systemd and `timeout` send
    (wandb's service, in the group too, gets it as well)."""
    config = make_config(
        rl={"n_steps": 1_000_000, "n_envs_per_worker": n_envs_per_worker},
        logging={"checkpoint_freq": 100, "video_freq": None},
        wandb={"mode": "offline" if to_group and signum == signal.SIGTERM else "disabled"},
    )
    process = start_training(write_config(config))
    try:
        run_dir = _wait_for_checkpoint(tmp_path / "runs", process)
        # Env workers, the forkserver, wandb's service: everything the run started.
        descendants = psutil.Process(process.pid).children(recursive=True)
        assert len(descendants) >= n_envs_per_worker
        if to_group:
            os.killpg(process.pid, signum)  # the whole group, workers included
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

    if not to_group:
        result = CliRunner().invoke(
            main, ["train", "--resume", str(run_dir), "--set", f"rl.n_steps={steps + 60}", "--no-progress"]
        )
        assert result.exit_code == 0, result.output
        assert f"from step_{steps:010d}.zip at step {steps} of {steps + 60}" in result.stderr
        assert latest_checkpoint(run_dir / "checkpoints")[1] == steps + 60


def _wait_until(condition, process: subprocess.Popen, what: str, timeout: float = 180.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if process.poll() is not None:
            pytest.fail(f"training ended before {what}, with {process.returncode}: {process.communicate()}")
        if time.monotonic() > deadline:
            pytest.fail(f"{what} did not happen within {timeout} s")
        time.sleep(0.05)


def _catches(pid: int, signum: int) -> bool:
    """Whether process ``pid`` has a handler for ``signum`` (the SigCgt mask of /proc/PID/status)."""
    status = Path(f"/proc/{pid}/status").read_text()
    caught = int(next(line.split()[1] for line in status.splitlines() if line.startswith("SigCgt:")), 16)
    return bool(caught & (1 << (signum - 1)))


def _has_children(pid: int) -> bool:
    try:
        return bool(psutil.Process(pid).children())
    except psutil.NoSuchProcess:
        return False


@pytest.mark.parametrize(
    ("signum", "moment"),
    [
        (signal.SIGTERM, "handler installed"),
        (signal.SIGINT, "handler installed"),
        (signal.SIGTERM, "workers spawning"),
    ],
    ids=["SIGTERM-first-moment", "SIGINT-first-moment", "SIGTERM-while-workers-spawn"],
)
def test_signal_during_start_up_exits_at_once(
    signum: int, moment: str, make_config, write_config, tmp_path: Path
) -> None:
    """A signal before training begins stops start-up there: exit 128 + signal, no traceback, no
    checkpoint, nothing of the run left running; sent first thing, not even a run folder is made."""
    config = make_config(rl={"n_steps": 1_000_000, "n_envs_per_worker": 2}, logging={"video_freq": None})
    process = start_training(write_config(config))
    descendants: list[psutil.Process] = []
    try:
        if moment == "handler installed":
            # Python catches SIGINT from its start; vlmrm's handlers, SIGTERM's with them, come later.
            _wait_until(
                lambda: _catches(process.pid, signal.SIGTERM), process, "vlmrm's handlers were installed"
            )
        else:
            _wait_until(lambda: _has_children(process.pid), process, "a child process started")
            descendants = psutil.Process(process.pid).children(recursive=True)
        os.killpg(process.pid, signum)
        _, stderr = process.communicate(timeout=120)
    finally:
        kill_process_group(process)
    assert process.returncode == 128 + signum, stderr
    assert "Traceback" not in stderr, stderr
    assert f"{signal.Signals(signum).name} received before training began: stopped" in stderr, stderr
    assert not list(Path(config["base_path"]).glob("*/checkpoints/*.zip"))
    if moment == "handler installed":
        assert not Path(config["base_path"]).exists() or not list(Path(config["base_path"]).iterdir())
    _assert_all_gone(descendants)


# An env that never ends an episode and, in the main process only (where videos are filmed; the
# training envs run in worker processes), counts its steps in a file and sends SIGTERM at step 5.
SIGNALLING_ENV = """
import multiprocessing
import os
import signal

import gymnasium as gym
from vlmrm_envs.classic_control import CartPoleEnv


class SignallingCartPole(CartPoleEnv):
    def __init__(self, count_file: str = "", **kwargs):
        super().__init__(**kwargs)
        self.count_file, self.steps = count_file, 0

    def step(self, action):
        observation, reward, _, truncated, info = super().step(action)
        if multiprocessing.parent_process() is None:
            self.steps += 1
            with open(self.count_file, "w") as file:
                file.write(str(self.steps))
            if self.steps == 5:
                os.kill(os.getpid(), signal.SIGTERM)
        return observation, reward, False, truncated, info


gym.register("Signalling-v0", entry_point=SignallingCartPole)
"""


def test_signal_during_a_video_stops_it_at_once(make_config, write_config, tmp_path: Path) -> None:
    from vlmrm_cli.evaluation import MAX_EPISODE_STEPS

    (tmp_path / "signalling_env.py").write_text(SIGNALLING_ENV)
    count_file = tmp_path / "video-steps"
    config = make_config(
        env_name="signalling_env:Signalling-v0",
        env_kwargs={"count_file": str(count_file)},
        rl={"n_steps": 100_000, "vec_env": "subproc", "episode_length": 200},
        logging={"checkpoint_freq": None, "video_freq": 60},
    )
    pythonpath = os.pathsep.join(filter(None, [str(tmp_path), os.environ.get("PYTHONPATH")]))
    process = start_training(write_config(config), PYTHONPATH=pythonpath)
    try:
        _, stderr = process.communicate(timeout=300)
    finally:
        kill_process_group(process)
    assert process.returncode == 143, stderr
    assert "Traceback" not in stderr, stderr
    assert "SIGTERM received" in stderr and "Stopped at step" in stderr, stderr
    assert int(count_file.read_text()) < 10 < MAX_EPISODE_STEPS  # not the whole episode


# An env whose worker process stops itself (SIGSTOP: hung, not dead) at a given step, after
# leaving a mark; the main process then waits on it for ever, unless the stop gives up.
HANGING_ENV = """
import multiprocessing
import os
import pathlib
import signal

import gymnasium as gym
from vlmrm_envs.classic_control import CartPoleEnv


class HangingCartPole(CartPoleEnv):
    def __init__(self, mark: str = "", hang_at_step: int = 30, **kwargs):
        super().__init__(**kwargs)
        self.mark, self.hang_at_step, self.steps = mark, hang_at_step, 0

    def step(self, action):
        self.steps += 1
        if self.steps == self.hang_at_step and multiprocessing.parent_process() is not None:
            pathlib.Path(self.mark).touch()
            os.kill(os.getpid(), signal.SIGSTOP)
        return super().step(action)


gym.register("Hanging-v0", entry_point=HangingCartPole, max_episode_steps=50)
"""


def test_sigterm_with_a_hung_env_worker_still_saves_and_exits(
    make_config, write_config, tmp_path: Path
) -> None:
    (tmp_path / "hanging_env.py").write_text(HANGING_ENV)
    mark = tmp_path / "hung"
    config = make_config(
        env_name="hanging_env:Hanging-v0",
        env_kwargs={"mark": str(mark), "hang_at_step": 80},
        rl={"n_steps": 100_000, "vec_env": "subproc", "n_envs_per_worker": 2, "episode_length": None},
        logging={"checkpoint_freq": 50, "video_freq": None},
    )
    pythonpath = os.pathsep.join(filter(None, [str(tmp_path), os.environ.get("PYTHONPATH")]))
    process = start_training(write_config(config), PYTHONPATH=pythonpath, VLMRM_STOP_TIMEOUT="2")
    try:
        _wait_until(mark.exists, process, "an env worker hung")
        descendants = psutil.Process(process.pid).children(recursive=True)
        os.killpg(process.pid, signal.SIGTERM)
        _, stderr = process.communicate(timeout=120)
    finally:
        kill_process_group(process)
    assert process.returncode == 143, stderr
    assert "Traceback" not in stderr, stderr
    assert "did not end within 2 s of the signal" in stderr, stderr
    (run_dir,) = Path(config["base_path"]).iterdir()
    path, steps = latest_checkpoint(run_dir / "checkpoints")
    assert f"Stopped at step {steps}: checkpoint {path}" in stderr, stderr
    _assert_all_gone(descendants)
