"""Which image files a `data.path` names, with their classes and any split the files give.

Two layouts, as Keras' `image_dataset_from_directory` and most course material use them:
- a folder of class subfolders, `DIR/<class>/**/*.jpg`, or of split subfolders of those,
  `DIR/train/<class>/...`, `DIR/test/<class>/...` (and `validation/`, `val/` or `valid/`, in any
  case): split folders when they hold class folders, so a class may be called `train`;
- a CSV file with a header and columns `path,label` (paths relative to the CSV), optionally `split`,
  as spreadsheets save it (UTF-8, a BOM, empty rows, Windows' backslashes).
Class names are the folder names or labels, sorted. Hidden files (`.DS_Store`, `Thumbs.db`,
`._*`) are ignored silently; other files that cannot be images (by name, kind, or a broken link)
are listed as skipped, with why. Links to folders inside a class are not followed (as Keras'
`image_dataset_from_directory`: a link to `..` would loop). Only names and `stat` results are read
here: nothing is decoded.
"""

from __future__ import annotations

import csv
import functools
import io
import os
import stat as stat_mode
from dataclasses import dataclass, field
from pathlib import Path

from cnnzoo.data.image_files import HIDDEN_NAMES, IMAGE_SUFFIXES, is_hidden
from cnnzoo.errors import DataError, Location
from cnnzoo.files import CLAIM, is_run

SPLIT_FOLDERS = {"train": "train", "test": "test", "validation": "validation", "val": "validation",
                 "valid": "validation"}  # valid/: Roboflow's and Kaggle's exports
LOOSE = "not in a class folder"


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
        raise DataError(f"{origin} does not exist", location=where, path="data.path",
                        hint="Give a folder of class subfolders, or a CSV file with `path,label` columns.")
    subfolders = _subfolders(origin)
    split_dirs = _split_folders(origin, subfolders, where)
    tops = [(s, _subfolders(d)) for s, d in sorted(split_dirs.items())] if split_dirs else [(None, subfolders)]
    names = sorted({d.name for _, dirs in tops for d in dirs})
    if not names:
        raise DataError(f"{origin} holds no class subfolders", location=where, path="data.path",
                        hint="Lay images out as DIR/<class>/<image>.jpg (or DIR/train/<class>/..., DIR/test/<class>/...).")
    listing = FolderListing(origin, origin, names, [])
    for folder in [origin, *split_dirs.values()]:  # images beside the class folders belong to no class
        listing.skipped += [(_rel(listing, f), LOOSE) for f in sorted(folder.iterdir())
                            if f.is_file() and not is_hidden(Path(f.name)) and f.suffix.lower() in IMAGE_SUFFIXES]
    for split, dirs in tops:
        for folder in dirs:
            count = _add_folder(listing, folder, names.index(folder.name), split)
            if count == 0:
                raise DataError(f"class folder {folder} holds no image files", location=where, path="data.path",
                                hint="Add images (JPEG, PNG, BMP or GIF) to it, or remove the folder.")
    if len(names) == 1:
        inner = origin / names[0] if not split_dirs else None
        raise DataError(f"{origin} holds one class folder, {names[0]}: a classifier needs two classes or more",
                        location=where, path="data.path",
                        hint=f"If the classes are the folders inside it, give `data.path: {inner}`." if inner and
                        _subfolders(inner) else "Add a folder of images for each other class.")
    return listing


def _subfolders(folder: Path) -> list[Path]:
    return sorted(d for d in folder.iterdir() if d.is_dir() and not is_hidden(Path(d.name)) and not _holds_runs(d))


def _holds_runs(folder: Path) -> bool:
    """A run's folder, or a `runs/` folder of runs (a run started inside its image folder writes there): no class."""
    def a_run(d: Path) -> bool:  # (--output-dir: claimed before the folder is listed)
        return is_run(d) or (d / CLAIM).exists()

    if a_run(folder):
        return True
    if folder.name != "runs":  # cnnzoo's default place for runs: other names are not looked into
        return False
    runs = [d for d in folder.iterdir() if d.is_dir()]
    return bool(runs) and all(a_run(d) for d in runs)


def _split_folders(origin: Path, subfolders: list[Path], where: Location | None) -> dict[str, Path]:
    """{split: its folder} when the subfolders are split folders (named as a split in any case, `train`
    among them), else {}: class folders, where a class may be called `train` (its folder holds images)."""
    splits = [d for d in subfolders if d.name.lower() in SPLIT_FOLDERS]
    if not splits or all(_holds_images(d) for d in splits):
        return {}  # no split folder, or classes named as splits
    others = [d.name for d in subfolders if d not in splits]
    if others or not any(SPLIT_FOLDERS[d.name.lower()] == "train" for d in splits):
        raise DataError(f"{origin} holds split folders ({', '.join(d.name for d in splits)}) beside "
                        + (f"class folders ({', '.join(others)})" if others else "no train folder"),
                        location=where, path="data.path",
                        hint="Lay the images out as DIR/train/<class>/... and DIR/test/<class>/... (a validation/ "
                             "folder optional), or as DIR/<class>/... only.")
    found: dict[str, Path] = {}
    for d in splits:
        split = SPLIT_FOLDERS[d.name.lower()]
        if split in found:
            raise DataError(f"{origin} holds both {found[split].name} and {d.name}, two folders of the {split} split",
                            location=where, path="data.path", hint="Merge them into one, or move one out of the folder.")
        found[split] = d
    return found


def _holds_images(folder: Path) -> bool:
    """Whether image files lie directly in `folder` (a class folder's do; a split folder holds class folders)."""
    return any(f.suffix.lower() in IMAGE_SUFFIXES and f.is_file() for f in folder.iterdir())


def _rel(listing: FolderListing, path: Path) -> str:
    return shown(path.relative_to(listing.root).as_posix())


def shown(rel: str) -> str:
    """A path as text that can be printed and written: a name that is not UTF-8 with its bytes as \\xNN."""
    try:
        rel.encode("utf-8")
        return rel
    except UnicodeEncodeError:
        return os.fsencode(rel).decode("utf-8", "backslashreplace")


def _add_folder(listing: FolderListing, folder: Path, label: int, split: str | None) -> int:
    """Add the images below `folder` (recursively, in name order); returns how many. Plain strings and
    `os.scandir` (its entries carry their stat): pathlib objects per file cost more than the listing."""
    count, prefix = 0, folder.relative_to(listing.root).as_posix()
    stack = [(str(folder), prefix)]
    while stack:
        where, rel_dir = stack.pop()
        with os.scandir(where) as entries:
            entries = sorted(entries, key=lambda e: e.name)
        for entry in reversed([e for e in entries if e.is_dir(follow_symlinks=False) and not e.name.startswith(".")]):
            stack.append((entry.path, f"{rel_dir}/{entry.name}"))
        for entry in entries:
            if entry.is_dir(follow_symlinks=False) or entry.name.startswith(".") or entry.name.lower() in HIDDEN_NAMES:
                continue  # hidden files (and their folders) are ignored silently
            rel = f"{rel_dir}/{entry.name}"
            found = _file_of(entry, rel, label, split)
            if isinstance(found, str):
                listing.skipped.append((shown(rel), found))
                continue
            listing.files.append(found)
            count += 1
    listing.files[len(listing.files) - count:] = sorted(listing.files[len(listing.files) - count:], key=lambda f: f.rel)
    return count


def _file_of(entry: os.DirEntry, rel: str, label: int, split: str | None) -> ImageFile | str:
    """The listed image, or why the entry is skipped."""
    if entry.is_symlink() and entry.is_dir():
        return "a link to a folder (not followed)"
    suffix = os.path.splitext(entry.name)[1]
    if suffix.lower() not in IMAGE_SUFFIXES:  # (hidden names were left out by the caller)
        return f"not an image file name ({suffix or 'no suffix'})"
    stat, why = checked(entry.stat, entry.is_symlink(), rel)
    return why or ImageFile(rel, label, split, stat.st_size, stat.st_mtime_ns)


def checked(stat, is_link: bool, rel: str) -> tuple[os.stat_result | None, str | None]:
    """(`stat()`, None) for a file named as an image that can be read as one, else (None, why not): checked
    before it is opened (a pipe would block the reader)."""
    try:
        found = stat()
    except OSError as exc:
        return None, "a broken link" if is_link else f"cannot read ({exc.strerror or exc})"
    if not stat_mode.S_ISREG(found.st_mode):
        return None, "not a regular file"
    if shown(rel) != rel:
        return None, "its name is not UTF-8 (rename the file)"
    return found, None


def _from_csv(origin: Path, where: Location | None) -> FolderListing:
    if origin.suffix.lower() in IMAGE_SUFFIXES:
        raise DataError(f"{origin} is an image file, not a folder or a CSV", location=where, path="data.path",
                        hint=f"Give the folder of class subfolders it is in, e.g. `data.path: {origin.parent.parent}`.")
    root, raw = origin.parent, origin.read_bytes()
    try:
        text = raw.decode("utf-8-sig")  # utf-8-sig: spreadsheets' BOM
    except UnicodeDecodeError as bad:
        line = raw[:bad.start].count(b"\n") + 1
        raise DataError(f"{origin}:{line}: not UTF-8 text (byte 0x{raw[bad.start]:02x})",
                        location=where, path="data.path", hint="Save the CSV as UTF-8 (Excel: Save As, "
                        "`CSV UTF-8`; LibreOffice: character set Unicode (UTF-8)).") from None
    reader = csv.DictReader(io.StringIO(text, newline=""))
    columns = [c.strip() for c in reader.fieldnames or []]
    if not {"path", "label"} <= set(columns):
        raise DataError(f"{origin}: the header names columns {columns or 'none'}; `path` and `label` are needed",
                        location=where, path="data.path",
                        hint="First line e.g. `path,label` or `path,label,split`; paths relative to the CSV.")
    rows = [({k.strip(): (v or "").strip() for k, v in row.items() if k}, reader.line_num) for row in reader]
    rows = [(row, line) for row, line in rows if any(row.values())]  # a spreadsheet's empty rows (`,,`)
    names = sorted({row["label"] for row, _ in rows if row["label"]})
    listing, lines = FolderListing(origin, root, names, []), {}
    for row, line in rows:
        _add_row(listing, origin, row, line, where, lines)
    if not listing.files:
        raise DataError(f"{origin} lists no images", location=where, path="data.path")
    if len(names) == 1:
        raise DataError(f"{origin} labels every image `{names[0]}`: a classifier needs two classes or more",
                        location=where, path="data.path", hint="Add rows of images of the other classes.")
    return listing


def _add_row(listing: FolderListing, origin: Path, row: dict, line: int, where: Location | None,
             lines: dict[str, int]) -> None:
    """Add one row's image; `lines`: the line of every path listed so far (a path listed twice is refused)."""
    if not row["path"] or not row["label"]:
        raise DataError(f"{origin}:{line}: a row without a path or a label", location=where, path="data.path",
                        hint="Give both on every row, or delete the row.")
    given = row["path"]
    if "\\" in given and not (listing.root / given).exists():  # a path written on Windows
        given = given.replace("\\", "/")
    path = listing.root / given
    # relative to the CSV's folder however written (absolute, ./, ../): the splits' hash is the same anywhere
    rel = Path(os.path.relpath(os.path.abspath(path), os.path.abspath(listing.root))).as_posix()
    if not path.is_file():
        kind = "is a folder, not an image file" if path.is_dir() else "does not exist"
        raise DataError(f"{origin}:{line}: {row['path']} {kind} (looked for {path})", location=where,
                        path="data.path", hint="Paths in the CSV are relative to the CSV file's folder, one image a row.")
    if rel in lines:
        raise DataError(f"{origin}:{line}: {rel} is listed again (first on line {lines[rel]})", location=where,
                        path="data.path", hint="List every image once, with its one label.")
    lines[rel] = line
    split = row.get("split", "").lower() or None
    if split is not None and split not in SPLIT_FOLDERS:
        raise DataError(f"{origin}:{line}: split `{row['split']}` is not one of train, validation (or val, valid), test",
                        location=where, path="data.path")
    if is_hidden(Path(given)):
        return
    stat = path.stat()
    listing.files.append(ImageFile(rel, listing.class_names.index(row["label"]),
                                   SPLIT_FOLDERS.get(split) if split else None, stat.st_size, stat.st_mtime_ns))
