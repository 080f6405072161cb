"""`--resume RUN [key=value ...]`: continue a run, checking everything before anything is written.

The run's config is its config.yaml with every earlier resume's overrides applied; the new
overrides go on top and are validated as a whole (the plan). An override that would change
the shape of any weight is refused, naming the key, since the saved weights could not be
loaded into the new model. Only then is the resume recorded in run.json, and training goes on
from the newest saved state that loads (see `cnnzoo.training.checkpoints.restore`).
"""

from __future__ import annotations

import shutil
import warnings

from cnnzoo.config.loader import load_config
from cnnzoo.config.schema import Config
from cnnzoo.errors import CnnzooError, CnnzooWarning
from cnnzoo.memory import frozen_heap
from cnnzoo.training import checkpoints, trainer
from cnnzoo.training.fitting import stopped_when_output_closes
from cnnzoo.training.history import read_history
from cnnzoo.training.initialize import initialize_from_data
from cnnzoo.training.run_dir import RunDir, existing_run_dir


@frozen_heap()  # as `train`
def resume(run_path: str, overrides: tuple[str, ...] = (), *, manual_dir: str | None = None,
           log: trainer.Log = print, callbacks: list | None = None) -> trainer.RunResult:
    """Continue an interrupted run (or train a completed one further) from its newest intact saved state."""
    from cnnzoo.plan import plan
    from cnnzoo.runtime.setup import start_runtime
    from cnnzoo.runtime.strategy import choose_strategy

    run = existing_run_dir(run_path)
    earlier = run.config_overrides()
    if run.read_info().get("status") == "completed" and not overrides:
        raise CnnzooError(f"the run in {run.path} already completed",
                          hint=f"Train longer with `cnnzoo train --resume {run.path} train.epochs=N`.")
    config = load_config(run.config, [*earlier, *overrides])
    check_same_classes(run, config)  # before the plan, whose model check would blame the last layer's size
    placement = start_runtime(config, choose_strategy(config))
    with placement.strategy.scope():
        planned = plan(config, manual_dir, placement=placement)
        if overrides:
            check_same_weights(run, earlier, overrides, planned.model)
        planned, data = trainer.prepared(planned, manual_dir, log)
        _note_images_changed(run, planned.config, data, log)
        with trainer.worker_folder(placement) as scratch:
            if scratch is not None:  # a worker restores from a copy of the chief's state (a shared filesystem)
                run = RunDir(shutil.copytree(run.path, scratch / "run"), shared=run.path)
            with stopped_when_output_closes(run):
                return _go_on(run, planned, data, placement, overrides, scratch is None, log, callbacks)


def _go_on(run: RunDir, planned, data, placement, overrides, chief: bool, log, callbacks) -> trainer.RunResult:
    """Restore the newest intact state and train on from it."""
    state = _restore(run, planned)
    if any(o.partition("=")[0].startswith("train.optimizer") for o in overrides):
        _learning_rate_as_configured(planned, log)
    if chief:
        run.record_resume(list(overrides))
    log = trainer.worker_log(log, placement)
    if state.source is None:
        log(f"cnnzoo: {run.path} has no saved state; training starts again from epoch 1")
        initialize_from_data(run, planned.model, data, planned.config, log)
    else:
        at = f", batch {state.batch} of epoch {state.epoch + 1}" if state.batch else ""
        log(f"cnnzoo: resuming from {state.source} after epoch {state.epoch}{at}")
    return trainer.execute(run, planned, data, placement, state.epoch, log, callbacks or [], "resuming",
                           state.counters, state.batch)


def _learning_rate_as_configured(planned, log) -> None:
    """An overridden learning rate applies from the first resumed step: the restored optimizer state
    holds the old one (a variable, saved with the slots). A schedule is rebuilt from the config anyway."""
    config = planned.config
    wanted = config.train.optimizer.kwargs.get("learning_rate")
    if wanted is None or config.train.lr_schedule is not None or config.train.phases:
        return  # a schedule is rebuilt from the config; a phase's optimizer is built when the phase begins
    variable = planned.model.optimizer.learning_rate
    old = float(variable.numpy())
    variable.assign(float(wanted))
    if old != float(wanted):
        log(f"cnnzoo: learning rate {float(wanted):g} from the override (the saved state had {old:g})")


def check_same_classes(run: RunDir, config: Config) -> None:
    """A run on image files resumes on the classes it started with: its outputs stand for them, in the
    order of `classes.json`. A class folder renamed, added or removed since is refused, naming it."""
    import json

    from cnnzoo.data.folder_listing import list_images
    from cnnzoo.data.folder_source import origin_of

    if not config.data.path or not run.classes.is_file():
        return
    before = json.loads(run.classes.read_text())["class_names"]
    now = list_images(origin_of(config), config.where("data", "path")).class_names
    if now != before:
        gone, new = [c for c in before if c not in now], [c for c in now if c not in before]
        change = "; ".join(part for part in (f"gone: {', '.join(gone)}" if gone else "",
                                             f"new: {', '.join(new)}" if new else "") if part)
        raise CnnzooError(f"the classes of {config.data.path} changed since the run started ({change or 'reordered'}): "
                          f"its outputs stand for {', '.join(before)}; nothing in {run.path} was changed",
                          hint="Put the class folders back as they were to resume, or train a new run on the folder "
                               "as it is now (`model.weights: " + str(run.path) + "` starts it from this run's weights).")


def _note_images_changed(run: RunDir, config: Config, data, log) -> None:
    """Say when a folder's training images are not those the run started with (added or removed since)."""
    import json

    try:
        then = json.loads(run.classes.read_text()).get("training_images")
    except (OSError, ValueError):
        return
    now = sum(data.class_counts) if data.class_counts else None
    if then is not None and now is not None and now != then:
        log(f"cnnzoo: {config.data.path} has {now:,} training images, {then:,} when the run started: "
            "the resumed epochs train on the folder as it is now")


def check_same_weights(run: RunDir, earlier: list[str], overrides: tuple[str, ...], model) -> None:
    """Refuse overrides under which the saved weights would not fit the model, naming the keys."""
    from cnnzoo.models.builder import build_model

    shape = tuple(model.input_shape[1:])  # the data's, where the config leaves it out (e.g. an image folder)
    before = _shapes(build_model(load_config(run.config, earlier), input_shape=shape))
    if _shapes(model) == before:
        return
    culprits = [o for o in overrides if _shapes(_try_build(build_model, run, [*earlier, o], shape)) != before]
    keys = ", ".join(f"`{o.partition('=')[0]}`" for o in culprits or overrides)
    raise CnnzooError(
        f"--resume cannot change the model's weights: {keys} would change the shape of its weights, so the "
        f"saved ones could not be loaded; nothing in {run.path} was changed",
        hint="Start a new run with the changed config instead (e.g. `cnnzoo train --config ... --output-dir DIR`).",
    )


def _shapes(model) -> list[tuple]:
    return [] if model is None else [tuple(w.shape) for w in model.weights]


def _try_build(build_model, run: RunDir, overrides: list[str], shape: tuple[int, ...]):
    try:
        return build_model(load_config(run.config, overrides), input_shape=shape)
    except CnnzooError:
        return None


def _restore(run: RunDir, planned) -> checkpoints.Restored:
    from cnnzoo.models.phases import enter, phase_at

    def prepare(epoch: int, batch: int) -> None:  # the phase that saved the state: its optimizer's slots
        phase = phase_at(planned.config, max(epoch - (batch == 0), 0))
        enter(planned.model, phase, planned.steps_per_epoch)
        planned.phase = phase.index

    try:
        state = checkpoints.restore(run, planned.model, len(read_history(run).get("epoch", [])),
                                    prepare if planned.config.train.phases else None)
    except checkpoints.NoIntactState as exc:
        raise CnnzooError(
            f"no saved state of {run.path} loads: {'; '.join(exc.skipped)}",
            hint=f"The run cannot go on from here; start a new one from its config with "
            f"`cnnzoo train --config {run.config} --output-dir NEW_DIR`.",
        ) from None
    for skipped in state.skipped:
        warnings.warn(f"{skipped}; falling back to an older saved state", CnnzooWarning, stacklevel=2)
    return state


def effective_config(run: RunDir) -> Config:
    """The config a run trains with: config.yaml and every resume's overrides."""
    return load_config(run.config, run.config_overrides())
