"""Files written whole or not at all, and the files that make a folder a run's."""

from __future__ import annotations

import contextlib
import os
import uuid
from pathlib import Path

CLAIM = ".cnnzoo-claim"  # made exclusively by the run that takes a folder; gone once its run.json exists


def is_run(path: Path) -> bool:
    """A run's folder (`cnnzoo.training.run_dir`): its config and record written."""
    return (path / "config.yaml").is_file() and (path / "run.json").is_file()


@contextlib.contextmanager
def atomic_file(path: Path):
    """A binary file to write, under a temporary name of this writer's own, renamed to `path` when the block
    ends and removed if it fails: a kill never leaves half a file, and two writers (processes sharing a
    folder) never take each other's temporary file."""
    temporary = path.with_name(f".{path.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp")
    try:
        with temporary.open("xb") as f:
            yield f
        os.replace(temporary, path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
