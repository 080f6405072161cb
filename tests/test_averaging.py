"""Weight averaging (`train.optimizer.use_ema`): what is validated, checkpointed, tested, saved and exported
is the optimizer's moving average; the resume state keeps it."""

from __future__ import annotations

import json
import signal

import keras
import numpy as np
import pytest

from cnnzoo import CnnzooError, load_config, train
from cnnzoo.keras_internals import moving_averages
from cnnzoo.training.resume import resume
from conftest import TINY, cli

QUICK = TINY
AVERAGED = ["train.optimizer.use_ema=true", "train.optimizer.ema_momentum=0.8", "train.pictures=false",
            "data.augmentation.horizontal_flip=true"]


def _values(variables) -> list[np.ndarray]:
    return [np.array(v.numpy()) for v in variables]


def _same(a: list, b: list) -> bool:
    return len(a) == len(b) and all(np.array_equal(x, y) for x, y in zip(a, b))


class Watch(keras.callbacks.Callback):
    """What the model holds while validating and while training, against the optimizer's averages."""

    def __init__(self):
        super().__init__()
        self.validated_with_averages, self.trained_with_raw = [], []
        self.epoch_end_averages, self.last_raw = [], None

    def _averages(self):
        return _values(a for _, a in moving_averages(self.model.optimizer))

    def on_test_batch_begin(self, batch, logs=None):
        if batch == 0:
            self.validated_with_averages.append(_same(_values(self.model.trainable_weights), self._averages()))

    def on_train_batch_begin(self, batch, logs=None):
        if self.model.optimizer.iterations.numpy() > 1:  # from the second step on, the two differ
            self.trained_with_raw.append(not _same(_values(self.model.trainable_weights), self._averages()))

    def on_train_batch_end(self, batch, logs=None):
        self.last_raw = _values(self.model.trainable_weights)

    def on_epoch_end(self, epoch, logs=None):
        self.epoch_end_averages.append(self._averages())


@pytest.fixture(scope="module")
def averaged_run(tmp_path_factory):
    watch = Watch()
    config = load_config(QUICK, [*AVERAGED, "train.epochs=2", "train.steps_per_epoch=6", "runtime.seed=3"])
    result = train(config, output_dir=str(tmp_path_factory.mktemp("runs") / "ema"), log=lambda _: None,
                   callbacks=[watch])
    return result, watch


@pytest.mark.slow
def test_validation_checkpoints_test_and_saved_model_use_the_averaged_weights(averaged_run):
    result, watch = averaged_run
    averages = watch.epoch_end_averages[-1]
    assert watch.validated_with_averages == [True, True]
    assert watch.trained_with_raw and all(watch.trained_with_raw)
    assert not _same(averages, watch.last_raw)  # momentum 0.8: the average lags the raw weights
    assert _same(_values(result.model.trainable_weights), averages)
    run = result.run_dir
    saved = keras.models.load_model(run.model)
    assert _same(_values(saved.trainable_weights), averages)
    assert _same(_values(keras.models.load_model(run.checkpoints / "last.keras").trainable_weights), averages)
    best_epoch = json.loads((run.checkpoints / "best.json").read_text())["epoch"]
    best = keras.models.load_model(run.checkpoints / "best.keras")
    assert _same(_values(best.trainable_weights), watch.epoch_end_averages[best_epoch - 1])
    # the test number is the averaged model's: evaluating model.keras again gives it
    metrics = json.loads(run.metrics.read_text())
    again = cli("evaluate", run.path)
    assert again.returncode == 0, again.stderr
    assert f"{metrics['test']['accuracy']:.4f}" in again.stdout


@pytest.mark.slow
def test_the_exported_model_carries_the_averaged_weights(averaged_run, tmp_path):
    from cnnzoo.deploy.export import export

    result, watch = averaged_run
    target = export(str(result.run_dir.path), "keras", output=str(tmp_path / "m.keras"))
    exported = _values(keras.models.load_model(target).weights)
    for average in watch.epoch_end_averages[-1]:
        assert any(np.array_equal(average, weight) for weight in exported)
    assert not all(any(np.array_equal(raw, weight) for weight in exported) for raw in watch.last_raw)


@pytest.mark.slow
def test_an_averaging_run_stopped_inside_an_epoch_and_resumed_ends_as_the_uninterrupted_one(tmp_path):
    """The resume state holds the raw weights and the averages: the resumed run's final (averaged)
    weights, its averages and its validation losses equal those of a run never stopped. The resumed
    run fits the rest of epoch 2, then epoch 3: the raw weights, not the averages, go on between them."""
    import os

    overrides = [*AVERAGED, "train.epochs=3", "train.steps_per_epoch=5", "runtime.seed=5"]

    class Stop(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            self.epoch = epoch

        def on_train_batch_end(self, batch, logs=None):
            if self.epoch == 1 and batch == 1:
                os.kill(os.getpid(), signal.SIGINT)  # handled after this batch

    whole = train(load_config(QUICK, overrides), output_dir=str(tmp_path / "whole"), log=lambda _: None)
    with pytest.raises(CnnzooError, match="at epoch 2, batch 3"):
        train(load_config(QUICK, overrides), output_dir=str(tmp_path / "stopped"), log=lambda _: None,
              callbacks=[Stop()])
    resumed = resume(str(tmp_path / "stopped"), log=lambda _: None)
    assert int(resumed.model.optimizer.iterations.numpy()) == 15
    assert resumed.metrics["weights_sha256"] == whole.metrics["weights_sha256"]
    assert resumed.metrics["history"]["val_loss"] == whole.metrics["history"]["val_loss"]
    averages = [_values(a for _, a in moving_averages(r.model.optimizer)) for r in (whole, resumed)]
    assert _same(*averages)


@pytest.mark.parametrize("override, message", [
    ("train.optimizer.use_ema=1", "`use_ema` must be true or false, got 1"),
    ("train.optimizer.ema_momentum=0.99", "`ema_momentum` sets the optimizer's moving average of the weights, "
                                          "which is off"),
    ("train.optimizer.use_ema=true train.optimizer.ema_momentum=1.5", "`ema_momentum` must be in the range [0, 1]"),
])
def test_averaging_settings_are_checked_before_training(override, message, tmp_path):
    done = cli("validate", QUICK, *override.split())
    assert done.returncode == 2
    assert message in done.stderr and "train.optimizer" in done.stderr
