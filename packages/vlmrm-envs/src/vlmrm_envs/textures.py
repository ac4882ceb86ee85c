"""Generated images for the textured Humanoid scene: a sky with clouds, stone floor tiles, metal.

The research code's Humanoid used three photographs (``sky.png``, ``tiles.png``, ``robot.png``):
a blue sky with white clouds, dark grey stone floor tiles and a light metallic robot. These
functions draw images of the same kind from seeded fractal noise, so that the scene needs no asset
files; :func:`scene_textures` reads a user's folder of the original images instead when given one.
"""

from __future__ import annotations

import io
from functools import lru_cache
from pathlib import Path

import numpy as np
from PIL import Image

__all__ = ["TEXTURE_FILES", "floor_tiles", "metal", "png_bytes", "scene_textures", "sky_with_clouds"]

TEXTURE_FILES: tuple[str, ...] = ("sky.png", "tiles.png", "robot.png")
"""The file names of the scene's images, as in the research code: skybox, floor, robot body."""


def _fractal_noise(size: int, octaves: int, rng: np.random.Generator, cells: int) -> np.ndarray:
    """Tileable value noise in [0, 1], float32 (size, size): octaves of smoothly upsampled grids."""
    total = np.zeros((size, size), np.float32)
    amplitude, weight = 1.0, 0.0
    for octave in range(octaves):
        n = cells * 2**octave
        grid = rng.random((n + 1, n + 1)).astype(np.float32)
        grid[-1], grid[:, -1] = grid[0], grid[:, 0]  # equal edges: the image tiles seamlessly
        upsampled = Image.fromarray(grid, mode="F").resize(
            (size + size // n, size + size // n), Image.Resampling.BICUBIC
        )
        total += amplitude * np.asarray(upsampled)[:size, :size]
        weight += amplitude
        amplitude *= 0.5
    return total / weight


def _to_uint8(image: np.ndarray) -> np.ndarray:
    return (np.clip(image, 0.0, 1.0) * 255 + 0.5).astype(np.uint8)


def sky_with_clouds(size: int = 512, seed: int = 0) -> np.ndarray:
    """uint8 (size, size, 3): a blue sky with soft white clouds, the same on every skybox face."""
    rng = np.random.default_rng(seed)
    cover = np.clip((_fractal_noise(size, 6, rng, cells=3) - 0.52) * 3.5, 0.0, 1.0)[..., None] ** 1.2
    cloud_shade = 0.85 + 0.15 * _fractal_noise(size, 4, rng, cells=6)[..., None]
    blue = np.array([0.36, 0.58, 0.86], np.float32)
    white = np.array([0.97, 0.97, 0.98], np.float32)
    return _to_uint8(blue * (1 - cover) + white * cloud_shade * cover)


def floor_tiles(size: int = 512, tiles: int = 2, seed: int = 1) -> np.ndarray:
    """uint8 (size, size, 3): ``tiles`` x ``tiles`` dark grey stone tiles with grain and grout."""
    rng = np.random.default_rng(seed)
    tile = size // tiles
    brightness = np.kron(rng.uniform(0.22, 0.34, (tiles, tiles)), np.ones((tile, tile)))
    grain = _fractal_noise(size, 6, rng, cells=8) - 0.5
    rows, cols = np.mgrid[0:size, 0:size]
    grout = ((cols % tile) < max(size // 170, 2)) | ((rows % tile) < max(size // 170, 2))
    value = np.where(grout, 0.12, brightness[:size, :size] + 0.12 * grain)
    return _to_uint8(np.stack([value, value, value * 1.03], axis=-1))


def metal(size: int = 128, seed: int = 2) -> np.ndarray:
    """uint8 (size, size, 3): light, slightly blue-grey brushed metal for the robot's body."""
    rng = np.random.default_rng(seed)
    mottle = _fractal_noise(size, 5, rng, cells=4) - 0.5
    streaks = np.asarray(
        Image.fromarray(rng.random((size, 8)).astype(np.float32), mode="F").resize(
            (size, size), Image.Resampling.BILINEAR
        )
    )
    value = 0.80 + 0.06 * mottle + 0.04 * (streaks - 0.5)
    return _to_uint8(np.stack([value * 0.98, value * 0.99, value * 1.02], axis=-1))


def png_bytes(image: np.ndarray) -> bytes:
    """``image`` (uint8 (H, W, 3)) encoded as PNG."""
    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, format="PNG")
    return buffer.getvalue()


@lru_cache(maxsize=1)
def _generated() -> dict[str, bytes]:
    return dict(zip(TEXTURE_FILES, map(png_bytes, (sky_with_clouds(), floor_tiles(), metal())), strict=True))


def scene_textures(texture_dir: str | Path | None = None) -> dict[str, bytes]:
    """PNG bytes for each of :data:`TEXTURE_FILES`: generated, or read from ``texture_dir``.

    Files of ``texture_dir`` named as in :data:`TEXTURE_FILES` replace the generated images;
    the others stay generated.

    Raises:
        ValueError: ``texture_dir`` is not a folder, holds none of the files, or one is not an
            image MuJoCo can read (PNG).
    """
    textures = dict(_generated())
    if texture_dir is None:
        return textures
    folder = Path(texture_dir).expanduser()
    if not folder.is_dir():
        raise ValueError(f"texture_dir {str(folder)!r} is not a folder")
    found = [name for name in TEXTURE_FILES if (folder / name).is_file()]
    if not found:
        raise ValueError(f"texture_dir {str(folder)!r} holds none of {', '.join(TEXTURE_FILES)}")
    for name in found:
        data = (folder / name).read_bytes()
        if not data.startswith(b"\x89PNG\r\n\x1a\n"):
            raise ValueError(f"texture_dir: {folder / name} is not a PNG image")
        textures[name] = data
    return textures
