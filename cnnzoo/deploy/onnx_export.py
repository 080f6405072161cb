"""`cnnzoo export --format onnx`: the model with its preprocessing (`export.with_preprocessing`) as ONNX.

Converted with tf2onnx's `from_keras`, which freezes the constants the graph captures (the
`Normalization` layer's mean and variance) into the ONNX graph. Keras' own `model.export(format="onnx")`
calls tf2onnx's `from_function` instead, which leaves those constants as extra required inputs
next to `pixels` (measured with Keras 3.15 and tf2onnx 1.17: docs/deploy.md). The written model is
run once by ONNX Runtime against Keras before it is kept, as the conversion does not fail on an
operation it cannot translate.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from cnnzoo.deploy.runtimes import METADATA, ONNX_PACKAGES, require
from cnnzoo.errors import CnnzooError

TOLERANCE = 1e-4  # largest difference in a probability between ONNX Runtime and Keras on the check's pixels


def require_onnx() -> None:
    """Raises CnnzooError, naming the extra to install, when a package the ONNX export needs is missing."""
    require(ONNX_PACKAGES, "onnx", "--format onnx")


def write_onnx(inference, target: Path, metadata: str, size: tuple[int | None, int | None]) -> float:
    """Convert `inference` (raw pixels in, probabilities out) to ONNX at `target`, checked with ONNX Runtime.

    Args:
        inference: `export.with_preprocessing`'s model.
        target: The `.onnx` file to write.
        metadata: `runtimes.export_metadata`'s JSON, kept in the file's metadata as `cnnzoo`.
        size: The (rows, cols) of the trained model's input (None where it takes any).

    Returns:
        The largest difference between ONNX Runtime's and Keras' probabilities on random pixels at the
        model's input size and at another size.

    Raises:
        CnnzooError: the conversion does not reproduce the model (nothing is left at `target`).
    """
    import onnx
    import onnxruntime
    import tensorflow as tf
    import tf2onnx

    channels = inference.input_shape[-1]
    spec = (tf.TensorSpec((None, None, None, channels), tf.float32, name="pixels"),)
    proto, _ = tf2onnx.convert.from_keras(inference, input_signature=spec)
    onnx.helper.set_model_props(proto, {METADATA: metadata})
    session = onnxruntime.InferenceSession(proto.SerializeToString(), providers=["CPUExecutionProvider"])
    difference = max(_difference(session, inference, pixels) for pixels in _probes(size, inference.input_shape[-1]))
    if not difference <= TOLERANCE:
        raise CnnzooError(f"the ONNX conversion does not reproduce this model: its probabilities differ from Keras' "
                          f"by up to {difference:.2g}", hint="Export it as --format savedmodel or tflite instead.")
    partial = target.with_name(target.name + ".partial")
    onnx.save(proto, str(partial))
    os.replace(partial, target)  # a file at `target` is always a whole, checked model
    return difference


def _probes(size: tuple[int | None, int | None], channels: int) -> list[np.ndarray]:
    """Random pixels 0-255: two images at the model's input size (the resize an identity), one at another."""
    rows, cols = (d or 32 for d in size)
    rng = np.random.default_rng(0)
    return [rng.uniform(0, 255, shape).astype("float32")
            for shape in ((2, rows, cols, channels), (1, rows + 7, cols + 3, channels))]


def _difference(session, inference, pixels: np.ndarray) -> float:
    ours = np.asarray(inference(pixels, training=False))
    theirs = session.run(None, {session.get_inputs()[0].name: pixels})[0]
    return float(np.abs(ours - theirs).max())
