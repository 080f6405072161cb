"""The callbacks every run gets (logging, checkpoints, resume, NaN guard) plus the config's own."""

from __future__ import annotations

import math
import signal
import time

import keras

from cnnzoo import registry
from cnnzoo.arguments import bind, construct
from cnnzoo.config.schema import Config
from cnnzoo.models.layer_factory import split_item
from cnnzoo.training.run_dir import RunDir


CALLBACK_EXAMPLE = "`- EarlyStopping: {monitor: val_loss, patience: 3}`"


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


class Backup(keras.callbacks.BackupAndRestore):
    """Keras' BackupAndRestore, also saving at each epoch's end when it saves every N steps.

    Keras saves either per epoch or per N steps; with steps only, a kill just after an
    epoch would replay that epoch. A resume restarts the interrupted epoch from its first
    batch with the weights, optimizer state and step counter of the last save, so
    learning-rate schedules go on where they were.
    """

    def on_epoch_end(self, epoch, logs=None):
        super().on_epoch_end(epoch, logs)
        if self.save_freq != "epoch":
            self.save_now()

    def save_now(self, batch: int | None = None) -> None:
        """Save now; `batch` (0-based) is recorded in the metadata for people, Keras ignores it."""
        if batch is not None:
            self._last_batch_seen = batch
        self._save_model()  # Keras' own writer: weights, optimizer state and the epoch reached


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
        self._previous = {s: signal.signal(s, self._handle) for s in self.SIGNALS}

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch = epoch

    def _handle(self, signum, frame):
        self._received = signum
        self._restore()

    def on_train_batch_end(self, batch, logs=None):
        if self._received is not None:
            self.backup.save_now(batch)
            raise Stopped(self._received, self._epoch + 1, batch + 1)

    def on_train_end(self, logs=None):
        self._restore()

    def _restore(self):
        for s, handler in self._previous.items():
            signal.signal(s, handler)
        self._previous = {}


def standard_callbacks(run: RunDir, monitor: str, backup_every_steps: int | None = None) -> list[keras.callbacks.Callback]:
    """NaN guard, timer, CSV history, resume state, TensorBoard, checkpoints: in the order they must run.

    The NaN guard comes first so no NaN weights are ever saved. The CSV row is written before
    the backup, so a kill between the two makes the resumed run write that epoch again
    (deduplicated later), never lose it.
    """
    run.checkpoints.mkdir(exist_ok=True)
    mode = "max" if "acc" in monitor else "min"
    backup = Backup(str(run.backup), save_freq=backup_every_steps or "epoch", double_checkpoint=True)
    return [
        NanGuard(),
        EpochTimer(),
        keras.callbacks.CSVLogger(str(run.history), append=True),
        backup,
        StopOnSignal(backup),
        keras.callbacks.TensorBoard(log_dir=str(run.logs), write_graph=True, update_freq="epoch"),
        keras.callbacks.ModelCheckpoint(str(run.checkpoints / "last.keras")),
        keras.callbacks.ModelCheckpoint(
            str(run.checkpoints / "best.keras"), monitor=monitor, mode=mode, save_best_only=True
        ),
    ]


def config_callbacks(config: Config) -> list[keras.callbacks.Callback]:
    """The callbacks listed under `train.callbacks`, e.g. `- EarlyStopping: {patience: 3}`."""
    result = []
    for i, item in enumerate(config.train.callbacks):
        where = config.where("train", "callbacks", i)
        path = f"train.callbacks.{i}"
        name, args, kwargs = split_item(item, what="a callback", location=where, path=path, example=CALLBACK_EXAMPLE)
        cls = registry.callbacks().get(name, location=where, path=path)
        bound = bind(cls, args, kwargs, what=f"callback {cls.__name__}", location=where, path=path,
                     locate=lambda key, i=i, name=name: config.where("train", "callbacks", i, name, key))
        result.append(construct(cls, bound, what=f"callback {cls.__name__}", location=where, path=path))
    return result
