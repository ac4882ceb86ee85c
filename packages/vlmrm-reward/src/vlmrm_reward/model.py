"""Turning frames into rewards: device placement, micro-batching, precision."""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import os
import warnings
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TYPE_CHECKING, Generic, Literal, TypeVar, cast

import numpy as np
import torch

from vlmrm_reward.backend import Backend, JudgeBackend, VideoBackend, get_backend_loader
from vlmrm_reward.preprocess import RESIZE_MODES, PreprocessConfig, preprocess_frames
from vlmrm_reward.reward import goal_baseline_projection, goal_baseline_reward, goal_embedding

if TYPE_CHECKING:
    from vlmrm_reward.judge import JudgeReward, JudgeRewardModel
    from vlmrm_reward.video import VideoRewardMode, VideoRewardModel

__all__ = [
    "Frames",
    "GoalBaselineMixin",
    "Precision",
    "ReplicatedModel",
    "RewardModel",
    "load_reward_model",
    "resolve_devices",
]

Frames = np.ndarray | torch.Tensor
"""uint8 RGB frames, (N, H, W, 3) or a single (H, W, 3); numpy or torch, any device."""

Precision = Literal["auto", "fp32", "bf16", "fp16"]
PRECISIONS: tuple[str, ...] = ("auto", "fp32", "bf16", "fp16")
DEFAULT_BATCH_SIZE = 256
# A loaded model holds weights on devices and worker threads: sharing it is explicit.
NOT_COPIED = (
    "a RewardModel is not copied (it holds weights on devices and worker threads): pass the same "
    "object to everything that scores, or load another with load_reward_model"
)
T = TypeVar("T")
# The backend kind a model replicates, and the kinds that embed text (goal and baseline prompts).
BackendT = TypeVar("BackendT", Backend, VideoBackend, JudgeBackend)
TextBackendT = TypeVar("TextBackendT", Backend, VideoBackend)
# What ReplicatedModel._map cuts into micro-batches: frames, or rows of frame indices.
ItemsT = TypeVar("ItemsT", bound=Frames)


def _rows(items: ItemsT, start: int, stop: int) -> ItemsT:
    """``items[start:stop]``; slicing an array or a tensor gives one of the same type."""
    return cast(ItemsT, items[start:stop])


def resolve_devices(
    device: str | torch.device | None = None,
    devices: Sequence[str | torch.device] | None = None,
) -> list[torch.device]:
    """The devices to score on: ``devices``, else ``[device]``, else every visible GPU, else CPU."""
    if device is not None and devices is not None:
        raise ValueError("pass either device or devices, not both")
    if devices is not None:
        if isinstance(devices, (str, torch.device)):
            raise TypeError("devices must be a list, e.g. ['cuda:0', 'cuda:1']; use device= for one")
        requested = list(devices)
        if not requested:
            raise ValueError("devices is an empty list; leave it out to use every visible GPU")
    elif device is not None:
        requested = [device]
    elif torch.cuda.is_available():
        requested = [f"cuda:{i}" for i in range(torch.cuda.device_count())]
    else:
        requested = ["cpu"]
    resolved = []
    for spec in requested:
        try:
            resolved_device = torch.device(spec)
        except (RuntimeError, TypeError) as error:
            raise ValueError(f"{spec!r} is not a torch device ({error})") from None
        if resolved_device.type == "cuda":
            count = torch.cuda.device_count() if torch.cuda.is_available() else 0
            index = 0 if resolved_device.index is None else resolved_device.index
            if index >= count:
                raise ValueError(f"device {spec!r} is not available: this machine has {count} CUDA device(s)")
            resolved_device = torch.device("cuda", index)
        elif resolved_device.type != "cpu" and resolved_device.type != "mps":
            raise ValueError(f"device {spec!r}: only cpu, cuda and mps devices are supported")
        resolved.append(resolved_device)
    return resolved


def as_frame_batch(frames: Frames) -> Frames:
    """Check frames and give them a batch axis; raises TypeError/ValueError naming the problem."""
    if isinstance(frames, (list, tuple)):
        frames = (
            np.stack([np.asarray(frame) for frame in frames]) if frames else np.zeros((0, 1, 1, 3), np.uint8)
        )
    if not isinstance(frames, (np.ndarray, torch.Tensor)):
        raise TypeError(f"frames must be a numpy array or torch tensor, got {type(frames).__name__}")
    if frames.ndim == 3:
        frames = frames[None]
    if frames.ndim != 4:
        raise ValueError(
            f"frames must have shape (N, H, W, 3) or (H, W, 3), got {tuple(frames.shape)} ({frames.ndim} dims)"
        )
    channels = frames.shape[-1]
    if channels != 3:
        if frames.shape[1] == 3:
            hint = "; they look channels-first: pass frames.transpose(0, 2, 3, 1)"
        elif channels == 4:
            hint = "; drop the alpha channel with frames[..., :3]"
        else:
            hint = ""
        raise ValueError(f"frames must be RGB with 3 channels last, got shape {tuple(frames.shape)}{hint}")
    if frames.dtype not in (np.uint8, torch.uint8):
        raise TypeError(
            f"frames must be uint8 RGB in [0, 255], got dtype {frames.dtype}; for floats in [0, 1] "
            "convert with (frames * 255).round() cast to uint8"
        )
    if frames.shape[1] == 0 or frames.shape[2] == 0:
        raise ValueError(f"frames have zero height or width: shape {tuple(frames.shape)}")
    if isinstance(frames, np.ndarray):
        # torch.from_numpy refuses negative strides (e.g. from np.flip).
        frames = np.ascontiguousarray(frames)
    return frames


class ReplicatedModel(Generic[BackendT]):
    """A backend replicated on devices, with the micro-batching, threads and precision every reward
    kind shares; :class:`RewardModel`, :class:`~vlmrm_reward.VideoRewardModel` and
    :class:`~vlmrm_reward.JudgeRewardModel` add what their reward *is*.

    Every call is cut into micro-batches of ``batch_size`` items, each micro-batch is split evenly
    across the devices, and each device works through its share on its own thread (CUDA kernels
    release the GIL), so devices run concurrently while results come back in input order.
    """

    def __init__(
        self,
        backend: BackendT,
        devices: Sequence[torch.device],
        *,
        batch_size: int = DEFAULT_BATCH_SIZE,
        precision: Precision = "auto",
        resize_mode: str | None = None,
    ) -> None:
        _check_resize_mode(resize_mode)
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}")
        if precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {PRECISIONS}, got {precision!r}")
        self.devices: list[torch.device] = list(devices)
        self.batch_size: int = batch_size
        self.precision: Precision = precision
        self.preprocess_config: PreprocessConfig = backend.preprocess_config
        if resize_mode is not None:
            self.preprocess_config = dataclasses.replace(self.preprocess_config, resize_mode=resize_mode)
        # Copy before the first move so that no device briefly holds two replicas.
        copies: list[BackendT] = [copy.deepcopy(backend).to(device) for device in self.devices[1:]]
        self._replicas: list[BackendT] = [backend.to(self.devices[0])]
        self._replicas.extend(copies)
        self._workers = [ThreadPoolExecutor(1, f"vlmrm-reward-{d}") for d in self.devices]
        self._closed = False

    def close(self) -> None:
        """Stop the device worker threads and free the replicas. Idempotent."""
        if self._closed:
            return
        self._closed = True
        for worker in self._workers:
            worker.shutdown(wait=True, cancel_futures=True)
        self._replicas.clear()

    def __enter__(self: T) -> T:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __copy__(self: T) -> T:
        raise TypeError(NOT_COPIED)

    def __deepcopy__(self: T, memo: dict[int, object]) -> T:
        raise TypeError(NOT_COPIED)

    def __reduce__(self):
        raise TypeError(
            f"a {type(self).__name__} cannot be sent to another process; give each worker a model spec "
            "to load, or render in the workers and score in the main process (defer the reward)"
        )

    def _autocast(self, device: torch.device) -> contextlib.AbstractContextManager:
        dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(self.precision)
        if self.precision == "auto" and device.type == "cuda":
            dtype = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        if dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(device_type=device.type, dtype=dtype)

    def _pixels(self, replica: int, frames: Frames) -> torch.Tensor:
        """uint8 frames (N, H, W, 3) -> preprocessed float pixels (N, 3, h, w) on the replica's device.

        Call it inside ``torch.inference_mode()`` on the replica's own thread."""
        device = self.devices[replica]
        pixels = torch.from_numpy(frames) if isinstance(frames, np.ndarray) else frames
        if device.type == "cuda" and pixels.device.type == "cpu":
            pixels = pixels.pin_memory()
        return preprocess_frames(pixels.to(device, non_blocking=True), self.preprocess_config)

    def _map(
        self, fn: Callable[[int, ItemsT], torch.Tensor], frames: ItemsT, empty_shape: tuple[int, ...]
    ) -> np.ndarray:
        if self._closed:
            raise RuntimeError(f"this {type(self).__name__} was closed")
        if len(frames) == 0:
            return np.zeros(empty_shape, dtype=np.float32)
        if len(self.devices) == 1:
            outputs = [
                fn(0, _rows(frames, start, start + self.batch_size))
                for start in range(0, len(frames), self.batch_size)
            ]
        else:
            futures: list[Future[torch.Tensor]] = [
                self._workers[replica].submit(fn, replica, shard) for replica, shard in self._shards(frames)
            ]
            try:
                outputs = [future.result() for future in futures]
            except BaseException:
                for future in futures:
                    future.cancel()
                raise
        return torch.cat([output.cpu() for output in outputs]).numpy()

    def _shards(self, frames: ItemsT) -> Iterator[tuple[int, ItemsT]]:
        """(replica, frames) pairs in input order: micro-batches, each split across devices."""
        n_devices = len(self.devices)
        for start in range(0, len(frames), self.batch_size):
            batch = _rows(frames, start, start + self.batch_size)
            bounds = np.linspace(0, len(batch), n_devices + 1).round().astype(int)
            for replica in range(n_devices):
                if bounds[replica + 1] > bounds[replica]:
                    yield replica, _rows(batch, bounds[replica], bounds[replica + 1])


class GoalBaselineMixin(ReplicatedModel[TextBackendT]):
    """The goal and baseline embeddings of fixed prompts, and the reward of unit embeddings."""

    def _fix_prompts(
        self, target_prompts: Sequence[str], baseline_prompts: Sequence[str], alpha: float
    ) -> None:
        target_prompts = _check_prompts(target_prompts, "target_prompts", required=True)
        baseline_prompts = _check_prompts(baseline_prompts, "baseline_prompts", required=False)
        _check_alpha(alpha)
        if alpha > 0 and not baseline_prompts:
            warnings.warn(
                f"alpha={alpha} has no effect without baseline_prompts; using the plain CLIP reward",
                stacklevel=3,
            )
        self.alpha = float(alpha)
        self.target_prompts = target_prompts
        self.baseline_prompts = baseline_prompts
        goal = goal_embedding(torch.from_numpy(self.embed_text(target_prompts)))
        baseline = (
            goal_embedding(torch.from_numpy(self.embed_text(baseline_prompts))) if baseline_prompts else None
        )
        projection = goal_baseline_projection(goal, baseline, self.alpha)
        self.goal, self.baseline = goal, baseline
        self._goal = [goal.to(device) for device in self.devices]
        self._projection = [projection.to(device) for device in self.devices]

    def embed_text(self, prompts: Sequence[str]) -> np.ndarray:
        """Unit-norm text embeddings of P prompts: float32 array of shape (P, D)."""
        prompts = _check_prompts(prompts, "prompts", required=True)
        with torch.inference_mode(), self._autocast(self.devices[0]):
            embeddings = self._replicas[0].encode_text(prompts).float()
        return _unit(embeddings).cpu().numpy()

    def _reward(self, replica: int, embeddings: torch.Tensor) -> torch.Tensor:
        """Goal-baseline rewards (N,) of unit embeddings (N, D), on the replica's device."""
        return goal_baseline_reward(embeddings, self._goal[replica], self._projection[replica])


class RewardModel(GoalBaselineMixin[Backend]):
    """A VLM with fixed prompts that maps frames to goal-baseline CLIP rewards.

    One replica of the backend lives on each device. Every call is cut into micro-batches of
    ``batch_size`` frames, each micro-batch is split evenly across the devices, and each device
    works through its share on its own thread (CUDA kernels release the GIL), so devices run
    concurrently while results come back in input order. Rewards do not depend on
    ``batch_size`` or on the number of devices (up to floating-point rounding).

    Args:
        backend: a loaded :class:`Backend` (weights anywhere; they are moved).
        devices: where to score; replicas are deep copies of ``backend``.
        target_prompts: descriptions of the goal state (at least one).
        baseline_prompts: descriptions of the environment in general; optional.
        alpha: goal-baseline regularisation strength in [0, 1]; 0 is plain CLIP similarity.
        batch_size: frames per micro-batch across all devices (any positive integer).
        precision: ``"auto"`` (fp32 on CPU, bf16 autocast on CUDA where supported, else fp16),
            or ``"fp32"``, ``"bf16"``, ``"fp16"`` explicitly.
        compile: wrap each replica's image encoder in ``torch.compile`` (slower start, faster
            steady state on GPUs).
        resize_mode: how a frame becomes the model's square input, overriding the model's own
            preprocess config: ``"squash"`` (resize, ignoring the aspect ratio; the paper's,
            keeps the whole frame), ``"shortest"`` (fit the short side, crop the long one),
            ``"longest"`` (fit the long side, pad the short one). None: the model's own. Square
            frames come out the same in every mode.
    """

    def __init__(
        self,
        backend: Backend,
        devices: Sequence[torch.device],
        *,
        target_prompts: Sequence[str],
        baseline_prompts: Sequence[str] = (),
        alpha: float = 0.0,
        batch_size: int = DEFAULT_BATCH_SIZE,
        precision: Precision = "auto",
        compile: bool = False,
        resize_mode: str | None = None,
    ) -> None:
        _check_prompts(target_prompts, "target_prompts", required=True)
        _check_prompts(baseline_prompts, "baseline_prompts", required=False)
        _check_alpha(alpha)
        super().__init__(
            backend, devices, batch_size=batch_size, precision=precision, resize_mode=resize_mode
        )
        if compile:
            for replica in self._replicas:
                # Each replica's own encoder becomes a compiled one (an instance attribute; mypy
                # flags any assignment to a method).
                replica.encode_images = torch.compile(  # type: ignore[method-assign]
                    replica.encode_images, dynamic=True
                )
        self._fix_prompts(target_prompts, baseline_prompts, alpha)

    # -- public API -----------------------------------------------------------------------

    def __call__(self, frames: Frames) -> np.ndarray:
        """Rewards of uint8 RGB frames (N, H, W, 3) or (H, W, 3): float32 array of shape (N,)."""

        def score(replica: int, shard: Frames) -> torch.Tensor:
            return self._reward(replica, self._embed_shard(replica, shard))

        return self._map(score, as_frame_batch(frames), empty_shape=(0,))

    def embed_images(self, frames: Frames) -> np.ndarray:
        """Unit-norm image embeddings of uint8 RGB frames: float32 array of shape (N, D)."""
        return self._map(self._embed_shard, as_frame_batch(frames), empty_shape=(0, self.goal.shape[0]))

    def __repr__(self) -> str:
        devices = ", ".join(str(d) for d in self.devices)
        return (
            f"RewardModel(target_prompts={self.target_prompts}, baseline_prompts={self.baseline_prompts}, "
            f"alpha={self.alpha}, devices=[{devices}], batch_size={self.batch_size}, precision={self.precision!r})"
        )

    # -- internals ------------------------------------------------------------------------

    def _embed_shard(self, replica: int, frames: Frames) -> torch.Tensor:
        # inference_mode is thread-local, so it is entered here, on the worker's own thread.
        with torch.inference_mode(), self._autocast(self.devices[replica]):
            embeddings = self._replicas[replica].encode_images(self._pixels(replica, frames))
        return _unit(embeddings.float())


def _unit(embeddings: torch.Tensor) -> torch.Tensor:
    return embeddings / embeddings.norm(dim=-1, keepdim=True)


def _check_alpha(alpha: float) -> None:
    if isinstance(alpha, bool) or not isinstance(alpha, (int, float)) or not 0.0 <= alpha <= 1.0:
        raise ValueError(f"alpha must be a number in [0, 1], got {alpha!r}")


def _check_prompts(prompts: Sequence[str], name: str, *, required: bool) -> list[str]:
    if isinstance(prompts, str):
        raise TypeError(
            f"{name} must be a list of strings, got the single string {prompts!r}; wrap it in a list"
        )
    prompts = list(prompts)
    if required and not prompts:
        raise ValueError(f"{name} is empty: give at least one prompt")
    for prompt in prompts:
        if not isinstance(prompt, str) or not prompt.strip():
            raise ValueError(f"{name} must hold non-empty strings, got {prompt!r}")
    return prompts


def _check_resize_mode(resize_mode: str | None) -> None:
    if resize_mode is not None and resize_mode not in RESIZE_MODES:
        raise ValueError(f"resize_mode must be one of {', '.join(RESIZE_MODES)} or None, got {resize_mode!r}")


def _check_batch_size_and_precision(batch_size: object, precision: object) -> None:
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}")
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {PRECISIONS}, got {precision!r}")


def load_reward_model(
    model: str,
    *,
    target_prompts: Sequence[str],
    baseline_prompts: Sequence[str] = (),
    alpha: float = 0.0,
    backend: str = "open_clip",
    device: str | torch.device | None = None,
    devices: Sequence[str | torch.device] | None = None,
    batch_size: int = DEFAULT_BATCH_SIZE,
    precision: Precision = "auto",
    cache_dir: str | None = None,
    compile: bool = False,
    resize_mode: str | None = None,
    video_mode: VideoRewardMode | None = None,
    window_size: int | None = None,
    judge_reward: JudgeReward | None = None,
    question_template: str | None = None,
) -> RewardModel | VideoRewardModel | JudgeRewardModel:
    """Load a VLM and fix its prompts; returns a reward model of the backend's kind.

    The loaded backend decides the kind: a :class:`Backend` gives a :class:`RewardModel`
    (frames -> rewards), a :class:`~vlmrm_reward.VideoBackend` a
    :class:`~vlmrm_reward.VideoRewardModel` (episodes -> per-step rewards), a
    :class:`~vlmrm_reward.JudgeBackend` a :class:`~vlmrm_reward.JudgeRewardModel` (frames ->
    probability or log-odds of "yes").

    Args:
        model: the backend's model spec. For open_clip: ``"ARCH/PRETRAINED_TAG"``
            (``"ViT-bigG-14/laion2b_s39b_b160k"``), ``"ARCH/path/to/checkpoint.pt"``,
            ``"hf-hub:org/repo"`` or ``"local-dir:/path/to/folder"``.
        device: one device (``"cuda:1"``, ``"cpu"``); shorthand for ``devices=[device]``.
        devices: several devices; every batch is split across them.
            Default: every visible GPU, else the CPU.
        cache_dir: where downloaded weights are kept (mount a volume here on clusters).
        video_mode, window_size: video backends only: ``"episode"`` (default) or ``"window"``,
            and the window's length in frames (default 16); see :mod:`vlmrm_reward.video`.
        judge_reward, question_template: judge backends only: ``"probability"`` (default) or
            ``"log_odds"``, and the question (default ``"Does this image show {prompt}?"``).

    The remaining arguments are those of :class:`RewardModel`. Invalid arguments raise
    ``ValueError``/``TypeError`` before any weights are loaded, except options of another
    backend kind, which are refused once the backend shows its kind.
    """
    from vlmrm_reward.judge import DEFAULT_QUESTION, JudgeRewardModel, check_judge_options
    from vlmrm_reward.video import DEFAULT_WINDOW_SIZE, VideoRewardModel, check_video_options

    if not isinstance(model, str) or not model.strip():
        raise ValueError(f"model must be a model spec string such as 'ViT-B-32/openai', got {model!r}")
    _check_prompts(target_prompts, "target_prompts", required=True)
    _check_prompts(baseline_prompts, "baseline_prompts", required=False)
    _check_alpha(alpha)
    _check_resize_mode(resize_mode)
    video_options = {"video_mode": video_mode, "window_size": window_size}
    judge_options = {"judge_reward": judge_reward, "question_template": question_template}
    if any(value is not None for value in video_options.values()):
        check_video_options(
            video_mode or "episode", DEFAULT_WINDOW_SIZE if window_size is None else window_size
        )
    if any(value is not None for value in judge_options.values()):
        check_judge_options(judge_reward or "probability", question_template or DEFAULT_QUESTION)
    _check_batch_size_and_precision(batch_size, precision)
    if not isinstance(compile, bool):
        raise TypeError(f"compile must be True or False, got {compile!r}")
    if cache_dir is not None and not isinstance(cache_dir, (str, os.PathLike)):
        raise TypeError(f"cache_dir must be a folder path, got {type(cache_dir).__name__}")
    resolved = resolve_devices(device, devices)
    loader = get_backend_loader(backend)
    loaded = loader(model, cache_dir=cache_dir)
    kind = (
        "video"
        if isinstance(loaded, VideoBackend)
        else "judge"
        if isinstance(loaded, JudgeBackend)
        else "image"
    )
    for option_kind, options in (("video", video_options), ("judge", judge_options)):
        misplaced = [name for name, value in options.items() if value is not None]
        if misplaced and kind != option_kind:
            described = {"image": "an image-text", "video": "a video", "judge": "a yes/no judge"}[kind]
            raise ValueError(
                f"{', '.join(misplaced)} applies to {option_kind} models only; {model!r} is {described} model"
            )
    if isinstance(loaded, VideoBackend):
        return VideoRewardModel(
            loaded,
            resolved,
            target_prompts=target_prompts,
            baseline_prompts=baseline_prompts,
            alpha=alpha,
            mode=video_mode or "episode",
            window_size=DEFAULT_WINDOW_SIZE if window_size is None else window_size,
            batch_size=batch_size,
            precision=precision,
            resize_mode=resize_mode,
        )
    if isinstance(loaded, JudgeBackend):
        if baseline_prompts or alpha:
            raise ValueError(f"{model!r} is a yes/no judge: it takes no baseline_prompts or alpha")
        return JudgeRewardModel(
            loaded,
            resolved,
            target_prompts=target_prompts,
            reward=judge_reward or "probability",
            question_template=question_template or DEFAULT_QUESTION,
            batch_size=batch_size,
            precision=precision,
            resize_mode=resize_mode,
        )
    return RewardModel(
        loaded,
        resolved,
        target_prompts=target_prompts,
        baseline_prompts=baseline_prompts,
        alpha=alpha,
        compile=compile,
        batch_size=batch_size,
        precision=precision,
        resize_mode=resize_mode,
    )
