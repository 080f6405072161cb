"""Config -> data -> model -> compiled model -> `model.fit` -> run directory.

`train()` is the whole pipeline, one short step per helper, so each stage can
be called (and tested) on its own.
"""

from __future__ import annotations

import csv
import secrets
import sys
from dataclasses import dataclass
from typing import Any, Callable

from cnnzoo.config.loader import load_config
from cnnzoo.config.schema import Config
from cnnzoo.errors import CnnzooError, TrainingError
from cnnzoo.training.run_dir import RunDir, existing_run_dir, new_run_dir, start_info, write_json


class TrainingInterrupted(CnnzooError):
    exit_code = 130


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
) -> RunResult:
    """Train the model a config describes and fill a run directory.

    Args:
        config: a validated config.
        output_dir: the run directory (default `runs/<model.name>-<timestamp>`).
        manual_dir: folder with the dataset's original files, for offline preparation.
        run: an existing run directory to continue (see `resume`).
        log: where progress messages go.

    Returns:
        The run directory, the metrics written to metrics.json, and the trained model.

    Raises:
        CnnzooError: bad config, data or run directory; TrainingError if the loss diverges.
    """
    import keras

    config = with_seed(config)
    keras.utils.set_random_seed(config.runtime.seed)
    data, model, callbacks = prepare_data_and_model(config, manual_dir)
    resuming = run is not None
    run = open_run(run, config, model, output_dir)
    log(f"cnnzoo: {'resuming' if resuming else 'training'} {config.model.name} "
        f"({model.count_params():,} parameters) on {config.data.name}; run directory: {run.path}")
    initial_epoch = continue_completed_run(run, model) if resuming else 0
    fit(model, data, config, run, initial_epoch, callbacks)
    return finish(run, model, data, config, log)


def prepare_data_and_model(config: Config, manual_dir: str | None):
    """Everything that can fail on user input, before anything is written: data, model, compile, callbacks."""
    from cnnzoo.data.tfds_input import load_datasets
    from cnnzoo.models.builder import build_model
    from cnnzoo.training.callbacks import config_callbacks
    from cnnzoo.training.compile import compile_model, uses_one_hot_labels

    data = load_datasets(config, one_hot=uses_one_hot_labels(config.train.loss), manual_dir=manual_dir)
    model = build_model(config, input_shape=data.image_shape, num_classes=data.num_classes)
    compile_model(model, config)
    return data, model, config_callbacks(config)


def open_run(run: RunDir | None, config: Config, model, output_dir: str | None) -> RunDir:
    """A new run directory, or the one being resumed, with the resolved config written into it."""
    if run is None:
        run = new_run_dir(config.model.name, output_dir)
        write_json(run.info, start_info(config.runtime.seed))
        write_start_summaries(run, config, model)
    else:
        info = run.read_info()
        run.update_info(status="running", resumed=[*info.get("resumed", []), " ".join(sys.argv)])
    run.config.write_text(config.to_yaml())  # with a resume's overrides too
    return run


def fit(model, data, config: Config, run: RunDir, initial_epoch: int, user_callbacks: list) -> None:
    """`model.fit` with the run's callbacks and the config's; Ctrl-C and NaN losses become clear errors."""
    from cnnzoo.training.callbacks import Diverged, EpochLine, NanGuard, standard_callbacks

    monitor = "loss" if data.validation is None else (
        "val_accuracy" if "accuracy" in config.train.metrics else "val_loss")
    interactive = sys.stdout.isatty()
    progress = [] if interactive else [EpochLine(config.train.epochs)]  # one line per epoch in logs and CI
    try:
        model.fit(
            data.train,
            validation_data=data.validation,
            epochs=config.train.epochs,
            initial_epoch=initial_epoch,
            steps_per_epoch=config.train.steps_per_epoch,
            callbacks=[*standard_callbacks(run, monitor), NanGuard(), *user_callbacks, *progress],
            shuffle=False,  # the tf.data pipeline shuffles
            verbose=1 if interactive else 0,
        )
    except KeyboardInterrupt:
        run.update_info(status="interrupted")
        raise TrainingInterrupted(
            "training interrupted; the last completed epoch is saved",
            hint=f"Continue with: cnnzoo train --resume {run.path}",
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
    }
    write_json(run.metrics, metrics)
    run.update_info(status="completed")
    summary = ", ".join(f"{k} {v:.4f}" for k, v in metrics["test"].items())
    log(f"cnnzoo: test {summary}; saved {run.model} and {run.metrics}")
    return RunResult(run, metrics, model)


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
