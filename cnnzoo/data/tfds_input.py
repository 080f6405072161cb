"""`data` config -> prepared TFDS dataset -> batched `tf.data` pipelines.

Any TFDS dataset with (image, label) supervised keys works by name; preparing it
(download, or offline from a manual_dir) is `cnnzoo.data.prepare`'s job.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

from cnnzoo.config.schema import Config, DataConfig
from cnnzoo.data.cache import CacheChoice, choose_cache
from cnnzoo.data.catalog import dataset_signature, label_names
from cnnzoo.data.decoded import Kept
from cnnzoo.data.prepare import Source, locate, manual_dir_of, prepare
from cnnzoo.data.preprocessing import preprocess_images
from cnnzoo.data.splits import Splits, no_split, resolve_splits


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

    @property
    def train_examples(self) -> int:
        return self.splits.size(self.splits.train) or 0


def load_datasets(config: Config, *, one_hot: bool, manual_dir: str | None = None,
                  static_shapes: bool = False, source: Source | None = None) -> Datasets:
    """Prepare the configured TFDS dataset (offline from manual_dir if given) and build pipelines.

    `static_shapes` drops each split's last partial batch (TPUs compile for one batch shape).
    `source` is where a plan found the examples (else it is looked up here).
    """
    data = config.data
    signature = dataset_signature(config)
    image_shape, num_classes = signature.image_shape, signature.num_classes
    source = source or locate(signature.builder, config, manual_dir_of(config, manual_dir))
    builder = prepare(source, config)
    splits = resolve_splits(config, builder.info.splits)
    cache = choose_cache(config, splits, image_shape)
    preprocess = _preprocess_fn(data, num_classes, one_hot)
    kept = Kept(builder) if cache.cache else None

    def pipeline(spec: str, key: str, training: bool):
        split, batched = _source(builder, spec, config, key, training=training, kept=kept)
        return _pipeline(split, preprocess, data, training=training, cache=cache.cache, drop_remainder=static_shapes,
                         augment=_augment_fn(data, image_shape) if training else None, batched=batched)

    train = pipeline(splits.train, "train_split", training=True)
    if config.train.steps_per_epoch is not None:
        train = train.repeat()  # epochs of N steps walk on through the data instead of running dry
    test = pipeline(splits.test, "test_split", training=False)
    validation = None
    if splits.validates_on_test:
        validation = test  # one pipeline, one cache
    elif splits.validation is not None:
        validation = pipeline(splits.validation, "validation_split", training=False)
    if kept and kept.notes:
        cache = replace(cache, note="; ".join(filter(None, [cache.note, *kept.notes])))
    return Datasets(train, validation, test, image_shape, num_classes, splits, cache, label_names(builder.info.features))


def _source(builder, split: str, config: Config, key: str, *, training: bool, kept: Kept | None):
    """The split's examples, and whether they may be preprocessed in batches.

    A split cached in memory comes from its decoded pixels (`cnnzoo.data.decoded`) in TFDS's
    file order (the order TFDS reads a one-file split in, as MNIST's and CIFAR-10's are); any
    other is read and decoded by TFDS, one example at a time.
    """
    import tensorflow as tf

    try:
        arrays = kept.read(split) if kept else None
        if arrays is not None:
            if training:  # TFDS's file shuffling takes one op seed: take it too, so a seeded run's order is the same
                tf.compat.v1.random.get_seed(None)
            return tf.data.Dataset.from_tensor_slices((arrays.images, arrays.labels)), True
        return builder.as_dataset(split=split, as_supervised=True, shuffle_files=training), False
    except (ValueError, KeyError) as exc:  # resolve_splits checked the names: this is a slice TFDS refuses
        raise no_split(config, builder.info.splits, key, split, exc) from None


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


def _pipeline(ds, preprocess, data: DataConfig, *, training: bool, cache: bool, augment=None,
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
    return ds.batch(data.batch_size, drop_remainder=drop_remainder).prefetch(tf.data.AUTOTUNE)
