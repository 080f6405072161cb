"""`cnnzoo plot`: loss (log scale) and error curves per epoch from runs' metrics.json, several runs overlaid.

As in He et al.'s figures: thin solid lines are training, bold dashed lines validation.
"""

from __future__ import annotations

import json
from pathlib import Path

from cnnzoo.errors import CnnzooError


def read_runs(run_dirs: list[str]) -> dict[str, dict]:
    """{run label: metrics.json} for every run directory (or metrics.json path) given."""
    runs = {}
    for given in run_dirs:
        path = Path(given)
        metrics = path if path.suffix == ".json" else path / "metrics.json"
        if not metrics.is_file():
            raise CnnzooError(
                f"{given} has no metrics.json (it is written when a run completes)",
                hint="Pass run directories of completed runs, e.g. runs/slide_cnn-20261125-130236.",
            )
        label = metrics.parent.name
        runs[label if label not in runs else str(metrics.parent)] = json.loads(metrics.read_text())
    return runs


def plot_runs(run_dirs: list[str], output: str, title: str | None = None) -> Path:
    """Save a PNG: loss (left) and error % = 100 - accuracy (right) per epoch."""
    import matplotlib

    matplotlib.use("Agg")  # files only: no display needed
    import matplotlib.pyplot as plt

    runs = read_runs(run_dirs)
    figure, (loss_ax, error_ax) = plt.subplots(1, 2, figsize=(12, 4.5))
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for i, (label, metrics) in enumerate(runs.items()):
        history, color = metrics["history"], colors[i % len(colors)]
        epochs = range(1, len(history.get("loss", [])) + 1)
        for key, style in (("loss", dict(lw=1)), ("val_loss", dict(lw=2.2, ls="--"))):
            if history.get(key):
                loss_ax.plot(epochs, history[key], color=color, label=f"{label} {key.replace('val_', 'val ')}", **style)
        for key, style in (("accuracy", dict(lw=1)), ("val_accuracy", dict(lw=2.2, ls="--"))):
            if history.get(key):
                error = [100 * (1 - a) for a in history[key]]
                name = "val error" if key.startswith("val") else "train error"
                error_ax.plot(epochs, error, color=color, label=f"{label} {name}", **style)
    loss_ax.set_yscale("log")  # losses of different runs often differ by orders of magnitude
    for ax, ylabel in ((loss_ax, "loss (log scale)"), (error_ax, "error (%)")):
        ax.set_xlabel("epoch")
        ax.set_ylabel(ylabel)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    figure.suptitle(title or ", ".join(runs))
    figure.tight_layout()
    path = Path(output)
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=120)
    plt.close(figure)
    return path
