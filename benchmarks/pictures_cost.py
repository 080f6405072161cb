"""What the learner pictures cost: the same config trained with `train.pictures` off and on,
alternating in one process, so both sides share the machine's state of the moment.

    python benchmarks/pictures_cost.py --manual-dir ../shared/data/mnist            # slide_cnn, 3 epochs, 2 rounds
    python benchmarks/pictures_cost.py configs/lenet5.yaml --epochs 12 --rounds 1

Each run's wall time is that of `cnnzoo.train` (data, build, fit with validation, test, save);
the ratio compares each round's pair, then their median.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # runnable from a checkout without installing

from cnnzoo import load_config, train  # noqa: E402


def timed_run(config_path: str, pictures: bool, epochs: int, manual_dir: str | None, extra: list[str]) -> float:
    config = load_config(config_path, [f"train.epochs={epochs}", f"train.pictures={str(pictures).lower()}",
                                       "runtime.seed=1", *extra])
    with tempfile.TemporaryDirectory() as folder:
        start = time.perf_counter()
        train(config, output_dir=f"{folder}/run", manual_dir=manual_dir, log=lambda message: None)
        return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("config", nargs="?", default="configs/slide_cnn.yaml")
    parser.add_argument("overrides", nargs="*", help="key=value for both sides")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--manual-dir")
    args = parser.parse_intermixed_args()
    ratios = []
    print(f"{args.config}, {args.epochs} epochs a run; wall time of cnnzoo.train")
    for round_ in range(1, args.rounds + 1):
        off = timed_run(args.config, False, args.epochs, args.manual_dir, args.overrides)
        on = timed_run(args.config, True, args.epochs, args.manual_dir, args.overrides)
        ratios.append(on / off)
        print(f"round {round_}: pictures off {off:7.1f} s, on {on:7.1f} s, on/off {on / off:.3f}", flush=True)
    print(f"median on/off {statistics.median(ratios):.3f} ({(statistics.median(ratios) - 1):+.1%} wall time)")


if __name__ == "__main__":
    main()
