"""`cnnzoo sweep`: a grid of overrides, one run each, in sequence, logged to TensorBoard's HParams tab.

The grid comes from the config's `sweep:` section and `--grid key=v1,v2` options. Runs go to
`runs/sweep-<name>-<hash>/<NN>-<key=value,...>/`: the hash is of the base config and the grid,
so the same command finds the same folder again. A run that fails (diverges, or its settings do
not build) is recorded as failed and the others still run; running the sweep again skips the
completed runs, resumes every run that saved a state (whatever its status says: a killed process
leaves `running`) and starts again only the runs that saved none.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import re
import shutil
import time
from pathlib import Path
from typing import Any, Callable

from cnnzoo.config.loader import load_config
from cnnzoo.config.yaml_io import parse_value
from cnnzoo.errors import CnnzooError, ConfigError, Location, TrainingError
from cnnzoo.training.checkpoints import has_saved_state
from cnnzoo.training.hparams import write_experiment, write_session
from cnnzoo.training.run_dir import RunDir, is_run, write_json
from cnnzoo.training.fitting import TrainingInterrupted
from cnnzoo.training.trainer import train

FAILED = "failed.json"  # marks a sweep folder whose run never started


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
    return ",".join(f"{key.split('.')[-1]}={_text(value)}" for key, value in values.items()) or "base"


def folder_name(index: int, values: dict[str, Any]) -> str:
    """`01-n=3,shortcut=A`: numbered (unique whatever the values), only characters safe in paths, short."""
    safe = re.sub(r"[^A-Za-z0-9._=,+-]+", "_", run_name(values)).strip("._") or "run"
    return f"{index:02d}-{safe[:80]}"


def sweep(config_path: str, overrides: list[str], grid_options: list[str], output_dir: str | None = None,
          manual_dir: str | None = None, log: Callable[[str], None] = print) -> list[dict[str, Any]]:
    """Train every combination of the grid; returns one summary row per run (also in summary.json/.md).

    Raises:
        TrainingError: after all runs, when some failed (the summary says which and why).
    """
    base = load_config(config_path, overrides)
    grid = {**base.sweep, **parse_grid(grid_options)}
    if not grid:
        raise ConfigError("nothing to sweep: the config has no `sweep:` section and no --grid was given",
                          location=Location(str(config_path)), hint="Add e.g. --grid train.optimizer.learning_rate=0.1,1.0")
    digest = hashlib.sha256(json.dumps([base.to_yaml(), grid], default=str).encode()).hexdigest()[:8]
    root = Path(output_dir or f"runs/sweep-{base.model.name}-{digest}")
    runs = combinations(grid)
    log(f"cnnzoo: sweep of {len(runs)} runs over {', '.join(grid)} in {root}")
    write_experiment(root, grid)
    rows = []
    for i, values in enumerate(runs, start=1):
        name = folder_name(i, values)
        log(f"cnnzoo: sweep run {i}/{len(runs)}: {name}")
        start = time.perf_counter()
        rows.append(_one_run(root / name, values, config_path, overrides, manual_dir, log, start))
        write_json(root / "summary.json", rows)
    (root / "summary.md").write_text(summary_table(rows))
    log(summary_table(rows))
    failed = [row["run"] for row in rows if row["status"] != "completed"]
    if failed:
        raise TrainingError(f"{len(failed)} of {len(rows)} sweep runs failed: {', '.join(failed)}",
                            hint=f"See {root / 'summary.md'}; run the same command again to retry them "
                            "(completed runs are kept).")
    return rows


def _one_run(folder: Path, values: dict[str, Any], config_path: str, overrides: list[str],
             manual_dir: str | None, log, start: float) -> dict[str, Any]:
    """Train (or skip, resume, retry) one grid point; a failure becomes a row, not an exception."""
    from cnnzoo.training.resume import resume

    combo = [f"{key}={json.dumps(value)}" for key, value in values.items()]
    status = RunDir(folder).read_info().get("status") if is_run(folder) else None
    try:
        if status == "completed":
            log(f"cnnzoo: {folder} completed earlier: kept")
            return _row(folder, values, json.loads(RunDir(folder).metrics.read_text()), 0.0, "completed")
        if status is not None and has_saved_state(RunDir(folder)):  # never start over what can go on
            metrics = resume(str(folder), manual_dir=manual_dir, log=log).metrics
        else:
            if (folder / FAILED).exists():
                shutil.rmtree(folder)  # our own record of an earlier attempt that never started
            config = load_config(config_path, [*overrides, *combo, "sweep={}"])
            metrics = train(config, output_dir=str(folder), manual_dir=manual_dir, log=log,
                            overwrite=status is not None).metrics
    except TrainingInterrupted:
        raise  # Ctrl-C ends the sweep; running it again goes on from here
    except Exception as exc:  # a diverged or unbuildable grid point must not end the others
        message = str(exc) if isinstance(exc, CnnzooError) else f"{type(exc).__name__}: {exc}"
        log(f"cnnzoo: sweep run {folder.name} failed: {message}")
        if not is_run(folder):
            folder.mkdir(parents=True, exist_ok=True)
            write_json(folder / FAILED, {"error": message})
        write_session(folder, values, folder.name, failed=True)
        return _row(folder, values, None, time.perf_counter() - start, f"failed: {message.splitlines()[0]}")
    write_session(folder, values, folder.name, failed=False)
    return _row(folder, values, metrics, time.perf_counter() - start, "completed")


def _row(folder: Path, values: dict[str, Any], metrics: dict | None, seconds: float, status: str) -> dict[str, Any]:
    history = (metrics or {}).get("history", {})
    return {
        "run": folder.name, **{k.split(".")[-1]: v for k, v in values.items()}, "status": status,
        "train_loss": history.get("loss", [None])[-1], "train_accuracy": history.get("accuracy", [None])[-1],
        "val_accuracy": (metrics or {}).get("validation", {}).get("accuracy"),
        "test_accuracy": (metrics or {}).get("test", {}).get("accuracy"), "params": (metrics or {}).get("params"),
        "epochs": (metrics or {}).get("epochs_completed"), "seconds": round(seconds, 1), "run_dir": str(folder),
    }


def summary_table(rows: list[dict[str, Any]]) -> str:
    """The sweep's results as a Markdown table."""
    columns = [c for c in rows[0] if c != "run_dir"]
    lines = ["| " + " | ".join(columns) + " |", "|" + " --- |" * len(columns)]
    for row in rows:
        lines.append("| " + " | ".join(_cell(c, row[c]) for c in columns) + " |")
    return "\n".join(lines) + "\n"


def _cell(column: str, value: Any) -> str:
    """Metrics to 4 decimals, seconds to 1, counts with separators, settings as given, missing as -."""
    if value is None:
        return "-"
    if column in ("train_loss", "train_accuracy", "val_accuracy", "test_accuracy") and isinstance(value, float):
        return f"{value:.4f}"
    if column == "seconds":
        return f"{value:.1f}"
    return f"{value:,}" if column == "params" else str(value).replace("|", "\\|")


def _text(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value)
