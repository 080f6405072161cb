"""The callbacks every run gets: logging, checkpoints, resume state, NaN guard, signals."""

from __future__ import annotations

import math
import signal
import threading
import time

import keras

from cnnzoo.training.averaging import AveragedWeights
from cnnzoo.training.checkpoints import Backup, Checkpoints
from cnnzoo.training.run_dir import RunDir


class EpochTimer(keras.callbacks.Callback):
    """Adds `epoch_seconds` to each epoch's logs (so CSV, TensorBoard and metrics.json get it)."""

    def on_epoch_begin(self, epoch, logs=None):
        self._start = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        if logs is not None:
            logs["epoch_seconds"] = time.perf_counter() - self._start


class Diverged(Exception):
    """Raised inside fit at the first NaN/inf loss, so no NaN weights are saved as a checkpoint."""

    def __init__(self, epoch: int, batch: int):
        super().__init__(f"NaN/inf loss at epoch {epoch}, batch {batch}")
        self.epoch, self.batch = epoch, batch


class NanGuard(keras.callbacks.Callback):
    """Stops training at the first NaN/inf loss, before the epoch's checkpoints and backup are written.

    Keras' TerminateOnNaN lets the epoch end, so ModelCheckpoint would save NaN weights
    and BackupAndRestore would delete the last good state.
    """

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch = epoch

    def on_train_batch_end(self, batch, logs=None):
        loss = (logs or {}).get("loss")
        if loss is not None and not math.isfinite(float(loss)):
            raise Diverged(self._epoch + 1, batch + 1)


class EpochLine(keras.callbacks.Callback):
    """One line per epoch for logs and CI (Keras' verbose=2 prints two)."""

    def __init__(self, epochs: int, log=print):
        super().__init__()
        self.epochs, self.log = epochs, log

    def on_epoch_end(self, epoch, logs=None):
        logs = dict(logs or {})
        seconds = logs.pop("epoch_seconds", float("nan"))
        values = " - ".join(f"{key} {value:.4f}" for key, value in logs.items())
        self.log(f"epoch {epoch + 1}/{self.epochs} - {seconds:.1f}s - {values}")


class Stopped(Exception):
    """Raised inside fit after SIGINT/SIGTERM, once the resume state has been saved."""

    def __init__(self, signum: int, epoch: int, batch: int):
        super().__init__(f"{signal.Signals(signum).name} at epoch {epoch}, batch {batch}")
        self.signum, self.epoch, self.batch = signum, epoch, batch


class StopOnSignal(keras.callbacks.Callback):
    """SIGINT (Ctrl-C) or SIGTERM (a scheduler's stop) ends training cleanly after the current batch.

    The batch finishes, the resume state is saved, and `Stopped` ends fit. A second signal
    acts at once (Python's default), for a step that never ends.
    """

    SIGNALS = (signal.SIGINT, signal.SIGTERM)

    def __init__(self, backup: Backup):
        super().__init__()
        self.backup = backup
        self._received: int | None = None
        self._previous: dict[int, object] = {}

    def on_train_begin(self, logs=None):
        # Python allows handlers on the main thread only: `cnnzoo.train` called from another thread
        # trains without them (stop it from the main thread's own handlers).
        if threading.current_thread() is threading.main_thread():
            self._previous = {s: signal.signal(s, self._handle) for s in self.SIGNALS}

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch = epoch

    def _handle(self, signum, frame):
        self._received = signum
        self._restore()

    def on_train_batch_end(self, batch, logs=None):
        if self._received is not None:
            self.backup.save_now()
            raise Stopped(self._received, self._epoch + 1, self.backup.batch)

    def on_train_end(self, logs=None):
        self._restore()

    def close(self) -> None:
        """The handlers as they were, also when fit ends with an exception (Keras then skips on_train_end)."""
        self._restore()

    def _restore(self):
        for s, handler in self._previous.items():
            signal.signal(s, handler)
        self._previous = {}


def standard_callbacks(run: RunDir, monitor: str, backup_every_steps: int | None = None,
                       watched: list | None = None, measures: list | None = None) -> list[keras.callbacks.Callback]:
    """NaN guard, timer, CSV history, resume state, averaged weights, TensorBoard, checkpoints: in the
    order they must run.

    The NaN guard comes first so no NaN weights are ever saved. The CSV row is written before
    the resume state, so a kill between the two makes the resumed run write that epoch again
    (the later row wins when read), never lose it. The resume state holds the raw weights; with
    `use_ema`, everything after it at an epoch's end sees the averaged ones. `measures` add figures
    to the epoch's logs (validation with test-time augmentation), before they are written.
    """
    backup = Backup(run, backup_every_steps)
    backup.watched = list(watched or [])
    return [
        NanGuard(),
        EpochTimer(),
        *(measures or []),
        keras.callbacks.CSVLogger(str(run.history), append=True),
        backup,
        StopOnSignal(backup),
        AveragedWeights(),
        keras.callbacks.TensorBoard(log_dir=str(run.logs), write_graph=True, update_freq="epoch"),
        Checkpoints(run, monitor),
    ]
