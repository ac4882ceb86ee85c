"""Runs survive what clusters do to them: kill -9 at any moment, crashing env workers, leaked secrets."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import psutil
import pytest
from conftest import kill_process_group, start_training
from vlmrm_cli.checkpoints import atomic_write, latest_checkpoint

# An env that dies in its worker process at a given step: by an exception, or by exiting at once.
CRASHING_ENV = """
import os

import gymnasium as gym
from vlmrm_envs.classic_control import CartPoleEnv


class CrashingCartPole(CartPoleEnv):
    def __init__(self, crash_at_step: int = 30, hard: bool = False, **kwargs):
        super().__init__(**kwargs)
        self.crash_at_step, self.hard, self.steps = crash_at_step, hard, 0

    def step(self, action):
        self.steps += 1
        if self.steps == self.crash_at_step:
            if self.hard:
                os._exit(3)
            raise RuntimeError("simulated env failure at step %d" % self.steps)
        return super().step(action)


gym.register("Crashing-v0", entry_point=CrashingCartPole, max_episode_steps=50)
"""


@pytest.mark.parametrize("hard", [False, True], ids=["worker-raises", "worker-exits"])
def test_crashing_env_worker_fails_the_run_fast_with_its_error(
    hard: bool, make_config, write_config, tmp_path: Path
) -> None:
    (tmp_path / "crashing_env.py").write_text(CRASHING_ENV)
    config = make_config(
        env_name="crashing_env:Crashing-v0",
        env_kwargs={"crash_at_step": 30, "hard": hard},
        rl={"n_envs_per_worker": 2, "n_steps": 10_000, "episode_length": None},
        logging={"video_freq": None},
    )
    pythonpath = os.pathsep.join(filter(None, [str(tmp_path), os.environ.get("PYTHONPATH")]))
    process = start_training(write_config(config), PYTHONPATH=pythonpath)
    descendants: list[psutil.Process] = []
    began = time.monotonic()
    try:
        while process.poll() is None and time.monotonic() - began < 120:
            descendants += (
                psutil.Process(process.pid).children(recursive=True) if process.poll() is None else []
            )
            time.sleep(0.1)
        _, stderr = process.communicate(timeout=60)
    except (subprocess.TimeoutExpired, psutil.NoSuchProcess):
        _, stderr = process.communicate(timeout=60)
    finally:
        kill_process_group(process)
    assert process.returncode == 1, stderr
    assert "Error: an env worker process died at step" in stderr and "no checkpoint was written yet" in stderr
    if not hard:
        assert "RuntimeError: simulated env failure at step 30" in stderr  # the worker's own error
    _, alive = psutil.wait_procs(list(set(descendants)), timeout=10)
    assert not [p for p in alive if p.is_running()], "worker processes left behind"


def test_kill_9_at_any_moment_leaves_the_last_checkpoint_loadable(
    make_config, write_config, tmp_path: Path
) -> None:
    """SIGKILL a run at random moments (checkpoints are written every 20 steps, so often mid-write),
    check the newest checkpoint loads, resume, and kill again."""
    from vlmrm_sb3 import DQN

    config = make_config(
        rl={"n_steps": 100_000, "learning_starts": 20, "train_freq": 10},
        logging={"checkpoint_freq": 20, "video_freq": None},
    )
    path = write_config(config)
    run_dir = tmp_path / "killed-run"
    rng = random.Random(0)
    reached = []
    for _ in range(3):
        process = start_training(path, "--run-dir", str(run_dir))
        try:
            deadline = time.monotonic() + 120
            start = latest_checkpoint(run_dir / "checkpoints")
            while latest_checkpoint(run_dir / "checkpoints") == start and process.poll() is None:
                assert time.monotonic() < deadline, "no new checkpoint"
                time.sleep(0.05)
            time.sleep(rng.uniform(0.0, 1.5))
        finally:
            kill_process_group(process)
        assert process.returncode == -signal.SIGKILL, process.communicate()[1]
        checkpoint, steps = latest_checkpoint(run_dir / "checkpoints")
        assert DQN.load(checkpoint, device="cpu").num_timesteps == steps
        reached.append(steps)
    assert reached == sorted(reached) and reached[-1] > reached[0]  # each restart went on


def test_kill_9_during_a_checkpoint_write_keeps_the_previous_file(tmp_path: Path) -> None:
    target = tmp_path / "step_0000000100.zip"
    target.write_bytes(b"the good checkpoint")
    writer = textwrap.dedent(f"""
        import sys, time
        from vlmrm_cli.checkpoints import atomic_write

        def write(file):
            file.write(b"half of a new checkp")
            file.flush()
            print("writing", flush=True)
            time.sleep(60)

        atomic_write({str(target)!r}, write)
    """)
    process = subprocess.Popen([sys.executable, "-c", writer], stdout=subprocess.PIPE, text=True)
    try:
        assert process.stdout.readline().strip() == "writing"
        process.kill()
        process.wait(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
    assert target.read_bytes() == b"the good checkpoint"
    assert latest_checkpoint(tmp_path) == (target, 100)  # the hidden temporary file is not a checkpoint
    # The next write replaces it whole.
    atomic_write(target, lambda file: file.write(b"a newer checkpoint"))
    assert target.read_bytes() == b"a newer checkpoint"


def test_wandb_falls_back_offline_and_the_key_never_reaches_the_run_folder(
    make_config, write_config, tmp_path: Path
) -> None:
    """A key is set, so the run tries wandb online; the server is unreachable, so it logs offline."""
    key = "vlmrm-test-key-0123456789abcdef0123456789abcdef"
    config = make_config(rl={"n_steps": 100}, wandb={"mode": "auto"})
    process = start_training(
        write_config(config),
        WANDB_API_KEY=key,
        WANDB_BASE_URL="http://127.0.0.1:9",  # nothing listens there
        WANDB_INIT_TIMEOUT="5",
    )
    try:
        stdout, stderr = process.communicate(timeout=300)
    finally:
        kill_process_group(process)
    assert process.returncode == 0, stderr
    assert "wandb could not start online" in stderr and "logging offline" in stderr
    (run_dir,) = Path(config["base_path"]).iterdir()
    files = [path for path in run_dir.rglob("*") if path.is_file()]
    assert any(path.suffix == ".wandb" and "offline-run" in str(path) for path in files)
    leaked = [str(path) for path in files if key.encode() in path.read_bytes()]
    assert not leaked, leaked
    assert key not in stdout + stderr


class _RunsCode:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (self.marker,))


@pytest.mark.parametrize("tampered", ["model", "policy.pth", "replay buffer"])
def test_resume_refuses_a_checkpoint_that_would_run_code(
    tampered: str, make_config, write_config, tmp_path: Path
) -> None:
    import base64
    import json
    import pickle
    import zipfile

    from click.testing import CliRunner
    from vlmrm_cli.cli import main

    run_dir = tmp_path / "run"
    config = write_config(make_config(rl={"n_steps": 60}, logging={"video_freq": None}))
    first = CliRunner().invoke(main, ["train", str(config), "--run-dir", str(run_dir), "--no-progress"])
    assert first.exit_code == 0, first.output
    checkpoint, steps = latest_checkpoint(run_dir / "checkpoints")
    marker = tmp_path / "code-ran"
    payload = pickle.dumps(_RunsCode(marker))
    if tampered == "model":
        with zipfile.ZipFile(checkpoint) as archive:
            entries = {name: archive.read(name) for name in archive.namelist()}
        data = json.loads(entries["data"])
        data["action_space"][":serialized:"] = base64.b64encode(payload).decode()
        entries["data"] = json.dumps(data).encode()
        with zipfile.ZipFile(checkpoint, "w") as archive:
            for name, content in entries.items():
                archive.writestr(name, content)
        culprit = checkpoint
    elif tampered == "policy.pth":
        import io

        import torch

        with zipfile.ZipFile(checkpoint) as archive:
            entries = {name: archive.read(name) for name in archive.namelist()}
        tampered_weights = io.BytesIO()
        torch.save({"weights": _RunsCode(marker)}, tampered_weights)
        entries["policy.pth"] = tampered_weights.getvalue()
        with zipfile.ZipFile(checkpoint, "w") as archive:
            for name, content in entries.items():
                archive.writestr(name, content)
        culprit = checkpoint
    else:
        culprit = run_dir / "checkpoints" / f"replay_buffer_step_{steps:010d}.pkl"
        culprit.write_bytes(payload)

    result = CliRunner().invoke(main, ["train", "--resume", str(run_dir), "--set", "rl.n_steps=120"])
    assert result.exit_code == 2, result.output
    (line,) = result.stderr.strip().splitlines()[-1:]
    assert line.startswith(f"Error: {culprit}: not loaded, since loading it could run code"), line
    if tampered == "policy.pth":
        assert "(policy.pth: refused by torch's weights-only loader" in line, line
    assert "Traceback" not in result.output
    assert not marker.exists()


def test_one_run_folder_has_one_writer(make_config, write_config, tmp_path: Path) -> None:
    """While a run lives, a second `vlmrm train` on its folder is refused in one line; once it is
    killed (-9, so its lock file stays behind), the folder resumes."""
    from click.testing import CliRunner
    from vlmrm_cli.cli import main

    config = write_config(
        make_config(rl={"n_steps": 1_000_000}, logging={"checkpoint_freq": 50, "video_freq": None})
    )
    run_dir = tmp_path / "run"
    process = start_training(config, "--run-dir", str(run_dir))
    try:
        deadline = time.monotonic() + 180
        while latest_checkpoint(run_dir / "checkpoints") is None:
            assert process.poll() is None, process.communicate()
            assert time.monotonic() < deadline, "no checkpoint"
            time.sleep(0.1)
        for args in (["--resume", str(run_dir)], [str(config), "--run-dir", str(run_dir)]):
            second = CliRunner().invoke(main, ["train", *args, "--no-progress"])
            assert second.exit_code == 2, second.output
            (line,) = second.stderr.strip().splitlines()
            assert line.startswith(f"Error: {run_dir}: another vlmrm train is running in this folder"), line
        assert process.poll() is None  # the first run goes on
    finally:
        kill_process_group(process)
    assert [path.name for path in run_dir.glob(".*lock*")]  # left behind by the killed run
    _, steps = latest_checkpoint(run_dir / "checkpoints")
    resumed = CliRunner().invoke(
        main, ["train", "--resume", str(run_dir), "--set", f"rl.n_steps={steps + 20}", "--no-progress"]
    )
    assert resumed.exit_code == 0, resumed.output
    assert latest_checkpoint(run_dir / "checkpoints")[1] == steps + 20


def _without_num_timesteps(path: Path) -> None:
    import json
    import zipfile

    with zipfile.ZipFile(path) as archive:
        entries = {name: archive.read(name) for name in archive.namelist()}
    data = json.loads(entries["data"])
    del data["num_timesteps"]
    entries["data"] = json.dumps(data).encode()
    with zipfile.ZipFile(path, "w") as archive:
        for name, content in entries.items():
            archive.writestr(name, content)


DAMAGES = {
    "truncated": lambda path: path.write_bytes(path.read_bytes()[: path.stat().st_size // 2]),
    "empty": lambda path: path.write_bytes(b""),
    "garbage": lambda path: path.write_bytes(random.Random(0).randbytes(5000)),
    "missing keys": _without_num_timesteps,
}


def test_a_damaged_latest_checkpoint_falls_back_to_the_newest_good_one(
    make_config, write_config, tmp_path: Path
) -> None:
    """Each damage in turn, on a copy of a finished run: the resume warns in one line, sets the damaged
    file aside, continues from the checkpoint before it and removes temporary files a kill -9 left."""
    import shutil

    from click.testing import CliRunner
    from vlmrm_cli.cli import main

    pristine = tmp_path / "pristine"
    config = write_config(
        make_config(
            rl={"n_steps": 60, "learning_starts": 10, "train_freq": 10},
            logging={"checkpoint_freq": 20, "video_freq": None},
        )
    )
    first = CliRunner().invoke(main, ["train", str(config), "--run-dir", str(pristine), "--no-progress"])
    assert first.exit_code == 0, first.output
    for damage, apply in DAMAGES.items():
        run_dir = tmp_path / damage.replace(" ", "-")
        shutil.copytree(pristine, run_dir)
        checkpoints = run_dir / "checkpoints"
        damaged, steps = latest_checkpoint(checkpoints)
        assert steps == 60
        apply(damaged)
        left_by_kill_9 = [checkpoints / ".step_0000000080.zip.abc123.tmp", run_dir / ".config.yaml.x1y2.tmp"]
        for path in left_by_kill_9:
            path.write_bytes(b"half")
        result = CliRunner().invoke(main, ["train", "--resume", str(run_dir), "--no-progress"])
        assert result.exit_code == 0, (damage, result.output)
        warnings = [line for line in result.stderr.splitlines() if " is damaged " in line]
        assert len(warnings) == 1 and str(damaged) in warnings[0], (damage, result.stderr)
        assert "Resuming" in result.stderr and "from step_0000000040.zip at step 40 of 60" in result.stderr
        assert latest_checkpoint(checkpoints)[1] == 60
        assert _steps_of_loaded(latest_checkpoint(checkpoints)[0]) == 60
        assert not [path for path in left_by_kill_9 if path.exists()], damage

    # A damaged replay buffer: the run resumes from its checkpoint with an empty buffer.
    run_dir = tmp_path / "damaged-buffer"
    shutil.copytree(pristine, run_dir)
    buffer = run_dir / "checkpoints" / "replay_buffer_step_0000000060.pkl"
    DAMAGES["truncated"](buffer)
    result = CliRunner().invoke(
        main, ["train", "--resume", str(run_dir), "--set", "rl.n_steps=80", "--no-progress"]
    )
    assert result.exit_code == 0, result.output
    assert f"Warning: {buffer} is damaged (" in result.stderr and "starts empty" in result.stderr
    assert latest_checkpoint(run_dir / "checkpoints")[1] == 80


def _steps_of_loaded(path: Path) -> int:
    from vlmrm_sb3 import DQN

    return DQN.load(path, device="cpu").num_timesteps


def test_run_dir_continues_on_a_machine_with_another_gpu_count(
    make_config, write_config, tmp_path: Path
) -> None:
    """rl.n_workers, unset, is resolved from the machine's GPUs; a Job restarted on a node with
    another count runs the same command and continues with the run's own number of envs. (The first
    run's machine is played by setting the count it would have resolved.)"""
    from click.testing import CliRunner
    from vlmrm_cli.cli import main

    run_dir = tmp_path / "job"
    config = make_config(rl={"n_steps": 40}, logging={"checkpoint_freq": 20, "video_freq": None})
    assert "n_workers" not in config["rl"]
    first = CliRunner().invoke(
        main,
        [
            "train",
            str(write_config(config)),
            "--run-dir",
            str(run_dir),
            "--set",
            "rl.n_workers=2",
            "--no-progress",
        ],
    )
    assert first.exit_code == 0, first.output
    config["rl"]["n_steps"] = 80
    again = CliRunner().invoke(
        main, ["train", str(write_config(config)), "--run-dir", str(run_dir), "--no-progress"]
    )
    assert again.exit_code == 0, again.output
    assert "from step_0000000040.zip at step 40 of 80" in again.stderr
    assert latest_checkpoint(run_dir / "checkpoints")[1] == 80


def test_a_dead_wandb_service_degrades_tracking_and_training_goes_on(
    make_config, write_config, tmp_path: Path
) -> None:
    config = make_config(
        rl={"n_steps": 2_000, "n_envs_per_worker": 2},
        logging={"checkpoint_freq": 100, "video_freq": None, "tensorboard_freq": 50},
        wandb={"mode": "offline"},
    )
    process = start_training(write_config(config))
    try:
        deadline = time.monotonic() + 180

        def wandb_service() -> list[psutil.Process]:
            found = []
            for child in psutil.Process(process.pid).children(recursive=True):
                try:
                    if "wandb" in " ".join(child.cmdline()):
                        found.append(child)
                except psutil.NoSuchProcess:
                    pass
            return found

        while not (services := wandb_service()) or not list(
            Path(config["base_path"]).glob("*/checkpoints/*.zip")
        ):
            assert process.poll() is None, process.communicate()
            assert time.monotonic() < deadline, "no wandb service or no checkpoint"
            time.sleep(0.1)
        for service in services:
            service.kill()
        _, stderr = process.communicate(timeout=300)
    finally:
        kill_process_group(process)
    assert process.returncode == 0, stderr
    assert stderr.count("wandb stopped working") == 1, stderr
    assert "env worker" not in stderr and "Traceback" not in stderr, stderr
    (run_dir,) = Path(config["base_path"]).iterdir()
    assert (run_dir / "final_model.zip").is_file()
