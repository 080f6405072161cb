"""Find a trained model, the config it was trained with and its class names, from a run directory or a `.keras` file."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

from cnnzoo.config.loader import load_config
from cnnzoo.config.schema import Config
from cnnzoo.errors import CnnzooError
from cnnzoo.files import is_run
from cnnzoo.training.run_dir import RunDir

EXPORTED = "_with_preprocessing"  # the end of an exported model's name (`export.with_preprocessing`)


def load_trained(path: str, config_path: str | None = None):
    """(config, model) for a run directory, a `.keras` file in one, or any `.keras` with `--config`."""
    import keras

    given = Path(path)
    model_file = given / "model.keras" if given.is_dir() else given
    if not model_file.is_file() and is_run(given):
        last = given / "checkpoints" / "last.keras"
        raise CnnzooError(f"the run in {path} has no model.keras: it did not complete",
                          hint=f"Complete it with `cnnzoo train --resume {path}`"
                               + (f", or use its last epoch's model: {last}." if last.is_file() else "."))
    if not model_file.is_file():
        raise CnnzooError(
            f"{path} is neither a completed run directory (with model.keras) nor a .keras file",
            hint="Pass the folder `cnnzoo train` wrote, e.g. runs/slide_cnn-20261125-130236, or its model.keras.",
        )
    if model_file.suffix == ".keras" and not zipfile.is_zipfile(model_file):  # (Keras says "file not found")
        raise CnnzooError(f"{model_file} is not a Keras model file: a .keras file is a zip archive")
    try:
        model = keras.models.load_model(model_file)
    except (ValueError, OSError) as exc:
        raise CnnzooError(f"cannot load {model_file}: {str(exc).splitlines()[0]}") from None
    if model.name.endswith(EXPORTED):  # its preprocessing is inside: the run's would be applied twice
        raise CnnzooError(f"{model_file} is an export (`cnnzoo export`: it takes raw photos, its preprocessing "
                          "built in), not a trained run's model", hint="Pass the run it was exported from (its "
                          "folder or model.keras); or export it as .onnx or .tflite, which `predict` runs as they are.")
    run = run_of(model_file)
    if config_path:
        config: Config = load_config(config_path)
        _check_trained_with(config, config_path, model, model_file)
    elif run is not None:
        config = load_config(run.config, run.config_overrides())  # with every resume's overrides
    else:
        raise CnnzooError(
            f"no config.yaml found next to {model_file}: the data and preprocessing it was trained with are unknown",
            hint="Pass the config it was trained with: --config configs/X.yaml.",
        )
    return config, model


def _check_trained_with(config: Config, config_path: str, model, model_file: Path) -> None:
    """Refuse a --config whose images could not be the model's input: another size, or channels."""
    rows, cols, channels = (tuple(model.input_shape[1:]) + (None, None, None))[:3]
    resize = config.data.preprocessing.resize
    wanted = 3 if config.data.color_mode == "rgb" else 1
    if (resize and (rows, cols) != tuple(resize)) or (config.data.path and channels != wanted):
        got = f"{resize[0]}x{resize[1]}" if resize and (rows, cols) != tuple(resize) else f"{wanted}-channel"
        raise CnnzooError(f"--config {config_path} gives the model {got} images, but {model_file} takes "
                          f"{rows}x{cols}x{channels}: it is not the config this model was trained with",
                          hint="Pass the config of the run the model comes from (its config.yaml).")


def class_names_of(path: str, config: Config) -> list[str] | None:
    """The class names of the model at `path` (a run directory or a `.keras` file in one).

    The run's `classes.json` (written by the trainer; the only record of a `data.path` run's
    classes) comes first; older runs and TFDS runs fall back to the catalogue's names. None when
    neither knows them (callers then print class numbers).
    """
    from cnnzoo.data.catalog import class_names

    given = Path(path)
    run = run_of(given / "model.keras" if given.is_dir() else given)
    if run is not None:
        try:
            names = json.loads((run.path / "classes.json").read_text())["class_names"]
        except (OSError, ValueError, KeyError, TypeError):
            names = None  # absent (an older run) or unreadable: the catalogue still knows TFDS names
        if isinstance(names, list) and names:
            return [str(name) for name in names]
    return class_names(config)


def run_of(model_file: Path) -> RunDir | None:
    """The run a model file is part of: run/model.keras, run/checkpoints/best.keras (not run/export/...)."""
    folder = model_file.parent.parent if model_file.parent.name == "checkpoints" else model_file.parent
    return RunDir(folder) if is_run(folder) else None
