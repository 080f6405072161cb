"""The `tf.data` pipeline every source feeds: preprocess -> cache -> shuffle -> augment -> batch.

A source (a TFDS dataset, `cnnzoo.data.tfds_input`; a folder of images, `cnnzoo.data.folder_source`)
hands over its examples; what happens to them from there on is the same for all. Training reads
a `TrainStream`: epoch after epoch of batches, each epoch's order a function of the run's seed
and the epoch's number, that can start at any batch (a resumed run goes on where it stopped).
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

    stream: "TrainStream"  # the training split, epoch after epoch (see `TrainStream`)
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

    @property
    def train(self):
        """The first epoch's batches."""
        return self.stream.epoch(0)


@dataclass(frozen=True)
class TrainStream:
    """The training split as one stream of batches, epoch after epoch, that can start at any batch.

    Epoch e is the examples shuffled with a seed made of (run seed, e), not reshuffled per iteration, so
    the stream a new process starts at batch g holds the batches an uninterrupted run trains from
    its g-th on: a resumed run trains no batch twice and skips none. Augmentation draws come from
    the seed (run seed, e, position in the epoch): a resumed run draws the same ones too; an
    alternating flip's from (run seed, the example's index in the split) and e's parity.
    """

    source: Any  # preprocessed (and cached) examples in the split's order (a dataset), or `InMemory` pixels
    data: DataConfig
    augment: Any  # `augment_fn`'s function of (image, label, [flip,] seed), or None
    drop_remainder: bool
    batches: int  # batches in one pass over the split
    seed: int = 0  # the run's seed

    @property
    def examples(self):
        """The preprocessed examples in the split's order (a dataset)."""
        return self.source.examples() if isinstance(self.source, InMemory) else self.source

    def starting_at(self, batch: int = 0):
        """Batches from the `batch`-th on (counted from the first epoch's first), without end."""
        import tensorflow as tf

        first, skip = divmod(batch, self.batches)
        bs = self.data.batch_size

        def epoch(e):
            # The order is a function of (run seed, e) alone. TF mixes in the graph-level seed and then tests
            # it in Python, which fails for a tensor op seed when that seed is 0: this graph has none.
            tf.compat.v1.get_default_graph().seed = None
            order_seed = e * 1_000_003 + self.seed % 1_000_003
            alternate = self.augment is not None and self.data.augmentation.horizontal_flip == "alternate"
            skipped = tf.where(e == first, tf.constant(skip * bs, tf.int64), 0)
            if isinstance(self.source, InMemory):  # indices shuffle as the examples they stand for would
                ds = self.source.indices().shuffle(self.data.shuffle_buffer, seed=order_seed,
                                                   reshuffle_each_iteration=False)
                if self.augment is None:  # batches of indices: gathered and preprocessed below, a batch at a time
                    return ds.skip(skipped).batch(bs, drop_remainder=self.drop_remainder)
                ds = ds.map(plain(lambda k: (k, self.source.gather(k))) if alternate else plain(self.source.gather))
            else:
                ds = self.examples.enumerate() if alternate else self.examples  # (index in the split, example)
                ds = ds.shuffle(self.data.shuffle_buffer, seed=order_seed, reshuffle_each_iteration=False)
            if alternate:
                ds = ds.map(plain(lambda k, example: (*example, alternate_flip(self.seed, k, e))))
            if self.augment is not None:
                base = tf.stack([tf.constant(self.seed, tf.int64), e])
                ds = ds.enumerate().map(plain(lambda i, example: (*example, tf.random.experimental.stateless_fold_in(base, i))))
            ds = ds.skip(skipped)  # before augmenting: no work lost
            if self.augment is not None:
                ds = ds.map(plain(self.augment), num_parallel_calls=tf.data.AUTOTUNE)
            return ds.batch(bs, drop_remainder=self.drop_remainder)

        epochs = tf.data.Dataset.range(first, tf.int64.max).flat_map(plain(epoch))
        if isinstance(self.source, InMemory) and self.augment is None:  # (traced once here, not inside `epoch`)
            epochs = self.source.batches(epochs)
        return epochs.with_options(_options(self.data, isinstance(self.source, InMemory))).prefetch(tf.data.AUTOTUNE)

    def epoch(self, e: int = 0):
        """Epoch e's batches (a dataset of known length)."""
        import tensorflow as tf

        epoch = self.starting_at(e * self.batches).take(self.batches)
        return epoch.apply(tf.data.experimental.assert_cardinality(self.batches))


@dataclass(frozen=True)
class InMemory:
    """A split's raw pixels and labels held in memory (a folder's kept images): an epoch shuffles their
    indices and gathers each batch, preprocessed at once, instead of handling examples one by one."""

    images: Any  # uint8 (N, rows, cols, channels): every split's (see `rows`)
    rows: Any  # (n,) the split's rows of `images`, in the split's order
    labels: Any  # (n,)
    preprocess: Any  # `preprocess_fn`'s (images, labels) -> (model input, labels), for one or a batch

    def indices(self):
        import tensorflow as tf

        return tf.data.Dataset.range(len(self.labels))

    def gather(self, index):
        import tensorflow as tf

        return self.preprocess(tf.gather(self.images, tf.gather(self.rows, index)), tf.gather(self.labels, index))

    def batches(self, indices):
        import tensorflow as tf

        return indices.map(plain(self.gather), num_parallel_calls=tf.data.AUTOTUNE)

    def examples(self):
        import tensorflow as tf

        examples = self.batches(self.indices().batch(1024)).unbatch()
        return examples.apply(tf.data.experimental.assert_cardinality(len(self.labels)))


def as_tensor(array):
    """`array` as a tensor that shares its memory where it can: C-contiguous and 64-byte aligned (as
    `cnnzoo.memory.aligned_empty` makes them; TensorFlow refuses to share others), through DLPack.
    TensorFlow's own conversion copies every NumPy array: 30 MB of pixels took 0.05-0.08 s in a new process."""
    import tensorflow as tf

    from cnnzoo.memory import ALIGNMENT

    if array.size and array.flags.c_contiguous and array.ctypes.data % ALIGNMENT == 0:
        return tf.experimental.dlpack.from_dlpack(array.__dlpack__())
    return tf.convert_to_tensor(array)


def alternate_flip(seed: int, index, epoch):
    """Whether the split's `index`-th image is flipped in `epoch` under `horizontal_flip: alternate`: a coin
    drawn from (run seed, index) in epoch 0, the other side in every odd epoch."""
    import tensorflow as tf

    coin = tf.random.stateless_uniform([], tf.stack([tf.constant(seed, tf.int64), index])) < 0.5
    return tf.math.logical_xor(coin, epoch % 2 == 1)


def split_pipelines(pipeline, splits: Splits, config) -> tuple[Any, Any | None, Any]:
    """(train stream, validation, test) pipelines from `pipeline(spec, config key, training)`."""
    train = pipeline(splits.train, "train_split", True)  # a TrainStream: epochs of N steps walk on through the data
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
    """Random changes to one preprocessed training image, `(image, label, seed) -> (image, label)`, or None
    when none are configured. Stateless: the draws are a function of the seed (see `TrainStream`)."""
    import tensorflow as tf

    aug = data.augmentation
    if not (aug.pad_crop or aug.horizontal_flip):
        return None

    def augment(image, label, *draws):  # (seed) or, with `alternate`, (flip, seed): see TrainStream
        *flip, seed = draws
        crop_seed, flip_seed = tf.unstack(tf.random.experimental.stateless_split(seed, 2))
        if aug.pad_crop:
            # Padding after normalisation: the border is the mean colour when preprocessing subtracts it.
            p = aug.pad_crop
            image = tf.image.stateless_random_crop(tf.pad(image, [[p, p], [p, p], [0, 0]]), image_shape, crop_seed)
        if flip:
            image = tf.where(flip[0], tf.image.flip_left_right(image), image)
        elif aug.horizontal_flip:
            image = tf.image.stateless_random_flip_left_right(image, flip_seed)
        return image, label

    return augment


def build_pipeline(ds, preprocess, data: DataConfig, *, training: bool, cache: bool, augment=None,
                   drop_remainder: bool = False, batched: bool = False, seed: int | None = None):
    """map -> cache -> (train: a `TrainStream`: shuffle -> augment) -> batch -> prefetch.

    Augmentation comes after the cache. `batched`: preprocess 1,024 examples per call (same
    values, far less per-example overhead; only for images of one shape). `seed`: the run's.

    Under a multi-worker strategy each worker keeps every N-th example (DATA sharding): TFDS
    splits often have fewer files than there are workers, so sharding by file would fail.
    With `data.autotune` off, AUTOTUNE below means TF's static defaults (one map call per core).
    """
    import tensorflow as tf

    ds = ds.with_options(_options(data))
    if batched:  # unbatch cannot know its length: say it, so Keras counts an epoch's steps from the start
        examples = ds.cardinality()
        ds = ds.batch(1024).map(plain(preprocess), num_parallel_calls=tf.data.AUTOTUNE).unbatch()
        ds = ds.apply(tf.data.experimental.assert_cardinality(examples))
    else:
        ds = ds.map(plain(preprocess), num_parallel_calls=tf.data.AUTOTUNE)
    if cache:
        ds = ds.cache()
    if training:
        count = _count(ds)
        batches = count // data.batch_size if drop_remainder else -(-count // data.batch_size)
        return TrainStream(ds, data, augment, drop_remainder, max(batches, 1), seed or 0)
    if drop_remainder:
        ds = padded_to_batches(ds, data.batch_size)
    return ds.batch(data.batch_size, drop_remainder=drop_remainder).prefetch(tf.data.AUTOTUNE)


def memory_pipeline(source: InMemory, data: DataConfig, *, training: bool, augment=None,
                    drop_remainder: bool = False, seed: int | None = None):
    """`build_pipeline` for pixels held in memory: the same batches, preprocessed a batch at a time (no cache:
    the pixels are in memory already, as uint8)."""
    import tensorflow as tf

    count, bs = len(source.labels), data.batch_size
    if training:
        batches = count // bs if drop_remainder else -(-count // bs)
        return TrainStream(source, data, augment, drop_remainder, max(batches, 1), seed or 0)
    if drop_remainder:
        ds = padded_to_batches(source.examples(), bs).batch(bs, drop_remainder=True)
    else:
        ds = source.batches(source.indices().batch(bs))
    return ds.with_options(_options(data, in_memory=True)).prefetch(tf.data.AUTOTUNE)


def plain(function):
    """`function` as tf.data traces it, without AutoGraph's rewriting: these functions hold no Python
    control flow over tensors, and rewriting them took about half a second of every run's start."""
    import tensorflow as tf

    return tf.autograph.experimental.do_not_convert(function)


def _options(data: DataConfig, in_memory: bool = False):
    """`in_memory`: a pipeline gathering batches of pixels held in memory, which tf.data's default graph
    rewrites have nothing to fuse in: left out, its first batch came 0.02-0.04 s sooner in a new process."""
    import tensorflow as tf

    options = tf.data.Options()
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
    options.autotune.enabled = data.autotune
    if in_memory:
        options.experimental_optimization.apply_default_optimizations = False
    return options


def _count(ds) -> int:
    """Examples in a dataset: its cardinality, or one pass's count where the source does not say."""
    count = int(ds.cardinality())
    return count if count >= 0 else int(ds.reduce(0, lambda n, _: n + 1))


def padded_to_batches(ds, batch_size: int):
    """Every example, in full batches (a TPU compiles one batch shape): weight 1 each, then zero-weight
    copies of the first example up to a whole batch, so evaluation counts exactly the split's examples.
    A split of unknown length keeps its last partial batch dropped (said by the caller's counts)."""
    import tensorflow as tf

    count = int(ds.cardinality())
    if count < 0:
        return ds
    weighted = ds.map(plain(lambda x, y: (x, y, tf.constant(1.0))))
    missing = -count % batch_size
    if not missing:
        return weighted
    filler = ds.take(1).map(plain(lambda x, y: (x, y, tf.constant(0.0)))).repeat(missing)
    return weighted.concatenate(filler)
