"""Decoding users' own image files (JPEG, PNG, BMP, GIF of any size and colour mode) robustly.

Folders of photos hold files a run must survive: empty or half-copied files, text named `.jpg`,
macOS/Windows litter, decompression bombs (a few hundred bytes declaring billions of pixels). Each
becomes a `BadImage` with a short reason, so a run skips it and says why; a bomb is refused from its
header, before any pixel is allocated. Colours and sizes are converted by `cnnzoo.data.preprocessing`,
as the exported model converts them.
"""

from __future__ import annotations

import contextlib
import functools
import itertools
import os
import threading
import warnings
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor, wait
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".gif"})  # compared lower-case
MAX_PIXELS = 89_478_485  # Pillow's own decompression-bomb bound (Image.MAX_IMAGE_PIXELS)

_HIDDEN_NAMES = frozenset({"thumbs.db", "desktop.ini"})  # Windows litter; Windows ignores case
_GRAY_MODES = frozenset({"L", "1", "LA", "La", "F"})  # kept as one channel ('I', 'I;16*': see _to_array)
# catch_warnings swaps process-wide state: two threads inside it at once could leave a filter behind
_WARNINGS_LOCK = threading.Lock()
_BATCH_IMAGES, _BATCH_BYTES = 256, 16 * 2**20  # per conversion call: bounds each thread's waiting pixels


class BadImage(Exception):
    """A file that cannot be used; `reason` says why in a few words, e.g. 'empty file', 'not an image',
    'truncated or corrupt: ...', 'declares 30000x30000 pixels (over 89,478,485)'."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


def is_hidden(path: Path) -> bool:
    """Whether `path` is a file users never meant as data, ignored silently.

    Names starting with '.' (.DS_Store, '._photo.jpg' AppleDouble files), Thumbs.db, desktop.ini,
    and anything inside a folder whose name starts with '.'. Every part of `path` is checked, so pass
    it relative to the data folder (a data folder under ~/.keras would otherwise be all hidden).
    """
    path = Path(path)
    return path.name.lower() in _HIDDEN_NAMES or any(p.startswith(".") and p not in (".", "..") for p in path.parts)


def is_image_name(path: Path) -> bool:
    """Whether `path` names an image file to use: a known suffix (any case) and not hidden."""
    path = Path(path)
    return path.suffix.lower() in IMAGE_SUFFIXES and not is_hidden(path)


def read_size(path: Path) -> tuple[int, int]:
    """(rows, cols) from the file's header only, never decoding pixels.

    Raises:
        BadImage: the file is empty, unreadable, not an image, or declares more than MAX_PIXELS.
    """
    with _opened(path) as image:
        return image.height, image.width


def decode(path: Path, channels: int, size: tuple[int, int] | None = None) -> np.ndarray:
    """The image (its first frame) as uint8 (rows, cols, channels): `channels` 1 or 3 (converted as
    TensorFlow converts), resized to `size` (rows, cols; bilinear, as tf.image.resize) unless None.

    Raises:
        BadImage: see `read_size`; also a file whose pixels fail to decode (truncated, corrupt).
    """
    size = _checked(channels, size)
    pixels = _read_pixels(path)
    if pixels.shape != (*(size or pixels.shape[:2]), channels):
        return _convert([pixels], channels, size)[0]
    return pixels if pixels.flags.writeable else pixels.copy()


def decode_many(paths: list[Path], channels: int, size: tuple[int, int] | None,
                workers: int | None = None, progress=None) -> tuple[np.ndarray, list[tuple[int, str]]]:
    """`decode` every file, in `workers` threads (default os.cpu_count(): Pillow and TF release the GIL).

    `progress`, if given, is called with the number of files done so far, every ~0.5 s and at the end.
    Without a `size`, all images must be of one size: else ValueError, naming two of the sizes.

    Returns:
        (images, skipped): uint8 (n_ok, rows, cols, channels) in the order of `paths` without the bad
        files, and (index into paths, reason) for each bad file, by index.
    """
    size, n = _checked(channels, size), len(paths)
    skipped: list[tuple[int, str]] = []  # list.append is atomic
    shape, first = (None if size is None else (*size, channels)), 0
    while shape is None and first < n:  # without a size, the first image's header gives every image's shape
        try:
            shape = (*read_size(paths[first]), channels)
        except BadImage as bad:
            skipped.append((first, bad.reason))
            first += 1
    if shape is None:
        return np.empty((0, 0, 0, channels), np.uint8), skipped
    # Rows filled in place, as threads finish them: no list of arrays and stacked copy of it
    out, good = np.empty((n, *shape), np.uint8), np.zeros(n, bool)
    workers = max(1, min(workers or os.cpu_count() or 1, n - first))
    done, mismatch = [0] * workers, []  # a counter per thread: no lock to count
    next_index, stop = itertools.count(first).__next__, threading.Event()  # __next__: atomic under the GIL

    def store(indexes: list[int], images: list[np.ndarray]) -> None:
        out[indexes] = _convert(images, channels, size)
        good[indexes] = True

    def work(worker: int) -> None:
        batches = defaultdict(lambda: _Batch(store))  # by the files' channel count
        try:
            while not stop.is_set() and (i := next_index()) < n:
                try:
                    pixels = _read_pixels(paths[i])
                except BadImage as bad:
                    skipped.append((i, bad.reason))
                else:
                    if pixels.shape[:2] != shape[:2] and size is None:
                        mismatch.append((i, (*pixels.shape[:2], channels)))
                        return stop.set()
                    if pixels.shape == shape:
                        out[i], good[i] = pixels, True
                    else:
                        batches[pixels.shape[2]].add(i, pixels)
                done[worker] += 1
            for batch in batches.values():
                if not stop.is_set():
                    batch.flush()
        except BaseException:
            stop.set()
            raise

    with ThreadPoolExecutor(workers, thread_name_prefix="decode") as pool:
        futures = [pool.submit(work, w) for w in range(workers)]
        try:
            while wait(futures, timeout=0.5).not_done:
                if progress is not None:
                    progress(first + sum(done))
        except BaseException:  # Ctrl-C: let the threads stop at their next file
            stop.set()
            raise
        for future in futures:
            future.result()  # a bug in a thread is raised here
    if mismatch:
        raise ValueError(f"images of different sizes: {paths[first]} is {shape}, {paths[mismatch[0][0]]} is "
                         f"{mismatch[0][1]}; give a size to resize them to")
    if progress is not None:
        progress(first + sum(done))
    return _compact(out, good), sorted(skipped)


def _compact(out: np.ndarray, good: np.ndarray) -> np.ndarray:
    """The good rows of `out`, moved down in place (out[good] would copy them all to a second array)."""
    keep = np.flatnonzero(good)
    for j in range(len(keep) if good.all() else int(np.argmin(good)), len(keep)):  # from the first bad row on
        out[j] = out[keep[j]]
    return out[:len(keep)]


def _checked(channels: int, size) -> tuple[int, int] | None:
    """`size` as a tuple (it keys _converter's cache), after checking `channels`."""
    if channels not in (1, 3):
        raise ValueError(f"channels must be 1 or 3, not {channels!r}")
    return None if size is None else (int(size[0]), int(size[1]))


@contextlib.contextmanager
def _opened(path: Path):
    """Pillow's lazy open (the header only), refusing unreadable and empty files, non-images and bombs."""
    try:
        fp = open(path, "rb")
    except OSError as error:
        raise BadImage(f"cannot read: {error.strerror or error}") from None
    with fp:
        if os.fstat(fp.fileno()).st_size == 0:
            raise BadImage("empty file")
        try:
            # Pillow warns between 1x and 2x its bound: silenced here, as the size is checked below
            with _WARNINGS_LOCK, warnings.catch_warnings():
                warnings.simplefilter("ignore", Image.DecompressionBombWarning)
                image = Image.open(fp)
        except Image.DecompressionBombError as error:  # over 2x the bound: Pillow hides the size
            raise BadImage(_bomb_reason(fp, str(error))) from None
        except UnidentifiedImageError:
            raise BadImage("not an image") from None
        except Exception as error:  # a known format with a broken header
            raise BadImage(f"unreadable header: {_short(error)}") from None
        with image:
            if image.width * image.height > MAX_PIXELS:
                raise BadImage(f"declares {image.width}x{image.height} pixels (over {MAX_PIXELS:,})")
            yield image


def _bomb_reason(fp, message: str) -> str:
    """The reason for a file Pillow refused as a bomb, naming its declared width x height: read again
    by the format's own reader, which (unlike Image.open) does not check the size."""
    fp.seek(0)
    prefix = fp.read(16)
    for format_id in Image.ID:
        factory, accept = Image.OPEN[format_id]
        try:
            accepted = not accept or accept(prefix)
            if accepted and not isinstance(accepted, str):
                fp.seek(0)
                cols, rows = factory(fp, "").size
                limit = MAX_PIXELS if cols * rows > MAX_PIXELS else 2 * (Image.MAX_IMAGE_PIXELS or 0)
                return f"declares {cols}x{rows} pixels (over {limit:,})"
        except Exception:
            continue
    return f"decompression bomb ({message})"


def _short(error: Exception) -> str:
    text = (str(error).strip().splitlines() or [type(error).__name__])[0]
    return text if len(text) <= 80 else text[:77] + "..."


def _read_pixels(path: Path) -> np.ndarray:
    """The first frame as uint8 (rows, cols, 1 or 3), maybe read-only (a view of Pillow's bytes)."""
    with _opened(path) as image:
        try:
            image.load()  # OSError on truncated data: ImageFile.LOAD_TRUNCATED_IMAGES is left off
            return _to_array(image)
        except Exception as error:  # Pillow raises OSError, SyntaxError, ValueError, ... on corrupt data
            raise BadImage(f"truncated or corrupt: {_short(error)}") from None


def _to_array(image: Image.Image) -> np.ndarray:
    """uint8 (rows, cols, 1) for grayscale modes, (rows, cols, 3) for all others (alpha dropped)."""
    mode = image.mode
    if mode.startswith("I"):  # 16-bit grayscale PNG: the high byte, as TensorFlow's decoders keep it
        pixels = np.clip(np.asarray(image) >> 8, 0, 255).astype(np.uint8)  # (convert('L') clips at 255)
    elif mode in _GRAY_MODES:
        pixels = np.asarray(image if mode == "L" else image.convert("L"))
    else:
        pixels = np.asarray(image if mode == "RGB" else image.convert("RGB"))
    return pixels[..., None] if pixels.ndim == 2 else pixels


class _Batch:
    """Images of one channel count waiting for one TensorFlow call: a call costs ~0.3 ms, far more than
    converting a small image within it (~40 us). Zero-padded to one shape, so kept to _BATCH_BYTES."""

    def __init__(self, store):
        self.store, self.indexes, self.images, self.rows, self.cols = store, [], [], 0, 0

    def add(self, index: int, pixels: np.ndarray) -> None:
        padded = (len(self.images) + 1) * max(self.rows, pixels.shape[0]) * max(self.cols, pixels.shape[1])
        if len(self.images) >= _BATCH_IMAGES or padded * pixels.shape[2] > _BATCH_BYTES:
            self.flush()
        self.indexes.append(index)
        self.images.append(pixels)
        self.rows, self.cols = max(self.rows, pixels.shape[0]), max(self.cols, pixels.shape[1])

    def flush(self) -> None:
        if self.images:
            self.store(self.indexes, self.images)
        self.indexes, self.images, self.rows, self.cols = [], [], 0, 0


def _convert(images: list[np.ndarray], channels: int, size: tuple[int, int] | None) -> np.ndarray:
    """uint8 (n, rows, cols, channels): `images` (of one channel count) each converted and resized."""
    shapes = np.array([image.shape for image in images], np.int32)
    padded = np.zeros((len(images), *shapes.max(axis=0)), np.uint8)
    for row, image in zip(padded, images):
        row[:image.shape[0], :image.shape[1]] = image
    return _converter(images[0].shape[2], channels, size)(padded, shapes[:, :2]).numpy()


@functools.lru_cache(maxsize=None)
def _converter(have: int, channels: int, size: tuple[int, int] | None):
    """A tf.function converting a zero-padded batch of uint8 images of `have` channels, each cut to its
    own (rows, cols) first; one graph per (have, channels, size), traced once."""
    import tensorflow as tf

    from cnnzoo.data.preprocessing import resize, to_channels

    def one(image_and_shape):
        image, shape = image_and_shape
        images = to_channels(tf.cast(image[:shape[0], :shape[1]], tf.float32), channels)
        if size is not None:
            images = resize(images, size)
        return tf.cast(tf.clip_by_value(tf.round(images), 0.0, 255.0), tf.uint8)

    @tf.function(input_signature=[tf.TensorSpec([None, None, None, have], tf.uint8),
                                  tf.TensorSpec([None, 2], tf.int32)])
    def convert(padded, shapes):
        output = tf.TensorSpec([*(size or (None, None)), channels], tf.uint8)
        return tf.map_fn(one, (padded, shapes), fn_output_signature=output, parallel_iterations=16)

    return convert
