"""The `tf.data` pipeline every source feeds: preprocess -> cache -> shuffle -> augment -> batch.

A source (a TFDS dataset, `cnnzoo.data.tfds_input`; a folder of images, `cnnzoo.data.folder_source`)
hands over its examples; what happens to them from there on is the same for all.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from cnnzoo.config.schema import DataConfig
from cnnzoo.data.cache import CacheChoice
from cnnzoo.data.preprocessing import preprocess_images
from cnnzoo.data.splits import Splits


@dataclass(frozen=True)
class Datasets:
    """Batched pipelines plus what the model needs to know about the data."""

    train: Any
    validation: Any | None
    test: Any
    image_shape: tuple[int, ...]
    num_classes: int
    splits: Splits
    cache: CacheChoice
    class_names: list[str] | None = None  # from the prepared dataset's metadata (None: numbered)
    class_counts: tuple[int, ...] | None = None  # training examples per class, where known without a pass
    skipped: tuple[tuple[str, str], ...] = ()  # (file, reason): files of a folder that could not be used

    @property
    def train_examples(self) -> int:
        return self.splits.size(self.splits.train) or 0


def split_pipelines(pipeline, splits: Splits, config) -> tuple[Any, Any | None, Any]:
    """(train, validation, test) pipelines from `pipeline(spec, config key, training)`."""
    train = pipeline(splits.train, "train_split", True)
    if config.train.steps_per_epoch is not None:
        train = train.repeat()  # epochs of N steps walk on through the data instead of running dry
    test = pipeline(splits.test, "test_split", False)
    validation = None
    if splits.validates_on_test:
        validation = test  # one pipeline, one cache
    elif splits.validation is not None:
        validation = pipeline(splits.validation, "validation_split", False)
    return train, validation, test


def preprocess_fn(data: DataConfig, num_classes: int, one_hot: bool):
    import tensorflow as tf

    def preprocess(image, label):
        label = tf.one_hot(label, num_classes) if one_hot else label
        return preprocess_images(image, data), label

    return preprocess


def augment_fn(data: DataConfig, image_shape: tuple[int, ...]):
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


def build_pipeline(ds, preprocess, data: DataConfig, *, training: bool, cache: bool, augment=None,
              drop_remainder: bool = False, batched: bool = False):
    """map -> cache -> (train: shuffle -> augment) -> batch -> prefetch; augmentation after the cache.

    `batched`: preprocess 1,024 examples per call (same values, far less per-example overhead;
    only for images of one shape).

    Under a multi-worker strategy each worker keeps every N-th example (DATA sharding): TFDS
    splits often have fewer files than there are workers, so sharding by file would fail.
    With `data.autotune` off, AUTOTUNE below means TF's static defaults (one map call per core).
    """
    import tensorflow as tf

    options = tf.data.Options()
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
    options.autotune.enabled = data.autotune
    ds = ds.with_options(options)
    if batched:  # unbatch cannot know its length: say it, so Keras counts an epoch's steps from the start
        examples = ds.cardinality()
        ds = ds.batch(1024).map(preprocess, num_parallel_calls=tf.data.AUTOTUNE).unbatch()
        ds = ds.apply(tf.data.experimental.assert_cardinality(examples))
    else:
        ds = ds.map(preprocess, num_parallel_calls=tf.data.AUTOTUNE)
    if cache:
        ds = ds.cache()
    if training:
        ds = ds.shuffle(data.shuffle_buffer, reshuffle_each_iteration=True)
    if augment is not None:
        ds = ds.map(augment, num_parallel_calls=tf.data.AUTOTUNE)
    if drop_remainder and not training:
        ds = padded_to_batches(ds, data.batch_size)
    return ds.batch(data.batch_size, drop_remainder=drop_remainder).prefetch(tf.data.AUTOTUNE)


def padded_to_batches(ds, batch_size: int):
    """Every example, in full batches (a TPU compiles one batch shape): weight 1 each, then zero-weight
    copies of the first example up to a whole batch, so evaluation counts exactly the split's examples.
    A split of unknown length keeps its last partial batch dropped (said by the caller's counts)."""
    import tensorflow as tf

    count = int(ds.cardinality())
    if count < 0:
        return ds
    weighted = ds.map(lambda x, y: (x, y, tf.constant(1.0)))
    missing = -count % batch_size
    if not missing:
        return weighted
    filler = ds.take(1).map(lambda x, y: (x, y, tf.constant(0.0))).repeat(missing)
    return weighted.concatenate(filler)
