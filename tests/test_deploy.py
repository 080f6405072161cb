"""evaluate, predict and export on a real trained run; exports load in a process that never imports cnnzoo
(TFLite with LiteRT's interpreter and ONNX with ONNX Runtime, neither importing TensorFlow)."""

from __future__ import annotations

import json
import sys
from importlib import resources

import numpy as np
import pytest
import tensorflow as tf

from cnnzoo import load_config, train
from cnnzoo.data.preprocessing import preprocess_images
from conftest import CONFIGS, TINY, cli, without_cnnzoo, write


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


@pytest.mark.slow
def test_evaluate_reproduces_the_runs_test_metrics(run):
    done = cli("evaluate", str(run.run_dir.path), "--json")
    assert done.returncode == 0, done.stderr[-2000:]
    result = json.loads(done.stdout)
    assert result["split"] == "test"
    assert result["metrics"]["accuracy"] == pytest.approx(run.metrics["test"]["accuracy"], abs=1e-6)
    table = cli("evaluate", str(run.run_dir.path), "--split", "train[:500]")
    assert table.returncode == 0 and "quickstart on mnist_sample train[:500]:" in table.stdout


@pytest.mark.slow
def test_evaluate_traces_the_test_step_once(run, monkeypatch):
    """A loaded model's compiled metrics are built before its first step (created inside it, they made
    tf.function trace the step twice)."""
    import keras

    traced, step = [], keras.Model.test_step
    monkeypatch.setattr(keras.Model, "test_step", lambda self, data: (traced.append(1), step(self, data))[1])
    assert cli("evaluate", str(run.run_dir.path), "--split", "test[:256]").returncode == 0
    assert len(traced) == 1


@pytest.mark.slow
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
    np.save(tmp_path / "rgb.npy", np.zeros((2, 30, 30, 3), np.uint8))  # the shape given is the one said
    bad = cli("predict", str(run.run_dir.path), str(tmp_path / "rgb.npy"), "--json")
    assert "shaped (2, 30, 30, 3), but the model takes raw pixels of shape (28, 28, 1)" in bad.stdout, bad.stdout


LOADED = """
import sys, numpy as np
kind, path, images = sys.argv[1], sys.argv[2], np.load(sys.argv[3]).astype("float32")[..., None]
if kind == "keras":
    import keras
    out = keras.models.load_model(path).predict(images, verbose=0)
elif kind == "savedmodel":
    import tensorflow as tf
    loaded = tf.saved_model.load(path)  # keep a reference: its variables live as long as it does
    out = loaded.serve(tf.constant(images)).numpy()
elif kind == "tflite":
    from ai_edge_litert.interpreter import Interpreter
    runner = Interpreter(model_path=path).get_signature_runner()
    out = next(iter(runner(pixels=images).values()))
else:
    import onnxruntime
    out = onnxruntime.InferenceSession(path, providers=["CPUExecutionProvider"]).run(None, {"pixels": images})[0]
assert not any(name.startswith("cnnzoo") for name in sys.modules), "imported cnnzoo"
assert kind in ("keras", "savedmodel") or "tensorflow" not in sys.modules, "imported TensorFlow"
np.save(sys.argv[4], out)
"""


def exported_without_cnnzoo(fmt: str, target, images: np.ndarray, tmp_path) -> np.ndarray:
    """What the export at `target` gives for raw `images` (N, rows, cols), loaded without cnnzoo (and for
    TFLite and ONNX, in a new Python without TensorFlow)."""
    np.save(tmp_path / "images.npy", images)
    done = without_cnnzoo(LOADED, fmt, target, tmp_path / "images.npy", tmp_path / "out.npy", cwd=tmp_path,
                          fresh=fmt in ("tflite", "onnx"))
    assert done.returncode == 0, done.stderr[-3000:]
    return np.load(tmp_path / "out.npy")


@pytest.mark.slow
def test_a_bfloat16_run_exports_a_float32_model_that_agrees_with_it(test_images, tmp_path):
    config = load_config(TINY, ["train.epochs=1", "train.steps_per_epoch=30", "runtime.seed=5",
                                "train.optimizer={name: adam, learning_rate: 0.01}",  # confident within 30 steps
                                "runtime.precision=mixed_bfloat16", "train.pictures=false"])
    trained = train(config, output_dir=str(tmp_path / "bf16"), log=lambda _: None)
    target = tmp_path / "bf16.tflite"
    done = cli("export", str(trained.run_dir.path), "--format", "tflite", "-o", str(target))
    assert done.returncode == 0, done.stderr[-2000:]  # TFLite cannot convert bfloat16 layers: the export is float32
    images = test_images[0].astype("float32")[..., None]
    from ai_edge_litert.interpreter import Interpreter

    exported = next(iter(Interpreter(model_path=str(target)).get_signature_runner()(pixels=images).values()))
    ours = trained.model.predict(preprocess_images(test_images[0], config.data), verbose=0)
    assert np.abs(exported - ours).max() < 0.05  # float32 against bfloat16 arithmetic
    assert (exported.argmax(1) == ours.argmax(1)).mean() >= 0.95


@pytest.mark.parametrize("fmt,extra,atol", [
    ("keras", [], 1e-6), ("savedmodel", [], 1e-5), ("tflite", [], 1e-4), ("tflite", ["--quantize"], None),
    ("onnx", [], 1e-4),
])
@pytest.mark.slow
def test_exports_loaded_without_cnnzoo_match_it(run, test_images, tmp_path, fmt, extra, atol):
    images, labels = test_images
    target = tmp_path / f"model-{fmt}{'' if fmt == 'savedmodel' else '.' + fmt}"
    done = cli("export", str(run.run_dir.path), "--format", fmt, *extra, "-o", str(target))
    assert done.returncode == 0, done.stderr[-2000:]
    exported = exported_without_cnnzoo(fmt, target, images, tmp_path)
    ours = run.model.predict(preprocess_images(images, load_config(run.run_dir.config).data), verbose=0)
    if atol is not None:
        np.testing.assert_allclose(exported, ours, atol=atol)
    else:  # int8 weights: probabilities move a little, the decisions hardly
        assert np.abs(exported - ours).max() < 0.1
        assert (exported.argmax(1) == ours.argmax(1)).mean() >= 0.97


@pytest.fixture(scope="module")
def all_test_images():
    with resources.files("cnnzoo.data").joinpath("sample", "mnist_sample.npz").open("rb") as f:
        return np.load(f)["x_test"]


@pytest.mark.slow
def test_onnx_vs_keras_export_on_real_test_images(run, all_test_images, tmp_path):
    """ONNX Runtime (in a process without cnnzoo or TensorFlow) against Keras' export, on every test image."""
    import keras

    for fmt in ("keras", "onnx"):
        done = cli("export", run.run_dir.path, "--format", fmt, "-o", tmp_path / f"model.{fmt}")
        assert done.returncode == 0, done.stderr[-2000:]
    onnx_out = exported_without_cnnzoo("onnx", tmp_path / "model.onnx", all_test_images, tmp_path)
    pixels = all_test_images.astype("float32")[..., None]
    keras_out = keras.models.load_model(tmp_path / "model.keras").predict(pixels, verbose=0)
    assert onnx_out.shape == keras_out.shape == (len(all_test_images), 10)
    assert np.array_equal(onnx_out.argmax(1), keras_out.argmax(1))
    assert np.abs(onnx_out - keras_out).max() <= 1e-4
    np.testing.assert_allclose(onnx_out.sum(1), 1.0, atol=1e-5)  # probabilities


@pytest.mark.slow
@pytest.mark.parametrize("fmt", ["onnx", "tflite"])
def test_predict_runs_an_export_without_its_run(run, test_images, tmp_path, fmt):
    """`cnnzoo predict model.onnx|model.tflite`: the export alone (moved out of its run) gives the run's results."""
    images = test_images[0][:5]
    for i in range(2):
        tf.io.write_file(str(tmp_path / f"digit{i}.png"), tf.io.encode_png(images[i][..., None]))
    np.save(tmp_path / "batch.npy", images)
    inputs = [tmp_path / "digit0.png", tmp_path / "digit1.png", tmp_path / "batch.npy"]
    target = tmp_path / "alone" / f"model.{fmt}"
    assert cli("export", run.run_dir.path, "--format", fmt, "-o", target).returncode == 0
    from_run = cli("predict", run.run_dir.path, *inputs, "--json", "--top-k", "10")
    from_export = cli("predict", target, *inputs, "--json", "--top-k", "10")
    assert from_export.returncode == 0, from_export.stderr[-2000:]
    ours, theirs = json.loads(from_run.stdout), json.loads(from_export.stdout)
    assert [r["input"] for r in theirs] == [r["input"] for r in ours] and len(theirs) == 7
    for a, b in zip(ours, theirs):
        assert b["top"][0]["class"] == a["top"][0]["class"]
        assert sorted((t["class"], t["name"]) for t in b["top"]) == sorted((t["class"], t["name"]) for t in a["top"])
        by_class = {t["class"]: t["probability"] for t in a["top"]}
        assert max(abs(t["probability"] - by_class[t["class"]]) for t in b["top"]) <= 1e-4
    config = cli("predict", target, inputs[0], "--config", run.run_dir.config)
    assert config.returncode == 2 and "--config goes with a .keras file" in config.stderr
    if fmt == "onnx":  # an ONNX file from elsewhere: its input size is unknown
        import onnx

        proto = onnx.load(str(target))
        del proto.metadata_props[:]
        onnx.save(proto, str(tmp_path / "other.onnx"))
        other = cli("predict", tmp_path / "other.onnx", inputs[0])
        assert other.returncode == 2 and "has no cnnzoo metadata" in other.stderr


@pytest.mark.parametrize("module,command,fmt", [
    ("tf2onnx", "export", "onnx"), ("onnxruntime", "export", "onnx"),
    ("onnxruntime", "predict", "onnx"), ("ai_edge_litert", "predict", "tflite"),
])
@pytest.mark.slow
def test_a_missing_optional_package_is_named_with_its_extra(run, test_images, tmp_path, monkeypatch, module, command,
                                                            fmt):
    """Without the optional packages, `export --format onnx` and `predict` of an export say what to install."""
    target = tmp_path / f"model.{fmt}"
    np.save(tmp_path / "images.npy", test_images[0][:2])
    if command == "predict":
        assert cli("export", run.run_dir.path, "--format", fmt, "-o", target).returncode == 0
    monkeypatch.setitem(sys.modules, module, None)  # `import module` now raises ImportError, as when not installed
    if command == "predict":
        done = cli("predict", target, tmp_path / "images.npy")
    else:
        done = cli("export", run.run_dir.path, "--format", fmt, "-o", target)
        assert not target.exists()
    assert done.returncode == 2 and "Traceback" not in done.stderr
    extra = "litert" if module == "ai_edge_litert" else "onnx"
    assert f"needs {module}" in done.stderr and f"pip install 'cnnzoo[{extra}]'" in done.stderr


@pytest.mark.slow
def test_export_paths_it_cannot_write_and_exported_models_given_as_runs_are_refused(run, tmp_path):
    """Each exits 2 with its reason and no traceback, and nothing of another kind is overwritten."""
    photos = tmp_path / "photos"
    photos.mkdir()
    (photos / "a.jpg").write_bytes(b"\xff\xd8\xff")
    cases = [("keras", tmp_path / "model.onnx", "--format keras writes a .keras file"),
             ("tflite", photos, "is a folder; --format tflite writes one file"),
             ("savedmodel", photos, "a folder holding other files"),
             ("keras", photos / "a.jpg" / "m.keras", "cannot write"),
             ("onnx", photos / "a.jpg", "--format onnx writes a .onnx file"),
             ("keras", run.run_dir.path / "model.keras", "that is the run's own folder")]
    model = (run.run_dir.path / "model.keras").read_bytes()
    for fmt, target, said in cases:
        done = cli("export", run.run_dir.path, "--format", fmt, "-o", target)
        assert done.returncode == 2 and "Traceback" not in done.stderr and said in done.stderr, done.stderr
    assert sorted(p.name for p in photos.iterdir()) == ["a.jpg"] and (photos / "a.jpg").read_bytes() == b"\xff\xd8\xff"
    assert (run.run_dir.path / "model.keras").read_bytes() == model

    exported = cli("export", run.run_dir.path, "--format", "keras")  # into the run: run/export/<name>.keras
    assert exported.returncode == 0, exported.stderr
    model = next((run.run_dir.path / "export").glob("*.keras"))
    for command in (["predict", model, tmp_path / "photos" / "a.jpg"], ["evaluate", model],
                    ["export", model, "--format", "onnx"]):
        done = cli(*command)
        assert done.returncode == 2 and "is an export" in done.stderr and "Traceback" not in done.stderr, done.stderr


@pytest.mark.slow
def test_a_run_that_did_not_complete_points_at_its_resume_and_its_last_checkpoint(run, tmp_path):
    import shutil

    killed = tmp_path / "killed"
    shutil.copytree(run.run_dir.path, killed)
    (killed / "model.keras").unlink()  # as a run stopped before its end leaves it
    done = cli("evaluate", killed)
    assert done.returncode == 2 and "has no model.keras: it did not complete" in done.stderr, done.stderr
    assert f"cnnzoo train --resume {killed}" in done.stderr and str(killed / "checkpoints" / "last.keras") in done.stderr


@pytest.mark.slow
def test_a_config_another_model_was_trained_with_is_refused(run, tmp_path):
    other = write(tmp_path / "other.yaml", f"extends: {CONFIGS / 'quickstart.yaml'}\ndata:\n"
                  "  preprocessing: {resize: [24, 24]}\n")
    done = cli("predict", run.run_dir.model, "--config", other, tmp_path / "x.png")
    assert done.returncode == 2 and "not the config this model was trained with" in done.stderr, done.stderr


def test_a_missing_export_or_a_file_that_is_no_keras_model_is_said_as_such(tmp_path):
    done = cli("predict", tmp_path / "missing.onnx", tmp_path / "x.png")
    assert done.returncode == 2 and "no such file" in done.stderr and "cnnzoo export" in done.stderr, done.stderr
    (tmp_path / "garbage.keras").write_text("not a model")
    done = cli("predict", tmp_path / "garbage.keras", "--config", CONFIGS / "quickstart.yaml", tmp_path / "x.png")
    assert done.returncode == 2 and "is not a Keras model file" in done.stderr, done.stderr
