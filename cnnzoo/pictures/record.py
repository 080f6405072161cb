"""The confusion matrix and the most confidently wrong images, recorded during Keras' own
validation pass, so the pictures cost no second pass over the validation split.

`Recorder.update(x, y, y_pred)` runs inside the compiled validation step through
`Model.compute_metrics`, the hook Keras documents for metrics that need `x`; it keeps a (classes x classes) count and
the k wrong predictions with the highest confidence, with their images.
"""

from __future__ import annotations

import numpy as np


class Recorder:
    def __init__(self, classes: int, k: int, image_shape: tuple[int, ...], logits: bool = False):
        import keras

        self.logits = logits  # the model outputs logits: confidences are their softmax

        def variable(shape, value, dtype="float32"):
            return keras.Variable(np.full(shape, value, dtype), trainable=False, dtype=dtype)

        self.classes, self.k = classes, k
        self.active = False  # read when a step function is traced: only the validation step records
        self.matrix = variable((classes, classes), 0)
        self.confidence = variable((k,), -1)  # -1: an empty slot
        self.images = variable((k, *image_shape), 0)
        self.true = variable((k,), 0, "int32")
        self.predicted = variable((k,), 0, "int32")

    def reset(self) -> None:
        for variable, value in ((self.matrix, 0), (self.confidence, -1), (self.images, 0), (self.true, 0),
                                (self.predicted, 0)):
            variable.assign(np.full(variable.shape, value, variable.dtype))

    def update(self, x, y, y_pred) -> None:
        from keras import ops

        true = ops.argmax(y, -1) if len(y.shape) == 2 and y.shape[-1] == self.classes else ops.reshape(y, (-1,))
        true = ops.cast(true, "int32")
        predicted = ops.cast(ops.argmax(y_pred, -1), "int32")
        hits = ops.matmul(ops.transpose(ops.one_hot(true, self.classes)), ops.one_hot(predicted, self.classes))
        self.matrix.assign_add(ops.cast(hits, "float32"))
        if not self.k:
            return
        scores = ops.softmax(y_pred, axis=-1) if self.logits else y_pred
        confidence = ops.where(true != predicted, ops.cast(ops.max(scores, -1), "float32"), -1.0)
        merged = ops.concatenate([self.confidence, confidence])
        best, order = ops.top_k(merged, self.k)
        self.confidence.assign(best)
        self.images.assign(ops.take(ops.concatenate([self.images, ops.cast(x, "float32")]), order, axis=0))
        self.true.assign(ops.take(ops.concatenate([self.true, true]), order))
        self.predicted.assign(ops.take(ops.concatenate([self.predicted, predicted]), order))

    def read(self) -> tuple[np.ndarray, np.ndarray, list[tuple[float, int, int]]]:
        """(matrix, wrong images, [(confidence, true, predicted)]), the wrong ones most confident first."""
        keep = np.asarray(self.confidence) >= 0
        wrong = list(zip(np.asarray(self.confidence)[keep].tolist(), np.asarray(self.true)[keep].tolist(),
                         np.asarray(self.predicted)[keep].tolist()))
        return np.asarray(self.matrix).astype(np.int64), np.asarray(self.images)[keep], wrong


def recording(model, recorder: Recorder):
    """Wrap the model's `compute_metrics` so every step also updates `recorder`; returns the undo.

    Takes effect in step functions traced afterwards (Keras traces them at their first call)."""
    original = model.compute_metrics

    def compute_metrics(x, y, y_pred, sample_weight=None):
        if recorder.active:  # a Python test at trace time: the training step gets no recorder ops
            recorder.update(x, y, y_pred)
        return original(x, y, y_pred, sample_weight=sample_weight)

    model.compute_metrics = compute_metrics

    def undo():
        if model.__dict__.get("compute_metrics") is compute_metrics:
            del model.compute_metrics
        # The step functions traced meanwhile call the recorder: trace them again when next needed.
        model.train_function = model.test_function = None

    return undo
