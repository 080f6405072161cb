"""What a pretrained start is worth: a small CNN fine-tuned on 100 images per class, from weights
trained on other classes, against the same network from random weights.

    python benchmarks/transfer.py --cifar10 ../shared/data/cifar10

Two folders of PNG files are written from the shared CIFAR-10 arrays into --work (default
runs/transfer/, which git ignores; reused when it holds folders written with the same settings):
- A: the first five classes (airplane, automobile, bird, cat, deer), all their training images
  (25,000) in A/train/<class>/ and all their test images (5,000) in A/test/<class>/;
- B: the other five (dog, frog, horse, ship, truck), --per-class training images each (the first
  ones of each class in the arrays' order) in B/train/<class>/, and all their 5,000 test images in
  B/test/<class>/.
configs/experiments/cifar5_transfer.yaml (a 141,029-parameter CNN: five 3x3 convolutions with batch
normalization, global average pooling, dropout, Dense 5; Adam; batch 128; pad-crop 4 and flip) is
trained once on A for --pretrain-epochs (seed 1), then, for each seed, on B for --finetune-epochs,
the config's cosine decay of the learning rate (from 0.002) reaching zero at the last epoch of each:
- pretrained: from the A run (`model.weights=RUN`: its checkpoints/best.keras). The classifier of
  B's classes has the shape of A's (5 units) and would load too, so it is named `new_classifier`
  (`model.layers.19.name=new_classifier`): it matches no layer of A's and starts at random, as a
  classifier for other classes should. Everything else trains from the start, at the config's rate.
- random: the same config and classifier name, without `model.weights`.
- two-phase: as pretrained, in two `train.phases` at constant rates: the classifier alone for
  --head-epochs at --head-lr (every layer up to dropout_19 frozen, batch normalization in inference
  mode), then every layer for the rest of --finetune-epochs at --phase2-lr.
Both sides hold out 10% of B's training images (by a hash of each path) to validate on; the test
accuracy is the final model's, on B's 5,000 test images. One pretraining run serves every seed, so
the spread is the fine-tuning's (initialisation of the new layers, order, augmentation, dropout).
cnnzoo keeps the decoded pixels in a private TFDS data dir inside --work. Each run's messages are in
its folder (log.txt); the first lines of the first fine-tuning run are printed. --smoke: 20
training and 20 test images per class on each side, one pretraining epoch, two fine-tuning epochs
(one per phase for two-phase), seed 1. Measured (8 and 30 epochs, seeds 1-3, 2-core CPU, 13.5 min in
all): docs/resnets.md, "Starting from trained weights".
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # runnable from a checkout without installing

import cifar_arrays  # noqa: E402  (beside this script)

import cnnzoo  # noqa: E402

CONFIG = REPO / "configs" / "experiments" / "cifar5_transfer.yaml"
CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")
SIDES = {"A": CLASSES[:5], "B": CLASSES[5:]}
CLASSIFIER = "model.layers.19.name=new_classifier"  # the last Dense, dense_20 in the pretraining run
HEAD_FREEZE = "dropout_19"  # the layer before the classifier: it and everything before it
VARIANTS = ("pretrained", "random", "two-phase")
MARKER = ".transfer.json"  # the folders' settings (hidden: cnnzoo ignores it)


# -- the folders ------------------------------------------------------------------------------------

def make_folders(cifar10: Path, work: Path, sizes: dict) -> dict[str, dict[str, int]]:
    """Write A/ and B/ (train/<class>/, test/<class>/ PNGs) unless `work` holds them with the same sizes;
    returns the images per side and split."""
    marker = work / MARKER
    if marker.is_file() and json.loads(marker.read_text()).get("sizes") == sizes:
        return json.loads(marker.read_text())["counts"]
    # The training files up to the one that holds the first images of every class wanted (all five by
    # default; --smoke's 20 a class: the first, sparing four LZMA decompressions: 7.4 s -> 1.3 s measured)
    train = cifar_arrays.split(cifar10, "train", max(sizes["A_train"], sizes["B_train"]))
    test = cifar_arrays.split(cifar10, "test")
    jobs, counts = [], {}
    for side, classes in SIDES.items():
        counts[side] = {}
        for split, (x, y) in (("train", train), ("test", test)):
            limit = sizes[f"{side}_{split}"]
            counts[side][split] = 0
            for name in classes:
                folder = work / side / split / name
                folder.mkdir(parents=True, exist_ok=True)
                for old in folder.glob("*.png"):
                    old.unlink()
                chosen = np.flatnonzero(y == CLASSES.index(name))[:limit]
                jobs += [(x[i], folder / f"{i:05d}.png") for i in chosen]
                counts[side][split] += len(chosen)
    with ThreadPoolExecutor(os.cpu_count() or 1) as pool:
        list(pool.map(lambda job: _write_png(*job), jobs))
    marker.write_text(json.dumps({"sizes": sizes, "counts": counts}))
    return counts


def _write_png(pixels: np.ndarray, path: Path) -> None:
    from PIL import Image

    Image.fromarray(pixels).save(path)


# -- one run ----------------------------------------------------------------------------------------

def run(name: str, overrides: list[str], work: Path) -> tuple[float, list[str], float]:
    """Train `CONFIG` with `overrides` into work/runs/NAME; (test accuracy, its messages, seconds)."""
    lines: list[str] = []
    folder = work / "runs" / name
    start = time.perf_counter()
    result = cnnzoo.train(cnnzoo.load_config(CONFIG, [f"data.data_dir={work / 'tfds'}", *overrides]),
                          output_dir=str(folder), overwrite=True, log=lines.append)
    seconds = time.perf_counter() - start
    (folder / "log.txt").write_text("\n".join(lines) + "\n")
    return result.metrics["test"]["accuracy"], lines, seconds


def variant_overrides(variant: str, pretrained: Path, args) -> list[str]:
    weights = [] if variant == "random" else [f"model.weights={pretrained}"]
    if variant != "two-phase":
        return [*weights, *epochs(args.finetune_epochs)]
    head, rest = args.head_epochs, args.finetune_epochs - args.head_epochs
    phases = (f"{{epochs: {head}, freeze: {HEAD_FREEZE}, optimizer: {{name: adam, learning_rate: {args.head_lr}}}}}",
              f"{{epochs: {rest}, freeze: [], optimizer: {{name: adam, learning_rate: {args.phase2_lr}}}}}")
    return [*weights, "train.lr_schedule=null", f"train.phases=[{', '.join(phases)}]"]  # each phase: its own rate


def epochs(n: int) -> list[str]:
    """`n` epochs, the config's cosine decay reaching zero at the last."""
    return [f"train.epochs={n}", f"train.lr_schedule.decay_steps={n}"]


def plural(n: int, word: str) -> str:
    return f"{n} {word}{'' if n == 1 else 's'}"


# -- the table --------------------------------------------------------------------------------------

def table(accuracy: dict[str, list[float]], seeds: list[int]) -> list[str]:
    """One row per variant: mean, each seed's accuracy, spread (max - min), and the difference to random."""
    reference = statistics.mean(accuracy["random"]) if accuracy.get("random") else None
    rows = [f"{'variant':<11} {'mean':>7}   {'  '.join(f'seed {s:<2}' for s in seeds)}   spread    vs random"]
    for variant, values in accuracy.items():
        mean = statistics.mean(values)
        versus = f"{100 * (mean - reference):+6.2f} pts" if reference is not None else "-"
        rows.append(f"{variant:<11} {mean:7.2%}   {'  '.join(f'{v:7.2%}' for v in values)}   "
                    f"{100 * (max(values) - min(values)):4.2f} pts  {versus}")
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cifar10", default=str(REPO.parent / "shared" / "data" / "cifar10"),
                        help="folder of cifar10_train_{1..5}of5.npz and cifar10_test.npz")
    parser.add_argument("--work", default=str(REPO / "runs" / "transfer"), help="folders and runs (reused)")
    parser.add_argument("--per-class", type=int, default=100, help="B's training images per class")
    parser.add_argument("--a-per-class", type=int, default=5000, help="A's training images per class (all: 5000)")
    parser.add_argument("--test-per-class", type=int, default=1000, help="test images per class (all: 1000)")
    parser.add_argument("--pretrain-epochs", type=int, default=8)
    parser.add_argument("--finetune-epochs", type=int, default=30)
    parser.add_argument("--head-epochs", type=int, default=5, help="two-phase: epochs of the classifier alone")
    parser.add_argument("--head-lr", type=float, default=1e-3, help="two-phase: Adam's rate for the classifier")
    parser.add_argument("--phase2-lr", type=float, default=5e-4, help="two-phase: Adam's rate for every layer")
    parser.add_argument("--seeds", default="1,2,3")
    parser.add_argument("--variants", default=",".join(VARIANTS))
    parser.add_argument("--pretrained", help="an earlier pretraining run folder to start from (skips pretraining)")
    parser.add_argument("--smoke", action="store_true", help="20 images per class, one epoch, one seed")
    parser.add_argument("overrides", nargs="*", help="key=value for every run")
    args = parser.parse_intermixed_args()
    if args.smoke:
        args.per_class = args.a_per_class = args.test_per_class = 20
        args.pretrain_epochs, args.finetune_epochs, args.head_epochs = 1, 2, 1
        args.seeds = args.seeds if args.seeds != "1,2,3" else "1"
    seeds = [int(s) for s in args.seeds.split(",")]
    variants = [v for v in args.variants.split(",")]
    unknown = set(variants) - set(VARIANTS)
    if unknown or (args.finetune_epochs <= args.head_epochs and "two-phase" in variants):
        raise SystemExit(f"unknown variants {sorted(unknown)}" if unknown
                         else "--finetune-epochs must exceed --head-epochs for two-phase")
    work = Path(args.work).resolve()
    work.mkdir(parents=True, exist_ok=True)

    start = time.perf_counter()
    counts = make_folders(Path(args.cifar10), work, {"A_train": args.a_per_class, "A_test": args.test_per_class,
                                                     "B_train": args.per_class, "B_test": args.test_per_class})
    sides = "; ".join(f"{side} {counts[side]['train']:,} training + {counts[side]['test']:,} test PNGs "
                      f"({', '.join(classes)})" for side, classes in SIDES.items())
    print(f"folders: {sides}; {time.perf_counter() - start:.0f} s, in {work}", flush=True)

    if args.pretrained:
        pretrained = Path(args.pretrained).resolve()
        print(f"pretrained: {pretrained} (given)", flush=True)
    else:
        pretrained = work / "runs" / "pretrain-A"
        accuracy, _, seconds = run("pretrain-A", [f"data.path={work / 'A'}", *epochs(args.pretrain_epochs),
                                                  "runtime.seed=1", *args.overrides], work)
        print(f"pretrain on A: {plural(args.pretrain_epochs, 'epoch')}, test accuracy {accuracy:.2%} on A's "
              f"{counts['A']['test']:,} test images, {seconds / 60:.1f} min; run: {pretrained}", flush=True)

    accuracy: dict[str, list[float]] = {v: [] for v in variants}
    first_lines: list[str] = []
    for seed in seeds:
        for variant in variants:
            overrides = [f"data.path={work / 'B'}", CLASSIFIER, f"runtime.seed={seed}",
                         *variant_overrides(variant, pretrained, args), *args.overrides]
            value, lines, seconds = run(f"{variant}-seed{seed}", overrides, work)
            accuracy[variant].append(value)
            first_lines = first_lines or [f"first lines of the fine-tuning run ({variant}, seed {seed}):", *lines[:8]]
            print(f"seed {seed} {variant:<11} test accuracy {value:.2%} ({seconds:.0f} s)", flush=True)

    print("\n".join(first_lines))
    print(f"B: {counts['B']['train']:,} training images ({args.per_class} per class; 10% held out to validate), "
          f"{counts['B']['test']:,} test images; {plural(args.finetune_epochs, 'epoch')}"
          + (f" (two-phase: {plural(args.head_epochs, 'epoch')} of the classifier alone at {args.head_lr:g}, "
             f"then every layer at {args.phase2_lr:g})" if "two-phase" in variants else ""))
    print("\n".join(table(accuracy, seeds)), flush=True)


if __name__ == "__main__":
    main()
