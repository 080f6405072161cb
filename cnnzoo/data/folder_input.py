"""`data.path` -> the plan's view of a folder (signature, source, splits) -> batched `tf.data` pipelines.

The folder is listed and its headers read once per process; its pixels are decoded once and kept
(`cnnzoo.data.kept_images`), then fed to the same pipeline as the catalogue's datasets
(`cnnzoo.data.pipeline`), preprocessed 1,024 images per call.
"""

from __future__ import annotations

import warnings
from collections import Counter
from dataclasses import replace
from types import SimpleNamespace

import numpy as np

from cnnzoo.config.schema import Config
from cnnzoo.data import kept_images
from cnnzoo.data.cache import CacheChoice
from cnnzoo.data.folder_source import (DEFAULT_TEST_FRACTION, FolderDataset, assign, check_usable, class_table,
                                       fractions, imbalance, open_folder, split_names, split_rows)
from cnnzoo.data.image_decode import decode_many
from cnnzoo.data.pipeline import (Datasets, InMemory, as_tensor, augment_fn, memory_pipeline, preprocess_fn,
                                  split_pipelines)
from cnnzoo.data.splits import Splits, check_split
from cnnzoo.errors import CnnzooWarning, DataError

# A folder's pixels are held in memory as uint8 and gathered a batch at a time (`InMemory`): there is no
# cache of float32 examples to choose, so `data.cache` does not apply.
HELD_IN_MEMORY = CacheChoice(True)


def folder_splits(config: Config, by_split: dict[str, list], class_names: list[str]) -> Splits:
    """The run's splits of a folder, checked, with their sizes.

    Raises:
        DataError: a split held out or named that has no file, or a class with no training image."""
    infos = _infos(by_split)
    names = split_names(config)
    for key, name in (("test_split", "test"), ("validation_split", "validation")):
        fraction = getattr(config.data, key)
        if key == "test_split" and fraction == "test":  # (`validation_split: test` names the test split)
            fraction = DEFAULT_TEST_FRACTION
        if isinstance(fraction, float) and name not in by_split:
            raise DataError(f"{config.data.path} has too few images to hold out {fraction:.0%} for {name}: "
                            f"none of its {sum(len(f) for f in by_split.values()):,} files fell there",
                            location=config.where("data", key), path=f"data.{key}",
                            hint=f"Add images or give a larger `data.{key}`" +
                            (", or `data.validation_split: null` for none." if name == "validation" else "."))
    for key, spec in (("train_split", names["train"]), ("validation_split", names["validation"]),
                      ("test_split", names["test"])):
        if spec is not None and spec not in infos:  # a slice or a sum (TFDS's parser), or a missing split
            check_split(config, infos, key, spec)
    _check_trained(config, files_of(names["train"], by_split), by_split, class_names)
    sizes = tuple((spec, len(files_of(spec, by_split))) for spec in dict.fromkeys(names.values()) if spec)
    return Splits(names["train"], names["validation"], names["test"], sizes=sizes)


def _check_trained(config: Config, train: list, by_split: dict[str, list], class_names: list[str]) -> None:
    """Every class has a training image (a class only in test/, as a misspelt folder makes, cannot be learnt)."""
    trained = {f.label for f in train}
    for label, name in enumerate(class_names):
        if label not in trained:
            files = [f for split_files in by_split.values() for f in split_files if f.label == label]
            where = {split: n for split, split_files in by_split.items()
                     if (n := sum(f.label == label for f in split_files))}
            held = ", ".join(f"{n:,} in {split}" for split, n in where.items()) or "none usable"
            hashed = files and all(f.split is None for f in files)  # held out by the hash, not by a folder
            raise DataError(f"class `{name}` has no training image in {config.data.path} ({held}" +
                            (f": the hash held out all {len(files):,} of its images)" if hashed else ")"),
                            location=config.where("data", "path"), path="data.path",
                            hint="Add images of the class (the hold-outs take a share of each class's images at "
                                 "random), or remove it." if hashed else "Check the class folders' names in every "
                                 "split (a misspelt one is a class of its own), add training images of the class, "
                                 "or remove it.")


def files_of(spec: str, by_split: dict[str, list]) -> list:
    """The files a split spec reads (`train`, `train[:50%]`, `train+validation`), in hash order."""
    if spec in by_split:
        return by_split[spec]
    import tensorflow_datasets as tfds

    files = []
    for part in tfds.core.ReadInstruction.from_spec(spec).to_absolute(_infos(by_split)):
        files += by_split[part.splitname][part.from_:part.to]
    return files


def _infos(by_split: dict[str, list]) -> dict:
    """What TFDS's split parser needs to know of each split: its number of examples."""
    return {name: SimpleNamespace(num_examples=len(files)) for name, files in by_split.items()}


def described(dataset: FolderDataset, config: Config, by_split: dict[str, list]) -> tuple[list[str], list[str],
                                                                                        list[str]]:
    """(lines for the plan, notes, warnings) about a folder split as `assign` splits it: images per split
    and class as the run reads them (`train_split: train[:50%]`: half), skips, imbalance."""
    test, validation = fractions(config, dataset.listing.given_splits)
    held = [f"{name} {fraction:.0%}" for name, fraction in (("test", test), ("validation", validation)) if fraction]
    notes = [f"held out by a hash of each file's path (stable as images are added): {', '.join(held)}"] if held else []
    read = {split: files_of(spec, by_split) for split, spec in split_names(config).items() if spec}
    lines = class_table(read, dataset.class_names)  # as the run reads them: a slice of train is a slice
    skipped = skipped_files(dataset)
    if skipped:  # a run lists them all in its folder (truncated files are found only when decoded)
        lines.append(f"{len(skipped):,} files skipped: " + "; ".join(f"{f} ({why})" for f, why in skipped[:3])
                     + ("; ..." if len(skipped) > 3 else ""))
    specs = " ".join(spec for spec in split_names(config).values() if spec)  # (a slice names its split too)
    given = len(by_split.get("validation", []))
    unused = [f"the {given:,} images of the folder's validation split are not used: `data.validation_split: "
              f"{config.data.validation_split}` validates on another"] if given and "validation" not in specs else []
    balanced = config.train.class_weight == "balanced"
    said = imbalance(read["train"], dataset.class_names, balanced)
    if said and balanced:  # the advice taken: a fact of the run, not a warning
        return lines, [*notes, said], unused
    return lines, notes, [*unused, *([said] if said else [])]


def skipped_files(dataset: FolderDataset) -> list[tuple[str, str]]:
    """(file, reason) of every file that is not used: not an image by name, or could not be opened/decoded."""
    bad = [(f.rel, dataset.reasons[f.key]) for f in dataset.listing.files if f.key in dataset.reasons]
    return sorted(dataset.listing.skipped + bad)


def decoded(dataset: FolderDataset, log=None) -> tuple[np.ndarray, dict[str, int]]:
    """(pixels, key -> row): the kept pixels, after decoding the files not kept yet (kept for later runs
    by a thread while this one goes on)."""
    store, usable = dataset.store, dataset.usable
    present = {f.key for f in dataset.listing.files}
    if store and store.covers(usable) and set(store.native) == present:
        return store.images(), store.rows
    old = {f.key: store.rows[f.key] for f in usable if store and f.key in store.rows}
    todo = [f for f in usable if f.key not in old]
    if todo and log:
        log(f"cnnzoo: decoding {len(todo):,} images of {dataset.listing.origin} (once; kept in {dataset.kept})")
    contents, dataset.contents = dataset.contents, {}  # read with the headers; not needed after this
    new, failed = decode_many([dataset.listing.path_of(f) for f in todo], dataset.channels, dataset.size,
                              headers_checked=True, contents=[contents.get(f.key) for f in todo])
    failures = {todo[i].key: reason for i, reason in failed}
    dataset.reasons.update(failures)
    fresh = [f for f in todo if f.key not in failures]
    images = new
    if old:
        images = np.empty((len(old) + len(fresh), *dataset.image_shape), np.uint8)
        images[:len(old)] = store.images()[np.fromiter(old.values(), np.int64, len(old))]
        images[len(old):] = new
    rows = {key: i for i, key in enumerate([*old, *(f.key for f in fresh)])}
    decode_reasons = {**(store.reasons if store else {}), **failures}
    native = {f.key: dataset.native[f.key] for f in dataset.listing.files}
    kept_images.save_later(dataset.kept, native, {k: v for k, v in decode_reasons.items() if k in native}, rows,
                           images, say=lambda note: _say(note, log))
    return images, rows


def _say(note: str, log) -> None:
    if log is not None:
        log(f"cnnzoo: {note}")
    else:
        warnings.warn(note, CnnzooWarning, stacklevel=2)


def load_folder_datasets(config: Config, *, one_hot: bool, static_shapes: bool = False,
                         folder: FolderDataset | None = None, log=None, evaluated: str | None = None) -> Datasets:
    """Decode (or load) the folder's images and build the run's pipelines (`folder`: as a plan opened it).
    `evaluated`: a split of the run's own (`validation`, `train[:10%]`) as the test pipeline, for
    `cnnzoo evaluate --split`: the files are split as the run split them, its test images held out."""
    import tensorflow as tf

    dataset = folder or open_folder(config)
    images, rows = decoded(dataset, log)
    check_usable(dataset.listing, dataset.reasons, config.where("data", "path"))
    by_split = assign(dataset, config)
    for name, files in by_split.items():  # files that failed to decode just now are not used
        by_split[name] = [f for f in files if f.key in rows]
    splits = folder_splits(config, by_split, dataset.class_names)
    if evaluated is not None:
        check_split(config, _infos(by_split), "test_split", evaluated, given="--split")
        splits = replace(splits, test=evaluated)
    preprocess = preprocess_fn(config.data, len(dataset.class_names), one_hot)
    pixels = as_tensor(images)  # one tensor for every split: each gathers its rows

    def pipeline(spec: str, key: str, training: bool):
        index, labels = split_rows(files_of(spec, by_split), rows)
        if not len(labels):
            raise DataError(f"split `{spec}` of {config.data.path} holds no usable image",
                            location=config.where("data", key), path=f"data.{key}")
        source = InMemory(pixels, tf.constant(index), tf.constant(labels), preprocess)
        return memory_pipeline(source, config.data, training=training, drop_remainder=static_shapes,
                               seed=config.runtime.seed,
                               augment=augment_fn(config.data, dataset.image_shape) if training else None)

    train, validation, test = split_pipelines(pipeline, splits, config)
    counts = Counter(f.label for f in files_of(splits.train, by_split))
    return Datasets(train, validation, test, dataset.image_shape, len(dataset.class_names), splits, HELD_IN_MEMORY,
                    dataset.class_names, tuple(counts.get(i, 0) for i in range(len(dataset.class_names))),
                    tuple(skipped_files(dataset)))
