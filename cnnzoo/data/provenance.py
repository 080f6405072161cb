"""A catalogue dataset prepared offline is that dataset: its manual files are checked against the
checksums TFDS registers for it, each dataset is extracted into its own folder, and the prepared
copy records the checksums of the files it was built from.

Why: MNIST and Fashion-MNIST ship files of the same names, and TFDS reuses an extraction found
under `downloads/extracted/<method>.<file name>`. Prepared one after the other into one data dir
through a manual_dir, the second dataset was built from the first one's extracted files.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

from cnnzoo.errors import DataError

RECORD = "cnnzoo-source.json"  # in the prepared copy's version folder, beside TFDS's dataset_info.json


def registered(builder) -> dict[str, str]:
    """{file name: SHA-256} that TFDS registers for the dataset's downloads ({} when it registers none)."""
    return {info.filename: info.checksum for info in (builder.url_infos or {}).values()
            if info.filename and info.checksum}


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def check_manual_files(builder, folder: Path, where=None) -> dict[str, str]:
    """The manual files' checksums, once each matches the one TFDS registers for this dataset.

    Raises:
        DataError: a file whose content is not the dataset's, naming it and the checksum expected.
    """
    found = {}
    for name, expected in sorted(registered(builder).items()):
        found[name] = actual = sha256(folder / name)
        if actual != expected:
            raise DataError(
                f"{folder / name} is not the file `{name}` of dataset `{builder.name}`: its SHA-256 is "
                f"{actual}, TFDS registers {expected} for it",
                location=where,
                path="data.manual_dir",
                hint=f"Put `{builder.name}`'s own original file there (datasets such as mnist and fashion_mnist "
                     "use the same file names: check which folder --manual-dir names).",
            )
    return found


def download_config(builder, manual_dir: str | None):
    """TFDS download settings that keep this dataset's downloads and extractions apart from others',
    with no extraction left from an earlier, failed preparation (TFDS would reuse it by name)."""
    import tensorflow_datasets as tfds

    own = Path(builder.data_dir_root) / "downloads" / builder.name
    shutil.rmtree(own / "extracted", ignore_errors=True)
    return own, tfds.download.DownloadConfig(manual_dir=manual_dir, extract_dir=str(own / "extracted"))


def write_record(builder, files: dict[str, str]) -> None:
    """Record in the prepared copy which files it was built from."""
    Path(builder.data_dir, RECORD).write_text(json.dumps({"sha256": files}, indent=1, sort_keys=True) + "\n")


def check_prepared(builder, where=None) -> None:
    """Refuse a prepared copy built from files other than the dataset's own.

    A copy with a record is judged by it. One without a record, prepared by an earlier cnnzoo
    from a manual_dir (an extraction named after the bare file sits in the shared
    `downloads/extracted/`), is compared with the datasets beside it that use the same file names.
    """
    record = Path(builder.data_dir, RECORD)
    expected = registered(builder)
    if record.is_file():
        try:
            files = json.loads(record.read_text())["sha256"]
        except (ValueError, KeyError, TypeError):
            files = None
        wrong = sorted(name for name in expected if (files or {}).get(name) != expected[name])
        if wrong:
            raise _prepared_from_wrong_files(builder, f"its record ({record}) names other files for {', '.join(wrong)}",
                                             where)
        return
    shared = Path(builder.data_dir_root) / "downloads" / "extracted"
    if not any(shared.glob(f"*.{name}") for name in expected):
        return  # downloaded (TFDS verified it) or prepared by other means: nothing to compare
    for twin in _twins(builder):
        if _first_test_image(twin) == _first_test_image(builder) and _prepared_after(builder, twin):
            raise _prepared_from_wrong_files(
                builder, f"it holds the same images as `{twin.name}` beside it, whose files have the same names",
                where)


def _prepared_from_wrong_files(builder, why: str, where) -> DataError:
    folder = Path(builder.data_dir).parent
    return DataError(
        f"the prepared copy of `{builder.name}` in {folder} was built from another dataset's files: {why}",
        location=where,
        path="data.name",
        hint=f"Rebuild it: `rm -r {folder}`, then run the same command again with --manual-dir naming a folder "
             f"of `{builder.name}`'s own original files (or with network access, without it).",
    )


def _twins(builder):
    """Prepared datasets in the same data dir whose download files share a name with this one's."""
    import tensorflow_datasets as tfds

    names = set(registered(builder))
    root = Path(builder.data_dir_root)
    for folder in sorted(p for p in root.iterdir() if p.is_dir() and p.name != builder.name):
        try:
            other = tfds.builder(folder.name, data_dir=str(root))
        except Exception:  # not a catalogue dataset's folder (downloads, cnnzoo's own folders, ...)
            continue
        if names & set(registered(other)) and other.is_prepared():
            yield other


def _first_test_image(builder) -> bytes:
    import tensorflow_datasets as tfds

    split = "test" if "test" in builder.info.splits else next(iter(builder.info.splits))
    example = next(iter(tfds.as_numpy(builder.as_dataset(split=f"{split}[:1]", shuffle_files=False))))
    return example["image"].tobytes()


def _prepared_after(builder, other) -> bool:
    """Whether `builder` was prepared after `other` (the later one reused the earlier one's extraction)."""
    def when(b):
        return Path(b.data_dir, "dataset_info.json").stat().st_mtime
    return when(builder) >= when(other)
