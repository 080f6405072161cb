"""`best.keras` stays the best across a resume; the monitored direction is Keras' own rule; EarlyStopping
and ReduceLROnPlateau go on counting where they were."""

from __future__ import annotations

import json

import keras
import numpy as np
import pytest

from cnnzoo import CnnzooError, load_config, train
from cnnzoo.training.checkpoints import RestoreCounters, callback_states, direction
from conftest import TINY, cli

QUICK = ["train.epochs=1", "train.steps_per_epoch=3", "train.pictures=false", "runtime.seed=2"]


@pytest.mark.slow
def test_a_resumed_run_replaces_best_keras_only_with_a_better_model(tmp_path):
    run = tmp_path / "run"
    assert cli("train", TINY, *QUICK, "--output-dir", run).returncode == 0
    record = json.loads((run / "checkpoints" / "best.json").read_text())
    assert record["monitor"] == "val_accuracy" and record["epoch"] == 1
    before = (run / "checkpoints" / "best.keras").read_bytes()
    (run / "checkpoints" / "best.json").write_text(json.dumps({**record, "value": 1.0}))  # unbeatable
    done = cli("train", "--resume", run, "train.epochs=2")
    assert done.returncode == 0, done.stderr
    assert (run / "checkpoints" / "best.keras").read_bytes() == before
    assert json.loads((run / "checkpoints" / "best.json").read_text())["value"] == 1.0


def test_the_direction_of_a_metric_is_keras_own_rule():
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2, activation="softmax")])
    model.compile("sgd", "categorical_crossentropy", metrics=["accuracy", keras.metrics.AUC(name="auc"),
                                                                keras.metrics.MeanSquaredError(name="mse")])
    model.fit(np.zeros((4, 3)), np.eye(2)[[0, 1, 0, 1]], verbose=0)  # compiled metrics exist once built
    assert direction("val_auc", model) == "max"  # no "acc" in its name: a substring rule got it wrong
    assert direction("val_accuracy", model) == "max"
    assert direction("val_mse", model) == "min" and direction("loss", model) == "min"
    assert direction("val_mse", model, mode="max") == "max"


def test_early_stopping_and_reduce_lr_counters_survive_a_resume():
    stopping = keras.callbacks.EarlyStopping(patience=5)
    plateau = keras.callbacks.ReduceLROnPlateau(patience=3)
    stopping.wait, stopping.best, stopping.best_epoch = 3, 0.25, 4
    plateau.wait, plateau.cooldown_counter, plateau.best = 2, 1, np.float32(0.5)
    states = json.loads(json.dumps(callback_states([stopping, plateau])))  # as state.json keeps them

    again = [keras.callbacks.EarlyStopping(patience=5), keras.callbacks.ReduceLROnPlateau(patience=3)]
    restore = RestoreCounters(again, states)
    for callback in again:
        callback.set_model(keras.Sequential([keras.Input((1,)), keras.layers.Dense(1)]))
        callback.on_train_begin()  # resets them
    restore.on_epoch_begin(4)
    assert (again[0].wait, again[0].best, again[0].best_epoch) == (3, 0.25, 4)
    assert (again[1].wait, again[1].cooldown_counter, again[1].best) == (2, 1, 0.5)


@pytest.mark.slow
def test_the_resume_state_holds_the_counters(tmp_path):
    class Stop(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            if epoch == 1:
                raise KeyboardInterrupt

    config = load_config(TINY, [*QUICK, "train.epochs=3",
                                                       "train.callbacks=[{EarlyStopping: {patience: 4}}]"])
    with pytest.raises(CnnzooError):
        train(config, output_dir=str(tmp_path / "run"), callbacks=[Stop()], log=lambda _: None)
    state = json.loads((tmp_path / "run" / "backup" / "current" / "state.json").read_text())
    assert state["epoch"] == 1 and set(state["callbacks"][0]) == {"wait", "stopped_epoch", "best", "best_epoch"}


@pytest.mark.slow
def test_an_override_that_resume_accepts_takes_effect_from_the_first_resumed_step(tmp_path):
    class Stop(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            if epoch == 1:
                raise KeyboardInterrupt

    overrides = [*QUICK, "train.epochs=2", "train.optimizer={name: sgd, learning_rate: 0.01}"]
    runs = {}
    for name in ("same", "faster"):
        with pytest.raises(CnnzooError):
            train(load_config(TINY, overrides), output_dir=str(tmp_path / name),
                  callbacks=[Stop()], log=lambda _: None)
    from cnnzoo.training.resume import resume

    said = []
    runs["same"] = resume(str(tmp_path / "same"), log=said.append)
    runs["faster"] = resume(str(tmp_path / "faster"), ("train.optimizer.learning_rate=1000.0",), log=said.append)
    assert any("learning rate 1000 from the override (the saved state had 0.01)" in line for line in said), said
    assert float(runs["faster"].model.optimizer.learning_rate.numpy()) == 1000.0
    same, faster = (r.metrics["history"]["loss"][-1] for r in (runs["same"], runs["faster"]))
    assert same != faster  # the resumed epoch trained differently (bit-identical before)
