"""What the learner pictures cost: the same config trained with `train.pictures` off, on without
Grad-CAM and on with it, alternating in one process, so all sides share the machine's state of the moment.

    python benchmarks/pictures_cost.py --manual-dir ../shared/data/mnist            # slide_cnn, 3 epochs, 2 rounds
    python benchmarks/pictures_cost.py configs/lenet5.yaml --epochs 12 --rounds 1

Each run's wall time is that of `cnnzoo.train` (data, build, fit with validation, test, save);
the ratios compare each round's runs, then their medians.
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


SIDES = {"off": ["train.pictures.enabled=false"],
         "on": ["train.pictures.enabled=true", "train.pictures.grad_cam=false"],
         "grad_cam": ["train.pictures.enabled=true", "train.pictures.grad_cam=true"]}


def timed_run(config_path: str, side: str, epochs: int, manual_dir: str | None, extra: list[str]) -> float:
    config = load_config(config_path, [f"train.epochs={epochs}", *SIDES[side], "runtime.seed=1", *extra])
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
    ratios: dict[str, list[float]] = {"on": [], "grad_cam": [], "grad_cam_vs_on": []}
    print(f"{args.config}, {args.epochs} epochs a run; wall time of cnnzoo.train")
    for round_ in range(1, args.rounds + 1):
        seconds = {side: timed_run(args.config, side, args.epochs, args.manual_dir, args.overrides) for side in SIDES}
        ratios["on"].append(seconds["on"] / seconds["off"])
        ratios["grad_cam"].append(seconds["grad_cam"] / seconds["off"])
        ratios["grad_cam_vs_on"].append(seconds["grad_cam"] / seconds["on"])
        print(f"round {round_}: pictures off {seconds['off']:7.1f} s, on {seconds['on']:7.1f} s, on with Grad-CAM "
              f"{seconds['grad_cam']:7.1f} s; on/off {ratios['on'][-1]:.3f}, with Grad-CAM/off "
              f"{ratios['grad_cam'][-1]:.3f}", flush=True)
    for key, what in (("on", "on/off"), ("grad_cam", "with Grad-CAM/off"), ("grad_cam_vs_on", "with Grad-CAM/on")):
        median = statistics.median(ratios[key])
        print(f"median {what} {median:.3f} ({median - 1:+.1%} wall time)")

if __name__ == "__main__":
    main()
