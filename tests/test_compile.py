"""Optimizer, schedule, callbacks and preprocessing from the config, checked against Keras."""

from __future__ import annotations

import keras
import numpy as np
import pytest

from cnnzoo import BuildError, load_config
from cnnzoo.config.loader import COMMAND_LINE
from cnnzoo.data.pipeline import preprocess_fn as _preprocess_fn
from cnnzoo.models.compile import config_callbacks
from cnnzoo.models.compile import compile_model, make_loss, make_optimizer, uses_one_hot_labels
from conftest import CONFIGS

SLIDE = CONFIGS / "slide_cnn.yaml"


def test_optimizer_class_and_kwargs():
    optimizer = make_optimizer(load_config(SLIDE, ["train.optimizer={name: sgd, learning_rate: 0.05, momentum: 0.9}"]))
    assert isinstance(optimizer, keras.optimizers.SGD)
    assert float(optimizer.learning_rate) == pytest.approx(0.05) and optimizer.momentum == 0.9


def test_lr_schedule_replaces_the_learning_rate():
    config = load_config(SLIDE, ["train.lr_schedule={name: ExponentialDecay, initial_learning_rate: 1.0, decay_steps: 10, decay_rate: 0.5}"])
    optimizer = make_optimizer(config)
    schedule = optimizer._learning_rate
    assert isinstance(schedule, keras.optimizers.schedules.ExponentialDecay)
    assert float(schedule(10)) == pytest.approx(0.5)


def test_bad_schedule_argument_points_at_the_command_line():
    config = load_config(SLIDE, ["train.lr_schedule={name: ExponentialDecay, initial_lr: 1.0}"])
    with pytest.raises(BuildError) as info:
        make_optimizer(config)
    assert str(info.value).startswith(COMMAND_LINE) and "no argument `initial_lr`" in str(info.value)


def test_config_callbacks_are_built_with_their_arguments():
    config = load_config(SLIDE, ["train.callbacks=[{EarlyStopping: {monitor: val_loss, patience: 2}}, TerminateOnNaN]"])
    early, nan = config_callbacks(config)
    assert isinstance(early, keras.callbacks.EarlyStopping) and early.patience == 2
    assert isinstance(nan, keras.callbacks.TerminateOnNaN)


def test_labels_follow_the_loss():
    assert uses_one_hot_labels("categorical_crossentropy")
    assert not uses_one_hot_labels("sparse_categorical_crossentropy")


def test_preprocessing_scales_normalises_and_one_hots():
    config = load_config(SLIDE, ["data.preprocessing={mean: [0.5], std: [0.25]}"])
    image = np.full((2, 2, 1), 255, np.uint8)
    x, y = _preprocess_fn(config.data, 10, one_hot=True)(image, 3)
    np.testing.assert_allclose(x.numpy(), np.full((2, 2, 1), 2.0))  # (1.0 - 0.5) / 0.25
    assert y.numpy().tolist() == [0, 0, 0, 1, 0, 0, 0, 0, 0, 0]
    _, label = _preprocess_fn(config.data, 10, one_hot=False)(image, 3)
    assert int(label) == 3


def test_integer_learning_rate_is_accepted_as_a_float():
    optimizer = make_optimizer(load_config(SLIDE, ["train.optimizer.learning_rate=1"]))
    assert float(optimizer.learning_rate) == 1.0


@pytest.mark.parametrize(
    "override, message",
    [
        ("train.optimizer.learning_rate=fast", "argument `learning_rate` expects a number, got 'fast'"),
        ("train.optimizer={name: sgd, clipnorm: 1, clipvalue: 1}", "optimizer SGD: Only one of `clipnorm`"),
    ],
)
def test_optimizer_arguments_keras_rejects_are_build_errors(override, message):
    with pytest.raises(BuildError, match=message) as info:
        make_optimizer(load_config(SLIDE, [override]))
    assert str(info.value).startswith(COMMAND_LINE)


def test_loss_class_names_get_one_hot_labels_too():
    assert uses_one_hot_labels("CategoricalCrossentropy")
    assert not uses_one_hot_labels("SparseCategoricalCrossentropy")


def test_preprocessing_must_match_the_channels():
    from cnnzoo import DataError
    from cnnzoo.data.catalog import dataset_signature

    config = load_config(CONFIGS / "quickstart.yaml", ["data.preprocessing={mean: [0.1, 0.2, 0.3]}"])
    with pytest.raises(DataError, match=r"3 values, one per channel, but the model.s images have 1 channel \(`mnist"):
        dataset_signature(config)
    signature = dataset_signature(load_config(CONFIGS / "quickstart.yaml"))
    assert (signature.image_shape, signature.num_classes) == ((28, 28, 1), 10)


@pytest.mark.parametrize("name", ["mnist:9.9.9", "mnist/foo", "mnits"])
def test_odd_dataset_names_are_data_errors(name):
    from cnnzoo import DataError
    from cnnzoo.data.catalog import get_builder

    config = load_config(SLIDE, [f"data.name='{name}'"])
    with pytest.raises(DataError, match="TFDS has no dataset"):
        get_builder(config.data, config.where("data", "name"))


def test_loss_with_arguments_builds_the_keras_class_and_trains():
    config = load_config(SLIDE, ["train.loss={name: categorical_crossentropy, label_smoothing: 0.1}"])
    loss = make_loss(config)
    assert isinstance(loss, keras.losses.CategoricalCrossentropy) and loss.label_smoothing == pytest.approx(0.1)
    # Smoothing is in the value Keras computes: a sure right answer still costs something.
    y = np.eye(10, dtype="float32")[:2]
    assert float(loss(y, np.clip(y, 1e-7, 1.0))) > 0.1
    assert make_loss(load_config(SLIDE)) == "categorical_crossentropy"  # no arguments: the name, as Keras takes it
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(10, activation="softmax")])
    compile_model(model, config)
    assert model.fit(np.ones((8, 4)), np.eye(10)[:8], epochs=1, verbose=0).history["loss"][0] > 0


def test_bad_loss_argument_names_the_line(tmp_path):
    path = tmp_path / "smooth.yaml"
    path.write_text(f"extends: {SLIDE}\ntrain:\n  loss: {{name: categorical_crossentropy, smoothing: 0.1}}\n")
    with pytest.raises(BuildError) as info:
        make_loss(load_config(path))
    message = str(info.value)
    assert message.startswith(f"{path}:3") and "no argument `smoothing`" in message and "label_smoothing" in message


def test_extending_with_another_loss_class_drops_the_old_arguments(tmp_path):
    base = tmp_path / "base.yaml"
    base.write_text(f"extends: {SLIDE}\ntrain:\n  loss: {{name: categorical_crossentropy, label_smoothing: 0.1}}\n")
    child = tmp_path / "child.yaml"
    child.write_text("extends: base.yaml\ntrain:\n  loss: {name: categorical_focal_crossentropy, gamma: 3.0}\n")
    loss = make_loss(load_config(child))
    assert isinstance(loss, keras.losses.CategoricalFocalCrossentropy) and loss.gamma == 3.0
    assert loss.label_smoothing == 0.0


def test_weights_excluded_from_weight_decay_keep_their_values_under_a_decay_step():
    """A step with zero gradients: only the decay moves weights; the excluded ones (biases, BatchNormalization's
    gamma and beta) stay, the kernels shrink by learning_rate * weight_decay."""
    config = load_config(SLIDE, ["train.optimizer={name: sgd, learning_rate: 0.1, weight_decay: 0.5, "
                                 "exclude_from_weight_decay: [bias, gamma, beta]}"])
    model = keras.Sequential([keras.Input((3, 3, 2)), keras.layers.Conv2D(4, 2), keras.layers.BatchNormalization(),
                              keras.layers.Flatten(), keras.layers.Dense(2)])
    model.layers[1].gamma.assign(np.full(4, 2.0, "float32"))
    model.layers[1].beta.assign(np.full(4, 0.5, "float32"))
    for bias in (model.layers[0].bias, model.layers[3].bias):
        bias.assign(np.ones(bias.shape, "float32"))
    before = {v.path: v.numpy().copy() for v in model.trainable_variables}
    optimizer = make_optimizer(config)
    optimizer.apply_gradients([(keras.ops.zeros(v.shape), v) for v in model.trainable_variables])
    for v in model.trainable_variables:
        expected = before[v.path] * (1 - 0.1 * 0.5) if v.name == "kernel" else before[v.path]
        np.testing.assert_allclose(v.numpy(), expected, rtol=1e-6, err_msg=v.path)
    plain = make_optimizer(load_config(SLIDE, ["train.optimizer={name: sgd, learning_rate: 0.1, weight_decay: 0.5}"]))
    plain.apply_gradients([(keras.ops.zeros(v.shape), v) for v in model.trainable_variables])
    assert np.all(np.abs(model.layers[0].bias.numpy()) < 1)  # without the exclusions, biases decay too


@pytest.mark.parametrize("optimizer, message", [
    ("{name: sgd, exclude_from_weight_decay: [bias]}", "without a `weight_decay` has nothing to exclude from"),
    ("{name: sgd, weight_decay: 0.1, exclude_from_weight_decay: bias}", "must be a list of weight names"),
    ("{name: sgd, weight_decay: 0.1, exclude_from_weight_decay: []}", "must be a list of weight names"),
])
def test_weight_decay_exclusions_are_checked(optimizer, message):
    with pytest.raises(BuildError, match=message) as err:
        make_optimizer(load_config(SLIDE, [f"train.optimizer={optimizer}"]))
    assert "train.optimizer.exclude_from_weight_decay" in str(err.value)


@pytest.mark.parametrize("loss, warns", [("categorical_crossentropy", True),
                                         ("{name: categorical_crossentropy, from_logits: true}", False)])
def test_a_model_without_softmax_is_warned_about_unless_trained_on_logits(loss, warns, recwarn):
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(10)])
    compile_model(model, load_config(SLIDE, [f"train.loss={loss}"]))
    said = [str(w.message) for w in recwarn.list if "is not a softmax" in str(w.message)]
    assert len(said) == warns, said
