"""Arrays to pictures without a plotting library: tiles scaled for contrast, laid out in a grid.

Every function returns an `uint8` array of shape (height, width, 3), ready for
`tf.summary.image` or a PNG file.
"""

from __future__ import annotations

import numpy as np

PAD = 2  # pixels between tiles, in the background grey
BACKGROUND = 64
MIN_TILE = 48  # small maps (3x3 kernels, 7x7 activations) are enlarged to at least this many pixels


def contrast(tile: np.ndarray) -> np.ndarray:
    """One tile scaled to 0..255 by its own min and max, so weak and strong tiles are both visible."""
    tile = np.asarray(tile, dtype=np.float32)
    low, high = float(tile.min()), float(tile.max())
    scaled = (tile - low) / (high - low) if high > low else np.zeros_like(tile)
    return (scaled * 255).round().astype(np.uint8)


def enlarge(tile: np.ndarray, size: int = MIN_TILE) -> np.ndarray:
    """Nearest-neighbour enlargement to at least `size` pixels per side: each value stays a crisp square."""
    factor = max(1, -(-size // max(tile.shape[:2])))
    return np.repeat(np.repeat(tile, factor, axis=0), factor, axis=1)


def rgb(tile: np.ndarray) -> np.ndarray:
    """(h, w), (h, w, 1) or (h, w, 3) as (h, w, 3)."""
    if tile.ndim == 2:
        tile = tile[..., None]
    return np.repeat(tile, 3, axis=-1) if tile.shape[-1] == 1 else tile[..., :3]


def grid(tiles: list[list[np.ndarray]]) -> np.ndarray:
    """Rows of equally sized (h, w, 3) uint8 tiles as one picture, with a padding frame."""
    height, width = tiles[0][0].shape[:2]
    columns = max(len(row) for row in tiles)
    picture = np.full((PAD + len(tiles) * (height + PAD), PAD + columns * (width + PAD), 3), BACKGROUND, np.uint8)
    for r, row in enumerate(tiles):
        for c, tile in enumerate(row):
            top, left = PAD + r * (height + PAD), PAD + c * (width + PAD)
            picture[top:top + height, left:left + width] = tile
    return picture


def filter_grid(kernel: np.ndarray, columns: int = 16) -> np.ndarray:
    """A Conv2D kernel (kh, kw, in, out) as one tile per output channel; RGB kernels in colour.

    Kernels over 3 input channels are shown in colour; otherwise each tile is the kernel's
    first input channel (for a first layer on grey images, the only one).
    """
    kernel = np.asarray(kernel, dtype=np.float32)
    colour = kernel.shape[2] == 3
    tiles = [enlarge(rgb(contrast(kernel[..., :, k] if colour else kernel[..., 0, k]))) for k in range(kernel.shape[3])]
    return grid([tiles[i:i + columns] for i in range(0, len(tiles), columns)])


def feature_map_grid(inputs: np.ndarray, activations: np.ndarray, channels: int) -> np.ndarray:
    """One row per input image: the image itself, then its first `channels` activation maps.

    `inputs` is (n, h, w, c) as the model saw it; `activations` (n, h', w', k) of one layer.
    """
    size = max(MIN_TILE, *activations.shape[1:3])
    rows = []
    for image, maps in zip(inputs, activations):
        shown = [fit(rgb(contrast(image)), size)]
        shown += [fit(rgb(contrast(maps[..., k])), size) for k in range(min(channels, maps.shape[-1]))]
        rows.append(shown)
    return grid(rows)


def heat_overlay(image: np.ndarray, heat: np.ndarray, opacity: float = 0.5) -> np.ndarray:
    """A heat map in [0, 1] (the image's rows and columns) over the image in grey: blue cold, red hot."""
    from matplotlib import colormaps

    grey = contrast(np.asarray(image, np.float32).mean(axis=-1)).astype(np.float32)
    colour = colormaps["jet"](np.clip(heat, 0, 1))[..., :3] * 255
    return ((1 - opacity) * grey[..., None] + opacity * colour).round().astype(np.uint8)


def fit(tile: np.ndarray, size: int) -> np.ndarray:
    """Enlarge (nearest neighbour) or shrink (striding) to `size` x `size`: all tiles of a grid agree."""
    rows = (np.arange(size) * tile.shape[0] // size).clip(0, tile.shape[0] - 1)
    cols = (np.arange(size) * tile.shape[1] // size).clip(0, tile.shape[1] - 1)
    return tile[rows][:, cols]
