"""Config -> data -> model -> compiled model -> `model.fit` -> run directory.

`train()` is the whole pipeline, one short step per helper, so each stage can
be called (and tested) on its own.
"""

from __future__ import annotations

import csv
import hashlib
import shutil
import signal
import secrets
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from cnnzoo.config.loader import load_config
from cnnzoo.config.schema import Config
from cnnzoo.errors import CnnzooError, TrainingError
from cnnzoo.training.run_dir import RunDir, existing_run_dir, new_run_dir, start_info, write_json


class TrainingInterrupted(CnnzooError):
    """Stopped by a signal after saving; exits 128 + the signal number, as shells expect."""

    def __init__(self, message: str, *, signum: int = 2, **kwargs):
        super().__init__(message, **kwargs)
        self.exit_code = 128 + signum


@dataclass(frozen=True)
class RunResult:
    run_dir: RunDir
    metrics: dict[str, Any]
    model: Any


def train(
    config: Config,
    *,
    output_dir: str | None = None,
    manual_dir: str | None = None,
    run: RunDir | None = None,
    log: Callable[[str], None] = print,
    callbacks: list | None = None,
) -> RunResult:
    """Train the model a config describes and fill a run directory.

    Args:
        config: a validated config.
        output_dir: the run directory (default `runs/<model.name>-<timestamp>`).
        manual_dir: folder with the dataset's original files, for offline preparation.
        run: an existing run directory to continue (see `resume`).
        log: where progress messages go.
        callbacks: extra Keras callbacks (Python objects), run after the config's.

    Returns:
        The run directory, the metrics written to metrics.json, and the trained model.

    Raises:
        CnnzooError: bad config, data or run directory; TrainingError if the loss diverges.
    """
    from cnnzoo.runtime.precision import global_policy_restored, with_precision
    from cnnzoo.runtime.setup import setup_runtime

    config = with_seed(config)
    placement = setup_runtime(config)
    config = with_precision(config, placement.kind)  # config.yaml records the choice; a resume keeps it
    # The strategy's scope holds model and optimizer variables, fit and evaluate, all on its devices.
    with global_policy_restored(), placement.strategy.scope():
        return _train_in_scope(config, placement, output_dir, manual_dir, run, log, callbacks or [])


def _train_in_scope(config: Config, placement, output_dir, manual_dir, run: RunDir | None, log,
                    extra_callbacks: list) -> RunResult:
    data, model, callbacks = prepare_data_and_model(config, manual_dir, placement)
    callbacks = [*callbacks, *extra_callbacks]
    if placement.kind == "multi_worker":
        from cnnzoo.runtime.keras_fixes import enable_multi_worker_fit

        enable_multi_worker_fit(model)
    resuming = run is not None
    scratch = None
    if not placement.is_chief:
        log = _prefixed(log, f"worker {placement.worker_index}: ")
        scratch = Path(tempfile.mkdtemp(prefix="cnnzoo-worker-"))
        run, output_dir = worker_run_dir(run, scratch)
    run = open_run(run, config, model, output_dir)
    log(f"cnnzoo: {'resuming' if resuming else 'training'} {config.model.name} ({parameter_totals(model)}) "
        f"on {config.data.name} in {config.runtime.precision}; run directory: {run.path}")
    if placement.kind != "default":
        log(f"cnnzoo: {placement.description}; global batch {config.data.batch_size} = "
            f"{config.data.batch_size // placement.replicas} per replica")
    try:
        initial_epoch = continue_completed_run(run, model) if resuming else 0
        fit(model, data, config, run, initial_epoch, callbacks, log)
        return finish(run, model, data, config, log)
    finally:
        if scratch is not None:
            shutil.rmtree(scratch, ignore_errors=True)  # only the chief's outputs are kept


def prepare_data_and_model(config: Config, manual_dir: str | None, placement=None):
    """Everything that can fail on user input, before anything is written: data, model, compile, callbacks."""
    from cnnzoo.data.tfds_input import load_datasets
    from cnnzoo.models.builder import build_model
    from cnnzoo.training.callbacks import config_callbacks
    from cnnzoo.training.compile import compile_model, uses_one_hot_labels

    data = load_datasets(config, one_hot=uses_one_hot_labels(config.train.loss), manual_dir=manual_dir,
                         static_shapes=placement is not None and placement.kind == "tpu")
    model = build_model(config, input_shape=data.image_shape, num_classes=data.num_classes)
    compile_model(model, config)
    return data, model, config_callbacks(config)


def worker_run_dir(run: RunDir | None, scratch: Path) -> tuple[RunDir | None, str]:
    """A non-chief worker's run directory inside `scratch`: (a copy of the resumed run, or None; its path).

    All workers run the same steps (their collectives must match), but only the chief's
    files are kept; a resumed worker restores from a copy of the chief's state, which
    therefore must be on a filesystem every machine sees.
    """
    path = scratch / "run"
    if run is None:
        return None, str(path)
    shutil.copytree(run.path, path)
    return RunDir(path), str(path)


def _prefixed(log: Callable[[str], None], prefix: str) -> Callable[[str], None]:
    return lambda message: log(prefix + message)


def open_run(run: RunDir | None, config: Config, model, output_dir: str | None) -> RunDir:
    """A new run directory, or the one being resumed, with the resolved config written into it."""
    if run is None:
        run = new_run_dir(config.model.name, output_dir)
        try:
            check_free_space(run, model)
        except CnnzooError:
            if not any(run.path.iterdir()):  # leave nothing behind for a run that never started
                run.path.rmdir()
            raise
        write_json(run.info, start_info(config.runtime.seed))
        write_start_summaries(run, config, model)
    else:
        info = run.read_info()
        run.update_info(status="running", resumed=[*info.get("resumed", []), " ".join(sys.argv)])
    run.config.write_text(config.to_yaml())  # with a resume's overrides too
    return run


def fit(model, data, config: Config, run: RunDir, initial_epoch: int, user_callbacks: list,
        log: Callable[[str], None] = print) -> None:
    """`model.fit` with the run's callbacks and the config's; Ctrl-C and NaN losses become clear errors."""
    from cnnzoo.training.callbacks import Diverged, EpochLine, Stopped, standard_callbacks

    monitor = "loss" if data.validation is None else (
        "val_accuracy" if "accuracy" in config.train.metrics else "val_loss")
    # Keras' progress bar on a terminal; otherwise (logs, CI, a caller's `log`) one line per epoch.
    bar = sys.stdout.isatty() and log is print
    progress = [] if bar else [EpochLine(config.train.epochs, log)]
    try:
        model.fit(
            data.train,
            validation_data=data.validation,
            epochs=config.train.epochs,
            initial_epoch=initial_epoch,
            steps_per_epoch=config.train.steps_per_epoch,
            callbacks=[*standard_callbacks(run, monitor, config.runtime.backup_every_steps), *user_callbacks, *progress],
            shuffle=False,  # the tf.data pipeline shuffles
            verbose=1 if bar else 0,
        )
    except Stopped as stop:
        run.update_info(status="interrupted")
        raise TrainingInterrupted(
            f"training stopped by {signal.Signals(stop.signum).name} at epoch {stop.epoch}, batch {stop.batch}; "
            "its weights and optimizer state are saved",
            signum=stop.signum,
            hint=f"Continue with: cnnzoo train --resume {run.path} (the epoch restarts from its first batch).",
        ) from None
    except KeyboardInterrupt:  # a second Ctrl-C, or one before training began
        run.update_info(status="interrupted")
        raise TrainingInterrupted(
            "training interrupted; the last saved state is kept",
            hint=f"Continue with: cnnzoo train --resume {run.path}",
        ) from None
    except OSError as exc:  # e.g. the disk filled up while saving a checkpoint
        run.update_info(status=f"failed: {exc.strerror or exc}")
        raise TrainingError(
            f"training stopped: could not write {exc.filename or 'to the run directory'}: {exc.strerror or exc}",
            hint=f"Free space (or fix permissions), then continue from the last complete save with "
            f"`cnnzoo train --resume {run.path}`.",
        ) from None
    except Diverged as stop:
        run.update_info(status="failed: NaN loss")
        raise TrainingError(
            f"the loss became NaN/inf at epoch {stop.epoch}, batch {stop.batch}: training diverged and was stopped",
            location=config.where("train", "optimizer"),
            hint="Lower the learning rate (or add a schedule) and check the inputs are scaled. The last good "
            f"epoch is saved: continue from it with `cnnzoo train --resume {run.path} "
            "train.optimizer.learning_rate=...`.",
        ) from None
    except BaseException:
        run.update_info(status="failed")
        raise


def resume(run_path: str, overrides: tuple[str, ...] = (), **kwargs) -> RunResult:
    """Continue an interrupted run from its last completed epoch (weights, optimizer state, epoch)."""
    run = existing_run_dir(run_path)
    if not run.backup.exists() and not run.model.exists():
        print(f"cnnzoo: {run.path} has no completed epoch saved; training starts again from epoch 1", file=sys.stderr)
    if run.read_info().get("status") == "completed" and not overrides:
        raise CnnzooError(
            f"the run in {run.path} already completed",
            hint=f"Train longer with `cnnzoo train --resume {run.path} train.epochs=N`.",
        )
    config = load_config(run.config, overrides)
    return train(config, run=run, **kwargs)


def continue_completed_run(run: RunDir, model) -> int:
    """Train a completed run further: load its final weights and optimizer state.

    An interrupted run is restored by BackupAndRestore from backup/; a completed one
    has no backup any more, but its model.keras holds the same state.

    Returns:
        The epoch to continue from (0 when there is nothing to continue).
    """
    if run.backup.exists() or not run.model.exists():
        return 0
    model.optimizer.build(model.trainable_variables)
    model.load_weights(run.model)
    return len(read_history(run).get("epoch", []))


def with_seed(config: Config) -> Config:
    """The config with `runtime.seed` filled in (a fresh random one when unset)."""
    if config.runtime.seed is not None:
        return config
    runtime = config.runtime.model_copy(update={"seed": secrets.randbelow(2**31)})
    return config.model_copy(update={"runtime": runtime})  # keeps the source positions


def finish(run: RunDir, model, data, config: Config, log: Callable[[str], None] = print) -> RunResult:
    """Evaluate on the test split, save model.keras and metrics.json, mark the run completed."""
    test = model.evaluate(data.test, return_dict=True, verbose=0)
    model.save(run.model)
    history = read_history(run)
    seconds = history.pop("epoch_seconds", [])
    metrics = {
        "model": config.model.name,
        "dataset": config.data.name,
        "params": model.count_params(),
        "epochs_completed": len(history.get("epoch", [])),
        "test": {k: float(v) for k, v in test.items()},
        "history": {k: v for k, v in history.items() if k != "epoch"},
        "epoch_seconds": seconds,
        "train_examples": data.train_examples,
        "weights_sha256": weights_digest(model),
    }
    write_json(run.metrics, metrics)
    run.update_info(status="completed")
    summary = ", ".join(f"{k} {v:.4f}" for k, v in metrics["test"].items())
    log(f"cnnzoo: test {summary}; weights sha256 {metrics['weights_sha256'][:16]}; "
        f"saved {run.model} and {run.metrics}")
    return RunResult(run, metrics, model)


def parameter_totals(model) -> str:
    """As model.summary() ends: `600,810 parameters: 600,810 trainable, 0 non-trainable`."""
    from math import prod

    trainable = sum(prod(w.shape) for w in model.trainable_weights)
    total = model.count_params()
    return f"{total:,} parameters: {trainable:,} trainable, {total - trainable:,} non-trainable"


def weights_digest(model) -> str:
    """SHA-256 of every weight's bytes, in order: equal digests mean identical models."""
    digest = hashlib.sha256()
    for weight in model.get_weights():
        digest.update(weight.tobytes())
    return digest.hexdigest()


def check_free_space(run: RunDir, model) -> None:
    """Fail before training, not at the first checkpoint, when the disk cannot hold the run's files."""
    # model.keras, last/best checkpoints and two backups, each with weights and optimizer slots
    # (up to 3 values per weight), plus 50 MB for logs.
    needed = 5 * 3 * 4 * model.count_params() + 50 * 2**20
    free = shutil.disk_usage(run.path).free
    if free < needed:
        raise CnnzooError(
            f"only {free / 2**20:.0f} MB free on the disk holding {run.path}; this run needs about "
            f"{needed / 2**20:.0f} MB for its checkpoints and logs",
            hint="Free some space or choose another place with --output-dir DIR.",
        )


def read_history(run: RunDir) -> dict[str, list[float]]:
    """history.csv as columns, one value per epoch (the last row wins after a resume)."""
    if not run.history.exists():
        return {}
    with run.history.open(newline="") as f:
        rows = {int(row["epoch"]): row for row in csv.DictReader(f) if row.get("epoch", "").isdigit()}
    columns: dict[str, list[float]] = {}
    for epoch in sorted(rows):
        for key, value in rows[epoch].items():
            # CSVLogger writes NA for a metric an epoch lacks (e.g. validation when there is none)
            columns.setdefault(key, []).append(float(value) if value not in ("", "NA", None) else float("nan"))
    return columns


def write_start_summaries(run: RunDir, config: Config, model) -> None:
    """TensorBoard extras: the resolved config (Text tab) and the op graph of the forward pass.

    Keras 3's TensorBoard callback writes only the conceptual `keras` graph, so the
    op-level graph is traced here once from the model's call.
    """
    import tensorflow as tf

    text = "    " + config.to_yaml().replace("\n", "\n    ")  # indented: a Markdown code block
    spec = tf.TensorSpec((None, *model.input_shape[1:]), tf.float32)
    graph = tf.function(lambda x: model(x, training=False)).get_concrete_function(spec).graph
    writer = tf.summary.create_file_writer(str(run.logs / "train"))
    with writer.as_default():
        tf.summary.text("config", text, step=0)
        tf.summary.graph(graph)
    writer.close()
