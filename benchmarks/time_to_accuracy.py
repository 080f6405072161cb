"""Wall time for the lecture's network to reach a test accuracy (default 99.0% on MNIST), per recipe.

    python benchmarks/time_to_accuracy.py --manual-dir ../shared/data/mnist
    python benchmarks/time_to_accuracy.py --recipe "sgd=train.optimizer={name: sgd, learning_rate: 0.05, momentum: 0.9}"

Recipes change only training settings, never the architecture. `slide` is the slide's
(Adadelta, lr 1.0, batch 128); `adam` is the best found here (Adam 1e-3, decayed 0.7x per
epoch). The test split is evaluated after every epoch; the time reported is the wall time
from the start of `cnnzoo.train` (data, model build, compile included) to the end of the
first epoch whose test accuracy reaches the target.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # runnable from a checkout without installing

import keras  # noqa: E402

from cnnzoo import load_config, train  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
RECIPES = {
    "slide": [],
    "adam": ["train.optimizer={name: adam, learning_rate: 0.001}",
             "train.lr_schedule={name: ExponentialDecay, unit: epoch, initial_learning_rate: 0.001, decay_steps: 1, "
             "decay_rate: 0.7}"],
}


class WallClock(keras.callbacks.Callback):
    """Seconds since `start` at the end of each epoch (validation included)."""

    def __init__(self, start: float):
        super().__init__()
        self.start, self.ends = start, []

    def on_epoch_end(self, epoch, logs=None):
        self.ends.append(time.perf_counter() - self.start)


def time_to(target: float, overrides: list[str], config_path: str, epochs: int, manual_dir: str | None) -> dict:
    # The test split is measured after every epoch (the measurement, not model selection: no recipe here
    # monitors it), so time to accuracy means the same for every recipe.
    config = load_config(REPO / config_path, [f"train.epochs={epochs}", "data.validation_split=test", *overrides])
    start = time.perf_counter()
    clock = WallClock(start)
    with tempfile.TemporaryDirectory() as runs:
        result = train(config, output_dir=f"{runs}/run", manual_dir=manual_dir, log=lambda _: None,
                       callbacks=[clock])
    accuracies = result.metrics["history"]["val_accuracy"]
    reached = next((i for i, a in enumerate(accuracies) if a >= target), None)
    return {"accuracies": accuracies, "epoch": None if reached is None else reached + 1,
            "seconds": None if reached is None else clock.ends[reached], "total_seconds": time.perf_counter() - start,
            "final": result.metrics["test"]["accuracy"]}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", default="configs/slide_cnn.yaml")
    parser.add_argument("--target", type=float, default=0.99)
    parser.add_argument("--epochs", type=int, default=12, help="at most this many epochs per recipe")
    parser.add_argument("--recipes", default="slide,adam", help="comma-separated names of built-in recipes")
    parser.add_argument("--recipe", action="append", default=[], metavar="NAME=OVERRIDE[;OVERRIDE]",
                        help="an extra recipe as overrides separated by ';'")
    parser.add_argument("--manual-dir")
    parser.add_argument("overrides", nargs="*", help="key=value overrides for every recipe (e.g. runtime.seed=1)")
    args = parser.parse_args(argv)
    recipes = {name: RECIPES[name] for name in args.recipes.split(",") if name}
    for text in args.recipe:
        name, _, rest = text.partition("=")
        recipes[name] = [o for o in rest.split(";") if o]
    print(f"{args.config}: time to {args.target:.1%} test accuracy (at most {args.epochs} epochs)")
    for name, overrides in recipes.items():
        r = time_to(args.target, [*args.overrides, *overrides], args.config, args.epochs, args.manual_dir)
        curve = " ".join(f"{a:.4f}" for a in r["accuracies"])
        reached = (f"reached at epoch {r['epoch']} after {r['seconds']:.0f} s" if r["epoch"]
                   else f"not reached in {args.epochs} epochs")
        print(f"{name:<8} {reached}; final {r['final']:.2%}; {r['total_seconds']:.0f} s in all; per epoch: {curve}",
              flush=True)


if __name__ == "__main__":
    main()
