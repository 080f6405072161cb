"""Builder: YAML layer items -> a Functional Keras model, Keras-1 spellings, shape errors."""

from __future__ import annotations

import warnings

import re

import keras
import pytest

from cnnzoo import BuildError, build_model, config_from_dict, load_config, registry
from cnnzoo.arguments import required_arguments
from cnnzoo.config.keras1 import Keras1Warning
from conftest import CONFIGS, write


def model_of(layers, input_shape=(28, 28, 1), **model):
    return build_model(config_from_dict({"model": {"input_shape": list(input_shape), "layers": layers, **model}}))


def test_slide_cnn_exact_architecture_and_parameters():
    model = build_model(load_config(CONFIGS / "slide_cnn.yaml"))
    assert model.count_params() == 600_810
    kinds = [type(layer).__name__ for layer in model.layers[1:]]
    assert kinds == ["Conv2D", "Activation", "Conv2D", "Activation", "MaxPooling2D", "Dropout",
                     "Flatten", "Dense", "Activation", "Dropout", "Dense", "Activation"]
    assert [tuple(layer.output.shape[1:]) for layer in model.layers[1:6]] == [
        (26, 26, 32), (26, 26, 32), (24, 24, 32), (24, 24, 32), (12, 12, 32)]
    assert model.layers[6].rate == 0.25 and model.layers[10].rate == 0.5


def test_lenet5_exact_architecture_and_parameters():
    model = build_model(load_config(CONFIGS / "lenet5.yaml"))
    assert model.count_params() == 61_706
    shapes = [tuple(layer.output.shape[1:]) for layer in model.layers[1:]]
    assert shapes == [(32, 32, 1), (28, 28, 6), (14, 14, 6), (10, 10, 16), (5, 5, 16), (400,), (120,), (84,), (10,)]


def test_layer_names_are_deterministic():
    first = [layer.name for layer in build_model(load_config(CONFIGS / "lenet5.yaml")).layers]
    second = [layer.name for layer in build_model(load_config(CONFIGS / "lenet5.yaml")).layers]
    assert first == second
    assert first[:4] == ["input", "zero_padding2d_1", "conv2d_2", "max_pooling2d_3"]


def test_argument_forms_scalar_list_mapping_and_python_call():
    model = model_of([
        {"Conv2D": [8, 3, {"padding": "same", "activation": "relu"}]},  # positional + keywords
        {"Conv2D": {"filters": 4, "kernel_size": [5, 3]}},
        {"MaxPooling2D": 2},
        "Flatten",
        {"Dropout": 0.3},
        {"Dense": 10},
        {"Activation": "softmax"},
    ])
    conv1, conv2, pool, _, dropout = model.layers[1:6]
    assert (conv1.filters, conv1.kernel_size, conv1.padding) == (8, (3, 3), "same")
    assert conv2.kernel_size == (5, 3) and pool.pool_size == (2, 2) and dropout.rate == 0.3


def test_keras1_spellings_build_the_slide_net_with_warnings():
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        keras1 = build_model(load_config(CONFIGS / "slide_cnn_keras1.yaml"))
    keras3 = build_model(load_config(CONFIGS / "slide_cnn.yaml"))
    assert keras1.count_params() == keras3.count_params() == 600_810
    assert [w.shape for w in keras1.weights] == [w.shape for w in keras3.weights]
    assert keras1.input_shape == (None, 28, 28, 1)  # the slide's (1, 28, 28) made channels-last
    messages = [str(w.message) for w in caught if issubclass(w.category, Keras1Warning)]
    assert len(messages) == 4
    assert all("\n" not in m for m in messages)
    assert "slide_cnn_keras1.yaml:11:7: Keras 1 spelling mapped to Keras 3: Convolution2D(32, 3, 3)" in messages[0]
    assert "border_mode -> padding" in messages[0]
    assert "channels-first" in messages[-1]


@pytest.mark.parametrize(
    "item, check",
    [
        ({"Convolution2D": {"nb_filter": 16, "nb_row": 5, "nb_col": 3, "subsample": [2, 2], "init": "he_normal"}},
         lambda l: (l.filters, l.kernel_size, l.strides, type(l.kernel_initializer).__name__) == (16, (5, 3), (2, 2), "HeNormal")),
        ({"Dense": {"output_dim": 7}}, lambda l: l.units == 7),
        ({"Conv2D": {"filters": 4, "kernel_size": 3, "dim_ordering": "tf"}}, lambda l: l.data_format == "channels_last"),
    ],
)
def test_keras1_keyword_aliases(item, check):
    with pytest.warns(Keras1Warning):
        model = model_of([item, "Flatten", {"Dense": 10}, {"Activation": "softmax"}])
    assert check(model.layers[1])


def test_unknown_layer_suggests_the_closest_name(tmp_path):
    path = write(tmp_path / "x.yaml", "model:\n  input_shape: [28, 28, 1]\n  layers:\n    - Flatten\n    - Dens: 10\n")
    with pytest.raises(BuildError) as info:
        build_model(load_config(path))
    assert str(info.value).startswith(f"{path}:5:7: error: model.layers.1: unknown layer `Dens`.")
    assert "Did you mean `Dense`?" in str(info.value)


def test_unknown_argument_and_missing_argument():
    with pytest.raises(BuildError, match="layer 1 \\(Conv2D\\) has no argument `kernal_size`. Did you mean `kernel_size`"):
        model_of([{"Conv2D": {"filters": 3, "kernal_size": 3}}])
    with pytest.raises(BuildError, match="layer 1 \\(Conv2D\\) needs argument\\(s\\) `kernel_size`"):
        model_of([{"Conv2D": {"filters": 3}}])
    with pytest.raises(BuildError, match="takes at most 3 positional arguments \\(rate, noise_shape, seed\\), got 4"):
        model_of([{"Dropout": [0.1, 2, 3, 4]}])


def test_kernel_larger_than_input_names_layer_and_line(tmp_path):
    layers = "".join(f"    - {item}\n" for item in ["Conv2D: [8, 3]", "MaxPooling2D: 2"] * 3 + ["Conv2D: [8, 3]", "Flatten", "Dense: 10"])
    path = write(tmp_path / "x.yaml", "model:\n  input_shape: [28, 28, 1]\n  layers:\n" + layers)
    with pytest.raises(BuildError) as info:
        build_model(load_config(path))
    assert str(info.value).startswith(f"{path}:10:7: error: layer 7 (Conv2D): input 1x1x8 is smaller than kernel 3x3.")


def test_dense_without_flatten_is_caught_at_the_dense_layer():
    with pytest.raises(BuildError, match=r"layer 2 \(Dense\): input is 26x26x8.*Add `- Flatten`"):
        model_of([{"Conv2D": [8, 3]}, {"Dense": 10}, {"Activation": "softmax"}])


def test_conv_after_flatten_is_a_build_error():
    with pytest.raises(BuildError, match=r"layer 2 \(Conv2D\) cannot take input of shape 784"):
        model_of(["Flatten", {"Conv2D": [8, 3]}])


def test_num_classes_must_match_the_output():
    with pytest.raises(BuildError, match="outputs 10 class scores but model.num_classes is 5"):
        model_of(["Flatten", {"Dense": 10}], num_classes=5)


def test_malformed_layer_item():
    with pytest.raises(BuildError, match="must be a class name or a one-key mapping"):
        model_of([{"Dense": 10, "Activation": "relu"}])


def _no_arg_layers():
    return [n for n in registry.layers().names() if not required_arguments(registry.layers().get(n))]


def test_every_keras_layer_class_resolves_by_name():
    names = registry.layers().names()
    assert IMAGE_LAYERS <= set(_no_arg_layers())
    for name in ("Conv2D", "DepthwiseConv2D", "SeparableConv2D", "BatchNormalization", "RandomFlip", "GroupNormalization"):
        assert name in names
    assert len(_no_arg_layers()) > 60


# No-argument layers that must build on an 8x8x3 image input; the others are for other ranks,
# lists of inputs (merge layers) or need configuration (lookups), and must fail as BuildErrors.
IMAGE_LAYERS = {
    "BatchNormalization", "Cropping2D", "ELU", "Flatten", "GlobalAveragePooling2D", "GlobalMaxPooling2D",
    "Identity", "LayerNormalization", "LeakyReLU", "MaxPooling2D", "PReLU", "RandomFlip", "ReLU", "Softmax",
    "UnitNormalization", "UpSampling2D", "ZeroPadding2D",
}


@pytest.mark.parametrize("name", _no_arg_layers())
def test_every_no_argument_keras_layer_builds_by_name_or_explains(name):
    """Each class builds in a small image model, or fails as a BuildError naming it (never a raw crash)."""
    try:
        model = model_of([name, "Flatten", {"Dense": 10}, {"Activation": "softmax"}], input_shape=(8, 8, 3))
    except BuildError as err:
        assert name not in IMAGE_LAYERS, str(err)
        assert re.search(r"layer [13] \(\w+\)(: Keras rejected| cannot take input)", str(err)), str(err)
    else:
        assert model.output_shape == (None, 10)
        built = [layer for layer in model.layers if isinstance(layer, registry.layers().get(name))]
        # Pass-through preprocessing layers (e.g. Equalization) may be elided from the graph.
        assert built or model.count_params() == 8 * 8 * 3 * 10 + 10


def test_only_plain_keras_layers_in_the_model():
    model = build_model(load_config(CONFIGS / "slide_cnn.yaml"))
    assert all(type(layer).__module__.startswith("keras.") for layer in model.layers)
    assert isinstance(model, keras.Model) and model.name == "slide_cnn"


@pytest.mark.parametrize(
    "layers, message",
    [
        ([{"MaxPooling2D": {"pool_size": 2, "strides": 0}}, "Flatten", {"Dense": 10}], r"layer 1 \(MaxPooling2D\)"),
        ([{"BatchNormalization": {"axis": 5}}, "Flatten", {"Dense": 10}], r"layer 1 \(BatchNormalization\)"),
        ([{"Reshape": [[7, 7]]}, "Flatten", {"Dense": 10}], r"layer 1 \(Reshape\) cannot take input of shape 28x28x1: .*7"),
        ([{"Dense": True}], r"layer 1 \(Dense\): argument `units` expects a number, got true"),
        ([{"Dropout": "0.5"}, "Flatten", {"Dense": 10}], r"layer 1 \(Dropout\): Keras rejected .*Write numbers without quotes"),
        ([{"Flatten": {"name": "f"}}, {"Flatten": {"name": "f"}}, {"Dense": 10}], "cannot assemble the model"),
    ],
)
def test_keras_failures_become_build_errors_with_the_layer_named(layers, message):
    with pytest.raises(BuildError, match=message) as info:
        model_of(layers)
    assert "Exception encountered" not in str(info.value) and "\x1b[" not in str(info.value)


def test_an_overridden_layer_argument_is_blamed_on_the_command_line():
    with pytest.raises(BuildError) as info:  # found when the config loads, before any model is built
        load_config(CONFIGS / "slide_cnn.yaml", ["model.layers.0.Conv2D.kernal_size=3"])
    assert str(info.value).startswith("<command line> (model.layers.0.Conv2D.kernal_size=3): error:")


def test_dataset_shape_and_classes_are_checked_at_build():
    config = load_config(CONFIGS / "slide_cnn.yaml")
    with pytest.raises(BuildError, match=r"slide_cnn.yaml:\d+:\d+: error: model.input_shape: the model takes 28x28x1 inputs but `mnist` images are 32x32x3"):
        build_model(config, input_shape=(32, 32, 3))
    with pytest.raises(BuildError, match="model.num_classes is 10 but `mnist` has 100 classes"):
        build_model(config, input_shape=(28, 28, 1), num_classes=100)
    no_declared = load_config(CONFIGS / "lenet5.yaml", ["model.num_classes=null"])
    with pytest.raises(BuildError, match="the model outputs 10 class scores but `mnist` has 100 classes"):
        build_model(no_declared, input_shape=(28, 28, 1), num_classes=100)
    assert build_model(load_config(CONFIGS / "slide_cnn.yaml", ["model.input_shape=null"]), input_shape=(28, 28, 1)).input_shape == (None, 28, 28, 1)
