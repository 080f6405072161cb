"""What a search or sweep leaves beside its trials: trials.csv and trials.md (one row per trial), best.yaml
(the best trial's config, which `cnnzoo train` takes as it is) and plots/ (the metric against each
parameter, and the parameters' importances once enough trials completed); for a sweep also its summary
(one row per run, with its final metrics)."""

from __future__ import annotations

import csv
import json
import re
from pathlib import Path
from typing import Any

from cnnzoo.files import is_run
from cnnzoo.training.run_dir import RunDir
from cnnzoo.training.search_study import value_of

MIN_TRIALS_FOR_IMPORTANCE = 4


def rows(job) -> list[dict[str, Any]]:
    """One row per trial of the study (not those another process found surplus), in trial order."""
    trials = [t for t in job.study.get_trials(deepcopy=False) if not t.user_attrs.get("surplus")]
    retried = {t.user_attrs["retry_of"]: t.number for t in trials if "retry_of" in t.user_attrs}
    metric = job.spec.metric
    found = []
    for t in trials:
        if t.state.name == "WAITING":
            continue
        value = t.value if t.value is not None else (t.intermediate_values[max(t.intermediate_values)]
                                                     if t.intermediate_values else None)
        seconds = (t.datetime_complete - t.datetime_start).total_seconds() if t.datetime_complete else None
        found.append({
            "trial": t.number + 1, **{key.split(".")[-1]: value_of(t, key, spec, job.ordered)
                                     for key, spec in job.spec.parameters.items()},
            metric: None if value is None else round(value, 4), "state": _state(t, retried), "epochs": _epochs(job, t),
            "seconds": None if seconds is None else round(seconds, 1), "run": t.user_attrs.get("folder", "-"),
        })
    return found


def write_report(job) -> list[dict[str, Any]]:
    """trials.csv, trials.md and best.yaml of the search folder, as the study stands now."""
    table = rows(job)
    if not table:
        return table
    with (job.root / "trials.csv").open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(table[0]))
        writer.writeheader()
        writer.writerows(table)
    shown = [{k: float(f"{v:.4g}") if isinstance(v, float) and k != "seconds" else v for k, v in row.items()}
             for row in table]
    (job.root / "trials.md").write_text(markdown_table(shown))
    best = _best(job)
    if best is not None:
        from cnnzoo.training.resume import effective_config

        folder = job.root / best.user_attrs["folder"]
        text = effective_config(RunDir(folder)).to_yaml()
        (job.root / "best.yaml").write_text(f"# best of {len(table)} trials: trial {best.number + 1}, "
                                            f"{job.spec.metric} {best.value:.4f} ({best.user_attrs['folder']})\n{text}")
    return table


def _best(job):
    try:
        best = job.study.best_trial
    except ValueError:  # no trial completed yet
        return None
    return best if is_run(job.root / best.user_attrs.get("folder", "-")) else None


def _state(trial, retried: dict[int, int]) -> str:
    state = {"COMPLETE": "completed", "FAIL": "failed"}.get(trial.state.name, trial.state.name.lower())
    error = trial.user_attrs.get("error")
    if trial.number in retried:  # stopped by a kill or Ctrl-C; or failed, and a sweep run again tried it again
        return f"{f'{state}: {error};' if error else 'interrupted:'} retried as trial {retried[trial.number] + 1}"
    if "same_as" in trial.user_attrs:
        return f"{state}: the values of trial {trial.user_attrs['same_as'] + 1}, not trained again"
    return f"{state}: {error}" if error else state


def _epochs(job, trial) -> int | None:
    if trial.user_attrs.get("epochs") is not None:
        return trial.user_attrs["epochs"]
    return max(trial.intermediate_values) if trial.intermediate_values else None


def summary_rows(job) -> list[dict[str, Any]]:
    """One row per run folder, as its latest trial left it, in the folders' order: settings, status, final
    metrics (a sweep's summary.json and summary.md)."""
    latest = {t.user_attrs["folder"]: t for t in job.study.get_trials(deepcopy=False)
              if "folder" in t.user_attrs and t.state.name not in ("WAITING", "RUNNING")}
    found = []
    for name, t in sorted(latest.items(), key=lambda item: int(Path(item[0]).name.split("-")[0])):
        folder = job.root / name
        completed = t.state.name == "COMPLETE"
        metrics = json.loads(RunDir(folder).metrics.read_text()) if completed else {}
        history = metrics.get("history", {})
        seconds = (t.datetime_complete - t.datetime_start).total_seconds() if t.datetime_complete else 0.0
        found.append({
            "run": folder.name, **{key.split(".")[-1]: value for key, value in _values(job, t).items()},
            "status": "completed" if completed else f"failed: {t.user_attrs.get('error', 'interrupted')}",
            "train_loss": history.get("loss", [None])[-1], "train_accuracy": history.get("accuracy", [None])[-1],
            "val_accuracy": metrics.get("validation", {}).get("accuracy"),
            "test_accuracy": metrics.get("test", {}).get("accuracy"), "params": metrics.get("params"),
            "epochs": metrics.get("epochs_completed"), "seconds": round(seconds, 1), "run_dir": str(folder),
        })
    return found


def _values(job, trial) -> dict[str, Any]:
    """The trial's values as the config takes them."""
    return {key: value_of(trial, key, spec, job.ordered) for key, spec in job.spec.parameters.items()}


def markdown_table(rows: list[dict[str, Any]]) -> str:
    """Rows as a Markdown table (every column but run_dir)."""
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


def write_plots(job) -> list[Path]:
    """plots/<metric>_vs_<key>.png per parameter (completed trials as dots, pruned ones as crosses at their
    last value), and plots/importances.png (Optuna's fANOVA) from 4 completed trials on."""
    import matplotlib

    matplotlib.use("Agg")  # files only: no display needed
    import matplotlib.pyplot as plt

    table = rows(job)
    metric, written = job.spec.metric, []
    folder = job.root / "plots"
    folder.mkdir(exist_ok=True)
    for key, spec in job.spec.parameters.items():
        figure, ax = plt.subplots(figsize=(5.5, 4))
        for state, marker in (("completed", "o"), ("pruned", "x")):
            points = [(r[key.split(".")[-1]], r[metric]) for r in table
                      if r["state"].startswith(state) and r[metric] is not None]
            if points:
                x, y = zip(*points)
                ax.scatter([str(v) if spec.choice is not None else v for v in x], y, marker=marker, label=state)
        if spec.log:
            ax.set_xscale("log")
        ax.set_xlabel(key)
        ax.set_ylabel(metric)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
        figure.tight_layout()
        written.append(folder / f"{metric}_vs_{re.sub(r'[^A-Za-z0-9_.-]+', '_', key)}.png")
        figure.savefig(written[-1], dpi=100)
        plt.close(figure)
    completed = [t for t in job.study.get_trials(deepcopy=False) if t.state.name == "COMPLETE"]
    if len(completed) >= MIN_TRIALS_FOR_IMPORTANCE and len({str(t.params) for t in completed}) > 1:
        import optuna

        importances = optuna.importance.get_param_importances(job.study)
        figure, ax = plt.subplots(figsize=(5.5, 0.6 * len(importances) + 1.5))
        ax.barh(list(importances)[::-1], list(importances.values())[::-1])
        ax.set_xlabel(f"importance for {metric} (fANOVA)")
        figure.tight_layout()
        written.append(folder / "importances.png")
        figure.savefig(written[-1], dpi=100)
        plt.close(figure)
    return written
