"""`cnnzoo search`: the config's `search:` section explored with Optuna, one ordinary run folder per trial.

The study lives in a storage (default `sqlite:///<search folder>/study.db`) named after a hash of the
config, so the same command finds it again: a killed search, run again, goes on to the number of trials
asked for. Trials are asked and told one at a time, and a trial is run only if it is within the number
asked for (counting those other processes on the same storage have started), so several processes
together run exactly that many. A trial reports its metric every epoch; one the pruner stops ends its
epoch and completes its run folder, and is recorded as pruned. A diverged trial is recorded as pruned,
one whose settings fail as failed, and the search goes on. A trial left running by a dead process on
this machine (or stopped by Ctrl-C) is recorded as failed and retried as a new trial with the same
values, which resumes its run folder from the saved state: no completed run is ever deleted.
"""

from __future__ import annotations

import hashlib
import json
import os
import socket
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from cnnzoo.config.loader import load_config
from cnnzoo.config.search_schema import SearchConfig
from cnnzoo.errors import CnnzooError, ConfigError, Location, TrainingError
from cnnzoo.training.checkpoints import has_saved_state
from cnnzoo.training.hparams import write_experiment, write_session
from cnnzoo.training.run_dir import RunDir, is_run, write_json
from cnnzoo.training.search_study import (alive, grid_size, import_optuna, more_wanted, open_study, place,
                                          sampler)
from cnnzoo.training.sweep import folder_name
from cnnzoo.training.fitting import TrainingInterrupted
from cnnzoo.training.trainer import train

DEFAULT_TRIALS = 20


@dataclass
class Search:
    """One process's part in a search: the base config, the study, where trials go."""

    config_path: str
    overrides: list[str]
    spec: SearchConfig
    root: Path
    study: Any
    manual_dir: str | None = None
    log: Callable[[str], None] = print
    callbacks: list = field(default_factory=list)
    epochs: int = 0  # a trial's epochs (train.epochs), unless searched: no pruning after the last
    seeded: bool = False  # runtime.seed set: the same values train the same run


def search(config_path: str, overrides: list[str] = (), *, trials: int | None = None, output_dir: str | None = None,
           storage: str | None = None, manual_dir: str | None = None, log: Callable[[str], None] = print,
           callbacks: list | None = None) -> list[dict[str, Any]]:
    """Run the search's trials (those still missing), then write its table, best.yaml and plots.

    Returns one row per trial (also in trials.csv and trials.md of the search folder).
    """
    from cnnzoo.training.search_report import write_plots, write_report

    optuna = import_optuna()
    base = load_config(config_path, list(overrides))
    spec = base.search
    if spec is None or not spec.parameters:
        raise ConfigError("nothing to search: the config has no `search.parameters`", location=Location(str(config_path)),
                          hint="Add e.g. `search: {parameters: {train.optimizer.learning_rate: {float: [1.0e-3, 1.0], "
                          "log: true}}}` (docs/search.md).")
    settings = base.model_dump(mode="json", exclude={"search": {"trials", "timeout"}})  # more trials: the same study
    digest = hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()[:8]
    root = Path(output_dir or f"runs/search-{base.model.name}-{digest}")
    _claim(root, f"search-{base.model.name}-{digest}", storage)
    study = open_study(optuna, storage or f"sqlite:///{root.resolve() / 'study.db'}", f"search-{base.model.name}-{digest}",
                   spec)
    wanted = trials or spec.trials or (grid_size(spec) if spec.sampler == "grid" else None)
    wanted = wanted or (None if spec.timeout is not None else DEFAULT_TRIALS)
    offset = len(study.trials) + (os.getpid() if storage else 0)  # a rerun or another process: other draws
    study.sampler = sampler(spec, base.runtime.seed, offset, wanted)
    job = Search(str(config_path), list(overrides), spec, root, study, manual_dir, log, list(callbacks or []),
                 base.train.epochs, base.runtime.seed is not None)
    write_experiment(root, {key: _domain(p) for key, p in spec.parameters.items()})
    log(f"cnnzoo: search of {wanted or 'unlimited'} trials over {', '.join(spec.parameters)} ({spec.sampler}, "
        f"pruner {spec.pruner}, {'maximize' if spec.maximize else 'minimize'} {spec.metric}) in {root}; study "
        f"{study.study_name} in {storage or root / 'study.db'}")
    _retry_stale(job)
    deadline = None if spec.timeout is None else time.monotonic() + spec.timeout_seconds
    while more_wanted(study, wanted) and (deadline is None or time.monotonic() < deadline):
        trial = study.ask()
        if wanted is not None and place(study, trial.number) > wanted:  # another process took the last one
            trial.set_user_attr("surplus", True)
            study.tell(trial, state=optuna.trial.TrialState.FAIL)
            break
        _run_trial(job, trial)
        write_report(job)
    rows = write_report(job)
    write_plots(job)
    return rows


def _claim(root: Path, name: str, storage: str | None) -> None:
    """A search folder holds one study's trials: another config (or storage) is refused, since its trial
    folders would be taken for this one's."""
    record = root / "search.json"
    mine = {"study": name, "storage": storage or "study.db"}
    found = list(root.iterdir()) if root.is_dir() else []
    if not record.is_file():  # (looked at after the listing: a process starting beside this one writes it first)
        if found:
            raise CnnzooError(f"{root} is not empty and holds no search", hint="Give the search a new --output-dir.")
        root.mkdir(parents=True, exist_ok=True)
        write_json(record, mine)
    elif json.loads(record.read_text()) != mine:
        raise CnnzooError(f"{root} holds the trials of another search ({json.loads(record.read_text())['study']}, "
                          "from other settings or another storage); nothing was changed",
                          hint="Give this search another --output-dir (or the settings and --storage of that one).")


def _run_trial(job: Search, trial) -> None:
    """Train (or resume) one trial's run folder and tell the study how it went."""
    from optuna.trial import TrialState

    values = {key: _suggest(trial, key, spec) for key, spec in job.spec.parameters.items()}
    retry_of = trial.user_attrs.get("retry_of")
    if retry_of is None and job.seeded and _repeat(job, trial):
        return
    earlier = None if retry_of is None else _trial_attr(job.study, retry_of, "folder")  # None: killed before it had one
    folder = job.root / (earlier or Path("trials") / folder_name(trial.number + 1, _shown(values)))
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
        raise TrainingInterrupted(exc.message, signum=exc.exit_code - 128, hint="Run the same `cnnzoo search` "
                                  "command again: it goes on with this trial from its saved state.") from None
    except CnnzooError as exc:  # a diverged or unbuildable trial must not end the search
        message = str(exc).splitlines()[0]
        job.log(f"cnnzoo: trial {trial.number + 1} failed: {message}")
        trial.set_user_attr("error", message)
        if is_run(folder):
            write_session(folder, values, folder.name, failed=True)
        diverged = isinstance(exc, TrainingError) and "NaN" in message
        job.study.tell(trial, state=TrialState.PRUNED if diverged else TrialState.FAIL)
        return
    write_session(folder, values, folder.name, failed=False)
    history = metrics.get("history", {})
    trial.set_user_attr("epochs", metrics.get("epochs_completed"))
    if reporter.pruned or RunDir(folder).read_info().get("search") == "pruned":
        RunDir(folder).update_info(search="pruned")
        job.log(f"cnnzoo: trial {trial.number + 1} pruned after epoch {reporter.pruned or metrics.get('epochs_completed')}")
        job.study.tell(trial, state=TrialState.PRUNED)
    else:
        job.study.tell(trial, float(history[job.spec.metric][-1]))


def _repeat(job: Search, trial) -> bool:
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


def _train_or_resume(job: Search, folder: Path, values: dict[str, Any], callbacks: list) -> dict[str, Any]:
    """The trial's metrics: of its run folder if it completed, else by resuming it, else by training it."""
    from cnnzoo.training.resume import resume

    status = RunDir(folder).read_info().get("status") if is_run(folder) else None
    if status == "completed":
        job.log(f"cnnzoo: {folder} completed earlier: kept")
        return json.loads(RunDir(folder).metrics.read_text())
    if status is not None and has_saved_state(RunDir(folder)):  # never start over what can go on
        return resume(str(folder), manual_dir=job.manual_dir, log=job.log, callbacks=callbacks).metrics
    assignments = [f"{key}={json.dumps(value)}" for key, value in values.items()]
    config = load_config(job.config_path, [*job.overrides, *assignments, "search=null"])
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


def _retry_stale(job: Search) -> None:
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


def _trial_attr(study, number: int, key: str) -> Any:
    return next((t.user_attrs.get(key) for t in study.get_trials(deepcopy=False) if t.number == number), None)


def _suggest(trial, key: str, spec) -> Any:
    if spec.float_range is not None:
        return trial.suggest_float(key, *spec.float_range, log=spec.log, step=spec.step)
    if spec.int_range is not None:
        return trial.suggest_int(key, *spec.int_range, log=spec.log, step=spec.step or 1)
    plain = all(v is None or isinstance(v, (bool, int, float, str)) for v in spec.choice)
    picked = trial.suggest_categorical(key, spec.choice if plain else [json.dumps(v) for v in spec.choice])
    return picked if plain else json.loads(picked)


def _shown(values: dict[str, Any]) -> dict[str, Any]:
    """Values as a folder name shows them: floats to 4 significant digits."""
    return {k: float(f"{v:.4g}") if isinstance(v, float) else v for k, v in values.items()}


def _domain(spec) -> Any:
    return tuple(spec.bounds) if spec.bounds and spec.step is None else spec.grid()

