"""Load-time checks of `search.parameters`: each key is a real config key that takes the values searched.

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
    from cnnzoo.config.loader import apply_override, validate_config

    _check_metric(config, marks)
    for key, spec in config.search.parameters.items():
        where = marks.get(("search", "parameters", key)) or config.where("search", "parameters")
        name = key.split(".")
        if name[:2] == ["model", "params"] and len(name) == 3 and name[2] not in config.model.params:
            known = ", ".join(config.model.params) or "none"
            raise ConfigError(f"search parameter `{key}`: the model has no parameter `{name[2]}` (it has: {known})",
                              location=where, hint="Declare it under model.params and use it as `$name` in a layer.")
        for value in spec.samples():
            trial, trial_marks = copy.deepcopy({k: v for k, v in data.items() if k != "search"}), dict(marks)
            try:
                apply_override(trial, trial_marks, f"{key}={json.dumps(value)}")
                validate_config(trial, trial_marks, sources)
            except ConfigError as exc:
                raise ConfigError(f"search parameter `{key}`: {_value(value)} is refused: {exc.message}",
                                  location=where, hint=exc.hint or "Fix the key or its range.") from None


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
