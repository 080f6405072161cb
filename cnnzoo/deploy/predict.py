"""`cnnzoo predict`: top-k classes for image files, folders of them and `.npy` arrays, with the run's preprocessing.

Each image is decoded as training decodes files (`cnnzoo.data.image_decode.decode`: colour converted
and resized to the model's input, rounded to uint8 where training rounded: a run on image files; a
catalogue run's are resized in float, as its pipeline resizes), then goes to the model (`cnnzoo.deploy.runtimes`):
a run's Keras model after `preprocess_images`, the run's own preprocessing, or an `.onnx` or
`.tflite` export (preprocessing inside) run by ONNX Runtime or LiteRT. Images are read and predicted `CHUNK` at a time, so a folder of any size
never sits in memory as float32. A file that cannot be read gets a result saying why instead of
classes, and never stops the others.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

import numpy as np

from cnnzoo.deploy.runtimes import open_model
from cnnzoo.errors import CnnzooError

CHUNK = 256  # images decoded, preprocessed and predicted together


@dataclass(frozen=True)
class Source:
    """One image to classify: its name in the output and where its pixels come from."""

    label: str
    path: Path
    array: np.ndarray | None = None  # its raw pixels, when it is a row of a .npy array
    error: str | None = None  # why it cannot be predicted, when known before decoding


class Prediction:
    """The images named on the command line, and the model that classifies them; iterate for the results.

    Args:
        model_path: A run directory, a `.keras` file (in a run, or with `config_path`), or an `.onnx` or
            `.tflite` export.
        paths: Image files, folders of images (searched recursively) and `.npy` arrays.
        top_k: Classes per image, best first.
        config_path: The config the model was trained with (default: the run's).

    Raises:
        CnnzooError: The run cannot be loaded, a path does not exist, a folder holds no images,
            or `top_k` is below 1.
    """

    def __init__(self, model_path: str, paths: list[str], top_k: int = 3, config_path: str | None = None):
        if top_k < 1:
            raise CnnzooError(f"--top-k must be at least 1, not {top_k}")
        self.model = open_model(model_path, config_path)
        self.shape = self.model.shape
        self.k = min(top_k, self.model.classes)
        self.names = self.model.names
        self.sources = [source for given in paths for source in gather(given, self.shape)]
        if self.shape[-1] not in (1, 3) and any(s.array is None and s.error is None for s in self.sources):
            raise CnnzooError(f"the model takes {self.shape[-1]}-channel images: image files become 1 or 3 channels",
                              hint="Pass its inputs as .npy arrays of raw pixels instead.")

    def __iter__(self) -> Iterator[dict[str, Any]]:
        """One result per image, in order: `{"input", "top": [{"class", "name", "probability"}], "error"}`."""
        for start in range(0, len(self.sources), CHUNK):
            yield from self._chunk(self.sources[start:start + CHUNK])

    def _chunk(self, sources: list[Source]) -> list[dict[str, Any]]:
        read = [_pixels(source, self.shape, self.model.rounded) for source in sources]
        good = [pixels for pixels, _ in read if pixels is not None]
        probabilities = iter(self.model.probabilities(np.stack(good)) if good else [])
        return [self._result(source.label, next(probabilities)) if pixels is not None
                else {"input": source.label, "top": [], "error": error}
                for source, (pixels, error) in zip(sources, read)]

    def _result(self, label: str, p: np.ndarray) -> dict[str, Any]:
        best = np.argsort(p)[::-1][:self.k]
        names = self.names if self.names and len(self.names) == len(p) else None
        return {"input": label, "top": [{"class": int(c), "name": names[c] if names else str(c),
                                          "probability": float(p[c])} for c in best], "error": None}


def predict(model_path: str, paths: list[str], top_k: int = 3, config_path: str | None = None) -> list[dict[str, Any]]:
    """For each image: its top-k classes with probabilities, or the reason it could not be read."""
    return list(Prediction(model_path, paths, top_k, config_path))


def gather(given: str, shape: tuple[int, ...]) -> list[Source]:
    """The images one command-line path names: a file, every image in a folder, or each row of a `.npy` array.

    Raises:
        CnnzooError: `given` does not exist, or is a folder without images.
    """
    path = Path(given)
    if path.is_dir():
        return _folder(given, path)
    if not path.is_file():
        raise CnnzooError(f"no such file or folder: {given}")
    if path.suffix.lower() == ".npy":
        return _array_rows(given, path, shape)
    from cnnzoo.data.folder_listing import checked, shown

    _, why = checked(path.stat, path.is_symlink(), given)  # a name that is not UTF-8: as in a folder
    return [Source(shown(given), path, error=why)]  # any suffix: decoding says whether it is an image


def _folder(given: str, folder: Path) -> list[Source]:
    """Every image under `folder`, sorted, named as `given/relative/path`; hidden files (.DS_Store,
    ._x.jpg, .git/...) are skipped silently, as training skips them, and files that cannot be images
    (a broken link, a pipe, a name that is not UTF-8) have their reason, as training lists them."""
    from cnnzoo.data.folder_listing import checked, shown
    from cnnzoo.data.image_files import is_hidden, is_image_name

    walked = list(os.walk(folder))  # links to folders are not followed, as training's listing does not
    found = sorted(Path(top, name).relative_to(folder) for top, _, names in walked for name in names)
    images = [rel for rel in found if not is_hidden(rel) and is_image_name(rel)]
    linked = sorted(Path(top, name).relative_to(folder) for top, dirs, _ in walked for name in dirs
                    if Path(top, name).is_symlink() and not is_hidden(Path(top, name).relative_to(folder)))
    if not images:
        raise CnnzooError(f"no images in folder {given}", hint="Predict reads .jpg, .jpeg, .png, .bmp and .gif files, "
                          "in subfolders too" + (f"; links to folders ({linked[0]}) are not followed: give the "
                                                 "folder a link names itself." if linked else "."))
    sources = [Source(shown(str(Path(given) / rel)), folder / rel, error="a link to a folder (not followed)")
               for rel in linked]
    for rel in images:
        path = folder / rel
        _, why = checked(path.stat, path.is_symlink(), str(rel))
        sources.append(Source(shown(str(Path(given) / rel)), path, error=why))
    return sorted(sources, key=lambda source: Path(source.label).parts)


def _array_rows(given: str, path: Path, shape: tuple[int, ...]) -> list[Source]:
    """One source per image of a `.npy` array of raw pixels, shaped (N, rows, cols[, channels]) or one image."""
    try:
        array = np.load(path, mmap_mode="r")  # rows are read as their chunk is predicted
    except (ValueError, OSError) as exc:
        return [Source(given, path, error=f"not a .npy array of pixels: {str(exc).splitlines()[0]}")]
    if not isinstance(array, np.ndarray):  # an .npz archive named .npy
        return [Source(given, path, error="not a .npy array of pixels: an archive of several arrays")]
    given_shape = array.shape
    if array.shape[-1:] != shape[-1:]:  # no channel axis: (N, 28, 28) or (28, 28)
        array = array[..., None]
    if array.ndim == len(shape):  # a single image
        array = array[None]
    if array.shape[1:] != shape or array.dtype.kind not in "biuf":
        return [Source(given, path, error=f"an array of {array.dtype} shaped {given_shape}, but the model takes "
                       f"raw pixels of shape {shape}: (N, {', '.join(map(str, shape))}), or one image, at that size")]
    return [Source(f"{given}[{i}]", path, array=array[i]) for i in range(len(array))]


def _pixels(source: Source, shape: tuple[int, ...], rounded: bool) -> tuple[np.ndarray | None, str | None]:
    """(raw pixels of `shape`, None), or (None, why not): colour and size as the run's training data
    (`rounded`: resized and rounded as a folder's kept pixels, else resized in float as a pipeline resizes)."""
    from cnnzoo.data.image_decode import decode
    from cnnzoo.data.image_files import BadImage
    from cnnzoo.data.preprocessing import resize

    if source.error is not None:
        return None, source.error
    if source.array is not None:
        return np.asarray(source.array, dtype="float32"), None
    try:
        if rounded:
            return decode(source.path, channels=shape[-1], size=tuple(shape[:2])), None
        pixels = decode(source.path, channels=shape[-1])
        return np.asarray(resize(pixels[None].astype("float32"), shape[:2])[0]), None
    except BadImage as bad:  # also unreadable files (permissions) and files gone since they were listed
        return None, bad.reason


def csv_header(k: int) -> list[str]:
    """`path,class_1,probability_1,...,class_k,probability_k,error`."""
    return ["path", *(f"{what}_{i}" for i in range(1, k + 1) for what in ("class", "probability")), "error"]


def csv_row(result: dict[str, Any], k: int) -> list[str]:
    """One result as a row under `csv_header(k)`: empty classes and a reason for an unreadable image."""
    cells = [cell for top in result["top"] for cell in (top["name"], f"{top['probability']:.6f}")]
    return [result["input"], *cells, *[""] * (2 * k - len(cells)), result["error"] or ""]

