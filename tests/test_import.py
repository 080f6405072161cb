"""`cnnzoo import`: existing Keras models become configs that build the same graph, so the
same weights give the same outputs."""

from __future__ import annotations

import importlib
import re

import keras
import numpy as np
import pytest

from conftest import cli
from cnnzoo import build_model, load_config
from cnnzoo.deploy.keras_import import import_model
from cnnzoo.errors import CnnzooError


def _branchy() -> keras.Model:
    inputs = keras.Input((16, 16, 3))
    x = keras.layers.Conv2D(8, 3, padding="same", activation="relu")(inputs)
    a = keras.layers.MaxPooling2D(3, strides=2, padding="same")(x)
    b = keras.layers.Conv2D(8, 1, strides=2)(x)
    x = keras.layers.Concatenate()([a, b])
    x = keras.layers.GlobalAveragePooling2D()(x)
    return keras.Model(inputs, keras.layers.Dense(4, activation="softmax")(x), name="branchy")


def _same_outputs(original: keras.Model, config_path) -> float:
    rebuilt = build_model(load_config(config_path))
    rebuilt.set_weights(original.get_weights())
    x = np.random.default_rng(1).random((3, *original.input_shape[1:]), np.float32)
    return float(np.max(np.abs(np.asarray(original(x)) - np.asarray(rebuilt(x)))))


@pytest.mark.slow
def test_a_keras_application_imports_with_its_classifier_and_equal_outputs(tmp_path):
    """As built by default: at its own size, with the classifier (test_import_applications.py imports
    every family without it, InceptionV3 among them)."""
    report = import_model("keras.applications.MobileNetV2", str(tmp_path / "m.yaml"))
    assert report["params"] == report["params_keras"]
    assert report["max_difference"] <= 1e-5
    text = (tmp_path / "m.yaml").read_text()
    assert "inputs: [" in text  # its merges name their inputs


@pytest.mark.parametrize("suffix", [".json", ".keras", ".h5"])
def test_files_import_with_equal_outputs(suffix, tmp_path):
    model = _branchy()
    source = tmp_path / f"model{suffix}"
    if suffix == ".json":
        source.write_text(model.to_json())
    else:
        model.save(source)
    done = cli("import", source, "-o", tmp_path / "m.yaml")
    assert done.returncode == 0, done.stderr
    assert "4 layers" not in done.stdout and "parameters (Keras: " in done.stdout
    text = (tmp_path / "m.yaml").read_text()
    assert "strides: [2, 2]" in text and "inputs: [max_pooling2d" in text
    loaded = keras.models.load_model(source) if suffix != ".json" else model
    assert _same_outputs(loaded, tmp_path / "m.yaml") <= 1e-6


def _model_function(tmp_path, monkeypatch, module: str, middle: str, head: str) -> str:
    """`module:build` for a module that builds an 8x8x1 model: `middle` maps `inputs` to `x`."""
    (tmp_path / f"{module}.py").write_text(
        f"import keras\n\ndef build():\n    inputs = keras.Input((8, 8, 1))\n    x = {middle}\n"
        f"    return keras.Model(inputs, {head})\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    return f"{module}:build"


def test_a_function_returning_a_model_imports(tmp_path, monkeypatch):
    source = _model_function(tmp_path, monkeypatch, "my_models", "keras.layers.Flatten()(keras.layers.Conv2D(2, 3)(inputs))",
                             "keras.layers.Dense(3, activation='softmax')(x)")
    report = import_model(source, str(tmp_path / "m.yaml"))
    assert report["params"] == report["params_keras"] == 2 * 9 + 2 + 36 * 2 * 3 + 3
    assert "inputs" not in (tmp_path / "m.yaml").read_text()  # a chain stays a plain list


def test_a_lambda_layer_is_named_with_its_place_and_nothing_is_written(tmp_path, monkeypatch):
    source = _model_function(tmp_path, monkeypatch, "with_lambda", "keras.layers.Lambda(lambda t: t * 2, name='double')(inputs)",
                             "keras.layers.Dense(2)(keras.layers.Flatten()(x))")
    target = tmp_path / "m.yaml"
    with pytest.raises(CnnzooError, match="layer 1 of 3, `double` is a .*Lambda, not a keras.layers class"):
        import_model(source, str(target))
    assert not target.exists()


@pytest.mark.slow
def test_resnet50_imports_as_stages_of_one_bottleneck_block(tmp_path):
    done = cli("import", "keras.applications.ResNet50", "-o", tmp_path / "r.yaml")
    assert done.returncode == 0, done.stderr
    assert "176 layers as 60 items; 4 stages of 1 block (conv2 x2, conv3 x3, conv4 x5, conv5 x2)" in done.stdout
    assert "25,636,712 parameters (Keras: 25,636,712)" in done.stdout
    config = load_config(tmp_path / "r.yaml")
    stages = [item["stage"] for item in config.model.layers if isinstance(item, dict) and "stage" in item]
    assert [(s["name"], s["repeat"], s["filters"], s["filters_2"]) for s in stages] == [
        ("conv2", 2, 64, 256), ("conv3", 3, 128, 512), ("conv4", 5, 256, 1024), ("conv5", 2, 512, 2048)]
    (block,) = config.model.blocks.values()
    assert [next(iter(layer)) for layer in block.layers] == [
        "Conv2D", "BatchNormalization", "Activation", "Conv2D", "BatchNormalization", "Activation",
        "Conv2D", "BatchNormalization", "Add", "Activation"]
    # The projection block after a stage takes the stage's output by the stage's name.
    assert "inputs: conv2\n" in (tmp_path / "r.yaml").read_text()
    assert _same_outputs(keras.applications.ResNet50(weights=None), tmp_path / "r.yaml") == 0.0


def test_flat_import_and_a_dense_chain_of_repeats(tmp_path, monkeypatch):
    # Three identical conv-BN-ReLU units, then a pool: one stage of three; --flat keeps every layer.
    unit = "x = keras.layers.Activation('relu')(keras.layers.BatchNormalization()(keras.layers.Conv2D(4, 3, padding='same')(x)))"
    (tmp_path / "units.py").write_text(
        "import keras\n\ndef build():\n    inputs = keras.Input((8, 8, 1))\n    x = inputs\n"
        + "".join(f"    {unit}\n" for _ in range(3))
        + "    return keras.Model(inputs, keras.layers.Dense(2)(keras.layers.GlobalAveragePooling2D()(x)))\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    report = import_model("units:build", str(tmp_path / "s.yaml"))
    assert [(s["repeat"], report["blocks"], report["items"]) for s in report["stages"]] == [(3, 1, 3)]
    assert report["max_difference"] <= 1e-6 and report["params"] == report["params_keras"]
    flat = import_model("units:build", str(tmp_path / "f.yaml"), blocks=False)
    assert (flat["stages"], flat["items"]) == ([], 11)


def test_an_open_size_import_keeps_its_size_open_and_trains_at_the_resize(tmp_path, monkeypatch):
    # keras.applications without its classifier takes any size: Input((None, None, 3)), then global pooling.
    source = _model_function(tmp_path, monkeypatch, "open_size", "keras.layers.Conv2D(4, 5)(inputs)",
                             "keras.layers.Dense(3, activation='softmax')(keras.layers.GlobalAveragePooling2D()(x))")
    (tmp_path / "open_size.py").write_text((tmp_path / "open_size.py").read_text().replace("(8, 8, 1)", "(None, None, 1)"))
    done = cli("import", source, "-o", tmp_path / "m.yaml", "--check-size", "12")
    assert done.returncode == 0, done.stderr
    assert "within 0.0e+00 at 12x12" in done.stdout and "training needs data.preprocessing.resize" in done.stdout
    text = (tmp_path / "m.yaml").read_text()
    assert "input_shape: [null, null, 1]" in text
    rebuilt = build_model(load_config(tmp_path / "m.yaml"))
    assert rebuilt.input_shape == (None, None, None, 1)
    original = importlib.import_module("open_size").build()  # the same weights give the same outputs at any size
    rebuilt.set_weights(original.get_weights())
    for rows, cols in [(9, 9), (20, 14)]:
        x = np.random.default_rng(rows).random((2, rows, cols, 1), np.float32)
        assert np.array_equal(np.asarray(original(x)), np.asarray(rebuilt(x)))

    # Training needs a size: data.preprocessing.resize sets it, or a fixed model.input_shape.
    config = tmp_path / "train.yaml"
    config.write_text(f"extends: {tmp_path / 'm.yaml'}\nmodel:\n  name: open\n  num_classes: 10\n  layers:\n"
                      "    - Conv2D: [4, 5]\n    - GlobalAveragePooling2D\n    - Dense: [10, {activation: softmax}]\n"
                      "data:\n  name: mnist_sample\n")
    refused = cli("validate", config)
    assert refused.returncode == 2 and "Traceback" not in refused.stderr
    assert "error: data.preprocessing.resize: model.input_shape [null, null, 1] leaves the image size open" in refused.stderr
    assert "Add `data.preprocessing.resize: [28, 28]`" in refused.stderr
    resized = cli("validate", config, "data.preprocessing.resize=[20,24]")
    assert resized.returncode == 0, resized.stderr
    assert "model `open` 20x24x1 -> 10" in resized.stdout
    fixed = cli("validate", config, "model.input_shape=[28,28,1]")
    assert fixed.returncode == 0, fixed.stderr

    # Too small for its 5x5 convolution: said, with the option that changes it.
    small = cli("import", source, "-o", tmp_path / "s.yaml", "--check-size", "3")
    assert small.returncode == 2 and "Traceback" not in small.stderr
    assert "cannot run on 3x3x1 images" in small.stderr and "--check-size" in small.stderr


def test_only_rows_and_cols_may_be_left_open(tmp_path):
    config = tmp_path / "c.yaml"
    config.write_text("model:\n  input_shape: [null, null, null]\n  layers:\n    - GlobalAveragePooling2D\n")
    with pytest.raises(CnnzooError, match="only rows and cols may be null"):
        load_config(config)


def test_a_keras_ops_operation_is_refused_with_its_place(tmp_path, monkeypatch):
    # MobileNetV3's hard sigmoid is `ReLU(6.0)(x + 3.0) * (1.0 / 6.0)`: keras.ops on tensors, not layers.
    source = _model_function(tmp_path, monkeypatch, "with_ops", "keras.layers.ReLU(6.0)(inputs + 3.0) * (1.0 / 6.0)",
                             "keras.layers.Dense(2)(keras.layers.Flatten()(x))")
    done = cli("import", source, "-o", tmp_path / "m.yaml")
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert re.search(r"layer 1 of 5, `add(_\d+)?` is the keras.ops operation keras.src.ops.numpy.Add applied to tensors",
                     done.stderr), done.stderr
    assert "1 more of these: ops.Multiply x1" in done.stderr and "nothing was written" in done.stderr
    assert not (tmp_path / "m.yaml").exists()


@pytest.mark.parametrize("source, message", [
    ("keras.applications.MobileNetV2(include_top=Fals)", "cannot read `keras.applications.MobileNetV2(include_top=Fals)`"),
    ("keras.applications.MobileNetV2(alpha=0.35, depth=3)", "Keras refuses it: "),
    ("keras.applications.MobileNetV9", "keras.applications has no `MobileNetV9`"),
])
def test_keras_applications_arguments_are_checked(source, message, tmp_path):
    done = cli("import", source, "-o", tmp_path / "m.yaml")
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert message in done.stderr, done.stderr
