"""Load-time checks of `search.parameters` and of the `sweep:` grid: each key is a real config key that takes
the values searched.

Each parameter's ends (or each of its choices) are applied to the config as an override and the result
is validated as a whole, so a key is checked exactly as `key=value` on the command line would be. A
failure points at the parameter's line in the search's file.
"""

from __future__ import annotations

import copy
import json
from typing import Any

from cnnzoo.errors import ConfigError


def check_search(config, data: dict, marks: dict, sources: tuple[str, ...]) -> None:
    """Raise a ConfigError at the parameter's line for a path or value that the config would refuse."""
    _check_metric(config, marks)
    for key, spec in config.search.parameters.items():
        where = marks.get(("search", "parameters", key)) or config.where("search", "parameters")
        check_values(config, data, marks, sources, "search parameter", key, spec.samples(), where)


def check_sweep(config, data: dict, marks: dict, sources: tuple[str, ...]) -> None:
    """The same for each value of the `sweep:` grid (a sweep is the grid case of a search), at its key's line."""
    for key, values in config.sweep.items():
        where = marks.get(("sweep", key)) or config.where("sweep")
        if not values:
            raise ConfigError(f"sweep key `{key}` lists no values", location=where,
                              hint="List at least one value, e.g. `model.params.n: [3, 9]`.")
        check_values(config, data, marks, sources, "sweep key", key, values, where)


def check_values(config, data: dict, marks: dict, sources: tuple[str, ...], kind: str, key: str, values: list,
                 where) -> None:
    """Each value applied to the config as the override `key=value` and the whole validated."""
    from cnnzoo.config.loader import apply_override, validate_config

    what = f"{kind} `{key}`"
    name = key.split(".")
    if name[:2] == ["model", "params"] and len(name) == 3 and name[2] not in config.model.params:
        known = ", ".join(config.model.params) or "none"
        raise ConfigError(f"{what}: the model has no parameter `{name[2]}` (it has: {known})",
                          location=where, hint="Declare it under model.params and use it as `$name` in a layer.")
    for value in values:
        trial, trial_marks = copy.deepcopy({k: v for k, v in data.items() if k not in ("search", "sweep")}), dict(marks)
        try:
            apply_override(trial, trial_marks, f"{key}={json.dumps(value)}")
            validate_config(trial, trial_marks, sources)
        except ConfigError as exc:
            raise ConfigError(f"{what}: {_value(value)} is refused: {exc.message}",
                              location=where, hint=exc.hint or "Fix the key or its values.") from None


def _check_metric(config, marks: dict) -> None:
    metric, logged = config.search.metric, ["loss", *config.train.metrics]
    validated = config.data.validation_split is not None
    if metric.removeprefix("val_") in logged and (validated or not metric.startswith("val_")):
        return
    names = [*logged, *(f"val_{m}" for m in logged if validated)]
    raise ConfigError(f"search.metric `{metric}` is not logged by these runs (they log {', '.join(names)})",
                      location=marks.get(("search", "metric")) or config.where("search"),
                      hint="Name one of those, or add the metric to train.metrics.")


def _value(value: Any) -> str:
    return f"the value {json.dumps(value)}"
