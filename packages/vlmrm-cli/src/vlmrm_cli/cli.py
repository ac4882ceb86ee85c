"""The ``vlmrm`` command: ``train``, ``eval``, ``sweep``, ``config show``, ``score``, ``envs``, ``fps``,
``clip-indomain``, ``landscape``, ``rank-prompts``."""

from __future__ import annotations

import csv
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TextIO

import click

from vlmrm_cli import __version__
from vlmrm_cli.config import DEFAULT_MODEL, ConfigError, dump_config, env_module, load_config
from vlmrm_cli.signals import SignalStop, StopRequested

__all__ = ["BadConfig", "load_reward_model_or_fail", "main", "reward_frames", "reward_model_options"]


class BadConfig(click.ClickException):
    """A one-line ``Error: ...`` and exit code 2, like a usage error, without the usage text."""

    exit_code = 2


@contextmanager
def _one_line_errors(
    errors: type[Exception] | tuple[type[Exception], ...], as_error: type[click.ClickException]
) -> Iterator[None]:
    """Turn ``errors`` into click's one-line ``Error: ...`` (no traceback), with ``as_error``'s exit code.

    Whitespace runs become one space: a config key may hold a line break (``"\\r"``)."""
    try:
        yield
    except errors as error:
        raise as_error(" ".join(str(error).split()) or type(error).__name__) from None


def _notify(line: str) -> None:
    click.echo(line, err=True)


set_option = click.option(
    "--set",
    "overrides",
    multiple=True,
    metavar="KEY.PATH=VALUE",
    help="Override a config key, value read as YAML (repeatable): --set rl.n_steps=1000",
)


def reward_model_options(command: Any) -> Any:
    """The options that choose a reward model's backend and kind, for every command that scores."""
    options = [
        click.option(
            "--backend",
            default="open_clip",
            show_default=True,
            help="Installed backend: open_clip, or transformers (with vlmrm-transformers) for "
            "hf:org/repo specs of CLIP, SigLIP, X-CLIP and LLaVA-style models.",
        ),
        click.option(
            "--video-mode",
            type=click.Choice(["episode", "window"]),
            default=None,
            help="Video models: a file is one episode, rewarded at its last frame (episode) or at "
            "every frame on its last --window-size frames (window). Default: episode.",
        ),
        click.option(
            "--window-size", type=click.IntRange(min=1), default=None, help="Video models: frames per window."
        ),
        click.option(
            "--judge-reward",
            type=click.Choice(["probability", "log_odds"]),
            default=None,
            help="Yes/no VLM judges: the probability of 'yes' (default) or its log-odds.",
        ),
    ]
    for option in reversed(options):
        command = option(command)
    return command


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
    if resume is not None and config is not None:
        raise click.UsageError(
            "give CONFIG or --resume RUN_DIR, not both (a resumed run uses its own config.yaml)"
        )
    if resume is None and config is None:
        raise click.UsageError("missing CONFIG: a YAML file path or YAML text")
    if resume is not None and run_dir is not None:
        raise click.UsageError("give --resume RUN_DIR or --run-dir DIR, not both")
    # Signals are handled from here on, so that one during start-up (the imports and model loading
    # take seconds) ends the process at once, in one line, and not with a traceback.
    with SignalStop() as stop:
        try:
            from vlmrm_cli.envs import EnvWorkerDied
            from vlmrm_cli.training import train as run_training

            # An env worker printed its own traceback: the user needs one line on what it means, and exit code 1.
            with (
                _one_line_errors(ConfigError, BadConfig),
                _one_line_errors(EnvWorkerDied, click.ClickException),
            ):
                # Without --resume there is a CONFIG (checked above); with it, train reads the run's own.
                loaded = (
                    load_config(config, overrides, _notify) if resume is None and config is not None else None
                )
                result = run_training(
                    loaded,  # type: ignore[arg-type]  # None only with resume_dir, where train ignores it
                    resume_dir=resume,
                    run_dir=run_dir,
                    overrides=overrides,
                    progress=progress,
                    echo=lambda line: click.echo(line, err=True),
                    stop=stop,
                )
        except StopRequested as stopped:
            click.echo(str(stopped), err=True)
            ctx.exit(stopped.exit_code)
    ctx.exit(result.exit_code)


class _SweepGroup(click.Group):
    """``vlmrm sweep SWEEP.yaml ...`` means ``vlmrm sweep run SWEEP.yaml ...``."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        if args and args[0] not in self.commands and args[0] not in ctx.help_option_names:
            args = ["run", *args]
        return super().parse_args(ctx, args)


@main.group("sweep", cls=_SweepGroup)
def sweep_group() -> None:
    """Sweeps over config keys: `vlmrm sweep SWEEP.yaml [--local -j N]`, `status`, `results`.

    SWEEP.yaml names a base config and the values to sweep (`grid`: every combination; `points`:
    sets of keys changed together); every point is validated before anything is written.
    """


@sweep_group.command("run")
@click.argument("sweep_file", metavar="SWEEP.yaml")
@click.option(
    "--out",
    type=click.Path(file_okay=False, path_type=Path),
    help="The sweep's folder: configs, manifests, and runs made with --local. Default: sweeps/NAME.",
)
@click.option("--local", is_flag=True, help="Train the points on this machine instead of writing a Job only.")
@click.option(
    "-j",
    "--jobs",
    type=click.IntRange(min=1),
    default=1,
    show_default=True,
    help="With --local: points trained at once.",
)
@click.pass_context
def sweep_run(ctx: click.Context, sweep_file: str, out: Path | None, local: bool, jobs: int) -> None:
    """Expand SWEEP.yaml into one config per point and write them with one Kubernetes Indexed Job
    (kubernetes.yaml); with --local, also train the points here, JOBS at a time.

    A point's run lives in OUT/point-<i> (`vlmrm train --run-dir`): running the same sweep again
    continues every point that did not finish.
    """
    from vlmrm_cli.sweep import load_sweep, run_local, write_sweep

    if jobs != 1 and not local:
        raise click.UsageError("-j/--jobs needs --local (on Kubernetes, set kubernetes.parallelism)")
    with _one_line_errors(ConfigError, BadConfig):
        sweep = load_sweep(sweep_file)
        folder = out if out is not None else Path("sweeps") / sweep.name
        manifest = write_sweep(sweep, folder)
    click.echo(f"{sweep.name}: {len(sweep.points)} points, each validated; written to {folder}", err=True)
    if not local:
        click.echo(f"Submit with: kubectl apply -f {manifest}")
        return
    ctx.exit(run_local(sweep, folder, jobs, echo=lambda line: click.echo(line, err=True)))


sweep_dir_argument = click.argument(
    "sweep_dir", type=click.Path(exists=True, file_okay=False, path_type=Path), metavar="SWEEP_DIR"
)


@sweep_group.command("status")
@sweep_dir_argument
def sweep_status(sweep_dir: Path) -> None:
    """Which points of the sweep in SWEEP_DIR finished, stopped, failed or have not started."""
    from vlmrm_cli.sweep import label_of, point_results

    with _one_line_errors(ConfigError, BadConfig):
        results = point_results(sweep_dir, metrics=False)
    rows = [
        [r.name, r.state, f"{r.steps}/{r.n_steps}" if r.n_steps else str(r.steps), label_of(r.values)]
        for r in results
    ]
    _echo_table(["point", "state", "steps", "values"], rows)
    finished = sum(result.state == "finished" for result in results)
    click.echo(f"{finished} of {len(results)} points finished")


@sweep_group.command("results")
@sweep_dir_argument
@click.option(
    "--csv",
    "csv_path",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Default: SWEEP_DIR/results.csv.",
)
@click.option(
    "--plot",
    "plot_path",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Default: SWEEP_DIR/results.png.",
)
def sweep_results(sweep_dir: Path, csv_path: Path | None, plot_path: Path | None) -> None:
    """Each point's final and best CLIP return, ground-truth return and success rate (when
    evaluated), read from its run folder: a table, a CSV and a PNG plot."""
    from vlmrm_cli.sweep import point_results, result_rows, write_results

    with _one_line_errors(ConfigError, BadConfig):
        results = point_results(sweep_dir)
    header, rows = result_rows(results)
    _echo_table(header, rows)
    csv_path = csv_path or sweep_dir / "results.csv"
    plot_path = plot_path or sweep_dir / "results.png"
    write_results(results, csv_path, plot_path)
    click.echo(f"Table: {csv_path}; plot: {plot_path}", err=True)


def _echo_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> None:
    widths = [max(len(str(row[i])) for row in [header, *rows]) for i in range(len(header))]
    for row in [header, *rows]:
        click.echo("  ".join(f"{cell!s:<{width}}" for cell, width in zip(row, widths, strict=True)).rstrip())


class _OneLineUsageErrors(click.Command):
    """A command whose bad arguments (a number out of range, a missing argument) are reported in
    one ``Error: ...`` line with exit code 2, without the usage text."""

    def make_context(
        self, info_name: str | None, args: list[str], parent: click.Context | None = None, **extra: Any
    ) -> click.Context:
        try:
            return super().make_context(info_name, args, parent=parent, **extra)
        except click.UsageError as error:
            raise BadConfig(error.format_message()) from None


@main.command("eval", cls=_OneLineUsageErrors)
@click.argument("target", metavar="RUN_DIR_OR_CHECKPOINT", type=click.Path(path_type=Path))
@click.option(
    "--episodes", type=click.IntRange(min=1), default=10, show_default=True, help="Episodes per checkpoint."
)
@click.option(
    "--checkpoints",
    "which",
    type=click.Choice(["latest", "all"]),
    default="latest",
    show_default=True,
    help="latest: the final model (else the latest checkpoint); all: every checkpoint, plotted against steps.",
)
@click.option(
    "--best", is_flag=True, help="Evaluate every checkpoint and name the one with the highest CLIP return."
)
@click.option(
    "--save-frames",
    is_flag=True,
    help="Write every frame as a PNG into frames/success/ or frames/failure/ by its ground-truth label.",
)
@click.option(
    "--videos",
    type=click.IntRange(min=0),
    default=1,
    show_default=True,
    help="Episodes filmed per checkpoint.",
)
@click.option(
    "--out",
    type=click.Path(file_okay=False, path_type=Path),
    help="Folder for the results (default: RUN_DIR/eval).",
)
@click.option(
    "--seed",
    type=click.IntRange(min=0, max=2**32 - 1),
    default=0,
    show_default=True,
    help="Episode i uses seed + i.",
)
@set_option
@click.option("--progress/--no-progress", default=True, show_default=True, help="Show a progress bar.")
def eval_command(
    target: Path,
    episodes: int,
    which: str,
    best: bool,
    save_frames: bool,
    videos: int,
    out: Path | None,
    seed: int,
    overrides: tuple[str, ...],
    progress: bool,
) -> None:
    """Evaluate a trained policy: success rate, ground-truth and CLIP returns with 95% intervals.

    RUN_DIR_OR_CHECKPOINT is a run folder (its final model, else its latest checkpoint) or a
    model .zip in one. Episodes are deterministic rollouts (episode i reset with seed + i) in
    the env made as training made it; success is the env's ground-truth criterion on the
    simulator state (Humanoid: a kneeling pose proxy). Writes summary.json, episodes.csv,
    videos/, grid_<checkpoint>.png and, for several checkpoints, progress.png. --set changes
    the run's config for the evaluation only (e.g. --set reward.devices=[cuda:0]).
    """
    from vlmrm_cli.evaluation import evaluate

    with _one_line_errors(ConfigError, BadConfig):
        evaluate(
            target,
            episodes=episodes,
            seed=seed,
            every=which == "all",
            best=best,
            save_frames=save_frames,
            videos=videos,
            out=out,
            overrides=overrides,
            progress=progress,
            echo=click.echo,
        )


@main.group("config")
def config_group() -> None:
    """Inspect configs."""


@config_group.command("show")
@click.argument("config")
@set_option
def config_show(config: str, overrides: tuple[str, ...]) -> None:
    """Print CONFIG resolved: every key with its default, the algorithm chosen for the env."""
    from vlmrm_cli.fits import resolve

    with _one_line_errors(ConfigError, BadConfig):
        loaded = load_config(config, overrides, _notify)
        module = env_module(loaded.env_name)
        if module is not None and module not in sys.modules:
            click.echo(
                f"env_name names module {module!r}, not imported by config show: what the env decides "
                "(rl.algorithm, its defaults, rl.episode_length) is filled in when training starts",
                err=True,
            )
            click.echo(dump_config(loaded), nl=False)
            return
        click.echo(dump_config(resolve(loaded)), nl=False)


@main.command()
@click.option("--prompt", "prompts", multiple=True, required=True, help="Goal description (repeatable).")
@click.option("--baseline", "baselines", multiple=True, help="Baseline description (repeatable).")
@click.option(
    "--alpha", type=click.FloatRange(0, 1), default=0.0, show_default=True, help="Goal-baseline strength."
)
@click.option(
    "--model", default=DEFAULT_MODEL, show_default=True, help="Model spec, e.g. local-dir:/models/clip."
)
@reward_model_options
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
    video_mode: str | None,
    window_size: int | None,
    judge_reward: str | None,
    device: str | None,
    batch_size: int,
    cache_dir: str | None,
    resize_mode: str,
    csv_path: str | None,
    plot_path: Path | None,
    files: tuple[Path, ...],
) -> None:
    """Reward of every frame of image and video FILES, as a table, CSV and plot.

    A video model takes each file as one episode (see --video-mode)."""
    from vlmrm_cli.video import read_frames, reward_plot

    reward_model = load_reward_model_or_fail(
        model,
        target_prompts=list(prompts),
        baseline_prompts=list(baselines),
        alpha=alpha,
        backend=backend,
        video_mode=video_mode,
        window_size=window_size,
        judge_reward=judge_reward,
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
            rewards = reward_frames(reward_model, _frames_or_fail(read_frames, path), batch_size)
            rows.extend((str(path), index, reward) for index, reward in enumerate(rewards))
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


def _write_csv(stream: TextIO, rows: Sequence[tuple[str, int, float]]) -> None:
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


def reward_frames(reward_model: Any, frames: Iterator[Any], batch_size: int) -> Iterator[float]:
    """The reward of each of ``frames`` (uint8 (H, W, 3) arrays, in order): in batches of
    ``batch_size`` for per-frame models, all at once as one episode for episode-aware (video) ones."""
    import numpy as np

    if hasattr(reward_model, "score_episodes"):
        episode = list(frames)
        if episode:
            yield from (float(reward) for reward in reward_model.score_episodes([np.stack(episode)])[0])
        return
    for batch in _batches(frames, batch_size):
        yield from (float(reward) for reward in reward_model(np.stack(batch)))


def load_reward_model_or_fail(model: str, **options: Any) -> Any:
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
@reward_model_options
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
    video_mode: str | None,
    window_size: int | None,
    judge_reward: str | None,
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
    # The reward model before the first frame: importing what it needs (torchvision, triton) after
    # MuJoCo's first EGL render crashes the process on Mesa's EGL (segmentation fault).
    try:
        reward_model = load_reward_model_or_fail(
            model,
            target_prompts=["a robot"],
            backend=backend,
            video_mode=video_mode,
            window_size=window_size,
            judge_reward=judge_reward,
            devices=list(devices) or None,
            batch_size=batch_size,
            cache_dir=cache_dir,
        )
    except BaseException:
        env.close()
        raise
    try:
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


def _new_output_folder(out: Path) -> Path:
    """``out`` if it is missing or empty; a usage error otherwise, so that nothing there is lost."""
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise click.UsageError(f"--out {str(out)!r} exists and is not an empty folder; choose a new one")
    return out


@main.command("clip-indomain")
@click.argument("env_id")
@click.option(
    "--out", type=click.Path(path_type=Path), required=True, help="New folder for the model (local-dir:)."
)
@click.option(
    "--frames", type=click.IntRange(min=1), default=8000, show_default=True, help="Frames to render."
)
@click.option("--steps", type=click.IntRange(min=1), default=300, show_default=True, help="Optimiser steps.")
@click.option(
    "--seconds",
    type=click.FloatRange(min=0, min_open=True),
    default=None,
    help="Stop training after this long.",
)
@click.option("--batch-size", type=click.IntRange(min=2), default=128, show_default=True)
@click.option("--image-size", type=click.IntRange(min=32), default=64, show_default=True)
@click.option("--seed", type=int, default=0, show_default=True)
def clip_indomain(
    env_id: str,
    out: Path,
    frames: int,
    steps: int,
    seconds: float | None,
    batch_size: int,
    image_size: int,
    seed: int,
) -> None:
    """Train a small CLIP on ENV_ID's own frames, captioned from their states; save it to --out.

    An instrument to test the pipeline offline (load it as local-dir:OUT), never a substitute for
    a pretrained CLIP: it knows only its captions' words and its env's scenes.
    """
    from vlmrm_cli.indomain import InDomainSettings, train_indomain_clip
    from vlmrm_cli.scenes import get_scene

    with _one_line_errors(ValueError, click.UsageError):
        get_scene(env_id)
        settings = InDomainSettings(
            frames=frames,
            steps=steps,
            seconds=seconds,
            batch_size=batch_size,
            image_size=image_size,
            seed=seed,
        )
    spec = train_indomain_clip(
        env_id, _new_output_folder(out), settings, log=lambda line: click.echo(line, err=True)
    )
    click.echo(spec)


def _candidates(
    candidates_file: Path | None,
    prompts: tuple[str, ...],
    baselines: tuple[str, ...],
    alphas: tuple[float, ...],
    models: tuple[str, ...],
    backend: str,
) -> list:
    from vlmrm_cli.candidates import CandidateError, candidates_from_options, load_candidates

    with _one_line_errors(CandidateError, click.UsageError):
        if candidates_file is not None:
            if prompts or baselines:
                raise CandidateError("give --candidates FILE or --prompt/--baseline, not both")
            return load_candidates(candidates_file, models[0] if models else DEFAULT_MODEL, backend)
        return candidates_from_options(
            prompts, baselines, alphas or (0.0,), models or (DEFAULT_MODEL,), backend
        )


candidate_options = [
    click.option(
        "--candidates",
        "candidates_file",
        type=click.Path(exists=True, dir_okay=False, path_type=Path),
        help="YAML file of candidates (model, target_prompts, baseline_prompts, alpha).",
    ),
    click.option("--prompt", "prompts", multiple=True, help="Goal description (repeatable)."),
    click.option("--baseline", "baselines", multiple=True, help="Baseline description (repeatable)."),
    click.option(
        "--alpha", "alphas", type=click.FloatRange(0, 1), multiple=True, help="Alpha (repeatable; default 0)."
    ),
    click.option(
        "--model", "models", multiple=True, help=f"Model spec (repeatable; default {DEFAULT_MODEL})."
    ),
    click.option(
        "--backend",
        default="open_clip",
        show_default=True,
        help="Backend of the models (a vlmrm-reward plugin, e.g. transformers).",
    ),
    click.option("--device", default=None, help="Device to score on (default: first GPU, else CPU)."),
    click.option("--cache-dir", default=None, help="Where downloaded weights are kept."),
]


def _with_candidate_options(command):
    for option in reversed(candidate_options):
        command = option(command)
    return command


@main.command()
@click.argument("env_id")
@click.option(
    "--sweep",
    "sweeps",
    multiple=True,
    help="State variable to sweep (repeatable; default: all of the env's).",
)
@click.option("--points", type=click.IntRange(min=2), default=61, show_default=True, help="States per sweep.")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), required=True, help="Output folder.")
@_with_candidate_options
def landscape(
    env_id: str,
    sweeps: tuple[str, ...],
    points: int,
    out: Path,
    candidates_file: Path | None,
    prompts: tuple[str, ...],
    baselines: tuple[str, ...],
    alphas: tuple[float, ...],
    models: tuple[str, ...],
    backend: str,
    device: str | None,
    cache_dir: str | None,
) -> None:
    """Reward along one state variable of ENV_ID (vlmrm/CartPole-v0: pole_angle, cart_position;
    vlmrm/MountainCarContinuous-v0: car_position; vlmrm/Humanoid-v0: kneel, a pose sweep from
    standing to kneeling), the ground-truth success region shaded.

    Each state is rendered as training renders it. Writes landscape_<sweep>.csv and .png into --out.
    """
    import numpy as np

    from vlmrm_cli.landscape import score_landscape, write_landscape
    from vlmrm_cli.scenes import get_scene

    with _one_line_errors(ValueError, click.UsageError):
        scene = get_scene(env_id)
        chosen = [scene.get_sweep(name) for name in sweeps] if sweeps else list(scene.sweeps)
    candidates = _candidates(candidates_file, prompts, baselines, alphas, models, backend)
    for sweep in chosen:
        values, success, rewards = score_landscape(
            scene, sweep, candidates, points, load_reward_model_or_fail, device=device, cache_dir=cache_dir
        )
        csv_path, png_path = write_landscape(out, scene, sweep, candidates, values, success, rewards)
        click.echo(f"{sweep.name}: {csv_path} {png_path}")
        for candidate, row in zip(candidates, rewards, strict=True):
            peak = values[int(np.argmax(row))]
            click.echo(f"  {candidate.name}: peak at {peak:.4g} {sweep.unit}")


def _labelled_frames(frames_dir: Path) -> tuple[Any, Any]:
    """uint8 frames (N, H, W, 3) of FRAMES_DIR/success and FRAMES_DIR/failure, and their labels."""
    import numpy as np

    from vlmrm_cli.video import read_frames

    frames, labels = [], []
    for label, name in ((True, "success"), (False, "failure")):
        folder = frames_dir / name
        files = sorted(path for path in folder.glob("*") if path.is_file()) if folder.is_dir() else []
        if not files:
            raise click.UsageError(
                f"{folder}: no frames; FRAMES_DIR needs image files in success/ and failure/"
            )
        for path in files:
            for frame in _frames_or_fail(read_frames, path):
                frames.append(frame)
                labels.append(label)
    shapes = {frame.shape for frame in frames}
    if len(shapes) > 1:
        raise click.UsageError(f"{frames_dir}: frames differ in size ({sorted(shapes)[:2]}); use one size")
    return np.stack(frames), np.array(labels)


@main.command("rank-prompts")
@click.argument("frames_dir", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), default=None, help="Output folder "
              "(default FRAMES_DIR).")  # fmt: skip
@_with_candidate_options
def rank_prompts(
    frames_dir: Path,
    out: Path | None,
    candidates_file: Path | None,
    prompts: tuple[str, ...],
    baselines: tuple[str, ...],
    alphas: tuple[float, ...],
    models: tuple[str, ...],
    backend: str,
    device: str | None,
    cache_dir: str | None,
) -> None:
    """Rank candidate rewards by how well they separate FRAMES_DIR/success from FRAMES_DIR/failure.

    Prints ROC-AUC and Spearman rank correlation per candidate, best first; writes ranking.csv and
    ranking.png. Labelled frames come from any images sorted into the two folders, or from
    `vlmrm eval --save-frames`.
    """
    from vlmrm_cli.landscape import rank_candidates, write_ranking

    candidates = _candidates(candidates_file, prompts, baselines, alphas, models, backend)
    frames, labels = _labelled_frames(frames_dir)
    ranked = rank_candidates(
        frames, labels, candidates, load_reward_model_or_fail, device=device, cache_dir=cache_dir
    )
    width = max(len("candidate"), *(len(item.candidate.name) for item in ranked))
    click.echo(f"{int(labels.sum())} success and {int((~labels).sum())} failure frames")
    click.echo(f"{'rank':>4}  {'candidate':<{width}}  {'ROC-AUC':>7}  {'Spearman':>8}")
    for position, item in enumerate(ranked, start=1):
        click.echo(f"{position:>4}  {item.candidate.name:<{width}}  {item.auc:>7.3f}  {item.spearman:>8.3f}")
    csv_path, png_path = write_ranking(out or frames_dir, ranked)
    click.echo(f"Wrote {csv_path} and {png_path}", err=True)


if __name__ == "__main__":
    main()
