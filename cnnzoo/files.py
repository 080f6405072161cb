"""Files written whole or not at all."""

from __future__ import annotations

import contextlib
import os
import uuid
from pathlib import Path


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
