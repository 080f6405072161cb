"""`cnnzoo predict`: top-k classes for image files (PNG/JPEG) or a `.npy` array, with the run's preprocessing."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from cnnzoo.deploy.runs import load_trained
from cnnzoo.errors import CnnzooError


def read_images(paths: list[str], shape: tuple[int, ...]) -> tuple[list[str], np.ndarray]:
    """(labels, pixels as float32 0-255 of `shape`) from image files and `.npy` arrays."""
    import tensorflow as tf

    labels, images = [], []
    for given in paths:
        path = Path(given)
        if not path.is_file():
            raise CnnzooError(f"no such file: {given}")
        if path.suffix == ".npy":
            array = np.load(path)
            if array.shape[-1] != shape[-1]:  # no channel axis: (N, 28, 28) or (28, 28)
                array = array[..., None]
            if array.ndim == len(shape):  # a single image
                array = array[None]
            labels += [f"{given}[{i}]" for i in range(len(array))]
            images += list(array.astype("float32"))
            continue
        try:
            image = tf.io.decode_image(path.read_bytes(), channels=shape[-1], expand_animations=False)
        except tf.errors.InvalidArgumentError:
            raise CnnzooError(f"{given} is not a PNG, JPEG, GIF or BMP image, nor a .npy array") from None
        if tuple(image.shape[:2]) != tuple(shape[:2]):
            image = tf.image.resize(image, shape[:2])  # e.g. a photo of a digit: the model's size
        labels.append(given)
        images.append(np.asarray(image, dtype="float32"))
    batch = np.stack(images)
    if batch.shape[1:] != tuple(shape):
        raise CnnzooError(f"the images are {batch.shape[1:]} but the model takes {tuple(shape)}",
                          hint="Pass images of the model's size, or arrays shaped (N, rows, cols[, channels]).")
    return labels, batch


def predict(model_path: str, paths: list[str], top_k: int = 3, config_path: str | None = None) -> list[dict[str, Any]]:
    """For each image: its top-k classes with probabilities."""
    from cnnzoo.data.catalog import class_names
    from cnnzoo.data.preprocessing import preprocess_images

    config, model = load_trained(model_path, config_path)
    labels, pixels = read_images(paths, tuple(model.input_shape[1:]))
    probabilities = model.predict(preprocess_images(pixels, config.data), verbose=0)
    names = class_names(config)
    results = []
    for label, p in zip(labels, probabilities):
        best = np.argsort(p)[::-1][:top_k]
        results.append({"input": label, "top": [
            {"class": int(c), "name": names[c] if names else str(c), "probability": float(p[c])} for c in best]})
    return results
