"""Two airbench features any config can use: per-weight learning-rate multipliers
(`train.optimizer.learning_rate_multipliers`) and identity (Dirac) kernels (`kernel_initializer: dirac`)."""

from __future__ import annotations

import json

import keras
import numpy as np
import pytest

from cnnzoo import BuildError, load_config
from cnnzoo.models.builder import build_model
from cnnzoo.models.compile import compile_model, make_optimizer
from conftest import TINY, without_cnnzoo

BN_MODEL = ("model.layers=[{Conv2D: [4, 3]}, BatchNormalization, Activation: relu, MaxPooling2D: 4, Flatten, "
            "{Dense: 10}, {Activation: softmax}]")


def _step(optimizer_yaml: str, optimizer_name: str = "sgd"):
    """One step with the same gradient (ones) on every weight of a model with a BatchNormalization:
    {weight path: how far it moved}."""
    config = load_config(TINY, [BN_MODEL, f"train.optimizer={{name: {optimizer_name}, learning_rate: 0.01"
                                          f"{optimizer_yaml}}}"])
    keras.utils.set_random_seed(0)
    model = build_model(config)
    before = {v.path: v.numpy().copy() for v in model.trainable_variables}
    make_optimizer(config).apply_gradients([(keras.ops.ones(v.shape), v) for v in model.trainable_variables])
    return {v.path: np.abs(v.numpy() - before[v.path]).max() for v in model.trainable_variables}


@pytest.mark.parametrize("optimizer_name", ["sgd", "adam"])
def test_a_multiplied_weight_steps_that_many_times_the_learning_rate(optimizer_name):
    plain = _step("", optimizer_name)
    multiplied = _step(", learning_rate_multipliers: {beta: 64, gamma: 0.5}", optimizer_name)
    for path, moved in plain.items():
        factor = 64 if path.endswith("beta") else 0.5 if path.endswith("gamma") else 1
        assert moved > 0
        assert multiplied[path] == pytest.approx(factor * moved, rel=1e-4), path


def test_multipliers_apply_in_a_real_fit_and_after_saving():
    """fit() goes through the same step; the saved model's optimizer config stays Keras' own."""
    def beta_moved(extra: str) -> float:
        config = load_config(TINY, [BN_MODEL, f"train.optimizer={{name: sgd, learning_rate: 0.05{extra}}}"])
        keras.utils.set_random_seed(0)
        model = build_model(config)
        compile_model(model, config)
        beta = next(v for v in model.trainable_variables if v.path.endswith("beta"))
        x = np.random.default_rng(0).random((32, 28, 28, 1), "float32")
        y = keras.utils.to_categorical(np.arange(32) % 10, 10)
        model.fit(x, y, batch_size=32, epochs=1, verbose=0)
        assert keras.optimizers.serialize(model.optimizer)["class_name"] == "SGD"
        return float(np.abs(beta.numpy()).max())

    assert beta_moved(", learning_rate_multipliers: {beta: 10}") == pytest.approx(10 * beta_moved(""), rel=1e-3)


@pytest.mark.parametrize("value, message", [
    ("{beta: 0}", "must be a number > 0"),
    ("{beta: fast}", "must be a number > 0"),
    ("[beta]", "must map weight names to factors"),
])
def test_multipliers_are_checked(value, message):
    with pytest.raises(BuildError, match=message) as err:
        make_optimizer(load_config(TINY, [f"train.optimizer={{name: sgd, learning_rate_multipliers: {value}}}"]))
    assert "train.optimizer.learning_rate_multipliers" in str(err.value)


def test_a_multiplier_naming_no_weight_is_refused_at_the_first_step():
    with pytest.raises(BuildError, match="`learning_rate_multipliers.betta` names no trainable weight") as err:
        _step(", learning_rate_multipliers: {betta: 64}")
    assert "beta" in err.value.hint


def _conv_kernel(initializer: str, filters: int = 6, channels: int = 4, seed: int = 0):
    keras.utils.set_random_seed(seed)
    config = load_config(TINY, [f"model.layers=[{{Conv2D: [{channels}, 1]}}, {{Conv2D: {{filters: {filters}, "
                                f"kernel_size: 3, padding: same, kernel_initializer: {initializer}}}}}, Flatten, "
                                "{Dense: 10}, {Activation: softmax}]"])
    model = build_model(config)
    conv, = [layer for layer in model.layers if getattr(layer, "kernel_size", None) == (3, 3)]
    return model, conv


def test_dirac_kernels_copy_their_input_and_draw_the_other_filters():
    model, conv = _conv_kernel("{dirac: {rest: he_normal}}")
    kernel = conv.kernel.numpy()
    assert kernel.shape == (3, 3, 4, 6)
    eye = np.zeros((3, 3, 4, 4), "float32")
    eye[1, 1, range(4), range(4)] = 1
    np.testing.assert_array_equal(kernel[..., :4], eye)
    assert kernel[..., 4:].std() > 0.05  # he_normal's draws
    x = np.random.default_rng(1).random((2, 5, 5, 4), "float32")
    out = keras.ops.convert_to_numpy(conv(x))
    np.testing.assert_allclose(out[..., :4], x, rtol=1e-6)  # a `same` convolution that copies its input
    assert conv.get_config()["kernel_initializer"]["class_name"] == "HeNormal"  # plain Keras when saved
    _, again = _conv_kernel("{dirac: {rest: he_normal}}")
    np.testing.assert_array_equal(again.kernel.numpy(), kernel)  # the same seed, the same kernel


def test_dirac_with_fewer_filters_than_channels_and_its_saved_model_loads_without_cnnzoo(tmp_path):
    model, conv = _conv_kernel("dirac", filters=3, channels=5)
    kernel = conv.kernel.numpy()
    assert np.array_equal(kernel[1, 1, :3, :3], np.eye(3)) and not kernel[1, 1, 3:].any()
    model.save(tmp_path / "m.keras")
    code = ("import keras, numpy as np, sys; m = keras.saving.load_model(sys.argv[1]); "
            "conv, = [l for l in m.layers if getattr(l, 'kernel_size', None) == (3, 3)]; "
            "print(float(np.abs(conv.kernel.numpy()[1, 1, :3, :3] - np.eye(3)).max()))")
    out = without_cnnzoo(code, tmp_path / "m.keras")
    assert out.returncode == 0, out.stderr[-2000:]
    assert json.loads(out.stdout.strip().splitlines()[-1]) == 0.0


@pytest.mark.parametrize("layer, message", [
    ("{Conv2DTranspose: {filters: 4, kernel_size: 3, kernel_initializer: dirac}}", "not of a Conv2DTranspose"),
    ("{Conv2D: {filters: 4, kernel_size: 3, kernel_initializer: {dirac: {scale: 2}}}}", "takes `rest`"),
    ("{Conv2D: {filters: 4, kernel_size: 3, kernel_initializer: {dirac: {rest: wobbly}}}}", "not a Keras initializer"),
])
def test_dirac_is_checked(layer, message):
    with pytest.raises(BuildError, match=message):
        build_model(load_config(TINY, [f"model.layers=[{layer}, Flatten, {{Dense: 10}}, {{Activation: softmax}}]"]))


def _flips(stream, epochs: int) -> np.ndarray:
    """(epoch, example) -> whether the example was seen mirrored; each image is its own index in a
    left-to-right ramp, so a flip shows as the ramp reversed."""
    seen = np.zeros((epochs, stream.batches * stream.data.batch_size), bool)
    for e in range(epochs):
        for images, labels in stream.epoch(e):
            rows = images.numpy()[:, 0, :, 0]
            seen[e, labels.numpy()] = rows[:, 0] > rows[:, -1]
    return seen


def test_alternating_flip_shows_every_image_both_ways_every_two_epochs():
    import tensorflow as tf

    from cnnzoo.data.pipeline import TrainStream, augment_fn

    data = load_config(TINY, ["data.augmentation.horizontal_flip=alternate", "data.batch_size=20",
                              "data.shuffle_buffer=100"]).data
    ramp = np.tile(np.arange(8, dtype="float32")[None, None, :, None], (100, 8, 1, 1))
    examples = tf.data.Dataset.from_tensor_slices((ramp, np.arange(100)))
    stream = TrainStream(examples, data, augment_fn(data, (8, 8, 1)), False, 5, seed=3)
    seen = _flips(stream, 3)
    assert 30 < seen[0].sum() < 70  # a random half first
    assert (seen[1] == ~seen[0]).all() and (seen[2] == seen[0]).all()
    np.testing.assert_array_equal(_flips(stream, 1)[0], seen[0])  # drawn from the seed: the same again
    other = _flips(TrainStream(examples, data, augment_fn(data, (8, 8, 1)), False, 5, seed=4), 1)[0]
    assert (other != seen[0]).any()
    random = load_config(TINY, ["data.augmentation.horizontal_flip=true", "data.batch_size=20"]).data
    plain = _flips(TrainStream(examples, random, augment_fn(random, (8, 8, 1)), False, 5, seed=3), 2)
    assert (plain[1] == plain[0]).sum() > 30  # a fresh coin each epoch, not the other side
