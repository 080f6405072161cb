"""One YAML layer item -> one Keras layer.

An item is a one-key mapping `LayerClass: args` (or a bare `LayerClass`):
args is a mapping of keyword arguments, a list of positional arguments (which
may end with a mapping of keyword arguments, like a Python call), or a single
scalar (the first positional argument): `Dense: 128`, `Dropout: 0.25`,
`Activation: relu`, `Conv2D: {filters: 32, kernel_size: 3}`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

from cnnzoo import registry
from cnnzoo.arguments import bind, construct, is_number, positional_names
from cnnzoo.errors import BuildError, Location
from cnnzoo.models import keras1


LAYER_EXAMPLE = "`- Flatten`, `- Dense: 128`, `- Conv2D: {filters: 32, kernel_size: 3}`"


@dataclass(frozen=True)
class LayerSpec:
    """A parsed, checked layer item: class, keyword arguments and where it was written."""

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

    def instantiate(self, dtype: str = "float32"):
        """Create the Keras layer in dtype policy `dtype` (unless the item names its own); Keras'
        own argument errors become BuildErrors."""
        kwargs = {"name": self.layer_name, "dtype": dtype, **self.kwargs}
        quoted = [k for k, v in self.kwargs.items() if isinstance(v, str) and is_number(v)]
        return construct(
            self.cls, kwargs, what=f"{self.label}: Keras rejected its arguments {self.kwargs}", location=self.location,
            hint=f"Write numbers without quotes ({', '.join(quoted)})." if quoted else None,
        )


def parse_layer(
    item: Any,
    index: int,
    where: Callable[..., Location | None],
    *,
    path: str | None = None,
    defaults: dict[str, dict[str, Any]] | None = None,
    context: str = "",
    prefix: str = "",
) -> LayerSpec:
    """Parse and check one layer item.

    Args:
        item: the YAML item.
        index: its 1-based position, as users count layers.
        where: `where(*subpath)` gives the location of the item or of a key inside it.
        path: its config path (default: `model.layers.<index - 1>`).
        defaults: `model.layer_defaults` by Keras class name, already checked.
        context, prefix: where a block's layer sits, for messages and layer names.
    """
    location = where()
    path = path or f"model.layers.{index - 1}"
    what = f"{context}layer {index}"
    name, args, kwargs = split_item(item, what=what, location=location, path=path, example=LAYER_EXAMPLE)
    written_name = name
    name, args, kwargs, input_shape = keras1.translate(name, args, kwargs, location)
    cls = registry.layers().get(name, location=location, path=path)
    import keras

    covered = set(positional_names(cls)[: len(args)])
    class_defaults = (defaults or {}).get(cls.__name__, {})
    kwargs = {**{k: v for k, v in class_defaults.items() if k not in covered}, **kwargs}
    bound = bind(
        cls, args, kwargs, what=f"{what} ({cls.__name__})", location=location, path=path,
        stop=keras.layers.Layer, locate=lambda key: where(written_name, key),
    )
    return LayerSpec(index, cls.__name__, cls, bound, location, input_shape, context, prefix)


def split_item(item: Any, *, what: str, location: Location | None, path: str, example: str) -> tuple[str, list, dict]:
    """`Name`, `{Name: scalar}`, `{Name: [args..., {kwargs}]}` or `{Name: {kwargs}}` -> (name, args, kwargs)."""
    if isinstance(item, str):
        return item, [], {}
    if isinstance(item, dict) and len(item) == 1:
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
        location=location,
        path=path,
        hint=f"Examples: {example}. A mapping with two keys usually means a missing `-` or wrong indentation.",
    )
