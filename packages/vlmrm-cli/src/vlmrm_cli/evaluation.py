"""Evaluation of trained policies: deterministic rollouts, ground-truth success, CLIP and true returns.

:func:`run_episodes` rolls a policy out (``predict(deterministic=True)``, episode ``i`` reset with
seed ``seed + i``) in an env made as training makes it, scores every frame with the run's CLIP
reward model and judges each step with the env's ground-truth criterion
(:mod:`vlmrm_envs.success`). :func:`summarise` turns episodes into means with 95% intervals:
the Wilson score interval for the success rate, and a percentile bootstrap of the mean
(10,000 resamples, fixed seed) for the returns. ``vlmrm eval`` and the periodic evaluation of
``vlmrm train`` (``logging.eval_freq``) both use them.
"""

from __future__ import annotations

import csv
import io
import json
import math
import zipfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import gymnasium as gym
import imageio.v3 as imageio
import numpy as np

from vlmrm_cli.checkpoints import CONFIG_FILE, FINAL_MODEL, atomic_write, checkpoint_steps, list_checkpoints
from vlmrm_cli.config import Config, ConfigError, algorithm_class, load_config
from vlmrm_cli.envs import episode_length_of, make_env
from vlmrm_cli.video import image_grid, write_reward_video

__all__ = [
    "CONFIDENCE",
    "MAX_EPISODE_STEPS",
    "Episode",
    "EvalTarget",
    "Interval",
    "evaluate",
    "find_checkpoints",
    "load_policy",
    "mean_interval",
    "progress_plot",
    "run_episodes",
    "summarise",
    "wilson_interval",
]

CONFIDENCE = 0.95
BOOTSTRAP_RESAMPLES = 10_000
MAX_EPISODE_STEPS = 1000
"""An episode of an env without a time limit (or termination) stops here."""

INTERVAL_METHODS = {
    "level": CONFIDENCE,
    "success_rate": "Wilson score interval",
    "returns": f"percentile bootstrap of the mean ({BOOTSTRAP_RESAMPLES} resamples, seed 0)",
}

_Z = 1.959963984540054  # the standard normal's 97.5% quantile


@dataclass
class Interval:
    """A mean and its 95% interval ``[low, high]``."""

    mean: float
    low: float
    high: float

    def as_dict(self) -> dict[str, float]:
        return {"mean": self.mean, "low": self.low, "high": self.high}

    def __str__(self) -> str:
        return f"{self.mean:.4g} [{self.low:.4g}, {self.high:.4g}]"


def wilson_interval(successes: int, trials: int) -> Interval:
    """The success rate ``successes / trials`` with its 95% Wilson score interval."""
    if trials < 1:
        raise ValueError("need at least one trial")
    rate = successes / trials
    denominator = 1 + _Z**2 / trials
    centre = (rate + _Z**2 / (2 * trials)) / denominator
    half = _Z * math.sqrt(rate * (1 - rate) / trials + _Z**2 / (4 * trials**2)) / denominator
    # The interval holds 0 when nothing succeeded and 1 when all did; rounding must not exclude them.
    low = 0.0 if successes == 0 else max(0.0, centre - half)
    high = 1.0 if successes == trials else min(1.0, centre + half)
    return Interval(rate, low, high)


def mean_interval(values: Sequence[float]) -> Interval:
    """The mean of ``values`` with a 95% percentile-bootstrap interval (seeded: reproducible)."""
    data = np.asarray(values, dtype=np.float64)
    if not data.size:
        raise ValueError("need at least one value")
    resampled = np.random.default_rng(0).choice(data, size=(BOOTSTRAP_RESAMPLES, data.size)).mean(axis=1)
    low, high = np.quantile(resampled, [(1 - CONFIDENCE) / 2, (1 + CONFIDENCE) / 2])
    return Interval(float(data.mean()), float(low), float(high))


@dataclass
class Episode:
    """One evaluated episode. Rewards and flags have one entry per step (the frame after the step)."""

    seed: int
    clip_rewards: np.ndarray
    """float32 (T,): the CLIP reward of each step's frame; NaN when rolled out without a reward model."""
    ground_truth_return: float
    """The sum of the env's own reward (``info["original_reward"]`` of a CLIP env, else the reward)."""
    step_success: list[bool] | None
    """The ground-truth label of each step's state; None for an env without a criterion."""
    success: bool | None
    """The episode's ground-truth success; None for an env without a criterion."""
    frames: list[np.ndarray] = field(default_factory=list)
    """Every frame, uint8 (H, W, 3), when the episode was filmed; else empty."""
    samples: list[tuple[int, np.ndarray]] = field(default_factory=list)
    """(step, frame) pairs sampled evenly over the episode for an image grid."""

    @property
    def length(self) -> int:
        return len(self.clip_rewards)

    @property
    def clip_return(self) -> float:
        return float(self.clip_rewards.sum(dtype=np.float64))

    @property
    def success_steps(self) -> int | None:
        return None if self.step_success is None else sum(self.step_success)


FrameSink = Callable[[int, int, np.ndarray, bool], None]
"""``sink(episode_index, step, frame, step_success)``, called for every frame."""


def run_episodes(
    predict: Callable[[Any], Any],
    env: gym.Env,
    reward_model: Callable[[np.ndarray], np.ndarray] | None,
    *,
    episodes: int,
    seed: int,
    batch_size: int = 256,
    film: int = 0,
    samples_per_episode: int = 0,
    frame_sink: FrameSink | None = None,
    on_episode: Callable[[Episode], object] | None = None,
    stopping: Callable[[], bool] = lambda: False,
) -> list[Episode]:
    """Roll ``predict`` (observation -> action) out for ``episodes`` episodes in ``env``.

    ``env`` must put each step's frame in ``info["frame"]`` (a vlmrm CLIP env, reward deferred);
    frames are scored by ``reward_model`` in batches of at most ``batch_size`` as they come. With
    ``reward_model`` None (ground truth only, e.g. a plain ``vlmrm/CartPole-v0``), no frame is
    read unless filmed, sampled or sunk, and the CLIP rewards are NaN.

    Args:
        seed: episode ``i`` is reset with ``seed + i``.
        film: keep every frame of the first ``film`` episodes (for videos).
        samples_per_episode: keep this many frames, evenly spaced over the episode's time limit.
        frame_sink: called with every frame and its ground-truth label (needs a criterion).
        on_episode: called after each episode (a progress bar).
        stopping: checked before every step; once true, the unfinished episode is dropped and the
            episodes finished so far are returned (a signal stops the run).
    """
    from vlmrm_envs.success import criterion_for

    criterion = criterion_for(env)
    if frame_sink is not None and criterion is None:
        raise ValueError(
            f"{env.spec.id if env.spec else env}: no ground-truth success criterion to label frames with"
        )
    limit = min(episode_length_of(env) or MAX_EPISODE_STEPS, MAX_EPISODE_STEPS)
    reads_frames = reward_model is not None or film > 0 or samples_per_episode > 0 or frame_sink is not None
    sample_at = set(np.linspace(0, limit - 1, samples_per_episode).round().astype(int).tolist())
    results: list[Episode] = []
    for index in range(episodes):
        observation, _ = env.reset(seed=seed + index)
        rewards: list[np.ndarray] = []
        pending: list[np.ndarray] = []
        frames: list[np.ndarray] = []
        samples: list[tuple[int, np.ndarray]] = []
        flags: list[bool] = []
        true_return = 0.0
        steps = 0
        for step in range(MAX_EPISODE_STEPS):
            if stopping():
                return results
            action = predict(observation)
            observation, reward, terminated, truncated, info = env.step(action)
            true_return += float(info.get("original_reward", reward))
            steps += 1
            # A copy: renderers may reuse their output array.
            frame = np.array(info["frame"]) if reads_frames else np.empty((0, 0, 3), np.uint8)
            if reward_model is not None:
                pending.append(frame)
                if len(pending) >= batch_size:
                    rewards.append(np.asarray(reward_model(np.stack(pending)), dtype=np.float32))
                    pending = []
            if criterion is not None:
                flags.append(bool(criterion.step(env)))
            if index < film:
                frames.append(frame)
            ended = terminated or truncated
            # An episode that ends before its time limit shows its last frame too.
            if step in sample_at or (ended and samples_per_episode and step < limit - 1):
                samples.append((step, frame))
            if frame_sink is not None:
                frame_sink(index, step, frame, flags[-1])
            if ended:
                break
        if reward_model is None:
            rewards = [np.full(steps, np.nan, np.float32)]
        elif pending:
            rewards.append(np.asarray(reward_model(np.stack(pending)), dtype=np.float32))
        episode = Episode(
            seed=seed + index,
            clip_rewards=np.concatenate(rewards).reshape(-1),
            ground_truth_return=true_return,
            step_success=flags if criterion is not None else None,
            success=criterion.episode(flags) if criterion is not None else None,
            frames=frames,
            samples=samples,
        )
        results.append(episode)
        if on_episode is not None:
            on_episode(episode)
    return results


def summarise(episodes: Sequence[Episode]) -> dict[str, Any]:
    """Means and 95% intervals: ``success_rate`` (None without a criterion), returns, episode length."""
    successes = [episode.success for episode in episodes]
    return {
        "episodes": len(episodes),
        "success_rate": None
        if any(success is None for success in successes)
        else wilson_interval(sum(bool(s) for s in successes), len(episodes)).as_dict(),
        "ground_truth_return": mean_interval([e.ground_truth_return for e in episodes]).as_dict(),
        "clip_return": mean_interval([e.clip_return for e in episodes]).as_dict(),
        "episode_length": float(np.mean([episode.length for episode in episodes])),
    }


# -- vlmrm eval: a run folder or checkpoint in, files out ------------------------------------------

GRID_EPISODES = 4
GRID_COLUMNS = 8
_SUCCESS_COLOUR, _FAILURE_COLOUR = (44, 160, 44), (214, 39, 40)


@dataclass
class EvalTarget:
    """What to evaluate: the run folder, its config and the checkpoints (model zips), in step order."""

    run_dir: Path
    config: Config
    checkpoints: list[Path]


def find_checkpoints(target: Path, *, every: bool, overrides: Sequence[str] = ()) -> EvalTarget:
    """The run and checkpoints named by ``target``: a run folder (its final model, else its latest
    checkpoint; with ``every``, all of ``checkpoints/``) or one model zip inside a run folder.

    ``overrides`` (``["reward.devices=[cpu]"]``) change the run's config for the evaluation.
    Raises :class:`ConfigError` (one line naming ``target``) for anything else.
    """
    target = Path(target)
    if not target.exists():
        raise ConfigError(f"{target}: no such run folder or checkpoint")
    run_dir: Path | None
    if target.is_dir():
        run_dir = target
        if not (run_dir / CONFIG_FILE).is_file():
            raise ConfigError(f"{target}: not a run folder (no {CONFIG_FILE} in it)")
        saved = [path for path, _ in list_checkpoints(run_dir / "checkpoints")]
        final = run_dir / FINAL_MODEL
        if every:
            checkpoints = saved or ([final] if final.is_file() else [])
        else:
            checkpoints = [final] if final.is_file() else saved[-1:]
        if not checkpoints:
            raise ConfigError(
                f"{target}: no checkpoint to evaluate (checkpoints/step_*.zip or {FINAL_MODEL})"
            )
    else:
        if target.suffix != ".zip":
            raise ConfigError(f"{target}: not a checkpoint (a model .zip) or a run folder")
        if every:
            raise ConfigError(f"{target}: --checkpoints all and --best take a run folder, not one checkpoint")
        run_dir = next(
            (folder for folder in (target.parent, target.parent.parent) if (folder / CONFIG_FILE).is_file()),
            None,
        )
        if run_dir is None:
            raise ConfigError(f"{target}: no {CONFIG_FILE} beside it or in its run folder")
        checkpoints = [target]
    config = load_config(str(run_dir / CONFIG_FILE), overrides)
    if config.rl.algorithm == "auto":
        from vlmrm_cli.fits import resolve

        config = resolve(config)
    return EvalTarget(run_dir, config, checkpoints)


def load_policy(config: Config, path: Path) -> Any:
    """The SB3 model saved at ``path`` (checked for pickled code first), on ``rl.device``."""
    from vlmrm_cli.training import refused_if_unsafe

    with refused_if_unsafe(path):
        try:
            return algorithm_class(config.rl.algorithm).load(path, device=config.rl.device)
        except (ValueError, OSError, KeyError, zipfile.BadZipFile) as error:
            raise ConfigError(f"{path}: cannot load the model ({' '.join(str(error).split())})") from None


def evaluate(
    target: Path,
    *,
    episodes: int = 10,
    seed: int = 0,
    every: bool = False,
    best: bool = False,
    save_frames: bool = False,
    videos: int = 1,
    out: Path | None = None,
    overrides: Sequence[str] = (),
    progress: bool = True,
    echo: Callable[[str], None] = print,
) -> dict[str, Any]:
    """``vlmrm eval``: evaluate checkpoints of a run; writes the files below into ``out``
    (default ``RUN_DIR/eval``) and returns the summary.

    ``summary.json`` (means and 95% intervals per checkpoint; with ``best``, the checkpoint with
    the highest mean CLIP return), ``episodes.csv`` (one row per episode), ``videos/`` (the first
    ``videos`` episodes of each checkpoint with the CLIP reward beside the frames),
    ``grid_<checkpoint>.png`` (frames sampled from the first episodes), ``progress.png`` (with
    ``every``: success and returns against training steps) and, with ``save_frames``, every
    frame as a PNG in ``frames/success/`` or ``frames/failure/`` by its step's ground-truth label,
    listed in ``frames/labels.csv``. ``overrides`` change the run's config for the evaluation.
    """
    import vlmrm_envs  # noqa: F401  (sets MUJOCO_GL before MuJoCo is imported)
    from tqdm.auto import tqdm
    from vlmrm_envs.success import criterion_for

    every = every or best
    found = find_checkpoints(target, every=every, overrides=overrides)
    config = found.config
    criterion = criterion_for(config.env_name)
    if save_frames and criterion is None:
        raise ConfigError(
            f"--save-frames: {config.env_name} has no ground-truth success criterion to label frames with"
        )
    if criterion is not None and criterion.proxy:
        if not any("kneel" in prompt.lower() for prompt in config.reward.target_prompts):
            echo(
                f"Note: success on {config.env_name} is the kneeling pose test; the target prompts are not about kneeling"
            )
    out = Path(out) if out is not None else found.run_dir / "eval"
    from vlmrm_cli.training import load_reward_model_for

    reward_model = load_reward_model_for(config)
    env = None
    try:
        env = make_env(config)
        labels: list[list[Any]] = []
        summary: dict[str, Any] = {
            "run_dir": str(found.run_dir),
            "env_name": config.env_name,
            "reward": {
                "pretrained_model": config.reward.pretrained_model,
                "target_prompts": config.reward.target_prompts,
                "baseline_prompts": config.reward.baseline_prompts,
                "alpha": config.reward.alpha,
            },
            "success_criterion": None
            if criterion is None
            else {"name": criterion.name, "description": criterion.description, "proxy": criterion.proxy},
            "episodes": episodes,
            "seeds": list(range(seed, seed + episodes)),
            "policy": "deterministic (predict(deterministic=True)); episode i is reset with seed + i",
            "intervals": INTERVAL_METHODS,
            "checkpoints": [],
        }
        rows: list[list[Any]] = []
        bar = tqdm(
            total=episodes * len(found.checkpoints), unit="episode", disable=not progress, dynamic_ncols=True
        )
        try:
            for path in found.checkpoints:
                model = load_policy(config, path)
                # Made once a model has loaded: bad input leaves nothing behind.
                for folder in [out, *([out / "videos"] if videos else [])] + (
                    [out / "frames" / "success", out / "frames" / "failure"] if save_frames else []
                ):
                    folder.mkdir(parents=True, exist_ok=True)
                steps = checkpoint_steps(path)
                steps = int(model.num_timesteps) if steps is None else steps
                stem = path.stem
                bar.set_description(stem)

                def sink(index: int, step: int, frame: np.ndarray, succeeded: bool, stem: str = stem) -> None:
                    label = "success" if succeeded else "failure"
                    imageio.imwrite(
                        out / "frames" / label / f"{stem}_ep{index:03d}_step{step:04d}.png", frame
                    )

                def act(observation: Any, model: Any = model) -> Any:
                    return model.predict(observation, deterministic=True)[0]

                results = run_episodes(
                    act,
                    env,
                    reward_model,
                    episodes=episodes,
                    seed=seed,
                    batch_size=config.reward.batch_size,
                    film=videos,
                    samples_per_episode=GRID_COLUMNS,
                    frame_sink=sink if save_frames else None,
                    on_episode=lambda _: bar.update(),
                )
                entry = {"checkpoint": str(path), "steps": steps, **summarise(results)}
                summary["checkpoints"].append(entry)
                for index, episode in enumerate(results):
                    rows.append(
                        [
                            str(path), steps, index, episode.seed, episode.length,
                            "" if episode.success is None else int(episode.success),
                            "" if episode.success_steps is None else episode.success_steps,
                            f"{episode.ground_truth_return:.8g}", f"{episode.clip_return:.8g}",
                        ]
                    )  # fmt: skip
                    if index < videos:
                        write_reward_video(
                            out / "videos" / f"{stem}_episode_{index:03d}.mp4",
                            np.stack(episode.frames),
                            episode.clip_rewards,
                            fps=config.logging.video_fps,
                        )
                    if save_frames:
                        assert episode.step_success is not None
                        labels.extend(
                            [
                                f"{'success' if ok else 'failure'}/{stem}_ep{index:03d}_step{step:04d}.png",
                                "success" if ok else "failure", str(path), steps, index, step,
                                f"{float(reward):.8g}",
                            ]
                            for step, (ok, reward) in enumerate(zip(episode.step_success, episode.clip_rewards, strict=True))
                        )  # fmt: skip
                imageio.imwrite(out / f"grid_{stem}.png", _grid(results, stem, steps))
                with tqdm.external_write_mode():  # the line goes above the bar, not through it
                    echo(_line(entry))
                _write_results(out, summary, rows, labels if save_frames else None)
        finally:
            bar.close()
        if best:
            top = max(summary["checkpoints"], key=lambda entry: entry["clip_return"]["mean"])
            summary["best"] = {
                "checkpoint": top["checkpoint"],
                "steps": top["steps"],
                "clip_return": top["clip_return"],
                "chosen_by": "highest mean CLIP return",
            }
            echo(f"Best checkpoint (highest mean CLIP return): {top['checkpoint']}")
            _write_results(out, summary, rows, labels if save_frames else None)
        if every:
            progress_plot(summary, out / "progress.png")
        echo(f"Results: {out}")
        return summary
    finally:
        if env is not None:
            env.close()
        reward_model.close()


def _line(entry: dict[str, Any]) -> str:
    def show(name: str) -> str:
        value = entry[name]
        return "n/a" if value is None else str(Interval(**value))

    return (
        f"{Path(entry['checkpoint']).name} (step {entry['steps']}): success rate {show('success_rate')}  "
        f"ground-truth return {show('ground_truth_return')}  CLIP return {show('clip_return')}  "
        f"({entry['episodes']} episodes, 95% intervals)"
    )


def _write_results(
    out: Path, summary: dict[str, Any], rows: list[list[Any]], labels: list[list[Any]] | None
) -> None:
    atomic_write(
        out / "summary.json", lambda file: file.write((json.dumps(summary, indent=2) + "\n").encode())
    )
    _write_csv(out / "episodes.csv", EPISODE_COLUMNS, rows)
    if labels is not None:
        _write_csv(out / "frames" / "labels.csv", LABEL_COLUMNS, labels)


EPISODE_COLUMNS = [
    "checkpoint", "steps", "episode", "seed", "length", "success", "success_steps",
    "ground_truth_return", "clip_return",
]  # fmt: skip
LABEL_COLUMNS = ["file", "label", "checkpoint", "steps", "episode", "step", "clip_reward"]


def _write_csv(path: Path, header: list[str], rows: list[list[Any]]) -> None:
    text = io.StringIO()
    writer = csv.writer(text)
    writer.writerow(header)
    writer.writerows(rows)
    atomic_write(path, lambda file: file.write(text.getvalue().encode()))


def _grid(results: Sequence[Episode], stem: str, steps: int) -> np.ndarray:
    rows = []
    for index, episode in enumerate(results[:GRID_EPISODES]):
        outcome = "" if episode.success is None else (" success" if episode.success else " failure")
        title = f"{stem} (step {steps}) episode {index}, seed {episode.seed}:{outcome}, CLIP return {episode.clip_return:.4g}"
        tiles = []
        for step, frame in episode.samples:
            colour = None
            if episode.step_success is not None:
                colour = _SUCCESS_COLOUR if episode.step_success[step] else _FAILURE_COLOUR
            tiles.append((frame, f"t={step} r={episode.clip_rewards[step]:.3g}", colour))
        rows.append((title, tiles))
    return image_grid(rows)


def progress_plot(summary: dict[str, Any], path: Path) -> Path:
    """Success rate, ground-truth and CLIP returns (means, 95% bands) against training steps; a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    entries = sorted(summary["checkpoints"], key=lambda entry: entry["steps"])
    steps = [entry["steps"] for entry in entries]
    panels = [
        (name, title)
        for name, title in (
            ("success_rate", "success rate"),
            ("ground_truth_return", "ground-truth return"),
            ("clip_return", "CLIP return"),
        )
        if entries[0][name] is not None
    ]
    figure, axes = plt.subplots(len(panels), 1, figsize=(7, 2.4 * len(panels)), sharex=True, squeeze=False)
    for axis, (name, title) in zip(axes[:, 0], panels, strict=True):
        means = [entry[name]["mean"] for entry in entries]
        axis.plot(steps, means, marker="o")
        axis.fill_between(
            steps,
            [entry[name]["low"] for entry in entries],
            [entry[name]["high"] for entry in entries],
            alpha=0.25,
        )
        axis.set_ylabel(title)
        axis.grid(alpha=0.3)
    if "best" in summary:
        for axis in axes[:, 0]:
            axis.axvline(summary["best"]["steps"], color="grey", linestyle="--", label="best (CLIP return)")
        axes[0, 0].legend(loc="best", fontsize="small")
    axes[-1, 0].set_xlabel("training steps")
    figure.suptitle(f"{summary['env_name']}: {summary['episodes']} episodes per checkpoint, 95% intervals")
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)
    return path
