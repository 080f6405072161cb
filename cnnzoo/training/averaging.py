"""Weight averaging: the exponential moving average Keras optimizers keep with `use_ema: true`.

The optimizer updates the average of every trainable weight after each step. Training goes on with
the raw weights; what is measured and saved is the average: validation after each epoch, the
callbacks at each epoch's end (checkpoints/last.keras and best.keras, TensorBoard, pictures), the
final test, model.keras (and so `evaluate`, `predict` and `export`). The resume state keeps the raw
weights and the averages (optimizer variables), so a resumed run goes on as one never stopped.

Keras' `SwapEMAWeights` swaps by adding and subtracting, which changes the raw weights' last bits;
here the raw weights are copied aside and put back exactly. Keras' `fit` copies the averages into
the model when it ends; it ends after an epoch's end, when the averages are in the model already,
and `AveragedWeights.on_train_end` then puts the raw weights back for the next `fit` of the run (a
phase, or the epochs after the rest of an interrupted one).
"""

from __future__ import annotations

import contextlib

import keras

from cnnzoo.keras_internals import moving_averages


def averaging(model) -> bool:
    """Whether the model's optimizer keeps moving averages of its weights."""
    return bool(moving_averages(getattr(model, "optimizer", None)))


def put_averages(model) -> list | None:
    """Assign the averages to the model's weights; returns the raw values to put back (None: no averages)."""
    pairs = moving_averages(getattr(model, "optimizer", None))
    if not pairs:
        return None
    raw = [weight.numpy() for weight, _ in pairs]
    for weight, average in pairs:
        weight.assign(average)
    return raw


def put_back(model, raw: list | None) -> None:
    """The raw values `put_averages` returned, back in the model's weights."""
    if raw is None:
        return
    for (weight, _), value in zip(moving_averages(model.optimizer), raw):
        weight.assign(value)


@contextlib.contextmanager
def averaged(model):
    """The averaged weights in the model for the block, the raw ones again after it."""
    raw = put_averages(model)
    try:
        yield
    finally:
        put_back(model, raw)


class AveragedWeights(keras.callbacks.Callback):
    """The averages in the model from each epoch's end to the next epoch's start, and while validating.

    Placed after the resume state's save and before the checkpoints in the callback list: the
    resume state gets the raw weights, the checkpoints and everything after them the averages.
    """

    def __init__(self):
        super().__init__()
        self._raw: list | None = None

    def _in(self) -> None:
        if self._raw is None:
            self._raw = put_averages(self.model)

    def _out(self) -> None:
        raw, self._raw = self._raw, None
        put_back(self.model, raw)

    def on_test_begin(self, logs=None):
        self._in()

    def on_test_end(self, logs=None):
        self._out()

    def on_epoch_end(self, epoch, logs=None):
        self._in()

    def on_epoch_begin(self, epoch, logs=None):
        self._out()

    def on_train_end(self, logs=None):
        self._out()

    def close(self) -> None:
        """The raw weights back also when fit ends with an exception (Keras then skips on_train_end)."""
        self._out()
