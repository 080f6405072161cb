"""What a model has learned, read from its ordinary Keras layers: first-layer filters, feature
maps of a few fixed images, the confusion matrix and the most confidently wrong images.

`Pictures` renders them as uint8 arrays, keyed by tag; the training callback writes them to
TensorBoard and `cnnzoo pictures` to PNG files, so both show the same pictures.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from cnnzoo.pictures import figures, grids

SIZE_LIMIT = 5_000_000  # `enabled: auto` draws pictures for models under this many parameters
SAMPLE_POOL = 256  # the fixed images are chosen among the first this many test images


def wanted(settings, params: int, strategy_kind: str, model=None) -> tuple[bool, str]:
    """Whether a run draws pictures, and why (for the plan's line); with the `model`, which layer Grad-CAM reads."""
    on, why = _wanted(settings, params, strategy_kind)
    if on and model is not None and settings.grad_cam:
        from cnnzoo.pictures.grad_cam import find_layer

        layer = find_layer(model, settings.grad_cam_layer)
        why += f"; Grad-CAM of `{layer.name}`" if layer is not None else "; no Grad-CAM (no layer with spatial output)"
    return on, why


def _wanted(settings, params: int, strategy_kind: str) -> tuple[bool, str]:
    if strategy_kind in ("multi_worker", "tpu"):
        return False, f"off under the {strategy_kind} strategy (they read the model outside the training step)"
    if settings.enabled is True:
        return True, "on (train.pictures.enabled: true)"
    if settings.enabled is False:
        return False, "off (train.pictures.enabled: false)"
    if params >= SIZE_LIMIT:
        return False, f"off: the model has {params:,} parameters (auto draws them under {SIZE_LIMIT:,}; " \
                      "`train.pictures: true` turns them on)"
    return True, "on (auto: a small model)"


def mapped_layers(model) -> list:
    """Convolution and pooling layers with a spatial (rank-4) output, in graph order."""
    return [layer for layer in model.layers
            if ("Conv" in type(layer).__name__ or "Pooling" in type(layer).__name__)
            and not type(layer).__name__.startswith("Global") and len(layer.output.shape) == 4]


def choose_images(batches, count: int, seed: int, read_all: bool = False) -> np.ndarray:
    """`count` images from the first SAMPLE_POOL of a batched (image, label) dataset, fixed by `seed`.

    `read_all` finishes the pass: a pipeline cached in memory is then kept (TF discards a cache
    read in part, with a warning), and the first evaluation reads it from memory.
    """
    return choose_examples(batches, count, seed, read_all)[0]


def choose_examples(batches, count: int, seed: int, read_all: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """`choose_images`, with the images' class numbers (from sparse or one-hot labels)."""
    pool, labels, seen = [], [], 0
    for images, classes in batches:
        if seen < SAMPLE_POOL:
            pool.append(np.asarray(images))
            classes = np.asarray(classes)
            labels.append(classes.argmax(-1) if classes.ndim == 2 else classes.reshape(-1))
            seen += len(pool[-1])
        elif not read_all:
            break
    pool, labels = np.concatenate(pool)[:SAMPLE_POOL], np.concatenate(labels)[:SAMPLE_POOL]
    picked = np.sort(np.random.default_rng(seed).choice(len(pool), size=min(count, len(pool)), replace=False))
    return pool[picked], labels[picked].astype(np.int64)


@dataclass
class Pictures:
    """Renders the pictures of `model` for fixed `images` and a batched validation dataset."""

    model: object
    images: np.ndarray
    class_names: list[str] | None
    channels: int = 16
    mistakes: int = 16
    logits: bool = False  # the model outputs logits (train.loss from_logits): confidences are their softmax
    labels: np.ndarray | None = None  # the fixed images' classes, for Grad-CAM of the true class
    grad_cam: bool = False
    grad_cam_layer: str | None = None  # None: the last layer with spatial output

    @classmethod
    def of_run(cls, model, settings, data, seed: int, logits: bool = False) -> "Pictures":
        """The pictures a run draws: `settings` is its `train.pictures`, `data` its `Datasets`."""
        images, labels = choose_examples(data.test, settings.images, seed, read_all=data.cache.cache)
        return cls(model, images, data.class_names, settings.channels, settings.mistakes, logits, labels,
                   settings.grad_cam, settings.grad_cam_layer)

    def __post_init__(self):
        import keras

        self.layers = mapped_layers(self.model)
        self.first_conv = next((layer for layer in self.layers if isinstance(layer, keras.layers.Conv2D)), None)
        # One input tensor, not a list: a direct call with an array then matches its structure.
        self._maps = keras.Model(self.model.inputs[0], [layer.output for layer in self.layers]) if self.layers else None
        self.cam = None
        if self.grad_cam:
            from cnnzoo.pictures.grad_cam import GradCam, find_layer

            layer = find_layer(self.model, self.grad_cam_layer)
            self.cam = GradCam(self.model, layer.name) if layer is not None else None

    def skipped(self) -> str | None:
        """What cannot be drawn for this model, said once by the caller."""
        if not self.layers:
            return "the model has no convolution or pooling layer: no filters, feature maps or Grad-CAM are drawn"
        if self.grad_cam and self.cam is None:
            return "the model has no layer with spatial output: no Grad-CAM is drawn"
        return None

    def render(self, validation=None, recorded=None) -> dict[str, tuple[np.ndarray, str]]:
        """tag -> (picture, description) for every picture that applies.

        The confusion matrix and mistakes come from `recorded` (a `Recorder.read()` of Keras' own
        validation pass) when given, else from predicting the batched `validation` dataset.
        """
        out = {}
        if self.first_conv is not None:
            kernel = self.first_conv.get_weights()[0]
            out[f"filters/{self.first_conv.name}"] = (
                grids.filter_grid(kernel),
                f"The {kernel.shape[3]} kernels of `{self.first_conv.name}`, the first convolution; each scaled "
                "to its own range (dark: most negative, light: most positive).")
        if self._maps is not None:
            outputs = self._maps(self.images, training=False)  # a direct call: all images under any strategy
            outputs = outputs if isinstance(outputs, (list, tuple)) else [outputs]
            for index, (layer, maps) in enumerate(zip(self.layers, outputs)):
                maps = np.asarray(maps, dtype=np.float32)
                out[f"feature_maps/{index + 1:02d}_{layer.name}"] = (
                    grids.feature_map_grid(self.images, maps, self.channels),
                    f"`{layer.name}` ({type(layer).__name__}, {maps.shape[1]}x{maps.shape[2]}x{maps.shape[3]}): "
                    f"each row is one test image, then its first {min(self.channels, maps.shape[3])} maps, "
                    "each scaled to its own range.")
        if recorded is None and validation is not None:
            recorded = self.predicted(validation)
        if recorded is not None:
            out.update(self.judged(*recorded))
        if self.cam is not None:
            out["grad_cam"] = self.grad_cam_picture(recorded)
        return out

    def predicted(self, validation) -> tuple[np.ndarray, np.ndarray, list[tuple[float, int, int]]]:
        """What `Recorder.read()` gives, by predicting a batched (image, label) dataset with the same recorder."""
        from cnnzoo.pictures.record import Recorder

        recorder = Recorder(int(self.model.output.shape[-1]), self.mistakes, tuple(self.model.input_shape[1:]),
                            self.logits)
        for images, labels in validation:
            recorder.update(images, labels, self.model(images, training=False))
        return recorder.read()

    def judged(self, matrix: np.ndarray, images: np.ndarray, wrong: list[tuple[float, int, int]]):
        """The confusion matrix and mistakes pictures."""
        names = self.class_names or [str(i) for i in range(len(matrix))]
        accuracy = np.trace(matrix) / max(1, matrix.sum())
        captions = [f"{names[t]} → {names[p]} ({conf:.2f})" for conf, t, p in wrong]
        return {
            "confusion_matrix": (
                figures.confusion_picture(matrix, names, f"{matrix.sum():,} validation images, accuracy {accuracy:.2%}"),
                "Rows: the true class; columns: the predicted one. Counts, shaded by their share of the row."),
            "mistakes": (
                figures.mistakes_picture(images, captions),
                f"The {len(wrong)} validation images the model got wrong with the highest confidence: "
                "`true → predicted (probability)`."),
        }

    def grad_cam_picture(self, recorded=None) -> tuple[np.ndarray, str]:
        """Grad-CAM of the fixed test images and the recorded mistakes, for the true and the predicted class."""
        from cnnzoo.scores import softmax

        images, true = self.images, self.labels if self.labels is not None else np.zeros(len(self.images), np.int64)
        predicted = self.cam.scores(images).argmax(-1)
        if recorded is not None and len(recorded[2]):
            images = np.concatenate([images, recorded[1]])
            true = np.concatenate([true, [t for _, t, _ in recorded[2]]])
            predicted = np.concatenate([predicted, [p for _, _, p in recorded[2]]])
        names = self.class_names or [str(i) for i in range(int(self.model.output.shape[-1]))]
        both, scores = self.cam.heat(np.concatenate([images, images]), np.concatenate([true, predicted]))
        confidence = softmax(scores[len(images):]).max(-1)
        captions = [["test image" if i < len(self.images) else "mistake", f"true\n{names[t]}",
                     f"predicted\n{names[p]} ({c:.2f})"] for i, (t, p, c) in enumerate(zip(true, predicted, confidence))]
        return (figures.grad_cam_picture(images, [both[:len(images)], both[len(images):]], captions),
                f"Grad-CAM of `{self.cam.layer_name}`: where the model found the evidence for the true class "
                f"(middle) and the predicted one (right), red hottest; the {len(self.images)} fixed test images, "
                "then the most confidently wrong validation images.")


def own_images_grad_cam(cam, images: np.ndarray, names: list[str] | None) -> np.ndarray:
    """Grad-CAM of a user's own (preprocessed) images, whose true class is unknown: the two most likely classes."""
    from cnnzoo.scores import softmax

    probabilities = softmax(cam.scores(images))
    first, second = probabilities.argsort(-1)[:, ::-1][:, :2].T if probabilities.shape[1] > 1 else [
        probabilities.argmax(-1)] * 2
    heats, _ = cam.heat(np.concatenate([images, images]), np.concatenate([first, second]))
    names = names or [str(i) for i in range(probabilities.shape[1])]
    captions = [["your image", f"predicted\n{names[a]} ({probabilities[i, a]:.2f})",
                 f"second\n{names[b]} ({probabilities[i, b]:.2f})"] for i, (a, b) in enumerate(zip(first, second))]
    return figures.grad_cam_picture(images, [heats[:len(images)], heats[len(images):]], captions)
