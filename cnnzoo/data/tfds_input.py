"""`data` config -> prepared TFDS dataset -> batched `tf.data` pipelines.

Any TFDS dataset with (image, label) supervised keys works by name; preparing it
(download, or offline from a manual_dir) is `cnnzoo.data.prepare`'s job.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

from cnnzoo.config.schema import Config, DataConfig
from cnnzoo.data.prepare import MANUAL_DIR_ENV, prepare
from cnnzoo.errors import CnnzooError, DataError, Location, did_you_mean


@dataclass(frozen=True)
class Datasets:
    """Batched pipelines plus what the model needs to know about the data."""

    train: Any
    validation: Any | None
    test: Any
    image_shape: tuple[int, ...]
    num_classes: int
    train_examples: int


def load_datasets(config: Config, *, one_hot: bool, manual_dir: str | None = None,
                  static_shapes: bool = False) -> Datasets:
    """Prepare the configured TFDS dataset (offline from manual_dir if given) and build pipelines.

    `static_shapes` drops each split's last partial batch (TPUs compile for one batch shape).
    """
    data = config.data
    builder, image_shape, num_classes = dataset_signature(config)
    builder = prepare(builder, data, manual_dir or data.manual_dir or os.environ.get(MANUAL_DIR_ENV), config)
    preprocess = _preprocess_fn(data, num_classes, one_hot)

    def pipeline(key: str, training: bool):
        split = _split(builder, getattr(data, key), config, key, shuffle=training)
        return _pipeline(split, preprocess, data, training=training, drop_remainder=static_shapes,
                         augment=_augment_fn(data, image_shape) if training else None)

    train = pipeline("train_split", training=True)
    if config.train.steps_per_epoch is not None:
        train = train.repeat()  # epochs of N steps walk on through the data instead of running dry
    test = pipeline("test_split", training=False)
    validation = None
    if data.validation_split == data.test_split:
        validation = test  # the usual MNIST set-up: one pipeline, one cache
    elif data.validation_split is not None:
        validation = pipeline("validation_split", training=False)
    return Datasets(
        train=train,
        validation=validation,
        test=test,
        image_shape=image_shape,
        num_classes=num_classes,
        train_examples=_count(builder, data.train_split),
    )


def dataset_signature(config: Config) -> tuple[Any, tuple[int, ...], int]:
    """(builder, image shape, number of classes) from TFDS metadata: no download needed.

    Also checks the config's preprocessing against the image channels.
    """
    builder = get_builder(config.data, config.where("data", "name"))
    features = builder.info.features
    image_shape = tuple(features["image"].shape)
    if config.data.preprocessing.resize:
        image_shape = (*config.data.preprocessing.resize, image_shape[-1])
    channels = image_shape[-1]
    for key in ("mean", "std"):
        values = getattr(config.data.preprocessing, key)
        if values is not None and len(values) not in (1, channels):
            raise DataError(
                f"{len(values)} values for {len(values)} channels, but `{config.data.name}` images have {channels}",
                location=config.where("data", "preprocessing", key),
                path=f"data.preprocessing.{key}",
                hint=f"Give one value per channel ({channels}), or one for all.",
            )
    return builder, image_shape, features["label"].num_classes


def class_names(config: Config) -> list[str] | None:
    """The dataset's class names from TFDS metadata (None when unknown or merely numbered)."""
    try:
        names = get_builder(config.data, None).info.features["label"].names
    except CnnzooError:  # names are a nicety: never fail a prediction for them
        return None
    return None if names == [str(i) for i in range(len(names))] else list(names)


def get_builder(data: DataConfig, where: Location | None):
    """The TFDS builder for `data.name`; unknown names get suggestions."""
    import tensorflow_datasets as tfds

    import cnnzoo.data.sample_dataset  # noqa: F401  (registers mnist_sample)

    try:
        builder = tfds.builder(data.name, data_dir=data.data_dir)
    except (ValueError, AssertionError):  # DatasetNotFoundError is a ValueError; odd names raise others
        names = tfds.list_builders(with_community_datasets=False)
        raise DataError(
            f"TFDS has no dataset `{data.name}`.{did_you_mean(data.name, names)}",
            location=where,
            path="data.name",
            hint="See https://www.tensorflow.org/datasets/catalog for names; `mnist_sample` ships with cnnzoo.",
        ) from None
    features = builder.info.features
    if not {"image", "label"} <= set(getattr(features, "keys", lambda: [])()):
        raise DataError(
            f"dataset `{data.name}` has no `image` and `label` features; cnnzoo trains image classifiers",
            location=where,
            path="data.name",
        )
    return builder


def _split(builder, split: str, config: Config, key: str, *, shuffle: bool):
    try:
        return builder.as_dataset(split=split, as_supervised=True, shuffle_files=shuffle)
    except (ValueError, KeyError) as exc:
        available = ", ".join(builder.info.splits.keys())
        raise DataError(
            f"dataset `{builder.name}` has no split `{split}` ({str(exc).strip().splitlines()[0]})",
            location=config.where("data", key),
            path=f"data.{key}",
            hint=f"Its splits: {available}. Slices such as `train[:10%]` also work.",
        ) from None


def _count(builder, split: str) -> int:
    try:
        return builder.info.splits[split].num_examples  # TFDS resolves slices like train[:10%] too
    except (KeyError, ValueError):
        return 0


def preprocess_images(images, data: DataConfig):
    """Raw pixels (0-255, any numeric dtype) -> the model's input: resized, scaled to [0, 1], normalised.

    The one definition of preprocessing: the training pipeline, `cnnzoo predict` and
    `cnnzoo export` (as Keras layers) all follow it.
    """
    import tensorflow as tf

    prep = data.preprocessing
    images = tf.cast(images, tf.float32) / 255.0
    if prep.resize:
        images = tf.image.resize(images, prep.resize)
    if prep.mean is not None:
        images = images - tf.constant(prep.mean, tf.float32)
    if prep.std is not None:
        images = images / tf.constant(prep.std, tf.float32)
    return images


def _preprocess_fn(data: DataConfig, num_classes: int, one_hot: bool):
    import tensorflow as tf

    def preprocess(image, label):
        label = tf.one_hot(label, num_classes) if one_hot else label
        return preprocess_images(image, data), label

    return preprocess


def _augment_fn(data: DataConfig, image_shape: tuple[int, ...]):
    """Random changes to one preprocessed training image, or None when none are configured."""
    import tensorflow as tf

    aug = data.augmentation
    if not (aug.pad_crop or aug.horizontal_flip):
        return None

    def augment(image, label):
        if aug.pad_crop:
            # Padding after normalisation: the border is the mean colour when preprocessing subtracts it.
            p = aug.pad_crop
            image = tf.image.random_crop(tf.pad(image, [[p, p], [p, p], [0, 0]]), image_shape)
        if aug.horizontal_flip:
            image = tf.image.random_flip_left_right(image)
        return image, label

    return augment


def _pipeline(ds, preprocess, data: DataConfig, *, training: bool, augment=None, drop_remainder: bool = False):
    """map -> cache -> (train: shuffle -> augment) -> batch -> prefetch; augmentation after the cache.

    Under a multi-worker strategy each worker keeps every N-th example (DATA sharding): TFDS
    splits often have fewer files than there are workers, so sharding by file would fail.
    With `data.autotune` off, AUTOTUNE below means TF's static defaults (one map call per core).
    """
    import tensorflow as tf

    options = tf.data.Options()
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
    options.autotune.enabled = data.autotune
    ds = ds.with_options(options)
    ds = ds.map(preprocess, num_parallel_calls=tf.data.AUTOTUNE)
    if data.cache:
        ds = ds.cache()
    if training:
        ds = ds.shuffle(data.shuffle_buffer, reshuffle_each_iteration=True)
    if augment is not None:
        ds = ds.map(augment, num_parallel_calls=tf.data.AUTOTUNE)
    return ds.batch(data.batch_size, drop_remainder=drop_remainder).prefetch(tf.data.AUTOTUNE)
