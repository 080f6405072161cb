"""Pictures with words on them (class names, captions), drawn with matplotlib's Agg backend."""

from __future__ import annotations

import numpy as np

from cnnzoo.pictures import grids

MAX_LABELLED_CLASSES = 30  # beyond this a confusion matrix is shown without names or counts


def _figure(width: float, height: float):
    from matplotlib.figure import Figure  # no pyplot: no global figure state, no display needed

    return Figure(figsize=(width, height), dpi=100)


def _pixels(figure) -> np.ndarray:
    """The drawn figure as (h, w, 3) uint8."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    canvas = FigureCanvasAgg(figure)
    canvas.draw()
    return np.asarray(canvas.buffer_rgba())[..., :3].copy()


def confusion_picture(matrix: np.ndarray, names: list[str], title: str) -> np.ndarray:
    """Rows: true class, columns: predicted class; each cell's count, shaded by its share of the row."""
    n = len(names)
    size = min(12.0, 2.5 + 0.35 * n)
    figure = _figure(size + 1.0, size)
    axes = figure.add_subplot()
    totals = matrix.sum(axis=1, keepdims=True)
    share = np.divide(matrix, totals, out=np.zeros(matrix.shape, np.float64), where=totals > 0)
    axes.imshow(share, cmap="Blues", vmin=0, vmax=1)
    if n <= MAX_LABELLED_CLASSES:
        ticks = np.arange(n)
        axes.set_xticks(ticks, names, rotation=45, ha="right", fontsize=8)
        axes.set_yticks(ticks, names, fontsize=8)
        for (row, col), count in np.ndenumerate(matrix):
            if count:
                axes.text(col, row, str(count), ha="center", va="center", fontsize=7,
                          color="white" if share[row, col] > 0.5 else "black")
    axes.set_xlabel("predicted")
    axes.set_ylabel("true")
    axes.set_title(title, fontsize=10)
    figure.tight_layout()
    return _pixels(figure)


def mistakes_picture(images: np.ndarray, captions: list[str], columns: int = 4) -> np.ndarray:
    """Images in a grid, each with its caption (e.g. `7 → 1 (0.98)`) above it."""
    return captioned_picture([grids.fit(grids.rgb(grids.contrast(image)), TILE) for image in images], captions, columns)


def grad_cam_picture(images: np.ndarray, heats: list[np.ndarray], captions: list[list[str]]) -> np.ndarray:
    """Per image: the image, then each of its heat maps over it, each tile with its caption; two images a row."""
    tiles, texts = [], []
    for index, image in enumerate(images):
        tiles.append(grids.fit(grids.rgb(grids.contrast(image)), TILE))
        tiles += [grids.fit(grids.heat_overlay(image, heat[index]), TILE) for heat in heats]
        texts += captions[index]
    return captioned_picture(tiles, texts, 2 * (1 + len(heats)) if len(images) > 1 else 1 + len(heats))


TILE, BAND = 112, 30  # pixels of a captioned tile, and of the white space above it for the caption


def captioned_picture(tiles: list[np.ndarray], captions: list[str], columns: int) -> np.ndarray:
    """(TILE, TILE, 3) tiles in a grid, each with its caption above it.

    One axes holding the tiled grid, captions as text: much faster to draw than an axes per tile.
    """
    if not len(tiles):
        return grids.grid([[np.full((TILE, TILE, 3), grids.BACKGROUND, np.uint8)]])
    tiles = [np.pad(tile, ((BAND, 0), (0, 0), (0, 0)), constant_values=255) for tile in tiles]
    rows = [tiles[i:i + columns] for i in range(0, len(tiles), columns)]
    rows[-1] += [np.full_like(tiles[0], 255)] * (columns - len(rows[-1]))
    picture = grids.grid(rows)
    figure = _figure(picture.shape[1] / 100, picture.shape[0] / 100)
    axes = figure.add_axes((0, 0, 1, 1))
    axes.imshow(picture, interpolation="nearest")
    axes.axis("off")
    for index, caption in enumerate(captions):
        row, col = divmod(index, columns)
        x = grids.PAD + col * (TILE + grids.PAD) + TILE / 2
        y = grids.PAD + row * (TILE + BAND + grids.PAD) + BAND / 2
        axes.text(x, y, caption.replace(" → ", " →\n") if len(caption) > 18 else caption,
                  ha="center", va="center", fontsize=7.5, linespacing=1.0)
    return _pixels(figure)
