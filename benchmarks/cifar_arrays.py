"""The shared CIFAR-10 arrays (`cifar10_train_{k}of5.npz`, `cifar10_test.npz`), read for the benchmarks
that write image folders from them (`own_images.py`, `transfer.py`)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

CLASSES = 10


def split(folder: Path, name: str, per_class: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """`name`'s images and labels (train: joined over its files, in name order, stopping once every class
    has `per_class` images; test: one file)."""
    files = sorted(folder.glob("cifar10_train_*of*.npz")) if name == "train" else [folder / "cifar10_test.npz"]
    if not files or not all(f.is_file() for f in files):
        raise SystemExit(f"no CIFAR-10 {name} arrays ({', '.join(map(str, files)) or 'cifar10_train_*of*.npz'}): "
                         "give --cifar10 DIR")
    xs, ys = [], []
    for file in files:
        with np.load(file) as arrays:
            xs.append(arrays[f"x_{name}"])
            ys.append(arrays[f"y_{name}"].reshape(-1))
        if per_class is not None and np.bincount(np.concatenate(ys), minlength=CLASSES).min() >= per_class:
            break
    return np.concatenate(xs), np.concatenate(ys)
