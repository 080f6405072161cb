"""Where a run's examples come from, and preparing them once: downloaded, or offline from a
manual_dir of original files or `.npz` arrays.

`locate` decides, reading only metadata and the manual_dir (nothing is downloaded or
written), and fails at once when the data cannot be had: offline, TFDS would retry each
download for minutes. `prepare` then does the work. Concurrent processes (e.g. the
workers of a multi-worker run sharing a data dir) prepare one at a time through a lock.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from cnnzoo.config.schema import Config
from cnnzoo.data import arrays_builder, provenance
from cnnzoo.errors import DataError

MANUAL_DIR_ENV = "CNNZOO_MANUAL_DIR"


@dataclass(frozen=True)
class Source:
    """The builder to read from, and how it gets prepared (writer None: it already is)."""

    reader: Any
    writer: Any | None
    manual_dir: str | None
    description: str  # for the plan, e.g. "prepared in ~/tensorflow_datasets/mnist/3.0.1"


def manual_dir_of(config: Config, given: str | None) -> str | None:
    """--manual-dir, else data.manual_dir, else $CNNZOO_MANUAL_DIR."""
    return given or config.data.manual_dir or os.environ.get(MANUAL_DIR_ENV)


def expected_files(builder) -> list[str]:
    """File names TFDS downloads for this dataset (what a manual_dir must hold)."""
    return sorted({info.filename for info in (builder.url_infos or {}).values() if info.filename})


def locate(builder, config: Config, manual_dir: str | None) -> Source:
    """Decide where the examples come from, without downloading or writing anything.

    Raises:
        DataError: the dataset is not prepared and cannot be: a manual_dir without its
            files, or no network.
    """
    import tensorflow_datasets as tfds

    name = config.data.name
    folder = Path(manual_dir).expanduser() if manual_dir else None
    if folder is not None and _has_arrays(folder, builder):
        copy = tfds.builder(name, data_dir=str(arrays_builder.arrays_data_dir(builder)))
        if arrays_builder.recorded_checksums(copy) == arrays_builder.checksums(folder):
            return Source(copy, None, None, f"built from the .npz arrays in {folder} (checksums match), {copy.data_dir}")
        return Source(copy, arrays_builder.builder_from_arrays(builder), str(folder),
                      f"to be prepared from the .npz arrays in {folder} into {copy.data_dir}")
    if builder.is_prepared():
        provenance.check_prepared(builder, config.where("data", "name"))
        return Source(builder, None, None, f"prepared in {builder.data_dir}")
    if folder is not None:
        _check_manual_dir(folder, expected_files(builder), name)
        provenance.check_manual_files(builder, folder, config.where("data", "manual_dir"))
        return Source(builder, builder, str(folder), f"to be prepared from {folder} into {builder.data_dir}")
    copy = tfds.builder(name, data_dir=str(arrays_builder.arrays_data_dir(builder)))
    downloadable = _proxy_configured() or _hosts_resolve(builder)
    if arrays_builder.recorded_checksums(copy) and not downloadable:  # the only copy here: said, not hidden
        return Source(copy, None, None, f"the copy cnnzoo built from .npz arrays in {copy.data_dir} (the catalogue's "
                      f"download cannot be reached; the arrays may be a subset of `{name}`)")
    if not downloadable:
        raise DataError(
            f"dataset `{name}` is not prepared in {builder.data_dir} and its download host cannot be reached",
            location=config.where("data", "name"),
            hint=_offline_hint(name, expected_files(builder)),
        )
    return Source(builder, builder, None, f"to be downloaded and prepared in {builder.data_dir}")


def prepare(source: Source, config: Config):
    """The prepared builder to read: prepares `source` once (one process at a time)."""
    if source.writer is None:
        return source.reader
    import tensorflow_datasets as tfds

    with _preparation_lock(Path(source.reader.data_dir_root) / f".{config.data.name}.prepare.lock"):
        fresh = tfds.builder(config.data.name, data_dir=source.reader.data_dir_root)
        from_arrays = source.writer is not source.reader
        if (arrays_builder.recorded_checksums(fresh) == arrays_builder.checksums(Path(source.manual_dir))
                if from_arrays else fresh.is_prepared()):
            return fresh  # another process (e.g. a second worker) prepared it meanwhile
        return _prepare(source, config)


def _prepare(source: Source, config: Config):
    import tensorflow_datasets as tfds

    name = config.data.name
    from_arrays = source.writer is not source.reader
    if from_arrays and Path(source.reader.data_dir).exists():
        shutil.rmtree(source.reader.data_dir)  # an array-built copy from other arrays: TFDS would keep it
    tfds.display_progress_bar(sys.stderr.isatty())
    print(f"cnnzoo: preparing TFDS dataset `{name}` in {source.reader.data_dir} (once)", file=sys.stderr)
    download_dir, download_config = (None, tfds.download.DownloadConfig(manual_dir=source.manual_dir)) if from_arrays \
        else provenance.download_config(source.writer, source.manual_dir)
    sources = (provenance.check_manual_files(source.writer, Path(source.manual_dir), config.where("data", "manual_dir"))
               if source.manual_dir and not from_arrays else provenance.registered(source.writer))
    try:
        with contextlib.redirect_stdout(sys.stderr):  # TFDS prints its progress: stdout keeps the run's own lines
            source.writer.download_and_prepare(download_dir=download_dir, download_config=download_config)
    except Exception as exc:  # TFDS raises many kinds (network, checksum, IO): all are data problems here
        raise DataError(
            f"could not prepare TFDS dataset `{name}` in {source.reader.data_dir}: "
            f"{type(exc).__name__}: {str(exc).strip().splitlines()[0] if str(exc).strip() else ''}",
            location=config.where("data", "name"),
            hint=_offline_hint(name, expected_files(source.writer)),
        ) from None
    prepared = tfds.builder(name, data_dir=source.reader.data_dir_root)  # reads the info the preparation wrote
    if not from_arrays:  # manual files were checked above; TFDS verifies a download against the registered sums
        provenance.write_record(prepared, sources)
        shutil.rmtree(download_dir / "extracted", ignore_errors=True)  # uncompressed copies, read only once
    return prepared


def _has_arrays(folder: Path, builder) -> bool:
    return "train" in arrays_builder.array_splits(folder) and arrays_builder.can_build_from_arrays(builder)


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


def _proxy_configured() -> bool:
    """Behind a proxy, the proxy resolves the hosts: a failing local DNS says nothing then."""
    return any(os.environ.get(k) for k in ("https_proxy", "HTTPS_PROXY", "http_proxy", "HTTP_PROXY", "all_proxy",
                                           "ALL_PROXY"))


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
        f"holding x_train/y_train/x_test/y_test arrays, in one folder and pass it with --manual-dir DIR, "
        f"`data.manual_dir: DIR` or {MANUAL_DIR_ENV}=DIR; or train on the bundled `data.name=mnist_sample`."
    )
