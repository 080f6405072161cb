"""`cnnzoo list models`: every shipped config that builds a model, with its parameters and MACs.

The zoo is the `configs/` folder itself (one registry: a file per model, found by walking it),
so a new YAML file is listed without code. Files that only hold parts other configs extend
(data settings, block definitions) and `experiments/` (recipes for models listed elsewhere)
are left out.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Optional

SKIPPED_FOLDERS = ("experiments",)


@dataclass(frozen=True)
class ZooRow:
    config: str  # path relative to the configs folder
    model: str
    input_shape: tuple[int, ...]
    params: int
    macs: int


def default_folder() -> Path:
    """`configs/` in the working directory, else the one beside the installed package (a checkout)."""
    here = Path("configs")
    return here if here.is_dir() else Path(__file__).resolve().parents[2] / "configs"


def model_configs(folder: Path) -> list[Path]:
    """The YAML files under `folder` that name a model of their own, sorted."""
    from cnnzoo.config.yaml_io import read_yaml  # bounded, and its errors name the file and line

    found = []
    for path in sorted(folder.rglob("*.yaml")):
        if path.relative_to(folder).parts[0] in SKIPPED_FOLDERS:
            continue
        raw, _ = read_yaml(path)
        if isinstance(raw, dict) and isinstance(raw.get("model"), dict) and "name" in raw["model"]:
            found.append(path)
    return found


def describe(path: Path, folder: Path) -> ZooRow:
    """Build the config's model (no data needed, weights with shapes and no values) and count it, as
    `cnnzoo inspect` does."""
    from cnnzoo.config.loader import load_config
    from cnnzoo.models import inspect
    from cnnzoo.models.builder import build_model
    from cnnzoo.models.weights_budget import shapes_only

    with warnings.catch_warnings(), shapes_only():
        warnings.simplefilter("ignore")  # e.g. the Keras-1 spellings slide_cnn_keras1.yaml shows on purpose
        model = build_model(load_config(path))
    info = inspect.summary(model)  # the model goes with this frame: one of the zoo in memory at a time
    return ZooRow(str(path.relative_to(folder)), model.name, tuple(info["input_shape"]), info["total_params"],
                  info["macs"])


def rows(folder: Optional[Path] = None) -> Iterator[ZooRow]:
    folder = folder or default_folder()
    for path in model_configs(folder):
        yield describe(path, folder)


def format_row(row: ZooRow) -> str:
    shape = "x".join(str(d) for d in row.input_shape)
    return f"{row.config:<30} {row.model:<18} {shape:>11} {row.params:>13,} {row.macs / 1e6:>11,.1f}"


HEADER = f"{'config':<30} {'model':<18} {'input':>11} {'parameters':>13} {'MMACs':>11}"
