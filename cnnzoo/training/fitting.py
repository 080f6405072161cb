"""`model.fit`, phase after phase, from any saved position; signals, disk errors and NaN losses
become clear errors.

Training reads the data's `TrainStream` from the batch it has reached, so a run resumed from a
save inside an epoch first trains the rest of that epoch (as an epoch of its own, with fewer
steps), then goes on with whole epochs: no batch twice, none skipped, the optimizer's step
counter (and so any learning-rate schedule) where an uninterrupted run has it.
"""

from __future__ import annotations

import contextlib
import signal
from dataclasses import dataclass
from typing import Callable

from cnnzoo.config.schema import Config
from cnnzoo.errors import SIGPIPE, CnnzooError, TrainingError
from cnnzoo.models.compile import build_metrics
from cnnzoo.training.run_dir import RunDir

Log = Callable[[str], None]


class TrainingInterrupted(CnnzooError):
    """Stopped by a signal after saving; exits 128 + the signal number, as shells expect."""

    def __init__(self, message: str, *, signum: int = 2, **kwargs):
        super().__init__(message, **kwargs)
        self.exit_code = 128 + signum


@contextlib.contextmanager
def stopped_when_output_closes(run: RunDir):
    """A run whose output is closed (`python train.py ... | head` once `head` exits) stops as a signal
    stops it: what it saved is kept, the run marked interrupted, SIGPIPE's exit status, and a
    message on stderr. (Not exit 0 with the run left `running`, nor `fit`'s disk-error message.)"""
    try:
        yield
    except BrokenPipeError:
        if run.read_info().get("status") == "completed":
            raise  # nothing left to stop: only its last lines went unread
        run.update_info(status="interrupted")
        raise TrainingInterrupted(
            "training stopped: its output was closed (the program reading it, such as `head`, exited); "
            "what the run saved is kept", signum=SIGPIPE,
            hint=f"Continue with: cnnzoo train --resume {run.home}. To read a run's first lines, write its "
            "output to a file (`... > train.log`) and read that.",
        ) from None


@dataclass(frozen=True)
class Start:
    """Where training begins: epochs completed, batches done in the next one, the phase the model is
    set up for, and the monitoring callbacks' saved counts."""

    epoch: int = 0
    batch: int = 0
    phase: int = 0
    counters: list | None = None


def fit(model, data, config: Config, run: RunDir, start: Start, callbacks: list, bar: bool = False,
        steps: int | None = None, log: Log = print) -> None:
    """`model.fit` with the run's callbacks first, phase after phase (`train.phases`), `steps` per epoch
    (they also feed a phase's schedule)."""
    from cnnzoo.training.callbacks import standard_callbacks
    from cnnzoo.training.checkpoints import WATCHED, RestoreCounters
    from cnnzoo.training.tta import validation_views

    monitor = "loss" if data.validation is None else (
        "val_accuracy" if "accuracy" in config.train.metrics else "val_loss")
    watched = [c for c in callbacks if type(c).__name__ in WATCHED]  # EarlyStopping, ReduceLROnPlateau
    standard = standard_callbacks(run, monitor, config.runtime.backup_every_steps, watched=watched,
                                  measures=validation_views(config, data))
    restore = RestoreCounters(watched, start.counters)
    callbacks = [*callbacks, restore]  # after them: their on_train_begin resets them
    try:
        _fit_phases(model, data, config, start, standard, callbacks, restore, bar, steps or data.stream.batches, log)
    except BaseException as exc:
        explained = _explained(exc, run, config)
        if explained is not exc:
            _free_frames(exc)
        raise explained from None
    finally:  # what on_train_end undoes, which Keras skips when fit raises: signal handlers, patches, writers
        for callback in [*standard, *callbacks]:
            if callable(getattr(callback, "close", None)):
                callback.close()


def _fit_phases(model, data, config: Config, start: Start, standard: list, callbacks: list, restore, bar: bool,
                steps: int, log: Log) -> None:
    from cnnzoo.models.phases import enter, phases_of
    from cnnzoo.training.checkpoints import Backup, callback_states

    backup = next(c for c in standard if isinstance(c, Backup))
    phase_now = start.phase

    def fit_epochs(first: int, end: int, skip: int = 0) -> None:
        backup.offset = skip  # batches of epoch `first` trained before this fit
        _build_optimizer(model)
        build_metrics(model, data.test.element_spec)
        model.fit(data.stream.starting_at(first * steps + skip), validation_data=data.validation, epochs=end,
                  initial_epoch=first, steps_per_epoch=steps - skip, class_weight=class_weights(config, data),
                  callbacks=[*standard, *callbacks], shuffle=False, verbose=1 if bar else 0)

    for phase in phases_of(config):
        if phase.end <= start.epoch:
            continue
        if phase.index != phase_now:  # a phase begins: its frozen layers, a new optimizer
            frozen = enter(model, phase, steps)
            phase_now = phase.index
            log(f"cnnzoo: phase {phase.index + 1} of {len(config.train.phases)}: epochs {phase.start + 1}-"
                f"{phase.end}, optimizer {phase.config.train.optimizer.name}, "
                + (f"{len(frozen)} layers frozen (the last: {frozen[-1]})" if frozen else "every layer trains"))
        first = max(start.epoch, phase.start)
        if first == start.epoch and 0 < start.batch < steps:  # the rest of the epoch a save interrupted
            backup.keep = True
            fit_epochs(first, first + 1, start.batch)
            restore.states = callback_states(restore.callbacks)  # the next fit's on_train_begin resets them
            first += 1
        backup.keep = phase.end < config.train.epochs
        if first < phase.end:
            fit_epochs(first, phase.end)


def _build_optimizer(model) -> None:
    """Create the optimizer's slots eagerly, as a resume does: left to Keras, they are created inside
    the first traced step, each behind a lifted initializer (a `tf.cond`), which slows that step
    (measured on 2 cores, alternating in one process: a 2-step ResNet-20 run 0.92x the CPU time)."""
    if not model.optimizer.built:
        with model.distribute_strategy.scope():
            model.optimizer.build(model.trainable_variables)


def _explained(exc: BaseException, run: RunDir, config: Config) -> BaseException:
    """The exception a failed fit ends with: ours for signals, disk errors and NaN losses, after
    marking the run; anything else as it was (a lost worker explained)."""
    from cnnzoo.training.callbacks import Diverged, Stopped

    if isinstance(exc, Stopped):
        run.update_info(status="interrupted")
        return TrainingInterrupted(
            f"training stopped by {signal.Signals(exc.signum).name} at epoch {exc.epoch}, batch {exc.batch}; "
            "its weights and optimizer state are saved", signum=exc.signum,
            hint=f"Continue with: cnnzoo train --resume {run.home} (the epoch goes on from its next batch).",
        )
    if isinstance(exc, KeyboardInterrupt):  # a second Ctrl-C, or one before training began
        run.update_info(status="interrupted")
        return TrainingInterrupted("training interrupted; the last saved state is kept",
                                   hint=f"Continue with: cnnzoo train --resume {run.home}")
    if isinstance(exc, BrokenPipeError):
        return exc  # the output was closed, not a file: see `stopped_when_output_closes`
    if isinstance(exc, OSError):  # e.g. the disk filled up while saving a checkpoint
        run.update_info(status=f"failed: {exc.strerror or exc}")
        return TrainingError(
            f"training stopped: {exc.strerror or exc}: {exc.filename or 'a file of the run or its dataset'}",
            hint=f"Free space (or fix permissions), then continue from the last complete save with "
            f"`cnnzoo train --resume {run.home}`.",
        )
    if isinstance(exc, Diverged):
        run.update_info(status="failed: NaN loss")
        return TrainingError(
            f"the loss became NaN/inf at epoch {exc.epoch}, batch {exc.batch}: training diverged and was stopped",
            location=config.where("train", "optimizer"),
            hint="Lower the learning rate (or add a schedule) and check the inputs are scaled. The last good "
            f"epoch is saved: continue from it with `cnnzoo train --resume {run.home} "
            "train.optimizer.learning_rate=...`.",
        )
    from cnnzoo.runtime.cluster import lost_worker_error

    run.update_info(status="failed")
    return lost_worker_error(exc, f"cnnzoo train --resume {run.home}") or exc


def _free_frames(exc: BaseException) -> None:
    """Free the frames a failure told in a sentence happened in, now rather than at interpreter exit:
    TensorFlow's eager all-reduce leaves a thread pool open in them when a worker is lost, and its
    clean-up at exit printed a traceback after the message (Pool.__del__: Bad file descriptor)."""
    import gc

    seen = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        exc.__traceback__ = None
        exc = exc.__cause__ or exc.__context__
    gc.collect()


def class_weights(config: Config, data) -> dict[int, float] | None:
    """`train.class_weight: balanced`: n / (classes * n_c) per class (scikit-learn's formula), for Keras' fit."""
    if config.train.class_weight != "balanced":
        return None
    counts, total = data.class_counts, sum(data.class_counts)
    return {c: total / (len(counts) * n) for c, n in enumerate(counts) if n}
