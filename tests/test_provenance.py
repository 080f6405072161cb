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
from cnnzoo.data import prepare, provenance
from cnnzoo.data.catalog import dataset_signature
from conftest import CONFIGS, PREPARED_DIR, SHARED_DATA, cli

MNIST, FASHION = SHARED_DATA / "mnist", SHARED_DATA / "fashion-mnist"
needs_shared = pytest.mark.skipif(not (MNIST.is_dir() and FASHION.is_dir()),
                                  reason="needs ../shared/data/mnist and fashion-mnist (present on the team's machines and CI)")


def _idx_examples(folder, split):
    """(image bytes, label) pairs of an IDX split, read straight from the original .gz files, sorted."""
    images = np.frombuffer(gzip.open(folder / f"{split}-images-idx3-ubyte.gz").read(), np.uint8, offset=16)
    labels = np.frombuffer(gzip.open(folder / f"{split}-labels-idx1-ubyte.gz").read(), np.uint8, offset=8)
    return sorted(zip((hashlib.sha1(i).hexdigest() for i in images.reshape(len(labels), -1)), labels.tolist()))


def _tfds_examples(name, data_dir):
    """The same pairs from the prepared TFDS split, read as one batch (5.4 s one by one, 0.5 s so)."""
    split = tfds.as_numpy(tfds.load(name, split="test", data_dir=str(data_dir), batch_size=-1))
    return sorted(zip((hashlib.sha1(i.tobytes()).hexdigest() for i in split["image"]), split["label"].tolist()))


def _prepare(name, folder, data_dir):
    """What every run does first (checks, then TFDS preparation), without the run's decoding."""
    config = load_config(CONFIGS / "lenet5.yaml", [f"data.name={name}", f"data.data_dir={data_dir}"])
    builder = dataset_signature(config).builder
    return prepare.prepare(prepare.locate(builder, config, str(folder)), config)


def _mnist_prepared_into(data_dir):
    """`_prepare("mnist", ...)` into `data_dir`: the copy in the run's shared folder (prepared there by the
    same function, once per test run, as other tests need it too), copied with its downloads folder."""
    _prepare("mnist", MNIST, PREPARED_DIR)
    for part in ("mnist", "downloads/mnist"):
        if (PREPARED_DIR / part).exists():
            shutil.copytree(PREPARED_DIR / part, data_dir / part)


def _copy_as(data_dir, source, name):
    """`source`'s prepared examples as dataset `name`, without a record: the copy an earlier cnnzoo left
    when it prepared `name` through the extractions `source` left (TFDS's own preparation does that,
    as the module's docstring says: `name`'s files, `source`'s images)."""
    copied = data_dir / name / "3.0.1"
    copied.mkdir(parents=True)
    for path in (data_dir / source / "3.0.1").glob(f"{source}-*"):
        shutil.copy(path, copied / path.name.replace(source, name, 1))
    info = json.loads((data_dir / source / "3.0.1" / "dataset_info.json").read_text())
    (copied / "dataset_info.json").write_text(json.dumps({**info, "name": name}))
    shutil.copy(data_dir / source / "3.0.1" / "features.json", copied)


def _leave_extractions_as_tfds_did(folder, data_dir):
    """What preparing `folder`'s dataset through TFDS's shared extraction folder left behind: each file
    uncompressed as `downloads/extracted/GZIP.<file name>`, which TFDS reuses by name for any dataset."""
    extracted = data_dir / "downloads" / "extracted"
    extracted.mkdir(parents=True, exist_ok=True)
    for path in folder.glob("*.gz"):
        (extracted / f"GZIP.{path.name}").write_bytes(gzip.open(path).read())


@needs_shared
@pytest.mark.slow
def test_prepared_offline_into_one_folder_each_dataset_is_its_own_and_a_wrong_copy_is_detected(tmp_path):
    """The preparations in the order a user meets them (a full dataset costs 10-20 s here, so one test)."""
    data_dir = tmp_path / "tfds"
    _mnist_prepared_into(data_dir)

    # An earlier cnnzoo's copy: Fashion-MNIST prepared through the extractions MNIST left is MNIST.
    (data_dir / "mnist" / "3.0.1" / provenance.RECORD).unlink()  # earlier copies have no record
    _leave_extractions_as_tfds_did(MNIST, data_dir)
    _copy_as(data_dir, "mnist", "fashion_mnist")
    assert _tfds_examples("fashion_mnist", data_dir) == _idx_examples(MNIST, "t10k")
    ok = cli("validate", CONFIGS / "lenet5.yaml", "data.name=mnist", f"data.data_dir={data_dir}")
    assert ok.returncode == 0, ok.stderr  # the first one prepared is its own files
    done = cli("validate", CONFIGS / "lenet5.yaml", "data.name=fashion_mnist", f"data.data_dir={data_dir}")
    assert done.returncode == 2, done.stdout + done.stderr
    assert "holds the same images as `mnist`" in done.stderr and f"rm -r {data_dir / 'fashion_mnist'}" in done.stderr

    # The rebuild the message asks for, after MNIST, with MNIST's extractions still lying where TFDS
    # would reuse them: Fashion-MNIST's own test examples, label for label (MNIST's are 7, 2, 1, 0, 4, ...).
    shutil.rmtree(data_dir / "fashion_mnist")
    _prepare("fashion_mnist", FASHION, data_dir)
    assert _tfds_examples("fashion_mnist", data_dir) == _idx_examples(FASHION, "t10k")
    assert _tfds_examples("mnist", data_dir) == _idx_examples(MNIST, "t10k")
    record = json.loads((data_dir / "fashion_mnist" / "3.0.1" / provenance.RECORD).read_text())
    assert record["sha256"]["train-images-idx3-ubyte.gz"] == provenance.sha256(FASHION / "train-images-idx3-ubyte.gz")

    # A copy whose record names other files is refused, with the command that rebuilds it.
    provenance.write_record(tfds.builder("fashion_mnist", data_dir=str(data_dir)),
                            provenance.registered(tfds.builder("mnist", data_dir=str(data_dir))))
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
