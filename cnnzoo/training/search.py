"""`cnnzoo search`: the config's `search:` section explored with Optuna, one ordinary run folder per trial;
`run` also runs `cnnzoo sweep`, whose grid is such a section (`cnnzoo.training.sweep`).

The study lives in a storage (default `sqlite:///<search folder>/study.db`) named after a hash of the
config, so the same command finds it again: a killed search, run again, goes on to the number of trials
asked for. Trials are asked and told one at a time, and a trial is run only if it is within the number
asked for (counting those other processes on the same storage have started), so several processes
together run exactly that many. A trial reports its metric every epoch; one the pruner stops ends its
epoch and completes its run folder, and is recorded as pruned. A diverged trial is recorded as pruned,
one whose settings fail as failed, and the search goes on (a sweep tries both again when run again). A
trial left running by a dead process on this machine (or stopped by Ctrl-C) is recorded as failed and
retried as a new trial with the same values, which resumes its run folder from the saved state: no
completed run is ever deleted (`cnnzoo.training.search_trial`).
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from cnnzoo.config.loader import load_config
from cnnzoo.config.search_schema import SearchConfig
from cnnzoo.errors import CnnzooError, ConfigError, Location
from cnnzoo.training.hparams import write_experiment
from cnnzoo.training.run_dir import write_json
from cnnzoo.training.search_study import (exhausted, grid_size, import_optuna, more_wanted, open_study, ordered_choices,
                                         place, sampler)
from cnnzoo.training.search_trial import retry_failed, retry_stale, run_trial

DEFAULT_TRIALS = 20
REPEATS_IN_A_ROW = 50  # draws of values measured before, one after another, that end a search: the sampler has converged


@dataclass
class Search:
    """One process's part in a search or sweep: the base config, the study, where trials go."""

    config_path: str
    overrides: list[str]
    spec: SearchConfig
    root: Path
    study: Any = None
    manual_dir: str | None = None
    log: Callable[[str], None] = print
    callbacks: list = field(default_factory=list)
    epochs: int = 0  # a trial's epochs (train.epochs), unless searched: no pruning after the last
    seeded: bool = False  # runtime.seed set: the same values train the same run
    command: str = "search"
    trials_dir: str = "trials"  # run folders go to root/trials_dir
    points: list[dict[str, Any]] | None = None  # a sweep's grid in its order: folders numbered by it, failed ones retried
    earlier: frozenset = frozenset()  # names a sweep from before studies left in its folder, which is taken over
    ordered: dict[str, list] = field(default_factory=dict)  # numeric choices drawn as an index into these sorted values


def search(config_path: str, overrides: list[str] = (), *, trials: int | None = None, output_dir: str | None = None,
           storage: str | None = None, manual_dir: str | None = None, log: Callable[[str], None] = print,
           callbacks: list | None = None) -> list[dict[str, Any]]:
    """Run the search's trials (those still missing), then write its table, best.yaml and plots.

    Returns one row per trial (also in trials.csv and trials.md of the search folder).
    """
    import_optuna()
    base = load_config(config_path, list(overrides))
    spec = base.search
    if spec is None or not spec.parameters:
        raise ConfigError("nothing to search: the config has no `search.parameters`", location=Location(str(config_path)),
                          hint="Add e.g. `search: {parameters: {train.optimizer.learning_rate: {float: [1.0e-3, 1.0], "
                          "log: true}}}` (docs/search.md).")
    settings = base.model_dump(mode="json", exclude={"search": {"trials", "timeout"}})  # more trials: the same study
    digest = hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()[:8]
    name = f"search-{base.model.name}-{digest}"
    wanted = trials or spec.trials or (grid_size(spec) if spec.sampler == "grid" else None)
    job = Search(str(config_path), list(overrides), spec, Path(output_dir or f"runs/{name}"), None, manual_dir, log,
                 list(callbacks or []), base.train.epochs, base.runtime.seed is not None)
    return run(job, name, wanted or (None if spec.timeout is not None else DEFAULT_TRIALS), storage, base.runtime.seed)


def run(job: Search, name: str, wanted: int | None, storage: str | None = None, seed: int | None = None
        ) -> list[dict[str, Any]]:
    """Run the study's missing trials in `job.root`, then write its table, best.yaml and plots; returns the table."""
    from cnnzoo.training.search_report import write_plots, write_report

    optuna, spec, root = import_optuna(), job.spec, job.root
    _claim(job, name, storage)
    study = job.study = open_study(optuna, storage or f"sqlite:///{root.resolve() / 'study.db'}", name, spec)
    job.ordered = ordered_choices(study, spec)
    study.sampler = sampler(spec, seed, wanted, in_order=job.points is not None, trials_before=len(study.trials),
                            process=os.getpid() if storage else None)  # a rerun or another process: other draws
    write_experiment(root, {key: _domain(p) for key, p in spec.parameters.items()})
    job.log(f"cnnzoo: {job.command} of {wanted or 'unlimited'} trials over {', '.join(spec.parameters)} ({spec.sampler}, "
            f"pruner {spec.pruner}, {'maximize' if spec.maximize else 'minimize'} {spec.metric}) in {root}; study "
            f"{study.study_name} in {storage or root / 'study.db'}")
    retry_stale(job)
    if job.points is not None:
        retry_failed(job)
    deadline = None if spec.timeout is None else time.monotonic() + spec.timeout_seconds
    repeats = 0
    while more_wanted(study, wanted) and (deadline is None or time.monotonic() < deadline):
        if _all_tried(job) or repeats >= REPEATS_IN_A_ROW:
            break
        trial = study.ask()
        if wanted is not None and place(study, trial.number) > wanted:  # another process took the last one
            trial.set_user_attr("surplus", True)
            study.tell(trial, state=optuna.trial.TrialState.FAIL)
            break
        repeats = 0 if run_trial(job, trial) else repeats + 1
        write_report(job)
    if repeats >= REPEATS_IN_A_ROW:
        job.log(f"cnnzoo: the sampler drew values tried before {repeats} times in a row: the search ends here")
    rows = write_report(job)
    write_plots(job)
    return rows


def _all_tried(job: Search) -> bool:
    """A finite space with every point tried: a search (not a sweep, whose grid is its number of trials) ends."""
    size = None if job.points is not None else exhausted(job.study, job.spec)
    if size is not None:
        job.log(f"cnnzoo: every point of the search space has been tried ({size}): the search ends here")
    return size is not None


def _claim(job: Search, name: str, storage: str | None) -> None:
    """A search folder holds one study's trials: another config (or storage) is refused, since its trial
    folders would be taken for this one's. A sweep's folder from before studies is taken over: its runs are
    the grid's, kept or resumed as its trials come."""
    root = job.root
    record = root / "search.json"
    mine = {"study": name, "storage": storage or "study.db"}
    found = list(root.iterdir()) if root.is_dir() else []
    if not record.is_file():  # (looked at after the listing: a process starting beside this one writes it first)
        if found and not (job.earlier and all(p.name in job.earlier or p.name.startswith("events.out.tfevents")
                                              for p in found)):
            raise CnnzooError(f"{root} is not empty and holds no {job.command}",
                              hint=f"Give the {job.command} a new --output-dir.")
        root.mkdir(parents=True, exist_ok=True)
        write_json(record, mine)
    elif json.loads(record.read_text()) != mine:
        raise CnnzooError(f"{root} holds the trials of another {job.command} ({json.loads(record.read_text())['study']}, "
                          "from other settings or another storage); nothing was changed",
                          hint=f"Give this {job.command} another --output-dir (or the settings and --storage of that one).")


def _domain(spec) -> Any:
    return tuple(spec.bounds) if spec.bounds and spec.step is None else spec.grid()

