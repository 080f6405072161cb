"""The zoo: readable configs of keras.applications networks, whose Keras weights (random here,
nothing is downloaded) load into them in order and give the same outputs."""

from __future__ import annotations

import keras
import numpy as np
import pytest

from conftest import CONFIGS, cli
from cnnzoo import build_model, load_config


@pytest.mark.parametrize("config, application", [
    ("zoo/mobilenet_v2.yaml", "MobileNetV2"),
    ("zoo/vgg16.yaml", "VGG16"),
    ("zoo/densenet121.yaml", "DenseNet121"),
    ("zoo/inception_v3.yaml", "InceptionV3"),
    ("zoo/efficientnet_b0.yaml", "EfficientNetB0"),
])
@pytest.mark.slow
def test_keras_applications_weights_load_with_equal_outputs(config, application):
    ours = build_model(load_config(CONFIGS / config))
    theirs = getattr(keras.applications, application)(weights=None)
    assert ours.count_params() == theirs.count_params()
    ours.set_weights(theirs.get_weights())  # raises if any weight's shape or place differs
    images = np.random.default_rng(0).random((2, *ours.input_shape[1:]), np.float32)
    assert np.max(np.abs(np.asarray(ours(images)) - np.asarray(theirs(images)))) <= 1e-5


@pytest.mark.slow
def test_list_models_counts_every_zoo_config():
    done = cli("list", "models", "--configs", CONFIGS / "zoo")
    assert done.returncode == 0, done.stderr
    rows = {line.split()[0]: line.split() for line in done.stdout.splitlines()[1:]}
    assert sorted(rows) == sorted(p.name for p in (CONFIGS / "zoo").glob("*.yaml"))
    assert rows["vgg16.yaml"][1:4] == ["vgg16", "224x224x3", "138,357,544"]
    assert rows["inception_v3.yaml"][2:4] == ["299x299x3", "23,851,784"]
    # MACs per image, from `inspect`: VGG16's published 15.5 G multiply-adds.
    assert float(rows["vgg16.yaml"][4].replace(",", "")) == pytest.approx(15_470.3, abs=0.1)


def test_list_models_skips_parts_and_experiments(tmp_path):
    (tmp_path / "experiments").mkdir()
    (tmp_path / "data.yaml").write_text("data: {name: mnist_sample}\n")  # a part others extend
    (tmp_path / "tiny.yaml").write_text("extends: data.yaml\nmodel:\n  name: tiny\n  input_shape: [28, 28, 1]\n"
                                        "  layers: [Flatten, {Dense: [10, {activation: softmax}]}]\n")
    (tmp_path / "experiments" / "longer.yaml").write_text("extends: ../tiny.yaml\nmodel: {name: tiny_long}\n")
    done = cli("list", "models", "--configs", tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[1].split() == ["tiny.yaml", "tiny", "28x28x1", "7,850", "0.0"]
    assert len(done.stdout.splitlines()) == 2
