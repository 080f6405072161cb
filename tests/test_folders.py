"""Your own images (`data.path`): layouts, stable splits, sizes and colours, bad files, decoded once."""

from __future__ import annotations

import csv
import json
import os

import numpy as np
import pytest
from PIL import Image

from cnnzoo import load_config
from cnnzoo.data.folder_input import load_folder_datasets
from cnnzoo.data.folder_source import assign, open_folder
from conftest import REPO, cli, write

MODEL = """
model:
  name: tiny
  layers:
    - Conv2D: [4, 3, {activation: relu}]
    - GlobalAveragePooling2D
    - Dense: 3
    - Activation: softmax
train:
  epochs: 1
  optimizer: {name: adam, learning_rate: 0.01}
  pictures: false
runtime:
  seed: 1
"""
CLASSES = ("cat", "dog", "eel")


def image(path, size=(20, 20), color=(200, 30, 30), fmt=None):
    """A real image file: a flat colour with a little noise (so JPEG has something to encode)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(abs(hash(path.name)) % 2**32)
    pixels = np.clip(np.array(color)[None, None] + rng.integers(-20, 20, (size[0], size[1], 3)), 0, 255)
    Image.fromarray(pixels.astype(np.uint8)).save(path, format=fmt)
    return path


def folder(root, per_class=12, sizes=((20, 20),), layout=""):
    colours = {"cat": (220, 40, 40), "dog": (40, 220, 40), "eel": (40, 40, 220)}
    for name in CLASSES:
        for i in range(per_class):
            suffix = (".png", ".jpg", ".bmp", ".gif")[i % 4]
            image(root / layout / name / f"{name}{i}{suffix}", sizes[i % len(sizes)], colours[name])
    return root


def config_for(tmp_path, path, *overrides):
    file = write(tmp_path / "net.yaml", MODEL + f"data:\n  path: {path}\n  data_dir: {tmp_path / 'tfds'}\n")
    return file, load_config(file, list(overrides))


def test_class_folders_train_with_class_names_and_splits_held_out_by_hash(tmp_path):
    root = folder(tmp_path / ".keras" / "datasets" / "pets", per_class=20)  # a hidden folder above is no matter
    file, _ = config_for(tmp_path, root)
    done = cli("validate", file)
    assert done.returncode == 0, done.stderr
    assert "data: pets 20x20x3, 3 classes" in done.stdout
    header = next(line for line in done.stdout.splitlines() if line.strip().startswith("class"))
    assert header.split() == ["class", "train", "validation", "test"]
    rows = {line.split()[0]: [int(n) for n in line.split()[1:]] for line in done.stdout.splitlines()
            if line.strip().split()[:1] in (["cat"], ["dog"], ["eel"], ["all"])}
    assert sum(rows["cat"]) == 20 and rows["all"][0] + rows["all"][1] + rows["all"][2] == 60

    run = tmp_path / "run"
    done = cli("train", file, "--output-dir", run)
    assert done.returncode == 0, done.stderr
    assert json.loads((run / "classes.json").read_text())["class_names"] == list(CLASSES)
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["dataset"] == "pets" and metrics["splits"] == {"train": "train", "validation": "validation",
                                                                   "test": "test"}
    assert not (run / "skipped_files.csv").exists()


def test_adding_images_moves_no_existing_file_between_splits(tmp_path):
    root = folder(tmp_path / "pets", per_class=30)
    _, config = config_for(tmp_path, root)
    before = {f.rel: split for split, files in assign(open_folder(config), config).items() for f in files}
    for i in range(30, 60):
        image(root / "dog" / f"new{i}.png")
    after = {f.rel: split for split, files in assign(open_folder(config), config).items() for f in files}
    assert len(after) == len(before) + 30
    assert {rel: after[rel] for rel in before} == before
    assert set(before.values()) == {"train", "validation", "test"}


def test_split_folders_and_a_csv_give_their_own_splits(tmp_path):
    root = tmp_path / "pets"
    folder(root, per_class=6, layout="train")
    folder(root, per_class=3, layout="test")
    _, config = config_for(tmp_path, root, "data.validation_split=null")
    splits = assign(open_folder(config), config)
    assert (len(splits["train"]), len(splits["test"])) == (18, 9) and "validation" not in splits

    sheet = tmp_path / "labels.csv"
    with sheet.open("w", newline="") as f:
        rows = [("path", "label", "split")] + [(f"pets/train/{c}/{c}{i}.png", c.upper(), "train" if i else "test")
                                                for c in CLASSES for i in (0, 4)]
        csv.writer(f).writerows(rows)
    _, config = config_for(tmp_path, sheet, "data.validation_split=null")
    dataset = open_folder(config)
    assert dataset.class_names == ["CAT", "DOG", "EEL"]
    assert {s: len(f) for s, f in assign(dataset, config).items()} == {"train": 3, "test": 3}


def test_a_csv_naming_a_missing_file_is_refused_naming_it(tmp_path):
    folder(tmp_path / "pets", per_class=2)
    sheet = write(tmp_path / "labels.csv", "path,label\npets/cat/cat0.png,cat\npets/cat/nope.jpg,cat\n")
    file, _ = config_for(tmp_path, sheet)
    done = cli("validate", file)
    assert done.returncode == 2 and "labels.csv:3: pets/cat/nope.jpg does not exist" in done.stderr, done.stderr


def test_mixed_sizes_need_a_resize_and_say_which_sizes(tmp_path):
    root = folder(tmp_path / "pets", per_class=6, sizes=((20, 20), (30, 24), (20, 20)))
    file, _ = config_for(tmp_path, root)
    done = cli("validate", file)
    assert done.returncode == 2, done.stdout
    assert "2 different sizes (rows x cols): 20x20 (12 images), 30x24 (6 images)" in done.stderr
    assert "data.preprocessing.resize: [20, 20]" in done.stderr
    done = cli("validate", file, "data.preprocessing.resize=[16, 16]", "data.color_mode=grayscale")
    assert done.returncode == 0, done.stderr
    assert "16x16x1, 3 classes" in done.stdout


@pytest.mark.slow
def test_bad_files_are_skipped_listed_and_hidden_ones_ignored(tmp_path):
    root = folder(tmp_path / "pets", per_class=8)
    (root / "cat" / "empty.jpg").write_bytes(b"")
    (root / "cat" / "text.png").write_text("not a picture")
    whole = (root / "dog" / "dog1.jpg").read_bytes()
    (root / "dog" / "cut.jpg").write_bytes(whole[: len(whole) // 2])
    big = image(tmp_path / "big.png", size=(60, 60)).read_bytes()
    (root / "eel" / "late.png").write_bytes(big[: len(big) * 9 // 10])  # the header reads: found when decoded
    (root / "dog" / ".DS_Store").write_bytes(b"\0\1")
    (root / "eel" / "._eel0.png").write_bytes(b"\0\5\x16\x07")
    (root / "eel" / "Thumbs.db").write_bytes(b"\0")
    (root / "eel" / "readme.txt").write_text("notes")
    file, _ = config_for(tmp_path, root, "data.preprocessing.resize=[20, 20]")
    run = tmp_path / "run"
    done = cli("train", file, "--output-dir", run, "data.preprocessing.resize=[20, 20]")
    assert done.returncode == 0, done.stderr
    listed = dict(list(csv.reader((run / "skipped_files.csv").open()))[1:])
    assert set(listed) == {"cat/empty.jpg", "cat/text.png", "dog/cut.jpg", "eel/late.png", "eel/readme.txt"}
    assert listed["cat/empty.jpg"] == "empty file" and "truncated" in listed["dog/cut.jpg"].lower()
    assert "5 files skipped" in done.stdout and str(run / "skipped_files.csv") in done.stdout


def test_a_class_without_a_usable_image_or_an_empty_folder_is_refused(tmp_path):
    root = folder(tmp_path / "pets", per_class=3)
    for path in (root / "eel").iterdir():
        path.write_bytes(b"")
    file, _ = config_for(tmp_path, root)
    done = cli("validate", file)
    assert done.returncode == 2 and "class `eel` has no usable image" in done.stderr, done.stderr
    (tmp_path / "nothing").mkdir()
    file, _ = config_for(tmp_path, tmp_path / "nothing")
    done = cli("validate", file)
    assert done.returncode == 2 and "holds no class subfolders" in done.stderr, done.stderr
    (tmp_path / "nothing" / "cat").mkdir()
    done = cli("validate", file)
    assert done.returncode == 2 and "holds no image files" in done.stderr, done.stderr


def test_decoded_once_then_only_new_or_changed_files(tmp_path):
    root = folder(tmp_path / "pets", per_class=10)
    _, config = config_for(tmp_path, root)
    said = []
    first = load_folder_datasets(config, one_hot=True, log=said.append)
    assert said and "decoding 30 images" in said[0]
    kept = open_folder(config).kept
    stamp = kept.stat().st_mtime_ns

    said.clear()
    again = load_folder_datasets(config, one_hot=True, log=said.append)
    assert said == [] and kept.stat().st_mtime_ns == stamp  # nothing decoded, nothing written
    for a, b in zip(first.train, again.train.take(1)):
        assert a[0].shape == b[0].shape

    image(root / "cat" / "cat0.png", color=(0, 0, 0))  # changed: decoded again, with the others kept
    os.utime(root / "cat" / "cat0.png", ns=(stamp + 10**9, stamp + 10**9))
    image(root / "eel" / "more.png")
    load_folder_datasets(config, one_hot=True, log=said.append)
    assert said and "decoding 2 images" in said[0]


def test_imbalance_is_warned_and_balanced_class_weights_follow_the_counts(tmp_path):
    root = folder(tmp_path / "pets", per_class=2)
    for i in range(2, 40):
        image(root / "cat" / f"cat{i}.png")
    file, config = config_for(tmp_path, root, "data.validation_split=null", "data.test_split=0.01")
    done = cli("validate", file)
    assert "warning" in done.stderr and "imbalanced" in done.stderr and "class_weight: balanced" in done.stderr
    done = cli("validate", file, "train.class_weight=balanced")  # the advice taken: a fact, no longer a warning
    assert done.returncode == 0 and "warning" not in done.stderr, done.stderr
    assert "note: the training images are imbalanced" in done.stdout and "weighs the classes alike" in done.stdout

    from cnnzoo.training.fitting import class_weights

    config = load_config(file, ["data.validation_split=null", "data.test_split=0.01", "train.class_weight=balanced"])
    data = load_folder_datasets(config, one_hot=True)
    weights = class_weights(config, data)
    counts = data.class_counts
    assert counts[0] > 10 * counts[2]
    assert weights[0] == pytest.approx(sum(counts) / (3 * counts[0])) and weights[2] > weights[0]


def test_the_config_in_docs_data_md_validates_on_a_folder(tmp_path):
    text = (REPO / "docs" / "data.md").read_text()
    example = text.split("```yaml\n", 1)[1].split("```", 1)[0]
    folder(tmp_path / "flowers", per_class=4, sizes=((70, 60), (64, 64)))
    file = write(tmp_path / "flowers.yaml", example.replace("path: flowers", f"path: flowers\n  data_dir: {tmp_path / 'tfds'}"))
    done = cli("validate", file)
    assert done.returncode == 2 and "too few images to hold out 10% for validation" in done.stderr, done.stderr
    folder(tmp_path / "flowers", per_class=12, sizes=((70, 60), (64, 64)))  # more images of the same classes
    done = cli("validate", file)
    assert done.returncode == 0, done.stderr
    assert "data: flowers 64x64x3, 3 classes" in done.stdout


@pytest.mark.slow
def test_a_path_beside_the_config_is_found_and_recorded_whole_for_resume(tmp_path):
    folder(tmp_path / "pets", per_class=12)
    file = write(tmp_path / "net.yaml", MODEL + f"data:\n  path: pets\n  data_dir: {tmp_path / 'tfds'}\n")
    run = tmp_path / "run"
    assert cli("train", file, "--output-dir", run).returncode == 0  # run from the repository, not tmp_path
    recorded = load_config(run / "config.yaml")
    assert recorded.data.path == str((tmp_path / "pets").resolve()) and recorded.data.name == "pets"
    done = cli("train", "--resume", run, "train.epochs=2")
    assert done.returncode == 0, done.stderr
    assert json.loads((run / "metrics.json").read_text())["epochs_completed"] == 2


@pytest.mark.slow
def test_a_folder_run_exported_agrees_with_predict_on_a_raw_photo_of_another_size(tmp_path):
    from test_predict_folder import agree, deployed, predicted

    root = folder(tmp_path / "pets", per_class=12, sizes=((20, 20), (26, 22)))
    file, _ = config_for(tmp_path, root, "data.preprocessing.resize=[20, 20]")
    run = tmp_path / "run"
    assert cli("train", file, "--output-dir", run, "data.preprocessing.resize=[20, 20]").returncode == 0
    photo = image(tmp_path / "photo.jpg", size=(45, 37), color=(40, 200, 60))
    done = cli("predict", run, photo)
    assert done.returncode == 0 and "dog" in done.stdout, done.stdout + done.stderr  # the run's class names
    done = cli("export", run, "--format", "keras", "-o", tmp_path / "model.keras")
    assert done.returncode == 0, done.stderr
    agree(deployed("keras", tmp_path / "model.keras", photo, tmp_path), predicted(run, photo))


def test_a_damaged_kept_file_is_decoded_again(tmp_path):
    root = folder(tmp_path / "pets", per_class=10)
    _, config = config_for(tmp_path, root)
    load_folder_datasets(config, one_hot=True)
    kept = open_folder(config).kept
    kept.write_bytes(kept.read_bytes()[:200])  # a half-written or damaged file (not a zip any more)
    said = []
    load_folder_datasets(config, one_hot=True, log=said.append)
    assert said and "decoding 30 images" in said[0]


def test_a_missing_or_short_pixel_file_is_decoded_again_and_old_ones_are_removed(tmp_path):
    root = folder(tmp_path / "pets", per_class=10)
    _, config = config_for(tmp_path, root)
    load_folder_datasets(config, one_hot=True)
    image(root / "eel" / "more.png")
    said = []
    load_folder_datasets(config, one_hot=True, log=said.append)  # one more decoded: the store written again
    assert said and "decoding 1 images" in said[0]
    kept = open_folder(config).kept
    pixels = sorted(kept.parent.glob("*.npy"))
    assert len(pixels) == 1 and pixels[0].name.startswith(kept.stem + ".")  # the earlier version's removed
    assert np.load(pixels[0]).shape == (31, 20, 20, 3)

    pixels[0].write_bytes(pixels[0].read_bytes()[:-100])  # cut short
    said.clear()
    load_folder_datasets(config, one_hot=True, log=said.append)
    assert said and "decoding 31 images" in said[0]
    for pixels in kept.parent.glob("*.npy"):
        pixels.unlink()
    said.clear()
    load_folder_datasets(config, one_hot=True, log=said.append)
    assert said and "decoding 31 images" in said[0]


def test_a_runs_recorded_versions_do_not_import_tfds(monkeypatch):
    """A run on a folder never needs TFDS; recording its version reads the package's metadata (importing
    it cost 0.2-0.5 s of a folder run's start)."""
    import sys

    import tensorflow_datasets as tfds

    from cnnzoo.training.run_dir import versions

    for name in [n for n in sys.modules if n == "tensorflow_datasets" or n.startswith("tensorflow_datasets.")]:
        monkeypatch.delitem(sys.modules, name)  # put back after the test
    recorded = versions()
    assert "tensorflow_datasets" not in sys.modules
    assert recorded["tensorflow_datasets"] == tfds.__version__


def test_kept_pixels_a_run_found_are_read_after_another_run_replaced_them(tmp_path):
    """Two runs at once on a folder that grew: the one that writes first removes the pixel file the
    other's index named; the other still reads the pixels it found."""
    from cnnzoo.data import kept_images

    path = tmp_path / "kept.npz"
    first = np.arange(2 * 4 * 4 * 3, dtype=np.uint8).reshape(2, 4, 4, 3)
    assert kept_images.save(path, {"a": (4, 4), "b": (4, 4)}, {}, {"a": 0, "b": 1}, first) is None
    found = kept_images.load(path)  # this run's view: rows a, b
    other = np.zeros((3, 4, 4, 3), np.uint8)
    assert kept_images.save(path, {"a": (4, 4), "b": (4, 4), "c": (4, 4)}, {}, {"a": 0, "b": 1, "c": 2}, other) is None
    assert len(list(tmp_path.glob("*.npy"))) == 1  # the replaced pixel file is gone from the folder
    np.testing.assert_array_equal(found.images(), first)
