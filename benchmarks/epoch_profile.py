"""Where a training step's time goes: the input pipeline alone, the step alone, and both, for one config.

    python benchmarks/epoch_profile.py configs/experiments/cifar10_94.yaml --manual-dir ../shared/data/cifar10
    python benchmarks/epoch_profile.py configs/experiments/cifar10_94.yaml --variant runtime.precision=float32

Measured in one process, in turn (--rounds), each after a warm-up step: (1) `--steps` batches drawn
from the training pipeline (decoding, augmentation, batching) with no model; (2) `--steps` training
steps on one batch held in memory (the forward and backward pass and the optimizer's update, with
the config's model, precision and optimizer: its moving average included); (3) `--steps` steps of
`fit` on the pipeline, which is what an epoch is made of. Prints seconds per step, images/s, and the
share of (3) that (1) and (2) account for. The run's one-off costs (the data-dependent initializer,
validation, checkpoints, the test) are not in these figures. Each --variant (overrides separated by
';') is measured the same way in the same rounds, in turn with the config as written, and compared
with it as a ratio of fit's seconds per step.
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
    parser.add_argument("--variant", action="append", default=[], help="overrides separated by ';'")
    parser.add_argument("overrides", nargs="*")
    args = parser.parse_intermixed_args(argv)
    variants = {"as written": [], **{v: [o for o in v.split(";") if o] for v in args.variant}}
    measured = {}
    for round_ in range(args.rounds):  # the variants take turns, so a machine that slows down slows them alike
        for name, overrides in variants.items():
            if round_ == 0:
                measured[name] = setup(args.config, [*args.overrides, *overrides], args.manual_dir)
            profile(measured[name], args.steps)
    fit = {name: statistics.median(m["times"]["fit"]) for name, m in measured.items()}
    for name, m in measured.items():
        report(name, m, args.steps, args.rounds, fit["as written"])


def setup(config_path: str, overrides: list[str], manual_dir: str | None) -> dict:
    """The planned model and its endless training stream, and room for the times."""
    from cnnzoo.data.tfds_input import load_datasets
    from cnnzoo.models.compile import uses_one_hot_labels
    from cnnzoo.plan import plan

    config = load_config(config_path, overrides)
    planned = plan(config, manual_dir)
    data = load_datasets(planned.config, one_hot=uses_one_hot_labels(planned.config.train.loss.name),
                         manual_dir=manual_dir)
    for _ in data.train:  # one whole pass fills the in-memory cache, as a run's first epoch does
        pass
    stream = data.stream.starting_at(0)  # the training batches, endless
    return {"planned": planned, "stream": stream, "batch": next(iter(stream)),
            "times": {"pipeline": [], "step": [], "fit": []}}


def profile(m: dict, steps: int) -> None:
    m["times"]["pipeline"].append(pipeline_seconds(m["stream"], steps))
    m["times"]["step"].append(step_seconds(m["planned"].model, m["batch"], steps))
    m["times"]["fit"].append(fit_seconds(m["planned"].model, m["stream"], steps))


def report(name: str, m: dict, steps: int, rounds: int, reference: float) -> None:
    median = {part: statistics.median(values) for part, values in m["times"].items()}
    size = int(m["batch"][0].shape[0])
    print(f"{m['planned'].config.model.name} {name}: batch {size}, {m['planned'].precision.policy}, {steps} steps x "
          f"{rounds} rounds (medians); fit {median['fit'] / reference:.2f}x the config as written")
    for part, what in (("pipeline", "input pipeline alone"), ("step", "training step alone"),
                       ("fit", "fit on the pipeline")):
        print(f"  {what:<22} {median[part]:7.3f} s/step  {size / median[part]:8,.0f} img/s  "
              f"{median[part] / median['fit']:6.1%} of fit's")


if __name__ == "__main__":
    main()
