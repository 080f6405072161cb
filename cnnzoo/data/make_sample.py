"""Rebuild the bundled `mnist_sample` from the original MNIST IDX files.

    python -m cnnzoo.data.make_sample PATH/TO/mnist

Draws a class-balanced subset with a fixed seed (the same files give the same
sample) and writes `cnnzoo/data/sample/mnist_sample.npz`.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from cnnzoo.data.idx import read_idx

TRAIN_PER_CLASS = 600
TEST_PER_CLASS = 100
SEED = 20261125


def balanced_subset(labels: np.ndarray, per_class: int, rng: np.random.Generator) -> np.ndarray:
    picks = [rng.choice(np.flatnonzero(labels == c), per_class, replace=False) for c in range(10)]
    return np.sort(np.concatenate(picks))  # keep the original order of the files


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("mnist_dir", type=Path, help="folder with the four MNIST *-ubyte.gz files")
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "sample" / "mnist_sample.npz")
    args = parser.parse_args()
    rng = np.random.default_rng(SEED)
    arrays = {}
    for split, prefix, per_class in (("train", "train", TRAIN_PER_CLASS), ("test", "t10k", TEST_PER_CLASS)):
        images = read_idx(args.mnist_dir / f"{prefix}-images-idx3-ubyte.gz")
        labels = read_idx(args.mnist_dir / f"{prefix}-labels-idx1-ubyte.gz")
        keep = balanced_subset(labels, per_class, rng)
        arrays[f"x_{split}"], arrays[f"y_{split}"] = images[keep], labels[keep]
        arrays[f"index_{split}"] = keep.astype(np.int32)  # position in the original file
    np.savez_compressed(args.out, **arrays)
    print(f"wrote {args.out}: {len(arrays['x_train'])} train, {len(arrays['x_test'])} test images")


if __name__ == "__main__":
    main()
