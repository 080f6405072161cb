"""The models `cnnzoo predict` runs: a run's Keras model, or an export of it run by ONNX Runtime or LiteRT.

Each gives class probabilities for raw pixels 0-255 of one shape, `shape` (rows, cols, channels):
the Keras model after the run's own preprocessing (`preprocess_images`), an export as it is (its
preprocessing is inside). An export carries what `predict` needs to read images for it (the
model's input size and the class names) as metadata named `cnnzoo` (`export_metadata`), so it is
predicted without its run or config.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from cnnzoo.errors import CnnzooError
from cnnzoo.scores import softmax

METADATA = "cnnzoo"  # the name of the metadata entry of an .onnx or .tflite export: JSON, `export_metadata`
ONNX_PACKAGES = ("tf2onnx", "onnx", "onnxruntime")
EXPORTS = (".onnx", ".tflite")


def export_metadata(input_shape: tuple[int, ...], class_names: list[str] | None, rounded: bool) -> str:
    """The JSON an export carries: the trained model's input (rows, cols, channels), the class names, and
    whether resized pixels are rounded (`preprocessing.rounds_pixels`: predict reads images for it so)."""
    return json.dumps({"input_shape": [None if d is None else int(d) for d in input_shape],
                       "class_names": class_names, "rounded": rounded})


def require(packages: tuple[str, ...], extra: str, why: str) -> None:
    """Import `packages`, or say which are missing and how to install them (an optional extra of cnnzoo).

    Raises:
        CnnzooError: one of them cannot be imported.
    """
    import importlib

    missing = []
    for name in packages:
        try:
            importlib.import_module(name)
        except ImportError:
            missing.append(name)
    if missing:
        raise CnnzooError(f"{why} needs {', '.join(missing)}, not installed here",
                          hint=f"Install it with: pip install 'cnnzoo[{extra}]'.")


class KerasModel:
    """A run's model (a run directory, or a `.keras` file in a run or with `config_path`), with the run's preprocessing."""

    def __init__(self, model_path: str, config_path: str | None = None):
        from cnnzoo.data.preprocessing import rounds_pixels
        from cnnzoo.deploy.runs import class_names_of, load_trained
        from cnnzoo.models.compile import outputs_logits

        self.config, self.model = load_trained(model_path, config_path)
        self.shape = tuple(self.model.input_shape[1:])
        self.classes = int(self.model.output_shape[-1])
        self.names = class_names_of(model_path, self.config)
        self.logits = outputs_logits(self.config)
        self.rounded = rounds_pixels(self.config.data)

    def probabilities(self, pixels: np.ndarray) -> np.ndarray:
        from cnnzoo.data.preprocessing import preprocess_images

        scores = self.model.predict(preprocess_images(pixels, self.config.data), verbose=0)
        return softmax(scores) if self.logits else scores


class OnnxModel:
    """An `.onnx` export run by ONNX Runtime."""

    def __init__(self, path: Path):
        require(("onnxruntime",), "onnx", "predicting with an .onnx file")
        import onnxruntime

        try:
            self.session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        except Exception as exc:  # onnxruntime raises its own exception types for unreadable files
            raise CnnzooError(f"cannot load {path}: {str(exc).splitlines()[0]}") from None
        self.input = self.session.get_inputs()[0]
        meta = self.session.get_modelmeta().custom_metadata_map.get(METADATA)
        self.shape, self.names, self.rounded = _described(path, meta, self.input.shape[-1])
        self.classes = int(self.session.get_outputs()[0].shape[-1])

    def probabilities(self, pixels: np.ndarray) -> np.ndarray:
        return self.session.run(None, {self.input.name: _as_input(pixels, self.input.shape[-1])})[0]


class LiteRtModel:
    """A `.tflite` export run by LiteRT's interpreter (`ai-edge-litert`), TensorFlow's successor to `tf.lite.Interpreter`."""

    def __init__(self, path: Path):
        require(("ai_edge_litert",), "litert", "predicting with a .tflite file")
        from ai_edge_litert.interpreter import Interpreter

        content = path.read_bytes()
        try:
            self.runner = Interpreter(model_content=content).get_signature_runner()
        except (ValueError, RuntimeError) as exc:
            raise CnnzooError(f"cannot load {path}: {str(exc).splitlines()[0]}") from None
        (self.input, details), = self.runner.get_input_details().items()
        self.channels = int(details["shape_signature"][-1])  # the export's input's
        self.shape, self.names, self.rounded = _described(path, _tflite_metadata(content), self.channels)
        self.classes = int(next(iter(self.runner.get_output_details().values()))["shape_signature"][-1])

    def probabilities(self, pixels: np.ndarray) -> np.ndarray:
        return next(iter(self.runner(**{self.input: _as_input(pixels, self.channels)}).values()))


def open_model(model_path: str, config_path: str | None = None):
    """The model at `model_path`: an `.onnx` or `.tflite` export, else a run (directory or `.keras` file)."""
    path = Path(model_path)
    suffix = path.suffix.lower()
    if suffix in EXPORTS and not path.is_file():
        raise CnnzooError(f"no such file: {path}", hint=f"Write it with `cnnzoo export RUN --format {suffix[1:]}`.")
    if suffix not in EXPORTS:
        return KerasModel(model_path, config_path)
    if config_path:
        raise CnnzooError(f"--config goes with a .keras file; {path.name} is an export, which carries its "
                          "preprocessing, input size and class names", hint="Leave --config out.")
    return OnnxModel(path) if suffix == ".onnx" else LiteRtModel(path)


def _as_input(pixels: np.ndarray, channels: int) -> np.ndarray:
    """Pixels read at the model's channels as the export's input: a grayscale model's export takes RGB
    photos, and gray given as RGB converts back to the same whole values (the weights sum to 0.9999)."""
    pixels = np.asarray(pixels, "float32")
    return np.repeat(pixels, 3, axis=-1) if pixels.shape[-1] == 1 and channels == 3 else pixels


def _described(path: Path, meta: str | None, channels) -> tuple[tuple[int, ...], list[str] | None, bool]:
    """(shape images are read at, class names, rounded) from an export's metadata and its input's channels.
    Images are read at the trained model's channels when the metadata has them (a grayscale model's export
    takes RGB photos: read as gray, they are converted and resized as training did). An export written
    before `rounded` was recorded: rounded, as predict then read every image."""
    try:
        described = json.loads(meta)
        rows, cols, trained = described["input_shape"]
        channels = trained if "rounded" in described and trained in (1, 3) else channels
        names = described.get("class_names")
        rounded = bool(described.get("rounded", True))
    except (TypeError, ValueError, KeyError):
        raise CnnzooError(f"{path} has no cnnzoo metadata: the input size its images are read at is unknown",
                          hint="Predict with the run it was exported from, or export it again with `cnnzoo export`.")
    return (rows, cols, int(channels)), names, rounded


def _tflite_metadata(content: bytes) -> str | None:
    """The `cnnzoo` metadata entry of a TFLite flatbuffer, read with LiteRT's own schema."""
    from ai_edge_litert import schema_py_generated as schema

    model = schema.Model.GetRootAs(content, 0)
    for i in range(model.MetadataLength()):
        entry = model.Metadata(i)
        if entry.Name() == METADATA.encode():
            return model.Buffers(entry.Buffer()).DataAsNumpy().tobytes().decode()
    return None


