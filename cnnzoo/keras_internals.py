"""The Keras internals cnnzoo reads, in one place, each turned into a clear error when a Keras
version no longer has it (instead of an AttributeError deep in a run).

Public Keras has no API for a layer's inbound connections (inspect, import), for variables
created without memory (the weights budget), or for its multi-worker reduction (keras_fixes).
They are tested with the Keras of `constraints.txt`; `pyproject.toml` allows that minor version.
"""

from __future__ import annotations

import importlib

from cnnzoo.errors import CnnzooError

TESTED_KERAS = "3.15"


class KerasChanged(CnnzooError):
    """An installed Keras without an internal that cnnzoo reads."""


def changed(what: str, exc: BaseException | None = None) -> KerasChanged:
    import keras

    detail = f" ({type(exc).__name__}: {exc})" if exc is not None else ""
    return KerasChanged(
        f"this cnnzoo reads Keras' internal `{what}`, which the installed Keras {keras.__version__} does not "
        f"have{detail}; cnnzoo is tested with Keras {TESTED_KERAS}",
        hint="Install the tested versions: `pip install -e . -c constraints.txt` in the cnnzoo checkout.",
    )


def module(name: str):
    """`keras.src.<name>`."""
    try:
        return importlib.import_module(f"keras.src.{name}")
    except ImportError as exc:
        raise changed(f"keras.src.{name}", exc) from None


def inbound_layers(layer) -> list:
    """The layers whose outputs feed `layer`'s first call ([] for an InputLayer)."""
    try:
        nodes = layer._inbound_nodes
        return [t._keras_history.operation for t in nodes[0].input_tensors] if nodes else []
    except (AttributeError, IndexError, TypeError) as exc:
        raise changed("Layer._inbound_nodes[0].input_tensors[i]._keras_history", exc) from None


def input_shape(layer) -> tuple:
    """A layer's (first) input shape, batch axis left out."""
    try:
        return tuple(layer._inbound_nodes[0].input_tensors[0].shape[1:])
    except (AttributeError, IndexError, TypeError) as exc:
        raise changed("Layer._inbound_nodes[0].input_tensors", exc) from None


def call_count(layer) -> int:
    """How many times a layer is called in its model (shared weights: more than once)."""
    try:
        return len(layer._inbound_nodes)
    except (AttributeError, TypeError) as exc:
        raise changed("Layer._inbound_nodes", exc) from None


def moving_averages(optimizer) -> list[tuple]:
    """(weight, its moving average) for each weight an optimizer built with `use_ema=True` averages; []
    without `use_ema` or before the optimizer is built. A LossScaleOptimizer's are its inner optimizer's."""
    optimizer = getattr(optimizer, "inner_optimizer", optimizer)
    if optimizer is None or not getattr(optimizer, "use_ema", False) or not getattr(optimizer, "built", False):
        return []
    try:
        pairs = zip(optimizer._trainable_variables, optimizer._model_variables_moving_average)
        return [(weight, average) for weight, average in pairs if average is not None]
    except (AttributeError, TypeError) as exc:
        raise changed("Optimizer._trainable_variables / _model_variables_moving_average", exc) from None


def optimizer_weights(optimizer) -> tuple[list, object]:
    """(the weights an optimizer was built with, the function giving the key it files a weight under): the
    variable its per-weight step receives is the backend's, not the Keras weight (`Optimizer._var_key`)."""
    try:
        return list(optimizer._trainable_variables), optimizer._var_key
    except (AttributeError, TypeError) as exc:
        raise changed("Optimizer._trainable_variables / _var_key", exc) from None
