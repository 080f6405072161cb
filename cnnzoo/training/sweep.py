"""`cnnzoo sweep`: a grid of overrides, one run each: the grid case of `cnnzoo search`.

The grid comes from the config's `sweep:` section and `--grid key=v1,v2` options. It becomes a search of
`choice` parameters with the grid sampler (points in the order written) and no pruner, run by the
search's code: one Optuna study in the sweep folder, trials.csv/.md, best.yaml, plots and HParams. Runs
go to `runs/sweep-<name>-<hash>/<NN>-<key=value,...>/`: the hash is of the base config and the grid, so
the same command finds the same folder again (a folder of a sweep from before studies too). A run that
fails (diverges, or its settings do not build) is recorded as failed and the others still run; running
the sweep again keeps the completed runs, resumes every run that saved a state (whatever its status
says: a killed process leaves `running`) and starts again only the runs that saved none.
"""

from __future__ import annotations

import hashlib
import itertools
import json
from pathlib import Path
from typing import Any, Callable

from cnnzoo.config.loader import load_config
from cnnzoo.config.search_schema import SearchConfig
from cnnzoo.config.yaml_io import parse_value
from cnnzoo.errors import ConfigError, Location, TrainingError
from cnnzoo.training.run_dir import write_json
from cnnzoo.training.search import Search, run
from cnnzoo.training.search_report import markdown_table, summary_rows
from cnnzoo.training.search_trial import folder_name


def parse_grid(options: list[str]) -> dict[str, list[Any]]:
    """`--grid key=v1,v2` options -> {key: [v1, v2]} (values are YAML, as in overrides)."""
    grid = {}
    for text in options:
        key, sep, values = text.partition("=")
        if not sep or not key or not values:
            raise ConfigError(f"--grid {text!r} is not of the form key=value1,value2",
                              location=Location("<command line>"), hint="Example: --grid model.params.n=3,9")
        grid[key] = [parse_value(v, f"<command line> (--grid {text})") for v in values.split(",")]
    return grid


def combinations(grid: dict[str, list[Any]]) -> list[dict[str, Any]]:
    keys = list(grid)
    return [dict(zip(keys, values)) for values in itertools.product(*(grid[k] for k in keys))]


def grid_search(grid: dict[str, list[Any]], metric: str) -> SearchConfig:
    """The `search:` section a sweep over `grid` is: every combination of the listed values, in order."""
    return SearchConfig.model_validate({"metric": metric, "sampler": "grid", "pruner": "none",
                                        "parameters": {key: {"choice": values} for key, values in grid.items()}})


def sweep(config_path: str, overrides: list[str], grid_options: list[str], output_dir: str | None = None,
          manual_dir: str | None = None, log: Callable[[str], None] = print,
          callbacks: list | None = None) -> list[dict[str, Any]]:
    """Train every combination of the grid; returns one summary row per run (also in summary.json/.md).

    Raises:
        TrainingError: after all runs, when some failed (the summary says which and why).
    """
    base = load_config(config_path, overrides)
    grid = {**base.sweep, **parse_grid(grid_options)}
    if not grid:
        raise ConfigError("nothing to sweep: the config has no `sweep:` section and no --grid was given",
                          location=Location(str(config_path)), hint="Add e.g. --grid train.optimizer.learning_rate=0.1,1.0")
    if grid_options:  # checked as the config's own grid is when it loads, before anything is written
        try:
            load_config(config_path, [*overrides, f"sweep={json.dumps(grid, default=str)}"])
        except ConfigError as exc:
            raise ConfigError(exc.message, location=Location("<command line> (--grid)"), hint=exc.hint) from None
    digest = hashlib.sha256(json.dumps([base.to_yaml(), grid], default=str).encode()).hexdigest()[:8]
    name = f"sweep-{base.model.name}-{digest}"
    points = combinations(grid)
    job = Search(str(config_path), list(overrides), grid_search(grid, _metric(base)), Path(output_dir or f"runs/{name}"),
                 manual_dir=manual_dir, log=log, callbacks=list(callbacks or []), epochs=base.train.epochs,
                 seeded=base.runtime.seed is not None, command="sweep", trials_dir="", points=points,
                 earlier=frozenset({"summary.json", "summary.md", *(folder_name(i, p) for i, p in enumerate(points, 1))}))
    try:
        run(job, name, len(points), seed=base.runtime.seed)
    finally:  # Ctrl-C too: the summary of the runs so far
        rows = summary_rows(job) if job.study is not None else []
        if rows:
            write_json(job.root / "summary.json", rows)
            (job.root / "summary.md").write_text(markdown_table(rows))
    log(markdown_table(rows))
    failed = [row["run"] for row in rows if row["status"] != "completed"]
    if failed:
        raise TrainingError(f"{len(failed)} of {len(rows)} sweep runs failed: {', '.join(failed)}",
                            hint=f"See {job.root / 'summary.md'}; run the same command again to retry them "
                            "(completed runs are kept).")
    return rows


def _metric(base) -> str:
    """What the study ranks runs by (best.yaml, plots): the config's `search.metric` if it has one, else the
    validation accuracy, or the training accuracy (or loss) when the runs are not validated."""
    if base.search is not None and base.search.parameters:  # (checked when the config loaded)
        return base.search.metric
    name = "accuracy" if "accuracy" in base.train.metrics else "loss"
    return f"val_{name}" if base.data.validation_split is not None else name
