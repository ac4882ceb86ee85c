"""Reward plots, episode videos with the CLIP reward beside the frames, and reading frames back."""

from __future__ import annotations

import math
import os
from collections.abc import Iterator, Sequence
from pathlib import Path

import imageio.v2 as imageio
import imageio.v3 as iio
import numpy as np
from PIL import Image, ImageDraw, ImageFont

__all__ = [
    "VIDEO_SUFFIXES",
    "image_grid",
    "read_frames",
    "reward_plot",
    "reward_video_frames",
    "write_reward_video",
]

VIDEO_SUFFIXES = (".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v")
"""Files read as videos through ffmpeg; everything else is read as an image (a GIF may hold many)."""

_BACKGROUND = (255, 255, 255)
_AXES = (90, 90, 90)
_FUTURE = (205, 205, 205)
_CURVE = (31, 119, 180)
_CURSOR = (214, 39, 40)
_MIN_VIDEO_HEIGHT = 256  # small frames (64 px in tests) are enlarged so the plot's text is legible


def reward_plot(
    rewards: Sequence[float] | np.ndarray,
    width: int,
    height: int,
    *,
    cursor: int | None = None,
    title: str = "CLIP reward",
    boundaries: Sequence[int] = (),
) -> np.ndarray:
    """Draw rewards against frame index; returns uint8 RGB (height, width, 3).

    Args:
        rewards: one reward per frame, shape (T,).
        cursor: a frame index to mark: the curve is drawn up to it, the rest is greyed, and
            its value is printed in the title.
        boundaries: frame indices where a new source begins (drawn as vertical lines).
    """
    rewards = np.asarray(rewards, dtype=np.float64).reshape(-1)
    image = Image.new("RGB", (width, height), _BACKGROUND)
    draw = ImageDraw.Draw(image)
    font = ImageFont.load_default(size=max(9, min(height // 18, width // 28)))
    line_height = draw.textbbox((0, 0), "0g", font=font)[3] + 4
    finite = rewards[np.isfinite(rewards)]
    low, high = (float(finite.min()), float(finite.max())) if finite.size else (0.0, 1.0)
    if high - low < 1e-9:
        low, high = low - 0.5, high + 0.5
    labels = (f"{high:.4g}", f"{low:.4g}")
    left = 6 + max(draw.textlength(label, font=font) for label in labels)
    top, right, bottom = line_height + 4, width - 8, height - line_height - 4
    if right - left < 8 or bottom - top < 8:
        raise ValueError(f"a {width}x{height} plot is too small to draw")

    headline = (
        title if cursor is None or not rewards.size else f"{title}  step {cursor}: {rewards[cursor]:.4g}"
    )
    draw.text((left, 2), headline, fill=_AXES, font=font)
    draw.text((2, top - line_height // 2), labels[0], fill=_AXES, font=font)
    draw.text((2, bottom - line_height // 2), labels[1], fill=_AXES, font=font)
    draw.text((left, bottom + 2), "0", fill=_AXES, font=font)
    last = f"{max(len(rewards) - 1, 0)}"
    draw.text((right - draw.textlength(last, font=font), bottom + 2), last, fill=_AXES, font=font)
    draw.rectangle((left, top, right, bottom), outline=_AXES)

    span = max(len(rewards) - 1, 1)
    xs = left + np.arange(len(rewards)) / span * (right - left)
    ys = bottom - (np.nan_to_num(rewards, nan=low) - low) / (high - low) * (bottom - top)
    for boundary in boundaries:
        x = left + boundary / span * (right - left)
        draw.line((x, top, x, bottom), fill=_FUTURE)
    points = list(zip(xs.tolist(), ys.tolist(), strict=True))
    end = len(points) if cursor is None else cursor + 1
    if len(points) > 1:
        draw.line(points, fill=_FUTURE if cursor is not None else _CURVE, width=2)
    if end > 1:
        draw.line(points[:end], fill=_CURVE, width=2)
    if cursor is not None and points:
        x, y = points[cursor]
        draw.line((x, top, x, bottom), fill=_CURSOR)
        draw.ellipse((x - 3, y - 3, x + 3, y + 3), fill=_CURSOR)
    elif len(points) == 1:
        x, y = points[0]
        draw.ellipse((x - 3, y - 3, x + 3, y + 3), fill=_CURVE)
    return np.asarray(image)


def reward_video_frames(frames: np.ndarray, rewards: np.ndarray) -> Iterator[np.ndarray]:
    """Video frames: each env frame (enlarged to at least 256 px high) beside the reward plot.

    Yields uint8 (H', W', 3) with H' and W' multiples of 16, as H.264 encoders want them.
    """
    frames, rewards = np.asarray(frames), np.asarray(rewards).reshape(-1)
    if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8:
        raise ValueError(f"frames must be uint8 (T, H, W, 3), got {frames.dtype} {frames.shape}")
    if len(frames) != len(rewards) or not len(frames):
        raise ValueError(
            f"need one reward per frame and at least one frame: {len(frames)} frames, {len(rewards)} rewards"
        )
    scale = math.ceil(_MIN_VIDEO_HEIGHT / frames.shape[1])
    height, width = frames.shape[1] * scale, frames.shape[2] * scale
    panel_width = max(320, height * 5 // 4)
    out_height, out_width = _round_up(height, 16), _round_up(width + panel_width, 16)
    canvas = np.full((out_height, out_width, 3), 255, dtype=np.uint8)
    for step, frame in enumerate(frames):
        canvas[:height, :width] = frame.repeat(scale, axis=0).repeat(scale, axis=1)
        canvas[:, width:] = reward_plot(rewards, out_width - width, out_height, cursor=step)
        yield canvas


def write_reward_video(path: str | Path, frames: np.ndarray, rewards: np.ndarray, *, fps: int = 30) -> Path:
    """Write an mp4 of ``frames`` uint8 (T, H, W, 3) with ``rewards`` (T,) plotted beside them.

    The file appears complete or not at all (written under a temporary name, then renamed).
    """
    path = Path(path)
    temporary = path.with_name(f".{path.stem}.partial{path.suffix}")
    try:
        writer = imageio.get_writer(
            temporary, format="FFMPEG", fps=fps, codec="libx264", quality=7, macro_block_size=16,
            ffmpeg_log_level="error",
        )  # fmt: skip
        # Not `with ... as writer`: imageio's stubs type what __enter__ returns without append_data.
        with writer:
            for frame in reward_video_frames(frames, rewards):
                writer.append_data(frame)
        os.replace(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)
    return path


def image_grid(
    rows: Sequence[tuple[str, Sequence[tuple[np.ndarray, str, tuple[int, int, int] | None]]]],
    *,
    tile_height: int = 160,
) -> np.ndarray:
    """Frames in a grid, one titled row each, every tile captioned and optionally outlined.

    Args:
        rows: ``(title, tiles)`` per row; a tile is ``(frame uint8 (H, W, 3), caption, outline
            RGB or None)``.
        tile_height: frames are scaled to this height (keeping their aspect ratio).

    Returns:
        uint8 RGB (height, width, 3).
    """
    if not rows or not any(tiles for _, tiles in rows):
        raise ValueError("an image grid needs at least one frame")
    first = next(frame for _, tiles in rows for frame, _, _ in tiles)
    tile_width = max(1, round(first.shape[1] * tile_height / first.shape[0]))
    font = ImageFont.load_default(size=max(10, tile_height // 12))
    line = int(font.getbbox("0g")[3]) + 4
    border, columns = 3, max(len(tiles) for _, tiles in rows)
    cell_w, cell_h = tile_width + 2 * border, tile_height + 2 * border + line
    image = Image.new("RGB", (columns * cell_w, len(rows) * (cell_h + line)), _BACKGROUND)
    draw = ImageDraw.Draw(image)
    for row, (title, tiles) in enumerate(rows):
        top = row * (cell_h + line)
        draw.text((border, top + 2), title, fill=(0, 0, 0), font=font)
        for column, (frame, caption, outline) in enumerate(tiles):
            left, tile_top = column * cell_w, top + line
            if outline is not None:
                draw.rectangle(
                    (left, tile_top, left + cell_w - 1, tile_top + tile_height + 2 * border - 1), fill=outline
                )
            tile = Image.fromarray(np.asarray(frame, dtype=np.uint8)).resize((tile_width, tile_height))
            image.paste(tile, (left + border, tile_top + border))
            draw.text(
                (left + border, tile_top + tile_height + 2 * border + 1), caption, fill=_AXES, font=font
            )
    return np.asarray(image)


def read_frames(path: str | Path) -> Iterator[np.ndarray]:
    """The frames of an image or video file as uint8 RGB (H, W, 3), in order."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such file")
    if path.suffix.lower() in VIDEO_SUFFIXES:
        reader = imageio.get_reader(path, format="FFMPEG")
        try:
            for frame in reader:  # type: ignore[attr-defined]  # imageio's stub: __iter__ returns an Array
                yield _rgb(np.asarray(frame), path)
        finally:
            reader.close()
        return
    try:
        # Pillow reads PNG, JPEG, GIF (index=None: every frame), BMP, TIFF, WebP.
        image = iio.imread(path, plugin="pillow", index=None if path.suffix.lower() == ".gif" else 0)
    except Exception as error:  # imageio raises many kinds for unreadable files
        raise ValueError(f"{path}: not a readable image or video ({error})") from None
    frames = image if image.ndim == 4 else image[None]
    for frame in frames:
        yield _rgb(frame, path)


def _rgb(frame: np.ndarray, path: Path) -> np.ndarray:
    if frame.ndim == 2:
        frame = np.repeat(frame[..., None], 3, axis=-1)
    if frame.ndim != 3 or frame.shape[-1] not in (1, 3, 4):
        raise ValueError(f"{path}: unexpected frame shape {frame.shape}")
    if frame.shape[-1] == 1:
        frame = np.repeat(frame, 3, axis=-1)
    frame = frame[..., :3]
    if frame.dtype != np.uint8:
        # 16-bit PNGs and float images: scale to 0..255.
        maximum = 65535 if frame.dtype == np.uint16 else (1.0 if frame.dtype.kind == "f" else 255)
        frame = np.clip(frame.astype(np.float64) / maximum * 255 + 0.5, 0, 255).astype(np.uint8)
    return np.ascontiguousarray(frame)


def _round_up(value: int, multiple: int) -> int:
    return -(-value // multiple) * multiple
