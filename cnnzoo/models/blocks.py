"""Residual blocks and stages (`model.blocks`, `stage:` items) -> Keras layers.

One function per kind of graph piece, as in Keras' `applications/resnet.py`:
`apply_stage` repeats `apply_block`, which wires `pre` -> (`layers` + shortcut)
-> Add -> `after`; `shortcut` picks identity, option A or option B. Every layer
is a standard `keras.layers` class (option A is pooling + ZeroPadding3D between
two Reshapes, not a Lambda), so saved models load without cnnzoo.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from cnnzoo.config.schema import BlockConfig, Config
from cnnzoo.errors import BuildError, did_you_mean, keras_message
from cnnzoo.models import params, shapes
from cnnzoo.models.layer_factory import LayerSpec, parse_layer, split_item
from cnnzoo.models.weights_budget import WeightsBudget

SHORTCUTS = ("identity", "A", "B", "none")
STAGE_KEYS = ("block", "repeat", "name", "first", "last")


@dataclass
class Graph:
    """What building needs while walking the items: the config and every layer applied so far."""

    config: Config
    defaults: dict[str, dict[str, Any]]  # model.layer_defaults keyed by Keras class name
    policy: str = "float32"  # the dtype policy every layer gets, unless its item names its own
    applied: list[tuple[LayerSpec, tuple]] = field(default_factory=list)  # (layer, its input shape)
    budget: WeightsBudget = field(default_factory=WeightsBudget)

    def apply(self, spec: LayerSpec, x):
        """Create one layer and call it on `x`, with the lecture-level shape checks first."""
        layer = spec.instantiate(self.policy)
        shapes.check_window_fits(spec, layer, x.shape)
        self.applied.append((spec, tuple(x.shape)))
        try:
            return self.budget.call(layer, x, spec)
        except BuildError:
            raise
        except Exception as exc:  # Keras' complaints about a symbolic input (shape, dtype, a zero stride...)
            if type(exc).__module__.startswith("tensorflow"):
                raise  # a runtime failure (e.g. a lost worker under a strategy), not a model mistake
            raise BuildError(
                f"{spec.label} cannot take input of shape {shapes.fmt(x.shape)}: {keras_message(exc)}",
                location=spec.location,
                hint="Check the layers before it: e.g. Conv2D needs rows x cols x channels input, "
                "so it cannot follow Flatten or Dense.",
            ) from None


@dataclass(frozen=True)
class BlockUse:
    """One block instance: which block, with which parameters, named and located how."""

    name: str
    block: BlockConfig
    values: dict[str, Any]
    prefix: str  # layer-name prefix, e.g. "conv3_block2_"
    context: str  # for messages, e.g. "stage `conv3` block 2 (`basic`), "


def block_name_of(item: Any, config: Config) -> str | None:
    """The block an item uses (`- basic` or `- basic: {...}`), `stage` for a stage, else None."""
    name = item if isinstance(item, str) else next(iter(item)) if isinstance(item, dict) and len(item) == 1 else None
    return name if name == "stage" or name in config.model.blocks else None


def apply_stage(graph: Graph, item: dict, index: int, x):
    """`stage: {block, repeat, name, first, last, **params}`: the block `repeat` times."""
    config = graph.config
    where = lambda *sub: config.where("model", "layers", index - 1, "stage", *sub)  # noqa: E731
    args = item["stage"]
    if not isinstance(args, dict) or "block" not in args:
        raise BuildError(
            f"layer {index}: a stage needs a mapping with `block` and `repeat`, got {args!r}",
            location=where(), path=f"model.layers.{index - 1}.stage",
            hint="Example: `- stage: {block: basic, repeat: 3, filters: 32, first: {strides: 2}}`.",
        )
    scope = dict(config.model.params)
    args = params.substitute(args, scope, where(), f"layer {index} (stage)")
    name, block = _lookup_block(config, args["block"], where("block"), f"model.layers.{index - 1}.stage.block")
    repeat = args.get("repeat", 1)
    if not isinstance(repeat, int) or isinstance(repeat, bool) or repeat < 1:
        raise BuildError(f"layer {index}: stage `repeat` must be a positive whole number, got {repeat!r}",
                         location=where("repeat"), path=f"model.layers.{index - 1}.stage.repeat")
    stage_name = str(args.get("name", f"stage{index}"))
    shared = {k: v for k, v in args.items() if k not in STAGE_KEYS}
    ends = {key: args.get(key) or {} for key in ("first", "last")}
    for key, value in ends.items():
        if not isinstance(value, dict):
            raise BuildError(f"layer {index}: stage `{key}` must map parameters to values, got {value!r}",
                             location=where(key), hint=f"Example: `{key}: {{strides: 2}}`.")
    for k in range(1, repeat + 1):
        first, last = (ends["first"] if k == 1 else {}), (ends["last"] if k == repeat else {})
        values = {**shared, **first, **last}
        locate = lambda key, first=first, last=last: (  # noqa: E731
            where("last", key) if key in last else where("first", key) if key in first else where(key))
        use = BlockUse(name, block, _block_values(config, name, values, locate, index),
                       f"{stage_name}_block{k}_", f"stage `{stage_name}` block {k} (`{name}`), ")
        x = apply_block(graph, use, x)
    return x


def apply_block_item(graph: Graph, item: Any, index: int, x):
    """`- basic` or `- basic: {filters: 64}`: one block."""
    config = graph.config
    where = config.where("model", "layers", index - 1)
    name, args, kwargs = split_item(item, what=f"layer {index}", location=where, path=f"model.layers.{index - 1}",
                                    example="`- basic: {filters: 64, strides: 2}`")
    if args:
        raise BuildError(f"layer {index}: block `{name}` takes its parameters as a mapping, got {args!r}",
                         location=where, hint=f"Example: `- {name}: {{{', '.join(f'{p}: ...' for p in config.model.blocks[name].params)}}}`.")
    kwargs = params.substitute(kwargs, dict(config.model.params), where, f"layer {index} ({name})")
    block = config.model.blocks[name]
    use = BlockUse(name, block, _block_values(config, name, kwargs,
                                              lambda key: config.where("model", "layers", index - 1, name, key), index),
                   f"{name}{index}_", f"layer {index} (block `{name}`), ")
    return apply_block(graph, use, x)


def apply_block(graph: Graph, use: BlockUse, x):
    """pre -> split -> residual layers (+ shortcut) -> Add -> after."""
    import keras

    block_input = x
    x = _apply_list(graph, use, "pre", x, start=1)
    split = x
    x = _apply_list(graph, use, "layers", x, start=1 + len(use.block.pre))
    kind = params.substitute(use.block.shortcut, _scope(graph, use), _block_where(graph, use, "shortcut"),
                             f"{use.context}shortcut")
    if kind not in SHORTCUTS:
        raise BuildError(
            f"block `{use.name}`: unknown shortcut `{kind}`.{did_you_mean(str(kind), SHORTCUTS)}",
            location=_block_where(graph, use, "shortcut"), path=f"model.blocks.{use.name}.shortcut",
            hint="Choose identity, A (subsample + zero-pad channels), B (projection) or none (plain net).",
        )
    if kind != "none":
        shortcut = shortcut_branch(graph, use, kind, block_input, split, tuple(x.shape))
        x = keras.layers.Add(name=f"{use.prefix}add", dtype=graph.policy)([shortcut, x])
    return _apply_list(graph, use, "after", x, start=1 + len(use.block.pre) + len(use.block.layers))


def shortcut_branch(graph: Graph, use: BlockUse, kind: str, block_input, split, target: tuple):
    """The tensor added to F(x). Identity and subsampling take the block input; projections take `pre`'s output."""
    source = tuple(block_input.shape)
    if source == target:
        return block_input
    where = _block_where(graph, use, "shortcut")
    if kind == "identity" or len(source) != 4 or len(target) != 4:
        raise BuildError(
            f"{use.context}the identity shortcut cannot add input {shapes.fmt(source)} to the block's output "
            f"{shapes.fmt(target)}",
            location=where, path=f"model.blocks.{use.name}.shortcut",
            hint="Use `shortcut: A` (subsample + zero-pad channels) or `shortcut: B` (projection) for blocks "
            "that change the shape, or keep strides 1 and the filter count unchanged.",
        )
    strides = _strides(source, target, use, where)
    if kind == "B" and source[-1] != target[-1]:
        return _projection(graph, use, split, target[-1], strides)
    x = subsample(block_input, strides, use.prefix, graph.policy)
    if kind == "A" and source[-1] != target[-1]:
        x = zero_pad_channels(x, target[-1], use, where, graph.policy)
    return x


def subsample(x, strides: int, prefix: str, dtype: str):
    """Keep every `strides`-th pixel: a 1x1 max pool with that stride (no parameters)."""
    import keras

    if strides == 1:
        return x
    return keras.layers.MaxPooling2D(pool_size=1, strides=strides, name=f"{prefix}shortcut_subsample", dtype=dtype)(x)


def zero_pad_channels(x, channels: int, use: BlockUse, where, dtype: str):
    """Option A: add zero channels, half before and half after, with standard layers only."""
    import keras

    rows, cols, have = x.shape[1:]
    if channels < have:
        raise BuildError(f"{use.context}option A cannot shrink {have} channels to {channels}", location=where,
                         hint="Use `shortcut: B` (a projection) for blocks that reduce channels.")
    before = (channels - have) // 2
    x = keras.layers.Reshape((rows, cols, have, 1), name=f"{use.prefix}shortcut_to5d", dtype=dtype)(x)
    x = keras.layers.ZeroPadding3D(((0, 0), (0, 0), (before, channels - have - before)),
                                   name=f"{use.prefix}shortcut_pad", dtype=dtype)(x)
    return keras.layers.Reshape((rows, cols, channels), name=f"{use.prefix}shortcut_to4d", dtype=dtype)(x)


def _projection(graph: Graph, use: BlockUse, x, channels: int, strides: int):
    """Option B: the block's `projection` layers, by default a strided 1x1 Conv2D and BatchNormalization."""
    items = use.block.projection
    if items is None:
        items = [{"Conv2D": {"filters": channels, "kernel_size": 1, "strides": strides}}, "BatchNormalization"]
    for j, item in enumerate(items):
        spec = _parse(graph, use, "projection", j, item, number=j + 1, builtin=use.block.projection is None)
        x = graph.apply(spec, x)
    return x


def _apply_list(graph: Graph, use: BlockUse, part: str, x, *, start: int):
    for j, item in enumerate(getattr(use.block, part)):
        x = graph.apply(_parse(graph, use, part, j, item, number=start + j), x)
    return x


def _parse(graph: Graph, use: BlockUse, part: str, position: int, item: Any, *, number: int,
           builtin: bool = False) -> LayerSpec:
    """One layer of a block with `$params` filled in, numbered within the block (pre, layers, after)."""
    def where(*sub):
        if builtin:  # the default projection was not written anywhere: point at `shortcut: B`
            return _block_where(graph, use, "shortcut")
        return graph.config.where("model", "blocks", use.name, part, position, *sub)

    item = params.substitute(item, _scope(graph, use), where(), f"{use.context}{part} layer")
    is_shortcut = part == "projection"
    return parse_layer(
        item, number, where, path=f"model.blocks.{use.name}.{part}.{position}", defaults=graph.defaults,
        context=use.context + ("shortcut " if is_shortcut else ""),
        prefix=use.prefix + ("shortcut_" if is_shortcut else ""),
    )


def _scope(graph: Graph, use: BlockUse) -> dict[str, Any]:
    return {**graph.config.model.params, **use.values}


def _block_where(graph: Graph, use: BlockUse, key: str):
    return graph.config.where("model", "blocks", use.name, key)


def _lookup_block(config: Config, name: Any, where, path: str) -> tuple[str, BlockConfig]:
    if name not in config.model.blocks:
        known = list(config.model.blocks)
        raise BuildError(
            f"no block named `{name}` in model.blocks.{did_you_mean(str(name), known)}",
            location=where, path=path,
            hint=f"Defined blocks: {', '.join(known) or 'none'}. Define one under `model.blocks:`.",
        )
    return name, config.model.blocks[name]


def _block_values(config: Config, name: str, given: dict[str, Any], locate, index: int) -> dict[str, Any]:
    """The block's parameter values: its defaults, overridden by what the use gives (`locate(key)`: where)."""
    block = config.model.blocks[name]
    unknown = [k for k in given if k not in block.params]
    if unknown:
        raise BuildError(
            f"layer {index}: block `{name}` has no parameter `{unknown[0]}`.{did_you_mean(unknown[0], block.params)}",
            location=locate(unknown[0]),
            hint=f"Its parameters: {', '.join(block.params) or 'none'} (declare new ones in model.blocks.{name}.params).",
        )
    values = params.substitute({**block.params, **given}, config.model.params, locate(None), f"layer {index} ({name})")
    missing = [k for k, v in values.items() if v is None]
    if missing:
        raise BuildError(f"layer {index}: block `{name}` needs parameter `{missing[0]}`", location=locate(None),
                         hint=f"Give it where the block is used, e.g. `{missing[0]}: ...`.")
    return values


def _strides(source: tuple, target: tuple, use: BlockUse, where) -> int:
    strides = math.ceil(source[1] / target[1]) if target[1] else 0
    if strides < 1 or math.ceil(source[2] / target[2]) != strides:
        raise BuildError(
            f"{use.context}no shortcut can match input {shapes.fmt(source)} to output {shapes.fmt(target)}",
            location=where, hint="Residual layers must keep the size or divide it by their strides: use "
            "`padding: same` in the block's convolutions.",
        )
    return strides

