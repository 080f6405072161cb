"""Grad-CAM: heat where the answer is known, the score before the softmax, float32 under mixed precision,
the layer found in every kind of shipped model, and mistakes in naming it refused at validate time."""

from __future__ import annotations

import numpy as np
import pytest

from conftest import CONFIGS, cli
from cnnzoo.pictures.grad_cam import GradCam, find_layer
from cnnzoo.scores import softmax


def quadrant_task(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """16x16 images whose label is the orientation of a bar in the top-left quadrant (0: horizontal,
    1: vertical); each other quadrant holds as many bright pixels, scattered, and all are noisy."""
    rng = np.random.default_rng(seed)
    x = rng.random((n, 16, 16, 1), np.float32) * 0.2
    labels = rng.integers(0, 2, n)
    for i in range(n):
        place = rng.integers(2, 6)
        if labels[i]:
            x[i, 1:7, place, 0] = 1.0
        else:
            x[i, place, 1:7, 0] = 1.0
        for top, left in ((0, 8), (8, 0), (8, 8)):
            cells = rng.choice(64, 6, replace=False)
            x[i, top + cells // 8, left + cells % 8, 0] = 1.0
    return x, labels


def small_net(dtype=None, head: str = "softmax"):
    import keras

    layers = [keras.Input((16, 16, 1)), keras.layers.Conv2D(8, 3, padding="same", activation="relu", dtype=dtype),
              keras.layers.Conv2D(8, 3, padding="same", activation="relu", dtype=dtype),
              keras.layers.Flatten(dtype=dtype)]
    if head == "layer":  # the softmax as a layer of its own
        layers += [keras.layers.Dense(2, dtype=dtype), keras.layers.Softmax(dtype=dtype)]
    else:
        layers += [keras.layers.Dense(2, activation=None if head == "logits" else "softmax", dtype=dtype)]
    return keras.Sequential(layers)


def test_the_heat_is_in_the_quadrant_that_carries_the_label():
    import keras

    x, y = quadrant_task(1152, seed=0)
    keras.utils.set_random_seed(0)
    model = small_net()
    model.compile(keras.optimizers.Adam(3e-3), "sparse_categorical_crossentropy", metrics=["accuracy"])
    model.fit(x[:1024], y[:1024], epochs=6, batch_size=64, verbose=0)
    assert model.evaluate(x[1024:], y[1024:], verbose=0)[1] > 0.95  # it learned the task
    layer = find_layer(model)
    assert layer is model.layers[1]  # the last convolution, before Flatten
    heat, _ = GradCam(model, layer.name).heat(x[1024:], y[1024:])
    assert heat.shape == (128, 16, 16) and heat.min() >= 0 and np.allclose(heat.max(axis=(1, 2)), 1)
    quadrants = np.stack([heat[:, :8, :8], heat[:, :8, 8:], heat[:, 8:, :8], heat[:, 8:, 8:]], 1).mean(axis=(2, 3))
    assert (quadrants.argmax(1) == 0).mean() > 0.9  # the hottest quadrant, image by image (a quarter by chance)
    assert quadrants[:, 0].mean() > 1.25 * quadrants[:, 1:].mean(0).max(), quadrants.mean(0)


@pytest.mark.parametrize("head", ["softmax", "layer", "logits"])
def test_the_score_is_the_one_before_the_softmax(head):
    model = small_net(head=head)
    x = np.random.default_rng(1).random((4, 16, 16, 1), np.float32)
    output = model(x, training=False).numpy()
    scores = GradCam(model, find_layer(model).name).scores(x)
    if head == "logits":  # nothing to remove
        np.testing.assert_allclose(scores, output, atol=1e-6)
    else:
        np.testing.assert_allclose(softmax(scores), output, atol=1e-6)
        assert not np.allclose(scores, output, atol=1e-3)  # scores, not probabilities
    np.testing.assert_array_equal(model(x, training=False).numpy(), output)  # the model itself is left as it was


def test_a_mixed_precision_model_gets_the_float32_heat_of_its_weights():
    x, y = quadrant_task(8, seed=2)
    exact = small_net()
    mixed = small_net("mixed_float16")
    mixed.set_weights(exact.get_weights())
    assert not np.allclose(mixed(x).numpy(), exact(x).numpy(), atol=1e-6, rtol=0)  # float16 rounds
    cam = GradCam(mixed, find_layer(mixed).name)
    assert all(layer.compute_dtype == "float32" for layer in cam.scorer.layers)
    np.testing.assert_allclose(cam.heat(x, y)[0], GradCam(exact, find_layer(exact).name).heat(x, y)[0], atol=1e-5)


SLOW = pytest.mark.slow  # the zoo's networks: 3-10 s each on 2 cores
SHIPPED = [pytest.param(config, [], id=config) for config in (
    "slide_cnn.yaml", "lenet5.yaml", "resnet/resnet20.yaml", "graphs/se_resnet20.yaml", "graphs/densenet_bc40.yaml",
    "graphs/inception_small.yaml")] + [  # the zoo at a small input, whose last maps are still 2x2 or more
    pytest.param(f"zoo/{name}.yaml", [f"model.input_shape=[{size},{size},3]", "model.num_classes=5",
                                      "model.params.classes=5"], id=name, marks=marks)
    for name, size, marks in (("mobilenet_v2", 64, SLOW), ("vgg16", 64, SLOW), ("efficientnet_b0", 64, SLOW),
                              ("densenet121", 64, SLOW), ("inception_v3", 107, SLOW))]


@pytest.mark.parametrize("config, overrides", SHIPPED)
def test_the_last_convolutional_stage_is_found_in_every_kind_of_model(config, overrides):
    import keras

    from cnnzoo import build_model, load_config

    model = build_model(load_config(CONFIGS / config, overrides))
    layer = find_layer(model)
    assert len(layer.output.shape) == 4 and layer.output.shape[1] > 1
    consumer = layer._outbound_nodes[0].operation  # what reads it: the global pooling or flatten
    while isinstance(consumer, keras.layers.Dropout):
        consumer = consumer._outbound_nodes[0].operation
    assert isinstance(consumer, (keras.layers.GlobalAveragePooling2D, keras.layers.GlobalMaxPooling2D,
                                 keras.layers.Flatten)), type(consumer).__name__
    images = np.random.default_rng(0).random((2, *model.input_shape[1:]), np.float32)
    heat, scores = GradCam(model, layer.name).heat(images, np.array([0, 1]))
    assert heat.shape == (2, *model.input_shape[1:3]) and np.isfinite(heat).all() and heat.max() > 0
    np.testing.assert_allclose(softmax(scores), model(images, training=False).numpy(), atol=1e-5)


def test_a_named_layer_is_used_and_mistakes_in_naming_it_stop_validate():
    done = cli("validate", CONFIGS / "quickstart.yaml", "train.pictures.grad_cam_layer=conv2d_3")
    assert done.returncode == 0, done.stderr
    assert "Grad-CAM of `conv2d_3`" in done.stdout
    for name, says in (("conv2d_2", "no layer `conv2d_2` in the model for Grad-CAM. Did you mean `conv2d_3`"),
                       ("flatten_7", "`flatten_7` (Flatten) has output shape (None, 4608), not (batch, rows, columns, "
                                     "channels)")):
        done = cli("validate", CONFIGS / "quickstart.yaml", f"train.pictures.grad_cam_layer={name}")
        assert done.returncode == 2
        assert says in done.stderr and "`max_pooling2d_5`" in done.stderr  # the choices
        assert "train.pictures.grad_cam_layer" in done.stderr and len(done.stderr.strip().splitlines()) == 1
