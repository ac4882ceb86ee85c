"""End to end: `vlmrm train` on CartPole with a tiny local CLIP, every artifact, then resume."""

from __future__ import annotations

from pathlib import Path

import imageio.v2 as imageio
import numpy as np
import pytest
import yaml
from click.testing import CliRunner, Result
from conftest import cartpole_config
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from vlmrm_cli.checkpoints import latest_checkpoint
from vlmrm_cli.cli import main
from vlmrm_cli.config import load_config


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory, tiny_model_spec: str) -> tuple[Result, Path, str]:
    """One 300-step run, given as YAML text (the research code's `vlmrm train "$(cat config.yaml)"`)."""
    base = tmp_path_factory.mktemp("train")
    config = cartpole_config(base / "runs", tiny_model_spec, wandb={"mode": "auto"})  # no key: offline
    text = yaml.safe_dump(config, sort_keys=False)
    with pytest.MonkeyPatch.context() as patch:
        patch.delenv("WANDB_API_KEY", raising=False)
        result = CliRunner().invoke(main, ["train", text, "--set", "rl.gamma=0.95"])
    assert result.exit_code == 0, result.output
    (run_dir,) = (base / "runs").iterdir()
    return result, run_dir, text


def test_run_folder_is_named_by_time_and_description(run) -> None:
    result, run_dir, _ = run
    assert run_dir.name.endswith("_cartpole-test-run")
    assert len(run_dir.name.split("_")[0]) == len("2024-01-31")
    assert f"Run folder: {run_dir}" in result.stderr


def test_resolved_config_is_saved_with_overrides(run) -> None:
    _, run_dir, text = run
    saved = load_config(str(run_dir / "config.yaml"))
    assert saved.rl.gamma == 0.95  # the --set override
    assert saved.rl.algorithm == "dqn"  # resolved from the action space
    assert saved.rl.tau == 1.0  # DQN's default, written out
    given = load_config(text)
    assert saved.reward == given.reward and saved.env_name == given.env_name


def test_checkpoints_every_checkpoint_freq_and_loadable(run, tiny_model_spec: str) -> None:
    from vlmrm_sb3 import DQN

    _, run_dir, _ = run
    names = sorted(path.name for path in (run_dir / "checkpoints").glob("step_*.zip"))
    assert names == ["step_0000000100.zip", "step_0000000200.zip", "step_0000000300.zip"]
    # Only the latest replay buffer is kept; no temporary files are left.
    assert [p.name for p in (run_dir / "checkpoints").glob("*.pkl")] == ["replay_buffer_step_0000000300.pkl"]
    assert not list(run_dir.rglob("*.tmp"))
    for name in ("checkpoints/step_0000000200.zip", "final_model.zip"):
        model = DQN.load(run_dir / name, device="cpu")
        assert model.num_timesteps == (200 if "200" in name else 300)
        action, _ = model.predict(np.zeros(4, np.float32), deterministic=True)
        assert action in (0, 1)


def test_tensorboard_has_clip_and_ground_truth_returns_every_tensorboard_freq(run) -> None:
    _, run_dir, _ = run
    events = EventAccumulator(str(run_dir / "tensorboard"))
    events.Reload()
    tags = events.Tags()["scalars"]
    for tag in (
        "rollout/clip_ep_rew_mean",
        "rollout/original_ep_rew_mean",
        "train/loss",
        "video/clip_return",
    ):
        assert tag in tags, tags
    assert [event.step for event in events.Scalars("rollout/clip_ep_rew_mean")] == [100, 200, 300]
    assert all(np.isfinite(event.value) for event in events.Scalars("rollout/clip_ep_rew_mean"))


def test_videos_every_video_freq_with_reward_plot(run) -> None:
    _, run_dir, _ = run
    videos = sorted((run_dir / "videos").glob("*.mp4"))
    assert [video.name for video in videos] == ["step_0000000150.mp4", "step_0000000300.mp4"]
    reader = imageio.get_reader(videos[0], format="FFMPEG")
    frames = [frame for frame in reader]
    reader.close()
    assert len(frames) == 50  # one episode of rl.episode_length steps
    height, width, _ = frames[0].shape
    assert width >= 2 * height and height % 16 == 0 and width % 16 == 0  # frame + plot side by side
    # The plot panel changes from frame to frame (its cursor moves); the CartPole frame is on the left.
    panel = np.stack([frame[:, height:] for frame in frames]).astype(int)
    assert np.abs(panel[0] - panel[-1]).mean() > 0.5


def test_wandb_offline_in_run_folder(run) -> None:
    _, run_dir, _ = run
    offline = list((run_dir / "wandb").glob("offline-run-*"))
    assert len(offline) == 1
    assert list(offline[0].glob("*.wandb"))


def test_progress_bar_shows_steps_rate_and_returns(run) -> None:
    result, _, _ = run
    last = result.stderr.replace("\r", "\n").splitlines()
    bar = [line for line in last if "300/300" in line]
    assert bar, result.stderr
    assert "step/s" in bar[-1] and "clip_return=" in bar[-1] and "true_return=" in bar[-1]


def test_resume_continues_from_last_checkpoint(run, tmp_path: Path) -> None:
    import shutil

    _, original, _ = run
    run_dir = tmp_path / original.name
    shutil.copytree(original, run_dir)
    # As if the run had been stopped at step 200: drop what came after.
    (run_dir / "checkpoints" / "step_0000000300.zip").unlink()
    (run_dir / "checkpoints" / "replay_buffer_step_0000000300.pkl").unlink()
    (run_dir / "final_model.zip").unlink()
    result = CliRunner().invoke(
        main, ["train", "--resume", str(run_dir), "--set", "rl.n_steps=400", "--set", "wandb.mode=disabled"]
    )
    assert result.exit_code == 0, result.output
    assert f"Resuming {run_dir} from step_0000000200.zip at step 200 of 400" in result.stderr
    assert "the replay buffer starts empty" in result.stderr  # the buffer went with step 300
    assert latest_checkpoint(run_dir / "checkpoints")[1] == 400
    assert load_config(str(run_dir / "config.yaml")).rl.n_steps == 400

    from vlmrm_sb3 import DQN

    assert DQN.load(run_dir / "final_model.zip", device="cpu").num_timesteps == 400
    # Steps continue: the new events start after the checkpoint's step.
    events = EventAccumulator(str(run_dir / "tensorboard"))
    events.Reload()
    steps = [event.step for event in events.Scalars("rollout/clip_ep_rew_mean")]
    assert steps[-2:] == [300, 400] and len(steps) == 5  # 100, 200, 300 (first run), then 300, 400

    again = CliRunner().invoke(main, ["train", "--resume", str(run_dir)])
    assert again.exit_code == 0 and "is finished: it has trained 400 of rl.n_steps=400 steps" in again.stderr


def test_resume_refuses_changes_that_do_not_fit_the_run(run, tmp_path: Path) -> None:
    _, run_dir, _ = run
    result = CliRunner().invoke(main, ["train", "--resume", str(run_dir), "--set", "rl.batch_size=7"])
    assert result.exit_code == 2
    assert "rl.batch_size: cannot change when resuming (the run has 16)" in result.stderr
    empty = tmp_path / "empty"
    (empty).mkdir()
    (empty / "config.yaml").write_text((run_dir / "config.yaml").read_text())
    result = CliRunner().invoke(main, ["train", "--resume", str(empty)])
    assert result.exit_code == 2 and "no checkpoint" in result.stderr


def test_replay_buffer_is_restored_on_resume(run, tmp_path: Path) -> None:
    import shutil

    _, original, _ = run
    run_dir = tmp_path / "copy"
    shutil.copytree(original, run_dir)
    result = CliRunner().invoke(
        main,
        [
            "train",
            "--resume",
            str(run_dir),
            "--set",
            "rl.n_steps=350",
            "--set",
            "wandb.mode=disabled",
            "--no-progress",
        ],
    )
    assert result.exit_code == 0, result.output
    assert "at step 300 of 350" in result.stderr and "starts empty" not in result.stderr


def test_run_dir_starts_then_continues_the_same_run(make_config, write_config, tmp_path: Path) -> None:
    """What a restarted Kubernetes Job does: the same command, again, continues the run."""
    run_dir = tmp_path / "job" / "run"
    config = write_config(make_config(rl={"n_steps": 100}, logging={"video_freq": None}))
    command = ["train", str(config), "--run-dir", str(run_dir), "--no-progress"]
    first = CliRunner().invoke(main, command)
    assert first.exit_code == 0, first.output
    assert f"Run folder: {run_dir}" in first.stderr
    assert latest_checkpoint(run_dir / "checkpoints")[1] == 100

    longer = CliRunner().invoke(main, [*command, "--set", "rl.n_steps=150"])
    assert longer.exit_code == 0, longer.output
    assert f"Resuming {run_dir} from step_0000000100.zip at step 100 of 150" in longer.stderr
    assert latest_checkpoint(run_dir / "checkpoints")[1] == 150

    changed = CliRunner().invoke(main, [*command, "--set", "reward.alpha=0.25"])
    assert changed.exit_code == 2
    assert "reward.alpha: cannot change when resuming (the run has 0.5)" in changed.stderr
    both = CliRunner().invoke(main, [*command, "--resume", str(run_dir)])
    assert both.exit_code == 2 and "not both" in both.stderr


@pytest.mark.parametrize(("limit", "kept"), [(None, True), (4.0, True), (1e-6, False), (0, False)])
def test_replay_buffer_kept_within_its_size_limit(limit, kept: bool, make_config, write_config) -> None:
    config = make_config(rl={"n_steps": 100}, logging={"video_freq": None, "replay_buffer_max_gb": limit})
    result = CliRunner().invoke(main, ["train", str(write_config(config)), "--no-progress"])
    assert result.exit_code == 0, result.output
    (run_dir,) = Path(config["base_path"]).iterdir()
    assert bool(list((run_dir / "checkpoints").glob("replay_buffer_*.pkl"))) == kept
    assert ("checkpoints leave it out" in result.stderr) == (limit == 1e-6)


def test_async_reward_trains_exactly_as_synchronous_scoring(
    make_config, write_config, tmp_path: Path
) -> None:
    import torch
    from vlmrm_sb3 import DQN

    models = {}
    for async_reward in (False, True):
        config = make_config(
            rl={"n_steps": 200, "train_freq": 30, "async_reward": async_reward}, logging={"video_freq": None}
        )
        run_dir = tmp_path / f"async-{async_reward}"
        args = ["train", str(write_config(config)), "--run-dir", str(run_dir), "--no-progress"]
        result = CliRunner().invoke(main, args)
        assert result.exit_code == 0, result.output
        models[async_reward] = DQN.load(run_dir / "final_model.zip", device="cpu")
    assert models[True].async_reward and not models[False].async_reward
    for synchronous, overlapped in zip(
        models[False].policy.parameters(), models[True].policy.parameters(), strict=True
    ):
        assert torch.equal(synchronous, overlapped)
