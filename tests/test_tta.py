"""Test-time augmentation (`train.test_time_augmentation`): the averaged prediction is the mean of the
model's predictions on the views, made here by hand with NumPy."""

from __future__ import annotations

import json

import keras
import numpy as np
import pytest

from cnnzoo import load_config, train
from cnnzoo.training.tta import averaged_probabilities, view, view_settings
from conftest import TINY, cli

QUICK = TINY
FLIP_AND_SHIFT = [["horizontal_flip", {"translate": 2}]]


def _by_hand(images: np.ndarray, mirrored: bool, shift: int) -> np.ndarray:
    """The view made with NumPy: mirror, then move the content `shift` pixels down and right, zeros in."""
    out = images[:, :, ::-1] if mirrored else images
    n, rows, cols = abs(shift), images.shape[1], images.shape[2]
    padded = np.pad(out, [(0, 0), (n, n), (n, n), (0, 0)])
    return padded[:, n - shift:n - shift + rows, n - shift:n - shift + cols]


def _softmax(x):
    e = np.exp(x - x.max(-1, keepdims=True))
    return e / e.sum(-1, keepdims=True)


def test_views_are_every_combination_and_shift_the_content_down_right_and_up_left():
    assert view_settings(["horizontal_flip", {"translate": 2}]) == [
        (False, 0), (False, 2), (False, -2), (True, 0), (True, 2), (True, -2)]
    assert view_settings([]) == [(False, 0)]
    image = np.zeros((1, 6, 6, 1), np.float32)
    image[0, 1, 3, 0] = 1.0
    assert np.argwhere(np.asarray(view(image, False, 2))[0, ..., 0]).tolist() == [[3, 5]]
    assert np.argwhere(np.asarray(view(image, False, -1))[0, ..., 0]).tolist() == [[0, 2]]
    assert np.argwhere(np.asarray(view(image, True, 0))[0, ..., 0]).tolist() == [[1, 2]]
    assert not np.asarray(view(image, False, 3)).any()  # shifted out of the picture


@pytest.mark.parametrize("logits", [False, True])
def test_the_averaged_prediction_equals_averaging_the_views_predictions_by_hand(logits):
    keras.utils.set_random_seed(1)
    model = keras.Sequential([keras.Input((9, 9, 2)), keras.layers.Conv2D(4, 3, activation="relu"),
                              keras.layers.Flatten(), keras.layers.Dense(5),
                              *([] if logits else [keras.layers.Softmax()])])
    images = np.random.default_rng(0).random((7, 9, 9, 2), np.float32)
    augmentations = ["horizontal_flip", {"translate": 1}]
    got = averaged_probabilities(model, augmentations, logits)(images).numpy()
    outputs = [model.predict(_by_hand(images, m, s), verbose=0) for m, s in view_settings(augmentations)]
    expected = np.mean([_softmax(o) if logits else o for o in outputs], axis=0)
    assert len(outputs) == 6
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(got.sum(-1), 1.0, rtol=1e-5)
    plain = model.predict(images, verbose=0)
    assert not np.allclose(got, _softmax(plain) if logits else plain, atol=1e-4)  # the views change it


@pytest.mark.slow
def test_a_runs_tta_accuracy_is_the_accuracy_of_the_hand_averaged_views(tmp_path):
    from cnnzoo.data.tfds_input import load_datasets

    config = load_config(QUICK, ["train.epochs=1", "train.steps_per_epoch=4", "runtime.seed=2",
                                 "train.pictures=false", f"train.test_time_augmentation={json.dumps(FLIP_AND_SHIFT[0])}",
                                 "train.validation_tta=true"])
    result = train(config, output_dir=str(tmp_path / "run"), log=lambda _: None)
    metrics = json.loads(result.run_dir.metrics.read_text())
    assert set(metrics["test"]) == {"loss", "accuracy", "accuracy_tta"}
    assert metrics["test_time_augmentation"] == {"views": 6, "augmentations": FLIP_AND_SHIFT[0]}

    model = keras.models.load_model(result.run_dir.model)
    data = load_datasets(config, one_hot=True)

    def measured(split):
        images, labels = (np.concatenate(parts) for parts in zip(*((x.numpy(), y.numpy()) for x, y in split)))
        views = [model.predict(_by_hand(images, m, s), verbose=0) for m, s in view_settings(FLIP_AND_SHIFT[0])]
        return (len(images), float(np.mean(np.mean(views, axis=0).argmax(-1) == labels.argmax(-1))),
                float(np.mean(views[0].argmax(-1) == labels.argmax(-1))))

    # validation with the views after each epoch: in history.csv and metrics.json, from the epoch's model
    assert metrics["validation"]["accuracy_tta"] == pytest.approx(measured(data.validation)[1], abs=1e-9)
    assert len(metrics["history"]["val_accuracy_tta"]) == 1
    examples, by_hand, plain = measured(data.test)
    assert examples == metrics["test_examples"]
    assert metrics["test"]["accuracy_tta"] == pytest.approx(by_hand, abs=1e-9)
    assert metrics["test"]["accuracy"] == pytest.approx(plain, abs=1e-6)
    again = cli("evaluate", result.run_dir.path)  # the run's config carries the views
    assert again.returncode == 0, again.stderr
    assert f"{by_hand:.4f}" in again.stdout


@pytest.mark.parametrize("value, message", [
    ("[flip]", "'flip' is not a test-time augmentation"),
    ("[{translate: 0}]", "{'translate': 0} is not a test-time augmentation"),
    ("[{translate: 2, scale: 1}]", "is not a test-time augmentation"),
    ("[horizontal_flip, horizontal_flip]", "each test-time augmentation may be listed once"),
])
def test_unknown_or_repeated_views_are_refused_at_validate(value, message):
    done = cli("validate", QUICK, f"train.test_time_augmentation={value}")
    assert done.returncode == 2
    assert message in done.stderr and "train.test_time_augmentation" in done.stderr


def test_validation_with_views_needs_views():
    done = cli("validate", QUICK, "train.validation_tta=true")
    assert done.returncode == 2
    assert "train.validation_tta: validation_tta uses the views of test_time_augmentation" in done.stderr
