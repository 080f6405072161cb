"""One trial of a search or sweep: its values, its ordinary run folder (trained, resumed or kept), what the
study is told, and the trials a rerun takes up again (left running by a dead process; failed, for a sweep).

A run folder is never deleted: one that completed is kept, one with a saved state is resumed whatever its
status says (a killed process leaves `running`), and only one that saved nothing starts again.
"""

from __future__ import annotations

import json
import os
import re
import socket
from pathlib import Path
from typing import Any

from cnnzoo.config.loader import load_config
from cnnzoo.errors import CnnzooError, ConfigError, TrainingError
from cnnzoo.files import is_run
from cnnzoo.training.checkpoints import has_saved_state
from cnnzoo.training.fitting import TrainingInterrupted
from cnnzoo.training.hparams import write_session
from cnnzoo.training.run_dir import RunDir
from cnnzoo.training.search_study import alive, suggest
from cnnzoo.training.trainer import train

FAILED = "failed.json"  # what sweeps before the study left in the folder of a run that never started


def run_name(values: dict[str, Any]) -> str:
    """`model.params.n=3,model.blocks.basic.shortcut=A` -> `n=3,shortcut=A` (last key parts)."""
    return ",".join(f"{key.split('.')[-1]}={_text(value)}" for key, value in values.items()) or "base"


def folder_name(index: int, values: dict[str, Any]) -> str:
    """`01-n=3,shortcut=A`: numbered (unique whatever the values), only characters safe in paths, short."""
    safe = re.sub(r"[^A-Za-z0-9._=,+-]+", "_", run_name(values)).strip("._") or "run"
    return f"{index:02d}-{safe[:80]}"


def run_trial(job, trial) -> bool:
    """Train (or resume, or keep) one trial's run folder and tell the study how it went; False when the
    values were measured before (with a seed: told the earlier result, nothing trained)."""
    from optuna.trial import TrialState

    values = {key: suggest(trial, key, spec, job.ordered) for key, spec in job.spec.parameters.items()}
    retry_of = trial.user_attrs.get("retry_of")
    if retry_of is None and job.seeded and _repeat(job, trial):
        return False
    earlier = None if retry_of is None else _trial_attr(job.study, retry_of, "folder")  # None: killed before it had one
    index = trial.number + 1 if job.points is None else job.points.index(values) + 1  # a sweep: the grid's order
    folder = job.root / (earlier or Path(job.trials_dir) / folder_name(index, _shown(job, values)))
    trial.set_user_attr("folder", str(folder.relative_to(job.root)))
    trial.set_user_attr("host", socket.gethostname())
    trial.set_user_attr("pid", os.getpid())
    job.log(f"cnnzoo: trial {trial.number + 1}: {folder.name}" + (f" (retrying trial {retry_of + 1})"
                                                                  if retry_of is not None else ""))
    reporter = _reporter(trial, job.spec.metric, int(values.get("train.epochs", job.epochs)))
    try:
        metrics = _train_or_resume(job, folder, values, [reporter, *job.callbacks])
    except TrainingInterrupted as exc:  # Ctrl-C ends the search; running it again retries this trial from its save
        job.study.enqueue_trial(trial.params, user_attrs={"retry_of": trial.number})
        job.study.tell(trial, state=TrialState.FAIL)
        raise TrainingInterrupted(exc.message, signum=exc.exit_code - 128, hint=f"Run the same `cnnzoo {job.command}` "
                                  "command again: it goes on with this trial from its saved state.") from None
    except Exception as exc:  # a diverged or unbuildable trial must not end the others
        message = (str(exc) if isinstance(exc, CnnzooError) else f"{type(exc).__name__}: {exc}").splitlines()[0]
        job.log(f"cnnzoo: trial {trial.number + 1} failed: {message}")
        trial.set_user_attr("error", message)
        if is_run(folder):
            write_session(folder, values, folder.name, failed=True)
        diverged = isinstance(exc, TrainingError) and "NaN" in message
        job.study.tell(trial, state=TrialState.PRUNED if diverged else TrialState.FAIL)
        return True
    write_session(folder, values, folder.name, failed=False)
    history = metrics.get("history", {})
    trial.set_user_attr("epochs", metrics.get("epochs_completed"))
    if reporter.pruned or RunDir(folder).read_info().get("search") == "pruned":
        RunDir(folder).update_info(search="pruned")
        job.log(f"cnnzoo: trial {trial.number + 1} pruned after epoch {reporter.pruned or metrics.get('epochs_completed')}")
        job.study.tell(trial, state=TrialState.PRUNED)
    else:
        job.study.tell(trial, float(history[job.spec.metric][-1]))
    return True


def _repeat(job, trial) -> bool:
    """With a seed, values trained before give the same run: the earlier trial's result is told again
    (samplers draw a choice again), and nothing trains. False when these values are new."""
    from optuna.trial import TrialState

    done = (TrialState.COMPLETE, TrialState.PRUNED)
    same = next((t for t in job.study.get_trials(deepcopy=False, states=done) if t.params == trial.params), None)
    if same is None:
        return False
    for key in ("folder", "error"):
        if key in same.user_attrs:
            trial.set_user_attr(key, same.user_attrs[key])
    trial.set_user_attr("same_as", same.number)
    trial.set_user_attr("epochs", 0)
    for step, value in sorted(same.intermediate_values.items()):
        trial.report(value, step)
    job.log(f"cnnzoo: trial {trial.number + 1}: the values of trial {same.number + 1} again: its result, not trained again")
    job.study.tell(trial, same.value if same.state == TrialState.COMPLETE else None, state=same.state)
    return True


def _train_or_resume(job, folder: Path, values: dict[str, Any], callbacks: list) -> dict[str, Any]:
    """The trial's metrics: of its run folder if it completed, else by resuming it, else by training it."""
    from cnnzoo.training.resume import resume

    status = RunDir(folder).read_info().get("status") if is_run(folder) else None
    if status == "completed":
        job.log(f"cnnzoo: {folder} completed earlier: kept")
        return json.loads(RunDir(folder).metrics.read_text())
    if status is not None and has_saved_state(RunDir(folder)):  # never start over what can go on
        return resume(str(folder), manual_dir=job.manual_dir, log=job.log, callbacks=callbacks).metrics
    if status is None and (folder / FAILED).is_file():  # no run: only the record of an attempt that never started
        (folder / FAILED).unlink()
        if not any(folder.iterdir()):
            folder.rmdir()
    assignments = [f"{key}={json.dumps(value)}" for key, value in values.items()]
    config = load_config(job.config_path, [*job.overrides, *assignments, "search=null", "sweep={}"])
    return train(config, output_dir=str(folder), manual_dir=job.manual_dir, log=job.log,
                 overwrite=status is not None, callbacks=callbacks).metrics


def _reporter(trial, metric: str, epochs: int):
    """A Keras callback reporting `metric` to the trial after every epoch; when the pruner says so (before
    the last epoch), training stops after that epoch (the run still completes: evaluated, saved) and
    `pruned` holds the epoch."""
    import keras

    class Reporter(keras.callbacks.Callback):
        pruned = 0

        def on_epoch_end(self, epoch, logs=None):
            value = (logs or {}).get(metric)
            if value is None:
                raise ConfigError(f"search.metric `{metric}` is not among the metrics logged: "
                                  f"{', '.join(sorted(logs or {}))}")
            trial.report(float(value), epoch + 1)
            if epoch + 1 < epochs and trial.should_prune():
                self.pruned = epoch + 1
                self.model.stop_training = True

        def on_train_begin(self, logs=None):
            if self.pruned:  # a later phase's fit
                self.model.stop_training = True

    return Reporter()


def retry_stale(job) -> None:
    """Trials left running by a process of this machine that is gone: recorded as failed, retried."""
    from optuna.trial import TrialState

    host = socket.gethostname()
    for trial in job.study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        pid = trial.user_attrs.get("pid")
        if trial.user_attrs.get("host") != host or pid is None or alive(pid):
            continue
        job.log(f"cnnzoo: trial {trial.number + 1} was left running by process {pid}, which is gone: retrying it "
                f"in {job.root / trial.user_attrs.get('folder', '?')}")
        job.study.tell(trial.number, state=TrialState.FAIL, skip_if_finished=True)
        job.study.enqueue_trial(trial.params, user_attrs={"retry_of": trial.number})


def retry_failed(job) -> None:
    """A sweep's rerun: every grid point whose last trial failed (or diverged) is tried again in its folder;
    the completed ones are kept."""
    from optuna.trial import TrialState

    trials = job.study.get_trials(deepcopy=False)
    retried = {t.user_attrs["retry_of"] for t in trials if "retry_of" in t.user_attrs}
    for trial in trials:
        if trial.number in retried or trial.user_attrs.get("surplus"):
            continue
        if trial.state == TrialState.COMPLETE:
            job.log(f"cnnzoo: {job.root / trial.user_attrs.get('folder', '?')} completed earlier: kept")
        elif trial.state in (TrialState.FAIL, TrialState.PRUNED):
            job.study.enqueue_trial(trial.params, user_attrs={"retry_of": trial.number})


def _trial_attr(study, number: int, key: str) -> Any:
    return next((t.user_attrs.get(key) for t in study.get_trials(deepcopy=False) if t.number == number), None)


def _shown(job, values: dict[str, Any]) -> dict[str, Any]:
    """Values as a folder name shows them: drawn from a float range, to 4 significant digits; listed, as written."""
    return {k: float(f"{v:.4g}") if isinstance(v, float) and job.spec.parameters[k].float_range else v
            for k, v in values.items()}


def _text(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value)
