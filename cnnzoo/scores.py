"""A model's class scores as probabilities: the one NumPy softmax that predict, the pictures and the
per-class metrics apply to models trained on logits (`from_logits: true`)."""

from __future__ import annotations

import numpy as np


def softmax(scores: np.ndarray) -> np.ndarray:
    """Probabilities over the last axis, shifted by the maximum first so no exponent overflows."""
    shifted = np.exp(scores - scores.max(axis=-1, keepdims=True))
    return shifted / shifted.sum(axis=-1, keepdims=True)
