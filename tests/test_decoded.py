"""Decoded splits kept on disk: the same examples in the same order as TFDS's reading, rebuilt when stale
or damaged, and a disk that refuses the file costs only the time."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import keras
import numpy as np
import pytest

from cnnzoo import load_config
from cnnzoo.data import decoded
from cnnzoo.data.tfds_input import load_datasets
from conftest import CONFIGS

QUICK = CONFIGS / "quickstart.yaml"


def first_epoch(overrides: list[str], seed: int = 5):
    keras.utils.set_random_seed(seed)
    data = load_datasets(load_config(QUICK, overrides), one_hot=True)
    images, labels = zip(*((x.numpy(), y.numpy()) for x, y in data.train))
    return data, np.concatenate(images), np.concatenate(labels)


def kept_file(data):
    """The TFDS builder of the quick-start data, and the file its whole `train` split is kept in."""
    import tensorflow_datasets as tfds

    builder = tfds.builder(load_config(QUICK).data.name)
    assert data.splits.train.startswith("train[")  # a slice, cut from the whole split's file
    return builder, decoded.path_of(builder, "train")


def decodings(monkeypatch) -> list[str]:
    """Records every split TFDS is asked to decode as a whole."""
    calls: list[str] = []
    original = decoded._read

    def counting_read(path, mark):
        found = original(path, mark)
        if found is None:
            calls.append(path.name)
        return found

    monkeypatch.setattr(decoded, "_read", counting_read)
    return calls


@pytest.mark.slow
def test_a_cached_split_is_decoded_once_then_read_with_the_examples_and_order_of_tfds(monkeypatch):
    data, _, _ = first_epoch([])
    builder, path = kept_file(data)
    path.unlink()
    calls = decodings(monkeypatch)
    _, images, labels = first_epoch([])  # decodes and keeps the file
    assert path.exists() and calls.count(path.name) == 1
    _, again, again_labels = first_epoch([])  # reads the file
    assert calls.count(path.name) == 1
    # TFDS reading and decoding every example itself (no cache), same seed: the same first epoch
    _, by_tfds, tfds_labels = first_epoch(["data.cache=false"])
    assert np.array_equal(images, again) and np.array_equal(labels, again_labels)
    assert np.array_equal(images, by_tfds) and np.array_equal(labels, tfds_labels)
    assert len(images) == data.train_examples and images.std() > 0.1
    # Keras counts an epoch's steps from the start only when the pipeline knows its length
    assert data.train.cardinality().numpy() == -(-data.train_examples // load_config(QUICK).data.batch_size)


def test_a_stale_or_damaged_file_is_decoded_again(monkeypatch):
    data, _, reference = first_epoch([])
    builder, path = kept_file(data)
    calls = decodings(monkeypatch)
    record = Path(builder.info.splits["train"].filepaths[0])
    stat = record.stat()
    os.utime(record, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))  # TFDS prepared the dataset again
    assert np.array_equal(first_epoch([])[2], reference) and calls.count(path.name) == 1
    path.write_bytes(path.read_bytes()[:1000])  # damaged: a file cut short
    assert np.array_equal(first_epoch([])[2], reference) and calls.count(path.name) == 2
    assert np.load(path)["images"].shape[0] == builder.info.splits["train"].num_examples


def test_a_disk_that_refuses_the_file_costs_only_time(monkeypatch):
    data, _, reference = first_epoch([])
    _, path = kept_file(data)
    path.unlink()

    def full_disk(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(decoded.np, "savez", full_disk)
    again, _, labels = first_epoch([])
    assert np.array_equal(labels, reference)
    assert "could not keep the decoded" in again.cache.note and "No space left on device" in again.cache.note
    assert not path.exists() and not list(path.parent.glob("*.tmp"))  # no half-written file left behind


def test_no_file_is_kept_when_the_split_is_not_cached():
    data, _, _ = first_epoch([])
    _, path = kept_file(data)
    shutil.rmtree(path.parent)
    load_datasets(load_config(QUICK, ["data.cache=false"]), one_hot=True)
    assert not path.parent.exists()


def test_slices_and_sums_of_splits_are_cut_from_the_whole_splits_as_tfds_reads_them():
    import tensorflow_datasets as tfds

    data, _, _ = first_epoch([])
    builder, _ = kept_file(data)
    for spec in ["train[10%:20%]", "test[:50%]+train[:10]", "train[-7:]"]:
        cut = decoded.Kept(builder).read(spec)
        images, labels = tfds.as_numpy(builder.as_dataset(split=spec, batch_size=-1, as_supervised=True,
                                                          shuffle_files=False))
        assert np.array_equal(cut.images, images) and np.array_equal(cut.labels, labels), spec
