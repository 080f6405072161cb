"""Pixels held in memory (a folder's kept images) are batched by shuffling their indices and gathering each
batch, preprocessed at once: the batches must be exactly those of the general pipeline, which handles the
preprocessed examples one by one, in every epoch, from any batch on, with every kind of augmentation."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from cnnzoo import load_config

TINY = Path(__file__).parent / "tiny.yaml"


def _pipelines(overrides: list[str], training: bool, drop_remainder: bool = False):
    import tensorflow as tf

    from cnnzoo.data.pipeline import InMemory, augment_fn, build_pipeline, memory_pipeline, preprocess_fn

    data = load_config(TINY, ["data.batch_size=16", "data.shuffle_buffer=40", *overrides]).data
    rng = np.random.default_rng(0)
    images, labels = rng.integers(0, 256, (100, 8, 8, 1), dtype=np.uint8), rng.integers(0, 10, 100)
    preprocess = preprocess_fn(data, 10, one_hot=True)
    augment = augment_fn(data, (8, 8, 1)) if training else None
    options = dict(training=training, augment=augment, drop_remainder=drop_remainder, seed=3)
    general = build_pipeline(tf.data.Dataset.from_tensor_slices((images, labels)), preprocess, data, cache=False,
                             batched=True, **options)
    order = rng.permutation(100)  # the split's rows of the pixels held
    held = np.empty_like(images)
    held[order] = images
    source = InMemory(tf.constant(held), tf.constant(order), tf.constant(labels), preprocess)
    memory = memory_pipeline(source, data, **options)
    return general, memory


def _same(a, b, batches: int) -> None:
    got = 0
    for (x1, y1, *w1), (x2, y2, *w2) in zip(a.take(batches), b.take(batches)):
        np.testing.assert_array_equal(x1.numpy(), x2.numpy())
        np.testing.assert_array_equal(y1.numpy(), y2.numpy())
        np.testing.assert_array_equal([w.numpy() for w in w1], [w.numpy() for w in w2])
        got += 1
    assert got == batches


@pytest.mark.parametrize("overrides, drop_remainder", [
    ([], False),
    ([], True),
    (["data.augmentation.pad_crop=2", "data.augmentation.horizontal_flip=true"], False),
    (["data.augmentation.horizontal_flip=alternate"], True),
], ids=["plain", "plain_full_batches", "pad_crop_and_flip", "alternate_flip_full_batches"])
def test_in_memory_training_batches_are_the_general_pipelines(overrides, drop_remainder):
    general, memory = _pipelines(overrides, training=True, drop_remainder=drop_remainder)
    assert memory.batches == general.batches == (6 if drop_remainder else 7)
    _same(general.starting_at(0), memory.starting_at(0), 2 * general.batches)  # two epochs, each reshuffled
    _same(general.starting_at(9), memory.starting_at(9), general.batches)  # a resumed run, inside epoch 1
    _same(general.epoch(2), memory.epoch(2), general.batches)
    _same(general.examples.batch(100), memory.examples.batch(100), 1)  # (data-dependent initializers read these)


@pytest.mark.parametrize("drop_remainder", [False, True])
def test_in_memory_evaluation_batches_are_the_general_pipelines(drop_remainder):
    general, memory = _pipelines([], training=False, drop_remainder=drop_remainder)
    assert int(memory.cardinality()) == int(general.cardinality()) == 7
    _same(general, memory, 7)


def test_pixels_become_a_tensor_sharing_their_memory_when_aligned_and_a_copy_otherwise():
    from cnnzoo.data.pipeline import as_tensor
    from cnnzoo.memory import ALIGNMENT, aligned_empty

    aligned = aligned_empty((50, 8, 8, 3), np.uint8)
    assert aligned.ctypes.data % ALIGNMENT == 0 and aligned.flags.c_contiguous
    aligned[...] = 7
    shared = as_tensor(aligned)
    aligned[0, 0, 0, 0] = 9
    assert int(shared[0, 0, 0, 0]) == 9  # one buffer, no copy
    unaligned = np.frombuffer(bytes(1 + aligned.size), np.uint8)[1:].reshape(aligned.shape)  # 1 byte off
    copied = as_tensor(unaligned)  # (DLPack would abort the process on it)
    np.testing.assert_array_equal(copied.numpy(), unaligned)
    assert as_tensor(aligned[:, :4]).shape == (50, 4, 8, 3)  # not contiguous: copied too
    assert as_tensor(aligned_empty((0, 8, 8, 3), np.uint8)).shape == (0, 8, 8, 3)


def test_kept_pixels_are_read_into_aligned_memory(tmp_path):
    from cnnzoo.data.kept_images import _read_pixels
    from cnnzoo.memory import ALIGNMENT

    images = np.random.default_rng(1).integers(0, 256, (300, 9, 7, 3), dtype=np.uint8)
    np.save(tmp_path / "kept.npy", images)
    with open(tmp_path / "kept.npy", "rb", buffering=0) as fp:
        read = _read_pixels(fp)
    assert read.ctypes.data % ALIGNMENT == 0
    np.testing.assert_array_equal(read, images)
