"""Shape checks with messages in the lecture's terms, before Keras fails obscurely."""

from __future__ import annotations

from typing import Sequence

from cnnzoo.errors import BuildError
from cnnzoo.config.items import LayerItem


def fmt(shape: Sequence[int | None]) -> str:
    """(None, 12, 12, 32) -> '12x12x32' (the batch axis is left out)."""
    return fmt_dims(list(shape)[1:])


def fmt_dims(dims: Sequence[int | None]) -> str:
    """(12, 12, 32) -> '12x12x32'."""
    return "x".join("?" if d is None else str(d) for d in dims) or "scalar"


def check_window_fits(spec: LayerItem, layer, input_shape: Sequence[int | None]) -> None:
    """A 'valid' convolution or pooling window must fit inside its input."""
    window = getattr(layer, "kernel_size", None) or getattr(layer, "pool_size", None)
    if window is None or getattr(layer, "padding", "valid") != "valid":
        return
    channels_first = getattr(layer, "data_format", "channels_last") == "channels_first"
    spatial = list(input_shape[2:] if channels_first else input_shape[1:-1])
    dilation = getattr(layer, "dilation_rate", None) or (1,) * len(window)
    if len(spatial) != len(window):
        return  # a rank mismatch: Keras' own input-spec error is clear enough
    effective = [(k - 1) * d + 1 for k, d in zip(window, dilation)]
    if any(s is not None and s < e for s, e in zip(spatial, effective)):
        kind = "kernel" if hasattr(layer, "kernel_size") else "pool window"
        raise BuildError(
            f"{spec.label}: input {fmt(input_shape)} is smaller than {kind} {'x'.join(map(str, effective))}",
            location=spec.location,
            hint="Use `padding: same`, a smaller window, or fewer pooling/strided layers before it.",
        )


def check_classifier_output(specs: list[LayerItem], shapes_in: list, output_shape, where) -> None:
    """The model must end in one score vector per image."""
    if len(output_shape) <= 2:
        return
    for spec, shape in zip(specs, shapes_in):
        if spec.class_name == "Dense" and len(shape) > 2:
            raise BuildError(
                f"{spec.label}: input is {fmt(shape)}, and Dense acts on the last axis only, so the model "
                f"would output {fmt(output_shape)} per image instead of one score per class",
                location=spec.location,
                hint="Add `- Flatten` (or `- GlobalAveragePooling2D`) before it.",
            )
    raise BuildError(
        f"the model outputs {fmt(output_shape)} per image; a classifier must output one score per class",
        location=where,
        path="model.layers",
        hint="End with `- Flatten`, `- Dense: <num_classes>`, `- Activation: softmax`.",
    )
