"""`cnnzoo sweep`: a grid of overrides, one run each, in sequence, logged to TensorBoard's HParams tab.

The grid comes from the config's `sweep:` section and `--grid key=v1,v2` options. Runs go to
`runs/sweep-<name>-<timestamp>/<key=value,...>/`, so `tensorboard --logdir` on the sweep folder
shows them side by side, with HParams comparing their settings and final metrics.
"""

from __future__ import annotations

import itertools
import json
import time
from pathlib import Path
from typing import Any, Callable

from cnnzoo.config.loader import load_config
from cnnzoo.config.yaml_io import parse_value
from cnnzoo.errors import ConfigError, Location
from cnnzoo.training.run_dir import write_json
from cnnzoo.training.trainer import RunResult, train

METRICS = [("epoch_loss", "train"), ("epoch_accuracy", "train"), ("epoch_loss", "validation"),
           ("epoch_accuracy", "validation")]


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


def run_name(values: dict[str, Any]) -> str:
    """`model.params.n=3,model.blocks.basic.shortcut=A` -> `n=3,shortcut=A` (last key parts)."""
    return ",".join(f"{key.split('.')[-1]}={value}" for key, value in values.items()) or "base"


def sweep(config_path: str, overrides: list[str], grid_options: list[str], output_dir: str | None = None,
          manual_dir: str | None = None, log: Callable[[str], None] = print) -> list[dict[str, Any]]:
    """Train every combination of the grid; returns one summary row per run (also in summary.json/.md)."""
    base = load_config(config_path, overrides)
    grid = {**base.sweep, **parse_grid(grid_options)}
    if not grid:
        raise ConfigError("nothing to sweep: the config has no `sweep:` section and no --grid was given",
                          location=Location(str(config_path)), hint="Add e.g. --grid train.optimizer.learning_rate=0.1,1.0")
    root = Path(output_dir or f"runs/sweep-{base.model.name}-{time.strftime('%Y%m%d-%H%M%S')}")
    runs = combinations(grid)
    log(f"cnnzoo: sweep of {len(runs)} runs over {', '.join(grid)} in {root}")
    _write_hparams_config(root, grid)
    rows = []
    for i, values in enumerate(runs, start=1):
        name = run_name(values)
        log(f"cnnzoo: sweep run {i}/{len(runs)}: {name}")
        combo = [f"{key}={json.dumps(value)}" for key, value in values.items()]
        config = load_config(config_path, [*overrides, *combo, "sweep={}"])
        start = time.perf_counter()
        result = train(config, output_dir=str(root / name), manual_dir=manual_dir, log=log)
        _write_hparams(result, values, name)
        rows.append(_row(name, values, result, time.perf_counter() - start))
        write_json(root / "summary.json", rows)
    (root / "summary.md").write_text(summary_table(rows))
    log(summary_table(rows))
    return rows


def _row(name: str, values: dict[str, Any], result: RunResult, seconds: float) -> dict[str, Any]:
    history = result.metrics["history"]
    return {
        "run": name, **{k.split(".")[-1]: v for k, v in values.items()},
        "train_loss": history["loss"][-1], "train_accuracy": history.get("accuracy", [None])[-1],
        "test_accuracy": result.metrics["test"].get("accuracy"), "params": result.metrics["params"],
        "epochs": result.metrics["epochs_completed"], "seconds": round(seconds, 1),
        "run_dir": str(result.run_dir.path),
    }


def summary_table(rows: list[dict[str, Any]]) -> str:
    """The sweep's results as a Markdown table."""
    columns = [c for c in rows[0] if c != "run_dir"]
    lines = ["| " + " | ".join(columns) + " |", "|" + " --- |" * len(columns)]
    for row in rows:
        lines.append("| " + " | ".join(_cell(c, row[c]) for c in columns) + " |")
    return "\n".join(lines) + "\n"


def _cell(column: str, value: Any) -> str:
    """Metrics to 4 decimals, seconds to 1, counts with separators, settings as given."""
    if column in ("train_loss", "train_accuracy", "test_accuracy") and isinstance(value, float):
        return f"{value:.4f}"
    if column == "seconds":
        return f"{value:.1f}"
    return f"{value:,}" if column == "params" else str(value)


def _write_hparams_config(root: Path, grid: dict[str, list[Any]]) -> None:
    import tensorflow as tf
    from tensorboard.plugins.hparams import api as hp

    hparams = [hp.HParam(key, hp.Discrete([_hp_value(v) for v in values])) for key, values in grid.items()]
    metrics = [hp.Metric(tag, group=group, display_name=f"{group} {tag.removeprefix('epoch_')}")
               for tag, group in METRICS]
    root.mkdir(parents=True, exist_ok=True)
    with tf.summary.create_file_writer(str(root)).as_default():
        hp.hparams_config(hparams=hparams, metrics=metrics)


def _write_hparams(result: RunResult, values: dict[str, Any], name: str) -> None:
    """The run's settings as an HParams session in its logs/ (metrics are read from logs/train, logs/validation)."""
    import tensorflow as tf
    from tensorboard.plugins.hparams import api as hp

    with tf.summary.create_file_writer(str(result.run_dir.logs)).as_default():
        hp.hparams({key: _hp_value(v) for key, v in values.items()}, trial_id=name)


def _hp_value(value: Any) -> Any:
    return value if isinstance(value, (bool, int, float, str)) else json.dumps(value)
