"""Does a sentence train an agent? CLIP reward vs ground-truth reward vs random policy, on the CPU.

Side by side, per task and seed, with the same algorithm and settings
(``vlmrm_cli.learning.TASKS``: DQN with rl-zoo's CartPole values and gamma 0.95; SAC with rl-zoo's
MountainCarContinuous values):

- clip: ``vlmrm/CartPole-CLIP-v0`` / ``vlmrm/MountainCarContinuous-CLIP-v0`` with the paper's prompts
  (alpha ``--alpha``), scored at episode end by the in-domain CLIP (``vlmrm clip-indomain``; trained
  here unless ``--model`` names one per task). The agent never sees the ground-truth reward;
- ground_truth: the env's own reward (CartPole: 1 per step with the pole upright and the cart on
  the track; MountainCar: Gymnasium's);
- random: uniform random actions.

Every ``--eval-every`` steps the deterministic policy plays ``--eval-episodes`` episodes, scored by
the ground truth as ``vlmrm eval`` scores it (``vlmrm_cli.evaluation.run_episodes``; success:
``vlmrm_envs.success``, CartPole balanced throughout, MountainCar reached the flag). Prints the final ground-truth return and success rate (mean and spread over
seeds), the ratio of the CLIP agent's return to the ground-truth agent's (target: >= 0.8 on
CartPole), and writes ``learning_<task>.png`` and ``learning_<task>.csv`` into ``--out``.

The in-domain CLIP is a test instrument (it was trained on these very scenes), never a stand-in
for a pretrained CLIP: the figures show that the pipeline turns a sentence into a policy.

    python bench/learning.py                                  # CartPole, 3 seeds, 20k steps
    python bench/learning.py --task mountain_car --steps 50000
    python bench/learning.py --model cartpole=local-dir:/tmp/clip-cartpole --seeds 5
"""

from __future__ import annotations

import argparse
import csv
import tempfile
import time
from pathlib import Path

import numpy as np
from vlmrm_cli.indomain import InDomainSettings, train_indomain_clip
from vlmrm_cli.learning import METHODS, TASKS, Curve, learning_curve, summarise
from vlmrm_reward import load_reward_model


def _plot(path: Path, task_name: str, curves: list[Curve], steps: int) -> None:
    """Two panels against env steps: ground-truth return and success rate (mean, min-max band)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, (returns_axes, success_axes) = plt.subplots(1, 2, figsize=(11, 4), dpi=100)
    colors = {"clip": "tab:blue", "ground_truth": "tab:green", "random": "tab:grey"}
    for method in METHODS:
        runs = [curve for curve in curves if curve.method == method]
        if not runs:
            continue
        x = np.array(runs[0].steps)
        label = {"clip": "CLIP reward (in-domain CLIP)", "ground_truth": "ground-truth reward"}.get(
            method, method
        )
        for axes, values in ((returns_axes, "returns"), (success_axes, "success")):
            y = np.array([getattr(curve, values) for curve in runs])
            axes.plot(x, y.mean(axis=0), color=colors[method], label=f"{label} ({len(runs)} seeds)")
            axes.fill_between(x, y.min(axis=0), y.max(axis=0), color=colors[method], alpha=0.15, lw=0)
    returns_axes.set_ylabel("ground-truth return (deterministic policy)")
    success_axes.set_ylabel("success rate (deterministic policy)")
    success_axes.set_ylim(-0.05, 1.05)
    for axes in (returns_axes, success_axes):
        axes.set_xlabel("env steps")
        axes.grid(alpha=0.3)
    returns_axes.legend(fontsize=8)
    figure.suptitle(f"{TASKS[task_name].env_id}: learning from a sentence ({steps} steps)", fontsize=10)
    figure.tight_layout()
    figure.savefig(path)
    plt.close(figure)


def _write_curves(path: Path, task_name: str, curves: list[Curve]) -> None:
    """One row per evaluation: what ``_read_curves`` reads back."""
    with open(path, "w", newline="") as stream:
        writer = csv.writer(stream)
        writer.writerow(["task", "method", "seed", "step", "ground_truth_return", "success_rate"])
        for curve in curves:
            for step, value, success in zip(curve.steps, curve.returns, curve.success, strict=True):
                writer.writerow([task_name, curve.method, curve.seed, step, f"{value:.4f}", f"{success:.4f}"])


def _read_curves(path: Path) -> tuple[str, list[Curve]]:
    """The task and curves of a CSV ``_write_curves`` wrote."""
    refusal = f"{path}: not a CSV written by bench/learning.py"
    curves: dict[tuple[str, int], Curve] = {}
    tasks = set()
    try:
        with open(path, newline="") as stream:
            for row in csv.DictReader(stream):
                tasks.add(row["task"])
                method, seed = row["method"], int(row["seed"])
                curve = curves.setdefault((method, seed), Curve(method, seed))
                curve.steps.append(int(row["step"]))
                curve.returns.append(float(row["ground_truth_return"]))
                curve.success.append(float(row["success_rate"]))
    except (KeyError, ValueError, UnicodeDecodeError, csv.Error) as error:
        raise SystemExit(f"{refusal} ({type(error).__name__}: {error})") from None
    except OSError as error:
        raise SystemExit(f"{path}: {error.strerror}") from None
    if (
        len(tasks) != 1
        or not tasks <= TASKS.keys()
        or not {curve.method for curve in curves.values()} <= set(METHODS)
    ):
        raise SystemExit(refusal)
    return tasks.pop(), list(curves.values())


def _print_summary(task_name: str, curves: list[Curve]) -> None:
    summary = summarise(curves)
    print(f"{'method':<14} {'GT return':>18} {'success rate':>16}")
    for method, (mean, std, success, success_std) in summary.items():
        print(f"{method:<14} {mean:>9.1f} +- {std:<6.1f} {success:>8.2f} +- {success_std:<5.2f}")
    if {"clip", "ground_truth"} <= summary.keys():
        ground_truth = summary["ground_truth"][0]
        # A ratio of returns means something only against a positive ground-truth return
        # (MountainCar's is negative until the car reaches the flag).
        ratio = f"{summary['clip'][0] / ground_truth:.2f}" if ground_truth > 0 else "n/a"
        target = " (target >= 0.80)" if task_name == "cartpole" else ""
        print(f"CLIP / ground-truth return: {ratio}{target}")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--task", choices=sorted(TASKS), action="append", help="default: cartpole")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--steps", type=int, default=20_000)
    parser.add_argument("--eval-every", type=int, default=2_000)
    parser.add_argument("--eval-episodes", type=int, default=5)
    parser.add_argument("--alpha", type=float, default=0.0)
    parser.add_argument(
        "--model", action="append", default=[], metavar="TASK=SPEC", help="in-domain CLIP per task"
    )
    parser.add_argument("--clip-frames", type=int, default=4000, help="frames to train an in-domain CLIP on")
    parser.add_argument("--clip-steps", type=int, default=150, help="steps to train an in-domain CLIP")
    parser.add_argument("--out", type=Path, default=Path("bench/learning_out"))
    parser.add_argument(
        "--replot", type=Path, metavar="CSV", help="redraw the plot and summary of a CSV this script wrote"
    )
    args = parser.parse_args()
    if args.replot:
        task_name, curves = _read_curves(args.replot)
        steps = max(max(curve.steps) for curve in curves)
        _plot(args.replot.with_suffix(".png"), task_name, curves, steps)
        _print_summary(task_name, curves)
        return
    tasks = args.task or ["cartpole"]
    models = dict(item.split("=", 1) for item in args.model)
    args.out.mkdir(parents=True, exist_ok=True)
    scratch = tempfile.mkdtemp(prefix="vlmrm-indomain-")

    for task_name in tasks:
        task = TASKS[task_name]
        began = time.perf_counter()
        spec = models.get(task_name) or train_indomain_clip(
            task.env_id,
            Path(scratch) / task_name,
            InDomainSettings(frames=args.clip_frames, steps=args.clip_steps, batch_size=128),
            log=print,
        )
        reward_model = load_reward_model(
            spec,
            target_prompts=list(task.target_prompts),
            baseline_prompts=list(task.baseline_prompts),
            alpha=args.alpha,
            device="cpu",
        )
        curves = []
        with reward_model:
            for seed in range(args.seeds):
                for method in METHODS:
                    curves.append(
                        learning_curve(
                            task,
                            method,
                            steps=args.steps,
                            eval_every=args.eval_every,
                            seed=seed,
                            eval_episodes=args.eval_episodes,
                            reward_model=reward_model,
                            log=print,
                        )
                    )
        _write_curves(args.out / f"learning_{task_name}.csv", task_name, curves)
        _plot(args.out / f"learning_{task_name}.png", task_name, curves, args.steps)
        print(f"\n{task.env_id}, {args.steps} steps, {args.seeds} seeds, alpha {args.alpha}, model {spec}")
        _print_summary(task_name, curves)
        print(f"wall time {time.perf_counter() - began:.0f} s; curves in {args.out}/learning_{task_name}.png")


if __name__ == "__main__":
    main()
