"""Prepare a catalogue TFDS dataset from local NumPy arrays (`.npz` files) instead of its download.

TFDS builds e.g. `cifar10` only from its original archive, whose checksum it verifies,
so arrays from elsewhere (`keras.datasets`, a course's shared folder) cannot be fed
to it as a manual_dir. `builder_from_arrays` subclasses the catalogue builder and
replaces only where the examples come from: the `.npz` files in the manual_dir.

The copy is cnnzoo's own: it lives in `<TFDS data dir>/cnnzoo-arrays/`, never in the
catalogue's place, so another program's `tfds.load("cifar10")` never reads unverified
arrays as if they were the published dataset. Its `metadata.json` records the SHA-256 of
every source file; arrays that differ from the recorded ones are prepared again.

A folder qualifies when its `.npz` files hold `x_<split>` and `y_<split>` arrays
(`x_train`, `y_train`, `x_test`, `y_test`, as `keras.datasets` names them). Several
files with the same keys (e.g. `cifar10_train_1of5.npz` ... `5of5`) are joined in
file-name order.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from cnnzoo.data.provenance import sha256

SUPPORTED_FEATURES = {"image", "label", "id"}  # features we know how to fill from arrays
ARRAYS_DIR = "cnnzoo-arrays"  # beside the catalogue's datasets in the TFDS data dir


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


def checksums(folder: Path) -> dict[str, str]:
    """{file name: SHA-256} of the folder's `.npz` files (CIFAR-10's 140 MB: about half a second)."""
    return {path.name: sha256(path) for path in npz_files(folder)}


def can_build_from_arrays(builder) -> bool:
    keys = set(builder.info.features.keys())
    return {"image", "label"} <= keys <= SUPPORTED_FEATURES


def arrays_data_dir(builder) -> Path:
    """Where cnnzoo keeps array-built copies: beside, never inside, the catalogue's datasets."""
    return Path(builder.data_dir_root) / ARRAYS_DIR


def recorded_checksums(builder) -> dict[str, str] | None:
    """The source files' SHA-256 recorded by a prepared array-built copy (None: not one, or not prepared)."""
    if not builder.is_prepared():
        return None
    metadata = builder.info.metadata or {}
    return dict(metadata.get("source_sha256", {})) or None


def builder_from_arrays(builder):
    """A builder writing `builder`'s dataset (same name, version and features) from `.npz` arrays,
    into cnnzoo's own data dir, recording the arrays' checksums in its metadata."""
    import tensorflow_datasets as tfds

    base = type(builder)

    class FromArrays(base, skip_registration=True):
        name = base.name
        MANUAL_DOWNLOAD_INSTRUCTIONS = "A folder of .npz files holding x_<split> and y_<split> arrays."

        def _info(self):
            info = super()._info()
            info._metadata = tfds.core.MetadataDict()  # the catalogue builder declares none; saved as metadata.json
            return info

        def _split_generators(self, dl_manager):
            folder = Path(dl_manager.manual_dir)
            self.info.metadata["source_sha256"] = checksums(folder)
            splits = array_splits(folder)
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
    return FromArrays(data_dir=str(arrays_data_dir(builder)))


# The catalogue builders read class names from the archive; arrays carry none.
CLASS_NAMES = {
    "cifar10": ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"],
}
