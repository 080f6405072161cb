"""The one definition of a run's preprocessing: raw pixels (0-255) -> the model's input.

The training pipeline, the decoding of image folders, `cnnzoo predict` and `cnnzoo export`
(as Keras layers of the same operations) all follow these functions, so a photo of any size
and colour gives the prediction the run would.
"""

from __future__ import annotations

from cnnzoo.config.schema import DataConfig

# tf.image.rgb_to_grayscale's weights (ITU-R BT.601), also used by the exported model's layer
GRAY_WEIGHTS = (0.2989, 0.5870, 0.1140)


# Whole 0-255 values: x + ROUND_UP, floored (what training keeps, `predict` reads and an export computes).
# Not round-half-to-even: a bilinear resize often lands exactly on a half (a weight of 1/2 on two
# neighbours), and TFLite's and ONNX Runtime's resize put such a value a float's width either side of it,
# so an export rounded it to the other level. With the step 1/1000 below the half, the engines' float
# differences (~1e-5 here) rarely decide anything: a resize's exact values land on the step only when
# 1000 divides (2 x rows)(2 x cols) of its output (e.g. 25x10), on the half for every size.
ROUND_UP = 0.501


def whole(x, floor, clip):
    """`x` (0-255, float) as whole values 0-255, by `floor` and `clip` of the engine computing it
    (TensorFlow's in training and predict, keras.ops' in an export): the same definition in each."""
    return clip(floor(x + ROUND_UP), 0.0, 255.0)


def rounds_pixels(data: DataConfig) -> bool:
    """Whether the run's images were rounded to whole 0-255 values after their colour conversion and
    resize: a folder's are (decoded once and kept as uint8), a catalogue dataset's are resized in float
    by the pipeline. `predict` and the export round exactly when training did."""
    return data.path is not None


def to_channels(images, channels: int):
    """RGB -> grayscale or grayscale -> RGB, as TensorFlow converts; other counts are left as they are."""
    import tensorflow as tf

    have = images.shape[-1]
    if have == 3 and channels == 1:
        return tf.image.rgb_to_grayscale(images)
    if have == 1 and channels == 3:
        return tf.image.grayscale_to_rgb(images)
    return images


def resize(images, size):
    """Bilinear resize to `size` (rows, cols), as Keras' `Resizing` layer and `image_dataset_from_directory`
    do; a no-op for images already of that size."""
    import tensorflow as tf

    if size is None or tuple(images.shape[-3:-1]) == tuple(size):
        return images
    return tf.image.resize(images, size)


def preprocess_images(images, data: DataConfig):
    """Raw pixels (0-255, any numeric dtype) -> the model's input: resized, scaled to [0, 1] (unless
    `rescale: false`), normalised."""
    import tensorflow as tf

    prep = data.preprocessing
    images = tf.cast(images, tf.float32)
    if prep.rescale:
        images = images / 255.0
    images = resize(images, prep.resize)
    if prep.mean is not None:
        images = images - tf.constant(prep.mean, tf.float32)
    if prep.std is not None:
        images = images / tf.constant(prep.std, tf.float32)
    return images
