"""`cnnzoo export`: a trained model with its preprocessing built in, as .keras, SavedModel or TFLite.

The exported model takes raw pixels, 0-255 (any float or integer values), of the model's input
shape, and applies the run's preprocessing itself with standard Keras layers (`Rescaling`,
`Normalization`), so a deployment needs no cnnzoo and no knowledge of the training
statistics. Outputs are the class probabilities of the trained model.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

from cnnzoo.config.schema import DataConfig
from cnnzoo.deploy.runs import load_trained
from cnnzoo.errors import CnnzooError

FORMATS = ("keras", "savedmodel", "tflite")


def with_preprocessing(model, data: DataConfig):
    """`model` behind the run's preprocessing, as one Functional model of plain Keras layers."""
    import keras
    import numpy as np

    prep = data.preprocessing
    inputs = keras.Input(shape=model.input_shape[1:], name="pixels")
    x = keras.layers.Rescaling(1.0 / 255 if prep.rescale else 1.0, name="scale_to_unit")(inputs)
    if prep.mean is not None or prep.std is not None:
        channels = model.input_shape[-1]
        mean = np.broadcast_to(np.asarray(prep.mean if prep.mean is not None else [0.0], "float32"), (channels,))
        std = np.broadcast_to(np.asarray(prep.std if prep.std is not None else [1.0], "float32"), (channels,))
        x = keras.layers.Normalization(mean=mean, variance=std**2, name="normalize")(x)
    return keras.Model(inputs, model(x), name=f"{model.name}_with_preprocessing")


def in_float32(model):
    """The model computing in float32 throughout, with the same weights.

    A run may train under a mixed policy (`runtime.precision: auto` picks bfloat16 on some CPUs)
    for speed; deployments expect float32, and TFLite cannot convert bfloat16 layers.
    """
    import keras

    if all(layer.dtype_policy.name == "float32" for layer in model.layers):
        return model

    def float32_layer(layer):
        return layer.__class__.from_config({**layer.get_config(), "dtype": "float32"})

    clone = keras.models.clone_model(model, clone_function=float32_layer)
    clone.set_weights(model.get_weights())
    return clone


def export(run_path: str, fmt: str, output: str | None = None, quantize: bool = False,
           config_path: str | None = None) -> Path:
    """Write the export and return its path (default: inside the run directory, `export/`)."""
    if fmt not in FORMATS:
        raise CnnzooError(f"unknown export format `{fmt}`", hint=f"Choose one of: {', '.join(FORMATS)}.")
    if quantize and fmt != "tflite":
        raise CnnzooError("--quantize applies to --format tflite only")
    config, model = load_trained(run_path, config_path)
    inference = with_preprocessing(in_float32(model), config.data)
    run = Path(run_path) if Path(run_path).is_dir() else Path(run_path).parent
    suffix = {"keras": ".keras", "savedmodel": "", "tflite": "_int8.tflite" if quantize else ".tflite"}[fmt]
    target = Path(output) if output else run / "export" / f"{model.name}{suffix}"
    target.parent.mkdir(parents=True, exist_ok=True)
    if fmt == "keras":
        inference.save(target)
    elif fmt == "savedmodel":
        inference.export(str(target), format="tf_saved_model", verbose=False)
    else:
        target.write_bytes(_tflite(inference, quantize))
    return target


def _tflite(inference, quantize: bool) -> bytes:
    import tensorflow as tf

    folder = Path(tempfile.mkdtemp(prefix="cnnzoo-export-"))
    try:
        inference.export(str(folder / "saved_model"), format="tf_saved_model", verbose=False)
        converter = tf.lite.TFLiteConverter.from_saved_model(str(folder / "saved_model"))
        if quantize:  # dynamic-range quantisation: int8 weights, float activations; no calibration data needed
            converter.optimizations = [tf.lite.Optimize.DEFAULT]
        return converter.convert()
    finally:
        shutil.rmtree(folder, ignore_errors=True)
