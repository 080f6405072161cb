"""`model.layers` as typed items: every `$param`, `${...}`, stage and block use resolved at load time.

A YAML item becomes a `LayerItem` (a Keras layer class, its keyword arguments, where it was
written) or a `BlockItem` (one use of a block of `model.blocks`, its layers resolved with the
use's parameters). So every mistake in an item (an unknown class or argument, a missing block
parameter, a bad expression or name) is found by `load_config`, with its line, and `cnnzoo train
--print-config --resolved` can show the layers a model is built from. What needs shapes (a
window larger than its input, a shortcut that does not fit) or Keras' own check of a value is
found when the model is built (`cnnzoo validate` does both).

Item forms: `- Flatten`, `- Dense: 128`, `- Conv2D: [32, 3, {padding: same}]`,
`- Conv2D: {filters: 32, kernel_size: 3}`, `- basic: {filters: 64}` (a block),
`- stage: {block: basic, repeat: 3, filters: 16, first: {strides: 2}}`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Union

from cnnzoo import registry
from cnnzoo.arguments import bind, construct, is_number, positional_names
from cnnzoo.config import expressions, keras1
from cnnzoo.errors import BuildError, Location, did_you_mean

LAYER_EXAMPLE = "`- Flatten`, `- Dense: 128`, `- Conv2D: {filters: 32, kernel_size: 3}`"
SHORTCUTS = ("identity", "A", "B", "none")
STAGE_KEYS = ("block", "repeat", "name", "first", "last")
MAX_LAYERS = 20_000  # ResNet-1202 has about 4,000


@dataclass(frozen=True)
class LayerItem:
    """One Keras layer: class, checked keyword arguments, and where it was written."""

    index: int  # 1-based position in its list (model.layers or a block's), as users count
    class_name: str
    cls: type
    kwargs: dict[str, Any]
    location: Location | None
    declared_input_shape: tuple[int, ...] | None = field(default=None)
    context: str = ""  # where a block layer sits, e.g. "stage `conv3` block 2, "
    prefix: str = ""  # layer-name prefix inside blocks, e.g. "conv3_block2_"

    @property
    def label(self) -> str:
        return f"{self.context}layer {self.index} ({self.class_name})"

    @property
    def layer_name(self) -> str:
        return f"{self.prefix}{registry.snake_case(self.class_name)}_{self.index}"

    def as_yaml(self) -> dict[str, Any]:
        return {self.class_name: _plain(self.kwargs)}


@dataclass(frozen=True)
class BlockItem:
    """One use of a block: `pre` -> (`layers` + shortcut) -> Add -> `after`, with its parameters filled in."""

    name: str  # the block's name in model.blocks
    prefix: str  # layer-name prefix, e.g. "stage2_block1_"
    context: str  # for messages, e.g. "stage `stage2` block 1 (`basic`), "
    pre: tuple[LayerItem, ...]
    layers: tuple[LayerItem, ...]
    after: tuple[LayerItem, ...]
    shortcut: str  # identity | A | B | none
    projection: tuple[LayerItem, ...] | None  # None: the default 1x1 Conv2D + BatchNormalization, sized at build
    shortcut_location: Location | None

    def as_yaml(self) -> dict[str, Any]:
        parts = {"pre": self.pre, "layers": self.layers, "after": self.after, "projection": self.projection or ()}
        return {"block": {"name": self.prefix.rstrip("_"), "uses": self.name, "shortcut": self.shortcut,
                          **{k: [i.as_yaml() for i in v] for k, v in parts.items() if v}}}


Item = Union[LayerItem, BlockItem]


def resolve_items(config, defaults: dict[str, dict]) -> tuple[Item, ...]:
    """The typed items of `model.layers`, in order; `defaults` is `layer_defaults(config)`.

    Raises:
        BuildError: the first mistake, at the line of the item (or block layer) it is in.
    """
    items: list[Item] = []
    for i, item in enumerate(config.model.layers):
        kind = block_name_of(item, config)
        if kind == "stage":
            items += _stage(config, defaults, item, i + 1)
        elif kind is not None:
            items.append(_block_use(config, defaults, item, i + 1))
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


def parse_layer(item: Any, index: int, where: Callable[..., Location | None], *, path: str | None = None,
                defaults: dict[str, dict[str, Any]] | None = None, context: str = "", prefix: str = "") -> LayerItem:
    """Parse and check one layer item: its class and its arguments against the class's signature.

    `where(*subpath)` gives the location of the item or of a key inside it.
    """
    import keras

    location = where()
    path = path or f"model.layers.{index - 1}"
    what = f"{context}layer {index}"
    name, args, kwargs = split_item(item, what=what, location=location, path=path, example=LAYER_EXAMPLE)
    written_name = name
    name, args, kwargs, input_shape = keras1.translate(name, args, kwargs, location)
    cls = registry.layers().get(name, location=location, path=path)
    covered = set(positional_names(cls)[: len(args)])
    class_defaults = (defaults or {}).get(cls.__name__, {})
    kwargs = {**{k: v for k, v in class_defaults.items() if k not in covered}, **kwargs}
    bound = bind(cls, args, kwargs, what=f"{what} ({cls.__name__})", location=location, path=path,
                 stop=keras.layers.Layer, locate=lambda key: where(written_name, key))
    # Keras' own checks of the values (e.g. a Dropout rate of 1.5) run when the layer is made, in
    # `build_model`: making one here could start TensorFlow's runtime, which a multi-worker strategy
    # must configure first.
    return LayerItem(index, cls.__name__, cls, bound, location, input_shape, context, prefix)


def construct_layer(item: LayerItem, dtype: str | None = None):
    """The Keras layer of an item (in dtype policy `dtype` unless the item names one); Keras' argument errors
    become BuildErrors."""
    kwargs = {"name": item.layer_name, **({"dtype": dtype} if dtype else {}), **item.kwargs}
    quoted = [k for k, v in item.kwargs.items() if isinstance(v, str) and is_number(v)]
    return construct(item.cls, kwargs, what=f"{item.label}: Keras rejected its arguments {item.kwargs}",
                     location=item.location, hint=f"Write numbers without quotes ({', '.join(quoted)})." if quoted else None)


def split_item(item: Any, *, what: str, location: Location | None, path: str, example: str) -> tuple[str, list, dict]:
    """`Name`, `{Name: scalar}`, `{Name: [args..., {kwargs}]}` or `{Name: {kwargs}}` -> (name, args, kwargs)."""
    if isinstance(item, str):
        return item, [], {}
    if isinstance(item, dict) and len(item) == 1 and isinstance(next(iter(item)), str):
        (name, args), = item.items()
        if args is None:
            return name, [], {}
        if isinstance(args, dict):
            return name, [], args
        if isinstance(args, list):
            if args and isinstance(args[-1], dict):  # `[32, 3, 3, {padding: valid}]`, like a Python call
                return name, list(args[:-1]), dict(args[-1])
            return name, list(args), {}
        return name, [args], {}
    raise BuildError(
        f"{what} must be a class name or a one-key mapping `Name: args`, got {item!r}",
        location=location, path=path,
        hint=f"Examples: {example}. A mapping with two keys usually means a missing `-` or wrong indentation.",
    )


def block_name_of(item: Any, config) -> str | None:
    """The block an item uses (`- basic` or `- basic: {...}`), `stage` for a stage, else None."""
    name = item if isinstance(item, str) else next(iter(item)) if isinstance(item, dict) and len(item) == 1 else None
    return name if name == "stage" or name in config.model.blocks else None


def _stage(config, defaults, item: dict, index: int) -> list[BlockItem]:
    """`stage: {block, repeat, name, first, last, **params}`: the block `repeat` times."""
    where = lambda *sub: config.where("model", "layers", index - 1, "stage", *sub)  # noqa: E731
    args = item["stage"]
    if not isinstance(args, dict) or "block" not in args:
        raise BuildError(
            f"layer {index}: a stage needs a mapping with `block` and `repeat`, got {args!r}",
            location=where(), path=f"model.layers.{index - 1}.stage",
            hint="Example: `- stage: {block: basic, repeat: 3, filters: 32, first: {strides: 2}}`.",
        )
    args = expressions.substitute(args, dict(config.model.params), where(), f"layer {index} (stage)")
    name = _lookup_block(config, args["block"], where("block"), f"model.layers.{index - 1}.stage.block")
    repeat = args.get("repeat", 1)
    if not isinstance(repeat, int) or isinstance(repeat, bool) or not 1 <= repeat <= MAX_LAYERS:
        raise BuildError(f"layer {index}: stage `repeat` must be a whole number from 1 to {MAX_LAYERS:,}, "
                         f"got {repeat!r}", location=where("repeat"), path=f"model.layers.{index - 1}.stage.repeat")
    stage_name = str(args.get("name", f"stage{index}"))
    shared = {k: v for k, v in args.items() if k not in STAGE_KEYS}
    ends = {key: args.get(key) or {} for key in ("first", "last")}
    for key, value in ends.items():
        if not isinstance(value, dict):
            raise BuildError(f"layer {index}: stage `{key}` must map parameters to values, got {value!r}",
                             location=where(key), hint=f"Example: `{key}: {{strides: 2}}`.")
    uses = []
    for k in range(1, repeat + 1):
        first, last = (ends["first"] if k == 1 else {}), (ends["last"] if k == repeat else {})
        locate = lambda key, first=first, last=last: (  # noqa: E731
            where("last", key) if key in last else where("first", key) if key in first else where(key))
        values = _block_values(config, name, {**shared, **first, **last}, locate, index)
        uses.append(_block(config, defaults, name, values, f"{stage_name}_block{k}_",
                           f"stage `{stage_name}` block {k} (`{name}`), "))
    return uses


def _block_use(config, defaults, item: Any, index: int) -> BlockItem:
    """`- basic` or `- basic: {filters: 64}`: one block."""
    where = config.where("model", "layers", index - 1)
    name, args, kwargs = split_item(item, what=f"layer {index}", location=where, path=f"model.layers.{index - 1}",
                                    example="`- basic: {filters: 64, strides: 2}`")
    if args:
        raise BuildError(f"layer {index}: block `{name}` takes its parameters as a mapping, got {args!r}",
                         location=where, hint=f"Example: `- {name}: "
                         f"{{{', '.join(f'{p}: ...' for p in config.model.blocks[name].params)}}}`.")
    kwargs = expressions.substitute(kwargs, dict(config.model.params), where, f"layer {index} ({name})")
    values = _block_values(config, name, kwargs, lambda key: config.where("model", "layers", index - 1, name, key),
                           index)
    return _block(config, defaults, name, values, f"{name}{index}_", f"layer {index} (block `{name}`), ")


def _block(config, defaults, name: str, values: dict[str, Any], prefix: str, context: str) -> BlockItem:
    block = config.model.blocks[name]
    scope = {**config.model.params, **values}
    shortcut_at = config.where("model", "blocks", name, "shortcut")
    kind = expressions.substitute(block.shortcut, scope, shortcut_at, f"{context}shortcut")
    if kind not in SHORTCUTS:
        raise BuildError(
            f"block `{name}`: unknown shortcut `{kind}`.{did_you_mean(str(kind), SHORTCUTS)}",
            location=shortcut_at, path=f"model.blocks.{name}.shortcut",
            hint="Choose identity, A (subsample + zero-pad channels), B (projection) or none (plain net).",
        )
    def part(key: str, first: int, shortcut: bool = False) -> tuple[LayerItem, ...]:
        """The layers of `pre`, `layers`, `after` (numbered on from `first`, as users count) or `projection`."""
        parsed = []
        for position, item in enumerate(getattr(block, key) or ()):
            where = lambda *sub, position=position: config.where("model", "blocks", name, key, position, *sub)  # noqa: E731
            item = expressions.substitute(item, scope, where(), f"{context}{key} layer")
            parsed.append(parse_layer(item, first + position, where, path=f"model.blocks.{name}.{key}.{position}",
                                      defaults=defaults, context=context + ("shortcut " if shortcut else ""),
                                      prefix=prefix + ("shortcut_" if shortcut else "")))
        return tuple(parsed)

    pre = part("pre", 1)
    layers = part("layers", 1 + len(pre))
    after = part("after", 1 + len(pre) + len(layers))
    projection = part("projection", 1, shortcut=True) if block.projection is not None else None
    return BlockItem(name, prefix, context, pre, layers, after, kind, projection, shortcut_at)


def _lookup_block(config, name: Any, where, path: str) -> str:
    if name not in config.model.blocks:
        known = list(config.model.blocks)
        raise BuildError(
            f"no block named `{name}` in model.blocks.{did_you_mean(str(name), known)}",
            location=where, path=path,
            hint=f"Defined blocks: {', '.join(known) or 'none'}. Define one under `model.blocks:`.",
        )
    return name


def _block_values(config, name: str, given: dict[str, Any], locate, index: int) -> dict[str, Any]:
    """The block's parameter values: its defaults, overridden by what the use gives (`locate(key)`: where)."""
    block = config.model.blocks[name]
    unknown = [k for k in given if k not in block.params]
    if unknown:
        raise BuildError(
            f"layer {index}: block `{name}` has no parameter `{unknown[0]}`.{did_you_mean(unknown[0], block.params)}",
            location=locate(unknown[0]),
            hint=f"Its parameters: {', '.join(block.params) or 'none'} (declare new ones in model.blocks.{name}.params).",
        )
    values = expressions.substitute({**block.params, **given}, config.model.params, locate(None),
                                    f"layer {index} ({name})")
    missing = [k for k, v in values.items() if v is None]
    if missing:
        raise BuildError(f"layer {index}: block `{name}` needs parameter `{missing[0]}`", location=locate(None),
                         hint=f"Give it where the block is used, e.g. `{missing[0]}: ...`.")
    return values


def default_projection(block: BlockItem, channels: int, strides: int, defaults: dict[str, dict]) -> tuple[LayerItem, ...]:
    """Shortcut B's default layers, sized by the shapes the block meets: a strided 1x1 Conv2D and BatchNormalization."""
    items = [{"Conv2D": {"filters": channels, "kernel_size": 1, "strides": strides}}, "BatchNormalization"]
    return tuple(parse_layer(item, j + 1, lambda *sub: block.shortcut_location, path=f"model.blocks.{block.name}.shortcut",
                             defaults=defaults, context=block.context + "shortcut ", prefix=block.prefix + "shortcut_")
                 for j, item in enumerate(items))


def resolved_yaml(items: tuple[Item, ...]) -> list[dict[str, Any]]:
    """The items as plain data, for `--print-config --resolved`."""
    return [item.as_yaml() for item in items]


def _count(items: list[Item]) -> int:
    return sum(1 if isinstance(i, LayerItem) else len(i.pre) + len(i.layers) + len(i.after) + 1 for i in items)


def _plain(value: Any) -> Any:
    if isinstance(value, tuple):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    return value

