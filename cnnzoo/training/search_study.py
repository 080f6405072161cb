"""The Optuna side of a search: the study in its storage, samplers and pruners as `search:` names them, and
which trials count towards the number asked for (several processes may share the study)."""

from __future__ import annotations

import itertools
import json
import os
import random
import time
from typing import Any

from cnnzoo.config.search_schema import SearchConfig
from cnnzoo.errors import CnnzooError


def open_study(optuna, storage: str, name: str, spec: SearchConfig):
    """The study, created or loaded; processes starting together may race to create the storage's tables."""
    from sqlalchemy.exc import SQLAlchemyError

    for attempt in range(6):
        try:
            return optuna.create_study(storage=storage, study_name=name, load_if_exists=True, pruner=_pruner(spec),
                                       direction="maximize" if spec.maximize else "minimize")
        except SQLAlchemyError:
            if attempt == 5:
                raise
            time.sleep(0.5 + random.random())


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def counted(trials: list) -> list:
    """The trials that count towards the number asked for: not a failed one retried later, not a surplus one,
    not a draw of values measured before (with a seed it is answered from the record: no new information)."""
    retried = {t.user_attrs["retry_of"] for t in trials if "retry_of" in t.user_attrs}
    return [t for t in trials if t.number not in retried and not t.user_attrs.get("surplus")
            and "same_as" not in t.user_attrs]


def exhausted(study, spec: SearchConfig) -> int | None:
    """The size of a finite search space (choices and stepped ranges only) once every point of it was tried
    (a trial stopped and waiting to be retried is not); None while points remain or the space is infinite."""
    from optuna.trial import TrialState

    if any(p.grid() is None for p in spec.parameters.values()):
        return None
    ended = (TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL)
    tried = {json.dumps(t.params, sort_keys=True) for t in counted(study.get_trials(deepcopy=False)) if t.state in ended}
    size = grid_size(spec)
    return size if len(tried) >= size else None


def more_wanted(study, wanted: int | None) -> bool:
    from optuna.trial import TrialState

    trials = counted(study.get_trials(deepcopy=False))
    return wanted is None or len(trials) < wanted or any(t.state == TrialState.WAITING for t in trials)


def place(study, number: int) -> int:
    return sum(t.number <= number for t in counted(study.get_trials(deepcopy=False)))


def grid_size(spec: SearchConfig) -> int:
    size = 1
    for parameter in spec.parameters.values():
        size *= len(parameter.grid())
    return size


def draw_seed(seed: int | None, trials_before: int, process: int | None) -> int | None:
    """The sampler's seed: a rerun (trials before it) draws other values than the first run, and each process
    sharing a storage (`process`: its id) other values than the others. The process's id is mixed in, not
    added: with `seed + trials + pid`, a process that started one trial later with the next pid drew the same
    values as the other, and repeated its trials."""
    if seed is None:
        return None
    if process is None:
        return (seed + trials_before) % 2**32
    import numpy as np

    return int(np.random.SeedSequence([seed, trials_before, process]).generate_state(1)[0])


def sampler(spec: SearchConfig, seed: int | None, wanted: int | None, in_order: bool = False, *,
            trials_before: int = 0, process: int | None = None):
    """The sampler `search.sampler` names; `in_order`: a grid's points handed out as written, first key slowest
    (a sweep), rather than shuffled. Random and TPE draws are seeded by `draw_seed`."""
    import optuna

    if spec.sampler == "grid":  # grid ids index the shuffled grid: every process and rerun must shuffle it alike
        space = {key: p.grid() if plain(p.grid()) else [json.dumps(v) for v in p.grid()]
                 for key, p in spec.parameters.items()}
        return _grid_sampler(optuna)(space, seed=seed or 0, in_order=in_order)
    seed = draw_seed(seed, trials_before, process)
    if spec.sampler == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    startup = 10 if wanted is None else max(3, min(10, wanted // 3))  # TPE learns after these random trials
    return optuna.samplers.TPESampler(seed=seed, n_startup_trials=startup)


def ordered_choices(study, spec: SearchConfig) -> dict[str, list]:
    """Keys whose choices are all numbers, each with its values sorted: TPE and random search draw the index
    into that list as an integer, so TPE sees their order (a learning rate better at 1.0 than at 0.3 is tried
    at 3.0) where a categorical draw would not. A grid keeps the values; a study begun with them as
    categories (before this) goes on so."""
    from optuna.distributions import CategoricalDistribution

    if spec.sampler == "grid":
        return {}
    earlier = {key for t in study.get_trials(deepcopy=False) for key, d in t.distributions.items()
               if isinstance(d, CategoricalDistribution)}
    return {key: sorted(p.choice) for key, p in spec.parameters.items() if key not in earlier and p.choice
            and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in p.choice) and len(p.choice) > 1}


def suggest(trial, key: str, spec, ordered: dict[str, list]) -> Any:
    """The value of `key` for this trial, drawn as `search.parameters` says."""
    if spec.float_range is not None:
        return trial.suggest_float(key, *spec.float_range, log=spec.log, step=spec.step)
    if spec.int_range is not None:
        return trial.suggest_int(key, *spec.int_range, log=spec.log, step=spec.step or 1)
    if key in ordered:
        return ordered[key][trial.suggest_int(key, 0, len(ordered[key]) - 1)]
    listed = plain(spec.choice)
    picked = trial.suggest_categorical(key, spec.choice if listed else [json.dumps(v) for v in spec.choice])
    return picked if listed else json.loads(picked)


def value_of(trial, key: str, spec, ordered: dict[str, list]) -> Any:
    """A drawn value as the config takes it (Optuna holds an ordered choice as its index, a mapping or list
    choice as JSON text); None when the trial has none."""
    if key not in trial.params:
        return None
    stored = trial.params[key]
    if key in ordered:
        return ordered[key][stored]
    return json.loads(stored) if spec.choice is not None and not plain(spec.choice) else stored


def plain(values: list) -> bool:
    """Values Optuna stores as they are (others go through JSON)."""
    return all(v is None or isinstance(v, (bool, int, float, str)) for v in values)


def _grid_sampler(optuna):
    class Grid(optuna.samplers.GridSampler):
        def __init__(self, search_space: dict, seed: int, in_order: bool):
            super().__init__(search_space, seed=seed)
            self.in_order = in_order
            if in_order:  # Optuna keeps the points as tuples in the order of its sorted parameter names
                keys = list(search_space)
                self._all_grids = [tuple(point[keys.index(name)] for name in self._param_names)
                                   for point in itertools.product(*search_space.values())]

        def _get_unvisited_grid_ids(self, study) -> list[int]:
            unvisited = super()._get_unvisited_grid_ids(study)
            return sorted(unvisited)[:1] if self.in_order else unvisited  # in order: the first point not tried

        def after_trial(self, study, trial, state, values) -> None:
            pass  # the search counts its trials itself (Optuna's stops `optimize`, which asking and telling is not)

    return Grid


def _pruner(spec: SearchConfig):
    import optuna

    return {"hyperband": lambda: optuna.pruners.HyperbandPruner(min_resource=1),
            "median": lambda: optuna.pruners.MedianPruner(n_startup_trials=2, n_warmup_steps=1),
            "none": optuna.pruners.NopPruner}[spec.pruner]()


def import_optuna():
    try:
        import optuna
    except ImportError:
        raise CnnzooError("`cnnzoo search` and `cnnzoo sweep` need Optuna, which is not installed",
                          hint="Install it with `pip install 'optuna>=5.1,<6'` (a dependency of cnnzoo).") from None
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    return optuna
