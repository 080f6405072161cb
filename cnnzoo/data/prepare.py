"""Prepare a TFDS dataset once: downloaded, or offline from a manual_dir of original files or `.npz` arrays.

Offline, TFDS would retry each download for minutes; here a missing network or file is
reported at once, with the files to put where. Concurrent processes (e.g. the workers of
a multi-worker run sharing a data dir) prepare one at a time through a lock file.
"""

from __future__ import annotations

import contextlib
import socket
import sys
from pathlib import Path
from urllib.parse import urlparse

from cnnzoo.config.schema import Config, DataConfig
from cnnzoo.data import arrays_builder
from cnnzoo.errors import DataError

MANUAL_DIR_ENV = "CNNZOO_MANUAL_DIR"


def expected_files(builder) -> list[str]:
    """File names TFDS downloads for this dataset (what a manual_dir must hold)."""
    return sorted({info.filename for info in (builder.url_infos or {}).values() if info.filename})


def prepare(builder, data: DataConfig, manual_dir: str | None, config: Config):
    """Download and prepare once; offline from manual_dir. Failures become DataErrors.

    A manual_dir holds either the original download files or `.npz` arrays
    (`cnnzoo.data.arrays_builder`). Returns the builder to read the prepared data with.
    """
    if builder.is_prepared():
        return builder
    with _preparation_lock(Path(builder.data_dir_root) / f".{data.name}.prepare.lock"):
        ready = tfds_builder_prepared(data)  # another process (e.g. a second worker) may have done it
        return ready if ready is not None else _prepare(builder, data, manual_dir, config)


def tfds_builder_prepared(data: DataConfig):
    """A fresh builder for the dataset if it is prepared now, else None."""
    import tensorflow_datasets as tfds

    builder = tfds.builder(data.name, data_dir=data.data_dir)
    return builder if builder.is_prepared() else None


@contextlib.contextmanager
def _preparation_lock(path: Path):
    """One process prepares a dataset at a time; the others wait, then reuse it."""
    try:
        import fcntl
    except ImportError:  # Windows: no advisory locks; concurrent preparation is rare there
        yield
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _prepare(builder, data: DataConfig, manual_dir: str | None, config: Config):
    import tensorflow_datasets as tfds

    files = expected_files(builder)
    writer = builder
    if manual_dir is not None:
        folder = Path(manual_dir).expanduser()
        if "train" in arrays_builder.array_splits(folder) and arrays_builder.can_build_from_arrays(builder):
            writer = arrays_builder.builder_from_arrays(builder)
        else:
            _check_manual_dir(folder, files, data.name)
    elif not _hosts_resolve(builder):
        # Offline, TFDS would retry each download for ~200 s before failing: say so at once.
        raise DataError(
            f"dataset `{data.name}` is not prepared in {builder.data_dir} and its download host cannot be reached",
            location=config.where("data", "name"),
            hint=_offline_hint(data.name, files),
        )
    tfds.display_progress_bar(sys.stderr.isatty())
    print(f"cnnzoo: preparing TFDS dataset `{data.name}` in {builder.data_dir} (once)", file=sys.stderr)
    download_config = tfds.download.DownloadConfig(manual_dir=manual_dir)
    try:
        writer.download_and_prepare(download_config=download_config)
    except Exception as exc:  # TFDS raises many kinds (network, checksum, IO): all are data problems here
        raise DataError(
            f"could not prepare TFDS dataset `{data.name}` in {builder.data_dir}: "
            f"{type(exc).__name__}: {str(exc).strip().splitlines()[0] if str(exc).strip() else ''}",
            location=config.where("data", "name"),
            hint=_offline_hint(data.name, files),
        ) from None
    return tfds.builder(data.name, data_dir=data.data_dir)  # reads the info the preparation wrote


def _hosts_resolve(builder) -> bool:
    """Whether every host the dataset downloads from resolves in DNS (no resolver, no network)."""
    hosts = {urlparse(url).hostname for url in (builder.url_infos or {})} - {None}
    for host in hosts:
        try:
            socket.getaddrinfo(host, 443)
        except OSError:
            return False
    return True


def _check_manual_dir(manual_dir: Path, files: list[str], name: str) -> None:
    if not manual_dir.is_dir():
        raise DataError(
            f"manual_dir {manual_dir} is not a folder",
            path="data.manual_dir",
            hint=_offline_hint(name, files),
        )
    missing = [f for f in files if not (manual_dir / f).exists()]
    if missing:
        raise DataError(
            f"manual_dir {manual_dir} lacks {', '.join(missing)} for dataset `{name}`",
            path="data.manual_dir",
            hint=_offline_hint(name, files),
        )


def _offline_hint(name: str, files: list[str]) -> str:
    listed = ", ".join(files) if files else "the dataset's original archive files"
    return (
        f"With no network, put {listed} (the original files TFDS downloads, unrenamed), or `.npz` files "
        f"holding x_train/y_train/x_test/y_test arrays, in one folder and pass it with --manual-dir DIR, `data.manual_dir: DIR` or {MANUAL_DIR_ENV}=DIR; "
        f"or train on the bundled `data.name=mnist_sample`."
    )
