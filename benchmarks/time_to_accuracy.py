"""Wall time for the lecture's network to reach a test accuracy (default 99.0% on MNIST), per recipe and seed.

    python benchmarks/time_to_accuracy.py --manual-dir ../shared/data/mnist --seeds 1,2,3
    python benchmarks/time_to_accuracy.py --recipes slide --recipe "sgd=train.optimizer={name: sgd, momentum: 0.9}"
    python benchmarks/time_to_accuracy.py --recipes cifar10_94,resnet20_fast --target 0.9125 \
        --manual-dir ../shared/data/cifar10 --seeds 1

Recipes change only training settings, never the architecture: `slide` is configs/slide_cnn.yaml
(the slide's Adadelta, lr 1.0, batch 128), `fast` is configs/slide_cnn_fast.yaml, `adam` is the
slide's config with Adam 1e-3 decayed 0.7x per epoch; on CIFAR-10, `cifar10_94` is
configs/experiments/cifar10_94.yaml and `resnet20_fast` configs/experiments/resnet20_fast.yaml
(each at its own number of epochs unless --epochs says otherwise). For each seed the recipes take turns, so a
machine that slows down slows them alike. The test split is evaluated after every epoch (a
measurement: no recipe here selects a model on it); the time reported is the wall time from the
start of `cnnzoo.train` (data, model build, compile included) to the end of the first epoch whose
test accuracy reaches the target, and a recipe stops there unless --full. The summary gives each
recipe's median time, the spread over seeds and the ratio of medians to the first recipe's.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # runnable from a checkout without installing

import keras  # noqa: E402

from cnnzoo import load_config, train  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
RECIPES = {  # name: (config, overrides)
    "slide": ("configs/slide_cnn.yaml", []),
    "fast": ("configs/slide_cnn_fast.yaml", []),
    "adam": ("configs/slide_cnn.yaml",
             ["train.optimizer={name: adam, learning_rate: 0.001}",
              "train.lr_schedule={name: ExponentialDecay, unit: epoch, initial_learning_rate: 0.001, decay_steps: 1, "
              "decay_rate: 0.7}"]),
    "cifar10_94": ("configs/experiments/cifar10_94.yaml", []),
    "resnet20_fast": ("configs/experiments/resnet20_fast.yaml", []),
}


class Clock(keras.callbacks.Callback):
    """Seconds since `start` at the end of each epoch (validation included); stops at the target if asked."""

    def __init__(self, start: float, target: float, stop: bool):
        super().__init__()
        self.start, self.target, self.stop, self.ends = start, target, stop, []

    def on_epoch_end(self, epoch, logs=None):
        self.ends.append(time.perf_counter() - self.start)
        if self.stop and (logs or {}).get("val_accuracy", 0.0) >= self.target:
            self.model.stop_training = True


def time_to(target: float, config_path: str, overrides: list[str], epochs: int | None, manual_dir: str | None,
            stop: bool) -> dict:
    config = load_config(REPO / config_path, [*([f"train.epochs={epochs}"] if epochs else []),
                                              "data.validation_split=test", "train.pictures=false", *overrides])
    start = time.perf_counter()
    clock = Clock(start, target, stop)
    with tempfile.TemporaryDirectory() as runs:
        result = train(config, output_dir=f"{runs}/run", manual_dir=manual_dir, log=lambda _: None,
                       callbacks=[clock])
    accuracies = result.metrics["history"]["val_accuracy"]
    reached = next((i for i, a in enumerate(accuracies) if a >= target), None)
    return {"accuracies": accuracies, "epoch": None if reached is None else reached + 1, "epochs": config.train.epochs,
            "seconds": None if reached is None else clock.ends[reached], "total_seconds": time.perf_counter() - start}


def summary(name: str, runs: list[dict], reference: float | None) -> str:
    times = [r["seconds"] for r in runs if r["seconds"] is not None]
    reached = f"{len(times)}/{len(runs)} seeds reached"
    if not times:
        return f"{name:<8} {reached}"
    median = statistics.median(times)
    # Three decimals: a ratio near a target (e.g. a third) must not be decided by rounding.
    ratio = f"; {median / reference:.3f}x the first recipe's median" if reference else ""
    epochs = ", ".join(str(r["epoch"]) for r in runs)
    return (f"{name:<8} {reached}; median {median:.1f} s (spread {min(times):.1f}-{max(times):.1f} s; "
            f"epochs {epochs}){ratio}")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", default="configs/slide_cnn.yaml", help="the config --recipe overrides apply to")
    parser.add_argument("--target", type=float, default=0.99)
    parser.add_argument("--epochs", type=int, help="at most this many epochs per recipe (default: each recipe's own)")
    parser.add_argument("--recipes", default="slide,fast", help="comma-separated names of built-in recipes")
    parser.add_argument("--recipe", action="append", default=[], metavar="NAME=OVERRIDE[;OVERRIDE]",
                        help="an extra recipe as overrides of --config separated by ';'")
    parser.add_argument("--seeds", default="1", help="comma-separated runtime.seed values; each recipe runs each")
    parser.add_argument("--full", action="store_true", help="train every epoch, not only until the target")
    parser.add_argument("--manual-dir")
    parser.add_argument("overrides", nargs="*", help="key=value overrides for every recipe")
    args = parser.parse_args(argv)
    recipes = {name: RECIPES[name] for name in args.recipes.split(",") if name}
    for text in args.recipe:
        name, _, rest = text.partition("=")
        recipes[name] = (args.config, [o for o in rest.split(";") if o])
    seeds = [int(s) for s in args.seeds.split(",")]
    most = f"at most {args.epochs} epochs" if args.epochs else "each recipe's epochs"
    print(f"time to {args.target:.2%} test accuracy ({most}), seeds {seeds}")
    results: dict[str, list[dict]] = {name: [] for name in recipes}
    for seed in seeds:
        for name, (config, overrides) in recipes.items():
            r = time_to(args.target, config, [*args.overrides, *overrides, f"runtime.seed={seed}"], args.epochs,
                        args.manual_dir, stop=not args.full)
            results[name].append(r)
            curve = " ".join(f"{a:.4f}" for a in r["accuracies"])
            reached = (f"reached at epoch {r['epoch']} after {r['seconds']:.0f} s" if r["epoch"]
                       else f"not reached in {r['epochs']} epochs")
            print(f"seed {seed} {name:<8} {reached}; {r['total_seconds']:.0f} s in all; per epoch: {curve}",
                  flush=True)
    first = results[next(iter(results))]
    times = [r["seconds"] for r in first if r["seconds"] is not None]
    reference = statistics.median(times) if times else None
    print("\n".join(summary(name, runs, reference) for name, runs in results.items()))


if __name__ == "__main__":
    main()
