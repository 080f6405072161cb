"""Test-time augmentation (`train.test_time_augmentation`): each test image is also shown mirrored
and shifted, and the class probabilities of its views are averaged.

The views are every combination of the listed augmentations: `horizontal_flip` gives the image and
its mirror image; `{translate: N}` the image, and the image shifted N pixels down and right and N up
and left, the uncovered border filled with zeros (as the training augmentation `pad_crop` does).
A model trained on logits gets a softmax on each view's outputs before they are averaged.
"""

from __future__ import annotations

import itertools
from typing import Any

from cnnzoo.config.schema import Config


def view_settings(augmentations: list) -> list[tuple[bool, int]]:
    """(mirrored, shift in pixels down and right) of every view, the plain image first."""
    flips = [False, True] if "horizontal_flip" in augmentations else [False]
    shifts = [0]
    for item in augmentations:
        if isinstance(item, dict) and "translate" in item:
            shifts += [item["translate"], -item["translate"]]
    return list(itertools.product(flips, shifts))


def view(images, mirrored: bool, shift: int):
    """A batch of images (batch, rows, cols, channels), mirrored and/or shifted `shift` pixels down and right."""
    import tensorflow as tf

    if mirrored:
        images = tf.reverse(images, axis=[2])
    if shift:
        n = abs(shift)
        padded = tf.pad(images, [[0, 0], [n, n], [n, n], [0, 0]])
        start = n - shift  # a window starting above-left of the image moves its content down-right
        images = padded[:, start:start + tf.shape(images)[1], start:start + tf.shape(images)[2], :]
    return images


def averaged_probabilities(model, augmentations: list, logits: bool):
    """A function of a batch of images: the mean over the views of the model's class probabilities."""
    import tensorflow as tf

    settings = view_settings(augmentations)

    @tf.function(reduce_retracing=True)
    def predict(images):
        total = 0.0
        for mirrored, shift in settings:
            outputs = tf.cast(model(view(images, mirrored, shift), training=False), tf.float32)
            total += tf.nn.softmax(outputs) if logits else outputs
        return total / len(settings)

    return predict


def tta_accuracy(model, dataset, augmentations: list, logits: bool) -> dict[str, Any]:
    """{"accuracy_tta": top-1 accuracy of the averaged probabilities, "views": how many} over a batched
    split of (images, labels[, weights]); labels one-hot or class ids; examples of weight 0 (a padded
    last batch) do not count."""
    import numpy as np

    predict = averaged_probabilities(model, augmentations, logits)
    correct = total = 0.0
    for batch in dataset:
        images, labels = batch[0], np.asarray(batch[1])
        weights = np.asarray(batch[2], np.float64).reshape(-1) if len(batch) > 2 else np.ones(len(labels))
        classes = labels.argmax(-1) if labels.ndim > 1 and labels.shape[-1] > 1 else labels.reshape(-1)
        predicted = predict(images).numpy().argmax(-1)
        correct += float(np.sum(weights * (predicted == classes)))
        total += float(np.sum(weights))
    return {"accuracy_tta": correct / total if total else float("nan"), "views": len(view_settings(augmentations))}


def augmented_test(model, dataset, config: Config) -> tuple[dict[str, float], dict[str, Any]]:
    """With `train.test_time_augmentation`: ({"accuracy_tta": ...}, {"views": n, "augmentations": [...]}) for
    metrics.json; without: ({}, {})."""
    from cnnzoo.models.compile import outputs_logits

    augmentations = list(config.train.test_time_augmentation)
    if not augmentations:
        return {}, {}
    result = tta_accuracy(model, dataset, augmentations, outputs_logits(config))
    return {"accuracy_tta": result["accuracy_tta"]}, {"views": result["views"], "augmentations": augmentations}


def validation_views(config: Config, data) -> list:
    """With `train.validation_tta`: the callback adding `val_accuracy_tta` to each epoch's logs."""
    if not (config.train.validation_tta and config.train.test_time_augmentation and data.validation is not None):
        return []
    import keras

    from cnnzoo.models.compile import outputs_logits
    from cnnzoo.training.averaging import averaged

    augmentations, logits = list(config.train.test_time_augmentation), outputs_logits(config)

    class ValidationViews(keras.callbacks.Callback):
        """`val_accuracy_tta` at each epoch's end (with the averaged weights under `use_ema`, as validation)."""

        def on_epoch_end(self, epoch, logs=None):
            if logs is not None:
                with averaged(self.model):
                    logs["val_accuracy_tta"] = tta_accuracy(self.model, data.validation, augmentations,
                                                            logits)["accuracy_tta"]

    return [ValidationViews()]
