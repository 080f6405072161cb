"""ResNets from YAML: exact parameter counts, Keras weight transfer, plain twins, block errors."""

from __future__ import annotations


import keras
import numpy as np
import pytest

from cnnzoo import BuildError, build_model, load_config
from cnnzoo.models.weights_budget import shapes_only
from conftest import CONFIGS, cli, without_cnnzoo, write

RESNET = CONFIGS / "resnet"


def cifar_resnet_params(n: int, shortcut: str = "A") -> int:
    """Parameters of the paper's CIFAR ResNet-(6n+2), counted from its description, not from Keras.

    3x3 convolutions without bias, each followed by BatchNormalization (4 values per channel:
    gamma, beta, moving mean, moving variance); a 10-way Dense on 64 pooled features.
    """
    def conv_bn(k: int, cin: int, cout: int) -> int:
        return k * k * cin * cout + 4 * cout

    total = conv_bn(3, 3, 16) + 64 * 10 + 10
    cin = 16
    for filters in (16, 32, 64):
        for block in range(n):
            total += conv_bn(3, cin, filters) + conv_bn(3, filters, filters)
            if shortcut == "B" and cin != filters:
                total += conv_bn(1, cin, filters)
            cin = filters
    return total


def _build(name: str, *overrides: str):
    return build_model(load_config(RESNET / f"{name}.yaml", list(overrides)))


def _shapes(name: str, *overrides: str):
    """The model as `validate` builds it: weights with shapes, no values (enough to count them)."""
    with shapes_only():
        return _build(name, *overrides)


@pytest.mark.slow
@pytest.mark.parametrize("depth,n", [(20, 3), (32, 5), (44, 7), (56, 9), (110, 18)])
def test_cifar_resnet_and_plain_twin_parameter_counts(depth, n):
    resnet, plain = _shapes(f"resnet{depth}"), _shapes(f"plain{depth}")
    assert resnet.count_params() == cifar_resnet_params(n)
    # Option A adds no parameters, so the plain twin has exactly as many; it has no Add at all.
    assert plain.count_params() == resnet.count_params()
    assert sum(isinstance(layer, keras.layers.Add) for layer in resnet.layers) == 3 * n
    assert not any(isinstance(layer, keras.layers.Add) for layer in plain.layers)
    convs = [layer for layer in resnet.layers if isinstance(layer, keras.layers.Conv2D)]
    assert len(convs) + 1 == depth  # 6n + 2 weighted layers: convolutions and the Dense


def test_cifar_reference_counts_from_the_issue():
    assert _build("resnet20").count_params() == 271_098
    assert _build("resnet20", "model.blocks.basic.shortcut=B").count_params() == 274_042 == cifar_resnet_params(3, "B")
    assert cifar_resnet_params(9) == 857_082 and cifar_resnet_params(18) == 1_736_058


def test_resnet20_shapes_follow_the_paper_table():
    model = _build("resnet20")
    outputs = {layer.name: layer.output.shape[1:] for layer in model.layers}
    assert outputs["stage1_block3_add"] == (32, 32, 16)
    assert outputs["stage2_block1_add"] == (16, 16, 32)
    assert outputs["stage3_block3_add"] == (8, 8, 64)
    assert model.output.shape[1:] == (10,)


@pytest.mark.parametrize("name,reference", [
    ("resnet50", keras.applications.ResNet50),
    ("resnet50v2", keras.applications.ResNet50V2),
])
@pytest.mark.slow
def test_keras_imagenet_weights_transfer_with_identical_outputs(name, reference):
    ours, theirs = _build(name), reference(weights=None)
    assert ours.count_params() == theirs.count_params()
    rng = np.random.default_rng(0)
    # Random values everywhere, BatchNormalization statistics included (variances positive).
    weights = [rng.uniform(0.5, 1.5, w.shape).astype("float32") if "variance" in v.path
               else rng.normal(0, 0.05, w.shape).astype("float32")
               for v, w in zip(theirs.weights, theirs.get_weights())]
    theirs.set_weights(weights)
    ours.set_weights(theirs.get_weights())
    x = rng.uniform(-1, 1, (2, 224, 224, 3)).astype("float32")
    np.testing.assert_allclose(ours.predict(x, verbose=0), theirs.predict(x, verbose=0), atol=1e-4)


@pytest.mark.parametrize("name,expected", [
    ("resnet50", 25_636_712), ("resnet101", 44_707_176), ("resnet152", 60_419_944), ("resnet50v2", 25_613_800),
])
@pytest.mark.slow
def test_imagenet_counts_equal_keras_applications(name, expected):
    assert _shapes(name).count_params() == expected


@pytest.mark.parametrize("name,reference", [
    ("resnet101v2", keras.applications.ResNet101V2), ("resnet152v2", keras.applications.ResNet152V2),
])
@pytest.mark.slow
def test_deeper_v2_counts_equal_keras_applications(name, reference):
    with shapes_only(), keras.StatelessScope(initialize_variables=False):  # Keras' own, without values too
        theirs = reference(weights=None)
    assert _shapes(name).count_params() == theirs.count_params()


@pytest.mark.parametrize("name,trainable", [("resnet18", 11_689_512), ("resnet34", 21_797_672)])
def test_basic_block_imagenet_trainable_counts(name, trainable):
    model = _build(name)
    assert sum(int(np.prod(w.shape)) for w in model.trainable_weights) == trainable


def test_preactivation_basic_block_builds():
    model = _build("resnet20", "model.layers.3.stage.block=basic_v2", "model.layers.4.stage.block=basic_v2",
                   "model.layers.5.stage.block=basic_v2")
    assert model.output.shape[1:] == (10,)
    first = model.get_layer("stage1_block1_batch_normalization_1")  # `pre`: BN comes first
    assert first.input.shape[1:] == (32, 32, 16)


@pytest.mark.slow
def test_option_a_model_loads_without_cnnzoo(tmp_path):
    model = _build("resnet20")
    assert not any(isinstance(layer, keras.layers.Lambda) for layer in model.layers)
    path = tmp_path / "resnet20.keras"
    model.save(path)
    x = np.random.default_rng(1).normal(size=(4, 32, 32, 3)).astype("float32")
    np.save(tmp_path / "x.npy", x)
    np.save(tmp_path / "expected.npy", model.predict(x, verbose=0))
    script = (
        "import sys, numpy as np, keras\n"
        f"m = keras.models.load_model({str(path)!r})\n"
        f"x = np.load({str(tmp_path / 'x.npy')!r}); expected = np.load({str(tmp_path / 'expected.npy')!r})\n"
        "assert not any(k.startswith('cnnzoo') for k in sys.modules)\n"
        "print(float(np.abs(m.predict(x, verbose=0) - expected).max()))\n"
    )
    done = without_cnnzoo(script)
    assert done.returncode == 0, done.stderr[-2000:]
    assert float(done.stdout.strip().splitlines()[-1]) < 1e-5


def test_option_a_zero_pads_channels_and_subsamples():
    model = _build("resnet20")
    shortcut = keras.Model(model.get_layer("stage2_block1_shortcut_subsample").input,
                           model.get_layer("stage2_block1_shortcut_to4d").output)
    x = np.random.default_rng(2).normal(size=(1, 32, 32, 16)).astype("float32")
    y = shortcut.predict(x, verbose=0)
    assert y.shape == (1, 16, 16, 32)
    np.testing.assert_array_equal(y[..., 8:24], x[:, ::2, ::2, :])
    assert not y[..., :8].any() and not y[..., 24:].any()


BLOCK_BASE = """
model:
  input_shape: [8, 8, 4]
  num_classes: 3
  params: {width: 4}
  blocks:
    res:
      params: {filters: null, strides: 1}
      layers:
        - Conv2D: {filters: $filters, kernel_size: 3, strides: $strides, padding: same}
      shortcut: SHORTCUT
  layers:
    - STAGE
    - Flatten
    - Dense: {units: 3, activation: softmax}
"""


def _block_config(tmp_path, stage: str, shortcut: str = "A"):
    path = write(tmp_path / "net.yaml", BLOCK_BASE.replace("STAGE", stage).replace("SHORTCUT", shortcut))
    return path, load_config(path)


@pytest.mark.parametrize("stage,shortcut,message,line", [
    ("stage: {block: rse, repeat: 2, filters: 4}", "A", "no block named `rse` in model.blocks. Did you mean `res`?", 13),
    ("stage: {block: res, repeat: 2, filter: 4}", "A", "block `res` has no parameter `filter`. Did you mean `filters`?", 13),
    ("stage: {block: res, repeat: 2}", "A", "block `res` needs parameter `filters`", 13),
    ("stage: {block: res, repeat: 0, filters: 4}", "A", "stage `repeat` must be a whole number from 1 to 20,000", 13),
    ("stage: {block: res, repeat: 2, filters: $widht}", "A", "refers to `widht`, which is not defined here. Did you mean `width`?", 13),
    ("stage: {block: res, repeat: 2, filters: 4}", "C", "unknown shortcut `C`", 11),
    ("stage: {block: res, repeat: 2, filters: '${__import__(1)}'}", "A", "only numbers, names, lists", 13),
])
def test_block_mistakes_are_found_when_the_config_loads(tmp_path, stage, shortcut, message, line):
    with pytest.raises(BuildError) as err:
        _block_config(tmp_path, stage, shortcut)
    assert message in str(err.value)
    assert f"net.yaml:{line}:" in str(err.value)


def test_a_shortcut_that_does_not_fit_the_shapes_is_found_when_building(tmp_path):
    path, config = _block_config(tmp_path, "stage: {block: res, repeat: 2, filters: 8}", "identity")
    with pytest.raises(BuildError) as err:
        build_model(config)
    assert "the identity shortcut cannot add input 8x8x4 to the block's output 8x8x8" in str(err.value)
    assert "net.yaml:11:" in str(err.value)


def test_block_used_directly_and_a_shortcut_b_projection(tmp_path):
    path, config = _block_config(tmp_path, "res: {filters: 8, strides: 2}", "B")
    model = build_model(config)
    names = [layer.name for layer in model.layers]
    assert "res1_shortcut_conv2d_1" in names and "res1_add" in names
    assert model.get_layer("res1_add").output.shape[1:] == (4, 4, 8)


def test_validate_reports_a_block_mistake_with_exit_code_2(tmp_path):
    arrays = tmp_path / "arrays"  # validate needs the data to be at hand (not prepared: nothing is written)
    arrays.mkdir()
    images, labels = np.zeros((4, 32, 32, 3), np.uint8), np.arange(4, dtype=np.uint8)
    np.savez(arrays / "cifar10.npz", x_train=images, y_train=labels, x_test=images, y_test=labels)
    done = cli("validate", str(RESNET / "resnet20.yaml"), "model.layers.4.stage.first={stride: 2}")
    assert done.returncode == 2, done.stderr
    assert "block `basic` has no parameter `stride`. Did you mean `strides`?" in done.stderr
    assert "<command line>" in done.stderr and "Traceback" not in done.stderr
    ok = cli("validate", str(RESNET / "resnet20.yaml"), "--manual-dir", str(arrays))
    assert ok.returncode == 0, ok.stderr
    assert "to be prepared from the .npz arrays" in ok.stdout


def test_every_resnet_config_validates():
    for path in sorted(RESNET.glob("*.yaml")):
        if path.name in ("blocks.yaml", "plain.yaml"):
            continue  # a base and a mixin without layers, extended by the others
        config = load_config(path)  # schema, extends and overrides resolve
        assert config.items, path.name  # its layers resolved: stages, blocks and $params expanded
        assert config.model.name == path.stem or path.stem.startswith("imagenet"), path.name  # bases: generic
