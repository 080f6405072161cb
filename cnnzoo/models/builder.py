"""Validated config -> Keras Functional model (uncompiled, plain Keras layers only).

Only standard `keras.layers` classes go into the graph, so `model.save("m.keras")`
loads with plain `keras.models.load_model` in a process that never imports cnnzoo.
"""

from __future__ import annotations

from typing import Sequence

from cnnzoo import registry
from cnnzoo.arguments import bind
from cnnzoo.config.schema import Config
from cnnzoo.errors import BuildError, keras_message
from cnnzoo.models import blocks, keras1, params, shapes
from cnnzoo.models.layer_factory import LayerSpec, parse_layer


def parse_layers(config: Config) -> dict[int, LayerSpec]:
    """Parse and check the plain layer items of `model.layers` (by 1-based index), creating no layer.

    Items that use blocks (`stage:` or a block name) are parsed while building, when
    their parameters are known.
    """
    defaults = layer_defaults(config)
    specs = {}
    for i, item in enumerate(config.model.layers):
        if blocks.block_name_of(item, config) is None:
            where = lambda *sub, i=i: config.where("model", "layers", i, *sub)  # noqa: E731
            item = params.substitute(item, config.model.params, where(), f"layer {i + 1}")
            specs[i + 1] = parse_layer(item, i + 1, where, defaults=defaults)
    return specs


def layer_defaults(config: Config) -> dict[str, dict]:
    """`model.layer_defaults`, keyed by Keras class name and checked against each class's arguments."""
    import keras

    checked = {}
    for name, kwargs in config.model.layer_defaults.items():
        where = config.where("model", "layer_defaults", name)
        path = f"model.layer_defaults.{name}"
        cls = registry.layers().get(name, location=where, path=path)
        checked[cls.__name__] = bind(
            cls, [], kwargs, what=f"layer_defaults for {cls.__name__}", location=where, path=path,
            stop=keras.layers.Layer, locate=lambda key, name=name: config.where("model", "layer_defaults", name, key),
            partial=True,
        )
    return checked


def input_shape_of(config: Config, specs: dict[int, LayerSpec], dataset_shape: Sequence[int] | None = None) -> tuple[int, ...]:
    """The model's input shape: model.input_shape, else a layer's Keras-1 `input_shape`, else the dataset's."""
    declared = [s for s in specs.values() if s.declared_input_shape is not None]
    if config.model.input_shape is not None:
        where = config.where("model", "input_shape")
        return _matching(keras1.channels_last(config.model.input_shape, where), dataset_shape, config, where)
    if declared:
        where = declared[0].location
        return _matching(keras1.channels_last(declared[0].declared_input_shape, where), dataset_shape, config, where)
    if dataset_shape is not None:
        return tuple(dataset_shape)
    raise BuildError(
        "the model's input shape is unknown",
        location=config.where("model"),
        path="model.input_shape",
        hint="Add `input_shape: [28, 28, 1]` (rows, cols, channels) under `model:`.",
    )


def _matching(shape: tuple[int, ...], dataset_shape, config: Config, where) -> tuple[int, ...]:
    if dataset_shape is not None and tuple(shape) != tuple(dataset_shape):
        raise BuildError(
            f"the model takes {shapes.fmt_dims(shape)} inputs but `{config.data.name}` images are "
            f"{shapes.fmt_dims(dataset_shape)}",
            location=where,
            path="model.input_shape",
            hint=f"Set model.input_shape to {list(dataset_shape)} (or remove it to use the dataset's).",
        )
    return tuple(shape)


def build_model(config: Config, *, input_shape: Sequence[int] | None = None, num_classes: int | None = None,
                dtype: str | None = None):
    """Build the Functional Keras model a config describes.

    Args:
        config: a validated config (see `cnnzoo.load_config`).
        input_shape: the dataset's image shape: the model's input when the config gives none,
            and checked against the config's otherwise.
        num_classes: the dataset's number of classes, checked against the model's output.
        dtype: the Keras dtype policy every layer gets (default: `runtime.precision`, with
            `auto` as float32: the trainer resolves `auto` for the hardware it trains on).
            Keras' process-wide policy is neither read nor changed.

    Returns:
        An uncompiled `keras.Model` named `config.model.name`.

    Raises:
        BuildError: unknown layer, bad arguments or impossible shapes, naming the
            layer and the config line.
    """
    import keras

    policy = dtype or ("float32" if config.runtime.precision == "auto" else config.runtime.precision)
    specs = parse_layers(config)
    shape = input_shape_of(config, specs, input_shape)
    inputs = keras.Input(shape=shape, name="input")
    graph = blocks.Graph(config, layer_defaults(config), policy)
    x = inputs
    for i, item in enumerate(config.model.layers, start=1):
        kind = blocks.block_name_of(item, config)
        if kind == "stage":
            x = blocks.apply_stage(graph, item, i, x)
        elif kind is not None:
            x = blocks.apply_block_item(graph, item, i, x)
        else:
            spec = specs[i]
            if i == len(config.model.layers) and policy != "float32":
                spec = float32_output(spec)
            x = graph.apply(spec, x)
    if x.dtype != "float32":  # mixed precision and the model ends in a block: cast its output
        x = keras.layers.Activation("linear", dtype="float32", name="output_float32")(x)
    applied = [spec for spec, _ in graph.applied]
    shapes.check_classifier_output(applied, [s for _, s in graph.applied], tuple(x.shape), config.where("model", "layers"))
    _check_classes(applied[-1], x.shape[-1], config, num_classes)
    try:
        return keras.Model(inputs, x, name=config.model.name)
    except ValueError as exc:  # e.g. a `name:` given to two layers
        raise BuildError(f"cannot assemble the model: {keras_message(exc)}", location=config.where("model", "layers")) from None


def float32_output(spec: LayerSpec) -> LayerSpec:
    """The last layer computes in float32 under mixed precision: a float16 softmax and its log
    underflow to 0 and -inf (the classic NaN trap); Keras' mixed-precision guide does the same."""
    from dataclasses import replace

    return replace(spec, kwargs={**spec.kwargs, "dtype": spec.kwargs.get("dtype") or "float32"})


def _check_classes(last: LayerSpec, outputs: int, config: Config, dataset_classes: int | None) -> None:
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
