"""Name -> class tables, with case-insensitive lookup and "did you mean" errors.

Tables are filled from Keras' own public modules (`keras.layers`,
`keras.optimizers`, ...), so every Keras class works by name with no code here.
"""

from __future__ import annotations

import inspect
import re
from typing import Any, Callable, Iterable

from cnnzoo.errors import BuildError, Location, did_you_mean


class Registry:
    """A table of named objects of one kind (e.g. "layer", "optimizer")."""

    def __init__(self, kind: str):
        self.kind = kind
        self._items: dict[str, Any] = {}
        self._folded: dict[str, str] = {}

    def register(self, name: str, obj: Any) -> Any:
        """Add `obj` under `name`; a second object under the same name is an error."""
        if name in self._items and self._items[name] is not obj:
            raise KeyError(f"{self.kind} {name!r} is already registered")
        self._items[name] = obj
        self._folded.setdefault(_fold(name), name)
        return obj

    def names(self) -> list[str]:
        return sorted(self._items)

    def get(self, name: str, *, location: Location | None = None, path: str | None = None) -> Any:
        """Look `name` up exactly, then ignoring case and underscores.

        Raises:
            BuildError: naming the unknown name and the closest known ones.
        """
        if name in self._items:
            return self._items[name]
        canonical = self._folded.get(_fold(name))
        if canonical is not None:
            return self._items[canonical]
        raise BuildError(
            f"unknown {self.kind} `{name}`.{did_you_mean(name, self._items)}",
            location=location,
            path=path,
            hint=f"Run `cnnzoo list {self.kind}s` to see them all." if self.kind in _LISTABLE else None,
        )


_LISTABLE = {"layer", "optimizer", "schedule", "callback"}


def snake_case(name: str) -> str:
    """`MaxPooling2D` -> `max_pooling2d`, `CategoricalCrossentropy` -> `categorical_crossentropy`, as Keras names them."""
    name = re.sub(r"(.)([A-Z][a-z]+)", r"\1_\2", name)
    return re.sub(r"([a-z])([A-Z])", r"\1_\2", name).lower()


def _fold(name: str) -> str:
    return name.replace("_", "").lower()


def registry_from_module(kind: str, module: Any, base: type, skip: Iterable[str] = ()) -> Registry:
    """A registry of every public subclass of `base` in `module`."""
    registry = Registry(kind)
    for name in dir(module):
        obj = getattr(module, name)
        if name.startswith("_") or name in skip:
            continue
        if inspect.isclass(obj) and issubclass(obj, base) and obj is not base:
            registry.register(name, obj)
    return registry


def cached(factory: Callable[[], Registry]) -> Callable[[], Registry]:
    """Build a registry on first use: Keras is imported only when needed."""
    holder: list[Registry] = []

    def get() -> Registry:
        if not holder:
            holder.append(factory())
        return holder[0]

    get.__doc__ = factory.__doc__
    return get


@cached
def layers() -> Registry:
    """Every class in `keras.layers`."""
    import keras

    return registry_from_module("layer", keras.layers, keras.layers.Layer, skip=("Layer", "InputLayer"))


@cached
def optimizers() -> Registry:
    """Every optimizer class in `keras.optimizers`."""
    import keras

    return registry_from_module(
        "optimizer", keras.optimizers, keras.optimizers.Optimizer, skip=("LossScaleOptimizer", "MultiOptimizer")
    )


@cached
def schedules() -> Registry:
    """Every learning-rate schedule in `keras.optimizers.schedules`."""
    import keras

    module = keras.optimizers.schedules
    return registry_from_module("schedule", module, module.LearningRateSchedule)


@cached
def losses() -> Registry:
    """Every loss class in `keras.losses` (`categorical_crossentropy` finds `CategoricalCrossentropy`)."""
    import keras

    return registry_from_module("loss", keras.losses, keras.losses.Loss, skip=("LossFunctionWrapper",))


@cached
def callbacks() -> Registry:
    """Every callback in `keras.callbacks` a config may add."""
    import keras

    return registry_from_module(
        "callback", keras.callbacks, keras.callbacks.Callback, skip=("CallbackList", "History", "ProgbarLogger", "LambdaCallback")
    )
