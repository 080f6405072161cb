"""Your own images (`data.path`) as a data source beside TFDS: sizes, splits, decoded once.

- Sizes come from the files' headers (nothing decoded), so `validate` can refuse mixed sizes
  without `preprocessing.resize` and skip decompression bombs before any pixel is read.
- Splits the files do not give are chosen per file from a hash of its path: adding images later
  never moves an old one between train, validation and test, and slices (`train[:50%]`) are
  stable random subsets, since each split is ordered by the same hash.
- The decoded, resized pixels are kept in `<TFDS data dir>/cnnzoo-folders/<folder hash>.npz`, one
  row per file version (path, size, mtime): a later run decodes only files added or changed.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from cnnzoo.config.schema import Config
from cnnzoo.data import kept_images
from cnnzoo.data.folder_listing import FolderListing, list_images
from cnnzoo.data.image_files import BadImage, read_head
from cnnzoo.errors import DataError

DEFAULT_TEST_FRACTION = 0.1  # for files that give no test split
CONTENTS_BYTES = 128 << 20  # small files' bytes kept from the header pass for the decoder
IMBALANCE = 10  # warn when the largest class has more than this many times the smallest's images


@dataclass
class FolderDataset:
    """A listing with every file's state: its header size, or why it cannot be used."""

    listing: FolderListing
    channels: int
    size: tuple[int, int]  # (rows, cols) every image becomes
    native: dict  # key -> (rows, cols) from the header, or why the file is skipped
    reasons: dict[str, str]  # key -> why unusable; absent: usable as far as known
    kept: Path  # where the decoded pixels are kept
    store: kept_images.Store | None  # what earlier runs decoded (None: nothing yet)
    contents: dict[str, bytes] = field(default_factory=dict, repr=False)  # key -> a small file's bytes, read with
    # its header and handed to the decoder (up to CONTENTS_BYTES in all)

    @property
    def image_shape(self) -> tuple[int, int, int]:
        return (*self.size, self.channels)

    @property
    def class_names(self) -> list[str]:
        return self.listing.class_names

    @property
    def usable(self) -> list:
        return [f for f in self.listing.files if f.key not in self.reasons]

    @property
    def description(self) -> str:
        state = "decoded earlier, kept" if self.store and self.store.covers(self.listing.files) else \
            "to be decoded once and kept"
        return f"{len(self.listing.files):,} image files in {self.listing.origin}, {state} in {self.kept}"


def origin_of(config: Config) -> Path:
    """`data.path`, from the working directory, else from the folder of the config file that set it."""
    given = Path(config.data.path).expanduser()
    if given.exists() or given.is_absolute():
        return given
    where = config.where("data", "path")
    if where is not None and where.file != "<command line>":
        beside = Path(where.file).parent / given
        if beside.exists():
            return beside
    return given


def open_folder(config: Config) -> FolderDataset:
    """The folder or CSV of `data.path`, with sizes known (from headers or the kept store).

    Raises:
        DataError: a listing problem, or images of several sizes and no `preprocessing.resize`.
    """
    where = config.where("data", "path")
    listing = list_images(origin_of(config), where)
    channels = 3 if config.data.color_mode == "rgb" else 1
    resize = config.data.preprocessing.resize
    kept = kept_images.path_for(config.data.data_dir, listing.origin, channels, resize)
    store = kept_images.load(kept)
    known = store.native if store else {}
    todo = [f for f in listing.files if f.key not in known]
    # One thread: reading a small file's header holds Python's lock (4 threads took 4x longer with Pillow's)
    found, contents, held = {}, {}, 0
    for f in todo:
        found[f.key], data = _size_or_reason(listing.path_of(f))
        if data is not None and held + len(data) <= CONTENTS_BYTES:
            contents[f.key], held = data, held + len(data)
    sizes = {**known, **found}
    reasons = {k: v for k, v in sizes.items() if isinstance(v, str)}
    if store:
        reasons.update(store.reasons)
    check_usable(listing, reasons, where)
    size = tuple(resize) if resize else _one_size(listing, sizes, reasons, config)
    return FolderDataset(listing, channels, size, sizes, reasons, kept, store, contents)


def check_usable(listing: FolderListing, reasons: dict[str, str], where) -> None:
    """Every class keeps a usable image, the skipped files (`reasons`: by file key) left out: its headers
    read, and again once decoded (a truncated file is found only then)."""
    by_class = Counter(f.label for f in listing.files if f.key not in reasons)
    for label, name in enumerate(listing.class_names):
        if not by_class[label]:
            bad = [f"{f.rel} ({reasons[f.key]})" for f in listing.files if f.label == label]
            raise DataError(f"class `{name}` has no usable image in {listing.origin}: " + "; ".join(bad[:3])
                            + (f"; and {len(bad) - 3:,} more" if len(bad) > 3 else ""), location=where,
                            path="data.path", hint="Add images that open to it, or remove the class.")


def _size_or_reason(path: str) -> tuple:
    """((rows, cols) or why the file is skipped, its bytes when small)."""
    try:
        return read_head(path)
    except BadImage as bad:
        return bad.reason, None
    except OSError as exc:
        return f"cannot read ({exc.strerror or exc})", None


def _one_size(listing: FolderListing, sizes: dict, reasons: dict, config: Config) -> tuple[int, int]:
    usable = [tuple(sizes[f.key]) for f in listing.files if f.key not in reasons]
    counts = Counter(usable)
    if len(counts) == 1:
        return next(iter(counts))
    common = counts.most_common()
    shown = ", ".join(f"{r}x{c} ({n:,} images)" for (r, c), n in common[:4])
    rows, cols = (sorted(axis)[len(usable) // 2] for axis in zip(*usable))  # the medians
    raise DataError(
        f"the images in {listing.origin} have {len(counts)} different sizes (rows x cols): {shown}"
        f"{', ...' if len(common) > 4 else ''}", location=config.where("data", "path"), path="data.preprocessing.resize",
        hint=f"Give one size for all, e.g. `data.preprocessing.resize: [{common[0][0][0]}, {common[0][0][1]}]` "
             "(the most common)" + ("" if (rows, cols) == common[0][0] else f" or [{rows}, {cols}] (the median)") + ".",
    )


# -- splits ----------------------------------------------------------------------------------------

def unit_hash(text: str) -> float:
    """A number in [0, 1) fixed by `text` alone (the same on every machine and Python)."""
    return int(hashlib.sha1(text.encode()).hexdigest()[:13], 16) / 16**13


def fractions(config: Config, given: set[str]) -> tuple[float | None, float | None]:
    """(test, validation) fractions held out by hash: None where the files or the config name a split."""
    data = config.data
    test = None
    if "test" not in given:
        test = data.test_split if isinstance(data.test_split, float) else (
            DEFAULT_TEST_FRACTION if data.test_split == "test" else None)
    validation = data.validation_split if isinstance(data.validation_split, float) else None
    if "validation" in given and validation is not None:
        if config.is_written("data", "validation_split"):
            raise DataError(f"{config.data.path} has its own validation split, and data.validation_split asks to "
                            f"hold out {validation:.0%} of the training images too",
                            location=config.where("data", "validation_split"), path="data.validation_split",
                            hint="Set `validation_split: validation` to use the folder's, or remove that folder.")
        validation = None
    return test, validation


def split_of(file, test: float | None, validation: float | None) -> str:
    """Where one file goes: its own split, else by two independent hashes of its path."""
    if file.split and file.split != "train":
        return file.split
    if test is not None and unit_hash("test:" + file.rel) < test:
        return "test"
    if validation is not None and unit_hash("validation:" + file.rel) < validation:
        return "validation"
    return "train"


def assign(dataset: FolderDataset, config: Config) -> dict[str, list]:
    """split name -> its usable files, each split in hash order (a stable shuffle)."""
    test, validation = fractions(config, dataset.listing.given_splits)
    splits: dict[str, list] = {}
    for file in dataset.usable:
        splits.setdefault(split_of(file, test, validation), []).append(file)
    return {name: sorted(files, key=lambda f: unit_hash("order:" + f.rel)) for name, files in splits.items()}


def split_names(config: Config) -> dict[str, str]:
    """What the config's split keys mean for a folder: the named splits (fractions were held out by hash)."""
    data = config.data
    validation = data.validation_split
    return {"train": data.train_split,
            "validation": "validation" if isinstance(validation, float) else validation,
            "test": "test" if isinstance(data.test_split, float) else data.test_split}


def class_table(files_by_split: dict[str, list], class_names: list[str]) -> list[str]:
    """Lines for `validate`: images per split and per class."""
    order = [s for s in ("train", "validation", "test") if s in files_by_split]
    counts = {s: Counter(f.label for f in files_by_split[s]) for s in order}
    width = max(len("class"), *(len(n) for n in class_names))
    lines = [f"{'class':<{width}}  " + "  ".join(f"{s:>10}" for s in order)]
    for label, name in enumerate(class_names):
        lines.append(f"{name:<{width}}  " + "  ".join(f"{counts[s][label]:>10,}" for s in order))
    lines.append(f"{'all':<{width}}  " + "  ".join(f"{len(files_by_split[s]):>10,}" for s in order))
    return lines


def imbalance(train_files: list, class_names: list[str], balanced: bool = False) -> str | None:
    """A sentence when the largest class has over IMBALANCE times the images of the smallest: with the
    setting that answers it, or (`balanced`: that setting is on) saying the loss weighs them alike."""
    counts = Counter(f.label for f in train_files)
    most, least = max(counts.values()), min(counts.get(i, 0) for i in range(len(class_names)))
    if least and most > IMBALANCE * least:
        big = class_names[max(counts, key=counts.get)]
        small = class_names[min(range(len(class_names)), key=lambda i: counts.get(i, 0))]
        remedy = "`train.class_weight: balanced` " + ("weighs the classes alike in the loss" if balanced else
                                                      "would weigh the classes alike in the loss")
        return (f"the training images are imbalanced: `{big}` has {most:,}, `{small}` {least:,} "
                f"({most / least:.0f}x); {remedy}")
    return None


def split_rows(files: list, rows: dict[str, int]) -> tuple[np.ndarray, np.ndarray]:
    """(the rows of `files` in the decoded pixels, their labels), in their order."""
    index = np.fromiter((rows[f.key] for f in files), dtype=np.int64, count=len(files))
    labels = np.fromiter((f.label for f in files), dtype=np.int64, count=len(files))
    return index, labels
