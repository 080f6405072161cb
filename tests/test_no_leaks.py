"""A run leaves its process as it found it, even when it fails; it trains from a thread too."""

from __future__ import annotations

import gc
import signal
import threading

import keras
import pytest

from cnnzoo import load_config, train
from conftest import CONFIGS

SHORT = ["train.epochs=1", "train.steps_per_epoch=2", "runtime.seed=1"]


class Boom(keras.callbacks.Callback):
    """A failure inside fit (as a full disk or a NaN inside a sweep), keeping the model to look at."""

    def on_train_batch_end(self, batch, logs=None):
        self.seen, self.frozen = self.model, gc.get_freeze_count()
        raise RuntimeError("boom")


@pytest.mark.slow
def test_a_failed_run_restores_signal_handlers_and_unpatches_the_model(tmp_path, unfrozen):
    before = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
    boom = Boom()
    with pytest.raises(RuntimeError, match="boom"):  # pictures on: they patch compute_metrics
        train(load_config(CONFIGS / "quickstart.yaml", [*SHORT, "train.pictures=true"]),
              output_dir=str(tmp_path / "run"), callbacks=[boom], log=lambda _: None)
    assert {s: signal.getsignal(s) for s in before} == before  # the next Ctrl-C is not swallowed
    assert "compute_metrics" not in boom.seen.__dict__
    assert boom.frozen > 0 and gc.get_freeze_count() == 0  # the heap frozen during the run only


@pytest.mark.slow
def test_a_run_trains_from_a_thread(tmp_path):
    outcome = {}

    def run():
        try:
            outcome["metrics"] = train(load_config(CONFIGS / "quickstart.yaml", [*SHORT, "train.pictures=false"]),
                                       output_dir=str(tmp_path / "run"), log=lambda _: None).metrics
        except BaseException as exc:  # noqa: BLE001 - reported below
            outcome["error"] = exc

    thread = threading.Thread(target=run)
    thread.start()
    thread.join()
    assert "error" not in outcome, outcome.get("error")
    assert outcome["metrics"]["epochs_completed"] == 1
