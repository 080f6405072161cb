"""The `search:` section: what `cnnzoo search` tries (Optuna), keyed by the dotted paths of overrides.

Each parameter is a range or a list of choices. Their shapes are checked here; whether each path is a
real config key that takes the range's values is checked by `cnnzoo.config.search_check` when the
whole config loads.
"""

from __future__ import annotations

import re
from typing import Any, Literal, Optional, Union

from pydantic import ConfigDict, Field, model_validator

from cnnzoo.config.sections import Section

DURATION = re.compile(r"(\d+(?:\.\d+)?)\s*([smhd]?)")
SECONDS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}


class ParameterSpec(Section):
    """One searched key: `{float: [lo, hi], log: true}`, `{int: [lo, hi], step: 8}` or `{choice: [a, b, c]}`."""

    model_config = ConfigDict(**Section.model_config, serialize_by_alias=True)  # dumped as written: `float`, `int`

    float_range: Optional[list[float]] = Field(
        None, alias="float", min_length=2, max_length=2, description="[low, high]: a real number in the range.")
    int_range: Optional[list[int]] = Field(
        None, alias="int", min_length=2, max_length=2, description="[low, high]: an integer in the range, both included.")
    choice: Optional[list[Any]] = Field(None, min_length=1, description="One of these values (YAML, as in overrides).")
    log: bool = Field(False, description="Sample the range on a log scale (both ends above 0).")
    step: Union[int, float, None] = Field(None, gt=0, description="Only values low + k * step.")

    @model_validator(mode="after")
    def _one_kind(self) -> "ParameterSpec":
        kinds = [k for k, v in (("float", self.float_range), ("int", self.int_range), ("choice", self.choice)) if v is not None]
        if len(kinds) != 1:
            raise ValueError("give exactly one of `float: [low, high]`, `int: [low, high]` or `choice: [values]`"
                             + (f" (found {', '.join(kinds)})" if kinds else ""))
        if self.choice is not None and (self.log or self.step is not None):
            raise ValueError("`log` and `step` go with a float or int range, not with `choice`")
        low, high = self.bounds or (None, None)
        if low is not None and not low < high:
            raise ValueError(f"the range [{low}, {high}] is {'empty' if low == high else 'reversed'}: "
                             "write it as [low, high] with low < high")
        if self.log and low <= 0:
            raise ValueError(f"a log range must stay above 0, but [{low}, {high}] reaches down to {low}")
        if self.log and self.step is not None:
            raise ValueError("a range cannot have both `log` and `step` (Optuna samples one or the other)")
        if self.int_range is not None and self.step is not None and not isinstance(self.step, int):
            raise ValueError(f"an int range needs an integer step, got {self.step}")
        return self

    @property
    def bounds(self) -> tuple[float, float] | None:
        spec = self.float_range or self.int_range
        return (spec[0], spec[1]) if spec else None

    def samples(self) -> list[Any]:
        """Values that stand for the whole parameter when its path is checked: the ends, or every choice."""
        return list(self.choice) if self.choice is not None else list(self.float_range or self.int_range)

    def grid(self) -> list[Any] | None:
        """Every value, for the grid sampler: the choices, or an int range (stepped); None for a float range
        without a step."""
        if self.choice is not None:
            return list(self.choice)
        low, high = self.bounds
        step = self.step or (1 if self.int_range else None)
        if step is None:
            return None
        count = int(round((high - low) / step)) + 1
        values = [low + i * step for i in range(count) if low + i * step <= high + 1e-12]
        return [int(v) for v in values] if self.int_range else values


class SearchConfig(Section):
    """For `cnnzoo search`: a search over config keys with Optuna (docs/search.md). `cnnzoo train` ignores it."""

    metric: str = Field("val_accuracy", description="The logged metric the search optimises (a column of the run's "
                        "history, e.g. val_accuracy, val_loss, accuracy), reported every epoch for pruning.")
    direction: Optional[Literal["maximize", "minimize"]] = Field(
        None, description="Default: minimize for a metric with `loss` or `error` in its name, else maximize.")
    trials: Optional[int] = Field(None, gt=0, description="Trials to run in all (also --trials); with a seed, values "
                                  "drawn again are not trained or counted, and a finite space ends when every point was tried. "
                                  "Default: every grid point with `sampler: grid`, else 20 (or unlimited with a `timeout`).")
    timeout: Union[str, int, None] = Field(None, description="Start no trial after this long, e.g. `2h`, `30m`, "
                                           "`90s` or seconds; counted from this command's start.")
    sampler: Literal["tpe", "random", "grid"] = Field(
        "tpe", description="tpe: learns from earlier trials; random; grid: every combination (choices and stepped ranges).")
    pruner: Literal["hyperband", "median", "none"] = Field(
        "hyperband", description="Stops trials whose metric lags the others' at the same epoch.")
    parameters: dict[str, ParameterSpec] = Field(
        {}, description="Override key -> `{float: [lo, hi], log: true}`, `{int: [lo, hi], step: n}` or `{choice: "
        "[values]}`, e.g. `train.optimizer.learning_rate: {float: [1.0e-4, 1.0], log: true}`.")

    @model_validator(mode="after")
    def _checked(self) -> "SearchConfig":
        if self.timeout is not None:
            self.timeout_seconds  # noqa: B018 (raises for a malformed duration)
        if self.sampler == "grid":
            loose = [key for key, spec in self.parameters.items() if spec.grid() is None]
            if loose:
                raise ValueError(f"`sampler: grid` needs values to list, but {', '.join(loose)} is a float range "
                                 "without a `step`: give it a step or a `choice`")
        return self

    @property
    def timeout_seconds(self) -> float | None:
        if self.timeout is None:
            return None
        match = DURATION.fullmatch(str(self.timeout).strip())
        if not match or float(match.group(1)) <= 0:
            raise ValueError(f"timeout {self.timeout!r} is not a duration like 2h, 30m, 90s or a number of seconds")
        return float(match.group(1)) * SECONDS[match.group(2)]

    @property
    def maximize(self) -> bool:
        if self.direction is not None:
            return self.direction == "maximize"
        return not any(word in self.metric for word in ("loss", "error"))
