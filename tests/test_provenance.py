"""A catalogue dataset prepared offline is that dataset (MNIST and Fashion-MNIST share file names)."""

from __future__ import annotations

import gzip
import hashlib
import json
import shutil

import numpy as np
import pytest
import tensorflow_datasets as tfds

from cnnzoo import load_config
from cnnzoo.data import provenance, tfds_input
from conftest import CONFIGS, SHARED_DATA, cli

MNIST, FASHION = SHARED_DATA / "mnist", SHARED_DATA / "fashion-mnist"
needs_shared = pytest.mark.skipif(not (MNIST.is_dir() and FASHION.is_dir()),
                                  reason="needs ../shared/data/mnist and fashion-mnist (present on the team's machines and CI)")


def _idx_examples(folder, split):
    """(image bytes, label) pairs of an IDX split, read straight from the original .gz files, sorted."""
    images = np.frombuffer(gzip.open(folder / f"{split}-images-idx3-ubyte.gz").read(), np.uint8, offset=16)
    labels = np.frombuffer(gzip.open(folder / f"{split}-labels-idx1-ubyte.gz").read(), np.uint8, offset=8)
    return sorted(zip((hashlib.sha1(i).hexdigest() for i in images.reshape(len(labels), -1)), labels.tolist()))


def _tfds_examples(name, data_dir):
    ds = tfds.load(name, split="test", data_dir=str(data_dir), shuffle_files=False)
    return sorted((hashlib.sha1(e["image"].tobytes()).hexdigest(), int(e["label"])) for e in tfds.as_numpy(ds))


def _prepare(name, folder, data_dir):
    config = load_config(CONFIGS / "lenet5.yaml", [f"data.name={name}", f"data.data_dir={data_dir}"])
    return tfds_input.load_datasets(config, one_hot=True, manual_dir=str(folder))


@needs_shared
@pytest.mark.slow
def test_mnist_then_fashion_mnist_offline_into_one_folder_gives_fashion_mnist(tmp_path):
    data_dir = tmp_path / "tfds"
    _prepare("mnist", MNIST, data_dir)
    _prepare("fashion_mnist", FASHION, data_dir)
    # Fashion-MNIST's own test examples, label for label (MNIST's test labels are 7, 2, 1, 0, 4, ...)
    assert _tfds_examples("fashion_mnist", data_dir) == _idx_examples(FASHION, "t10k")
    assert _tfds_examples("mnist", data_dir) == _idx_examples(MNIST, "t10k")
    record = json.loads((data_dir / "fashion_mnist" / "3.0.1" / provenance.RECORD).read_text())
    assert record["sha256"]["train-images-idx3-ubyte.gz"] == provenance.sha256(FASHION / "train-images-idx3-ubyte.gz")

    # A copy whose record names other files is refused, with the command that rebuilds it.
    mnist_record = (data_dir / "mnist" / "3.0.1" / provenance.RECORD).read_text()
    (data_dir / "fashion_mnist" / "3.0.1" / provenance.RECORD).write_text(mnist_record)
    done = cli("validate", CONFIGS / "lenet5.yaml", "data.name=fashion_mnist", f"data.data_dir={data_dir}")
    assert done.returncode == 2, done.stdout + done.stderr
    assert "was built from another dataset's files" in done.stderr and f"rm -r {data_dir / 'fashion_mnist'}" in done.stderr


@needs_shared
def test_a_manual_file_of_another_dataset_is_refused_naming_it_and_the_checksum(tmp_path):
    done = cli("validate", CONFIGS / "lenet5.yaml", "data.name=fashion_mnist", f"data.data_dir={tmp_path / 'tfds'}",
               "--manual-dir", MNIST)
    assert done.returncode == 2, done.stdout + done.stderr
    expected = provenance.registered(tfds.builder("fashion_mnist", data_dir=str(tmp_path / "tfds")))
    assert f"{MNIST / 't10k-images-idx3-ubyte.gz'} is not the file" in done.stderr
    assert expected["t10k-images-idx3-ubyte.gz"] in done.stderr and "Traceback" not in done.stderr
    assert not (tmp_path / "tfds" / "fashion_mnist").exists()  # refused before anything was written


@needs_shared
@pytest.mark.slow
def test_a_copy_prepared_from_anothers_extracted_files_is_detected(tmp_path):
    """What an earlier cnnzoo left: both datasets through TFDS's shared `downloads/extracted/`."""
    data_dir = tmp_path / "tfds"
    for name, folder in (("mnist", MNIST), ("fashion_mnist", FASHION)):
        tfds.builder(name, data_dir=str(data_dir)).download_and_prepare(
            download_config=tfds.download.DownloadConfig(manual_dir=str(folder)))
    assert _tfds_examples("fashion_mnist", data_dir) == _idx_examples(MNIST, "t10k")  # the defect itself

    ok = cli("validate", CONFIGS / "lenet5.yaml", "data.name=mnist", f"data.data_dir={data_dir}")
    assert ok.returncode == 0, ok.stderr  # the first one prepared is its own files
    done = cli("validate", CONFIGS / "lenet5.yaml", "data.name=fashion_mnist", f"data.data_dir={data_dir}")
    assert done.returncode == 2, done.stdout + done.stderr
    assert "holds the same images as `mnist`" in done.stderr and f"rm -r {data_dir / 'fashion_mnist'}" in done.stderr

    shutil.rmtree(data_dir / "fashion_mnist")  # the rebuild the message asks for
    _prepare("fashion_mnist", FASHION, data_dir)
    assert _tfds_examples("fashion_mnist", data_dir) == _idx_examples(FASHION, "t10k")
