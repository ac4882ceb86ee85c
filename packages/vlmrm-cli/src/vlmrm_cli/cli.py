"""The ``vlmrm`` command: ``train``, ``config show``, ``score``, ``envs``, ``fps``."""

from __future__ import annotations

import csv
import io
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import click

from vlmrm_cli import __version__
from vlmrm_cli.config import DEFAULT_MODEL, ConfigError, dump_config, load_config

__all__ = ["BadConfig", "main"]


class BadConfig(click.ClickException):
    """A one-line ``Error: ...`` and exit code 2, like a usage error, without the usage text."""

    exit_code = 2


@contextmanager
def _one_line_errors(
    errors: type[Exception] | tuple[type[Exception], ...], as_error: type[click.ClickException]
) -> Iterator[None]:
    """Turn ``errors`` into click's one-line ``Error: ...`` (no traceback), with ``as_error``'s exit code."""
    try:
        yield
    except errors as error:
        raise as_error(str(error)) from None


def _notify(line: str) -> None:
    click.echo(line, err=True)


set_option = click.option(
    "--set",
    "overrides",
    multiple=True,
    metavar="KEY.PATH=VALUE",
    help="Override a config key, value read as YAML (repeatable): --set rl.n_steps=1000",
)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="vlmrm")
def main() -> None:
    """Reinforcement learning with a sentence as the reward: CLIP scores each rendered frame."""


@main.command()
@click.argument("config", required=False)
@set_option
@click.option(
    "--resume",
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    help="Continue the run in this folder from its latest checkpoint (CONFIG is then its config.yaml).",
)
@click.option(
    "--run-dir",
    type=click.Path(file_okay=False, path_type=Path),
    help="Keep the run in this folder (made if missing) instead of a new one named by time; if it "
    "holds a checkpoint, continue from it. For jobs that are restarted after preemption.",
)
@click.option("--progress/--no-progress", default=True, show_default=True, help="Show a progress bar.")
@click.pass_context
def train(
    ctx: click.Context,
    config: str | None,
    overrides: tuple[str, ...],
    resume: Path | None,
    run_dir: Path | None,
    progress: bool,
) -> None:
    """Train from CONFIG, a YAML file or YAML text (`vlmrm train "$(cat config.yaml)"`).

    Makes a run folder under base_path with the resolved config, checkpoints, TensorBoard
    events, videos and the final model. Ctrl-C or SIGTERM saves a checkpoint and exits
    (130 / 143); continue with --resume RUN_DIR.
    """
    from vlmrm_cli.envs import EnvWorkerDied
    from vlmrm_cli.training import train as run_training

    if resume is not None and config is not None:
        raise click.UsageError(
            "give CONFIG or --resume RUN_DIR, not both (a resumed run uses its own config.yaml)"
        )
    if resume is None and config is None:
        raise click.UsageError("missing CONFIG: a YAML file path or YAML text")
    if resume is not None and run_dir is not None:
        raise click.UsageError("give --resume RUN_DIR or --run-dir DIR, not both")
    # An env worker printed its own traceback: the user needs one line on what it means, and exit code 1.
    with _one_line_errors(ConfigError, BadConfig), _one_line_errors(EnvWorkerDied, click.ClickException):
        loaded = None if resume is not None else load_config(config, overrides, _notify)
        result = run_training(
            loaded,  # type: ignore[arg-type]  (None only with resume_dir)
            resume_dir=resume,
            run_dir=run_dir,
            overrides=overrides,
            progress=progress,
            echo=lambda line: click.echo(line, err=True),
        )
    ctx.exit(result.exit_code)


@main.group("config")
def config_group() -> None:
    """Inspect configs."""


@config_group.command("show")
@click.argument("config")
@set_option
def config_show(config: str, overrides: tuple[str, ...]) -> None:
    """Print CONFIG resolved: every key with its default, the algorithm chosen for the env."""
    from vlmrm_cli.training import resolve

    with _one_line_errors(ConfigError, BadConfig):
        click.echo(dump_config(resolve(load_config(config, overrides, _notify))), nl=False)


@main.command()
@click.option("--prompt", "prompts", multiple=True, required=True, help="Goal description (repeatable).")
@click.option("--baseline", "baselines", multiple=True, help="Baseline description (repeatable).")
@click.option(
    "--alpha", type=click.FloatRange(0, 1), default=0.0, show_default=True, help="Goal-baseline strength."
)
@click.option(
    "--model", default=DEFAULT_MODEL, show_default=True, help="Model spec, e.g. local-dir:/models/clip."
)
@click.option("--backend", default="open_clip", show_default=True)
@click.option("--device", default=None, help="Device to score on (default: first GPU, else CPU).")
@click.option("--batch-size", type=click.IntRange(min=1), default=64, show_default=True)
@click.option("--cache-dir", default=None, help="Where downloaded weights are kept.")
@click.option(
    "--resize-mode",
    type=click.Choice(["squash", "shortest", "longest", "model"]),
    default="squash",
    show_default=True,
    help="How a frame that is not square becomes the model's input (as reward.resize_mode).",
)
@click.option(
    "--csv", "csv_path", default=None, help="Write file,frame,reward rows here ('-': stdout, no table)."
)
@click.option(
    "--plot", "plot_path", type=click.Path(dir_okay=False, path_type=Path), help="Write a PNG plot here."
)
@click.argument(
    "files", nargs=-1, required=True, type=click.Path(exists=True, dir_okay=False, path_type=Path)
)
def score(
    prompts: tuple[str, ...],
    baselines: tuple[str, ...],
    alpha: float,
    model: str,
    backend: str,
    device: str | None,
    batch_size: int,
    cache_dir: str | None,
    resize_mode: str,
    csv_path: str | None,
    plot_path: Path | None,
    files: tuple[Path, ...],
) -> None:
    """CLIP reward of every frame of image and video FILES, as a table, CSV and plot."""
    import numpy as np

    from vlmrm_cli.video import read_frames, reward_plot

    reward_model = _load_reward_model(
        model,
        target_prompts=list(prompts),
        baseline_prompts=list(baselines),
        alpha=alpha,
        backend=backend,
        device=device,
        batch_size=batch_size,
        cache_dir=cache_dir,
        resize_mode=None if resize_mode == "model" else resize_mode,
    )
    rows: list[tuple[str, int, float]] = []
    boundaries: list[int] = []
    try:
        for path in files:
            boundaries.append(len(rows))
            frames = 0
            for batch in _batches(_frames_or_fail(read_frames, path), batch_size):
                rewards = reward_model(np.stack(batch))
                rows.extend(
                    (str(path), frames + index, float(reward)) for index, reward in enumerate(rewards)
                )
                frames += len(batch)
    finally:
        reward_model.close()

    if csv_path == "-":
        _write_csv(sys.stdout, rows)
    else:
        width = max(len("file"), *(len(row[0]) for row in rows)) if rows else 4
        click.echo(f"{'file':<{width}}  {'frame':>6}  {'reward':>10}")
        for file, frame, reward in rows:
            click.echo(f"{file:<{width}}  {frame:>6}  {reward:>10.6f}")
        if csv_path is not None:
            with open(csv_path, "w", newline="", encoding="utf-8") as stream:
                _write_csv(stream, rows)
    if plot_path is not None:
        import imageio.v3 as iio

        title = f"CLIP reward: {' / '.join(prompts)}"
        iio.imwrite(
            plot_path, reward_plot([row[2] for row in rows], 960, 480, title=title, boundaries=boundaries[1:])
        )
        click.echo(f"Plot: {plot_path}", err=True)


def _write_csv(stream: io.TextIOBase, rows: Sequence[tuple[str, int, float]]) -> None:
    writer = csv.writer(stream)
    writer.writerow(["file", "frame", "reward"])
    writer.writerows((file, frame, f"{reward:.8g}") for file, frame, reward in rows)


def _frames_or_fail(read_frames, path: Path) -> Iterator:
    try:
        yield from read_frames(path)
    except ValueError as error:
        raise click.BadParameter(str(error), param_hint="FILES") from None


def _batches(items: Iterator, size: int) -> Iterator[list]:
    batch = []
    for item in items:
        batch.append(item)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


def _load_reward_model(model: str, **options: Any) -> Any:
    """``vlmrm_reward.load_reward_model(model, **options)``; bad arguments, and a model that cannot be
    loaded (unknown, missing, not downloadable), are reported in one line as a usage error."""
    import torch  # loaded by vlmrm_reward anyway
    from vlmrm_reward import load_reward_model

    try:
        return load_reward_model(model, **options)
    except (ValueError, TypeError) as error:
        raise click.UsageError(str(error)) from None
    except torch.OutOfMemoryError:  # a RuntimeError, but not a usage error
        raise
    except (OSError, RuntimeError) as error:  # open_clip: missing folder or file, failed download
        raise click.UsageError(f"--model {model!r}: cannot load ({' '.join(str(error).split())})") from None


@main.command()
@click.option("--all", "show_all", is_flag=True, help="Also list every other registered Gymnasium id.")
def envs(show_all: bool) -> None:
    """List the registered vlmrm envs (any Gymnasium id that renders rgb_array also works)."""
    import gymnasium as gym
    import vlmrm_envs

    for env_id in vlmrm_envs.list_envs():
        steps = gym.spec(env_id).max_episode_steps
        click.echo(f"{env_id:<40} {'episode length ' + str(steps) if steps else ''}".rstrip())
    if show_all:
        click.echo("")
        for env_id in sorted(set(gym.registry) - set(vlmrm_envs.list_envs())):
            click.echo(env_id)
    else:
        click.echo("\nPlain Gymnasium ids are wrapped with the CLIP reward too; --all lists them.")


@main.command()
@click.option("--env", "env_id", default="vlmrm/Humanoid-v0", show_default=True, help="Env to render.")
@click.option("--model", default=DEFAULT_MODEL, show_default=True, help="Model spec to score with.")
@click.option(
    "--steps", type=click.IntRange(min=1), default=100, show_default=True, help="Env steps to time."
)
@click.option("--width", type=click.IntRange(min=16), help="Frame width (default: the env's own).")
@click.option("--height", type=click.IntRange(min=16), help="Frame height (default: the env's own).")
@click.option("--batch-size", type=click.IntRange(min=1), default=256, show_default=True)
@click.option(
    "--device", "devices", multiple=True, help="Scoring device (repeatable; default: all GPUs, else CPU)."
)
@click.option("--backend", default="open_clip", show_default=True)
@click.option("--cache-dir", default=None)
def fps(
    env_id: str,
    model: str,
    steps: int,
    width: int | None,
    height: int | None,
    batch_size: int,
    devices: tuple[str, ...],
    backend: str,
    cache_dir: str | None,
) -> None:
    """Render and reward throughput on this machine (one env, random actions)."""
    import numpy as np
    import vlmrm_envs

    try:
        env = vlmrm_envs.make_clip_env(env_id, defer_reward=True, width=width, height=height)
    except (ValueError, TypeError) as error:
        raise click.UsageError(str(error)) from None
    except Exception as error:  # gymnasium's NameNotFound and friends
        raise click.UsageError(f"--env {env_id!r}: {error}") from None
    try:
        env.action_space.seed(0)
        env.reset(seed=0)
        env.step(env.action_space.sample())  # the first frame creates the GL context
        frames = []
        began = time.perf_counter()
        for _ in range(steps):
            _, _, terminated, truncated, info = env.step(env.action_space.sample())
            frames.append(np.array(info["frame"]))
            if terminated or truncated:
                env.reset()
        render_seconds = time.perf_counter() - began
        size = f"{frames[0].shape[1]}x{frames[0].shape[0]}"
    finally:
        env.close()
    click.echo(f"env     {env_id} at {size}: {steps / render_seconds:9.1f} steps/s (physics + rendering)")

    reward_model = _load_reward_model(
        model,
        target_prompts=["a robot"],
        backend=backend,
        devices=list(devices) or None,
        batch_size=batch_size,
        cache_dir=cache_dir,
    )
    try:
        batch = np.stack(frames)
        reward_model(batch[: min(len(batch), batch_size)])  # warm-up: kernels, autotuning
        began = time.perf_counter()
        reward_model(batch)
        reward_seconds = time.perf_counter() - began
        where = ", ".join(str(device) for device in reward_model.devices)
    finally:
        reward_model.close()
    click.echo(
        f"reward  {model} on {where}: {len(batch) / reward_seconds:9.1f} frames/s (batch {batch_size})"
    )
    click.echo(f"both    one env, scoring inline: {steps / (render_seconds + reward_seconds):9.1f} steps/s")


if __name__ == "__main__":
    main()
