"""validate and train take one path (`cnnzoo.plan`): a config validate accepts trains; one it refuses,
train refuses with the same message, having written nothing."""

from __future__ import annotations

import pytest

from cnnzoo import CnnzooError, load_config
from conftest import CONFIGS, PREPARED_DIR, SHARED_DATA, cli

SHIPPED = sorted(str(p.relative_to(CONFIGS)) for p in CONFIGS.rglob("*.yaml"))
MIXINS = ("resnet/blocks.yaml", "resnet/plain.yaml", "imagenet_data.yaml")  # parts that other configs extend
OFFLINE = {"mnist": SHARED_DATA / "mnist", "cifar10": SHARED_DATA / "cifar10"}  # present on the team's machines and CI


def _data_args(name: str) -> list[str]:
    """--manual-dir for the config's dataset when ../shared/data has it (else both commands say it is missing),
    prepared once per test run into the run's shared folder."""
    try:
        folder = OFFLINE.get(load_config(CONFIGS / name).data.name)
    except CnnzooError:  # a partial file (a mixin) or an error both commands will report
        return []
    if folder is None or not folder.is_dir():
        return []
    return ["--manual-dir", str(folder), f"data.data_dir={PREPARED_DIR}"]


def _cli(*args: str) -> tuple[int, str, str]:
    done = cli(*args)
    return done.returncode, done.stdout, done.stderr


def _errors(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if "error:" in line]


@pytest.mark.slow
@pytest.mark.parametrize("name", SHIPPED)
def test_validate_and_a_dry_run_give_the_same_answer_for_every_shipped_config(name):
    args = [str(CONFIGS / name), *_data_args(name)]
    validate, dry = _cli("validate", *args), _cli("train", "--dry-run", *args)
    assert validate[0] == dry[0] and _errors(validate[2]) == _errors(dry[2])
    assert validate[1].splitlines()[1:] == dry[1].splitlines()[1:]  # the plan, line for line
    data = None if name in MIXINS else load_config(CONFIGS / name).data
    if data is not None and "imagenet" not in data.name and data.path is None:  # not a user's own folder
        assert validate[0] == 0 or not _data_args(name), validate[2]  # shipped configs validate where data is at hand


@pytest.mark.slow
@pytest.mark.parametrize("name", ["quickstart.yaml", "slide_cnn_keras1.yaml", "lenet5.yaml"])
def test_a_config_that_validates_trains(name, tmp_path):
    """Full MNIST among them: TFDS's own mnist builder, prepared offline from the canonical files."""
    # One step, and 1,000 test images (validated on and tested: four passes over all 10,000 took 2.6 s).
    args = [str(CONFIGS / name), *_data_args(name), "train.epochs=1", "train.steps_per_epoch=1",
            "data.test_split=test[:1000]", "data.validation_split=test[:1000]"]
    validate = _cli("validate", *args)
    trained = _cli("train", *args, "--output-dir", str(tmp_path / "run"))
    assert validate[0] == trained[0], (validate[2], trained[2])
    if validate[0] == 0:
        assert "cnnzoo: test accuracy" in trained[1] and (tmp_path / "run" / "model.keras").is_file()
    else:  # the dataset is not at hand here: both say so
        assert _errors(validate[2]) == _errors(trained[2]) and not (tmp_path / "run").exists()


BAD = [
    ("quickstart.yaml", "train.optimizer.name=adamm"),
    ("quickstart.yaml", "model.layers.0.Conv2D.kernal_size=3"),
    ("quickstart.yaml", "model.layers.4.MaxPooling2D=30"),
    ("quickstart.yaml", "model.layers.10=Dense: 7"),
    ("quickstart.yaml", "model.input_shape=[32, 32, 3]"),
    ("quickstart.yaml", "model.input_shape=[null, null, 1]"),  # an open size and no data.preprocessing.resize
    ("quickstart.yaml", "data.name=mnits"),
    ("quickstart.yaml", "data.validation_split=valid"),
    ("quickstart.yaml", "data.train_split=train[:70000]"),
    ("quickstart.yaml", "data.preprocessing.mean=[0.1, 0.2, 0.3]"),
    ("quickstart.yaml", "train.lr_schedule={name: PiecewiseConstantDecay, boundaries: [1], values: [1.0]}"),
    ("quickstart.yaml", "train.callbacks=[{EarlyStopping: {patience: -1, monitr: val_loss}}]"),
    ("quickstart.yaml", "runtime.strategy=mirrored"),
    ("quickstart.yaml", "runtime.precision=mixed_float16"),
    ("quickstart.yaml", "runtime.devices=[GPU:3]"),
    ("resnet/resnet20.yaml", "model.layers.4.stage.first={stride: 2}"),
    ("resnet/resnet20.yaml", "model.blocks.basic.shortcut=identity"),
    ("slide_cnn.yaml", "model.name=a b"),
]


@pytest.mark.parametrize("name, override", BAD)
def test_a_config_validate_refuses_train_refuses_with_the_same_message_and_writes_nothing(name, override, tmp_path):
    args = [str(CONFIGS / name), *_data_args(name), override]
    validate = _cli("validate", *args)
    trained = _cli("train", *args, "--output-dir", str(tmp_path / "run"))
    assert validate[0] == trained[0] == 2, (validate, trained)
    assert _errors(validate[2]) == _errors(trained[2]) != []
    assert not (tmp_path / "run").exists()
