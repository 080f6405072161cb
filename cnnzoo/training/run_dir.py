"""The run directory: everything a run leaves behind, and its life cycle (claim, create, record, finish).

    runs/<model>-<timestamp>/
      config.yaml      the resolved config the run started with (seed and precision filled in)
      run.json         versions, seed, command, status, and each resume's overrides and command
      logs/            TensorBoard: train/ and validation/ scalars, graph, config text
      checkpoints/     last.keras every epoch, best.keras at each best validation score
      backup/          the resume state (removed when the run completes)
      history.csv      one row per epoch, appended across resumes
      model.keras      the final model (plain Keras: loads without cnnzoo)
      classes.json     the class names the outputs stand for (what predict and the pictures show), and
                       the training images where known (a resume says when a folder's changed)
      skipped_files.csv  files of a `data.path` folder that were not used, and why
      initialization.json  kernels computed from training images before the first step (`patch_whitening`)
      metrics.json     per-epoch history, epoch times, final validation and test metrics

A folder that holds anything but a cnnzoo run is never written into; an earlier run is
replaced only when asked (`--overwrite`). The config a run trains with is config.yaml
with every resume's overrides applied in order (`RunDir.config_overrides`).
"""

from __future__ import annotations

import json
import platform
import shutil
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cnnzoo.errors import CnnzooError
from cnnzoo.files import CLAIM, atomic_file, is_run


@dataclass(frozen=True)
class RunDir:
    path: Path
    shared: Path | None = None  # a worker's scratch copy: the chief's run, which the user resumes

    @property
    def home(self) -> Path:
        """The run directory as its user knows it (for commands in messages)."""
        return self.shared or self.path

    config = property(lambda self: self.path / "config.yaml")
    info = property(lambda self: self.path / "run.json")
    logs = property(lambda self: self.path / "logs")
    checkpoints = property(lambda self: self.path / "checkpoints")
    backup = property(lambda self: self.path / "backup")
    history = property(lambda self: self.path / "history.csv")
    model = property(lambda self: self.path / "model.keras")
    metrics = property(lambda self: self.path / "metrics.json")
    classes = property(lambda self: self.path / "classes.json")
    skipped = property(lambda self: self.path / "skipped_files.csv")
    initialization = property(lambda self: self.path / "initialization.json")

    def read_info(self) -> dict[str, Any]:
        try:
            info = json.loads(self.info.read_text())
        except (OSError, ValueError):
            return {}
        return info if isinstance(info, dict) else {}

    def update_info(self, **fields: Any) -> None:
        info = self.read_info()
        info.update(fields)
        write_json(self.info, info)

    def complete(self, metrics: dict[str, Any]) -> None:
        """The run's last writes: metrics.json, then status completed (the resume state is gone by now)."""
        write_json(self.metrics, metrics)
        self.update_info(status="completed", finished=_now())

    def config_overrides(self) -> list[str]:
        """Every resume's overrides, oldest first: config.yaml plus these is the run's config."""
        return [o for resume in self.read_info().get("resumes", []) for o in resume.get("overrides", [])]

    def record_resume(self, overrides: list[str]) -> None:
        info = self.read_info()
        resumes = [*info.get("resumes", []), {"overrides": list(overrides), "command": " ".join(sys.argv),
                                              "started": _now()}]
        self.update_info(status="running", resumes=resumes)



def claim(output_dir: str | None, name: str, *, overwrite: bool = False, root: str = "runs") -> Path:
    """The folder a new run will use, taken atomically: two runs started at once (a job array)
    never share one. `release` gives it back if the run stops before it starts.

    Raises:
        CnnzooError: the folder holds files that are not a run, or holds a run and
            `overwrite` is not set, or is a file, or another run is taking it.
    """
    if output_dir is None:
        stem = Path(root) / f"{name}-{time.strftime('%Y%m%d-%H%M%S')}"
        path, suffix = stem, 1
        while not _made(path):  # taken, e.g. by a run started in the same second
            suffix += 1
            path = stem.with_name(f"{stem.name}-{suffix}")
        _take(path)
        return path
    path = Path(output_dir)
    if path.exists() and not path.is_dir():
        raise CnnzooError(f"--output-dir {path} is a file, not a folder", hint="Choose a new folder name.")
    entries = sorted(p.name for p in path.iterdir()) if path.is_dir() else []
    if entries == [CLAIM]:
        raise _taken(path)
    if not entries:
        _take(path)
        return path
    if not is_run(path):
        shown = ", ".join(entries[:3]) + (f" and {len(entries) - 3} more" if len(entries) > 3 else "")
        raise CnnzooError(
            f"--output-dir {path} is not empty ({shown}) and holds no cnnzoo run: cnnzoo does not write into it",
            hint="Give a new or empty folder, e.g. --output-dir runs/my-run.",
        )
    if not overwrite:
        raise CnnzooError(
            f"{path} already holds a run",
            hint=f"Continue it with `--resume {path}`, replace it with --overwrite, or pick another --output-dir.",
        )
    return path


def _made(path: Path) -> bool:
    """Create the folder; False when it exists already (mkdir is atomic: one process wins)."""
    try:
        path.mkdir(parents=True)
        return True
    except FileExistsError:
        return False


def _take(path: Path) -> None:
    try:
        path.mkdir(parents=True, exist_ok=True)
        (path / CLAIM).open("x").close()  # O_EXCL: of two runs given one empty folder, one wins
    except FileExistsError:
        raise _taken(path) from None
    except OSError as exc:
        raise CnnzooError(f"cannot write the run directory {path}: {exc.strerror}",
                          hint="Choose a writable place with --output-dir DIR.") from None


def _taken(path: Path) -> CnnzooError:
    return CnnzooError(f"another cnnzoo run is starting in {path}",
                       hint="Give each run its own --output-dir (or none: each gets runs/<model>-<time>[-N]).")


def release(path: Path | None, *, started: bool) -> None:
    """Drop the claim: the run wrote its run.json (`started`), or stopped before; an untouched folder goes."""
    if path is None:
        return
    (path / CLAIM).unlink(missing_ok=True)
    if not started:
        try:
            path.rmdir()  # only if empty: never anything a user put there
        except OSError:
            pass


def create(path: Path, *, overwrite: bool = False) -> RunDir:
    """Create the claimed folder (replacing an earlier run there only with `overwrite`), checked writable."""
    try:
        if overwrite and is_run(path):
            shutil.rmtree(path)
        path.mkdir(parents=True, exist_ok=True)
        (path / CLAIM).touch()  # replaced runs are taken here
        probe = path / ".write-test"
        probe.write_text("ok")
        probe.unlink()
    except OSError as exc:
        raise CnnzooError(
            f"cannot write the run directory {path}: {exc.strerror}",
            hint="Choose a writable place with --output-dir DIR.",
        ) from None
    return RunDir(path)


def check_free_space(path: Path, needed: int) -> None:
    """Fail before training, not at the first checkpoint, when the disk cannot hold the run's files."""
    existing = next(p for p in (path, *path.absolute().parents) if p.exists())
    free = shutil.disk_usage(existing).free
    if free < needed:
        raise CnnzooError(
            f"only {free / 2**20:.0f} MB free on the disk holding {path}; this run needs about "
            f"{needed / 2**20:.0f} MB for its checkpoints and logs",
            hint="Free some space or choose another place with --output-dir DIR.",
        )


def existing_run_dir(path: str) -> RunDir:
    run = RunDir(Path(path))
    if not is_run(run.path):
        raise CnnzooError(
            f"{path} is not a cnnzoo run directory (it needs the config.yaml and run.json that `cnnzoo train` writes)",
            hint="Pass the folder `cnnzoo train` printed at start, e.g. runs/slide_cnn-20260101-120000.",
        )
    return run


def versions() -> dict[str, str]:
    from importlib.metadata import version

    import keras
    import numpy
    import tensorflow as tf

    from cnnzoo.version import __version__

    return {
        "cnnzoo": __version__,
        "python": platform.python_version(),
        "tensorflow": tf.__version__,
        "keras": keras.__version__,
        # from its metadata: a run on an image folder never imports TFDS (0.2-0.5 s at its start)
        "tensorflow_datasets": version("tensorflow-datasets"),
        "numpy": numpy.__version__,
        "platform": platform.platform(),
        "devices": ", ".join(d.name for d in tf.config.list_logical_devices()),
    }


def start_info(seed: int) -> dict[str, Any]:
    return {"status": "running", "seed": seed, "command": " ".join(sys.argv), "started": _now(),
            "versions": versions()}


def write_json(path: Path, data: Any) -> None:
    with atomic_file(path) as f:  # processes sharing a search folder write search.json together
        f.write((json.dumps(data, indent=2, sort_keys=False) + "\n").encode())


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S%z")
