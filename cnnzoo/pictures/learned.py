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


def wanted(settings, params: int, strategy_kind: str) -> tuple[bool, str]:
    """Whether a run draws pictures, and why (for the plan's line)."""
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
    pool, seen = [], 0
    for images, _ in batches:
        if seen < SAMPLE_POOL:
            pool.append(np.asarray(images))
            seen += len(pool[-1])
        elif not read_all:
            break
    pool = np.concatenate(pool)[:SAMPLE_POOL]
    picked = np.sort(np.random.default_rng(seed).choice(len(pool), size=min(count, len(pool)), replace=False))
    return pool[picked]


@dataclass
class Pictures:
    """Renders the pictures of `model` for fixed `images` and a batched validation dataset."""

    model: object
    images: np.ndarray
    class_names: list[str] | None
    channels: int = 16
    mistakes: int = 16
    logits: bool = False  # the model outputs logits (train.loss from_logits): confidences are their softmax

    @classmethod
    def of_run(cls, model, settings, data, seed: int, logits: bool = False) -> "Pictures":
        """The pictures a run draws: `settings` is its `train.pictures`, `data` its `Datasets`."""
        images = choose_images(data.test, settings.images, seed, read_all=data.cache.cache)
        return cls(model, images, data.class_names, settings.channels, settings.mistakes, logits)

    def __post_init__(self):
        import keras

        self.layers = mapped_layers(self.model)
        self.first_conv = next((layer for layer in self.layers if isinstance(layer, keras.layers.Conv2D)), None)
        # One input tensor, not a list: a direct call with an array then matches its structure.
        self._maps = keras.Model(self.model.inputs[0], [layer.output for layer in self.layers]) if self.layers else None

    def skipped(self) -> str | None:
        """What cannot be drawn for this model, said once by the caller."""
        if not self.layers:
            return "the model has no convolution or pooling layer: no filters or feature maps are drawn"
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
