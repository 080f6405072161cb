"""The data's first pass in a run: TFDS decoding every record, against the decoded split kept on disk.

    python benchmarks/first_pass.py --manual-dir-mnist ../shared/data/mnist --manual-dir-cifar10 ../shared/data/cifar10

For each dataset, three ways take turns for --rounds rounds: `tfds` reads and preprocesses one
example at a time (the pipeline of a split that is not kept), `decode+keep` is a first run (the
kept file is deleted first), `kept` is every later run. Each time is the wall time of building
the pipelines and passing once over the training and test splits (what a run pays before its
epochs go at full speed), with the in-memory cache of a real run. Medians and their ratios to `tfds`.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # runnable from a checkout without installing

from cnnzoo import load_config  # noqa: E402
from cnnzoo.data import decoded, tfds_input  # noqa: E402
from cnnzoo.data.catalog import dataset_signature  # noqa: E402
from cnnzoo.data.prepare import locate, manual_dir_of  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
CASES = {"mnist": "configs/slide_cnn.yaml", "cifar10": "configs/resnet/resnet20.yaml"}
WAYS = ("tfds", "decode+keep", "kept")


def first_pass(config_path: str, manual_dir: str | None, way: str, extra: list[str]) -> float:
    config = load_config(REPO / config_path, ["data.validation_split=test", *extra])
    if way == "decode+keep":  # a first run: no kept files
        builder = locate(dataset_signature(config).builder, config, manual_dir_of(config, manual_dir)).reader
        shutil.rmtree(decoded.path_of(builder, "train").parent, ignore_errors=True)
    start = time.perf_counter()
    keep = decoded.decodable
    if way == "tfds":  # the pipeline of a split that is not kept: TFDS decodes, one example at a time
        decoded.decodable = lambda builder, spec: False
    try:
        data = tfds_input.load_datasets(config, one_hot=True, manual_dir=manual_dir)
    finally:
        decoded.decodable = keep
    for dataset in (data.train, data.test):
        for _ in dataset:
            pass
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--datasets", default="mnist,cifar10")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--manual-dir-mnist")
    parser.add_argument("--manual-dir-cifar10")
    parser.add_argument("overrides", nargs="*", help="key=value for every config")
    args = parser.parse_intermixed_args()
    for name in args.datasets.split(","):
        seconds: dict[str, list[float]] = {way: [] for way in WAYS}
        for _ in range(args.rounds):
            for way in WAYS:
                seconds[way].append(first_pass(CASES[name], getattr(args, f"manual_dir_{name}"), way,
                                               args.overrides))
        reference = statistics.median(seconds["tfds"])
        for way in WAYS:
            median = statistics.median(seconds[way])
            runs = " ".join(f"{s:.2f}" for s in seconds[way])
            print(f"{name:<8} {way:<12} median {median:6.2f} s ({runs}); {median / reference:.2f}x tfds", flush=True)


if __name__ == "__main__":
    main()
