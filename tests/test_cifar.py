"""CIFAR-10 through TFDS from local `.npz` arrays, augmentation, and a short real ResNet-20 run."""

from __future__ import annotations

import hashlib
import json

import keras
import numpy as np
import pytest
import tensorflow as tf
import tensorflow_datasets as tfds

from cnnzoo import DataError, build_model, load_config, train
from cnnzoo.data import tfds_input
from cnnzoo.data.pipeline import augment_fn
from cnnzoo.models.compile import compile_model
from conftest import CONFIGS, SHARED_DATA

RESNET20 = CONFIGS / "resnet" / "resnet20.yaml"
SHARED_CIFAR = SHARED_DATA / "cifar10"


def _npz_folder(path, train_parts, test):
    """Arrays laid out like shared/data/cifar10: train split over several files, then test."""
    path.mkdir(parents=True, exist_ok=True)
    for k, (x, y) in enumerate(train_parts, start=1):
        np.savez(path / f"cifar10_train_{k}of{len(train_parts)}.npz", x_train=x, y_train=y)
    np.savez(path / "cifar10_test.npz", x_test=test[0], y_test=test[1])
    return path


def _random_images(rng, n):
    return rng.integers(0, 256, (n, 32, 32, 3), dtype=np.uint8), rng.integers(0, 10, n).astype(np.uint8)


def test_npz_arrays_prepare_cnnzoos_own_copy_and_never_the_catalogues(tmp_path):
    rng = np.random.default_rng(0)
    parts = [_random_images(rng, 30), _random_images(rng, 20)]
    folder = _npz_folder(tmp_path / "arrays", parts, _random_images(rng, 10))
    config = load_config(RESNET20, [f"data.data_dir={tmp_path / 'tfds'}", "data.batch_size=8"])
    data = tfds_input.load_datasets(config, one_hot=True, manual_dir=str(folder))
    assert data.image_shape == (32, 32, 3) and data.num_classes == 10
    assert data.class_names[:2] == ["airplane", "automobile"]  # read from the prepared copy (pictures' axes)
    assert (data.splits.train, data.splits.validation, data.train_examples) == ("train[0:45]", "train[45:50]", 45)

    # Another program's tfds.load("cifar10") does not see unverified arrays as the published dataset ...
    assert not tfds.builder("cifar10", data_dir=tmp_path / "tfds").is_prepared()
    # ... which cnnzoo keeps apart, with the SHA-256 of every source file in its metadata.
    builder = tfds.builder("cifar10", data_dir=tmp_path / "tfds" / "cnnzoo-arrays")
    assert builder.info.splits["train"].num_examples == 50 and builder.info.splits["test"].num_examples == 10
    assert builder.info.features["label"].names[:3] == ["airplane", "automobile", "bird"]
    digests = builder.info.metadata["source_sha256"]
    assert sorted(digests) == sorted(p.name for p in folder.glob("*.npz"))
    assert digests["cifar10_test.npz"] == hashlib.sha256((folder / "cifar10_test.npz").read_bytes()).hexdigest()
    images = np.concatenate([x for x, _ in parts])
    labels = np.concatenate([y for _, y in parts])
    for example in tfds.as_numpy(builder.as_dataset(split="train")):
        index = int(example["id"].decode().split("_")[1])  # joined in file order: part 2 starts at 30
        np.testing.assert_array_equal(example["image"], images[index])
        assert example["label"] == labels[index]

    # Later runs without --manual-dir read cnnzoo's copy; other arrays in the folder are prepared again.
    assert tfds_input.load_datasets(config, one_hot=True).splits.size("train[0:45]") == 45
    _npz_folder(folder, [_random_images(rng, 40)], _random_images(rng, 10))
    (folder / "cifar10_train_1of2.npz").unlink(), (folder / "cifar10_train_2of2.npz").unlink()
    again = tfds_input.load_datasets(config, one_hot=True, manual_dir=str(folder))
    assert again.splits.train == "train[0:36]"
    reread = tfds.builder("cifar10", data_dir=tmp_path / "tfds" / "cnnzoo-arrays")
    assert sorted(reread.info.metadata["source_sha256"]) == ["cifar10_test.npz", "cifar10_train_1of1.npz"]


def test_a_folder_without_archive_or_arrays_names_both(tmp_path):
    (tmp_path / "empty").mkdir()
    config = load_config(RESNET20, [f"data.data_dir={tmp_path / 'tfds'}"])
    with pytest.raises(DataError) as err:
        tfds_input.load_datasets(config, one_hot=True, manual_dir=str(tmp_path / "empty"))
    assert "cifar-10-binary.tar.gz" in str(err.value) and ".npz" in str(err.value)


def _augment(**augmentation):
    overrides = [f"data.augmentation.{k}={json.dumps(v)}" for k, v in augmentation.items()]
    augment = augment_fn(load_config(RESNET20, overrides).data, (32, 32, 3))
    if augment is None:
        return None
    counter = iter(range(10**6))  # a new seed per call, as the training stream gives each example

    def seeded(image, label):
        return augment(image, label, tf.constant([7, next(counter)], tf.int64))

    return seeded


def test_pad_crop_shifts_each_image_within_4_pixels_and_keeps_labels():
    augment = _augment(pad_crop=4, horizontal_flip=False)
    images = np.random.default_rng(1).uniform(0.1, 1, (64, 32, 32, 3)).astype("float32")
    shifts = set()
    for i, image in enumerate(images):
        out, label = augment(tf.constant(image), tf.constant(i))
        out = out.numpy()
        assert out.shape == image.shape and int(label) == i
        padded = np.pad(image, ((4, 4), (4, 4), (0, 0)))
        found = [(dy, dx) for dy in range(9) for dx in range(9)
                 if np.array_equal(out, padded[dy:dy + 32, dx:dx + 32])]
        assert found, "not a crop of the zero-padded image"
        shifts.add(found[0])
    assert len(shifts) > 10  # random positions, not one fixed crop


def test_horizontal_flip_mirrors_about_half_the_images():
    augment = _augment(pad_crop=0, horizontal_flip=True)
    images = np.random.default_rng(2).uniform(size=(64, 32, 32, 3)).astype("float32")
    flipped = 0
    for image in images:
        out = augment(tf.constant(image), tf.constant(0))[0].numpy()
        assert np.array_equal(out, image) or np.array_equal(out, image[:, ::-1])
        flipped += np.array_equal(out, image[:, ::-1])
    assert 10 < flipped < 54


def test_no_augmentation_configured_means_none_in_the_pipeline():
    assert _augment(pad_crop=0, horizontal_flip=False) is None


@pytest.mark.slow
@pytest.mark.skipif(not SHARED_CIFAR.is_dir(), reason="needs ../shared/data/cifar10 (present on the team's machines and CI)")
def test_one_epoch_of_resnet20_on_a_real_cifar_slice_learns(tmp_path):
    # Both slices from the test file, apart: a training file's decompression took 2.7 s more.
    arrays = np.load(SHARED_CIFAR / "cifar10_test.npz")
    x, y = arrays["x_test"], arrays["y_test"]
    folder = _npz_folder(tmp_path / "arrays", [(x[256:1280], y[256:1280])], (x[:256], y[:256]))
    overrides = [f"data.data_dir={tmp_path / 'tfds'}", "train.epochs=1", "runtime.seed=3", "train.pictures=false",
                 "train.lr_schedule=null", "train.optimizer.learning_rate=0.05"]
    config = load_config(RESNET20, overrides)
    result = train(config, output_dir=str(tmp_path / "run"), manual_dir=str(folder), log=lambda _: None)

    data = tfds_input.load_datasets(config, one_hot=True)
    untrained = build_model(config)
    compile_model(untrained, config)
    before = untrained.evaluate(data.test, verbose=0, return_dict=True)["loss"]
    assert result.metrics["test"]["loss"] < before, (before, result.metrics["test"])  # the same test images
    trained = keras.models.load_model(result.run_dir.model)
    # The last 10% of the 1,024 training images validate; the test images stay for the end.
    assert result.metrics["train_examples"] == 921 and len(result.metrics["history"]["loss"]) == 1
    assert result.metrics["splits"] == {"train": "train[0:921]", "validation": "train[921:1024]", "test": "test"}

    # The saved inference model is the config's layers only: augmentation stayed in tf.data.
    assert not any(layer.__class__.__name__.startswith("Random") for layer in trained.layers)
    x = next(iter(data.test))[0][:8]
    np.testing.assert_array_equal(trained.predict(x, verbose=0), trained.predict(x, verbose=0))
