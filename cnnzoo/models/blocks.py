"""Residual blocks -> Keras layers: `pre` -> (`layers` + shortcut) -> Add -> `after`.

One function per kind of graph piece, as in Keras' `applications/resnet.py`: `apply_block`
wires a block whose layers the config has already resolved (`cnnzoo.config.items.BlockItem`);
`shortcut_branch` picks identity, option A or option B by the shapes it meets. Every layer is
a standard `keras.layers` class (option A is pooling + ZeroPadding3D between two Reshapes,
not a Lambda), so saved models load without cnnzoo.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from cnnzoo.config.block_items import default_projection
from cnnzoo.config.items import BlockItem, LayerItem, construct_layer
from cnnzoo.errors import BuildError, keras_message
from cnnzoo.models import data_init, dirac, shapes
from cnnzoo.models.weights_budget import WeightsBudget


@dataclass
class Graph:
    """What building needs while walking the items: defaults, the dtype policy, every layer applied so far."""

    defaults: dict[str, dict[str, Any]]  # model.layer_defaults keyed by Keras class name (for default projections)
    policy: str = "float32"  # the dtype policy every layer gets, unless its item names its own
    applied: list[tuple[LayerItem, tuple]] = field(default_factory=list)  # (layer, its input shape)
    budget: WeightsBudget = field(default_factory=WeightsBudget)

    def apply(self, item: LayerItem, x):
        """Create one layer and call it on `x` (a list for a merge), with the lecture-level shape checks first."""
        item, initializer = data_init.split(item)  # computed from training images later, not by Keras
        item, rest = dirac.split(item)
        layer = construct_layer(item, self.policy)
        merge = isinstance(x, list)
        if not merge:
            shapes.check_window_fits(item, layer, x.shape)
        if initializer is not None:
            data_init.check(item, layer, tuple(x[0].shape if merge else x.shape), initializer)
        self.applied.append((item, tuple(x[0].shape if merge else x.shape)))
        try:
            y = self.budget.call(layer, x, item)
            dirac.restore(layer, rest)
            return y
        except BuildError:
            raise
        except Exception as exc:  # Keras' complaints about a symbolic input (shape, dtype, a zero stride...)
            if type(exc).__module__.startswith("tensorflow"):
                raise  # a runtime failure (e.g. a lost worker under a strategy), not a model mistake
            if merge:
                raise BuildError(
                    f"{item.label} cannot merge {' and '.join(shapes.fmt(t.shape) for t in x)}: {keras_message(exc)}",
                    location=item.location,
                    hint="Add, Multiply, Average and Maximum need equal shapes; Concatenate equal sizes except "
                    "on its axis. Check the strides, padding and filters of the branches it joins.",
                ) from None
            raise BuildError(
                f"{item.label} cannot take input of shape {shapes.fmt(x.shape)}: {keras_message(exc)}",
                location=item.location,
                hint="Check the layers before it: e.g. Conv2D needs rows x cols x channels input, "
                "so it cannot follow Flatten or Dense.",
            ) from None

    def apply_all(self, items, x, context: str = ""):
        """A block part's layers from `x`, branching and merging where they name `inputs`."""
        from cnnzoo.models.wiring import wire

        return wire(items, x, self.apply, context=context)


def apply_block(graph: Graph, block: BlockItem, x):
    """pre -> split -> residual layers (+ shortcut) -> Add -> after."""
    import keras

    block_input = x
    split = graph.apply_all(block.pre, x, block.context)
    x = graph.apply_all(block.layers, split, block.context)
    if block.shortcut != "none":
        shortcut = shortcut_branch(graph, block, block_input, split, tuple(x.shape))
        x = keras.layers.Add(name=f"{block.prefix}add", dtype=graph.policy)([shortcut, x])
    return graph.apply_all(block.after, x, block.context)


def shortcut_branch(graph: Graph, block: BlockItem, block_input, split, target: tuple):
    """The tensor added to F(x). Identity and subsampling take the block input; projections take `pre`'s output."""
    source = tuple(block_input.shape)
    if source == target:
        return block_input
    where = block.shortcut_location
    if block.shortcut == "identity" or len(source) != 4 or len(target) != 4:
        raise BuildError(
            f"{block.context}the identity shortcut cannot add input {shapes.fmt(source)} to the block's output "
            f"{shapes.fmt(target)}",
            location=where, path=f"model.blocks.{block.name}.shortcut",
            hint="Use `shortcut: A` (subsample + zero-pad channels) or `shortcut: B` (projection) for blocks "
            "that change the shape, or keep strides 1 and the filter count unchanged.",
        )
    strides = _strides(source, target, block)
    if block.shortcut == "B" and source[-1] != target[-1]:
        layers = block.projection or default_projection(block, target[-1], strides, graph.defaults)
        return graph.apply_all(layers, split)
    x = subsample(block_input, strides, block.prefix, graph.policy)
    if block.shortcut == "A" and source[-1] != target[-1]:
        x = zero_pad_channels(x, target[-1], block, graph.policy)
    return x


def subsample(x, strides: int, prefix: str, dtype: str):
    """Keep every `strides`-th pixel: a 1x1 max pool with that stride (no parameters)."""
    import keras

    if strides == 1:
        return x
    return keras.layers.MaxPooling2D(pool_size=1, strides=strides, name=f"{prefix}shortcut_subsample", dtype=dtype)(x)


def zero_pad_channels(x, channels: int, block: BlockItem, dtype: str):
    """Option A: add zero channels, half before and half after, with standard layers only."""
    import keras

    rows, cols, have = x.shape[1:]
    if channels < have:
        raise BuildError(f"{block.context}option A cannot shrink {have} channels to {channels}",
                         location=block.shortcut_location,
                         hint="Use `shortcut: B` (a projection) for blocks that reduce channels.")
    before = (channels - have) // 2
    x = keras.layers.Reshape((rows, cols, have, 1), name=f"{block.prefix}shortcut_to5d", dtype=dtype)(x)
    x = keras.layers.ZeroPadding3D(((0, 0), (0, 0), (before, channels - have - before)),
                                   name=f"{block.prefix}shortcut_pad", dtype=dtype)(x)
    return keras.layers.Reshape((rows, cols, channels), name=f"{block.prefix}shortcut_to4d", dtype=dtype)(x)


def _strides(source: tuple, target: tuple, block: BlockItem) -> int:
    strides = math.ceil(source[1] / target[1]) if target[1] else 0
    if strides < 1 or math.ceil(source[2] / target[2]) != strides:
        raise BuildError(
            f"{block.context}no shortcut can match input {shapes.fmt(source)} to output {shapes.fmt(target)}",
            location=block.shortcut_location, hint="Residual layers must keep the size or divide it by their "
            "strides: use `padding: same` in the block's convolutions.",
        )
    return strides
