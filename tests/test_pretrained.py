"""Starting from trained weights: `model.weights`, `model.freeze`, `train.phases`, a zoo model on new classes."""

from __future__ import annotations

import json

import keras
import numpy as np
import pytest

from cnnzoo import CnnzooError, build_model, load_config, train
from conftest import CONFIGS, cli, write

NET = """
model:
  name: small
  input_shape: [28, 28, 1]
  layers:
    - Conv2D: [4, 3]
    - BatchNormalization
    - Activation: relu
    - Conv2D: [4, 3]
    - BatchNormalization
    - Activation: relu
    - GlobalAveragePooling2D
    - Dense: 10
    - Activation: softmax
data: {name: mnist_sample, validation_split: null}
train:
  epochs: 2
  steps_per_epoch: 4
  optimizer: {name: adam, learning_rate: 0.05}
  pictures: false
runtime: {seed: 1}
"""
FIRST_BLOCK = ["conv2d_1", "batch_normalization_2", "activation_3"]


class Weights(keras.callbacks.Callback):
    """Every layer's weights (BatchNormalization's moving statistics included) when training begins."""

    def on_train_begin(self, logs=None):
        if not hasattr(self, "at_start"):
            self.at_start = {layer.name: [np.array(w) for w in layer.get_weights()] for layer in self.model.layers}


def same(a, b) -> bool:
    return len(a) == len(b) and all(np.array_equal(x, y) for x, y in zip(a, b))


def quiet(_):
    pass


@pytest.mark.slow
def test_frozen_layers_and_their_batchnorm_statistics_stay_bit_for_bit(tmp_path):
    config = load_config(write(tmp_path / "net.yaml", NET), ["model.freeze=activation_3"])
    seen = Weights()
    result = train(config, output_dir=str(tmp_path / "run"), callbacks=[seen], log=quiet)
    for layer in result.model.layers:
        moved = not same(seen.at_start[layer.name], layer.get_weights())
        assert moved == (layer.name in ("conv2d_4", "batch_normalization_5", "dense_8")), layer.name
    assert not result.model.get_layer("batch_normalization_2").trainable


def test_inspect_counts_frozen_parameters_and_a_wrong_name_is_refused(tmp_path):
    file = write(tmp_path / "net.yaml", NET)
    done = cli("inspect", file, "model.freeze=[conv2d_*]")
    assert done.returncode == 0, done.stderr
    assert "of which 188 frozen by model.freeze" in done.stdout  # 3x3x1x4 + 4 and 3x3x4x4 + 4 weights
    done = cli("validate", file, "model.freeze=conv2d_9")
    assert done.returncode == 2 and "no layer named `conv2d_9` to freeze" in done.stderr, done.stderr


@pytest.mark.slow
def test_weights_from_a_run_load_by_name_and_a_new_classifier_is_skipped_and_said(tmp_path):
    first = train(load_config(write(tmp_path / "net.yaml", NET)), output_dir=str(tmp_path / "first"), log=quiet)
    model = build_model(load_config(write(tmp_path / "five.yaml", NET.replace("Dense: 10", "Dense: 5"))))
    from cnnzoo.models.pretrained import load_weights

    report = load_weights(model, str(tmp_path / "first"), application=None, where=None)
    assert report.source == str(tmp_path / "first" / "checkpoints" / "best.keras")
    assert report.loaded == ["conv2d_1", "batch_normalization_2", "conv2d_4", "batch_normalization_5"]
    assert [name for name, _ in report.skipped] == ["dense_8"] and "4x10" in report.skipped[0][1]
    for name in report.loaded:
        assert same(model.get_layer(name).get_weights(), first.model.get_layer(name).get_weights())

    done = cli("validate", write(tmp_path / "ten.yaml", NET), f"model.weights={tmp_path / 'first' / 'model.keras'}")
    assert done.returncode == 0 and "weights of 5 layers loaded from" in done.stdout, done.stderr


def test_a_weights_h5_file_loads_and_nothing_matching_is_an_error(tmp_path):
    model = build_model(load_config(write(tmp_path / "net.yaml", NET)))
    model.save_weights(tmp_path / "w.weights.h5")
    done = cli("validate", tmp_path / "net.yaml", f"model.weights={tmp_path / 'w.weights.h5'}")
    assert done.returncode == 0 and "weights of 5 layers loaded" in done.stdout, done.stderr

    other = build_model(load_config(CONFIGS / "quickstart.yaml"))
    other.save(tmp_path / "other.keras")
    done = cli("validate", tmp_path / "net.yaml", f"model.weights={tmp_path / 'other.keras'}")
    assert done.returncode == 2 and "no layer of the model matches the weights" in done.stderr, done.stderr
    skipped = done.stderr.split("(skipped: ", 1)[1]  # a shape that differs is named first: the likely cause
    assert skipped.split(";")[0].split(": ", 1)[1].startswith("shapes"), done.stderr
    done = cli("validate", tmp_path / "net.yaml", f"model.weights={tmp_path / 'missing.keras'}")
    assert done.returncode == 2 and "is not a file or a run folder" in done.stderr


class StopIn(keras.callbacks.Callback):
    """Ctrl-C, in effect, at a given epoch and batch."""

    def __init__(self, epoch: int, batch: int):
        super().__init__()
        self.epoch, self.batch, self.now = epoch, batch, 0

    def on_epoch_begin(self, epoch, logs=None):
        self.now = epoch

    def on_train_batch_end(self, batch, logs=None):
        if (self.now, batch) == (self.epoch, self.batch):
            raise KeyboardInterrupt


PHASES = ("train.phases=[{epochs: 1, freeze: activation_3}, "
          "{epochs: 2, freeze: [], optimizer: {name: adam, learning_rate: 0.01}}]")


@pytest.mark.slow
def test_two_phases_in_one_run_and_resume_continues_in_the_second(tmp_path):
    config = load_config(write(tmp_path / "net.yaml", NET), [PHASES, "runtime.backup_every_steps=2"])
    assert config.train.epochs == 3
    seen = Weights()
    run = tmp_path / "run"
    with pytest.raises(CnnzooError, match="interrupted"):
        train(config, output_dir=str(run), callbacks=[seen, StopIn(epoch=1, batch=2)], log=quiet)
    state = json.loads((run / "backup" / "current" / "state.json").read_text())
    assert (state["epoch"], state["batch"]) == (1, 2)  # saved inside the second phase's first epoch

    said = []
    from cnnzoo.training.resume import resume

    result = resume(str(run), log=said.append)
    assert any("resuming from" in line and "after epoch 1" in line for line in said), said
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["epochs_completed"] == 3 and len(metrics["history"]["loss"]) == 3
    assert all(layer.trainable for layer in result.model.layers)  # the second phase unfroze everything
    first = result.model.get_layer("conv2d_1").get_weights()
    assert not same(seen.at_start["conv2d_1"], first)  # trained in the second phase


@pytest.mark.slow
def test_a_phase_that_freezes_keeps_those_weights_through_it(tmp_path):
    config = load_config(write(tmp_path / "net.yaml", NET), ["train.phases=[{epochs: 2, freeze: activation_3}, "
                                                               "{epochs: 1, freeze: [dense_8]}]"])

    class AtPhaseEnd(Weights):
        def on_train_end(self, logs=None):
            self.ends = getattr(self, "ends", []) + [{n: self.model.get_layer(n).get_weights() for n in FIRST_BLOCK[:2]}]

    seen = AtPhaseEnd()
    train(config, output_dir=str(tmp_path / "run"), callbacks=[seen], log=quiet)
    for name in FIRST_BLOCK[:2]:
        assert same(seen.at_start[name], seen.ends[0][name])  # frozen through phase 1
        assert not same(seen.ends[0][name], seen.ends[1][name])  # trained in phase 2


@pytest.mark.slow
def test_a_zoo_model_on_new_classes_keeps_every_pretrained_layer_but_the_classifier(tmp_path):
    imagenet = keras.applications.MobileNetV2(weights=None)
    imagenet.save(tmp_path / "mobilenet_v2.keras")
    config = load_config(CONFIGS / "zoo" / "mobilenet_v2_transfer.yaml",
                         [f"model.weights={tmp_path / 'mobilenet_v2.keras'}"])
    model = build_model(config)
    from cnnzoo.models.pretrained import load_weights

    report = load_weights(model, config.model.weights, application=config.model.application, where=None)
    assert len(report.loaded) == len([layer for layer in imagenet.layers if layer.weights]) - 1
    assert [why for _, why in report.skipped] == ["shapes 1280x1000... in the source, 1280x5... here"]
    assert model.output_shape == (None, 5)
    features = keras.Model(model.input, model.layers[-2].output)
    theirs = keras.Model(imagenet.input, imagenet.layers[-2].output)
    images = np.random.default_rng(0).random((2, 224, 224, 3), np.float32)
    np.testing.assert_allclose(features(images), theirs(images), atol=1e-5)


def test_imagenet_offline_names_the_file_and_where_to_put_it(tmp_path, monkeypatch):
    import keras.applications

    def offline(**_):
        raise Exception("URL fetch failure on https://storage.googleapis.com/tensorflow/keras-applications/"
                        "mobilenet_v2/mobilenet_v2_weights_tf_dim_ordering_tf_kernels_1.0_224.h5: None -- "
                        "[Errno -2] Name or service not known")

    monkeypatch.setattr(keras.applications, "MobileNetV2", offline)  # as Keras' get_file fails with no network
    from cnnzoo.models.pretrained import load_weights

    with pytest.raises(CnnzooError) as caught:
        load_weights(None, "imagenet", application="MobileNetV2", where=None)
    message = str(caught.value)
    assert "([Errno -2] Name or service not known)" in message
    assert "put mobilenet_v2_weights_tf_dim_ordering_tf_kernels_1.0_224.h5" in message and "~/.keras/models/" in message


@pytest.mark.slow
def test_a_classifier_for_other_classes_is_not_loaded_even_when_its_shape_fits(tmp_path):
    from test_folders import folder

    for name, classes in (("pets", None), ("bugs", ("ant", "bee", "cow"))):
        folder(tmp_path / name, per_class=12, sizes=((28, 28),))
        for old, new in zip(("cat", "dog", "eel"), classes or ()):
            (tmp_path / name / old).rename(tmp_path / name / new)

    def on(name: str):
        data = f"data: {{path: {tmp_path / name}, color_mode: grayscale, data_dir: {tmp_path / 'tfds'}}}"
        return write(tmp_path / f"{name}.yaml", NET.replace("Dense: 10", "Dense: 3").replace(
            "data: {name: mnist_sample, validation_split: null}", data))

    train(load_config(on("pets")), output_dir=str(tmp_path / "first"), log=quiet)  # records cat, dog, eel
    done = cli("validate", on("bugs"), f"model.weights={tmp_path / 'first'}")
    assert done.returncode == 0, done.stderr
    assert "1 skipped: dense_8 (its classes differ (cat, dog, eel in the source, ant, bee, cow here))" in done.stdout
    done = cli("validate", on("pets"), f"model.weights={tmp_path / 'first'}")
    assert "weights of 5 layers loaded from" in done.stdout and "skipped" not in done.stdout, done.stdout


def test_a_layer_built_untrainable_stays_fixed_through_training_and_a_phase_that_unfreezes(tmp_path):
    """`trainable: false` on a layer (a fixed whitening layer) holds in every phase, and on resume."""
    config = load_config(write(tmp_path / "net.yaml", NET), [PHASES, "model.layers.0={Conv2D: {filters: 4, "
                                                             "kernel_size: 3, trainable: false}}"])
    seen = Weights()
    result = train(config, output_dir=str(tmp_path / "run"), callbacks=[seen], log=quiet)
    assert not result.model.get_layer("conv2d_1").trainable
    assert same(seen.at_start["conv2d_1"], result.model.get_layer("conv2d_1").get_weights())
    assert not same(seen.at_start["conv2d_4"], result.model.get_layer("conv2d_4").get_weights())
