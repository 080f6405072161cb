"""Saved state that a kill cannot corrupt, and finding the newest intact state to resume from.

Every file is written under a temporary name in the same folder and renamed into place, so
a SIGKILL in the middle of a save leaves the previous complete file. The resume state
(weights with the optimizer's slots and step counter, and the epoch reached) lives in
`backup/`: each save writes `backup/next/` whole, then moves `current/` to `previous/` and
`next/` to `current/`. At `--resume` the candidates are tried newest first: `backup/current`,
`backup/next`, `backup/previous` (then the files Keras' BackupAndRestore wrote for runs of
earlier cnnzoo versions), `checkpoints/last.keras`, `model.keras`; one that does not load is
reported by name and the next one is used.
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

import keras

from cnnzoo.training.run_dir import RunDir, write_json

WEIGHTS = "model.weights.h5"  # Keras wants this suffix; the file holds the optimizer's state too
STATE = "state.json"  # written last: a folder without it is an unfinished save


def save_model_atomically(model, path: Path) -> None:
    """`model.save(path)` via a temporary `.keras` file renamed into place."""
    tmp = path.with_name(f".{path.stem}.tmp.keras")
    model.save(tmp)
    os.replace(tmp, path)


def copy_atomically(source: Path, path: Path) -> None:
    """A copy of `source` as `path`, via a temporary file renamed into place: the same bytes as
    saving the model again, at the cost of a file copy."""
    tmp = path.with_name(f".{path.stem}.tmp{path.suffix}")
    shutil.copyfile(source, tmp)
    os.replace(tmp, path)


class Backup(keras.callbacks.Callback):
    """The resume state, saved at every epoch's end and every `every_steps` batches; removed when training ends.

    Keras' BackupAndRestore writes its files in place (a kill mid-save leaves a truncated
    file) and restores inside `fit`, where a corrupt file ends training with a traceback;
    here the trainer restores before `fit` (see `restore`).
    """

    def __init__(self, run: RunDir, every_steps: int | None = None):
        super().__init__()
        self.folder, self.every_steps = run.backup, every_steps
        self.keep = False  # True between the fits of one run: the next `fit` goes on from this state
        self.offset = 0  # batches of the first epoch trained before this fit (a resume inside an epoch)
        self.watched: list = []  # callbacks whose counters are part of the state (EarlyStopping, ...)
        self._epoch, self._batch, self._saved_batch = 0, 0, 0

    @property
    def batch(self) -> int:
        """Batches done in the current epoch."""
        return self._batch

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch, self._batch, self._saved_batch = epoch, self.offset, self.offset

    def on_train_batch_end(self, batch, logs=None):
        # With runtime.steps_per_execution N, Keras calls this every N batches: count, don't take a modulo.
        self._batch = self.offset + batch + 1
        if self.every_steps and self._batch - self._saved_batch >= self.every_steps:
            self.save_now()

    def on_epoch_end(self, epoch, logs=None):
        self._epoch, self._batch = epoch + 1, 0
        self.save_now()

    def on_train_end(self, logs=None):
        if not self.keep:
            shutil.rmtree(self.folder, ignore_errors=True)

    def save_now(self) -> None:
        """Save the state reached: weights, optimizer, the epoch and the batches done in it."""
        fresh = self.folder / "next"
        shutil.rmtree(fresh, ignore_errors=True)
        fresh.mkdir(parents=True)
        self.model.save_weights(fresh / WEIGHTS)
        step = int(self.model.optimizer.iterations.numpy())
        (fresh / STATE).write_text(json.dumps({"epoch": self._epoch, "batch": self._batch, "step": step,
                                               "callbacks": callback_states(self.watched),
                                               "random": random_states(self.model)}))
        current, previous = self.folder / "current", self.folder / "previous"
        if current.exists():
            shutil.rmtree(previous, ignore_errors=True)
            os.replace(current, previous)
        os.replace(fresh, current)
        self._saved_batch = self._batch


def _random_generators(model) -> list:
    """The model's random generators' states (dropout's, ...): Keras keeps them beside the weights, not in them."""
    weights = {id(w) for w in model.weights}
    return [v for v in model.variables if id(v) not in weights]


def random_states(model) -> list[list[int]]:
    return [[int(x) for x in v.numpy().ravel()] for v in _random_generators(model)]


def set_random_states(model, states: list | None) -> None:
    """Put saved generator states back, so dropout draws the masks an uninterrupted run draws."""
    import numpy as np

    variables = _random_generators(model)
    if not states or len(states) != len(variables):
        return  # saved by an earlier cnnzoo, or another model: the generators go on from their seeds
    for variable, state in zip(variables, states):
        if np.size(state) == np.prod(variable.shape):
            variable.assign(np.asarray(state).reshape(variable.shape).astype(variable.dtype))


def direction(monitor: str, model, mode: str = "auto") -> str:
    """`max` or `min`: Keras' own rule (its callbacks' `mode="auto"`): `loss` is minimised, a
    compiled metric goes the way it declares (accuracy, AUC and precision up; errors down)."""
    if mode in ("min", "max"):
        return mode
    name = monitor.removeprefix("val_")
    found = "min" if name == "loss" else None
    for holder in getattr(model, "metrics", []):
        for metric in getattr(holder, "metrics", [holder]):  # compiled metrics come in a container
            if metric.name == name and getattr(metric, "_direction", None) in ("up", "down"):
                found = "max" if metric._direction == "up" else "min"
    return found or ("max" if "acc" in name else "min")


class Checkpoints(keras.callbacks.Callback):
    """`checkpoints/last.keras` every epoch and `best.keras` when `monitor` improves, both written atomically.

    The best value so far is kept in `checkpoints/best.json`, so a resumed run replaces best.keras
    only with a better model.
    """

    def __init__(self, run: RunDir, monitor: str, mode: str = "auto"):
        super().__init__()
        self.run, self.monitor, self.mode = run, monitor, mode
        self.best = None
        record = _read_json(run.checkpoints / "best.json")
        if record.get("monitor") == monitor and isinstance(record.get("value"), (int, float)):
            self.best = float(record["value"])

    def on_epoch_end(self, epoch, logs=None):
        self.run.checkpoints.mkdir(exist_ok=True)
        save_model_atomically(self.model, self.run.checkpoints / "last.keras")
        write_json(self.run.checkpoints / "last.json", {"epoch": epoch + 1})
        value = (logs or {}).get(self.monitor)
        if value is None:
            return
        if self.best is None or _improves(float(value), self.best, direction(self.monitor, self.model, self.mode)):
            self.best = float(value)
            copy_atomically(self.run.checkpoints / "last.keras", self.run.checkpoints / "best.keras")
            write_json(self.run.checkpoints / "best.json", {"monitor": self.monitor, "value": self.best,
                                                            "epoch": epoch + 1})


def _improves(value: float, best: float, way: str) -> bool:
    return value > best if way == "max" else value < best


# What a monitoring callback has counted, restored on resume (its best weights are not kept).
WATCHED = {"EarlyStopping": ("wait", "stopped_epoch", "best", "best_epoch"),
           "ReduceLROnPlateau": ("wait", "cooldown_counter", "best")}


def callback_states(callbacks: list) -> list[dict]:
    """The counters of EarlyStopping and ReduceLROnPlateau callbacks, in order."""
    def plain(value):
        return float(value) if hasattr(value, "__float__") and not isinstance(value, (bool, int)) else value
    return [{key: plain(getattr(c, key, None)) for key in WATCHED[type(c).__name__]} for c in callbacks]


class RestoreCounters(keras.callbacks.Callback):
    """Give resumed EarlyStopping and ReduceLROnPlateau callbacks the counts they had, at the first
    epoch's start (their `on_train_begin` resets them, whatever runs before it)."""

    def __init__(self, callbacks: list, states: list | None):
        super().__init__()
        self.callbacks, self.states = callbacks, states

    def on_epoch_begin(self, epoch, logs=None):
        for callback, state in zip(self.callbacks, self.states or []):
            for key, value in (state or {}).items():
                if value is not None:
                    setattr(callback, key, value)
        self.states = None


def _read_json(path: Path) -> dict:
    try:
        value = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return value if isinstance(value, dict) else {}


@dataclass(frozen=True)
class Restored:
    """What a resume starts from."""

    epoch: int  # epochs completed: training goes on with the next one
    source: Path | None  # the file or folder loaded; None: nothing was saved, training starts again
    skipped: tuple[str, ...] = ()  # candidates that did not load, each with the reason
    counters: list | None = None  # the monitoring callbacks' counts (`callback_states`), where saved
    batch: int = 0  # batches of the next epoch already trained (a save inside an epoch)


class NoIntactState(Exception):
    """Every saved state of a run failed to load."""

    def __init__(self, skipped: tuple[str, ...]):
        super().__init__("; ".join(skipped))
        self.skipped = skipped


def restore(run: RunDir, model, completed_epochs: int, prepare=None) -> Restored:
    """Load the newest intact saved state into `model` (compiled, optimizer built here).

    `completed_epochs` is the number of epochs history.csv records (those of `model.keras`).
    `prepare(epoch, batch)`, called before each candidate loads, sets the model up as it was when
    that state was saved (the phase's frozen layers and optimizer: its slots must match).
    """
    skipped = []
    for source, epoch_of in _candidates(run, completed_epochs):
        if not source.exists():
            continue
        try:
            epoch = epoch_of()
            if prepare is not None:
                prepare(epoch, _batch_of(source))
            model.optimizer.build(model.trainable_variables)
            model.load_weights(source / WEIGHTS if source.is_dir() else source)
        except Exception as exc:  # h5py, zipfile, JSON and Keras all raise their own kinds
            skipped.append(f"{source} could not be loaded ({_reason(exc)})")
            continue
        state = _read_json(source / STATE) if source.is_dir() else {}
        set_random_states(model, state.get("random"))
        counters = state.get("callbacks")
        return Restored(epoch, source, tuple(skipped), counters, _batch_of(source))
    if skipped:
        raise NoIntactState(tuple(skipped))
    return Restored(0, None)


def has_saved_state(run: RunDir) -> bool:
    """Whether a run saved anything `--resume` can start from (whatever its status says: a SIGKILL,
    the OOM killer or a power cut leave `running`, a full disk `failed: ...`)."""
    return any(source.exists() for source, _ in _candidates(run, 0))


def _batch_of(source: Path) -> int:
    """Batches done in the epoch a backup folder was saved in (0: saved at an epoch's end)."""
    try:
        return int(json.loads((source / STATE).read_text()).get("batch", 0)) if source.is_dir() else 0
    except (OSError, ValueError):
        return 0


def _candidates(run: RunDir, completed_epochs: int):
    """(path, epoch reader), newest first."""
    for name in ("current", "next", "previous"):
        folder = run.backup / name
        if name == "next" and not (folder / STATE).exists():
            continue  # an unfinished save, not a corrupt one
        yield folder, lambda folder=folder: int(json.loads((folder / STATE).read_text())["epoch"])
    for weights in ("latest.weights.h5", "latest.weights.h5.bkp"):  # Keras' BackupAndRestore, as cnnzoo 0.1 saved
        metadata = run.backup / ("training_metadata.json" + weights[len("latest.weights.h5"):])
        yield run.backup / weights, lambda metadata=metadata: int(json.loads(metadata.read_text())["epoch"])
    marker = run.checkpoints / "last.json"  # runs of earlier versions have none: history.csv counts their epochs
    yield run.checkpoints / "last.keras", lambda: (int(json.loads(marker.read_text())["epoch"]) if marker.exists()
                                                   else completed_epochs)
    yield run.model, lambda: completed_epochs


def _reason(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    return f"{type(exc).__name__}: {text[:160]}" if text else type(exc).__name__
