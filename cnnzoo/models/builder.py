"""Typed config items -> a Keras Functional model (uncompiled, plain Keras layers only).

Only standard `keras.layers` classes go into the graph, so `model.save("m.keras")`
loads with plain `keras.models.load_model` in a process that never imports cnnzoo.
Every layer gets its dtype policy as an argument: Keras' process-wide policy is never read or set.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Sequence

from cnnzoo.config.items import BlockItem, LayerItem
from cnnzoo.config.schema import Config
from cnnzoo.errors import BuildError, keras_message
from cnnzoo.models import blocks, shapes, wiring


def build_model(config: Config, *, input_shape: Sequence[int] | None = None, num_classes: int | None = None,
                dtype: str | None = None):
    """Build the Functional Keras model a config describes.

    Args:
        config: a validated config (see `cnnzoo.load_config`): its items are already resolved.
        input_shape: the dataset's image shape: the model's input when the config gives none,
            and checked against the config's otherwise.
        num_classes: the dataset's number of classes, checked against the model's output.
        dtype: the Keras dtype policy every layer gets (default: `runtime.precision`, with
            `auto` as float32: the trainer resolves `auto` for the hardware it trains on).

    Returns:
        An uncompiled `keras.Model` named `config.model.name`.

    Raises:
        BuildError: impossible shapes, or weights too large for memory, naming the layer and its line.
    """
    import keras

    policy = dtype or ("float32" if config.runtime.precision == "auto" else config.runtime.precision)
    items = config.items
    shape = input_shape_of(config, input_shape)
    inputs = keras.Input(shape=shape, name="input")
    graph = blocks.Graph(config.checked_layer_defaults, policy)
    final = items[-1] if items else None

    def apply(item, x):
        if isinstance(item, BlockItem):
            return blocks.apply_block(graph, item, x)
        return graph.apply(float32_output(item) if item is final and policy != "float32" else item, x)

    x = wiring.wire(items, inputs, apply)
    if x.dtype != "float32":  # mixed precision and the model ends in a block: cast its output
        x = keras.layers.Activation("linear", dtype="float32", name="output_float32")(x)
    applied = [item for item, _ in graph.applied]
    shapes.check_classifier_output(applied, [s for _, s in graph.applied], tuple(x.shape), config.where("model", "layers"))
    _check_classes(applied[-1], x.shape[-1], config, num_classes)
    try:
        return keras.Model(inputs, x, name=config.model.name)
    except ValueError as exc:  # e.g. a `name:` given to two layers
        raise BuildError(f"cannot assemble the model: {keras_message(exc)}", location=config.where("model", "layers")) from None


def input_shape_of(config: Config, dataset_shape: Sequence[int] | None = None) -> tuple[int, ...]:
    """The model's input shape: model.input_shape, else a layer's Keras-1 `input_shape`, else the dataset's.
    An open size (null rows and cols) stays open without a dataset (`build_model(config)`), and is
    `data.preprocessing.resize` with one."""
    declared = config.declared_input
    if declared is not None:
        shape, where = declared
        if None in shape and dataset_shape is not None:
            shape = _open_size_set(config, shape, where, dataset_shape)
        if dataset_shape is not None and tuple(shape) != tuple(dataset_shape):
            raise BuildError(
                f"the model takes {shapes.fmt_dims(shape)} inputs but `{config.data.name}` images are "
                f"{shapes.fmt_dims(dataset_shape)}",
                location=where, path="model.input_shape",
                hint=f"Set model.input_shape to {list(dataset_shape)} (or remove it to use the dataset's).",
            )
        return tuple(shape)
    if dataset_shape is not None:
        return tuple(dataset_shape)
    raise BuildError(
        "the model's input shape is unknown",
        location=config.where("model"),
        path="model.input_shape",
        hint="Add `input_shape: [28, 28, 1]` (rows, cols, channels) under `model:`.",
    )


def _open_size_set(config: Config, shape: Sequence[int | None], where, dataset_shape: Sequence[int]) -> tuple[int, ...]:
    """An open input size (null rows and cols) trains at `data.preprocessing.resize`, and only then:
    images of one size per batch, the size the user chose rather than whatever the data holds."""
    resize = config.data.preprocessing.resize
    if resize is None:
        open_shape = "[" + ", ".join("null" if d is None else str(d) for d in shape) + "]"
        rows, cols = (224, 224) if None in dataset_shape[:2] else dataset_shape[:2]
        raise BuildError(
            f"model.input_shape {open_shape} leaves the image size open, so the size to train at must be "
            "given: neither `data.preprocessing.resize` nor a fixed `model.input_shape` sets it",
            location=where, path="data.preprocessing.resize",
            hint=f"Add `data.preprocessing.resize: [{rows}, {cols}]` under `data:` (the images are "
                 f"{shapes.fmt_dims(dataset_shape)}), or fix the size: `model.input_shape=[{rows},{cols},{shape[-1]}]`.",
        )
    return tuple(size if d is None else d for d, size in zip(shape, (*resize, None)))


def float32_output(item: LayerItem) -> LayerItem:
    """The last layer computes in float32 under mixed precision: a float16 softmax and its log
    underflow to 0 and -inf (the classic NaN trap); Keras' mixed-precision guide does the same."""
    return replace(item, kwargs={**item.kwargs, "dtype": item.kwargs.get("dtype") or "float32"})


def _check_classes(last: LayerItem, outputs: int, config: Config, dataset_classes: int | None) -> None:
    declared = config.model.num_classes
    if declared is not None and dataset_classes is not None and declared != dataset_classes:
        raise BuildError(
            f"model.num_classes is {declared} but `{config.data.name}` has {dataset_classes} classes",
            location=config.where("model", "num_classes"),
            path="model.num_classes",
        )
    expected = dataset_classes if dataset_classes is not None else declared
    if expected is not None and outputs != expected:
        source = (f"`{config.data.name}` has {expected} classes" if dataset_classes is not None
                  else f"model.num_classes is {expected}")
        raise BuildError(
            f"the model outputs {outputs} class scores but {source}",
            location=last.location,
            hint=f"Make the last Dense layer `Dense: {expected}`.",
        )
