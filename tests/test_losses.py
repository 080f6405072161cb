"""Labels follow the loss, not a list of names: every keras.losses loss that fits a classifier trains when
validate accepts it; a model trained on logits reports probabilities (softmax once, outside the graph)."""

from __future__ import annotations

import inspect
import json

import keras
import numpy as np
import pytest

from conftest import TINY, cli, write

LOSSES = sorted(n for n, c in vars(keras.losses).items()
                if inspect.isclass(c) and issubclass(c, keras.losses.Loss) and c is not keras.losses.Loss)
SHORT = ["train.epochs=1", "train.steps_per_epoch=1", "train.pictures=false", "runtime.seed=1"]


@pytest.mark.slow
@pytest.mark.parametrize("loss", LOSSES)
def test_a_loss_validate_accepts_trains(loss, tmp_path):
    validate = cli("validate", TINY, f"train.loss={loss}")
    trained = cli("train", TINY, f"train.loss={loss}", *SHORT, "--output-dir", tmp_path / "r")
    assert validate.returncode == trained.returncode, (validate.stderr[-500:], trained.stderr[-2000:])
    assert validate.returncode in (0, 2) and "Traceback" not in trained.stderr
    if validate.returncode == 2:
        assert [l for l in validate.stderr.splitlines() if "error:" in l] == \
               [l for l in trained.stderr.splitlines() if "error:" in l]


@pytest.mark.slow
def test_mean_squared_error_and_hinge_train_on_one_hot_labels(tmp_path):
    for loss in ("mean_squared_error", "{name: Hinge}"):
        done = cli("train", TINY, f"train.loss={loss}", *SHORT,
                   "--output-dir", tmp_path / loss.strip("{}: ").replace(" ", ""))
        assert done.returncode == 0, done.stderr[-2000:]


@pytest.mark.slow
def test_a_model_trained_on_logits_predicts_and_exports_probabilities(tmp_path):
    config = write(tmp_path / "logits.yaml", f"extends: {TINY}\n"
                   "model:\n  layers:\n    - Conv2D: [8, 3, {activation: relu}]\n    - Flatten\n    - Dense: 10\n"
                   "train:\n  loss: {name: categorical_crossentropy, from_logits: true}\n")
    run = tmp_path / "run"
    assert cli("train", config, *SHORT, "--output-dir", run).returncode == 0
    images = np.random.default_rng(0).integers(0, 255, (3, 28, 28)).astype("uint8")
    np.save(tmp_path / "x.npy", images)
    done = cli("predict", run, tmp_path / "x.npy", "--json", "--top-k", "10")
    assert done.returncode == 0, done.stderr
    for result in json.loads(done.stdout):
        assert sum(t["probability"] for t in result["top"]) == pytest.approx(1.0, abs=1e-5)
    ours = np.array([[t["probability"] for t in sorted(r["top"], key=lambda t: t["class"])]
                     for r in json.loads(done.stdout)])
    assert cli("export", run, "--format", "keras", "-o", tmp_path / "m.keras").returncode == 0
    exported = np.asarray(keras.models.load_model(tmp_path / "m.keras")(images[..., None].astype("float32")))
    np.testing.assert_allclose(exported, ours, atol=1e-5)
    assert cli("export", run, "--format", "onnx", "-o", tmp_path / "m.onnx").returncode == 0
    done = cli("predict", tmp_path / "m.onnx", tmp_path / "x.npy", "--json", "--top-k", "10")  # ONNX Runtime
    assert done.returncode == 0, done.stderr
    onnx = np.array([[t["probability"] for t in sorted(r["top"], key=lambda t: t["class"])]
                     for r in json.loads(done.stdout)])
    np.testing.assert_allclose(onnx, ours, atol=1e-5)
