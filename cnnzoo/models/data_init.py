"""Initializers computed from training images before the first step, written like any initializer:
`Conv2D: {filters: 24, kernel_size: 2, kernel_initializer: {patch_whitening: {images: 5000, eps: 5.0e-4}}}`.

`patch_whitening` (airbench's first layer): the kernel's filters are the eigenvectors of the second-moment
matrix of the layer's input patches (each kernel-sized window of `images` training images), largest
eigenvalue first, each divided by sqrt(eigenvalue + eps), followed by the same vectors negated (so a
ReLU after the layer loses nothing): a Conv2D with kernel kh x kw on c channels takes up to
2 * kh * kw * c such filters. On those patches the layer's outputs then have a second-moment matrix of
diag(eigenvalue / (eigenvalue + eps)): about the identity for every direction the images vary in.
The bias, if any, starts at zero. To keep the layer fixed, as airbench does, freeze it (`model.freeze`).

Keras gets the layer with its default initializer, so saved models stay plain Keras; the trainer
computes the kernel once the data is loaded (`cnnzoo.training.initialize`) and records it in the run.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any, Iterable

from cnnzoo.config.items import LayerItem
from cnnzoo.errors import BuildError

ATTRIBUTE = "_cnnzoo_data_initializer"  # set on the built Keras layer (not part of its saved config)
EXAMPLE = "`kernel_initializer: {patch_whitening: {images: 5000, eps: 5.0e-4}}`"


@dataclass(frozen=True)
class PatchWhitening:
    images: int = 5000  # training images whose patches are counted
    eps: float = 5e-4  # added to each eigenvalue before the square root

    def describe(self) -> dict[str, Any]:
        return {"initializer": "patch_whitening", "images": self.images, "eps": self.eps}


def split(item: LayerItem) -> tuple[LayerItem, PatchWhitening | None]:
    """The item for Keras (its data-dependent initializer left out) and that initializer, checked (None: none)."""
    value = item.kwargs.get("kernel_initializer")
    if value == "patch_whitening":
        value = {"patch_whitening": {}}
    if not (isinstance(value, dict) and list(value) == ["patch_whitening"]):
        return item, None
    where = dict(location=item.location, hint=f"Write e.g. {EXAMPLE}.")
    if item.class_name != "Conv2D":
        raise BuildError(f"{item.label}: `patch_whitening` initializes a Conv2D's kernel, not a {item.class_name}'s",
                         **where)
    args = value["patch_whitening"] or {}
    unknown = sorted(set(args) - {"images", "eps"}) if isinstance(args, dict) else ["(not a mapping)"]
    if unknown:
        raise BuildError(f"{item.label}: `patch_whitening` takes `images` and `eps`, got {', '.join(map(str, unknown))}",
                         **where)
    images, eps = args.get("images", 5000), args.get("eps", 5e-4)
    if not isinstance(images, int) or isinstance(images, bool) or images < 1:
        raise BuildError(f"{item.label}: `patch_whitening.images` must be a whole number of images > 0, got {images!r}",
                         **where)
    if not isinstance(eps, (int, float)) or isinstance(eps, bool) or not eps > 0:
        raise BuildError(f"{item.label}: `patch_whitening.eps` must be a number > 0, got {eps!r}", **where)
    kwargs = {k: v for k, v in item.kwargs.items() if k != "kernel_initializer"}
    return replace(item, kwargs=kwargs), PatchWhitening(images, float(eps))


def check(item: LayerItem, layer, input_shape: tuple, spec: PatchWhitening) -> None:
    """A whitening kernel has at most two filters per patch dimension; grouped convolutions have none."""
    channels = input_shape[-1]
    most = 2 * layer.kernel_size[0] * layer.kernel_size[1] * (channels or 0)
    if getattr(layer, "groups", 1) != 1 or layer.filters > most:
        raise BuildError(
            f"{item.label}: `patch_whitening` gives at most 2 x {layer.kernel_size[0]} x {layer.kernel_size[1]} x "
            f"{channels} = {most} filters (one per patch direction and its negative), not {layer.filters}"
            + (f" in {layer.groups} groups" if getattr(layer, "groups", 1) != 1 else ""),
            location=item.location, hint=f"Use filters: {most} or fewer (airbench: 2 x 2 x 3 x 2 = 24).",
        )
    setattr(layer, ATTRIBUTE, spec)


def layers_to_initialize(model) -> list:
    """The model's layers with a data-dependent initializer, in order."""
    return [layer for layer in model.layers if getattr(layer, ATTRIBUTE, None) is not None]


def patch_moments(inputs: Iterable, kernel_size: tuple[int, int]):
    """(second-moment matrix of every kernel-sized patch of the batches of `inputs`, patches counted)."""
    import numpy as np
    import tensorflow as tf

    total, count = None, 0
    for batch in inputs:
        patches = tf.image.extract_patches(tf.cast(batch, tf.float32), [1, *kernel_size, 1], [1, 1, 1, 1],
                                           [1, 1, 1, 1], "VALID")  # each (row, col, channel) flattened
        flat = np.asarray(patches, np.float64).reshape(-1, patches.shape[-1])
        total = flat.T @ flat if total is None else total + flat.T @ flat
        count += len(flat)
    return total / max(count, 1), count


def whitening_kernel(moments, kernel_size: tuple[int, int], channels: int, filters: int, eps: float):
    """(kernel of shape (kh, kw, channels, filters), eigenvalues largest first)."""
    import numpy as np

    values, vectors = np.linalg.eigh(moments)
    values, vectors = values[::-1].clip(min=0), vectors[:, ::-1]  # largest first
    scaled = vectors / np.sqrt(values + eps)
    columns = np.concatenate([scaled, -scaled], axis=1)[:, :filters]
    return columns.reshape(*kernel_size, channels, filters).astype("float32"), values


def initialize(model, batches_of_images) -> list[dict[str, Any]]:
    """Compute every data-dependent kernel of `model` from `batches_of_images` (a callable giving batches of
    the model's input images, up to N images in all), in layer order; returns what was done, per layer."""
    import keras
    import numpy as np

    records = []
    for layer in layers_to_initialize(model):
        spec: PatchWhitening = getattr(layer, ATTRIBUTE)
        feed = keras.Model(model.inputs, layer.input)
        batches = list(batches_of_images(spec.images))
        moments, patches = patch_moments((feed.predict_on_batch(b) for b in batches), tuple(layer.kernel_size))
        kernel, values = whitening_kernel(moments, tuple(layer.kernel_size), layer.kernel.shape[2], layer.filters,
                                          spec.eps)
        layer.kernel.assign(kernel)
        if getattr(layer, "bias", None) is not None:
            layer.bias.assign(np.zeros(layer.bias.shape, "float32"))
        records.append({"layer": layer.name, **spec.describe(), "images_used": sum(len(b) for b in batches),
                        "patches": int(patches),
                        "eigenvalues": [float(v) for v in values]})
    return records
