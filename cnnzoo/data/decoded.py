"""Decoded splits kept beside TFDS's files, so a run does not decode every image again.

TFDS stores MNIST and CIFAR-10 as PNG-encoded records and decodes them one example at a time:
building MNIST's pipelines and passing once over its training and test splits took a median
4.3-4.9 s, against 0.4-0.6 s from decoded pixels kept on disk and preprocessed 1,024 at a time
(benchmarks/first_pass.py, two runs). The first run that caches a split in memory (`data.cache`) keeps
the whole split's decoded pixels as `<TFDS data dir>/cnnzoo-decoded/<split>.npz`; later runs
load that file, and cut slices from it (`train.npz` serves `train[:90%]` and `train[90%:]`).
The file records the TFDS files it came from (name, size, modification time): when TFDS
prepares the dataset again, the file no longer matches and is rebuilt. It is written under
a temporary name and renamed, so a killed run or two runs at once never leave half a file.
"""

from __future__ import annotations

import json
import re
import zipfile
from dataclasses import dataclass
from math import prod
from pathlib import Path

import numpy as np

from cnnzoo.files import atomic_file

MAX_BYTES = 2**30  # the arrays become constants of the tf.data graph, which must stay under 2 GB
FOLDER = "cnnzoo-decoded"


@dataclass(frozen=True)
class Decoded:
    images: np.ndarray
    labels: np.ndarray
    note: str | None = None  # said at start when the decoded pixels could not be kept on disk


def decodable(builder, spec: str) -> bool:
    """Whether the split's images have one fixed shape, fit the size limit, and TFDS's files are local."""
    image_key = (builder.info.supervised_keys or (None,))[0]
    if not isinstance(image_key, str) or "://" in str(builder.data_dir):  # gs:// etc.: no local folder for it
        return False
    feature = builder.info.features[image_key]
    shape = getattr(feature, "shape", None)
    if not shape or None in shape:
        return False
    whole, _ = source_of(builder, spec)
    return np.dtype(feature.np_dtype).itemsize * prod(shape) * builder.info.splits[whole].num_examples <= MAX_BYTES


def source_of(builder, spec: str) -> tuple[str, slice | None]:
    """The split to keep decoded for `spec`, and the rows of it `spec` reads (None: all).

    A slice of a split stored in one file, such as `train[:90%]` of MNIST or CIFAR-10, is cut
    from the whole split's file, so every slicing shares it (TFDS's file instruction gives the
    rows). Anything read from several files is kept as TFDS reads it: TFDS interleaves files.
    """
    instructions = builder.info.splits[spec].file_instructions
    if len(instructions) == 1:
        (instruction,) = instructions
        for whole, info in builder.info.splits.items():
            if list(info.filenames) == [Path(instruction.filename).name]:
                take = instruction.take if instruction.take >= 0 else info.num_examples - instruction.skip
                return whole, slice(instruction.skip, instruction.skip + take)
    return spec, None


def path_of(builder, split: str) -> Path:
    return Path(builder.data_dir) / FOLDER / (re.sub(r"[^A-Za-z0-9_.-]+", "_", split) + ".npz")


def fingerprint(builder, split: str) -> str:
    """The TFDS files the split is read from, with their sizes and modification times."""
    files = [(Path(p).name, Path(p).stat()) for p in builder.info.splits[split].filepaths]
    return json.dumps({"split": split, "files": [[name, stat.st_size, stat.st_mtime_ns] for name, stat in files]})


class Kept:
    """The decoded splits of one run: each whole split loaded (or decoded) once, however many
    slices of it the run reads (e.g. `train[:90%]` for training, `train[90%:]` for validation)."""

    def __init__(self, builder):
        self.builder = builder
        self.notes: list[str] = []  # said at start: splits that could not be kept on disk
        self._wholes: dict[str, Decoded] = {}

    def read(self, spec: str) -> Decoded | None:
        """The images and labels `spec` reads, in TFDS's order; None when it cannot be kept (`decodable`)."""
        if not decodable(self.builder, spec):
            return None
        whole, rows = source_of(self.builder, spec)
        if whole not in self._wholes:
            self._wholes[whole] = _kept(self.builder, whole)
            self.notes.extend(filter(None, [self._wholes[whole].note]))
        kept = self._wholes[whole]
        return kept if rows is None else Decoded(kept.images[rows], kept.labels[rows])


def _kept(builder, name: str) -> Decoded:
    """A split's images and labels in TFDS's order (shuffle_files off): from the kept file, else decoded and kept."""
    path, mark = path_of(builder, name), fingerprint(builder, name)
    kept = _read(path, mark)
    if kept is not None:
        return kept
    import tensorflow_datasets as tfds

    images, labels = tfds.as_numpy(builder.as_dataset(split=name, batch_size=-1, as_supervised=True,
                                                      shuffle_files=False))
    try:
        _write(path, images, labels, mark)
    except OSError as exc:  # a read-only or full disk: this run goes on from memory
        return Decoded(images, labels, note=f"could not keep the decoded `{name}` split at {path} "
                       f"({type(exc).__name__}: {exc.strerror or exc}); later runs decode it again")
    return Decoded(images, labels)


def _read(path: Path, mark: str) -> Decoded | None:
    try:
        with np.load(path, allow_pickle=False) as stored:
            if str(stored["fingerprint"]) != mark:
                return None
            return Decoded(stored["images"], stored["labels"])
    except (OSError, KeyError, ValueError, EOFError, zipfile.BadZipFile):  # absent, damaged, or unreadable
        return None


def _write(path: Path, images: np.ndarray, labels: np.ndarray, mark: str) -> None:
    write_npz(path, images=images, labels=labels, fingerprint=np.array(mark))


def write_npz(path: Path, **arrays: np.ndarray) -> None:
    """`np.savez` under a temporary name unique to this writer, renamed into place: a killed run or two
    writers (the workers of one machine) never leave half a file. Raises OSError (e.g. a full disk)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_file(path) as f:
        np.savez(f, **arrays)
