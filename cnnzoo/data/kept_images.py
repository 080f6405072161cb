"""A folder's images kept decoded on disk, one row per file version, so later runs start at once.

`<TFDS data dir>/cnnzoo-folders/<folder>-<hash of its path>-<channels>c-<size>.npz` holds, for every
file version seen (`path\\0bytes\\0mtime`): its header size or why it was skipped, and the row of
its decoded, resized pixels, which are in the `.npy` file it names beside it (written with one
`tofile`, no zip and no checksum, and read straight into aligned memory that a tensor then shares:
writing 10,000 small images into the `.npz` itself took 0.1 s of CPU; held open from the moment
the index is read, so two runs at once never lose the file one of them found). A run decodes only the files
it does not find there, then writes both files under unique temporary names and renames them, the
pixels first (a killed run or two writers never leave half a file), in a thread of its own while
the run goes on. A missing or short pixel file means decoding again. On a read-only or full disk
the run goes on and says so.
"""

from __future__ import annotations

import hashlib
import os
import threading
import uuid
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from numpy.lib import format as npy

from cnnzoo.data.decoded import write_npz
from cnnzoo.data.preprocessing import ROUND_UP
from cnnzoo.files import atomic_file
from cnnzoo.memory import aligned_empty

FOLDER = "cnnzoo-folders"
ROUNDING = f"floor(x + {ROUND_UP})"  # how the kept pixels were made whole: a store rounded otherwise is decoded again


@dataclass
class Store:
    path: Path
    native: dict  # key -> (rows, cols), or the reason it was skipped before decoding
    reasons: dict[str, str]  # key -> why decoding it failed
    rows: dict[str, int]  # key -> its row in `images`
    pixels: Path | None = None  # the .npy file of the decoded pixels
    _images: np.ndarray | None = field(default=None, repr=False)
    # The pixel file, held open from `load`: another run writing the store meanwhile removes the file it
    # replaces, and an open file is still read whole (on POSIX; elsewhere the removal fails and is let be).
    _file: object | None = field(default=None, repr=False)

    def covers(self, files) -> bool:
        return all(f.key in self.rows or f.key in self.reasons or isinstance(self.native.get(f.key), str)
                   for f in files)

    def images(self) -> np.ndarray:
        if self._images is None:
            with self._file or open(self.pixels, "rb", buffering=0) as fp:
                fp.seek(0)
                self._images, self._file = _read_pixels(fp), None
        return self._images


def _pixels_header(fp) -> tuple[tuple[int, ...], np.dtype, int]:
    """(shape, dtype, bytes of data) of an open .npy file, read from its header; ValueError if the file is
    not as long as the header says (a pixel file cut short)."""
    version = npy.read_magic(fp)
    read_header = npy.read_array_header_1_0 if version == (1, 0) else npy.read_array_header_2_0
    shape, fortran_order, dtype = read_header(fp)
    size = int(np.prod(shape)) * dtype.itemsize
    if fortran_order or os.fstat(fp.fileno()).st_size != fp.tell() + size:
        raise ValueError(f"{fp.name} is not the pixel file its header describes")
    return shape, dtype, size


def _read_pixels(fp) -> np.ndarray:
    """The array of an open .npy file (unbuffered, at its start), read straight into 64-byte aligned
    memory (a tensor can then share it: `cnnzoo.data.pipeline.as_tensor`)."""
    shape, dtype, size = _pixels_header(fp)
    array = aligned_empty(shape, dtype)
    view, done = memoryview(array.reshape(-1).view(np.uint8)), 0
    while done < size:
        got = fp.readinto(view[done:])
        if not got:
            raise EOFError(f"{fp.name} ends after {done:,} of {size:,} bytes")
        done += got
    return array


def path_for(data_dir: str | None, origin: Path, channels: int, size) -> Path:
    root = Path(data_dir or os.environ.get("TFDS_DATA_DIR") or "~/tensorflow_datasets").expanduser()
    name = hashlib.sha1(str(origin.resolve()).encode()).hexdigest()[:16]
    shape = f"{size[0]}x{size[1]}" if size else "native"
    return root / FOLDER / f"{origin.resolve().name}-{name}-{channels}c-{shape}.npz"


def load(path: Path) -> Store | None:
    """The store at `path` without its pixels (None: none yet, or unreadable: decoded again), after any
    write of it this process started."""
    wait(path)
    try:
        with np.load(path) as arrays:
            if str(arrays["rounding"]) != ROUNDING:  # (KeyError: kept before the rounding was recorded)
                return None
            keys, native, reasons, rows = (arrays[k] for k in ("keys", "native", "reasons", "rows"))
            pixels = path.with_name(str(arrays["pixels"]))
        fp = open(pixels, "rb", buffering=0)
        try:
            _pixels_header(fp)  # there, and whole
        except ValueError:
            fp.close()
            raise
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile):  # absent or damaged: decoded again
        return None
    return Store(
        path,
        {str(k): (str(r) if n[0] < 0 else (int(n[0]), int(n[1]))) for k, n, r in zip(keys, native, reasons)},
        {str(k): str(r) for k, n, r, row in zip(keys, native, reasons, rows) if n[0] >= 0 and row < 0},
        {str(k): int(row) for k, row in zip(keys, rows) if row >= 0},
        pixels, _file=fp,
    )


def save(path: Path, native: dict, reasons: dict[str, str], rows: dict[str, int], images: np.ndarray) -> str | None:
    """Write the store; returns a note when it could not be written (the run goes on)."""
    keys = sorted(native)
    sizes = np.array([(-1, -1) if isinstance(native[k], str) else native[k] for k in keys], np.int64).reshape(-1, 2)
    why = np.array([native[k] if isinstance(native[k], str) else reasons.get(k, "") for k in keys], dtype=str)
    row = np.array([rows.get(k, -1) for k in keys], np.int64)
    pixels = path.with_name(f"{path.stem}.{uuid.uuid4().hex[:12]}.npy")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with atomic_file(pixels) as f:
            npy.write_array(f, np.ascontiguousarray(images), allow_pickle=False)
        write_npz(path, keys=np.array(keys, dtype=str), native=sizes, reasons=why, rows=row,
                  pixels=np.array(pixels.name), rounding=np.array(ROUNDING))
    except OSError as exc:
        pixels.unlink(missing_ok=True)
        return f"the decoded images could not be kept in {path} ({exc.strerror or exc}): the next run decodes them again"
    _remove_other_pixels(path, pixels)
    return None


def _remove_other_pixels(path: Path, ours: Path) -> None:
    """Remove the pixel files of earlier versions of the store (best effort; a writer of this moment keeps
    the one the store names now)."""
    try:
        with np.load(path) as arrays:
            named = str(arrays["pixels"])
        for other in path.parent.iterdir():
            if other.name.startswith(f"{path.stem}.") and other.suffix == ".npy" and other.name not in (named, ours.name):
                other.unlink(missing_ok=True)
    except (OSError, ValueError, KeyError, zipfile.BadZipFile):
        pass


_WRITERS: dict[Path, threading.Thread] = {}
_WRITERS_LOCK = threading.Lock()


def save_later(path: Path, native: dict, reasons: dict[str, str], rows: dict[str, int], images: np.ndarray,
               say) -> None:
    """`save` in a thread, while the run goes on (writing 10,000 small images took 0.1 s); `say(note)` when
    it could not be written. Python waits for the thread before it exits; `load` waits for it too."""
    def write():
        note = save(path, native, reasons, rows, images)
        if note:
            say(note)

    wait(path)  # one writer of a path at a time in this process
    thread = threading.Thread(target=write, name=f"cnnzoo-keep-{path.name}")  # not a daemon: it finishes
    with _WRITERS_LOCK:
        _WRITERS[path] = thread
    thread.start()


def wait(path: Path | None = None) -> None:
    """Until this process's writes of `path` (None: of every path) have ended."""
    with _WRITERS_LOCK:
        threads = [t for p, t in _WRITERS.items() if path is None or p == path]
    for thread in threads:
        thread.join()
    with _WRITERS_LOCK:
        for p in [p for p, t in _WRITERS.items() if not t.is_alive()]:
            del _WRITERS[p]
