"""Where the examples come from is said, never silently chosen; a proxy is not taken for no network."""

from __future__ import annotations

import socket

import numpy as np
import pytest

from cnnzoo import DataError, load_config
from cnnzoo.data import prepare, tfds_input
from cnnzoo.data.catalog import dataset_signature
from conftest import CONFIGS, cli

RESNET20 = CONFIGS / "resnet" / "resnet20.yaml"


def _no_dns(*_, **__):
    raise socket.gaierror(-2, "Name or service not known")


@pytest.mark.slow
def test_the_first_line_of_a_run_names_the_source(tmp_path):
    done = cli("train", CONFIGS / "quickstart.yaml", "train.epochs=1", "train.steps_per_epoch=1",
               "train.pictures=false", "--output-dir", tmp_path / "run")
    assert done.returncode == 0, done.stderr
    first = next(line for line in done.stdout.splitlines() if line.startswith("cnnzoo: training"))
    assert "on mnist_sample" in first and "mnist_sample/" in first and "prepared in" in first


def test_behind_a_proxy_a_failing_local_dns_does_not_refuse_the_download(tmp_path, monkeypatch):
    config = load_config(CONFIGS / "slide_cnn.yaml", [f"data.data_dir={tmp_path / 'tfds'}"])
    builder = dataset_signature(config).builder
    monkeypatch.setattr(socket, "getaddrinfo", _no_dns)
    for key in ("https_proxy", "HTTPS_PROXY", "http_proxy", "HTTP_PROXY", "all_proxy", "ALL_PROXY"):
        monkeypatch.delenv(key, raising=False)
    with pytest.raises(DataError, match="cannot be reached"):
        prepare.locate(builder, config, None)
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.invalid:3128")
    assert "to be downloaded" in prepare.locate(builder, config, None).description


def test_a_copy_built_from_arrays_is_used_only_when_it_is_the_only_copy(tmp_path, monkeypatch):
    rng = np.random.default_rng(0)
    folder = tmp_path / "arrays"
    folder.mkdir()
    images = lambda n: (rng.integers(0, 256, (n, 32, 32, 3), dtype=np.uint8), rng.integers(0, 10, n).astype(np.uint8))
    np.savez(folder / "train.npz", **dict(zip(("x_train", "y_train"), images(20))))
    np.savez(folder / "test.npz", **dict(zip(("x_test", "y_test"), images(10))))
    config = load_config(RESNET20, [f"data.data_dir={tmp_path / 'tfds'}"])
    tfds_input.load_datasets(config, one_hot=True, manual_dir=str(folder))  # asked for: built and used
    builder = dataset_signature(config).builder

    monkeypatch.setattr(prepare, "_hosts_resolve", lambda _: True)  # the catalogue's download can be had
    assert "to be downloaded" in prepare.locate(builder, config, None).description
    monkeypatch.setattr(prepare, "_hosts_resolve", lambda _: False)  # offline: the only copy, said so
    source = prepare.locate(builder, config, None)
    assert "built from .npz arrays" in source.description and "may be a subset" in source.description
