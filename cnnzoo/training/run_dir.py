"""The run directory: everything a run leaves behind, and where each piece lives.

    runs/<model>-<timestamp>/
      config.yaml      the resolved config (seed filled in): rerun it or --resume from it
      run.json         versions, seed, command, status (running/interrupted/failed/completed)
      logs/            TensorBoard: train/ and validation/ scalars, graph, config text
      checkpoints/     last.keras and best.keras, written every epoch
      backup/          BackupAndRestore state for --resume (removed when the run completes)
      history.csv      one row per epoch, appended across resumes
      model.keras      the final model (plain Keras: loads without cnnzoo)
      metrics.json     per-epoch history, epoch times and final test metrics
"""

from __future__ import annotations

import json
import platform
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cnnzoo.errors import CnnzooError


@dataclass(frozen=True)
class RunDir:
    path: Path

    config = property(lambda self: self.path / "config.yaml")
    info = property(lambda self: self.path / "run.json")
    logs = property(lambda self: self.path / "logs")
    checkpoints = property(lambda self: self.path / "checkpoints")
    backup = property(lambda self: self.path / "backup")
    history = property(lambda self: self.path / "history.csv")
    model = property(lambda self: self.path / "model.keras")
    metrics = property(lambda self: self.path / "metrics.json")

    def read_info(self) -> dict[str, Any]:
        try:
            return json.loads(self.info.read_text())
        except (OSError, ValueError):
            return {}

    def update_info(self, **fields: Any) -> None:
        info = self.read_info()
        info.update(fields)
        write_json(self.info, info)


def new_run_dir(name: str, output_dir: str | None, root: str = "runs") -> RunDir:
    """Create a fresh run directory; refuse to write over an earlier run."""
    if output_dir is not None:
        path = Path(output_dir)
        if (path / "config.yaml").exists():
            raise CnnzooError(
                f"{path} already holds a run",
                hint=f"Continue it with `--resume {path}`, or pick another --output-dir.",
            )
    else:
        stem = Path(root) / f"{name}-{time.strftime('%Y%m%d-%H%M%S')}"
        path, suffix = stem, 1
        while path.exists():  # two runs started in the same second
            suffix += 1
            path = stem.with_name(f"{stem.name}-{suffix}")
    try:
        path.mkdir(parents=True, exist_ok=True)
        probe = path / ".write-test"
        probe.write_text("ok")
        probe.unlink()
    except OSError as exc:
        raise CnnzooError(
            f"cannot write the run directory {path}: {exc.strerror}",
            hint="Choose a writable place with --output-dir DIR.",
        ) from None
    return RunDir(path)


def existing_run_dir(path: str) -> RunDir:
    run = RunDir(Path(path))
    if not (run.config.exists() and run.info.exists()):
        raise CnnzooError(
            f"{path} is not a cnnzoo run directory (it needs the config.yaml and run.json that `cnnzoo train` writes)",
            hint="Pass the folder `cnnzoo train` printed at start, e.g. runs/slide_cnn-20260101-120000.",
        )
    return run


def versions() -> dict[str, str]:
    import keras
    import numpy
    import tensorflow as tf
    import tensorflow_datasets as tfds

    from cnnzoo import __version__

    return {
        "cnnzoo": __version__,
        "python": platform.python_version(),
        "tensorflow": tf.__version__,
        "keras": keras.__version__,
        "tensorflow_datasets": tfds.__version__,
        "numpy": numpy.__version__,
        "platform": platform.platform(),
        "devices": ", ".join(d.name for d in tf.config.list_logical_devices()),
    }


def start_info(seed: int) -> dict[str, Any]:
    return {
        "status": "running",
        "seed": seed,
        "command": " ".join(sys.argv),
        "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "versions": versions(),
    }


def write_json(path: Path, data: Any) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(data, indent=2, sort_keys=False) + "\n")
    tmp.replace(path)  # atomic: a kill never leaves half a file
