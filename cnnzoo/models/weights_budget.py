"""Refuse a model whose weights cannot fit in memory before any of them is allocated.

A typo such as `Dense: 1000000000` would otherwise make TensorFlow try to allocate terabytes
(an out-of-memory crash or minutes of swapping). Each layer is first called inside Keras'
`StatelessScope(initialize_variables=False)`, which creates its variables without memory;
their sizes are added up, and only then are they initialized. What needs only the shapes
(`validate`, `train --dry-run`, `inspect`) skips that last step: see `shapes_only`.
"""

from __future__ import annotations

import contextlib
import contextvars
from math import prod

from cnnzoo.errors import BuildError
from cnnzoo.memory import available_memory
from cnnzoo.config.items import LayerItem

MEMORY_SHARE = 0.5  # float32 weights alone may take half the memory (training needs 3-4x that)
_SHAPES_ONLY = contextvars.ContextVar("cnnzoo_shapes_only", default=False)


@contextlib.contextmanager
def shapes_only():
    """Models built inside get weights with shapes and no values, and are for reading only (shapes,
    parameter counts, a summary): `validate` throws the values away, and without drawing them
    ResNet-50 and DenseNet-121 build in about a third of the time, ResNet-152 in about half."""
    token = _SHAPES_ONLY.set(True)
    try:
        yield
    finally:
        _SHAPES_ONLY.reset(token)
        _forget_deferred_variables()


class WeightsBudget:
    """Counts parameters layer by layer against the machine's memory."""

    def __init__(self, memory_bytes: int | None = None):
        self.limit = int(MEMORY_SHARE * (memory_bytes or _physical_memory()) / 4)
        self.total = 0

    def call(self, layer, x, spec: LayerItem):
        """`layer(x)`, after checking that its weights fit."""
        import keras

        with keras.StatelessScope(initialize_variables=False):
            y = layer(x)
        count = sum(prod(w.shape) for w in layer.weights)
        self.total += count
        if self.total > self.limit:
            _forget_deferred_variables()
            raise BuildError(
                f"{spec.label} makes the model {self.total:,} parameters ({4 * self.total / 2**30:,.1f} GB of "
                f"float32 weights, and training needs 3-4x that); this machine's memory allows about "
                f"{self.limit:,}",
                location=spec.location, hint="Check the layer's sizes (units, filters, kernel_size) for a typo.",
            )
        if not _SHAPES_ONLY.get():
            with keras.StatelessScope():  # leaving it initializes the variables created above
                pass
        return y


def _forget_deferred_variables() -> None:
    """Drop the variables created without memory, so later models in this process build normally."""
    try:
        from keras.src.backend.common import global_state

        global_state.set_global_attribute("uninitialized_variables", [])
    except ImportError:  # a Keras that moved it: clear everything instead (also resets Keras' global settings)
        import keras

        keras.utils.clear_session()


def _physical_memory() -> int:
    """The memory this process may use (a container's limit, else the RAM); 16 GiB when unknown."""
    return available_memory() or 16 * 2**30
