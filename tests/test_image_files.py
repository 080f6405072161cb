"""Users' own image files: every format and colour mode decoded as TensorFlow would convert it, bad
files (empty, not images, truncated, decompression bombs) skipped with a telling reason and never
decoded, hidden files recognised, and many files decoded at once in order."""

from __future__ import annotations

import io
import resource
import struct
import time
import tracemalloc
import warnings
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageFile

from cnnzoo.data import image_files
from cnnzoo.data.image_decode import decode, decode_many
from cnnzoo.data.image_files import BadImage, is_hidden, is_image_name, read_size


def picture(rows: int, cols: int, seed: int = 0) -> np.ndarray:
    """Smooth RGB pixels with some noise: compressible, and distinct in every channel."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:rows, 0:cols]
    base = np.stack([x * 255 / max(cols - 1, 1), y * 255 / max(rows - 1, 1), (x + y) * 127 / max(rows + cols, 1)], -1)
    return np.clip(base + rng.normal(0, 8, base.shape), 0, 255).astype(np.uint8)


def save(path: Path, pixels, **options) -> Path:
    image = pixels if isinstance(pixels, Image.Image) else Image.fromarray(pixels)
    image.save(path, **options)
    return path


def bomb_png(path: Path, cols: int, rows: int) -> Path:
    """A valid PNG of ~70 bytes whose header declares cols x rows 8-bit grayscale pixels."""
    buffer = io.BytesIO()
    Image.new("L", (1, 1)).save(buffer, "PNG")
    data = bytearray(buffer.getvalue())
    assert data[12:16] == b"IHDR"
    chunk = b"IHDR" + struct.pack(">II", cols, rows) + bytes(data[24:29])  # then depth, colour type, ...
    data[12:29] = chunk
    data[29:33] = struct.pack(">I", zlib.crc32(chunk))
    path.write_bytes(bytes(data))
    return path


def tf_reference(rgb: np.ndarray, channels: int, size=None) -> np.ndarray:
    """What TensorFlow's own ops give for decoded RGB pixels, rounded to uint8."""
    import tensorflow as tf

    images = tf.constant(rgb, tf.float32)
    if channels == 1:
        images = tf.image.rgb_to_grayscale(images)
    if size is not None:
        images = tf.image.resize(images, size)
    return np.clip(np.round(images.numpy()), 0, 255).astype(np.uint8)


def close(a: np.ndarray, b: np.ndarray, within: int = 1) -> bool:
    return a.shape == b.shape and int(np.abs(a.astype(int) - b.astype(int)).max()) <= within


@pytest.mark.parametrize("suffix", [".png", ".bmp", ".jpg"])
def test_rgb_files_decode_to_their_pixels(tmp_path, suffix):
    pixels = picture(21, 34)
    path = save(tmp_path / f"photo{suffix}", pixels, **({"quality": 95, "subsampling": 0} if suffix == ".jpg" else {}))
    decoded = decode(path, 3, None)
    assert decoded.dtype == np.uint8 and decoded.shape == (21, 34, 3) and decoded.flags.writeable
    assert read_size(path) == (21, 34)
    if suffix == ".jpg":  # lossy: close to the original, and exactly what Pillow decodes
        assert np.abs(decoded.astype(int) - pixels).mean() < 4
        assert np.array_equal(decoded, np.asarray(Image.open(path).convert("RGB")))
    else:
        assert np.array_equal(decoded, pixels)


def test_multi_frame_gif_gives_its_first_frame(tmp_path):
    colours = [(200, 30, 30), (30, 200, 30), (30, 30, 200)]
    frames = [Image.new("RGB", (9, 7), colour) for colour in colours]
    path = tmp_path / "anim.gif"
    frames[0].save(path, save_all=True, append_images=frames[1:], duration=50, loop=0)
    assert Image.open(path).n_frames == 3
    decoded = decode(path, 3, None)
    assert decoded.shape == (7, 9, 3)
    assert (decoded == colours[0]).all()


def test_rgba_and_palette_pngs_give_their_colours(tmp_path):
    pixels = picture(16, 12, seed=1)
    alpha = np.linspace(0, 255, 16 * 12).astype(np.uint8).reshape(16, 12, 1)
    rgba = save(tmp_path / "alpha.png", np.concatenate([pixels, alpha], -1))
    assert Image.open(rgba).mode == "RGBA"
    assert np.array_equal(decode(rgba, 3, None), pixels)  # alpha dropped, as TensorFlow's decode_png(channels=3)

    palette = save(tmp_path / "palette.png", Image.fromarray(pixels).quantize(16))
    assert Image.open(palette).mode == "P"
    expected = np.asarray(Image.open(palette).convert("RGB"))
    assert len(np.unique(expected.reshape(-1, 3), axis=0)) > 4
    assert np.array_equal(decode(palette, 3, None), expected)


def test_grayscale_png_in_rgb_mode_has_three_equal_channels(tmp_path):
    gray = picture(10, 14)[..., 0]
    path = save(tmp_path / "gray.png", gray)
    decoded = decode(path, 3, None)
    assert decoded.shape == (10, 14, 3)
    for channel in range(3):
        assert np.array_equal(decoded[..., channel], gray)
    assert np.array_equal(decode(path, 1, None)[..., 0], gray)


def test_rgb_jpeg_in_grayscale_mode_is_tensorflows_grayscale(tmp_path):
    path = save(tmp_path / "photo.jpg", picture(30, 40), quality=90)
    rgb = decode(path, 3, None)
    gray = decode(path, 1, None)
    assert gray.shape == (30, 40, 1) and gray.dtype == np.uint8
    assert close(gray, tf_reference(rgb, 1))
    assert len(np.unique(gray)) > 20  # a real image, not a constant


def test_16_bit_and_gray_alpha_pngs_are_grayscale(tmp_path):
    wide = (np.arange(8 * 32, dtype=np.uint16).reshape(8, 32) * 256 + 255)
    path = save(tmp_path / "deep.png", Image.fromarray(wide))
    assert Image.open(path).mode.startswith("I")
    assert np.array_equal(decode(path, 1, None)[..., 0], (wide >> 8).astype(np.uint8))  # not clipped at 255

    gray = picture(6, 5)[..., 1]
    la = save(tmp_path / "la.png", Image.merge("LA", [Image.fromarray(gray), Image.new("L", (5, 6), 99)]))
    assert np.array_equal(decode(la, 1, None)[..., 0], gray)


def test_resizing_is_tensorflows_bilinear_resize(tmp_path):
    pixels = picture(37, 23, seed=2)
    path = save(tmp_path / "photo.png", pixels)
    resized = decode(path, 3, (16, 20))
    assert resized.shape == (16, 20, 3) and resized.dtype == np.uint8
    assert close(resized, tf_reference(pixels, 3, (16, 20)))
    assert close(decode(path, 1, [50, 30]), tf_reference(pixels, 1, (50, 30)))
    assert np.array_equal(decode(path, 3, (37, 23)), pixels)  # already that size: untouched


def jpeg_bytes(progressive: bool) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(picture(120, 160, seed=3)).save(buffer, "JPEG", quality=90, progressive=progressive)
    return buffer.getvalue()


@pytest.mark.parametrize("progressive", [False, True])
def test_jpeg_cut_in_half_is_truncated(tmp_path, progressive):
    data = jpeg_bytes(progressive)
    path = tmp_path / "half.jpg"
    path.write_bytes(data[:len(data) // 2])
    assert read_size(path) == (120, 160)  # the header is whole: only decoding tells
    with pytest.raises(BadImage) as bad:
        decode(path, 3, None)
    assert bad.value.reason.startswith("truncated or corrupt:") and "truncated" in bad.value.reason


def test_bad_files_raise_bad_image_with_their_reason(tmp_path):
    empty = tmp_path / "empty.jpg"
    empty.write_bytes(b"")
    text = tmp_path / "notes.jpg"
    text.write_text("these are not the pixels you are looking for\n" * 20)
    noise = tmp_path / "noise.png"
    noise.write_bytes(np.random.default_rng(4).integers(0, 256, 5000, dtype=np.uint8).tobytes())
    png = io.BytesIO()
    Image.fromarray(picture(64, 64)).save(png, "PNG")
    half_png = tmp_path / "half.png"
    half_png.write_bytes(png.getvalue()[:len(png.getvalue()) // 2])
    missing = tmp_path / "gone.png"

    expected = {empty: "empty file", text: "not an image", noise: "not an image", missing: "cannot read"}
    for path, reason in expected.items():
        for read in (read_size, lambda p: decode(p, 3, None)):
            with pytest.raises(BadImage) as bad:
                read(path)
            assert bad.value.reason.startswith(reason), (path, bad.value.reason)
    with pytest.raises(BadImage) as bad:
        decode(half_png, 1, (8, 8))
    assert "truncated" in bad.value.reason
    assert str(bad.value) == bad.value.reason


@pytest.mark.parametrize("cols, rows", [(30000, 30000), (10000, 10000)])  # over 2x Pillow's bound; 1x to 2x
def test_decompression_bombs_are_refused_from_their_header(tmp_path, monkeypatch, cols, rows):
    path = bomb_png(tmp_path / "bomb.png", cols, rows)
    assert path.stat().st_size < 200
    loads = []
    monkeypatch.setattr(ImageFile.ImageFile, "load", lambda self: loads.append(self))
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    tracemalloc.start()
    started = time.perf_counter()
    try:
        with warnings.catch_warnings(record=True) as shown:
            warnings.simplefilter("always")
            for read in (read_size, lambda p: decode(p, 3, None), lambda p: decode(p, 1, (8, 8))):
                with pytest.raises(BadImage) as bad:
                    read(path)
                assert bad.value.reason == f"declares {cols}x{rows} pixels (over 89,478,485)"
        images, skipped = decode_many([path], 3, (8, 8))
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert time.perf_counter() - started < 1
    assert peak < 50 * 2**20
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - rss_before < 100 * 2**10  # KiB: under 100 MB
    assert loads == []  # no pixel decoded
    assert shown == []  # Pillow's DecompressionBombWarning kept quiet
    assert images.shape == (0, 8, 8, 3) and skipped == [(0, bad.value.reason)]


def test_no_global_state_is_changed(tmp_path):
    filters = list(warnings.filters)
    decode_many([bomb_png(tmp_path / "b.png", 10000, 10000), save(tmp_path / "a.png", picture(5, 5))], 3, None)
    assert Image.MAX_IMAGE_PIXELS == image_files.MAX_PIXELS and ImageFile.LOAD_TRUNCATED_IMAGES is False
    assert warnings.filters == filters


def test_hidden_files_and_image_names():
    for hidden in [".DS_Store", "Thumbs.db", "thumbs.db", "desktop.ini", "cats/._cat.jpg", "cats/.thumbnails/cat.jpg",
                   ".git/photo.png"]:
        assert is_hidden(Path(hidden)), hidden
        assert not is_image_name(Path(hidden)), hidden
    for visible in ["cat.jpg", "cats/cat.jpg", "./cats/cat.jpg", "../photos/cat.jpg", "notes.txt"]:
        assert not is_hidden(Path(visible)), visible
    for name in ["cat.JPG", "cat.jpeg", "dogs/dog.Png", "a.bmp", "b.GIF"]:
        assert is_image_name(Path(name)), name
    for name in ["notes.txt", "cat", "cat.jpg.txt", "cat.webp"]:
        assert not is_image_name(Path(name)), name


def test_decode_many_keeps_good_files_in_order_and_lists_bad_ones(tmp_path):
    bad_jpeg = tmp_path / "bad.jpg"
    bad_jpeg.write_text("not a jpeg")
    empty = tmp_path / "empty.png"
    empty.write_bytes(b"")
    half = tmp_path / "half.jpg"
    half.write_bytes(jpeg_bytes(False)[:3000])
    paths = [empty, save(tmp_path / "a.png", picture(8, 8, 1)), bad_jpeg, save(tmp_path / "b.bmp", picture(8, 8, 2)),
             half, bomb_png(tmp_path / "bomb.png", 30000, 30000), save(tmp_path / "c.png", picture(8, 8, 3)),
             save(tmp_path / "d.jpg", picture(8, 8, 4))]
    done = []
    images, skipped = decode_many(paths, 3, None, progress=done.append)
    assert images.shape == (4, 8, 8, 3)
    for row, index in zip(images, [1, 3, 6, 7]):
        assert np.array_equal(row, decode(paths[index], 3, None))
    assert [i for i, _ in skipped] == [0, 2, 4, 5]
    reasons = dict(skipped)
    assert reasons[0] == "empty file" and reasons[2] == "not an image" and "truncated" in reasons[4]
    assert "30000x30000" in reasons[5]
    assert done and done[-1] == len(paths)


def test_decode_many_resizes_and_converts_images_of_many_sizes(tmp_path):
    paths = []
    for i in range(11):
        pixels = picture(10 + 7 * i, 40 - 2 * i, seed=i)
        paths.append(save(tmp_path / f"{i}.png", pixels[..., 0] if i % 4 == 1 else pixels))  # some grayscale
    paths.append(save(tmp_path / "exact.png", picture(12, 10, seed=20)))
    for channels in (3, 1):
        images, skipped = decode_many(paths, channels, (12, 10))
        assert skipped == [] and images.shape == (len(paths), 12, 10, channels)
        for row, path in zip(images, paths):
            expected = decode(path, channels, (12, 10))
            assert np.array_equal(row, expected)
            rgb = np.asarray(Image.open(path).convert("RGB"))
            assert close(row, tf_reference(rgb, channels, (12, 10)))


def test_decode_many_without_a_size_needs_one_size(tmp_path):
    same = [save(tmp_path / f"{i}.png", picture(9, 6, seed=i)) for i in range(4)]
    same.append(save(tmp_path / "gray.png", picture(9, 6)[..., 0]))
    images, skipped = decode_many(same, 3, None)
    assert skipped == [] and images.shape == (5, 9, 6, 3)
    assert np.array_equal(images[-1][..., 2], picture(9, 6)[..., 0])

    other = save(tmp_path / "other.png", picture(7, 6))
    with pytest.raises(ValueError) as error:
        decode_many([*same, other], 3, None)
    assert "(9, 6)" in str(error.value) and "(7, 6)" in str(error.value) and "other.png" in str(error.value)

    nothing, skipped = decode_many([tmp_path / "missing.png"], 1, None)
    assert nothing.shape[0] == 0 and skipped[0][0] == 0
    assert decode_many([], 3, (4, 4))[0].shape == (0, 4, 4, 3)


# -- headers read without Pillow's open: the sizes Pillow reads, for every variant of JPEG, PNG, BMP --

def _variants(rows: int, cols: int, seed: int):
    """(name, bytes) of one picture in the header variants users' files come in."""
    rgb = Image.fromarray(picture(rows, cols, seed))
    exif = Image.Exif()
    exif[0x010E] = "x" * 20_000  # a large APP1 segment before the frame header
    exif[0x0112] = 6  # rotated: the header still says the stored size, as Pillow's does
    options = {
        "baseline.jpg": (rgb, dict(quality=90)), "progressive.jpg": (rgb, dict(progressive=True)),
        "gray.jpg": (rgb.convert("L"), {}), "cmyk.jpg": (rgb.convert("CMYK"), {}),
        "exif.jpg": (rgb, dict(exif=exif.tobytes(), icc_profile=b"\0" * 3000)),
        "rgb.png": (rgb, {}), "palette.png": (rgb.convert("P"), {}), "interlaced.png": (rgb, dict(interlace=1)),
        "16bit.png": (rgb.convert("I;16"), {}), "rgba.png": (rgb.convert("RGBA"), {}),
        "rgb.bmp": (rgb, {}), "1bit.bmp": (rgb.convert("1"), {}), "palette.bmp": (rgb.convert("P"), {}),
        "rgba.bmp": (rgb.convert("RGBA"), {}), "first.gif": (rgb.convert("P"), {}),
    }
    for name, (image, kwargs) in options.items():
        buffer = io.BytesIO()
        image.save(buffer, name.rsplit(".", 1)[1].replace("jpg", "jpeg"), **kwargs)
        yield name, buffer.getvalue()
    buffer = io.BytesIO()
    rgb.save(buffer, "BMP")
    bmp = bytearray(buffer.getvalue())
    bmp[22:26] = struct.pack("<i", -rows)  # stored top-down: a negative height
    yield "top_down.bmp", bytes(bmp)


@pytest.mark.parametrize("rows, cols, seed", [(1, 1, 0), (3, 70, 1), (61, 2, 2), (48, 33, 3), (257, 300, 4)])
def test_headers_read_without_pillows_open_give_pillows_sizes(tmp_path, monkeypatch, rows, cols, seed):
    files = {}
    for name, data in _variants(rows, cols, seed):
        files[name] = tmp_path / name
        files[name].write_bytes(data)
    with_pillow = {}
    for name, path in files.items():
        with Image.open(path) as image:
            with_pillow[name] = (image.height, image.width)
    opened = []
    real_open = Image.open
    monkeypatch.setattr(Image, "open", lambda *a, **k: opened.append(a) or real_open(*a, **k))
    assert {name: read_size(path) for name, path in files.items()} == with_pillow
    assert len(opened) == 1  # only the GIF went to Pillow's open: every JPEG, PNG and BMP was read here


@pytest.mark.parametrize("kind", ["jpg", "bmp"])
def test_a_bomb_declared_in_a_jpeg_or_bmp_header_is_refused_before_pillow_opens_it(tmp_path, monkeypatch, kind):
    buffer = io.BytesIO()
    Image.fromarray(picture(4, 4)).save(buffer, {"jpg": "JPEG", "bmp": "BMP"}[kind])
    data = bytearray(buffer.getvalue())
    if kind == "bmp":
        data[18:26] = struct.pack("<ii", 40000, -30000)
    else:
        at = data.index(b"\xff\xc0") + 5  # the baseline frame header: precision, then rows and cols
        data[at:at + 4] = struct.pack(">HH", 30000, 40000)
    path = tmp_path / f"bomb.{kind}"
    path.write_bytes(bytes(data))
    monkeypatch.setattr(Image, "open", lambda *a, **k: pytest.fail("Pillow opened a bomb"))
    with pytest.raises(BadImage) as bad:
        read_size(path)
    assert bad.value.reason == "declares 40000x30000 pixels (over 89,478,485)"


def _jpeg_kinds(tmp_path: Path) -> dict[str, Path]:
    """JPEGs as cameras, editors and scripts write them, each of another size."""
    pixels = picture(37, 45, seed=5)
    kinds = {
        "4:2:0": save(tmp_path / "a.jpg", pixels, quality=85),
        "4:4:4": save(tmp_path / "b.jpg", pixels[:30, :41], quality=95, subsampling=0),
        "progressive": save(tmp_path / "c.jpg", pixels[:33], quality=80, progressive=True),
        "gray": save(tmp_path / "d.jpg", pixels[:29, :31, 1], quality=90),
        "cmyk": save(tmp_path / "e.jpg", Image.fromarray(pixels[:20, :22]).convert("CMYK"), quality=90),
        "rgb": save(tmp_path / "g.jpg", pixels[:26, :25], quality=90, keep_rgb=True),
        "larger than one read": save(tmp_path / "h.jpg", np.random.default_rng(6).integers(0, 256, (300, 310, 3),
                                                                                         dtype=np.uint8), quality=95),
    }
    assert kinds["larger than one read"].stat().st_size > image_files.HEAD_BYTES
    data = kinds["4:2:0"].read_bytes()  # junk after the first segment: libjpeg warns, TensorFlow decodes it
    end = 4 + struct.unpack(">H", data[4:6])[0]
    kinds["junk before a marker"] = tmp_path / "f.jpg"
    kinds["junk before a marker"].write_bytes(data[:end] + b"\x00\x17\x2a" + data[end:])
    return kinds


def test_jpegs_give_tensorflows_pixels_whichever_decoder_takes_them(tmp_path, monkeypatch):
    """libjpeg-turbo (simplejpeg) decodes JPEGs directly: the pixels must be those of the TensorFlow path
    it stands in for, converted and resized alike; the JPEGs it refuses go that path."""
    from cnnzoo.data import image_decode

    kinds = _jpeg_kinds(tmp_path)
    paths = list(kinds.values())

    def every_way() -> list[np.ndarray]:  # a folder at one size, in rgb and grayscale, its own size, `predict`'s
        return [*decode_many(paths, 3, (24, 28))[0], *decode_many(paths, 1, (24, 28))[0],
                *(decode_many([p], 3, None)[0][0] for p in paths), *(decode(p, 1, (24, 28)) for p in paths)]

    direct, jpeg_pixels = set(), image_decode._jpeg_pixels
    monkeypatch.setattr(image_decode, "_jpeg_pixels", lambda path, data=None: _noted(jpeg_pixels(path, data), path, direct))
    fast = every_way()
    assert direct == {str(kinds[k]) for k in ("4:2:0", "4:4:4", "progressive", "gray", "larger than one read")}
    monkeypatch.setattr(image_decode, "_jpeg_pixels", lambda path, data=None: None)  # TensorFlow's path only
    slow = every_way()
    assert len(fast) == len(slow) == 4 * len(paths)
    for i, (got, want) in enumerate(zip(fast, slow)):
        np.testing.assert_array_equal(got, want, err_msg=f"{list(kinds)[i % len(paths)]}, way {i // len(paths)}")


def _noted(pixels, path, direct: set):
    if pixels is not None:
        direct.add(str(path))
    return pixels


@pytest.mark.parametrize("shape, size", [((37, 45), (24, 28)), ((20, 22), (32, 32)), ((1, 7), (5, 3)),
                                         ((64, 48), (64, 17)), ((33, 33), (1, 1))])
def test_a_folders_rgb_resize_is_the_one_definitions(shape, size):
    """Folder JPEGs are resized by ResizeBilinear itself, with less Python around it than the one
    definition (`_converted`: tf.image.resize, tf.round, clip_by_value): the same pixels."""
    from cnnzoo.data.image_decode import _converted, _resized_rgb

    rng = np.random.default_rng(sum(shape))
    images = rng.integers(0, 256, (5, *shape, 3), dtype=np.uint8)
    extremes = rng.choice(np.array([0, 255], np.uint8), (5, *shape, 3))  # where a clip would matter, if anywhere
    for pixels in (images, extremes):
        np.testing.assert_array_equal(_resized_rgb(pixels, size), _converted(pixels, 3, size).numpy())


def test_decoded_pixels_are_converted_on_the_cpu_whatever_devices_the_machine_has(tmp_path, monkeypatch):
    """The kept pixels must not depend on the machine that decoded the folder: called eagerly, a resize
    would run on a GPU where there is one (whose rounding differs), so every eager conversion asks for
    the CPU, where tf.data's decoding map runs. Seen here as the device each eager resize is asked for."""
    import tensorflow as tf
    from tensorflow.python.eager import context

    from cnnzoo.data import preprocessing

    asked = []

    def spying(function):
        def spy(*args, **kwargs):
            if tf.executing_eagerly():
                asked.append((function.__name__, context.context().device_name))
            return function(*args, **kwargs)
        return spy

    monkeypatch.setattr(tf.raw_ops, "ResizeBilinear", spying(tf.raw_ops.ResizeBilinear))  # a folder's RGB JPEGs
    monkeypatch.setattr(preprocessing, "resize", spying(preprocessing.resize))  # the one definition
    jpeg = tmp_path / "a.jpg"
    Image.fromarray(picture(20, 24)).save(jpeg, quality=95)
    for channels in (3, 1):
        decode_many([jpeg], channels, (8, 8))
        decode(jpeg, channels, (8, 8))  # predict's
    assert {name for name, _ in asked} == {"resize_bilinear", "resize"}, asked
    assert all(device.endswith("CPU:0") for _, device in asked), asked


# -- BMPs TensorFlow's decoder gets wrong (a palette's indices as grey, other channel orders): Pillow's --

def _bmp(values: np.ndarray, bits: int, palette=(), core: bool = False, masks=(), gap: int = 0) -> bytes:
    """A bottom-up BMP as Pillow cannot write one: `values` are palette indices (bits <= 8) or whole
    pixels (16, 24, 32 bits); an OS/2 core header with `core`; BI_BITFIELDS with `masks`; `gap` bytes
    before the pixels (the header's offset to them says so)."""
    lines = []
    for row in values[::-1]:
        if bits <= 8:
            line = np.packbits(np.unpackbits(row.astype(np.uint8)[:, None], axis=1)[:, 8 - bits:]).tobytes()
        else:
            line = row.astype("<u4").view(np.uint8).reshape(-1, 4)[:, :bits // 8].tobytes()
        lines.append(line + b"\0" * (-len(line) % 4))
    colours = b"".join(bytes(colour[::-1]) + b"\0" * (not core) for colour in palette)  # BGR(X)
    rows, cols = values.shape
    if core:
        info = struct.pack("<IHHHH", 12, cols, rows, 1, bits)
    else:
        info = struct.pack("<IiiHHIIiiII", 40, cols, rows, 1, bits, 3 if masks else 0, 0, 2835, 2835, len(palette), 0)
        info += struct.pack(f"<{len(masks)}I", *masks)
    start, body = 14 + len(info) + len(colours) + gap, b"".join(lines)
    return b"BM" + struct.pack("<IHHI", start + len(body), 0, 0, start) + info + colours + b"\0" * gap + body


def _bmp_kinds(tmp_path: Path, rows: int = 23, cols: int = 29) -> tuple[dict[str, Path], dict[str, Path]]:
    """BMPs of one size: ({kind: path} of those TensorFlow's decoder gets wrong or refuses, {kind: path}
    of those it decodes right)."""
    rng = np.random.default_rng(7)
    image = Image.fromarray(picture(rows, cols, seed=7))
    palette = [tuple(int(v) for v in colour) for colour in rng.integers(0, 256, (16, 3))]
    indices, words = rng.integers(0, 16, (rows, cols)), rng.integers(0, 1 << 32, (rows, cols), dtype=np.uint64)
    wrong = {
        "8-bit palette": image.convert("P"), "8-bit, 16 colours": image.quantize(16), "8-bit grey": image.convert("L"),
        "1-bit": image.convert("1"), "4-bit palette": _bmp(indices, 4, palette),
        "8-bit palette, larger than one read": _bmp(indices, 8, palette, gap=image_files.HEAD_BYTES),
        "1-bit, two colours": _bmp(indices % 2, 1, palette[5:7]),
        "OS/2 8-bit palette": _bmp(indices, 8, palette, core=True), "OS/2 24-bit": _bmp(words, 24, core=True),
        "32-bit XBGR masks": _bmp(words, 32, masks=(0xFF000000, 0xFF0000, 0xFF00)),
        "16-bit 5-6-5": _bmp(words, 16, masks=(0xF800, 0x07E0, 0x001F)), "16-bit 5-5-5": _bmp(words & 0x7FFF, 16),
    }
    right = {"24-bit": image, "32-bit": image.convert("RGBA"),
             "32-bit BGR masks": _bmp(words, 32, masks=(0xFF0000, 0xFF00, 0xFF))}
    paths = ({}, {})
    for found, kinds in zip(paths, (wrong, right)):
        for kind, made in kinds.items():
            found[kind] = tmp_path / f"{len(paths[0]) + len(paths[1])}.bmp"
            if isinstance(made, bytes):
                found[kind].write_bytes(made)
            else:
                made.save(found[kind])
    return paths


def _as_png(path: Path, png: Path) -> Path:
    """The BMP's pixels as Pillow decodes them (in RGB), saved as a PNG: the module's pixels to expect."""
    with Image.open(path) as image:
        return save(png, image.convert("RGB"))


@pytest.mark.parametrize("size", [None, (16, 20)])
def test_palette_and_other_bmps_tensorflow_gets_wrong_give_pillows_pixels(tmp_path, size):
    """TensorFlow's BMP decoder gives a palette BMP's indices as grey (silently: the same shape), and
    reads other channel orders as BGR: such BMPs are Pillow's, in a folder and in `predict` alike."""
    wrong, _ = _bmp_kinds(tmp_path)
    for kind, path in wrong.items():
        assert read_size(path) == (23, 29), kind
    assert Image.open(wrong["4-bit palette"]).mode == "P" and Image.open(wrong["8-bit palette"]).mode == "P"
    paths = list(wrong.values())
    for channels in (3, 1):
        expected = [decode(_as_png(path, tmp_path / f"{i}.png"), channels, size) for i, path in enumerate(paths)]
        folder, skipped = decode_many(paths, channels, size)
        assert skipped == [] and folder.shape == (len(paths), *(size or (23, 29)), channels)
        checked, _ = decode_many(paths, channels, size or (23, 29), headers_checked=True,  # as a folder's training
                                 contents=[image_files.read_head(path)[1] for path in paths])
        for kind, path, want, row, row_checked in zip(wrong, paths, expected, folder, checked):
            where = f"{kind}, {channels} channel(s)"
            np.testing.assert_array_equal(decode(path, channels, size), want, err_msg=f"decode: {where}")
            np.testing.assert_array_equal(row, want, err_msg=f"decode_many: {where}")
            np.testing.assert_array_equal(row_checked, want, err_msg=f"decode_many, headers checked: {where}")


def test_bmps_tensorflow_decodes_right_stay_tensorflows(tmp_path, monkeypatch):
    """24- and 32-bit BMPs in BGR order are still decoded by TensorFlow's `tf.data` map, not Pillow, and
    give Pillow's pixels."""
    from cnnzoo.data import image_decode

    _, right = _bmp_kinds(tmp_path)
    data = bytearray(right["24-bit"].read_bytes())
    data[22:26] = struct.pack("<i", -23)  # stored top-down: the rows the other way round
    right["24-bit top-down"] = tmp_path / "top_down.bmp"
    right["24-bit top-down"].write_bytes(bytes(data))
    paths = list(right.values())
    expected = [decode(_as_png(path, tmp_path / f"{i}.png"), 3, None) for i, path in enumerate(paths)]
    assert np.array_equal(expected[-1], expected[0][::-1])
    monkeypatch.setattr(image_decode, "decode_pillow", lambda path: pytest.fail(f"Pillow decoded {path}"))
    for kind, path, want, row in zip(right, paths, expected, decode_many(paths, 3, None)[0]):
        np.testing.assert_array_equal(decode(path, 3, None), want, err_msg=kind)
        np.testing.assert_array_equal(row, want, err_msg=kind)
