"""`cnnzoo export`: a trained model with its preprocessing built in, as .keras, SavedModel, TFLite or ONNX.

The exported model takes raw pixels, 0-255 (any float or integer values), of any rows and cols,
and applies the run's whole preprocessing itself with standard Keras layers: colour conversion (a
run on your own photos takes 3 channels, converted to the model's as training converted them), a
bilinear `Resizing` to the model's input size (as `tf.image.resize`; an identity at that size),
whole 0-255 values where training rounded them (`preprocessing.rounds_pixels`: a run on image files),
`Rescaling` and `Normalization`. So a deployment needs no cnnzoo and no knowledge of the training
statistics or input size: it gives `cnnzoo predict`'s probabilities for the same photo (float
rounding apart). TFLite and ONNX files also carry the model's input size, class names and rounding
as metadata (`runtimes.export_metadata`), so `cnnzoo predict` runs them without their run.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import numpy as np

from cnnzoo.config.schema import DataConfig
from cnnzoo.data.preprocessing import rounds_pixels, whole
from cnnzoo.deploy.runs import EXPORTED, class_names_of, load_trained, run_of
from cnnzoo.deploy.runtimes import METADATA, export_metadata
from cnnzoo.models.compile import outputs_logits
from cnnzoo.errors import CnnzooError

SUFFIXES = {"keras": ".keras", "savedmodel": "", "tflite": ".tflite", "onnx": ".onnx"}  # ("": a folder)
FORMATS = tuple(SUFFIXES)


def raw_channels(data: DataConfig, channels: int) -> int:
    """The channels the exported model takes: 3 for a run on image files (`data.path`: colour photos,
    converted as `data.color_mode` converted them in training), else the model's own."""
    return 3 if data.path is not None and channels in (1, 3) else channels


def with_preprocessing(model, data: DataConfig, logits: bool = False):
    """`model` behind the run's preprocessing, as one Functional model of plain Keras layers.

    Args:
        model: The trained model, taking preprocessed images of shape (rows, cols, channels).
        data: The run's data config: its preprocessing and whether it trained on image files.

    Returns:
        A model taking raw pixels 0-255 of shape (None, None, raw_channels) and returning `model`'s outputs.
    """
    import keras

    rows, cols, channels = model.input_shape[1:]
    inputs = keras.Input(shape=(None, None, raw_channels(data, channels)), name="pixels")
    x = _to_channels(inputs, channels)
    if rows is not None and cols is not None:
        # training=False on the node: Resizing's call defaults to training=True, and Keras passes a layer's
        # resolved `training` on to the layers after it, so the model's Dropout would stay on when the
        # export is called as model(x), served as a SavedModel or converted to TFLite (which then fails).
        x = keras.layers.Resizing(rows, cols, interpolation="bilinear", name="resize")(x, training=False)
    if rounds_pixels(data):  # as the kept pixels were: Keras ops, saved with the model (no custom layer)
        x = whole(x, keras.ops.floor, keras.ops.clip)
    prep = data.preprocessing
    x = keras.layers.Rescaling(1.0 / 255 if prep.rescale else 1.0, name="scale_to_unit")(x)
    if prep.mean is not None or prep.std is not None:
        mean = np.broadcast_to(np.asarray(prep.mean if prep.mean is not None else [0.0], "float32"), (channels,))
        std = np.broadcast_to(np.asarray(prep.std if prep.std is not None else [1.0], "float32"), (channels,))
        x = keras.layers.Normalization(mean=mean, variance=std**2, name="normalize")(x)
    outputs = model(x)
    if logits:  # trained on logits: the deployed model returns probabilities, as predict does
        outputs = keras.layers.Softmax(name="probabilities")(outputs)
    return keras.Model(inputs, outputs, name=f"{model.name}{EXPORTED}")


def _to_channels(x, channels: int):
    """RGB `x` as grayscale when the model takes one channel (the only conversion `raw_channels` asks for):
    `tf.image.rgb_to_grayscale`'s weighted sum as a frozen, bias-free 1x1 convolution (a plain Keras
    layer, so the export loads without cnnzoo)."""
    import keras

    from cnnzoo.data.preprocessing import GRAY_WEIGHTS

    if x.shape[-1] == channels:
        return x
    gray = keras.layers.Conv2D(1, 1, use_bias=False, trainable=False, name="to_grayscale")
    x = gray(x)
    gray.set_weights([np.asarray(GRAY_WEIGHTS, "float32").reshape(1, 1, 3, 1)])
    return x


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
    if fmt == "onnx":
        from cnnzoo.deploy.onnx_export import require_onnx, write_onnx

        require_onnx()  # before the model is loaded: a missing package is said at once
    config, model = load_trained(run_path, config_path)
    inference = with_preprocessing(in_float32(model), config.data, outputs_logits(config))
    run = Path(run_path) if Path(run_path).is_dir() else Path(run_path).parent
    target = Path(output) if output else run / "export" / f"{model.name}{'_int8' if quantize else ''}{SUFFIXES[fmt]}"
    _check_target(target, fmt)
    import tensorflow as tf

    metadata = export_metadata(model.input_shape[1:], class_names_of(run_path, config), rounds_pixels(config.data))
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        if fmt == "keras":
            inference.save(target)
        elif fmt == "savedmodel":
            inference.export(str(target), format="tf_saved_model", verbose=False)
        elif fmt == "onnx":
            write_onnx(inference, target, metadata, model.input_shape[1:3])
        else:
            target.write_bytes(_with_metadata(_tflite(inference, quantize), metadata))
    except (OSError, tf.errors.OpError) as exc:  # (TensorFlow's file system raises its own errors)
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc).splitlines()[0]
        raise CnnzooError(f"cannot write {target}: {reason}", hint="Give -o a path in a folder you can write to.") from None
    return target


def _check_target(target: Path, fmt: str) -> None:
    """Refuse an output path the format cannot be written to, or that is a run's own model, before the
    model is converted (an earlier export of the same format at that path is replaced)."""
    run = run_of(target)
    if run is not None:
        raise CnnzooError(f"-o {target}: that is the run's own folder; its models stay as they are",
                          hint=f"Leave -o out (the export goes to {run.path / 'export'}), or give another path.")
    if fmt == "savedmodel":
        if target.is_file() or (target.is_dir() and any(target.iterdir()) and not (target / "saved_model.pb").exists()):
            raise CnnzooError(f"-o {target}: a SavedModel is a folder of its own, and this is "
                              + ("a file" if target.is_file() else "a folder holding other files"),
                              hint="Give a new folder's name, e.g. -o exported_model.")
        return
    if target.is_dir():
        raise CnnzooError(f"-o {target} is a folder; --format {fmt} writes one file", hint=f"Give a file name in it, "
                          f"e.g. -o {target / ('model.' + fmt)}.")
    suffix = SUFFIXES[fmt]
    if target.suffix != suffix:  # also keeps a photo or a note of the same name from being overwritten
        raise CnnzooError(f"-o {target}: --format {fmt} writes a {suffix} file",
                          hint=f"Give e.g. -o {target.with_suffix(suffix)}.")


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


def _with_metadata(flatbuffer: bytes, metadata: str) -> bytes:
    """The TFLite model with `metadata` added as its `cnnzoo` metadata entry (read by `runtimes.LiteRtModel`)."""
    from tensorflow.lite.python import schema_py_generated as schema
    from tensorflow.lite.tools import flatbuffer_utils

    model = flatbuffer_utils.read_model_from_bytearray(bytearray(flatbuffer))
    buffer = schema.BufferT()
    buffer.data = np.frombuffer(metadata.encode(), np.uint8)
    model.buffers.append(buffer)
    entry = schema.MetadataT()
    entry.name, entry.buffer = METADATA, len(model.buffers) - 1
    model.metadata = [*(model.metadata or []), entry]
    return bytes(flatbuffer_utils.convert_object_to_bytearray(model))
