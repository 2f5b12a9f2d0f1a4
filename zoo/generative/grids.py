"""Image grids as PNG files: samples, reconstructions and interpolations side by side.

Glossary: B images, Y height, X width, C channels (1 or 3); the grid has ``rows`` x
``columns`` cells.
"""

from __future__ import annotations

import numpy as np
from PIL import Image


def image_grid(images, columns: int, *, value_range: tuple[float, float] = (0.0, 1.0),
               pad: int = 1) -> np.ndarray:
    """[B, Y, X, C] images -> one uint8 picture of ``rows`` = ceil(B / columns) rows:
    [rows (Y + pad) + pad, columns (X + pad) + pad, C]."""
    images = np.asarray(images, np.float32)
    if images.ndim != 4 or images.shape[-1] not in (1, 3):
        raise ValueError(f"images must be [N, H, W, C] with C in (1, 3), got {images.shape}")
    if not isinstance(columns, int) or columns < 1:
        raise ValueError(f"columns must be a positive int, got {columns!r}")
    low, high = value_range
    images = np.clip((images - low) / (high - low), 0.0, 1.0)
    num, height, width, channels = images.shape
    rows = -(-num // columns)
    grid = np.ones((rows * (height + pad) + pad, columns * (width + pad) + pad, channels),
                   np.float32)  # white padding
    for i, image in enumerate(images):
        r, c = divmod(i, columns)
        top, left = pad + r * (height + pad), pad + c * (width + pad)
        grid[top:top + height, left:left + width] = image
    return (grid * 255).round().astype(np.uint8)


def save_png(path: str, grid: np.ndarray, *, scale: int = 2) -> None:
    """Writes a uint8 [Y, X, C] grid, each pixel enlarged ``scale`` times (nearest)."""
    grid = np.repeat(np.repeat(grid, scale, axis=0), scale, axis=1)
    Image.fromarray(grid[..., 0] if grid.shape[-1] == 1 else grid).save(path)
