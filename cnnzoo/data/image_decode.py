"""Image files -> uint8 pixels of one size and colour: JPEGs by libjpeg-turbo directly, the rest by
TensorFlow's decoders in a parallel `tf.data` map (as Keras' `image_dataset_from_directory` decodes),
Pillow for what they refuse.

Every file's header is checked first (`cnnzoo.data.image_files`: empty files, non-images and
decompression bombs never reach a decoder). A JPEG is decoded by `simplejpeg` (libjpeg-turbo with the
accurate integer DCT and fancy upsampling: TensorFlow's `INTEGER_ACCURATE` pixels and Pillow's, to
the bit) and converted with the other images of its size in one call: over 10,000 small JPEGs that
took a third of the time of TensorFlow's decoder in a `tf.data` map, whose per-file overhead is most
of the cost. A JPEG it refuses (even for a warning), and every other format, go to TensorFlow, save
the BMPs its decoder gets wrong (a palette's indices as grey: `bmp_needs_pillow`): Pillow decodes those,
and a file TensorFlow rejects, or skips it with Pillow's reason.
Colour and size are converted by `cnnzoo.data.preprocessing`, the definition the exported model
follows; `decode` (one file, for `predict`) takes the same path as `decode_many` (a folder).
"""

from __future__ import annotations

import functools
import os
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from cnnzoo.data.image_files import HEAD_BYTES, BadImage, bmp_needs_pillow, decode_pillow, read_head, read_size
from cnnzoo.data.pipeline import plain
from cnnzoo.data.preprocessing import ROUND_UP
from cnnzoo.memory import aligned_empty

JPEG_START = b"\xff\xd8\xff"
DIRECT_COLOURS = ("YCbCr", "Gray")  # CMYK, YCCK and RGB JPEGs: TensorFlow converts them otherwise (tested)
CHUNK_BYTES = 64 << 20  # decoded JPEG pixels converted together
BLOCK = 1024  # JPEGs decoded by the threads at a time
DECODERS = min(4, os.cpu_count() or 1)


def decode(path: Path, channels: int, size: tuple[int, int] | None = None) -> np.ndarray:
    """The image (its first frame) as uint8 (rows, cols, channels), converted and resized as training does.

    Raises:
        BadImage: an unreadable, empty, non-image, oversized, truncated or corrupt file.
    """
    _, data = read_head(path)  # the header first: a bomb is never handed to a decoder (a small file: whole)
    first = _triage(str(path), data)
    if isinstance(first, np.ndarray):
        return _finish(first, channels, _size(size))
    if first == "tensorflow":
        import tensorflow as tf

        try:
            return _graph(channels, _size(size))(tf.constant(str(path))).numpy()
        except tf.errors.OpError:
            pass  # refused: Pillow decodes it, or says why it cannot
    return _finish(decode_pillow(path), channels, _size(size))


def decode_many(paths: list[Path] | list[str], channels: int, size: tuple[int, int] | None, *,
                headers_checked: bool = False, progress=None,
                contents: list[bytes | None] | None = None) -> tuple[np.ndarray, list[tuple[int, str]]]:
    """`decode` every file, TensorFlow's decoders running in parallel.

    `headers_checked`: the caller read every header already (`read_size`). Without a `size`, all
    images must be of one size (else ValueError naming two). `progress(done)` is called about
    every 0.5 s and at the end. `contents`: the files' bytes where the caller has them (None: read here).

    Returns:
        (images, skipped): uint8 (n_ok, rows, cols, channels) in the order of `paths`, the bad files
        left out, and (index into paths, reason) for each bad file.
    """
    size = _size(size)
    skipped, sizes = [], {}
    for i, path in enumerate(paths):
        try:
            sizes[i] = None if headers_checked and size is not None else read_size(path)
        except BadImage as bad:
            skipped.append((i, bad.reason))
    good = list(sizes)
    if size is None and good:
        good = _one_size(paths, good, sizes, skipped)
    shape = (*(size or (next(iter(sizes.values()), None) or (0, 0))), channels)
    out = aligned_empty((len(good), *shape), np.uint8)  # (made a tensor without a slow copy)
    files = [str(paths[i]) for i in good]
    rest, pillows = _decode_jpegs_into(out, files, [contents[i] for i in good] if contents else [None] * len(good),
                                       channels, size, progress)
    bad = _pillow_into(out, pillows, files, channels, size)  # before TensorFlow's: its progress counts them done
    failed = _decode_into(out, rest, [files[row] for row in rest], channels, size, progress)
    bad.update(_pillow_into(out, failed, files, channels, size))  # TensorFlow refused them
    skipped += [(good[row], reason) for row, reason in bad.items()]
    if progress is not None:
        progress(len(paths))
    rows = np.ones(len(good), bool)
    rows[list(bad)] = False
    return (out if rows.all() else out[rows]), sorted(skipped)


def _pillow_into(out: np.ndarray, rows: list[int], files: list[str], channels: int, size) -> dict[int, str]:
    """Fill `out[rows]` by Pillow; returns {row: reason} for the files it cannot decode either."""
    bad = {}
    for row in rows:
        try:
            out[row] = _finish(decode_pillow(files[row]), channels, size)
        except BadImage as error:
            bad[row] = error.reason
    return bad


def _one_size(paths: list[Path], good: list[int], sizes: dict, skipped: list) -> list[int]:
    """The files of the first good file's size; another size is an error unless the file is broken anyway
    (a truncated file's header still says a size)."""
    shape = sizes[good[0]]
    for i in [i for i in good if sizes[i] != shape]:
        try:
            decode_pillow(paths[i])
        except BadImage as bad:
            skipped.append((i, bad.reason))
            continue
        raise ValueError(f"images of different sizes: {paths[good[0]]} is {shape}, {paths[i]} is {sizes[i]}; "
                         "give a size to resize them to")
    return [i for i in good if sizes[i] == shape]


def _triage(path: str, data: bytes | None) -> np.ndarray | str:
    """A JPEG's pixels by libjpeg-turbo, else the decoder for the file: "pillow" for a BMP TensorFlow's gets
    wrong (and a file unreadable now: Pillow says why), else "tensorflow". `data`: the file's bytes when
    read already, else its start is read here (once: a JPEG whole), so no file is read for this alone."""
    try:
        data = _file_start(path) if data is None else data
    except OSError:
        return "pillow"
    if bmp_needs_pillow(data):
        return "pillow"
    pixels = _jpeg_pixels(path, data)
    return "tensorflow" if pixels is None else pixels


def _jpeg_pixels(path: str, data: bytes | None = None) -> np.ndarray | None:
    """A JPEG's RGB pixels by libjpeg-turbo (`data`: its bytes, when read already), or None: not a JPEG, or
    refused (TensorFlow and Pillow then decide, and say why)."""
    import simplejpeg

    try:
        data = _file_start(path) if data is None else data
        if data[:3] != JPEG_START or simplejpeg.decode_jpeg_header(data)[2] not in DIRECT_COLOURS:
            return None
        return simplejpeg.decode_jpeg(data, colorspace="RGB")
    except (OSError, ValueError):  # unreadable, or libjpeg-turbo's error or warning
        return None


def _file_start(path: str) -> bytes:
    """The file's bytes if it starts as a JPEG, else its first HEAD_BYTES (a large PNG is not read whole
    for nothing). os.open/os.read: half the time of open().read() for a small file."""
    fd = os.open(path, os.O_RDONLY)
    try:
        parts, want = [os.read(fd, HEAD_BYTES)], HEAD_BYTES  # as `read_head`: a small file whole, a large one's start
        if parts[0][:3] != JPEG_START:
            return parts[0]
        while len(parts[-1]) == want:
            want = 1 << 20
            parts.append(os.read(fd, want))
        return b"".join(parts) if len(parts) > 1 else parts[0]
    finally:
        os.close(fd)


def _decode_jpegs_into(out: np.ndarray, files: list[str], contents: list, channels: int, size,
                       progress) -> tuple[list[int], list[int]]:
    """Fill the rows of `out` whose file is a JPEG libjpeg-turbo decodes; returns the other rows, as
    (TensorFlow's, Pillow's): see `_triage`.

    BLOCK files at a time are decoded by DECODERS threads (libjpeg-turbo runs outside Python's lock:
    two threads took 0.09-0.11 s for 10,000 small JPEGs in memory, one 0.16 s); the decoded images are
    converted CHUNK_BYTES at a time, those of one size in one call. (A converting thread beside the
    decoding one was slower: its many small TensorFlow calls hold Python's lock.)"""
    rest, pillows, pending, held, shown = [], [], {}, 0, time.monotonic()
    with ThreadPoolExecutor(DECODERS, thread_name_prefix="cnnzoo-decode") as pool:
        for start in range(0, len(files), BLOCK):
            rows = range(start, min(start + BLOCK, len(files)))
            shares = [rows[k::DECODERS] for k in range(DECODERS)]
            for share, decoded in zip(shares, pool.map(lambda r: [_triage(files[i], contents[i]) for i in r], shares)):
                for row, pixels in zip(share, decoded):
                    if isinstance(pixels, str):
                        (rest if pixels == "tensorflow" else pillows).append(row)
                        continue
                    pending.setdefault(pixels.shape, []).append((row, pixels))
                    held += pixels.nbytes
            if held > CHUNK_BYTES:
                _convert_into(out, pending, channels, size)
                pending, held = {}, 0
            if progress is not None and time.monotonic() - shown > 0.5:
                progress(rows.stop - len(rest) - len(pillows))
                shown = time.monotonic()
    _convert_into(out, pending, channels, size)
    return sorted(rest), sorted(pillows)


def _convert_into(out: np.ndarray, by_shape: dict, channels: int, size) -> None:
    """Write decoded RGB images, grouped by shape, into their rows of `out`, converted and resized."""
    for shape, group in by_shape.items():
        rows = [row for row, _ in group]
        images = np.stack([pixels for _, pixels in group])
        if (*(size or shape[:2]), channels) == shape:
            out[rows] = images
        elif channels == 3:
            out[rows] = _resized_rgb(images, size)
        else:
            out[rows] = _converted(images, channels, size).numpy()


def _resized_rgb(images: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """`_converted(images, 3, size)` for uint8 RGB images, with a third of its Python around the same
    kernel (tf.image.resize's bilinear resize is ResizeBilinear with half-pixel centres; `whole`'s
    rounding by NumPy): called once for every size of a folder. No clipping: a bilinear value lies
    between the four pixels it mixes, so rounding keeps it within 0-255 (10,000 images: 0.10 s against
    0.125 s with the clip, the same pixels)."""
    import tensorflow as tf

    with tf.device("/CPU:0"):  # see `_converted`
        resized = tf.raw_ops.ResizeBilinear(images=images, size=size, half_pixel_centers=True).numpy()
    resized += np.float32(ROUND_UP)
    return np.floor(resized, out=resized).astype(np.uint8)


def _decode_into(out: np.ndarray, rows: list[int], files: list[str], channels: int, size, progress) -> list[int]:
    """Fill `out[rows]` in order from a parallel map, 256 images a batch; returns the rows whose file
    TensorFlow could not decode (dropped from the batches by `ignore_errors`, found as missing)."""
    if not files:  # (TensorFlow not even imported)
        return []
    import tensorflow as tf

    graph = _graph(channels, size)
    dataset = (tf.data.Dataset.from_tensor_slices((tf.constant(rows, tf.int64), files))
               .map(plain(lambda row, path: (row, graph(path))), num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
               .ignore_errors(log_warning=False).batch(256).prefetch(2))
    decoded, shown = np.zeros(len(out), bool), time.monotonic()
    for got, images in dataset.as_numpy_iterator():
        out[got] = images
        decoded[got] = True
        if progress is not None and time.monotonic() - shown > 0.5:
            progress(len(out) - len(rows) + int(decoded.sum()))
            shown = time.monotonic()
    return [row for row in rows if not decoded[row]]


def _size(size) -> tuple[int, int] | None:
    return None if size is None else (int(size[0]), int(size[1]))


@functools.lru_cache(maxsize=None)
def _graph(channels: int, size: tuple[int, int] | None):
    """path -> uint8 (rows, cols, channels): read, decode (first frame; colour as 3 channels), convert."""
    import tensorflow as tf

    @tf.function(input_signature=[tf.TensorSpec([], tf.string)], autograph=False)  # no Python control flow
    def load(path):
        data = tf.io.read_file(path)
        image = tf.cond(  # JPEG with libjpeg's accurate integer DCT: the pixels Pillow gives, to the bit
            tf.io.is_jpeg(data),
            lambda: tf.io.decode_jpeg(data, channels=3, dct_method="INTEGER_ACCURATE"),
            lambda: tf.io.decode_image(data, channels=3, expand_animations=False))
        return _converted(tf.ensure_shape(image, [None, None, 3]), channels, size)

    return load


def _converted(image, channels: int, size):
    """uint8 pixels -> `channels` and `size`, rounded back to uint8 (the one definition's operations).

    On the CPU, as tf.data's decoding map is: called eagerly on a machine with a GPU, the resize
    would run there, and a GPU's rounding can move a kept pixel by one level: the kept pixels (and
    so a run's numbers) would depend on the machine that decoded the folder."""
    import tensorflow as tf

    from cnnzoo.data.preprocessing import resize, to_channels, whole

    with tf.device("/CPU:0"):
        image = to_channels(tf.cast(image, tf.float32), channels)
        if size is not None:
            image = resize(image, size)
        return tf.cast(whole(image, tf.floor, tf.clip_by_value), tf.uint8)


def _finish(pixels: np.ndarray, channels: int, size) -> np.ndarray:
    """Pillow's pixels (rows, cols, 1 or 3) converted as the TensorFlow path converts them: grey as the 3
    equal channels TensorFlow's decoders give (TensorFlow's grey of them is 0.9999 of the value: rounded,
    the value itself, but a resize before the rounding moves some pixels by one)."""
    if pixels.shape == (*(size or pixels.shape[:2]), channels):
        return pixels
    return _converted(np.repeat(pixels, 3 // pixels.shape[-1], axis=-1), channels, size).numpy()
