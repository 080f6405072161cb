"""`kernel_initializer: {dirac: {rest: INIT}}`: identity (Dirac) kernels, as airbench starts its convolutions.

A kernel of shape (*window, in, out) gets its first min(in, out) filters as identities: filter i is 1 at the
window's centre on input channel i and 0 elsewhere, so a `same` convolution starts by copying channel i;
the other filters are drawn from `rest` (any Keras initializer, default `glorot_uniform`). For a Dense
kernel (in, out) that is the identity matrix's first columns. Keras gets the layer with `rest` in its
saved config, so saved models stay plain Keras: the identity is in the weights, not in the config.
"""

from __future__ import annotations

from dataclasses import replace

from cnnzoo.config.items import LayerItem
from cnnzoo.errors import BuildError

NAME = "dirac"
EXAMPLE = "`kernel_initializer: {dirac: {rest: he_uniform}}`"
LAYERS = ("Conv1D", "Conv2D", "Conv3D", "Dense")


class Dirac:
    """The initializer Keras calls while building the layer."""

    def __init__(self, rest):
        self.rest = rest

    def __call__(self, shape, dtype=None):
        import keras
        import numpy as np

        *window, channels, filters = shape
        count = min(channels, filters)
        eye = np.zeros((*window, channels, count), "float32")
        eye[(*(w // 2 for w in window), np.arange(count), np.arange(count))] = 1.0
        drawn = self.rest(shape, dtype=dtype)
        return keras.ops.concatenate([keras.ops.cast(eye, drawn.dtype), drawn[..., count:]], axis=-1)


def split(item: LayerItem):
    """(the item for Keras, the Keras initializer of the other filters); (item, None) without `dirac`."""
    value = item.kwargs.get("kernel_initializer")
    if value == NAME:
        value = {NAME: {}}
    if not (isinstance(value, dict) and list(value) == [NAME]):
        return item, None
    where = dict(location=item.location, hint=f"Write e.g. {EXAMPLE}.")
    if item.class_name not in LAYERS:
        raise BuildError(f"{item.label}: `dirac` initializes the kernel of a {', '.join(LAYERS)}, "
                         f"not of a {item.class_name}", **where)
    args = value[NAME] or {}
    unknown = sorted(set(args) - {"rest"}) if isinstance(args, dict) else ["(not a mapping)"]
    if unknown:
        raise BuildError(f"{item.label}: `dirac` takes `rest` (the other filters' initializer), got "
                         f"{', '.join(map(str, unknown))}", **where)
    rest = _keras_initializer(item, args.get("rest", "glorot_uniform"))
    return replace(item, kwargs={**item.kwargs, "kernel_initializer": Dirac(rest)}), rest


def restore(layer, rest) -> None:
    """After building: the layer's config names `rest`, the initializer Keras knows."""
    if rest is not None:
        layer.kernel_initializer = rest


def _keras_initializer(item: LayerItem, value):
    import keras

    try:
        return keras.initializers.get(value)
    except (ValueError, TypeError) as exc:
        raise BuildError(f"{item.label}: `dirac.rest` is not a Keras initializer: {value!r} ({exc})",
                         location=item.location, hint=f"Write e.g. {EXAMPLE}.") from None
