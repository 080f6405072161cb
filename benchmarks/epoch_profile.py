"""Where a training step's time goes: the input pipeline alone, the step alone, and both, for one config.

    python benchmarks/epoch_profile.py configs/experiments/cifar10_94.yaml --manual-dir ../shared/data/cifar10
    python benchmarks/epoch_profile.py configs/experiments/cifar10_94.yaml runtime.precision=float32

Measured in one process, in turn (--rounds), each after a warm-up step: (1) `--steps` batches drawn
from the training pipeline (decoding, augmentation, batching) with no model; (2) `--steps` training
steps on one batch held in memory (the forward and backward pass and the optimizer's update, with
the config's model, precision and optimizer: its moving average included); (3) `--steps` steps of
`fit` on the pipeline, which is what an epoch is made of. Prints seconds per step, images/s, and the
share of (3) that (1) and (2) account for. The run's one-off costs (the data-dependent initializer,
validation, checkpoints, the test) are not in these figures.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # runnable from a checkout without installing

from cnnzoo import load_config  # noqa: E402


def pipeline_seconds(stream, steps: int) -> float:
    batches = iter(stream)
    next(batches)
    start = time.perf_counter()
    for _ in range(steps):
        next(batches)
    return (time.perf_counter() - start) / steps


def step_seconds(model, batch, steps: int) -> float:
    model.train_on_batch(*batch)
    start = time.perf_counter()
    for _ in range(steps):
        model.train_on_batch(*batch)
    return (time.perf_counter() - start) / steps


def fit_seconds(model, stream, steps: int) -> float:
    model.fit(stream, steps_per_epoch=1, epochs=1, verbose=0)
    start = time.perf_counter()
    model.fit(stream, steps_per_epoch=steps, epochs=1, verbose=0)
    return (time.perf_counter() - start) / steps


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("config")
    parser.add_argument("--manual-dir")
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("overrides", nargs="*")
    args = parser.parse_intermixed_args(argv)

    from cnnzoo.data.tfds_input import load_datasets
    from cnnzoo.models.compile import uses_one_hot_labels
    from cnnzoo.plan import plan

    config = load_config(args.config, args.overrides)
    planned = plan(config, args.manual_dir)
    data = load_datasets(planned.config, one_hot=uses_one_hot_labels(planned.config.train.loss.name),
                         manual_dir=args.manual_dir)
    stream = data.stream.starting_at(0)  # the training batches, endless
    batch = next(iter(stream))
    size = int(batch[0].shape[0])
    times: dict[str, list[float]] = {"pipeline": [], "step": [], "fit": []}
    for _ in range(args.rounds):
        times["pipeline"].append(pipeline_seconds(stream, args.steps))
        times["step"].append(step_seconds(planned.model, batch, args.steps))
        times["fit"].append(fit_seconds(planned.model, stream, args.steps))
    median = {name: statistics.median(values) for name, values in times.items()}
    print(f"{config.model.name}: batch {size}, {planned.precision.policy}, {args.steps} steps x {args.rounds} rounds "
          f"(medians)")
    for name, what in (("pipeline", "input pipeline alone"), ("step", "training step alone"),
                       ("fit", "fit on the pipeline")):
        print(f"  {what:<22} {median[name]:7.3f} s/step  {size / median[name]:8,.0f} img/s  "
              f"{median[name] / median['fit']:6.1%} of fit's")


if __name__ == "__main__":
    main()
