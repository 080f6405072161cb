"""A run, in order: check the output folder, start the runtime, plan, prepare the data, create
the run directory, `model.fit`, evaluate once on the test split, save.

`train` starts a run; `cnnzoo.training.resume.resume` continues one through the same `execute`.
"""

from __future__ import annotations

import contextlib
import secrets
import shutil
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from cnnzoo.config.schema import Config
from cnnzoo.memory import frozen_heap
from cnnzoo.training import run_dir
from cnnzoo.training.fitting import stopped_when_output_closes
from cnnzoo.training.history import read_history, repair_history
from cnnzoo.training.initialize import initialize_from_data
from cnnzoo.training.run_dir import RunDir, write_json
from cnnzoo.training.summaries import weights_digest, write_start_summaries

Log = Callable[[str], None]


@dataclass(frozen=True)
class RunResult:
    run_dir: RunDir
    metrics: dict[str, Any]
    model: Any


@frozen_heap()  # a run's start no longer scans TensorFlow's objects in a full collection
def train(config: Config, *, output_dir: str | None = None, manual_dir: str | None = None, overwrite: bool = False,
          log: Log = print, callbacks: list | None = None) -> RunResult:
    """Train the model a config describes and fill a run directory.

    Args:
        config: a validated config.
        output_dir: the run directory (default `runs/<model.name>-<timestamp>`); it must be new,
            empty, or (with `overwrite`) hold an earlier run, which is then replaced.
        manual_dir: folder with the dataset's original files or `.npz` arrays, for offline preparation.
        log: where progress messages go.
        callbacks: extra Keras callbacks (Python objects), run after the config's.

    Returns:
        The run directory, the metrics written to metrics.json, and the trained model.

    Raises:
        CnnzooError: bad config, data or output folder (nothing written then); TrainingError
            if the loss diverges.
    """
    from cnnzoo.plan import plan
    from cnnzoo.runtime.setup import start_runtime
    from cnnzoo.runtime.strategy import choose_strategy

    config = with_seed(config)
    choice = choose_strategy(config)
    # Only the chief writes the run directory (the other workers use scratch folders).
    target = run_dir.claim(output_dir, config.model.name, overwrite=overwrite) if choice.is_chief else None
    started = False
    try:
        placement = start_runtime(config, choice)
        with placement.strategy.scope():
            planned, data = prepared(plan(config, manual_dir, placement=placement), manual_dir, log)
            if target is not None:
                run_dir.check_free_space(target, disk_needed(planned.model))
                run = run_dir.create(target, overwrite=overwrite)
                write_json(run.info, run_dir.start_info(config.runtime.seed))
                started = True
    finally:
        run_dir.release(target, started=started)
    with placement.strategy.scope():
        with worker_folder(placement) as scratch:
            if scratch is not None:
                run = RunDir(run_dir.create(scratch / "run").path, shared=Path(output_dir) if output_dir else None)
            with stopped_when_output_closes(run):
                run.config.write_text(planned.config.to_yaml())
                write_data_records(run, data, log)
                write_start_summaries(run, planned.config, planned.model)
                initialize_from_data(run, planned.model, data, planned.config, worker_log(log, placement))
                return execute(run, planned, data, placement, 0, worker_log(log, placement), callbacks or [],
                               "training")


def prepared(planned, manual_dir: str | None, log: Log = print):
    """The plan with its data: the dataset prepared (downloaded or decoded once) and the tf.data pipelines built."""
    from cnnzoo.data.tfds_input import load_datasets
    from cnnzoo.models.compile import uses_one_hot_labels
    from cnnzoo.plan import with_data

    data = load_datasets(planned.config, one_hot=uses_one_hot_labels(planned.config.train.loss.name),
                         manual_dir=manual_dir, static_shapes=planned.strategy.kind == "tpu", source=planned.source,
                         log=log)
    return with_data(planned, data.splits, data.cache), data


def write_data_records(run: RunDir, data, log: Log) -> None:
    """The class names the outputs stand for (with the training images where known: a resume compares),
    and the files of a folder that were skipped, with why."""
    import csv

    write_json(run.classes, {"class_names": data.class_names or [str(i) for i in range(data.num_classes)],
                             **({"training_images": sum(data.class_counts)} if data.class_counts else {})})
    if data.skipped:
        with run.skipped.open("w", newline="") as f:
            csv.writer(f).writerows([("file", "reason"), *data.skipped])
        log(f"cnnzoo: {len(data.skipped):,} files skipped (not images, unreadable, or not in a class folder); "
            f"each is listed with its reason in {run.skipped}")


def execute(run: RunDir, planned, data, placement, initial_epoch: int, log: Log, extra_callbacks: list,
            verb: str, counters: list | None = None, initial_batch: int = 0) -> RunResult:
    """Log the plan, fit from batch `initial_batch` of epoch `initial_epoch`, then evaluate on the test split and save."""
    from cnnzoo.training.callbacks import EpochLine
    from cnnzoo.training.fitting import Start, fit
    from cnnzoo.training.pictures import picture_callbacks

    config, model = planned.config, planned.model
    log(f"cnnzoo: {verb} {config.model.name} ({model.count_params():,} parameters) on {config.data.name} "
        f"{planned.splits.describe()} ({planned.source.description}); {planned.precision.policy}; "
        f"{planned.strategy.summary()}; run directory: {run.path}")
    for note in planned.notes:
        log(f"cnnzoo: {note}")
    planned.warn()
    if placement.kind != "default":
        log(f"cnnzoo: {placement.replicas} replicas in all; global batch {config.data.batch_size} = "
            f"{config.data.batch_size // placement.replicas} per replica")
    repair_history(run)
    bar = sys.stdout.isatty() and log is print  # Keras' progress bar on a terminal, else one line per epoch
    progress = [] if bar else [EpochLine(config.train.epochs, log)]
    pictures = picture_callbacks(planned, data, run, log) if placement.is_chief else []
    with _multi_worker(placement, model):
        fit(model, data, config, run, Start(initial_epoch, initial_batch, planned.phase, counters),
            [*planned.callbacks, *pictures, *extra_callbacks, *progress], bar, planned.steps_per_epoch, log)
        return finish(run, model, data, config, log)


def finish(run: RunDir, model, data, config: Config, log: Log = print) -> RunResult:
    """Evaluate once on the test split, save model.keras and metrics.json, mark the run completed.
    With `use_ema`, the model keeps the optimizer's averaged weights from here on."""
    from cnnzoo.models.compile import outputs_logits
    from cnnzoo.training.averaging import put_averages
    from cnnzoo.training.checkpoints import save_model_atomically
    from cnnzoo.training.per_class import split_results
    from cnnzoo.training.tta import augmented_test

    put_averages(model)
    test = {k: float(v) for k, v in model.evaluate(data.test, return_dict=True, verbose=0).items()}
    tta, views = augmented_test(model, data.test, config)
    save_model_atomically(model, run.model)
    history = read_history(run)
    seconds = history.pop("epoch_seconds", [])
    epochs = history.pop("epoch", [])
    if data.validation is None:  # Keras' CSVLogger adds empty val_ columns anyway
        history = {k: v for k, v in history.items() if not k.startswith("val_")}
    metrics = {
        "model": config.model.name,
        "dataset": config.data.name,
        "splits": {"train": data.splits.train, "validation": data.splits.validation, "test": data.splits.test},
        "params": model.count_params(),
        "epochs_completed": len(epochs),
        "validation": {k[4:]: v[-1] for k, v in history.items() if k.startswith("val_") and k != "val_epoch_seconds"},
        "test": {**test, **tta},
        "history": history,
        "epoch_seconds": seconds,
        "train_examples": data.train_examples,
        "test_examples": data.splits.size(data.splits.test),  # all of them, also in a TPU's full batches
        "weights_sha256": weights_digest(model),
        "per_class": split_results(model, data, outputs_logits(config), run.logs,
                                   int(epochs[-1]) if epochs else 0),
    }
    if views:
        metrics["test_time_augmentation"] = views
    run.complete(metrics)
    summary = ", ".join(f"{k} {v:.4f}" for k, v in metrics["test"].items())
    log(f"cnnzoo: test {summary}; weights sha256 {metrics['weights_sha256'][:16]}; "
        f"saved {run.model} and {run.metrics}")
    return RunResult(run, metrics, model)


def with_seed(config: Config) -> Config:
    """The config with `runtime.seed` filled in (a fresh random one when unset)."""
    if config.runtime.seed is not None:
        return config
    runtime = config.runtime.model_copy(update={"seed": secrets.randbelow(2**31)})
    return config.model_copy(update={"runtime": runtime})  # keeps the source positions


@contextlib.contextmanager
def worker_folder(placement):
    """None for the chief; for the other workers of a multi-worker run, a scratch folder removed afterwards.

    All workers run the same steps (their collectives must match), but only the chief's files are kept.
    """
    if placement.is_chief:
        yield None
        return
    scratch = Path(tempfile.mkdtemp(prefix="cnnzoo-worker-"))
    try:
        yield scratch
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def worker_log(log: Log, placement) -> Log:
    return log if placement.is_chief else (lambda message: log(f"worker {placement.worker_index}: {message}"))


def _multi_worker(placement, model):
    if placement.kind != "multi_worker":
        return contextlib.nullcontext()
    from cnnzoo.runtime.keras_fixes import multi_worker_fit

    return multi_worker_fit(model)


def disk_needed(model) -> int:
    """Bytes a run's files take at most: model.keras, last/best checkpoints and three resume states,
    each with the weights and up to two optimizer slots per weight (three with `use_ema`'s averages),
    plus 50 MB for logs."""
    optimizer = getattr(model, "optimizer", None)
    averages = bool(getattr(getattr(optimizer, "inner_optimizer", optimizer), "use_ema", False))
    return 6 * (3 + averages) * 4 * model.count_params() + 50 * 2**20
