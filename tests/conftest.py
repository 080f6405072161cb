"""Shared fixtures: a private TFDS data dir per test session, the real shared data if present."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
CONFIGS = REPO / "configs"
# The course's shared datasets sit beside the repository on the team's machines and CI.
SHARED_DATA = REPO.parent / "shared" / "data"


@pytest.fixture(scope="session", autouse=True)
def tfds_data_dir(tmp_path_factory) -> Path:
    """Every test (and subprocess) prepares TFDS datasets in one fresh folder, never ~/tensorflow_datasets."""
    path = tmp_path_factory.mktemp("tfds")
    os.environ["TFDS_DATA_DIR"] = str(path)
    return path


def run_cli(*args: str, cwd: Path | None = None, timeout: int = 300) -> subprocess.CompletedProcess:
    """Run `python -m cnnzoo.cli ARGS` in a fresh process, as a user's shell would."""
    return subprocess.run(
        [sys.executable, "-m", "cnnzoo.cli", *args],
        cwd=cwd or REPO,
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path
