"""The zoo: readable configs of keras.applications networks, whose Keras weights (random here,
nothing is downloaded) load into them in order and give the same outputs."""

from __future__ import annotations

import keras
import numpy as np
import pytest

from conftest import CONFIGS
from cnnzoo import build_model, load_config


@pytest.mark.parametrize("config, application", [
    ("zoo/mobilenet_v2.yaml", "MobileNetV2"),
    ("zoo/vgg16.yaml", "VGG16"),
])
def test_keras_applications_weights_load_with_equal_outputs(config, application):
    ours = build_model(load_config(CONFIGS / config))
    theirs = getattr(keras.applications, application)(weights=None)
    assert ours.count_params() == theirs.count_params()
    ours.set_weights(theirs.get_weights())  # raises if any weight's shape or place differs
    images = np.random.default_rng(0).random((2, 224, 224, 3), np.float32)
    assert np.max(np.abs(np.asarray(ours(images)) - np.asarray(theirs(images)))) <= 1e-5
