"""Validated config -> Keras Functional model (uncompiled, plain Keras layers only).

Only standard `keras.layers` classes go into the graph, so `model.save("m.keras")`
loads with plain `keras.models.load_model` in a process that never imports cnnzoo.
"""

from __future__ import annotations

from typing import Sequence

from cnnzoo.config.schema import Config
from cnnzoo.errors import BuildError
from cnnzoo.models import keras1, shapes
from cnnzoo.models.layer_factory import LayerSpec, parse_layer


def parse_layers(config: Config) -> list[LayerSpec]:
    """Parse and check every `model.layers` item, without creating any layer."""
    return [
        parse_layer(item, i + 1, config.where("model", "layers", i))
        for i, item in enumerate(config.model.layers)
    ]


def input_shape_of(config: Config, specs: list[LayerSpec], dataset_shape: Sequence[int] | None = None) -> tuple[int, ...]:
    """The model's input shape: model.input_shape, else a layer's Keras-1 `input_shape`, else the dataset's."""
    declared = [s for s in specs if s.declared_input_shape is not None]
    if config.model.input_shape is not None:
        return keras1.channels_last(config.model.input_shape, config.where("model", "input_shape"))
    if declared:
        return keras1.channels_last(declared[0].declared_input_shape, declared[0].location)
    if dataset_shape is not None:
        return tuple(dataset_shape)
    raise BuildError(
        "the model's input shape is unknown",
        location=config.where("model"),
        path="model.input_shape",
        hint="Add `input_shape: [28, 28, 1]` (rows, cols, channels) under `model:`.",
    )


def build_model(config: Config, *, input_shape: Sequence[int] | None = None):
    """Build the Functional Keras model a config describes.

    Args:
        config: a validated config (see `cnnzoo.load_config`).
        input_shape: the dataset's image shape, used when the config gives none.

    Returns:
        An uncompiled `keras.Model` named `config.model.name`.

    Raises:
        BuildError: unknown layer, bad arguments or impossible shapes, naming the
            layer and the config line.
    """
    import keras

    specs = parse_layers(config)
    shape = input_shape_of(config, specs, input_shape)
    inputs = keras.Input(shape=shape, name="input")
    x = inputs
    shapes_in = []
    for spec in specs:
        layer = spec.instantiate()
        shapes_in.append(tuple(x.shape))
        shapes.check_window_fits(spec, layer, x.shape)
        x = _apply(spec, layer, x)
    shapes.check_classifier_output(
        specs, shapes_in, tuple(x.shape), config.model.num_classes, config.where("model", "layers")
    )
    return keras.Model(inputs, x, name=config.model.name)


def _apply(spec: LayerSpec, layer, x):
    try:
        return layer(x)
    except (ValueError, TypeError) as exc:
        text = str(exc).strip().splitlines()
        raise BuildError(
            f"{spec.label} cannot take input of shape {shapes.fmt(x.shape)}: {text[0] if text else exc!r}",
            location=spec.location,
            hint="Check the layers before it: e.g. Conv2D needs rows x cols x channels input, "
            "so it cannot follow Flatten or Dense.",
        ) from None
