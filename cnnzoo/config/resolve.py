"""A validated config's `model` section resolved: typed items, checked layer defaults, the input shape."""

from __future__ import annotations

from typing import Any

from cnnzoo import registry
from cnnzoo.arguments import bind
from cnnzoo.config import expressions, keras1
from cnnzoo.config.block_items import block_use, stage_items
from cnnzoo.config.items import GRAPH_KEYS, MAX_LAYERS, Item, LayerItem, block_name_of, parse_layer
from cnnzoo.errors import BuildError, Location


def resolve_items(config, defaults: dict[str, dict]) -> tuple[Item, ...]:
    """The typed items of `model.layers`, in order; `defaults` is `layer_defaults(config)`.

    Raises:
        BuildError: the first mistake, at the line of the item (or block layer) it is in.
    """
    items: list[Item] = []
    for i, item in enumerate(config.model.layers):
        kind = block_name_of(item, config)
        if kind is not None and isinstance(item, dict) and set(item) & set(GRAPH_KEYS):
            raise BuildError(f"layer {i + 1}: a block use or stage takes the output of the item before it; "
                             "`name` and `inputs` are for layers", location=config.where("model", "layers", i),
                             hint="Name and wire the layers inside the block's `layers` instead.")
        if kind == "stage":
            items += stage_items(config, defaults, item, i + 1)
        elif kind is not None:
            items.append(block_use(config, defaults, item, i + 1))
        else:
            where = lambda *sub, i=i: config.where("model", "layers", i, *sub)  # noqa: E731
            item = expressions.substitute(item, config.model.params, where(), f"layer {i + 1}")
            items.append(parse_layer(item, i + 1, where, defaults=defaults))
        if _count(items) > MAX_LAYERS:
            raise BuildError(f"layer {i + 1} makes the model more than {MAX_LAYERS:,} layers",
                             location=config.where("model", "layers", i), hint="Check `repeat` and the depths.")
    return tuple(items)


def declared_input(config) -> tuple[tuple[int, ...], Location | None] | None:
    """model.input_shape (a channels-first Keras-1 shape converted), else the first layer's Keras-1
    `input_shape`, with where it was written; None: the dataset's shape is used."""
    if config.model.input_shape is not None:
        where = config.where("model", "input_shape")
        return keras1.channels_last(config.model.input_shape, where), where
    for item in config.items:
        if isinstance(item, LayerItem) and item.declared_input_shape is not None:
            return keras1.channels_last(item.declared_input_shape, item.location), item.location
    return None


def layer_defaults(config) -> dict[str, dict]:
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


def resolved_yaml(items: tuple[Item, ...]) -> list[dict[str, Any]]:
    """The items as plain data, for `--print-config --resolved`."""
    return [item.as_yaml() for item in items]


def _count(items: list[Item]) -> int:
    return sum(1 if isinstance(i, LayerItem) else len(i.pre) + len(i.layers) + len(i.after) + 1 for i in items)
