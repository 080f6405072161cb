"""The versions tested are the versions allowed: constraints.txt holds what CI passed with, pyproject.toml
admits those minor versions, and a Keras without an internal cnnzoo reads gives a clear error."""

from __future__ import annotations

import re
import tomllib
from importlib import metadata

import pytest

from cnnzoo import CnnzooError, keras_internals
from conftest import REPO

PINNED = dict(re.findall(r"^([A-Za-z0-9_.-]+)==(\S+)$", (REPO / "constraints.txt").read_text(), re.M))


@pytest.mark.parametrize("package", ["tensorflow", "keras", "tensorflow-datasets", "tensorboard", "numpy"])
def test_ci_runs_the_versions_of_the_constraints_file(package):
    assert metadata.version(package) == PINNED[package], \
        f"install with `pip install -e '.[test]' -c constraints.txt` ({package} {metadata.version(package)})"


def test_pyproject_admits_the_pinned_minor_versions_only():
    from packaging.requirements import Requirement

    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    wanted = {Requirement(r).name: Requirement(r).specifier for r in project["dependencies"]}
    for package in ("tensorflow", "keras", "tensorflow-datasets"):
        pinned = PINNED[package]
        major, minor = pinned.split(".")[:2]
        assert pinned in wanted[package]
        assert f"{major}.{int(minor) + 1}.0" not in wanted[package] and f"{major}.{int(minor) - 1}.0" not in wanted[package]
    assert keras_internals.TESTED_KERAS == ".".join(PINNED["keras"].split(".")[:2])


def test_a_keras_without_an_internal_gives_a_clear_error_not_an_attribute_error():
    class Layer:  # what a Keras that renamed `_inbound_nodes` would hand over
        name = "dense"

    with pytest.raises(CnnzooError) as caught:
        keras_internals.inbound_layers(Layer())
    message = str(caught.value)
    assert "Layer._inbound_nodes" in message and "constraints.txt" in message and "tested with Keras 3.15" in message
    with pytest.raises(CnnzooError, match="keras.src.no_such_module"):
        keras_internals.module("no_such_module")
