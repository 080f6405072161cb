"""TPE with pruning against the full grid and against random search, over one space, for several seeds.

The space is a grid of choices (learning rate x batch size by default), so all three search the same
points: `grid` trains every one, `tpe` (Hyperband pruning) and `random` (no pruning) the same number of
trials, by default half the grid. For each seed (which seeds the samplers and every trial's training)
it prints each method's best validation accuracy and the epochs it trained, then per method the mean,
how often it came within --within points of the grid's best, and its epochs as a share of the grid's.
With --continuous, tpe and random search the learning rate's whole range (log scale) instead.

    python benchmarks/search.py --seeds 1,2,3                      # the quick start's net on mnist_sample
    python benchmarks/search.py --seeds 1 --epochs 2 --steps 5 --learning-rates 0.1,1.0 --batch-sizes 64
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import statistics
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")  # as the command line: TensorFlow's start-up lines hide the table

METHODS = {"grid": "sampler: grid\n  pruner: none", "tpe": "sampler: tpe\n  pruner: hyperband",
           "random": "sampler: random\n  pruner: none"}


def search_config(folder: Path, base: str, args, seed: int, method: str, trials: int) -> Path:
    values = [float(v) for v in args.learning_rates.split(",")]
    rates = f"{{float: [{min(values)}, {max(values)}], log: true}}" if args.continuous and method != "grid" else \
        f"{{choice: {json.dumps(values)}}}"
    sizes = json.dumps([int(v) for v in args.batch_sizes.split(",")])
    path = folder / f"{method}{'-range' if args.continuous and method != 'grid' else ''}-{seed}.yaml"
    path.write_text(f"""extends: {base}
train: {{epochs: {args.epochs}, steps_per_epoch: {args.steps}, pictures: false}}
runtime: {{seed: {seed}}}
search:
  metric: val_accuracy
  trials: {trials}
  {METHODS[method]}
  parameters:
    train.optimizer.learning_rate: {rates}
    data.batch_size: {{choice: {sizes}}}
""")
    return path


def measure(config: Path, out: Path, overrides: list[str]) -> tuple[float, int, int]:
    """(best validation accuracy, epochs trained, trials) of one search."""
    from cnnzoo.training.search import search

    search(str(config), overrides, output_dir=str(out), log=lambda message: None)
    with (out / "trials.csv").open() as f:
        rows = list(csv.DictReader(f))
    scores = [float(r["val_accuracy"]) for r in rows if r["state"] in ("completed", "pruned") and r["val_accuracy"]]
    completed = [float(r["val_accuracy"]) for r in rows if r["state"] == "completed" and r["val_accuracy"]]
    return max(completed or scores or [0.0]), sum(int(r["epochs"] or 0) for r in rows), len(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default=str(REPO / "configs" / "quickstart.yaml"))
    parser.add_argument("--seeds", default="1,2,3")
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--steps", type=int, default=20, help="training steps per epoch")
    parser.add_argument("--learning-rates", default="0.01,0.03,0.1,0.3,1.0,3.0")
    parser.add_argument("--batch-sizes", default="32,64,128")
    parser.add_argument("--trials", type=int, help="trials of tpe and random (default: half the grid)")
    parser.add_argument("--continuous", action="store_true", help="tpe and random search the learning rate's whole "
                        "range (log scale) instead of the grid's values")
    parser.add_argument("--within", type=float, default=0.1, help="points of accuracy that count as reaching the grid's best")
    parser.add_argument("--output-dir", help="keep the searches here (default: a temporary folder)")
    parser.add_argument("overrides", nargs="*", help="overrides for every trial, e.g. data.name=mnist")
    args = parser.parse_args()
    grid_size = len(args.learning_rates.split(",")) * len(args.batch_sizes.split(","))
    trials = args.trials or max(1, grid_size // 2)
    folder = Path(args.output_dir or tempfile.mkdtemp(prefix="cnnzoo-search-bench-"))
    folder.mkdir(parents=True, exist_ok=True)
    print(f"space: {grid_size} points; grid {grid_size} trials, tpe and random {trials} each; {args.epochs} epochs "
          f"of {args.steps} steps per trial; searches in {folder}")
    results = {method: [] for method in METHODS}
    for seed in [int(s) for s in args.seeds.split(",")]:
        for method in METHODS:
            count = grid_size if method == "grid" else trials
            config = search_config(folder, args.config, args, seed, method, count)
            best, epochs, ran = measure(config, folder / config.stem, args.overrides)
            results[method].append((best, epochs))
            print(f"seed {seed} {method:<7} best val_accuracy {100 * best:6.2f}%  epochs {epochs:4d}  trials {ran}",
                  flush=True)
    grid_best = [best for best, _ in results["grid"]]
    grid_epochs = [epochs for _, epochs in results["grid"]]
    for method, rows in results.items():
        reached = sum(100 * (g - best) <= args.within for (best, _), g in zip(rows, grid_best))
        share = statistics.mean(epochs / g for (_, epochs), g in zip(rows, grid_epochs))
        print(f"{method:<7} mean best {100 * statistics.mean(b for b, _ in rows):6.2f}%  within {args.within} point "
              f"of the grid's best: {reached}/{len(rows)} seeds  epochs {share:.0%} of the grid's")


if __name__ == "__main__":
    main()
