"""Keras 1 spellings, as on the lecture slide, mapped to Keras 3 with a warning.

The slide writes `Convolution2D(nb_filters, nb_conv, nb_conv, border_mode='valid',
input_shape=(1, img_rows, img_cols))`. In Keras 3, `Convolution2D` still exists
as an alias of `Conv2D`, but its third positional argument is `strides`: the
slide's call would silently build a stride-3 convolution. So the Keras-1 forms
are recognised and rewritten, never passed through.
"""

from __future__ import annotations

import warnings
from typing import Any

from cnnzoo.errors import CnnzooWarning, Location


class Keras1Warning(CnnzooWarning):
    """A Keras-1 spelling was accepted and mapped to its Keras-3 equivalent."""


# Keras 1 positional signatures of the convolution layers: (name -> (Keras 3 class, arity)).
_CONV_POSITIONAL = {
    "Convolution1D": ("Conv1D", 2),  # (nb_filter, filter_length)
    "Convolution2D": ("Conv2D", 3),  # (nb_filter, nb_row, nb_col)
    "Convolution3D": ("Conv3D", 4),  # (nb_filter, kernel_dim1, kernel_dim2, kernel_dim3)
    "Deconvolution2D": ("Conv2DTranspose", 3),
}

KWARG_RENAMES = {
    "nb_filter": "filters",
    "border_mode": "padding",
    "subsample": "strides",
    "subsample_length": "strides",
    "filter_length": "kernel_size",
    "pool_length": "pool_size",
    "stride": "strides",
    "output_dim": "units",
    "init": "kernel_initializer",
    "W_regularizer": "kernel_regularizer",
    "b_regularizer": "bias_regularizer",
    "W_constraint": "kernel_constraint",
    "b_constraint": "bias_constraint",
    "bias": "use_bias",
    "dim_ordering": "data_format",
    "atrous_rate": "dilation_rate",
}
_DIM_ORDERING = {"th": "channels_first", "tf": "channels_last"}
_KERNEL_DIMS = ("nb_row", "nb_col")


def translate(name: str, args: list[Any], kwargs: dict[str, Any], location: Location | None):
    """Rewrite a Keras-1 layer call into Keras 3 terms.

    Returns:
        (name, args, kwargs, declared_input_shape): the input shape a layer
        declared with `input_shape`/`input_dim` (Keras 1 and 2 style), or None.
    """
    changes: list[str] = []
    kwargs = dict(kwargs)
    conv = _CONV_POSITIONAL.get(name)
    if conv and (len(args) == conv[1] or any(k in kwargs for k in ("nb_filter", *_KERNEL_DIMS))):
        new_name, arity = conv
        changes.append(f"{name}{tuple(args) if args else ''} -> {new_name}(filters, kernel_size)")
        if len(args) == arity:
            kwargs["filters"] = args[0]
            kwargs["kernel_size"] = args[1] if arity == 2 else tuple(args[1:])
            args = []
        name = new_name
    if all(k in kwargs for k in _KERNEL_DIMS):
        kwargs["kernel_size"] = (kwargs.pop("nb_row"), kwargs.pop("nb_col"))
        changes.append("nb_row/nb_col -> kernel_size")
    for old, new in KWARG_RENAMES.items():
        if old in kwargs:
            value = kwargs.pop(old)
            kwargs[new] = _DIM_ORDERING.get(value, value) if old == "dim_ordering" else value
            changes.append(f"{old} -> {new}")
    input_shape = _pop_input_shape(kwargs)
    if changes:
        # stacklevel=2 keeps the file/line the filter sees in cnnzoo; the message names the config line.
        where = f"{location}: " if location else ""
        warnings.warn(
            f"{where}Keras 1 spelling mapped to Keras 3: {'; '.join(changes)}. Write it as "
            f"`{name}: {_as_yaml(kwargs)}` to silence this.",
            Keras1Warning,
            stacklevel=2,
        )
    return name, args, kwargs, input_shape


def channels_last(shape: list[int] | tuple[int, ...], location: Location | None) -> tuple[int, ...]:
    """Convert a Keras-1 channels-first image shape like (1, 28, 28) to (28, 28, 1) (an open size,
    with null rows and cols, is channels last already)."""
    shape = tuple(shape)
    if len(shape) == 3 and None not in shape and shape[0] in (1, 3, 4) and shape[2] > 4 and shape[1] > 4:
        converted = shape[1:] + shape[:1]
        where = f"{location}: " if location else ""
        warnings.warn(
            f"{where}input shape {list(shape)} is channels-first (Keras 1 / Theano ordering); "
            f"using channels-last {list(converted)}, which TensorFlow expects.",
            Keras1Warning,
            stacklevel=2,
        )
        return converted
    return shape


def _pop_input_shape(kwargs: dict[str, Any]) -> tuple[int, ...] | None:
    shape = None
    if "input_dim" in kwargs:
        shape = (kwargs.pop("input_dim"),)
    if "input_shape" in kwargs:
        shape = tuple(kwargs.pop("input_shape"))
    if "batch_input_shape" in kwargs:
        shape = tuple(kwargs.pop("batch_input_shape"))[1:]
    return shape


def _as_yaml(kwargs: dict[str, Any]) -> str:
    items = ", ".join(f"{k}: {list(v) if isinstance(v, tuple) else v}" for k, v in kwargs.items())
    return "{" + items + "}"
