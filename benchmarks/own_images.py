"""Your own image folder: cnnzoo (`data.path`) against Keras' `image_dataset_from_directory`, the same
model on the same files, in one run.

    python benchmarks/own_images.py --cifar10 ../shared/data/cifar10

The folder is made from the shared CIFAR-10 arrays: --images JPEGs (quality 90) over the 10 classes,
each resized with Pillow to a random size from 32x32 to 48x48 (rows and columns drawn apart, seeded),
laid out as `train/<class>/` and `test/<class>/` (--test-fraction of them, from CIFAR-10's test
split), in a temporary folder (or --folder, reused when it exists). Both sides resize to 32x32, rgb,
and train the same small CNN (Conv 32-3 relu, max pool, Conv 64-3 relu, max pool, Flatten, Dense 128
relu, Dense 10 softmax; 1/255 rescaling; Adam 1e-3; batch 128; --epochs) on `train/` and test once on
`test/`; neither validates (cnnzoo: `data.validation_split: null`). cnnzoo reads a YAML config written
to the temporary work folder, with its kept files in a private TFDS data dir there; the Keras side is
the model written by hand, fed `keras.utils.image_dataset_from_directory` (two calls: train/, test/).

Every measurement runs in a fresh process (--in-process: in the benchmark's own, a quick check that
the script runs), the two sides taking turns (--rounds; the side that goes first alternates):
- first pass, img/s: every training and test image decoded once. cnnzoo: a first run's
  `load_folder_datasets` (list, read headers, decode, keep) and one pass over its training and test
  pipelines (the kept file is written by a thread meanwhile; "saving" is the time to start it);
  Keras: the two `image_dataset_from_directory` calls and one pass over both datasets.
- first run / later run, s to step 1: from calling `cnnzoo.train` (or the Keras script's first
  data call) to the end of the first training batch (a callback's on_train_batch_end), TensorFlow
  and Keras imported before on both sides (cnnzoo's as its command line imports them); "from launch"
  counts from launching the process; "in fit": from fit's start (on_train_begin) to the same point
  (the first batch read, the train step traced and run once). A first run has no kept file; a later
  run finds the first run's. Keras decodes again in every run (its `.cache()` keeps images in memory
  within one process only). "s to the end": from the call to the end of the later run's last epoch
  (before the test evaluation).
- last epoch, img/s: training images over the wall time from the end of the previous epoch to the
  end of the last (cnnzoo's checkpoint and log writing included; Keras decodes every epoch).
- test accuracy: each training run's, after its last epoch; runs use seeds 1, 2, ... (a first and a
  later run per round), so the spread is over 2 x --rounds seeds.
Medians, their ratios (cnnzoo/keras) and the goals (printed, not asserted; the first pass's ratio also
round by round, the two sides measured back to back). --keras-cache adds a third side: the Keras
tutorial's `.cache().shuffle(1000).prefetch(AUTOTUNE)` on the training set.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # runnable from a checkout without installing

import cifar_arrays  # noqa: E402  (beside this script)
CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")
SIZE = (32, 32)
BATCH = 128
SMALLEST, LARGEST = 32, 48  # the generated images' rows and columns
MARKER = ".own_images.json"  # the generated folder's parameters (hidden: neither side reads it)
GOALS = {"first_pass": 1.0, "later_start": 5.0}
CONFIG = """\
# Written by benchmarks/own_images.py: the network of its hand-written Keras model.
model:
  name: own_images_cnn
  input_shape: [{rows}, {cols}, 3]
  num_classes: {classes}
  layers:
    - Conv2D: {{filters: 32, kernel_size: 3, activation: relu}}
    - MaxPooling2D: {{pool_size: 2}}
    - Conv2D: {{filters: 64, kernel_size: 3, activation: relu}}
    - MaxPooling2D: {{pool_size: 2}}
    - Flatten
    - Dense: {{units: 128, activation: relu}}
    - Dense: {{units: {classes}, activation: softmax}}
data:
  path: {folder}
  color_mode: rgb
  preprocessing: {{resize: [{rows}, {cols}]}}   # rescale 1/255: cnnzoo's default
  batch_size: {batch}
  validation_split: null      # as the Keras side: train on train/, test once on test/
  data_dir: {data_dir}        # a private TFDS data dir: the kept files of this benchmark only
train:
  epochs: {epochs}
  loss: sparse_categorical_crossentropy
  optimizer: {{name: adam, learning_rate: 0.001}}
  metrics: [accuracy]
  pictures: false
"""


# -- the folder -------------------------------------------------------------------------------------

def make_folder(cifar10: Path, folder: Path, images: int, test_fraction: float, seed: int = 0) -> dict[str, int]:
    """Write the JPEG folder (train/<class>/, test/<class>/) from the CIFAR-10 arrays; images per split."""
    rng = np.random.default_rng(seed)
    per_class = {"test": round(images * test_fraction / len(CLASSES))}
    per_class["train"] = images // len(CLASSES) - per_class["test"]
    arrays = {"train": cifar_arrays.split(cifar10, "train", per_class["train"]),
              "test": cifar_arrays.split(cifar10, "test", per_class["test"])}
    jobs = []
    for split, (x, y) in arrays.items():
        for label, name in enumerate(CLASSES):
            (folder / split / name).mkdir(parents=True, exist_ok=True)
            chosen = rng.permutation(np.flatnonzero(y == label))[:per_class[split]]
            if len(chosen) < per_class[split]:
                raise SystemExit(f"{cifar10} has {len(chosen)} {split} images of {name}, fewer than {per_class[split]}")
            sizes = rng.integers(SMALLEST, LARGEST + 1, size=(len(chosen), 2))
            jobs += [(x[i], (int(cols), int(rows)), folder / split / name / f"{split}_{i:05d}.jpg")
                     for i, (rows, cols) in zip(chosen, sizes)]
    with ThreadPoolExecutor(os.cpu_count() or 1) as pool:  # Pillow releases the GIL while encoding
        list(pool.map(lambda job: _write_jpeg(*job), jobs))
    counts = {split: n * len(CLASSES) for split, n in per_class.items()}
    (folder / MARKER).write_text(json.dumps({"images": images, "test_fraction": test_fraction, "seed": seed, **counts}))
    return counts


def _write_jpeg(pixels: np.ndarray, size: tuple[int, int], path: Path) -> None:
    from PIL import Image

    Image.fromarray(pixels).resize(size, Image.BICUBIC).save(path, quality=90)


def folder_counts(folder: Path) -> dict[str, int]:
    """Images per split of an existing folder."""
    return {split: sum(1 for f in (folder / split).rglob("*") if f.suffix.lower() in (".jpg", ".jpeg", ".png"))
            for split in ("train", "test")}


# -- one measurement, in a fresh process ----------------------------------------------------------

def step_timer():
    """A Keras callback keeping the wall-clock times (time.time()) of fit's start, the first batch's end
    and every epoch's begin and end."""
    import keras

    class StepTimer(keras.callbacks.Callback):
        def __init__(self):
            super().__init__()
            self.train_begin, self.first_step, self.epoch_begin, self.epoch_end = None, None, [], []

        def on_train_begin(self, logs=None):
            if self.train_begin is None:
                self.train_begin = time.time()

        def on_train_batch_end(self, batch, logs=None):
            if self.first_step is None:
                self.first_step = time.time()

        def on_epoch_begin(self, epoch, logs=None):
            self.epoch_begin.append(time.time())

        def on_epoch_end(self, epoch, logs=None):
            self.epoch_end.append(time.time())

    return StepTimer()


def worker(task: dict) -> dict:
    """Run one measurement (`task["what"]`: first_pass or train) for one side; its figures."""
    if task["side"] == "cnnzoo":  # the process as cnnzoo's command line sets it up (`python train.py`)
        from cnnzoo.cli import console

        console.first_imports()
    import keras  # noqa: F401  (both sides start timing with TensorFlow and Keras imported)
    import tensorflow as tf  # noqa: F401

    if task["side"] == "cnnzoo":
        return cnnzoo_first_pass(task) if task["what"] == "first_pass" else cnnzoo_train(task)
    return keras_first_pass(task) if task["what"] == "first_pass" else keras_train(task)


def cnnzoo_first_pass(task: dict) -> dict:
    """load_folder_datasets with no kept file, then one pass over the training and test pipelines;
    with the seconds of its parts (listing, headers, decoding, saving the kept file)."""
    parts: dict[str, float] = {}
    from cnnzoo import load_config
    from cnnzoo.data import folder_input, folder_source, kept_images

    for module, name, part in ((folder_source, "list_images", "listing"), (kept_images, "load", "kept file read"),
                               (folder_input, "open_folder", "open_folder"), (folder_input, "decode_many", "decoding"),
                               (kept_images, "save_later", "saving"), (folder_input, "folder_splits", "splits")):
        if hasattr(module, name):
            setattr(module, name, _timed(getattr(module, name), part, parts))
    start = time.perf_counter()
    config = load_config(task["config"], [f"runtime.seed={task['seed']}"])
    loaded = time.perf_counter()
    data = folder_input.load_folder_datasets(config, one_hot=False)
    built = time.perf_counter()
    images = 0
    for dataset in (data.train, data.test):
        for batch, _ in dataset:
            images += int(batch.shape[0])
    end = time.perf_counter()
    if "open_folder" in parts:
        parts["headers"] = parts.pop("open_folder") - parts.get("listing", 0) - parts.get("kept file read", 0)
    parts["pipelines built"] = built - loaded - sum(parts.values())
    parts["pass over train+test"] = end - built
    return {"seconds": end - start, "images": images, "parts": parts}


def _timed(function, part: str, parts: dict):
    def timed(*args, **kwargs):
        begin = time.perf_counter()
        try:
            return function(*args, **kwargs)
        finally:
            parts[part] = parts.get(part, 0.0) + time.perf_counter() - begin
    return timed


def keras_datasets(folder: Path, seed: int, cache: bool = False):
    import keras
    import tensorflow as tf

    options = dict(image_size=SIZE, color_mode="rgb", batch_size=BATCH)
    train = keras.utils.image_dataset_from_directory(folder / "train", shuffle=True, seed=seed, verbose=False,
                                                     **options)
    test = keras.utils.image_dataset_from_directory(folder / "test", shuffle=False, verbose=False, **options)
    if cache:  # the Keras tutorial's recipe ("Load and preprocess images")
        train = train.cache().shuffle(1000).prefetch(tf.data.AUTOTUNE)
    return train, test


def keras_first_pass(task: dict) -> dict:
    start = time.perf_counter()
    train, test = keras_datasets(Path(task["folder"]), task["seed"])
    images = 0
    for dataset in (train, test):
        for batch, _ in dataset:
            images += int(batch.shape[0])
    return {"seconds": time.perf_counter() - start, "images": images}


def keras_model(classes: int):
    import keras
    from keras import layers

    return keras.Sequential([
        keras.Input((*SIZE, 3)),
        layers.Rescaling(1 / 255),
        layers.Conv2D(32, 3, activation="relu"),
        layers.MaxPooling2D(2),
        layers.Conv2D(64, 3, activation="relu"),
        layers.MaxPooling2D(2),
        layers.Flatten(),
        layers.Dense(128, activation="relu"),
        layers.Dense(classes, activation="softmax"),
    ])


def keras_train(task: dict) -> dict:
    import keras

    timer = step_timer()
    called = time.time()
    keras.utils.set_random_seed(task["seed"])
    train, test = keras_datasets(Path(task["folder"]), task["seed"], cache=task["side"] == "keras+cache")
    model = keras_model(len(CLASSES))
    model.compile(optimizer=keras.optimizers.Adam(1e-3), loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    model.fit(train, epochs=task["epochs"], callbacks=[timer], verbose=0)
    accuracy = model.evaluate(test, return_dict=True, verbose=0)["accuracy"]
    return _train_result(called, timer, accuracy, model.count_params())


def cnnzoo_train(task: dict) -> dict:
    timer = step_timer()
    called = time.time()
    import cnnzoo

    config = cnnzoo.load_config(task["config"], [f"runtime.seed={task['seed']}"])
    lines: list[str] = []
    result = cnnzoo.train(config, output_dir=task["output_dir"], log=lines.append, callbacks=[timer])
    figures = _train_result(called, timer, result.metrics["test"]["accuracy"], result.metrics["params"])
    figures["decoded"] = any("decoding" in line for line in lines)  # a first run says so; a later one must not
    return figures


def _train_result(called: float, timer, accuracy: float, params: int) -> dict:
    last = timer.epoch_end[-1] - (timer.epoch_end[-2] if len(timer.epoch_end) > 1 else timer.epoch_begin[-1])
    return {"called": called, "train_begin": timer.train_begin, "first_step": timer.first_step,
            "last_epoch_end": timer.epoch_end[-1],
            "last_epoch_seconds": last,
            "accuracy": float(accuracy), "params": int(params)}


def measure(task: dict, fresh: bool = True) -> dict:
    """Run `task` in a fresh Python (or in this one: `--in-process`); its figures, with `launched`
    (time.time() at the launch)."""
    launched = time.time()
    if not fresh:
        return {**worker(task), "launched": launched}
    done = subprocess.run([sys.executable, __file__, "--worker", json.dumps(task)], capture_output=True, text=True,
                          env={**os.environ, "PYTHONPATH": str(REPO)}, cwd=REPO)
    lines = [line for line in done.stdout.splitlines() if line.startswith("RESULT ")]
    if done.returncode or not lines:
        raise SystemExit(f"{task['side']} {task['what']} failed (exit {done.returncode}):\n{done.stderr[-3000:]}")
    return {**json.loads(lines[-1][len("RESULT "):]), "launched": launched}


# -- the benchmark -------------------------------------------------------------------------------

def run(args, folder: Path, work: Path, counts: dict[str, int]) -> dict[str, dict[str, list]]:
    sides = ["cnnzoo", "keras", *(["keras+cache"] if args.keras_cache else [])]
    config = work / "own_images.yaml"
    config.write_text(CONFIG.format(rows=SIZE[0], cols=SIZE[1], classes=len(CLASSES), folder=json.dumps(str(folder)),
                                    batch=BATCH, data_dir=json.dumps(str(work / "tfds")), epochs=args.epochs))
    kept = work / "tfds" / "cnnzoo-folders"
    fresh = not args.in_process
    figures: dict[str, dict[str, list]] = {side: {} for side in sides}
    parts: list[dict] = []

    def add(side: str, key: str, value) -> None:
        figures[side].setdefault(key, []).append(value)

    for r in range(args.rounds):
        order = sides if r % 2 == 0 else sides[::-1]
        base = {"folder": str(folder), "config": str(config), "epochs": args.epochs}
        for side in order:  # (1) the first pass
            if side == "keras+cache":
                continue  # the same first pass as keras
            shutil.rmtree(kept, ignore_errors=True)
            got = measure({**base, "what": "first_pass", "side": side, "seed": 2 * r + 1}, fresh)
            add(side, "first_pass", got["images"] / got["seconds"])
            if side == "cnnzoo":
                parts.append(got["parts"])
        for later in (False, True):  # (2)-(4) a first run, then a later one
            seed = 2 * r + 1 + later
            for side in order:
                if side == "cnnzoo" and not later:
                    shutil.rmtree(kept, ignore_errors=True)
                got = measure({**base, "what": "train", "side": side, "seed": seed,
                               "output_dir": str(work / "runs" / f"{side}-{seed}")}, fresh)
                if side == "cnnzoo" and got["decoded"] == later:
                    did = "decoded" if later else "did not decode"
                    raise SystemExit(f"cnnzoo's {'later' if later else 'first'} run {did}"
                                     " the folder: the kept file was not where the benchmark expects it")
                run_name = "later" if later else "first"
                add(side, f"{run_name}_start", got["first_step"] - got["called"])
                add(side, f"{run_name}_start_process", got["first_step"] - got["launched"])
                add(side, f"{run_name}_in_fit", got["first_step"] - got["train_begin"])
                add(side, f"{run_name}_end", got["last_epoch_end"] - got["called"])
                add(side, "last_epoch", counts["train"] / got["last_epoch_seconds"])
                add(side, "accuracy", got["accuracy"])
                add(side, "params", got["params"])
        print(f"round {r + 1}/{args.rounds} done: " + "; ".join(
            f"{side} first pass {figures[side]['first_pass'][-1]:,.0f} img/s, later run step 1 at "
            f"{figures[side]['later_start'][-1]:.2f} s, accuracy {figures[side]['accuracy'][-1]:.4f}"
            for side in sides if "first_pass" in figures[side]), flush=True)
    figures["cnnzoo"]["parts"] = parts
    return figures


COLUMNS = (  # key, heading (two lines), format
    ("first_pass", ("first pass", "img/s"), "{:,.0f}"),
    ("first_start", ("first run", "s to step 1"), "{:.2f}"),
    ("later_start", ("later run", "s to step 1"), "{:.2f}"),
    ("later_start_process", ("later run", "from launch"), "{:.2f}"),
    ("later_end", ("later run", "s to the end"), "{:.2f}"),
    ("last_epoch", ("last epoch", "img/s"), "{:,.0f}"),
    ("accuracy", ("test", "accuracy"), "{:.4f}"),
)


def report(args, figures: dict, counts: dict[str, int], folder: Path) -> None:
    width, first = 14, 20
    median = {side: {key: statistics.median(values) for key, values in f.items() if key != "parts"}
              for side, f in figures.items()}
    params = ", ".join(f"{side} {median[side]['params']:,.0f}" for side in figures)
    print(f"\n{counts['train']:,} training + {counts['test']:,} test JPEGs ({SMALLEST}-{LARGEST} px a side, mixed "
          f"sizes), resized to {SIZE[0]}x{SIZE[1]} rgb; epochs: {args.epochs}, batch {BATCH}; parameters: {params}")
    print(f"medians over {args.rounds} round(s): {args.rounds} run(s) each (first pass, first run, later run), "
          f"{2 * args.rounds} (last epoch, test accuracy: seeds 1-{2 * args.rounds}); cnnzoo/keras below 1x: "
          "cnnzoo took less time")
    if args.in_process:
        print("--in-process: every measurement ran in this Python; the start-up figures are not comparable")
    for line in (0, 1):
        print(f"{'' if line == 0 else 'side':<{first}}"
              + "".join(f"{heading[line]:>{width}}" for _, heading, _ in COLUMNS))
    for side in figures:
        cells = [fmt.format(median[side][key]) if key in median[side] else "as keras" for key, _, fmt in COLUMNS]
        print(f"{side:<{first}}" + "".join(f"{cell:>{width}}" for cell in cells))
    for other in [s for s in figures if s != "cnnzoo"]:
        cells = []
        for key, _, _ in COLUMNS:
            if key not in median[other]:
                cells.append("")
            elif key == "accuracy":
                cells.append(f"{100 * (median['cnnzoo'][key] - median[other][key]):+.2f} pts")
            else:
                cells.append(f"{median['cnnzoo'][key] / median[other][key]:.2f}x")
        print(f"{'cnnzoo/' + other:<{first}}" + "".join(f"{cell:>{width}}" for cell in cells))
    print("runs:")
    for side, f in figures.items():
        for key, heading, fmt in COLUMNS:
            if key in f:
                print(f"  {side:<12} {' '.join(heading):<22} " + " ".join(fmt.format(v) for v in f[key]))
    parts = figures["cnnzoo"]["parts"]
    if parts:
        names = list(dict.fromkeys(name for p in parts for name in p))
        spent = {n: statistics.median(p.get(n, 0.0) for p in parts) for n in names}
        print("cnnzoo's first pass, where the time goes (medians, s): "
              + "; ".join(f"{n} {t:.2f}" for n, t in spent.items()) + f"; in all {sum(spent.values()):.2f}")
    by_round = [c / k for c, k in zip(figures["cnnzoo"]["first_pass"], figures["keras"]["first_pass"])]
    first_pass = median["cnnzoo"]["first_pass"] / median["keras"]["first_pass"]
    faster = median["keras"]["later_start"] / median["cnnzoo"]["later_start"]
    faster_launch = median["keras"]["later_start_process"] / median["cnnzoo"]["later_start_process"]
    faster_end = median["keras"]["later_end"] / median["cnnzoo"]["later_end"]
    gap = 100 * (median["cnnzoo"]["accuracy"] - median["keras"]["accuracy"])
    spread = {s: 100 * (max(figures[s]["accuracy"]) - min(figures[s]["accuracy"])) for s in ("cnnzoo", "keras")}
    print("goals (reported, not asserted):")
    print(f"  first pass >= {GOALS['first_pass']:.1f}x keras: {first_pass:.2f}x "
          f"({'met' if first_pass >= GOALS['first_pass'] else 'missed'}); round by round (the sides back to back): "
          + ", ".join(f"{r:.2f}x" for r in by_round) + f"; {sum(r >= GOALS['first_pass'] for r in by_round)} of "
          f"{len(by_round)} at or above")
    print(f"  later run >= {GOALS['later_start']:.0f}x faster to its first step: {faster:.2f}x as fast from the call, "
          f"{faster_launch:.2f}x from the launch ({'met' if faster >= GOALS['later_start'] else 'missed'}); "
          f"to the end of its last epoch: {faster_end:.2f}x as fast (keras' time / cnnzoo's)")
    need = median["keras"]["later_start"] / GOALS["later_start"]
    print(f"    of a later run's time to step 1, inside model.fit (its first batch read, the train step traced and "
          f"run once): cnnzoo {median['cnnzoo']['later_in_fit']:.2f} s, keras "
          f"{median['keras']['later_in_fit']:.2f} s; {GOALS['later_start']:.0f}x would need step 1 "
          f"{need:.2f} s after the call")
    print(f"  equal test accuracy within noise: {gap:+.2f} points between the medians; spread over "
          f"{len(figures['cnnzoo']['accuracy'])} seeds: cnnzoo {spread['cnnzoo']:.2f}, "
          f"keras {spread['keras']:.2f} points "
          f"({'within' if abs(gap) <= max(spread.values()) else 'outside'} the spread)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter,
                                     epilog="\n\n".join(__doc__.split("\n\n")[1:]))
    parser.add_argument("--cifar10", default=str(REPO.parent / "shared" / "data" / "cifar10"),
                        help="folder of cifar10_train_{k}of5.npz and cifar10_test.npz (default: %(default)s)")
    parser.add_argument("--images", type=int, default=10_000,
                        help="images in the folder, train and test (default: %(default)s)")
    parser.add_argument("--test-fraction", type=float, default=0.2,
                        help="of them in test/, from CIFAR-10's test split (default: %(default)s)")
    parser.add_argument("--folder", help="the image folder: made when missing, reused when it exists (never deleted); "
                        "default: a temporary folder, deleted at the end")
    parser.add_argument("--epochs", type=int, default=3, help="training epochs, both sides (default: %(default)s)")
    parser.add_argument("--rounds", type=int, default=2, help="rounds of every measurement, the sides taking turns "
                        "(default: %(default)s)")
    parser.add_argument("--keras-cache", action="store_true",
                        help="also time Keras with the tutorial's .cache().shuffle(1000).prefetch() on train")
    parser.add_argument("--smoke", action="store_true", help="tiny sizes for a test: 200 images, 1 epoch, 1 round")
    parser.add_argument("--in-process", action="store_true",
                        help="every measurement in this Python, not a fresh one: a quick check that the script runs "
                        "(the start-up figures then leave out Python's, TensorFlow's and the first run's start)")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        print("RESULT " + json.dumps(worker(json.loads(args.worker))), flush=True)
        return
    if args.smoke:
        args.images, args.epochs, args.rounds = 200, 1, 1
    if args.images < 10 * len(CLASSES) or not 0 < args.test_fraction < 1:
        parser.error(f"--images must be at least {10 * len(CLASSES)} and --test-fraction between 0 and 1")
    work = Path(tempfile.mkdtemp(prefix="cnnzoo-own-images-"))
    try:
        folder = Path(args.folder).resolve() if args.folder else work / "images"
        if (folder / "train").is_dir():
            counts = folder_counts(folder)
            print(f"reusing {folder}: {counts['train']:,} training and {counts['test']:,} test images", flush=True)
        else:
            start = time.perf_counter()
            counts = make_folder(Path(args.cifar10), folder, args.images, args.test_fraction)
            print(f"wrote {counts['train']:,} training and {counts['test']:,} test JPEGs to {folder} in "
                  f"{time.perf_counter() - start:.1f} s", flush=True)
        report(args, run(args, folder, work, counts), counts, folder)
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
