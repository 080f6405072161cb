"""What `cnnzoo import SOURCE` reads: the Keras model a SOURCE names.

A `.keras` file, a Keras JSON architecture (`model.to_json()`), a Keras 2 `.h5` file,
`package.module:function` returning a model, or `keras.applications.NAME`, optionally with keyword
arguments: `keras.applications.MobileNetV2(include_top=False, pooling="avg")` is the network
without its classifier, whose input size is left open. keras.applications models get random
weights (`weights=None`) unless the arguments say otherwise: nothing is downloaded.
"""

from __future__ import annotations

import ast
import importlib
from pathlib import Path
from typing import Any

from cnnzoo.errors import CnnzooError

APPLICATIONS = "keras.applications."


def load_source(source: str):
    """The Keras model SOURCE names."""
    import keras

    if source.startswith(APPLICATIONS):
        name, kwargs = application_call(source)
        factory = getattr(keras.applications, name, None)
        if factory is None or not name[:1].isupper():
            raise CnnzooError(f"keras.applications has no `{name}`",
                              hint="List them with: python -c 'import keras; print(dir(keras.applications))'.")
        try:
            return factory(**{"weights": None, **kwargs})
        except (TypeError, ValueError) as exc:  # an argument the network does not take, or a size it refuses
            raise CnnzooError(f"{source}: Keras refuses it: {str(exc).splitlines()[0]}") from None
    if ":" in source and not Path(source).exists():
        module, _, function = source.partition(":")
        try:
            return getattr(importlib.import_module(module), function)()
        except (ImportError, AttributeError) as exc:
            raise CnnzooError(f"cannot call {source}: {exc}", hint="Write it as package.module:function.") from None
    path = Path(source)
    if not path.is_file():
        raise CnnzooError(f"{source} is neither a file nor keras.applications.NAME nor package.module:function")
    try:
        if path.suffix == ".json":
            return keras.models.model_from_json(path.read_text())
        return keras.models.load_model(path, compile=False)
    except Exception as exc:  # Keras raises many kinds for a file it cannot read
        raise CnnzooError(f"Keras cannot read {source}: {str(exc).splitlines()[0]}") from None


def application_call(source: str) -> tuple[str, dict[str, Any]]:
    """`keras.applications.NAME` or `keras.applications.NAME(key=value, ...)` -> (NAME, arguments).
    Values are Python literals (numbers, strings, tuples, None, True, False): nothing is run."""
    text = source[len(APPLICATIONS):].strip()
    if "(" not in text:
        return text, {}
    bad = CnnzooError(f"cannot read `{source}` as a keras.applications call",
                      hint='Write keyword arguments with literal values, e.g. '
                           '`keras.applications.MobileNetV2(include_top=False, pooling="avg")` (quoted for the shell).')
    try:
        call = ast.parse(text, mode="eval").body
        if not (isinstance(call, ast.Call) and isinstance(call.func, ast.Name)) or call.args:
            raise bad
        return call.func.id, {k.arg: ast.literal_eval(k.value) for k in call.keywords if k.arg}
    except (SyntaxError, ValueError):
        raise bad from None
