"""evaluate, predict and export on a real trained run; exports load in a process that never imports cnnzoo."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from importlib import resources

import numpy as np
import pytest
import tensorflow as tf

from cnnzoo import load_config, train
from cnnzoo.data.preprocessing import preprocess_images
from conftest import CONFIGS, cli


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """The slide's net on the bundled sample, 1 epoch, normalised inputs (so preprocessing matters).

    float32, so the exports (always float32) can be compared with it at tight tolerances.
    """
    config = load_config(CONFIGS / "quickstart.yaml", [
        "train.epochs=1", "runtime.seed=21", "data.preprocessing={mean: [0.13], std: [0.31]}",
        "runtime.precision=float32"])
    return train(config, output_dir=str(tmp_path_factory.mktemp("deploy") / "run"), log=lambda _: None)


@pytest.fixture(scope="module")
def test_images():
    with resources.files("cnnzoo.data").joinpath("sample", "mnist_sample.npz").open("rb") as f:
        arrays = np.load(f)
        return arrays["x_test"][:100], arrays["y_test"][:100]


def test_evaluate_reproduces_the_runs_test_metrics(run):
    done = cli("evaluate", str(run.run_dir.path), "--json")
    assert done.returncode == 0, done.stderr[-2000:]
    result = json.loads(done.stdout)
    assert result["split"] == "test"
    assert result["metrics"]["accuracy"] == pytest.approx(run.metrics["test"]["accuracy"], abs=1e-6)
    table = cli("evaluate", str(run.run_dir.path), "--split", "train[:500]")
    assert table.returncode == 0 and "quickstart on mnist_sample train[:500]:" in table.stdout


def test_predict_png_and_npy_with_the_runs_preprocessing(run, test_images, tmp_path):
    images, labels = test_images
    for i in range(3):
        tf.io.write_file(str(tmp_path / f"digit{i}.png"), tf.io.encode_png(images[i][..., None]))
    np.save(tmp_path / "batch.npy", images[:3])
    done = cli("predict", str(run.run_dir.path), *(str(tmp_path / f"digit{i}.png") for i in range(3)),
                   str(tmp_path / "batch.npy"), "--json", "--top-k", "2")
    assert done.returncode == 0, done.stderr[-2000:]
    results = json.loads(done.stdout)
    assert len(results) == 6 and all(len(r["top"]) == 2 for r in results)
    expected = run.model.predict(preprocess_images(images[:3], load_config(run.run_dir.config).data), verbose=0)
    for i in range(3):
        for result in (results[i], results[3 + i]):  # the PNG and the .npy row agree with the model
            assert result["top"][0]["class"] == int(np.argmax(expected[i]))
            assert result["top"][0]["probability"] == pytest.approx(float(expected[i].max()), abs=1e-5)
    bad = cli("predict", str(run.run_dir.path), str(tmp_path / "missing.png"))
    assert bad.returncode == 2 and "no such file" in bad.stderr


FRESH_PROCESS = """
import sys, numpy as np
kind, path, images = sys.argv[1], sys.argv[2], np.load(sys.argv[3]).astype("float32")[..., None]
if kind == "keras":
    import keras
    out = keras.models.load_model(path).predict(images, verbose=0)
elif kind == "savedmodel":
    import tensorflow as tf
    loaded = tf.saved_model.load(path)  # keep a reference: its variables live as long as it does
    out = loaded.serve(tf.constant(images)).numpy()
else:
    import tensorflow as tf
    interpreter = tf.lite.Interpreter(model_path=path)
    runner = interpreter.get_signature_runner()
    out = next(iter(runner(pixels=images).values()))
assert not any(name.startswith("cnnzoo") for name in sys.modules), "imported cnnzoo"
np.save(sys.argv[4], out)
"""


def test_a_bfloat16_run_exports_a_float32_model_that_agrees_with_it(test_images, tmp_path):
    config = load_config(CONFIGS / "quickstart.yaml", ["train.epochs=1", "train.steps_per_epoch=30", "runtime.seed=5",
                                                       "runtime.precision=mixed_bfloat16"])
    trained = train(config, output_dir=str(tmp_path / "bf16"), log=lambda _: None)
    target = tmp_path / "bf16.tflite"
    done = cli("export", str(trained.run_dir.path), "--format", "tflite", "-o", str(target))
    assert done.returncode == 0, done.stderr[-2000:]  # TFLite cannot convert bfloat16 layers: the export is float32
    images = test_images[0].astype("float32")[..., None]
    runner = tf.lite.Interpreter(model_path=str(target)).get_signature_runner()
    exported = next(iter(runner(pixels=images).values()))
    ours = trained.model.predict(preprocess_images(test_images[0], config.data), verbose=0)
    assert np.abs(exported - ours).max() < 0.05  # float32 against bfloat16 arithmetic
    assert (exported.argmax(1) == ours.argmax(1)).mean() >= 0.95


@pytest.mark.parametrize("fmt,extra,atol", [
    ("keras", [], 1e-6), ("savedmodel", [], 1e-5), ("tflite", [], 1e-4), ("tflite", ["--quantize"], None),
])
def test_exports_match_cnnzoo_in_a_fresh_process(run, test_images, tmp_path, fmt, extra, atol):
    images, labels = test_images
    target = tmp_path / f"model-{fmt}{'.keras' if fmt == 'keras' else '.tflite' if fmt == 'tflite' else ''}"
    done = cli("export", str(run.run_dir.path), "--format", fmt, *extra, "-o", str(target))
    assert done.returncode == 0, done.stderr[-2000:]
    np.save(tmp_path / "images.npy", images)
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    fresh = subprocess.run([sys.executable, "-c", FRESH_PROCESS, fmt, str(target), str(tmp_path / "images.npy"),
                            str(tmp_path / "out.npy")], capture_output=True, text=True, timeout=300, env=env,
                           cwd=tmp_path)
    assert fresh.returncode == 0, fresh.stderr[-3000:]
    exported = np.load(tmp_path / "out.npy")
    ours = run.model.predict(preprocess_images(images, load_config(run.run_dir.config).data), verbose=0)
    if atol is not None:
        np.testing.assert_allclose(exported, ours, atol=atol)
    else:  # int8 weights: probabilities move a little, the decisions hardly
        assert np.abs(exported - ours).max() < 0.1
        assert (exported.argmax(1) == ours.argmax(1)).mean() >= 0.97
