"""Named items and `inputs`: branches and merges in YAML, checked against the same networks
written by hand in Keras, and the mistakes a graph can have, each named with its line."""

from __future__ import annotations


import keras
import numpy as np
import pytest

from conftest import CONFIGS, without_cnnzoo, write
from cnnzoo import build_model, load_config
from cnnzoo.errors import BuildError

GRAPHS = CONFIGS / "graphs"


def built(path, *overrides):
    return build_model(load_config(path, list(overrides)))


def _conv_bn_relu(x, filters, kernel, strides=1, padding="same"):
    x = keras.layers.Conv2D(filters, kernel, strides=strides, padding=padding, use_bias=False)(x)
    return keras.layers.Activation("relu")(keras.layers.BatchNormalization()(x))


def test_the_small_inception_net_is_zhang_et_als():
    def inception(x, ch1, ch3):
        return keras.layers.Concatenate()([_conv_bn_relu(x, ch1, 1), _conv_bn_relu(x, ch3, 3)])

    def downsample(x, ch3):
        return keras.layers.Concatenate()([_conv_bn_relu(x, ch3, 3, 2, "valid"), keras.layers.MaxPooling2D(3, 2)(x)])

    inputs = keras.Input((32, 32, 3))
    x = _conv_bn_relu(inputs, 96, 3)
    x = downsample(inception(inception(x, 32, 32), 32, 48), 80)
    for ch1, ch3 in ((112, 48), (96, 64), (80, 80), (48, 96)):
        x = inception(x, ch1, ch3)
    x = inception(inception(downsample(x, 96), 176, 160), 176, 160)
    outputs = keras.layers.Dense(10, activation="softmax")(keras.layers.GlobalAveragePooling2D()(x))
    by_hand = keras.Model(inputs, outputs)

    model = built(GRAPHS / "inception_small.yaml")
    assert model.count_params() == by_hand.count_params()
    assert [tuple(layer.output.shape) for layer in model.layers if isinstance(layer, keras.layers.Concatenate)] == \
        [tuple(layer.output.shape) for layer in by_hand.layers if isinstance(layer, keras.layers.Concatenate)]


def test_a_dense_block_concatenates_every_layer_onto_all_before_it():
    def dense_layer(x, k=12):
        y = keras.layers.Activation("relu")(keras.layers.BatchNormalization()(x))
        y = keras.layers.Conv2D(4 * k, 1, use_bias=False)(y)
        y = keras.layers.Activation("relu")(keras.layers.BatchNormalization()(y))
        return keras.layers.Concatenate()([x, keras.layers.Conv2D(k, 3, padding="same", use_bias=False)(y)])

    def transition(x, filters):
        x = keras.layers.Activation("relu")(keras.layers.BatchNormalization()(x))
        return keras.layers.AveragePooling2D(2)(keras.layers.Conv2D(filters, 1, use_bias=False)(x))

    inputs = keras.Input((32, 32, 3))
    x = keras.layers.Conv2D(24, 3, padding="same", use_bias=False)(inputs)
    for block, filters in enumerate((48, 60, None)):
        for _ in range(6):
            x = dense_layer(x)
        x = transition(x, filters) if filters else x
    x = keras.layers.Activation("relu")(keras.layers.BatchNormalization()(x))
    by_hand = keras.Model(inputs, keras.layers.Dense(10, activation="softmax")(keras.layers.GlobalAveragePooling2D()(x)))

    model = built(GRAPHS / "densenet_bc40.yaml")
    assert model.count_params() == by_hand.count_params()
    assert model.get_layer("dense3_block6_concatenate_7").output.shape[-1] == 60 + 6 * 12


def test_squeeze_and_excitation_adds_a_gate_to_each_basic_block():
    plain = built(CONFIGS / "resnet" / "resnet20.yaml").count_params()
    # Each block's gate: Dense(C -> C/4) and Dense(C/4 -> C), with biases; three blocks of 16, 32 and 64 channels.
    gates = sum(3 * ((c * c // 4 + c // 4) + (c // 4 * c + c)) for c in (16, 32, 64))
    model = built(GRAPHS / "se_resnet20.yaml")
    assert model.count_params() == plain + gates
    multiply = model.get_layer("stage2_block1_multiply_9")
    assert [tuple(t.shape) for t in multiply._inbound_nodes[0].input_tensors] == [(None, 16, 16, 32), (None, 1, 1, 32)]


def test_an_output_a_merge_takes_feeds_it_and_the_same_weights_give_the_same_outputs(tmp_path):
    import numpy as np

    path = write(tmp_path / "g.yaml", """\
model:
  name: g
  input_shape: [8, 8, 1]
  layers:
    - Conv2D: [4, 3, {padding: same}]
      name: a
    - Conv2D: [4, 1]
      inputs: input
    - Add:
      inputs: [a, a]
""")
    with pytest.raises(BuildError) as error:  # the 1x1 conv's output is lost
        built(path)
    assert "layer 2 (Conv2D) is never used" in str(error.value) and f"{path}:7" in str(error.value)
    model = built(write(tmp_path / "ok.yaml", path.read_text().replace("inputs: [a, a]", "inputs: [a, b]").replace(
        "      inputs: input", "      inputs: input\n      name: b") + "    - Flatten\n    - Dense: [2, {activation: softmax}]\n"))
    x = np.random.default_rng(0).random((2, 8, 8, 1), np.float32)
    a, b = model.get_layer("a"), model.get_layer("b")
    expected = a(x) + b(x)
    sub = keras.Model(model.inputs, model.get_layer("add_3").output)
    assert np.allclose(sub(x), expected, atol=1e-6)


@pytest.mark.parametrize("layers, fragments", [
    ("- Conv2D: [4, 3]\n      name: branch1\n    - Add:\n      inputs: [branch1, brnch2]",
     ["layer 2 (Add): input no earlier item is named `brnch2`. Did you mean `branch1`?", ":7:"]),
    ("- Add:\n      inputs: [input, later]\n    - Conv2D: [1, 1]\n      name: later",
     ["`later` is layer 2 (Conv2D `later`), which comes after it", "(no cycles)"]),
    ("- Conv2D: [32, 3, {padding: same, strides: 2}]\n      name: small\n    - Conv2D: [64, 3, {padding: same, strides: 4}]\n"
     "      inputs: input\n      name: smaller\n    - Add:\n      inputs: [small, smaller]",
     ["layer 3 (Add) cannot merge 16x16x32 and 8x8x64", "equal shapes"]),
    ("- Conv2D: [4, 3]\n      name: x\n    - Conv2D: [4, 3]\n      name: x",
     ["the name `x` is already used by layer 1 (Conv2D `x`)"]),
    ("- Conv2D: [4, 3]\n      name: 2x", ["`name` must be a word"]),
])
def test_graph_mistakes_name_the_item_and_line(tmp_path, layers, fragments):
    path = write(tmp_path / "bad.yaml", f"model:\n  name: bad\n  input_shape: [32, 32, 3]\n  layers:\n    {layers}\n"
                 "    - Flatten\n    - Dense: [2, {activation: softmax}]\n")
    with pytest.raises(BuildError) as error:
        built(path)
    message = str(error.value)
    assert str(path) in message
    for fragment in fragments:
        assert fragment in message, message


def test_a_block_use_takes_no_name(tmp_path):
    path = write(tmp_path / "b.yaml", f"extends: {CONFIGS / 'resnet' / 'resnet20.yaml'}\nmodel:\n  layers:\n"
                 "    - Conv2D: [16, 3, {padding: same}]\n    - basic: {filters: 16}\n      name: first\n"
                 "    - GlobalAveragePooling2D\n    - Dense: [10, {activation: softmax}]\n")
    with pytest.raises(BuildError, match="`name` and `inputs` are for layers"):
        load_config(path)


def test_print_config_resolved_shows_names_and_inputs():
    from cnnzoo.config.resolve import resolved_yaml

    items = resolved_yaml(load_config(GRAPHS / "inception_small.yaml").items)
    block = items[3]["block"]
    assert block["uses"] == "inception"
    assert {"Concatenate": {}, "inputs": ["one", "three"]} in block["layers"]
    assert any(item.get("name") == "one" for item in block["layers"])


BRANCHY = """\
extends: {quickstart}
model:
  name: branchy
  layers:
    - Conv2D: [8, 3]                                  # 26x26x8, receptive field 3
      name: stem
    - Conv2D: [8, 1, {{padding: same}}]               # branch 1: the field stays 3
      name: narrow
    - Conv2D: [8, 5, {{padding: same}}]               # branch 2: 3 + 4 = 7
      inputs: stem
      name: wide
    - Concatenate:
      inputs: [narrow, wide]
      name: joined
    - GlobalAveragePooling2D                          # a squeeze-and-excitation gate
    - Dense: [16, {{activation: sigmoid}}]
      name: gate
    - Multiply:
      inputs: [joined, gate]
    - MaxPooling2D: 2
    - Flatten
    - Dense: [10, {{activation: softmax}}]
train:
  epochs: 1
  steps_per_epoch: 10
  pictures: true
runtime:
  seed: 3
  precision: float32
"""


@pytest.mark.slow
def test_a_graph_trains_inspects_exports_and_draws(tmp_path):
    from cnnzoo import train
    from cnnzoo.models.inspect import analyse
    from conftest import cli

    path = write(tmp_path / "branchy.yaml", BRANCHY.format(quickstart=CONFIGS / "quickstart.yaml"))
    result = train(load_config(path), output_dir=str(tmp_path / "run"), log=lambda _: None)
    fields = {row.type: row.receptive_field for row in analyse(result.model)}
    assert fields["Concatenate"] == 7  # a merge sees as far as the widest of its inputs
    assert fields["Multiply"] is None and fields["MaxPooling2D"] is None  # the gate saw the whole image
    exported = tmp_path / "branchy.keras"
    done = cli("export", str(tmp_path / "run"), "-o", str(exported))
    assert done.returncode == 0, done.stderr[-2000:]
    images = np.random.default_rng(0).integers(0, 256, (4, 28, 28, 1)).astype("float32")
    np.save(tmp_path / "images.npy", images)
    fresh = without_cnnzoo(
        "import sys, keras, numpy as np; np.save(sys.argv[3], keras.models.load_model("
        "sys.argv[1]).predict(np.load(sys.argv[2]), verbose=0)); assert 'cnnzoo' not in sys.modules",
        exported, tmp_path / "images.npy", tmp_path / "out.npy", cwd=tmp_path)
    assert fresh.returncode == 0, fresh.stderr[-3000:]
    from cnnzoo.data.preprocessing import preprocess_images

    ours = result.model.predict(preprocess_images(images, load_config(path).data), verbose=0)
    np.testing.assert_allclose(np.load(tmp_path / "out.npy"), ours, atol=1e-5)
    drawn = cli("pictures", tmp_path / "run", "-o", tmp_path / "png")
    assert drawn.returncode == 0, drawn.stderr
    names = sorted(p.name for p in (tmp_path / "png").iterdir())
    assert "confusion_matrix.png" in names and "filters-stem.png" in names
    assert {"feature_maps-02_narrow.png", "feature_maps-03_wide.png"} <= set(names)  # both branches
