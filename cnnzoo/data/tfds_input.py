"""`data` config -> prepared TFDS dataset -> batched `tf.data` pipelines.

Any TFDS dataset with (image, label) supervised keys works by name; preparing it
(download, or offline from a manual_dir) is `cnnzoo.data.prepare`'s job.
"""

from __future__ import annotations

from dataclasses import replace

from cnnzoo.config.schema import Config
from cnnzoo.data.cache import choose_cache
from cnnzoo.data.catalog import dataset_signature, label_names
from cnnzoo.data.decoded import Kept
from cnnzoo.data.prepare import Source, locate, manual_dir_of, prepare
from cnnzoo.data.pipeline import Datasets, augment_fn, build_pipeline, plain, preprocess_fn, split_pipelines
from cnnzoo.data.splits import no_split, resolve_splits


def load_datasets(config: Config, *, one_hot: bool, manual_dir: str | None = None,
                  static_shapes: bool = False, source: Source | None = None, log=None,
                  evaluated: str | None = None) -> Datasets:
    """Prepare the configured TFDS dataset (offline from manual_dir if given), or decode the images
    of `data.path`, and build pipelines.

    `static_shapes` drops each split's last partial batch (TPUs compile for one batch shape).
    `source` is where a plan found the examples (else it is looked up here). `evaluated`: a split
    read as the test pipeline (`cnnzoo evaluate --split`), the run's other splits as they were.
    """
    if config.data.path:
        from cnnzoo.data.folder_input import load_folder_datasets

        return load_folder_datasets(config, one_hot=one_hot, static_shapes=static_shapes,
                                    folder=source.reader if source else None, log=log, evaluated=evaluated)
    if evaluated:  # a catalogue's splits are the dataset's own: naming one as the test split moves nothing
        config = config.model_copy(update={"data": config.data.model_copy(update={"test_split": evaluated})})
    data = config.data
    signature = dataset_signature(config)
    image_shape, num_classes = signature.image_shape, signature.num_classes
    source = source or locate(signature.builder, config, manual_dir_of(config, manual_dir))
    builder = prepare(source, config)
    splits = resolve_splits(config, builder.info.splits)
    cache = choose_cache(config, splits, image_shape)
    preprocess = preprocess_fn(data, num_classes, one_hot)
    kept = Kept(builder) if cache.cache else None

    def pipeline(spec: str, key: str, training: bool):
        split, batched = _source(builder, spec, config, key, training=training, kept=kept)
        return build_pipeline(split, preprocess, data, training=training, cache=cache.cache,
                              drop_remainder=static_shapes, augment=augment_fn(data, image_shape) if training else None,
                              batched=batched, seed=config.runtime.seed)

    train, validation, test = split_pipelines(pipeline, splits, config)
    if kept and kept.notes:
        cache = replace(cache, note="; ".join(filter(None, [cache.note, *kept.notes])))
    counts = _label_counts(builder, splits.train, num_classes) if config.train.class_weight else None
    return Datasets(train, validation, test, image_shape, num_classes, splits, cache, label_names(builder.info.features),
                    counts)


def _label_counts(builder, split: str, num_classes: int) -> tuple[int, ...]:
    """Examples per class in a split, read without decoding the images (for `train.class_weight`)."""
    import numpy as np
    import tensorflow_datasets as tfds

    ds = builder.as_dataset(split=split, decoders={"image": tfds.decode.SkipDecoding()})
    counts = np.zeros(num_classes, np.int64)
    for batch in tfds.as_numpy(ds.map(plain(lambda e: e["label"])).batch(8192)):
        counts += np.bincount(batch, minlength=num_classes)
    return tuple(int(n) for n in counts)


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
        # Files in one order every epoch (the shuffle after them differs per epoch): a resumed run's batches
        # are then the ones an uninterrupted run trains (see `TrainStream`).
        import tensorflow_datasets as tfds

        read = tfds.ReadConfig(shuffle_reshuffle_each_iteration=False)
        return builder.as_dataset(split=split, as_supervised=True, shuffle_files=training, read_config=read), False
    except (ValueError, KeyError) as exc:  # resolve_splits checked the names: this is a slice TFDS refuses
        raise no_split(config, builder.info.splits, key, split, exc) from None
