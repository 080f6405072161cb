"""`cnnzoo inspect`: shapes, parameters, MACs, receptive fields, the lecture's arithmetic, Toeplitz matrices; JSON Schema."""

from __future__ import annotations

import json

import jsonschema
import keras
import numpy as np
import pytest
import tensorflow as tf

from cnnzoo import build_model, load_config
from cnnzoo.config.json_schema import json_schema
from cnnzoo.config.yaml_io import read_yaml
from cnnzoo.models import explain, inspect
from cnnzoo.models.weights_budget import shapes_only
from conftest import CONFIGS, cli

SHIPPED = sorted(CONFIGS.rglob("*.yaml"))
BUILDABLE = [p for p in SHIPPED if p.name not in ("blocks.yaml", "plain.yaml", "imagenet_data.yaml")]  # mixins


@pytest.mark.slow
@pytest.mark.parametrize("path", BUILDABLE, ids=lambda p: str(p.relative_to(CONFIGS)))
def test_inspect_totals_equal_keras_count_params(path):
    with shapes_only():  # as `cnnzoo inspect` builds it
        model = build_model(load_config(path))
    info = inspect.summary(model)
    assert info["total_params"] == model.count_params()
    assert info["trainable_params"] == sum(int(np.prod(w.shape)) for w in model.trainable_weights)
    assert len(info["layers"]) == len(model.layers) - 1
    assert info["flops"] == 2 * info["macs"] > 0


def test_what_reads_shapes_builds_without_values_and_leaves_later_builds_as_they_were():
    """`validate` and `inspect` skip drawing initial values (half or more of a large model's build here)."""
    from keras.src.backend.common import global_state

    config = load_config(CONFIGS / "resnet" / "resnet20.yaml")
    with shapes_only():
        reading = build_model(config)
    assert all(w._value is None for w in reading.weights)  # Keras' state of a variable not yet initialized
    assert not global_state.get_global_attribute("uninitialized_variables")  # nothing left for the next build
    built = build_model(config)
    assert reading.count_params() == built.count_params() == 271_098
    assert all(w._value is not None for w in built.weights)
    first = next(layer for layer in built.layers if isinstance(layer, keras.layers.Conv2D))
    assert float(np.std(first.kernel.numpy())) > 0

    printed = cli("inspect", CONFIGS / "resnet" / "resnet20.yaml", "--json")
    assert printed.returncode == 0 and json.loads(printed.stdout)["total_params"] == 271_098
    quick = build_model(load_config(CONFIGS / "quickstart.yaml")).count_params()  # its data is bundled
    assert f"{quick:,} parameters" in cli("validate", CONFIGS / "quickstart.yaml").stdout


def test_lenet5_shapes_receptive_fields_and_macs_by_hand():
    rows = {r.name: r for r in inspect.analyse(build_model(load_config(CONFIGS / "lenet5.yaml")))}
    assert [rows[n].output_shape for n in ("conv2d_2", "max_pooling2d_3", "conv2d_4", "max_pooling2d_5")] == [
        [28, 28, 6], [14, 14, 6], [10, 10, 16], [5, 5, 16]]
    # Receptive fields grow with depth: 5, then 6 after 2x2 pooling, 6 + (5-1)*2 = 14, then 16.
    assert [(rows[n].receptive_field, rows[n].jump) for n in ("conv2d_2", "max_pooling2d_3", "conv2d_4",
                                                             "max_pooling2d_5")] == [(5, 1), (6, 2), (14, 2), (16, 4)]
    assert rows["conv2d_2"].macs == 28 * 28 * 6 * 5 * 5 * 1
    assert rows["dense_7"].macs == 400 * 120 and rows["dense_7"].receptive_field is None


def test_resnet50_macs_match_the_published_figure():
    info = inspect.summary(build_model(load_config(CONFIGS / "resnet" / "resnet50.yaml")))
    # He et al. Table 1: 3.8 x 10^9 multiply-adds ("FLOPs" there); Keras' v1 layout gives 3.86 G.
    assert 3.8e9 <= info["macs"] <= 3.9e9


def test_residual_paths_take_the_larger_receptive_field():
    rows = {r.name: r for r in inspect.analyse(build_model(load_config(CONFIGS / "resnet" / "resnet20.yaml")))}
    # Stem 3x3 conv: 3; each basic block adds two 3x3 convs: +4 at jump 1.
    assert rows["stage1_block1_add"].receptive_field == 3 + 4
    assert rows["stage1_block1_add"].jump == 1 and rows["stage2_block1_add"].jump == 2


def test_inspect_json_has_stable_keys():
    done = cli("inspect", str(CONFIGS / "slide_cnn.yaml"), "--json")
    assert done.returncode == 0, done.stderr
    info = json.loads(done.stdout)
    assert {"total_params", "trainable_params", "non_trainable_params", "macs", "flops", "layers"} <= set(info)
    assert info["total_params"] == 600_810
    assert set(info["layers"][0]) == {"name", "type", "output_shape", "params", "trainable_params",
                                      "non_trainable_params", "macs", "flops", "receptive_field", "jump"}


def test_explain_shows_the_lectures_arithmetic():
    done = cli("inspect", "--explain", str(CONFIGS / "slide_cnn.yaml"))
    assert done.returncode == 0, done.stderr
    out = done.stdout
    assert "(W - K + 2P)/S + 1 = (28 - 3 + 0)/1 + 1 = 26" in out
    assert "(W - K + 2P)/S + 1 = (26 - 3 + 0)/1 + 1 = 24" in out
    assert "(W - K + 2P)/S + 1 = (24 - 2 + 0)/2 + 1 = 12" in out
    assert "3*3*1*32 weights + 32 biases = 320, shared by all 26*26 positions" in out
    assert "weight matrix 4608x128" in out
    lenet = cli("inspect", "--explain", str(CONFIGS / "lenet5.yaml")).stdout
    for matrix in ("400x120", "120x84", "84x10"):
        assert f"weight matrix {matrix}" in lenet
    assert "(32 - 5 + 0)/1 + 1 = 28" in lenet and "(10 - 2 + 0)/2 + 1 = 5" in lenet


def test_same_padding_arithmetic():
    assert explain.output_size(32, 3, 2, "same") == (16, 1)
    assert explain.output_size(7, 3, 2, "same") == (4, 2)
    assert explain.output_size(28, 3, 1, "valid") == (26, 0)


@pytest.mark.parametrize("overrides", [
    ["model.input_shape=[7,7,1]"],
    ["model.input_shape=[8,8,1]", "model.layers.0.Conv2D={filters: 32, kernel_size: 3, strides: 2, padding: same}"],
    ["model.input_shape=[9,9,1]", "model.layers.0.Conv2D={filters: 32, kernel_size: 2, dilation_rate: 2}"],
])
def test_toeplitz_matrix_times_input_equals_tf_nn_conv2d(overrides):
    model = build_model(load_config(CONFIGS / "slide_cnn.yaml", overrides))
    layer = model.get_layer("conv2d_1")
    shape = tuple(model.input_shape[1:])
    matrix = explain.toeplitz(layer, shape, in_channel=0, out_channel=5)
    x = np.random.default_rng(0).normal(size=(1, *shape)).astype("float32")
    kernel = np.asarray(layer.kernel)[:, :, :1, 5:6]
    expected = tf.nn.conv2d(x, kernel, strides=layer.strides[0], padding=layer.padding.upper(),
                            dilations=layer.dilation_rate[0]).numpy()
    np.testing.assert_allclose(matrix @ x[0, :, :, 0].ravel(), expected.ravel(), rtol=1e-5, atol=1e-6)


def test_toeplitz_cli_prints_small_and_saves_png(tmp_path):
    done = cli("inspect", str(CONFIGS / "slide_cnn.yaml"), "model.input_shape=[6,6,1]", "--toeplitz", "conv2d_1")
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("conv2d_1: 16x36 matrix")
    png = tmp_path / "t.png"
    assert cli("inspect", str(CONFIGS / "slide_cnn.yaml"), "model.input_shape=[12,12,1]", "--toeplitz",
                   "conv2d_3", "-o", str(png)).returncode == 0
    assert png.stat().st_size > 1000
    wrong = cli("inspect", str(CONFIGS / "slide_cnn.yaml"), "--toeplitz", "conv2d_2")
    assert wrong.returncode == 2 and "Did you mean" in wrong.stderr


@pytest.fixture(scope="module")
def validator():
    schema = json_schema()
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(schema)


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: str(p.relative_to(CONFIGS)))
def test_every_shipped_config_file_validates_against_the_schema(validator, path):
    data, _ = read_yaml(path)
    assert not [e.message for e in validator.iter_errors(data)]
    if path in BUILDABLE:  # and the fully resolved config too
        assert not [e.message for e in validator.iter_errors(load_config(path).model_dump(mode="json"))]


def test_schema_rejects_what_the_loader_rejects(validator):
    assert list(validator.iter_errors({"train": {"optimzer": "sgd"}}))
    assert list(validator.iter_errors({"runtime": {"precision": "float8"}}))
    assert not list(validator.iter_errors({"train": {"optimizer": "sgd"}, "extends": "base.yaml"}))


def test_schema_command_prints_a_schema_that_accepts_the_shipped_configs_and_rejects_a_typo():
    import jsonschema

    from cnnzoo.config.yaml_io import read_yaml

    done = cli("schema")
    assert done.returncode == 0
    printed = jsonschema.Draft202012Validator(json.loads(done.stdout))
    assert not list(printed.iter_errors(read_yaml(CONFIGS / "slide_cnn.yaml")[0]))
    assert list(printed.iter_errors({"model": {"layrs": []}}))
