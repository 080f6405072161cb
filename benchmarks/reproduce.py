"""The reproduction table: our test error next to the published one, for the shipped configs.

    python benchmarks/reproduce.py --manual-dir ../shared/data --budget 0.0125
    python benchmarks/reproduce.py --only lenet5,resnet20 --budget 1      # the full recipes

MNIST rows train their full recipe (minutes on a CPU). The CIFAR-10 ResNets train
`budget` x the paper's 164 epochs (at least 1), with the learning-rate drops scaled to the
same fractions of training; `--budget 1` is the paper's schedule. Every run keeps its
directory (TensorBoard logs included) under --output-dir, which also gets results.md.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # runnable from a checkout without installing

from cnnzoo import load_config, train  # noqa: E402

REPO = Path(__file__).resolve().parents[1]


@dataclass(frozen=True)
class Row:
    name: str
    config: str
    paper_error: float  # percent
    source: str
    budgeted: bool  # CIFAR rows follow --budget; MNIST rows train their full recipe


ROWS = [
    Row("slide_cnn", "configs/slide_cnn.yaml", 0.75, "Keras mnist_cnn example (99.25%, 12 epochs)", False),
    Row("lenet5", "configs/lenet5.yaml", 0.95, "LeCun et al. 1998", False),
    Row("resnet20", "configs/resnet/resnet20.yaml", 8.75, "He et al. 2016, Table 6", True),
    Row("resnet32", "configs/resnet/resnet32.yaml", 7.51, "He et al. 2016, Table 6", True),
    Row("resnet56", "configs/resnet/resnet56.yaml", 6.97, "He et al. 2016, Table 6", True),
]


def budget_overrides(config_path: Path, budget: float) -> tuple[list[str], int, int]:
    """Overrides that shrink a recipe to `budget` of its epochs, schedule included: (overrides, epochs, of)."""
    config = load_config(config_path)
    full = config.train.epochs
    epochs = max(1, round(full * budget))
    overrides = [f"train.epochs={epochs}"]
    schedule = config.train.lr_schedule
    if schedule is not None and "boundaries" in schedule.kwargs and epochs != full:
        # In epochs the drops may fall mid-epoch; in steps they must be whole
        exact = schedule.unit == "epoch"
        scaled = [round(b * epochs / full, 3) if exact else max(1, round(b * epochs / full))
                  for b in schedule.kwargs["boundaries"]]
        overrides.append(f"train.lr_schedule.boundaries={scaled}")
    return overrides, epochs, full


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


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--budget", type=float, default=1.0, help="fraction of the paper's epochs for CIFAR rows")
    parser.add_argument("--only", help="comma-separated row names (default: all)")
    parser.add_argument("--manual-dir", help="folder holding mnist/ and cifar10/ to prepare the datasets offline")
    parser.add_argument("--output-dir", default=f"runs/reproduce-{time.strftime('%Y%m%d-%H%M%S')}")
    parser.add_argument("overrides", nargs="*", help="key=value overrides for every run (e.g. runtime.seed=1)")
    args = parser.parse_args(argv)
    rows = [r for r in ROWS if not args.only or r.name in args.only.split(",")]
    out = Path(args.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    lines = [f"Measured on {hardware()}; CIFAR budget {args.budget:g} of the paper's epochs.", "",
             "| model | dataset | our test error | published | epochs run | wall time |",
             "| --- | --- | --- | --- | --- | --- |"]
    for row in rows:
        path = REPO / row.config
        overrides, epochs, full = budget_overrides(path, args.budget) if row.budgeted else ([], None, None)
        config = load_config(path, [*overrides, *args.overrides])
        epochs, full = config.train.epochs, full or config.train.epochs
        manual = str(Path(args.manual_dir) / config.data.name) if args.manual_dir else None
        start = time.perf_counter()
        result = train(config, output_dir=str(out / row.name), manual_dir=manual, log=print)
        seconds = time.perf_counter() - start
        error = 100 * (1 - result.metrics["test"]["accuracy"])
        lines.append(f"| {row.name} | {config.data.name} | {error:.2f}% | {row.paper_error:.2f}% ({row.source}) "
                     f"| {epochs} of {full} | {seconds / 60:.1f} min |")
        (out / "results.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
