"""Prepare a catalogue TFDS dataset from local NumPy arrays (`.npz` files) instead of its download.

TFDS builds e.g. `cifar10` only from its original archive, whose checksum it verifies,
so arrays from elsewhere (`keras.datasets`, a course's shared folder) cannot be fed
to it as a manual_dir. `builder_from_arrays` subclasses the catalogue builder and
replaces only where the examples come from: the `.npz` files in the manual_dir.
Name, version, features and file layout stay the catalogue's, so afterwards plain
`tfds.load("cifar10")` reads the prepared copy like any other, inside or outside cnnzoo.

A folder qualifies when its `.npz` files hold `x_<split>` and `y_<split>` arrays
(`x_train`, `y_train`, `x_test`, `y_test`, as `keras.datasets` names them). Several
files with the same keys (e.g. `cifar10_train_1of5.npz` ... `5of5`) are joined in
file-name order.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

SUPPORTED_FEATURES = {"image", "label", "id"}  # features we know how to fill from arrays


def npz_files(folder: Path) -> list[Path]:
    return sorted(folder.glob("*.npz")) if folder.is_dir() else []


def array_splits(folder: Path) -> dict[str, list[tuple[Path, str, str]]]:
    """split -> [(file, image key, label key)] for every `x_<split>`/`y_<split>` pair in the folder."""
    splits: dict[str, list[tuple[Path, str, str]]] = {}
    for path in npz_files(folder):
        with np.load(path) as arrays:  # lazy: reads the zip directory only
            for key in arrays.files:
                if key.startswith("x_") and f"y_{key[2:]}" in arrays.files:
                    splits.setdefault(key[2:], []).append((path, key, f"y_{key[2:]}"))
    return splits


def can_build_from_arrays(builder) -> bool:
    keys = set(builder.info.features.keys())
    return {"image", "label"} <= keys <= SUPPORTED_FEATURES


def builder_from_arrays(builder):
    """A builder writing `builder`'s dataset (same name, version, data_dir) from `.npz` arrays."""
    base = type(builder)

    class FromArrays(base, skip_registration=True):
        name = base.name
        MANUAL_DOWNLOAD_INSTRUCTIONS = "A folder of .npz files holding x_<split> and y_<split> arrays."

        def _split_generators(self, dl_manager):
            splits = array_splits(Path(dl_manager.manual_dir))
            label = self.info.features["label"]
            if getattr(self, "LABEL_NAMES", None):
                label.names = self.LABEL_NAMES
            return {split: self._from_files(split, files) for split, files in splits.items()}

        def _from_files(self, split, files):
            shape = self.info.features["image"].shape
            index = 0
            for path, x_key, y_key in files:
                with np.load(path) as arrays:
                    images, labels = arrays[x_key], arrays[y_key].reshape(-1)
                if images.ndim == len(shape) - 1:
                    images = images[..., None]  # (N, 28, 28) -> (N, 28, 28, 1)
                for image, label in zip(images, labels):
                    record = {"image": image, "label": int(label)}
                    if "id" in self.info.features:
                        record["id"] = f"{split}_{index:05d}"  # the catalogue builders' id format
                    yield index, record
                    index += 1

    FromArrays.__name__ = f"{base.__name__}FromArrays"
    FromArrays.LABEL_NAMES = CLASS_NAMES.get(base.name)
    return FromArrays(data_dir=builder.data_dir_root)


# The catalogue builders read class names from the archive; arrays carry none.
CLASS_NAMES = {
    "cifar10": ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"],
}
