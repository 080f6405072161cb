"""The command line as a user meets it: exit codes, one-paragraph errors, no tracebacks."""

from __future__ import annotations

import subprocess
import sys

import pytest

from conftest import CONFIGS, REPO, cli, run_cli, write


def assert_user_error(done: subprocess.CompletedProcess, *fragments: str) -> None:
    assert done.returncode == 2, done.stderr[-3000:]
    assert "Traceback" not in done.stderr
    for fragment in fragments:
        assert fragment in done.stderr, done.stderr[-3000:]


@pytest.mark.slow
def test_validate_ok_prints_the_model_summary():
    done = run_cli("validate", str(CONFIGS / "lenet5.yaml"), "data.name=mnist_sample")
    assert done.returncode == 0, done.stderr
    assert "OK: model `lenet5` 28x28x1 -> 10, 9 Keras layers, 61,706 parameters" in done.stdout
    # Before the dataset is prepared the slices are not known yet; after, they are named.
    assert ("splits: training on train (first 90%), validating on its last 10%" in done.stdout or
            "splits: training on train[0:5400], validating on train[5400:6000] (the last 10%" in done.stdout)
    assert "oneDNN" not in done.stderr  # TensorFlow's start-up chatter is held back


def test_validate_reports_three_typos_in_one_session(tmp_path):
    base = CONFIGS / "slide_cnn.yaml"
    key = write(tmp_path / "key.yaml", f"extends: {base}\ntrain:\n  optimzer: {{name: sgd}}\n")
    layer = write(tmp_path / "layer.yaml", f"extends: {base}\nmodel:\n  layers:\n    - Conv2D: [8, 3]\n    - MaxPoling2D: 2\n")
    arg = write(tmp_path / "arg.yaml", f"extends: {base}\nmodel:\n  layers:\n    - Conv2D: {{filters: 8, kernal_size: 3}}\n")
    assert_user_error(cli("validate", str(key)), f"{key}:3:3: error: train.optimzer: unknown key", "`optimizer`")
    assert_user_error(cli("validate", str(layer)), f"{layer}:5:7: error:", "unknown layer `MaxPoling2D`", "`MaxPooling2D`")
    assert_user_error(cli("validate", str(arg)), f"{arg}:4:28: error:", "no argument `kernal_size`", "`kernel_size`")


def test_validate_checks_optimizer_loss_and_callbacks():
    assert_user_error(cli("validate", str(CONFIGS / "slide_cnn.yaml"), "train.optimizer.name=adadelt"),
                      "unknown optimizer `adadelt`", "`Adadelta`")
    assert_user_error(cli("validate", str(CONFIGS / "slide_cnn.yaml"), "train.optimizer.learning_rat=1"),
                      "optimizer Adadelta has no argument `learning_rat`", "`learning_rate`")
    assert_user_error(cli("validate", str(CONFIGS / "slide_cnn.yaml"), "train.loss=categorical_crosentropy"),
                      "unknown loss `categorical_crosentropy`", "`categorical_crossentropy`")
    assert_user_error(cli("validate", str(CONFIGS / "slide_cnn.yaml"), "train.callbacks=[{EarlyStoping: {patience: 2}}]"),
                      "unknown callback `EarlyStoping`", "`EarlyStopping`")


def test_adadelta_without_learning_rate_warns_about_the_keras3_default():
    done = cli("validate", CONFIGS / "slide_cnn.yaml", "train.optimizer={name: adadelta}", "data.name=mnist_sample")
    assert done.returncode == 0
    assert "warning:" in done.stderr and "Keras 3's default 0.001" in done.stderr


@pytest.mark.slow
def test_train_py_is_an_alias_of_cnnzoo_train(tmp_path):
    done = subprocess.run(
        [sys.executable, str(REPO / "train.py"), "--config", str(CONFIGS / "slide_cnn.yaml"), "--print-config",
         "train.epochs=3", "data.batch_size=256"],
        capture_output=True, text=True, cwd=tmp_path, timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert "epochs: 3" in done.stdout and "batch_size: 256" in done.stdout and "learning_rate: 1.0" in done.stdout
    positional = cli("train", CONFIGS / "slide_cnn.yaml", "train.epochs=3", "data.batch_size=256", "--print-config")
    assert positional.returncode == 0 and positional.stdout == done.stdout


def test_unknown_dataset_suggests_names(tmp_path):
    done = cli("train", "--config", str(CONFIGS / "quickstart.yaml"), "data.name=mnits", "--output-dir", str(tmp_path / "r"))
    assert_user_error(done, "TFDS has no dataset `mnits`", "`mnist`")
    assert not (tmp_path / "r").exists()  # nothing written before the data is known to exist


def test_manual_dir_missing_files_says_which(tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    done = cli("train", "--config", str(CONFIGS / "slide_cnn.yaml"), "--manual-dir", str(empty),
               "--output-dir", str(tmp_path / "r"), f"data.data_dir={tmp_path / 'tfds'}")  # surely not prepared
    assert_user_error(done, f"manual_dir {empty} lacks", "train-images-idx3-ubyte.gz", "--manual-dir DIR")
    assert not (tmp_path / "r").exists()


def test_bad_split_names_the_available_ones(tmp_path):
    done = cli("train", "--config", str(CONFIGS / "quickstart.yaml"), "data.validation_split=valid", "--output-dir", str(tmp_path / "r"))
    assert_user_error(done, "has no split `valid`", "Its splits:", "train", "test")
    assert not (tmp_path / "r").exists()


def test_dataset_shape_mismatch_is_explained(tmp_path):
    done = cli("train", "--config", str(CONFIGS / "quickstart.yaml"), "model.input_shape=[32, 32, 3]", "--output-dir", str(tmp_path / "r"))
    assert_user_error(done, "<command line> (model.input_shape=[32, 32, 3]): error: model.input_shape: "
                      "the model takes 32x32x3 inputs but `mnist_sample` images are 28x28x1")
    assert not (tmp_path / "r").exists()


def test_validate_checks_the_config_against_the_dataset_metadata():
    done = cli("validate", str(CONFIGS / "slide_cnn.yaml"), "data.name=cifar10")
    assert_user_error(done, "the model takes 28x28x1 inputs but `cifar10` images are 32x32x3")


def test_resume_rejects_flags_that_do_not_apply(tmp_path):
    done = cli("train", "--resume", str(tmp_path), "--output-dir", str(tmp_path / "x"))
    assert_user_error(done, "--output-dir cannot go with it")


@pytest.mark.slow
def test_training_prints_one_line_per_epoch_when_not_a_terminal(tmp_path):
    done = cli("train", "--config", CONFIGS / "quickstart.yaml", "--output-dir", tmp_path / "r",
               "train.epochs=2", "train.steps_per_epoch=3")
    assert done.returncode == 0, done.stderr[-3000:]
    lines = done.stdout.splitlines()
    epochs = [line for line in lines if line.startswith("epoch ")]
    assert len(epochs) == 2 and epochs[0].startswith("epoch 1/2 - ") and "val_accuracy" in epochs[1]
    assert not any(line.startswith("Epoch ") for line in lines)
    assert "600,810 parameters" in lines[0] and "test accuracy" in lines[-1]


def test_resume_refuses_a_folder_that_is_not_a_run(tmp_path):
    assert_user_error(cli("train", "--resume", str(tmp_path)), "is not a cnnzoo run directory")


def test_output_dir_that_holds_a_run_is_not_overwritten(tmp_path):
    write(tmp_path / "config.yaml", "model: {layers: [Flatten]}\n")
    write(tmp_path / "run.json", "{}\n")
    done = cli("train", "--config", str(CONFIGS / "quickstart.yaml"), "--output-dir", str(tmp_path))
    assert_user_error(done, "already holds a run", "--resume", "--overwrite")
    assert (tmp_path / "config.yaml").read_text() == "model: {layers: [Flatten]}\n"


def test_offline_and_unprepared_fails_fast_with_instructions(tmp_path, monkeypatch):
    """No DNS (as on an offline machine): a clear message at once, not TFDS's ~200 s of retries."""
    import socket

    from cnnzoo import DataError, load_config
    from cnnzoo.data.tfds_input import load_datasets

    def no_network(*args, **kwargs):
        raise socket.gaierror(-2, "Name or service not known")

    monkeypatch.setattr(socket, "getaddrinfo", no_network)
    config = load_config(CONFIGS / "slide_cnn.yaml", [f"data.data_dir={tmp_path}"])
    with pytest.raises(DataError) as info:
        load_datasets(config, one_hot=True)
    text = str(info.value)
    assert "slide_cnn.yaml:" in text and "is not prepared" in text and "cannot be reached" in text
    for name in ("train-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz", "--manual-dir", "CNNZOO_MANUAL_DIR", "mnist_sample"):
        assert name in text


def test_list_prints_the_names_a_config_may_use():
    done = cli("list", "layers")
    assert done.returncode == 0 and {"Conv2D", "MaxPooling2D", "Dense"} <= set(done.stdout.split())


def test_a_commands_first_imports_run_without_garbage_collections_and_freeze_what_they_made(tmp_path, monkeypatch,
                                                                                          unfrozen):
    """TensorFlow's and Keras' imports make long-lived objects that collections during the import would scan
    again and again: a command's first import of each runs with none, and freezes what it made."""
    import gc

    from cnnzoo.cli import console

    write(tmp_path / "like_tensorflow.py", "made = [[] for _ in range(50_000)]\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    seen = []

    def collecting(phase, info):
        if phase == "start":
            seen.append(info["generation"])

    gc.callbacks.append(collecting)
    try:
        for first_import in (None, console._first_keras_import):
            finder = [console._FirstImport("like_tensorflow", first_import)] if first_import else []
            monkeypatch.setattr(sys, "meta_path", [*finder, *sys.meta_path])
            seen.clear()
            import like_tensorflow

            if first_import is None:
                assert seen, "an import this big causes collections"
            else:
                assert not seen and gc.isenabled()
                assert not any(o is like_tensorflow.made for o in gc.get_objects())  # frozen
            monkeypatch.delitem(sys.modules, "like_tensorflow")
    finally:
        gc.callbacks.remove(collecting)


def test_a_commands_first_keras_import_leaves_out_the_notebook_modules(tmp_path, monkeypatch):
    """Keras imports IPython and pyplot when installed; a command's first import of it runs without them
    (Keras takes their ImportError as "not installed"), and afterwards they import as usual."""
    from cnnzoo.cli import console

    write(tmp_path / "like_keras.py", "try:\n    import IPython\nexcept ImportError:\n    IPython = None\n"
                                      "try:\n    import matplotlib.pyplot as plt\nexcept ImportError:\n    plt = None\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    for name in console.NOTEBOOK_MODULES:
        monkeypatch.delitem(sys.modules, name, raising=False)  # as in a new Python; put back afterwards
    monkeypatch.setattr(sys, "meta_path", [console._FirstImport("like_keras", console._without_notebook_modules),
                                           *sys.meta_path])
    import like_keras

    assert like_keras.IPython is None and like_keras.plt is None
    assert all(name not in sys.modules for name in console.NOTEBOOK_MODULES)  # importable again
    assert not any(getattr(finder, "name", None) == "like_keras" for finder in sys.meta_path)  # used once
    monkeypatch.delitem(sys.modules, "like_keras")
