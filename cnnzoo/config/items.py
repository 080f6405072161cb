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

import re
from dataclasses import dataclass, field
from typing import Any, Callable, Union

from cnnzoo import registry
from cnnzoo.arguments import bind, construct, is_number, positional_names
from cnnzoo.config import keras1
from cnnzoo.errors import BuildError, Location

LAYER_EXAMPLE = "`- Flatten`, `- Dense: 128`, `- Conv2D: {filters: 32, kernel_size: 3}`"
SHORTCUTS = ("identity", "A", "B", "none")
MAX_LAYERS = 20_000  # ResNet-1202 has about 4,000
GRAPH_KEYS = ("name", "inputs")  # beside an item's class key: what its output is called, what it takes
NAME = re.compile(r"[A-Za-z_]\w*")


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
    ref: str | None = None  # `name:` the item's output is known by, for later `inputs`
    inputs: tuple[str, ...] | None = None  # `inputs:` the outputs it takes (None: the item before it)

    @property
    def label(self) -> str:
        return f"{self.context}layer {self.index} ({self.class_name}{f' `{self.ref}`' if self.ref else ''})"

    @property
    def layer_name(self) -> str:
        return f"{self.prefix}{self.ref or f'{registry.snake_case(self.class_name)}_{self.index}'}"

    def as_yaml(self) -> dict[str, Any]:
        graph = {**({"name": self.ref} if self.ref else {}), **({"inputs": list(self.inputs)} if self.inputs else {})}
        return {self.class_name: _plain(self.kwargs), **graph}


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
    ref: str | None = None  # a stage's last block: the stage's `name`, which later `inputs` may list

    @property
    def label(self) -> str:
        return self.context.rstrip(", ")

    @property
    def location(self) -> Location | None:
        first = (self.pre or self.layers or (None,))[0]
        return first.location if first is not None else self.shortcut_location

    def as_yaml(self) -> dict[str, Any]:
        parts = {"pre": self.pre, "layers": self.layers, "after": self.after, "projection": self.projection or ()}
        return {"block": {"name": self.prefix.rstrip("_"), "uses": self.name, "shortcut": self.shortcut,
                          **{k: [i.as_yaml() for i in v] for k, v in parts.items() if v}}}


Item = Union[LayerItem, BlockItem]


def parse_layer(item: Any, index: int, where: Callable[..., Location | None], *, path: str | None = None,
                defaults: dict[str, dict[str, Any]] | None = None, context: str = "", prefix: str = "") -> LayerItem:
    """Parse and check one layer item: its class and its arguments against the class's signature.

    `where(*subpath)` gives the location of the item or of a key inside it.
    """
    import keras

    location = where()
    path = path or f"model.layers.{index - 1}"
    what = f"{context}layer {index}"
    item, ref, inputs = graph_keys(item, what, where, path)
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
    return LayerItem(index, cls.__name__, cls, bound, location, input_shape, context, prefix, ref, inputs)


def graph_keys(item: Any, what: str, where, path: str) -> tuple[Any, str | None, tuple[str, ...] | None]:
    """`{Conv2D: [...], name: b1, inputs: [stem]}` -> (`{Conv2D: [...]}`, "b1", ("stem",)).

    `name` and `inputs` sit beside the class key, so the common one-line item stays as it was.
    """
    if not (isinstance(item, dict) and len(item) > 1 and set(item) & set(GRAPH_KEYS)):
        return item, None, None
    rest = {k: v for k, v in item.items() if k not in GRAPH_KEYS}
    ref, inputs = item.get("name"), item.get("inputs")
    if ref is not None and not (isinstance(ref, str) and NAME.fullmatch(ref)):
        raise BuildError(f"{what}: `name` must be a word of letters, digits and _ (e.g. `branch1`), got {ref!r}",
                         location=where("name"), path=f"{path}.name")
    if isinstance(inputs, str):
        inputs = [inputs]
    if inputs is not None and not (isinstance(inputs, list) and inputs and all(isinstance(i, str) for i in inputs)):
        raise BuildError(f"{what}: `inputs` must be a name or a list of names of earlier items, got {inputs!r}",
                         location=where("inputs"), path=f"{path}.inputs",
                         hint="Example: `inputs: [branch1, branch2]`; `input` is the model's (or the block's) input.")
    return rest, ref, tuple(inputs) if inputs is not None else None


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
    if isinstance(item, dict) and len(item) > 1:
        item = {k: v for k, v in item.items() if k not in GRAPH_KEYS}
    name = item if isinstance(item, str) else next(iter(item)) if isinstance(item, dict) and len(item) == 1 else None
    return name if name == "stage" or name in config.model.blocks else None


def _plain(value: Any) -> Any:
    if isinstance(value, tuple):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    return value

