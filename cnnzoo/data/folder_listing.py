"""Which image files a `data.path` names, with their classes and any split the files give.

Two layouts, as Keras' `image_dataset_from_directory` and most course material use them:
- a folder of class subfolders, `DIR/<class>/**/*.jpg`, or of split subfolders of those,
  `DIR/train/<class>/...`, `DIR/test/<class>/...` (and `validation/` or `val/`);
- a CSV file with a header and columns `path,label` (paths relative to the CSV), optionally `split`.
Class names are the folder names or labels, sorted. Hidden files (`.DS_Store`, `Thumbs.db`,
`._*`) are ignored silently; other files that are not images by name are listed as skipped.
Only names and `stat` results are read here: nothing is decoded.
"""

from __future__ import annotations

import csv
import functools
import os
from dataclasses import dataclass, field
from pathlib import Path

from cnnzoo.data.image_files import HIDDEN_NAMES, IMAGE_SUFFIXES, is_hidden
from cnnzoo.errors import DataError, Location

SPLIT_FOLDERS = {"train": "train", "test": "test", "validation": "validation", "val": "validation"}


@dataclass(frozen=True)
class ImageFile:
    rel: str  # path relative to the folder (or the CSV's folder), with `/`
    label: int
    split: str | None  # train / validation / test when the files give it
    bytes: int
    mtime_ns: int

    @functools.cached_property  # read several times per file in every run
    def key(self) -> str:
        """Identifies this version of the file: a changed file is decoded again."""
        return f"{self.rel}\0{self.bytes}\0{self.mtime_ns}"


@dataclass
class FolderListing:
    origin: Path  # the folder or CSV the config names
    root: Path  # paths are relative to it
    class_names: list[str]
    files: list[ImageFile]
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (rel, reason) for files not images by name

    def path_of(self, file: ImageFile) -> str:
        """The file's path (a string: a pathlib object per file cost more than reading its header)."""
        return os.path.join(self.root, file.rel)

    @property
    def given_splits(self) -> set[str]:
        return {f.split for f in self.files if f.split}


def list_images(origin: Path, where: Location | None) -> FolderListing:
    """The listing of a folder or CSV.

    Raises:
        DataError: no such path, an empty folder, a class folder with no image, a CSV without its
            columns or naming a missing file.
    """
    if origin.is_file():
        return _from_csv(origin, where)
    if not origin.is_dir():
        raise DataError(f"data.path {origin} does not exist", location=where, path="data.path",
                        hint="Give a folder of class subfolders, or a CSV file with `path,label` columns.")
    split_dirs = {SPLIT_FOLDERS[d.name]: d for d in _subfolders(origin) if d.name in SPLIT_FOLDERS}
    if "train" in split_dirs:
        tops = [(split, _subfolders(folder)) for split, folder in sorted(split_dirs.items())]
    else:
        tops = [(None, _subfolders(origin))]
    names = sorted({d.name for _, dirs in tops for d in dirs})
    if not names:
        raise DataError(f"data.path {origin} holds no class subfolders", location=where, path="data.path",
                        hint="Lay images out as DIR/<class>/<image>.jpg (or DIR/train/<class>/..., DIR/test/<class>/...).")
    listing = FolderListing(origin, origin, names, [])
    for split, dirs in tops:
        for folder in dirs:
            count = _add_folder(listing, folder, names.index(folder.name), split)
            if count == 0:
                raise DataError(f"class folder {folder} holds no image files", location=where, path="data.path",
                                hint="Add images (JPEG, PNG, BMP or GIF) to it, or remove the folder.")
    return listing


def _subfolders(folder: Path) -> list[Path]:
    return sorted(d for d in folder.iterdir() if d.is_dir() and not is_hidden(Path(d.name)))


def _add_folder(listing: FolderListing, folder: Path, label: int, split: str | None) -> int:
    """Add the images below `folder` (recursively, in name order); returns how many. Plain strings and
    `os.scandir` (its entries carry their stat): pathlib objects per file cost more than the listing."""
    count, prefix = 0, folder.relative_to(listing.root).as_posix()
    stack = [(str(folder), prefix)]
    while stack:
        where, rel_dir = stack.pop()
        with os.scandir(where) as entries:
            entries = sorted(entries, key=lambda e: e.name)
        for entry in reversed([e for e in entries if e.is_dir() and not e.name.startswith(".")]):
            stack.append((entry.path, f"{rel_dir}/{entry.name}"))
        for entry in entries:
            if entry.is_dir() or entry.name.startswith(".") or entry.name.lower() in HIDDEN_NAMES:
                continue  # hidden files (and their folders) are ignored silently
            rel, suffix = f"{rel_dir}/{entry.name}", os.path.splitext(entry.name)[1]
            if suffix.lower() not in IMAGE_SUFFIXES:  # (hidden names were left out above)
                listing.skipped.append((rel, f"not an image file name ({suffix or 'no suffix'})"))
                continue
            stat = entry.stat()
            listing.files.append(ImageFile(rel, label, split, stat.st_size, stat.st_mtime_ns))
            count += 1
    listing.files[len(listing.files) - count:] = sorted(listing.files[len(listing.files) - count:], key=lambda f: f.rel)
    return count


def _from_csv(origin: Path, where: Location | None) -> FolderListing:
    root = origin.parent
    with origin.open(newline="", encoding="utf-8-sig") as handle:  # utf-8-sig: spreadsheets' BOM
        reader = csv.DictReader(handle)
        columns = [c.strip() for c in reader.fieldnames or []]
        if not {"path", "label"} <= set(columns):
            raise DataError(f"{origin}: the header names columns {columns or 'none'}; `path` and `label` are needed",
                            location=where, path="data.path",
                            hint="First line e.g. `path,label` or `path,label,split`; paths relative to the CSV.")
        rows = [({k.strip(): (v or "").strip() for k, v in row.items() if k}, reader.line_num) for row in reader]
    names = sorted({row["label"] for row, _ in rows if row["label"]})
    listing = FolderListing(origin, root, names, [])
    for row, line in rows:
        _add_row(listing, origin, row, line, where)
    if not listing.files:
        raise DataError(f"{origin} lists no images", location=where, path="data.path")
    return listing


def _add_row(listing: FolderListing, origin: Path, row: dict, line: int, where: Location | None) -> None:
    path = listing.root / row["path"]
    if not row["path"] or not row["label"]:
        raise DataError(f"{origin}:{line}: a row without a path or a label", location=where, path="data.path")
    if not path.is_file():
        raise DataError(f"{origin}:{line}: {row['path']} does not exist (looked for {path})", location=where,
                        path="data.path", hint="Paths in the CSV are relative to the CSV file's folder.")
    split = row.get("split") or None
    if split is not None and split not in SPLIT_FOLDERS:
        raise DataError(f"{origin}:{line}: split `{split}` is not one of train, validation (or val), test",
                        location=where, path="data.path")
    if is_hidden(Path(row["path"])):
        return
    stat = path.stat()
    listing.files.append(ImageFile(Path(row["path"]).as_posix(), listing.class_names.index(row["label"]),
                                   SPLIT_FOLDERS.get(split) if split else None, stat.st_size, stat.st_mtime_ns))
