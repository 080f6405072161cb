"""`cnnzoo predict` on folders of real photos (any size, colour, bad files), and exports that take raw photos.

The exports are loaded in a process that never imports cnnzoo, as a deployment would, and fed
PNG files of another size than the model's; they must agree with `cnnzoo predict` on the same files.
"""

from __future__ import annotations

import csv
import json
import os
import shutil
from importlib import resources
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from cnnzoo import load_config, train
from cnnzoo.data.catalog import class_names
from cnnzoo.data.image_decode import decode
from cnnzoo.data.preprocessing import preprocess_images
from cnnzoo.deploy.runs import class_names_of
from conftest import TINY, cli, without_cnnzoo, write

NAMES = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"]


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """A short run on the quickstart's digits (28x28x1, normalised inputs) whose classes.json names them."""
    config = load_config(TINY, [
        "train.epochs=1", "train.steps_per_epoch=30", "runtime.seed=8", "runtime.precision=float32",
        "train.optimizer={name: adam, learning_rate: 0.01}",  # confident within 30 steps
        "data.preprocessing={mean: [0.13], std: [0.31]}", "train.pictures=false"])
    trained = train(config, output_dir=str(tmp_path_factory.mktemp("predict") / "run"), log=lambda _: None)
    (trained.run_dir.path / "classes.json").write_text(json.dumps({"class_names": NAMES}))
    return trained


@pytest.fixture(scope="module")
def digits():
    with resources.files("cnnzoo.data").joinpath("sample", "mnist_sample.npz").open("rb") as f:
        return np.load(f)["x_test"][:8]


def gray(digit: np.ndarray, cols: int, rows: int) -> Image.Image:
    return Image.fromarray(digit).resize((cols, rows), Image.BILINEAR)


def colour(digit: np.ndarray, cols: int, rows: int) -> Image.Image:
    """A digit as a colour photo: different strokes in each channel, so the grey conversion matters."""
    d = np.asarray(gray(digit, cols, rows), "float32")
    ramp = np.linspace(0, 60, cols, dtype="float32")[None, :]
    return Image.fromarray(np.stack([d, 0.7 * d + ramp, 0.4 * d], -1).clip(0, 255).astype("uint8"))


@pytest.fixture(scope="module")
def photos(tmp_path_factory, digits):
    """Good images of several sizes and formats in subfolders, a text file and an empty file named as
    images, and files users never meant as data (hidden, macOS litter, a notes file)."""
    folder = tmp_path_factory.mktemp("photos") / "photos"
    (folder / "sub" / "deeper").mkdir(parents=True)
    Image.fromarray(digits[0]).save(folder / "a.png")
    colour(digits[1], 60, 45).save(folder / "b.png")
    gray(digits[2], 33, 70).save(folder / "sub" / "c.bmp")
    colour(digits[3], 100, 80).save(folder / "sub" / "deeper" / "d.jpg", quality=95)
    (folder / "bad.jpg").write_text("not a photo")
    (folder / "empty.png").write_bytes(b"")
    write(folder / "notes.txt", "taken on holiday")
    (folder / ".DS_Store").write_bytes(b"\0\0\0\1Bud1")
    shutil.copy(folder / "a.png", folder / "._a.png")
    (folder / ".thumbnails").mkdir()
    shutil.copy(folder / "a.png", folder / ".thumbnails" / "a.png")
    return folder


GOOD = ["a.png", "b.png", "sub/c.bmp", "sub/deeper/d.jpg"]
BAD = {"bad.jpg": "not an image", "empty.png": "empty file"}


def expected(run, path: Path) -> np.ndarray:
    """The run's probabilities for one file: decoded, resized in float as a catalogue run's pipeline
    resizes (no rounding: its images were never kept as whole values), then its preprocessing."""
    import tensorflow as tf

    pixels = tf.image.resize(decode(path, channels=1)[None].astype("float32"), (28, 28))
    return run.model.predict(preprocess_images(pixels, load_config(run.run_dir.config).data), verbose=0)[0]


@pytest.mark.slow
def test_a_folder_gives_one_csv_row_per_image_bad_files_with_their_reason(run, photos, tmp_path):
    out = tmp_path / "out.csv"
    done = cli("predict", run.run_dir.path, photos, "--csv", out, "--top-k", "2")
    assert done.returncode == 0, done.stderr[-2000:]
    assert "4 of 6 images predicted; 2 could not be read" in done.stderr
    with out.open(newline="") as f:
        rows = list(csv.reader(f))
    assert rows[0] == ["path", "class_1", "probability_1", "class_2", "probability_2", "error"]
    by_path = {row[0]: row for row in rows[1:]}
    assert sorted(by_path) == sorted(str(photos / name) for name in [*GOOD, *BAD])  # nothing hidden, no notes
    assert [row[0] for row in rows[1:]] == sorted(by_path, key=lambda p: Path(p).relative_to(photos).parts)
    for name, reason in BAD.items():
        assert by_path[str(photos / name)][1:] == ["", "", "", "", reason]
    for name in GOOD:
        row, p = by_path[str(photos / name)], expected(run, photos / name)
        best = np.argsort(p)[::-1][:2]
        assert row[1::2][:2] == [NAMES[c] for c in best] and row[-1] == ""
        np.testing.assert_allclose([float(v) for v in row[2:5:2]], p[best], atol=1e-6)


@pytest.mark.slow
def test_text_and_json_output_name_bad_files_and_keep_going(run, photos):
    text = cli("predict", run.run_dir.path, photos / "bad.jpg", photos / "b.png", "--top-k", "1")
    assert text.returncode == 0, text.stderr[-2000:]
    lines = text.stdout.splitlines()
    assert lines[0] == f"{photos / 'bad.jpg'}: not predicted: not an image"
    assert lines[1].startswith(f"{photos / 'b.png'}: {NAMES[int(np.argmax(expected(run, photos / 'b.png')))]} ")
    results = json.loads(cli("predict", run.run_dir.path, photos, "--json").stdout)
    assert [r["error"] for r in results] == [None, None, "not an image", "empty file", None, None]  # sorted
    assert all(len(r["top"]) == 3 for r in results if r["error"] is None)


@pytest.mark.slow
def test_chunks_change_nothing(run, photos, monkeypatch):
    """A folder is predicted CHUNK images at a time (bad files included in the count): same results."""
    import cnnzoo.deploy.predict

    whole = json.loads(cli("predict", run.run_dir.path, photos, "--json").stdout)
    monkeypatch.setattr(cnnzoo.deploy.predict, "CHUNK", 2)  # [a, b], [bad, empty]: none good, [c, d]
    chunked = json.loads(cli("predict", run.run_dir.path, photos, "--json").stdout)
    assert [r["input"] for r in chunked] == [r["input"] for r in whole]
    for one, other in zip(chunked, whole):
        assert [t["class"] for t in one["top"]] == [t["class"] for t in other["top"]]
        np.testing.assert_allclose([t["probability"] for t in one["top"]], [t["probability"] for t in other["top"]],
                                   atol=1e-6)


@pytest.mark.slow
def test_nothing_predicted_is_an_error_without_a_traceback(run, photos, tmp_path):
    only_bad = cli("predict", run.run_dir.path, photos / "bad.jpg", photos / "empty.png")
    assert only_bad.returncode == 2 and "none of the 2 images could be read" in only_bad.stderr
    one_bad = cli("predict", run.run_dir.path, photos / "bad.jpg")
    assert one_bad.returncode == 2 and "the image could not be read" in one_bad.stderr, one_bad.stderr
    (tmp_path / "empty" / ".hidden").mkdir(parents=True)
    shutil.copy(photos / "a.png", tmp_path / "empty" / ".hidden" / "a.png")
    empty = cli("predict", run.run_dir.path, tmp_path / "empty")
    assert empty.returncode == 2 and "no images in folder" in empty.stderr
    for args in (["--top-k", "0"], ["--csv", tmp_path / "no" / "such" / "dir.csv"]):
        done = cli("predict", run.run_dir.path, photos, *args)
        assert done.returncode == 2 and "Traceback" not in done.stderr and done.stderr.startswith("error:")


@pytest.mark.slow
def test_class_names_come_from_classes_json_else_the_catalogue(run, tmp_path):
    config = load_config(run.run_dir.config)
    assert class_names_of(str(run.run_dir.path), config) == NAMES
    older = tmp_path / "older"  # a run from before classes.json
    older.mkdir()
    for name in ("config.yaml", "run.json", "model.keras"):
        shutil.copy(run.run_dir.path / name, older / name)
    assert class_names_of(str(older / "model.keras"), config) == class_names(config)


LOADED = """
import sys, numpy as np
from PIL import Image
kind, model, photo, out = sys.argv[1:]
pixels = np.asarray(Image.open(photo), dtype="float32")  # raw, as the file holds them: any size
pixels = (pixels[..., None] if pixels.ndim == 2 else pixels)[None]
if kind == "keras":
    import keras
    loaded = keras.models.load_model(model)
    probabilities = loaded(pixels).numpy()  # called directly: Dropout must stay off
    assert np.array_equal(probabilities, loaded(pixels).numpy())
elif kind == "savedmodel":
    import tensorflow as tf
    loaded = tf.saved_model.load(model)  # keep a reference: its variables live as long as it does
    probabilities = loaded.serve(tf.constant(pixels)).numpy()
elif kind == "tflite":
    from ai_edge_litert.interpreter import Interpreter
    interpreter = Interpreter(model_path=model)
    assert list(interpreter.get_input_details()[0]["shape_signature"][1:3]) == [-1, -1]
    probabilities = next(iter(interpreter.get_signature_runner()(pixels=pixels).values()))
else:
    import onnxruntime
    session = onnxruntime.InferenceSession(model, providers=["CPUExecutionProvider"])
    assert [isinstance(d, str) for d in session.get_inputs()[0].shape] == [True, True, True, False]  # N, rows, cols
    probabilities = session.run(None, {"pixels": pixels})[0]
assert not any(name.startswith("cnnzoo") for name in sys.modules), "imported cnnzoo"
np.save(out, probabilities[0])
"""


def deployed(fmt: str, model: Path, photo: Path, tmp_path: Path) -> np.ndarray:
    """The probabilities an export gives for a photo file, in a process without cnnzoo."""
    done = without_cnnzoo(LOADED, fmt, model, photo, tmp_path / "p.npy", cwd=tmp_path, fresh=fmt in ("tflite", "onnx"))
    assert done.returncode == 0, done.stderr[-3000:]
    return np.load(tmp_path / "p.npy")


def predicted(*args) -> np.ndarray:
    """`cnnzoo predict`'s probabilities of every class for one file."""
    done = cli("predict", *args, "--json", "--top-k", "10")
    assert done.returncode == 0, done.stderr[-2000:]
    top = json.loads(done.stdout)[0]["top"]
    return np.array([t["probability"] for t in sorted(top, key=lambda t: t["class"])])


def agree(exported: np.ndarray, ours: np.ndarray) -> None:
    assert exported.argmax() == ours.argmax()
    np.testing.assert_allclose(exported, ours, atol=1e-5)  # one definition: float rounding apart, the same pixels


@pytest.mark.slow
@pytest.mark.parametrize("fmt", ["keras", "savedmodel", "tflite", "onnx"])
def test_an_export_fed_a_raw_photo_of_another_size_agrees_with_predict(run, photos, tmp_path, fmt):
    target = tmp_path / ("model" if fmt == "savedmodel" else f"model.{fmt}")
    done = cli("export", run.run_dir.path, "--format", fmt, "-o", target)
    assert done.returncode == 0, done.stderr[-2000:]
    photo = photos / "sub" / "c.bmp"  # 33x70 grayscale, for a 28x28x1 model
    agree(deployed(fmt, target, photo, tmp_path), predicted(run.run_dir.path, photo))


@pytest.mark.slow
@pytest.mark.parametrize("fmt", ["keras", "tflite", "onnx"])
def test_a_run_on_own_photos_exports_a_model_taking_rgb_photos(run, photos, tmp_path, fmt):
    """A `data.path` run with `color_mode: grayscale`: the export takes 3 channels and converts them as
    training did, so it agrees with `predict` on a 60x45 colour PNG; so does `predict` with the export."""
    own = write(tmp_path / "own.yaml", f"extends: {run.run_dir.config}\ndata:\n  path: {photos}\n"
                "  color_mode: grayscale\n")
    target = tmp_path / f"model.{fmt}"
    done = cli("export", run.run_dir.model, "--config", own, "--format", fmt, "-o", target)
    assert done.returncode == 0, done.stderr[-2000:]
    photo = photos / "b.png"  # 60x45 RGB
    assert np.asarray(Image.open(photo)).shape == (45, 60, 3)
    ours = predicted(run.run_dir.model, "--config", own, photo)
    agree(deployed(fmt, target, photo, tmp_path), ours)
    if fmt != "keras":  # read as RGB at the model's size, converted to gray inside the export; the run's names
        agree(predicted(target, photo), ours)
        top = json.loads(cli("predict", target, photo, "--json").stdout)[0]["top"][0]
        assert top["name"] == NAMES[int(ours.argmax())]


@pytest.mark.slow
def test_links_pipes_and_odd_names_in_a_folder_are_rows_with_their_reason(run, photos, tmp_path):
    folder = tmp_path / "odd"
    folder.mkdir()
    shutil.copy(photos / "a.png", folder / "a.png")
    shutil.copy(photos / "b.png", folder / os.fsdecode(b"caf\xe9.png"))  # a name that is not UTF-8
    os.symlink(tmp_path / "nowhere.jpg", folder / "broken.jpg")
    os.mkfifo(folder / "pipe.jpg")  # opened, it would wait for a writer forever
    os.symlink(photos / "sub", folder / "linked")  # not followed, as training does not follow it
    out = tmp_path / "out.csv"
    done = cli("predict", run.run_dir.path, folder, "--csv", out)
    assert done.returncode == 0 and "1 of 5 images predicted; 4 could not be read" in done.stderr, done.stderr
    with out.open(newline="") as f:
        reasons = {row["path"]: row["error"] for row in csv.DictReader(f)}
    assert reasons == {f"{folder}/a.png": "", f"{folder}/broken.jpg": "a broken link",
                       f"{folder}/caf\\xe9.png": "its name is not UTF-8 (rename the file)",
                       f"{folder}/linked": "a link to a folder (not followed)", f"{folder}/pipe.jpg": "not a regular file"}
    done = cli("predict", run.run_dir.path, folder / os.fsdecode(b"caf\xe9.png"), "--csv", out)  # named itself
    assert done.returncode == 2 and "Traceback" not in done.stderr, done.stderr
    assert "its name is not UTF-8" in out.read_text()
    shutil.copy(folder / "a.png", tmp_path / "v1.png")
    done = cli("predict", run.run_dir.path, "--csv", tmp_path / "v1.png", tmp_path / "b.png")  # --csv's value
    assert done.returncode == 2 and "would overwrite that image" in done.stderr, done.stderr
    assert (tmp_path / "v1.png").read_bytes() == (folder / "a.png").read_bytes()


@pytest.mark.slow
def test_an_rgb_folder_runs_export_rounds_half_way_pixels_as_training_did(digits, tmp_path):
    """A resize lands pixels exactly half-way between two levels (a weight of 1/2 on neighbours an odd
    number apart); TFLite's and ONNX Runtime's resize put such a value a float's width either side, so
    the rounding must not hinge on it."""
    for label in range(3):
        (tmp_path / "shots" / str(label)).mkdir(parents=True)
        for i in range(8):
            colour(digits[(label + i) % 8], 28 + 7 * i, 28 + 5 * i).save(tmp_path / "shots" / str(label) / f"{i}.png")
    config = write(tmp_path / "rgb.yaml", f"""
model:
  name: rgb_net
  layers: [{{Conv2D: [8, 3, {{activation: relu}}]}}, Flatten, {{Dense: 3}}, {{Activation: softmax}}]
data:
  path: {tmp_path / 'shots'}
  preprocessing: {{resize: [30, 30]}}
  data_dir: {tmp_path / 'tfds'}
  validation_split: null
  test_split: 0.2
train: {{epochs: 1, optimizer: {{name: adam, learning_rate: 0.01}}, pictures: false}}
runtime: {{seed: 3}}
""")
    assert cli("train", config, "--output-dir", tmp_path / "run").returncode == 0
    photo = tmp_path / "photo.png"
    colour(digits[5], 20, 20).save(photo)  # 20x20 to 30x30: a third of the rows and columns weigh 1/2 and 1/2
    ours = predicted(tmp_path / "run", photo)
    for fmt in ("tflite", "onnx"):
        target = tmp_path / f"model.{fmt}"
        assert cli("export", tmp_path / "run", "--format", fmt, "-o", target).returncode == 0
        agree(deployed(fmt, target, photo, tmp_path), ours)
