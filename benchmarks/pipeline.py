"""Does the input pipeline keep up? The `tf.data` training pipeline alone (decode, cache,
shuffle, augment, batch) against the training step fed by it, images per second, side by side
in one run on this machine.

    python benchmarks/pipeline.py --manual-dir-mnist ../shared/data/mnist --manual-dir-cifar10 ../shared/data/cifar10

The pipeline is timed after one pass has filled its cache (as in every epoch after the first);
the step after one warm-up call (tracing). Both at the configs' batch sizes and float32.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # runnable from a checkout without installing

from cnnzoo import load_config  # noqa: E402
from cnnzoo.plan import plan  # noqa: E402
from cnnzoo.training.trainer import prepared  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
CASES = {"slide": ("configs/slide_cnn.yaml", "mnist"), "resnet20": ("configs/resnet/resnet20.yaml", "cifar10")}


def rates(config_path: str, manual_dir: str | None, steps: int, extra: list[str]) -> tuple[float, float, int]:
    """(pipeline images/s, training-step images/s, batch size)."""
    config = load_config(REPO / config_path, ["runtime.seed=1", "train.pictures=false", *extra])
    planned, data = prepared(plan(config, manual_dir), manual_dir)
    batch = config.data.batch_size
    train = data.train.repeat()
    batches = iter(train)
    for _ in range(planned.steps_per_epoch or steps):  # one pass: the cache is filled
        next(batches)
    start = time.perf_counter()
    for _ in range(steps):
        next(batches)
    pipeline = steps * batch / (time.perf_counter() - start)
    return pipeline, step_rate(planned.model, train, steps, batch), batch


def step_rate(model, train, steps: int, batch: int) -> float:
    """Images per second of `model.fit` over `steps` batches of `train` (a repeated dataset), after tracing."""
    # shuffle=False: the pipeline shuffles (Keras would ignore True on a Dataset, with a warning).
    model.fit(train, epochs=1, steps_per_epoch=5, verbose=0, shuffle=False)  # traces the step
    start = time.perf_counter()
    model.fit(train, epochs=1, steps_per_epoch=steps, verbose=0, shuffle=False)
    return steps * batch / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", default="slide,resnet20")
    parser.add_argument("--steps", type=int, default=100, help="batches timed on each side")
    parser.add_argument("--manual-dir-mnist")
    parser.add_argument("--manual-dir-cifar10")
    parser.add_argument("overrides", nargs="*", help="key=value for every config")
    args = parser.parse_intermixed_args()
    print(f"{'model':<10} {'pipeline img/s':>15} {'step img/s':>11} {'pipeline/step':>14}")
    for name in args.models.split(","):
        config_path, dataset = CASES[name]
        manual = getattr(args, f"manual_dir_{dataset}")
        pipeline, step, batch = rates(config_path, manual, args.steps, args.overrides)
        print(f"{name:<10} {pipeline:15,.0f} {step:11,.0f} {pipeline / step:13.1f}x", flush=True)


if __name__ == "__main__":
    main()
