"""The reproduction table: our test error next to the published one, for the shipped configs.

    python benchmarks/reproduce.py --budget laptop --manual-dir ../shared/data runtime.seed=1
    python benchmarks/reproduce.py --budget paper --manual-dir ../shared/data        # a GPU machine
    python benchmarks/reproduce.py --budget laptop --only lenet5                     # one row

`--budget laptop` trains the rows a 2-core machine finishes in about an hour each: the slide's
net and LeNet-5 at their recipes, ResNet-20 with the 40-epoch recipe
(configs/experiments/resnet20_fast.yaml) and airbench94's network and recipe
(configs/experiments/cifar10_94.yaml: its test error is with test-time augmentation, as
airbench's). For the other rows (ResNet-32/56/110 and the plain
twins, at the paper's 164-epoch recipe) it times a few training steps of each and prints the
estimated time and the exact command, marked "not run here". `--budget paper` trains every row
with the paper's recipe (ResNet-20 included).

Every run keeps its directory (TensorBoard logs included) under --output-dir, which also gets
results.md. A row whose directory already holds a completed run is read back, not trained
again, so a table can be finished over several sittings (or a long row run on its own with
`cnnzoo train ... --output-dir OUTPUT_DIR/ROW`). Wall time is the sum of the run's epoch times
(training and validation; the one-off data preparation and model build are not included).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # runnable from a checkout without installing

from cnnzoo import load_config, train  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
HE = "He et al. 2016, Table 6"


@dataclass(frozen=True)
class Row:
    name: str
    config: str  # the published recipe
    paper_error: Optional[float]  # percent; None where the paper shows only curves
    source: str
    laptop: Optional[str] = None  # the config `--budget laptop` trains; None: estimated, not run

    def config_for(self, budget: str) -> Optional[str]:
        return self.config if budget == "paper" else self.laptop


ROWS = [
    Row("slide_cnn", "configs/slide_cnn.yaml", 0.75, "Keras mnist_cnn example, 12 epochs", "configs/slide_cnn.yaml"),
    Row("lenet5", "configs/lenet5.yaml", 0.95, "LeCun et al. 1998", "configs/lenet5.yaml"),
    Row("resnet20", "configs/resnet/resnet20.yaml", 8.75, HE, "configs/experiments/resnet20_fast.yaml"),
    Row("resnet32", "configs/resnet/resnet32.yaml", 7.51, HE),
    Row("resnet56", "configs/resnet/resnet56.yaml", 6.97, HE),
    Row("resnet110", "configs/resnet/resnet110.yaml", 6.43, HE),
    *(Row(f"plain{n}", f"configs/resnet/plain{n}.yaml", None, "He et al. 2016, Fig. 6: curves only")
      for n in (20, 32, 56, 110)),
    Row("cifar10_94", "configs/experiments/cifar10_94.yaml", 5.99,
        "airbench94, Jordan 2024: 3.1-3.8 s on one A100", "configs/experiments/cifar10_94.yaml"),
]


def hardware() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{cpu}, {os.cpu_count()} cores, no GPU" if not _gpus() else f"{cpu}, {_gpus()} GPU(s)"


def _gpus() -> int:
    import tensorflow as tf

    return len(tf.config.list_physical_devices("GPU"))


def completed(run_dir: Path) -> Optional[dict]:
    """The metrics of a completed run in `run_dir`, else None."""
    try:
        if json.loads((run_dir / "run.json").read_text()).get("status") == "completed":
            return json.loads((run_dir / "metrics.json").read_text())
    except (OSError, ValueError):
        pass
    return None


def command(config: str, run_dir: Path, manual: Optional[str], overrides: list[str]) -> str:
    return " ".join(["python train.py --config", config, *(["--manual-dir", manual] if manual else []),
                     "--output-dir", str(run_dir), *overrides])


def run_row(row: Row, config_path: str, out: Path, manual_dir: Optional[str], overrides: list[str]) -> str:
    """Train the row (or read its completed run back) and return its table line."""
    run_dir = out / row.name
    config = load_config(REPO / config_path, overrides)
    metrics = completed(run_dir)
    if metrics is None:
        manual = str(Path(manual_dir) / config.data.name) if manual_dir else None
        metrics = train(config, output_dir=str(run_dir), manual_dir=manual, log=print).metrics
    elif metrics["model"] != config.model.name:
        sys.exit(f"reproduce.py: {run_dir} holds a run of `{metrics['model']}`, not of `{config.model.name}` "
                 f"({config_path}); move it away or pick another --output-dir.")
    else:
        print(f"{row.name}: read back the completed run in {run_dir}")
    tta = metrics["test"].get("accuracy_tta")  # with test-time augmentation, as airbench reports it
    error = 100 * (1 - (metrics["test"]["accuracy"] if tta is None else tta))
    minutes = sum(metrics["epoch_seconds"]) / 60
    return (f"| {row.name} | {metrics['dataset']} | `{config_path}` | {metrics['params']:,} | {error:.2f}%{' (TTA)' if tta is not None else ''} "
            f"| {published(row)} | {metrics['epochs_completed']} | {minutes:.1f} min |")


def estimate_row(row: Row, out: Path, manual_dir: Optional[str], overrides: list[str], steps: int) -> tuple[str, str]:
    """Time `steps` training steps of the paper's recipe; (table line, command to run it)."""
    from pipeline import step_rate

    from cnnzoo.plan import plan
    from cnnzoo.training.trainer import prepared

    config = load_config(REPO / row.config, [*overrides, "train.pictures=false"])
    manual = str(Path(manual_dir) / config.data.name) if manual_dir else None
    planned, data = prepared(plan(config, manual), manual)
    rate = step_rate(planned.model, data.train.repeat(), steps, config.data.batch_size)
    hours = config.train.epochs * data.train_examples / rate / 3600
    line = (f"| {row.name} | {config.data.name} | `{row.config}` | {planned.model.count_params():,} | not run here "
            f"| {published(row)} | {config.train.epochs} | about {hours:.1f} h ({rate:,.0f} img/s measured) |")
    return line, command(row.config, out / row.name, manual, overrides)


def published(row: Row) -> str:
    return f"{row.paper_error:.2f}% ({row.source})" if row.paper_error is not None else f"— ({row.source})"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--budget", choices=("laptop", "paper"), default="laptop",
                        help="laptop: the rows a 2-core CPU trains in about an hour each, estimates for the rest; "
                        "paper: every row at the paper's recipe")
    parser.add_argument("--only", help="comma-separated row names (default: all)")
    parser.add_argument("--manual-dir", help="folder holding mnist/ and cifar10/ to prepare the datasets offline")
    parser.add_argument("--output-dir", default=f"runs/reproduce-{time.strftime('%Y%m%d-%H%M%S')}")
    parser.add_argument("--estimate-steps", type=int, default=30, help="training steps timed per estimated row")
    parser.add_argument("overrides", nargs="*", help="key=value overrides for every run (e.g. runtime.seed=1)")
    args = parser.parse_args(argv)
    rows = [r for r in ROWS if not args.only or r.name in args.only.split(",")]
    out = Path(args.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    lines = [f"Measured on {hardware()}; budget `{args.budget}`.", "",
             "| model | dataset | config | parameters | our test error | published | epochs | wall time |",
             "| --- | --- | --- | --- | --- | --- | --- | --- |"]
    commands = []
    for row in rows:
        config_path = row.config_for(args.budget)
        if config_path is not None:
            lines.append(run_row(row, config_path, out, args.manual_dir, args.overrides))
        else:
            line, text = estimate_row(row, out, args.manual_dir, args.overrides, args.estimate_steps)
            lines.append(line)
            commands.append(text)
        (out / "results.md").write_text("\n".join(lines) + "\n")
    if commands:
        lines += ["", "Not run here; to run them (the estimates count training steps at the measured rate):", "",
                  *(f"    {c}" for c in commands)]
        (out / "results.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
