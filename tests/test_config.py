"""Config loading: YAML positions, extends, overrides, strict keys and types."""

from __future__ import annotations

import pytest
import yaml
from pydantic import ValidationError

from cnnzoo import ConfigError, load_config
from conftest import CONFIGS, write

MINIMAL = """\
model:
  input_shape: [28, 28, 1]
  layers: [Flatten, {Dense: 10}, {Activation: softmax}]
"""


def test_slide_config_values():
    config = load_config(CONFIGS / "slide_cnn.yaml")
    assert config.model.name == "slide_cnn"
    assert config.train.optimizer.name == "adadelta"
    assert config.train.optimizer.kwargs == {"learning_rate": 1.0}
    assert (config.data.batch_size, config.train.epochs, config.train.loss.name) == (128, 12, "categorical_crossentropy")


def test_extends_deep_merges_and_replaces_lists():
    config = load_config(CONFIGS / "lenet5.yaml")
    assert config.model.name == "lenet5"
    assert config.model.input_shape == [28, 28, 1]  # inherited from slide_cnn.yaml
    assert config.train.optimizer.kwargs == {"learning_rate": 1.0}
    assert config.model.layers[0] == {"ZeroPadding2D": 2}  # the child's list replaces the parent's
    assert config.sources[-1].endswith("lenet5.yaml") and config.sources[0].endswith("slide_cnn.yaml")


def test_overrides_are_yaml_values_applied_after_inheritance():
    config = load_config(
        CONFIGS / "lenet5.yaml",
        ["train.epochs=3", "data.batch_size=256", "train.optimizer.learning_rate=5e-1",
         "train.metrics=[accuracy, top_k_categorical_accuracy]", "model.layers.6.Dense.units=100"],
    )
    assert config.train.epochs == 3 and config.data.batch_size == 256
    assert config.train.optimizer.kwargs["learning_rate"] == 0.5
    assert config.train.metrics == ["accuracy", "top_k_categorical_accuracy"]
    assert config.model.layers[6] == {"Dense": {"units": 100, "activation": "relu"}}
    assert str(config.where("train", "epochs")) == "<command line> (train.epochs=3)"


def test_yaml12_floats(tmp_path):
    path = write(tmp_path / "c.yaml", MINIMAL + "train:\n  optimizer: {name: sgd, learning_rate: 1e-3}\n")
    assert load_config(path).train.optimizer.kwargs["learning_rate"] == pytest.approx(0.001)


def test_unknown_key_names_file_line_column_and_suggests(tmp_path):
    path = write(tmp_path / "c.yaml", MINIMAL + "train:\n  optimzer: {name: sgd}\n")
    with pytest.raises(ConfigError) as info:
        load_config(path)
    text = str(info.value)
    assert text.startswith(f"{path}:5:3: error: train.optimzer: unknown key `optimzer`.")
    assert "Did you mean `optimizer`?" in text


def test_unknown_key_in_a_parent_file_points_at_the_parent(tmp_path):
    write(tmp_path / "base.yaml", MINIMAL + "data:\n  batch_sise: 64\n")
    child = write(tmp_path / "child.yaml", "extends: base.yaml\ntrain:\n  epochs: 2\n")
    with pytest.raises(ConfigError) as info:
        load_config(child)
    assert str(info.value).startswith(f"{tmp_path / 'base.yaml'}:5:3: error: data.batch_sise")
    assert "`batch_size`" in str(info.value)


def test_wrong_types_all_reported_in_file_order(tmp_path):
    path = write(tmp_path / "c.yaml", MINIMAL + "train:\n  epochs: '3'\ndata:\n  name: no\n")
    with pytest.raises(ConfigError) as info:
        load_config(path)
    lines = str(info.value).splitlines()
    assert lines[0].startswith(f"{path}:5:3: error: train.epochs: input should be a valid integer, got '3'")
    assert "Write numbers without quotes." in lines[0]
    assert lines[1].startswith(f"{path}:7:3: error: data.name:") and "quote the value" in lines[1]


def test_bad_override_key_is_reported_as_command_line(tmp_path):
    with pytest.raises(ConfigError) as info:
        load_config(CONFIGS / "slide_cnn.yaml", ["train.epoch=3"])
    assert str(info.value).startswith("<command line> (train.epoch=3): error: train.epoch: unknown key")
    assert "`epochs`" in str(info.value)
    with pytest.raises(ConfigError, match="not of the form key.sub=value"):
        load_config(CONFIGS / "slide_cnn.yaml", ["train.epochs"])


@pytest.mark.parametrize(
    "text, message",
    [
        ("model:\n  layers: [Flatten\n", r"c.yaml:\d+:\d+: error: invalid YAML"),
        # libyaml parses, but says `found character that cannot start any token`: the message is PyYAML's
        ("model:\n\t- Flatten\n", r"c.yaml:2:1: error: invalid YAML: found character '\\t' that cannot start any token"),
        ("a: &x 1\nb: *y\n", "found undefined alias 'y'"),
        ("- just\n- a list\n", "must be a mapping"),
        ("extends: nowhere.yaml\n", "does not exist"),
        ("data:\n  name: mnist\n", "missing required key `model`"),
        ("extends: c.yaml\n", "cycle"),
    ],
)
def test_malformed_files(tmp_path, text, message):
    path = write(tmp_path / "c.yaml", text)
    with pytest.raises(ConfigError, match=message):
        load_config(path)


def test_missing_file():
    with pytest.raises(ConfigError, match="config file not found: nope.yaml"):
        load_config("nope.yaml")


def test_config_is_frozen():
    config = load_config(CONFIGS / "slide_cnn.yaml")
    with pytest.raises(ValidationError):
        config.train.epochs = 1


def test_duplicate_keys_are_an_error_not_last_wins(tmp_path):
    path = write(tmp_path / "c.yaml", MINIMAL + "train:\n  epochs: 2\ntrain:\n  optimizer: sgd\n")
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert str(info.value).startswith(f"{path}:6:1: error: key `train` appears twice in the same mapping (first at line 4)")


def test_an_override_that_creates_a_section_is_blamed_on_the_command_line():
    with pytest.raises(ConfigError) as info:
        load_config(CONFIGS / "quickstart.yaml", ["foo.bar=1"])
    assert str(info.value).startswith("<command line> (foo.bar=1): error: foo: unknown key `foo`.")


def test_optimizer_may_be_given_by_name_alone(tmp_path):
    path = write(tmp_path / "c.yaml", MINIMAL + "train:\n  optimizer: sgd\n")
    assert load_config(path).train.optimizer.name == "sgd"
    default = load_config(write(tmp_path / "d.yaml", MINIMAL))
    assert (default.train.optimizer.name, default.train.optimizer.kwargs) == ("adadelta", {"learning_rate": 1.0})


@pytest.mark.parametrize(
    "text, message",
    [
        ("runtime:\n  seed: -1\n", "runtime.seed: input should be greater than or equal to 0"),
        ("data:\n  name: ''\n", "data.name: string should have at least 1 character"),
        ("model:\n  input_shape: [28, 28, 0]\n  layers: [Flatten]\n", "model.input_shape.2: input should be greater than 0"),
        ("model:\n  layers: [5]\n", "model.layers.0: each item must be a class name like `Flatten`"),
        ("train: [1, 2]\n", "train: expected a mapping of `key: value` lines"),
    ],
)
def test_schema_bounds(tmp_path, text, message):
    write(tmp_path / "base.yaml", MINIMAL)
    path = write(tmp_path / "c.yaml", "extends: base.yaml\n" + text)
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert message in str(info.value) and str(info.value).count("\n") == 0  # one error, not one per union branch


def test_non_utf8_and_folder_are_config_errors(tmp_path):
    path = tmp_path / "latin1.yaml"
    path.write_bytes("model:\n  name: caf\xe9\n".encode("latin-1"))
    with pytest.raises(ConfigError, match="is not UTF-8 text"):
        load_config(path)
    with pytest.raises(ConfigError, match="is a folder, not a config file"):
        load_config(tmp_path)


def test_every_item_is_resolved_and_checked_when_the_config_loads(tmp_path):
    from cnnzoo import BuildError
    from cnnzoo.config.items import BlockItem, LayerItem

    config = load_config(CONFIGS / "resnet" / "resnet20.yaml")
    kinds = [type(item).__name__ for item in config.items]
    assert kinds == ["LayerItem"] * 3 + ["BlockItem"] * 9 + ["LayerItem"] * 2
    block = config.items[7]  # stage2, block 2 of 3
    assert isinstance(block, BlockItem) and block.prefix == "stage2_block2_" and block.shortcut == "A"
    conv = block.layers[0]
    assert isinstance(conv, LayerItem) and conv.class_name == "Conv2D"
    assert conv.kwargs["filters"] == 32 and conv.kwargs["strides"] == 1 and conv.kwargs["use_bias"] is False
    assert str(conv.location).endswith("blocks.yaml:10:11")
    path = write(tmp_path / "c.yaml", MINIMAL.replace("{Dense: 10}", "{Dense: {units: 10, activaton: relu}}"))
    with pytest.raises(BuildError, match=r"c.yaml:3:\d+: error: model.layers.1: layer 2 \(Dense\) has no argument"):
        load_config(path)


def test_print_config_resolved_shows_the_expanded_layers():
    from conftest import cli

    done = cli("train", CONFIGS / "resnet" / "resnet20.yaml", "--print-config", "--resolved", "model.params.n=1")
    assert done.returncode == 0, done.stderr
    text = done.stdout
    assert "repeat: $n" in text.split("resolved_layers")[0]  # the config as written
    resolved = yaml.safe_load(text.split("(not a config key):\n")[1])["resolved_layers"]
    assert [next(iter(item)) for item in resolved] == ["Conv2D", "BatchNormalization", "Activation", "block", "block",
                                                       "block", "GlobalAveragePooling2D", "Dense"]
    stage2 = resolved[4]["block"]
    assert stage2["name"] == "stage2_block1" and stage2["uses"] == "basic" and stage2["shortcut"] == "A"
    assert stage2["layers"][0]["Conv2D"]["filters"] == 32 and stage2["layers"][0]["Conv2D"]["strides"] == 2


def test_null_for_a_key_that_takes_no_null_says_so(tmp_path):
    with pytest.raises(ConfigError) as error:
        load_config(CONFIGS / "quickstart.yaml", ["data.test_split=null"])
    assert "`test_split` cannot be null: give a value, or leave the key out for its default" in str(error.value)
