"""Property-based fuzzing of every shipped config: whatever a mutation does to it, `cnnzoo validate` answers
with success or exit code 2 and a message, never a traceback and never a hang.

The examples are derived from the test's name (derandomized), so CI sees the same ones every run;
`CNNZOO_FUZZ_EXAMPLES=200 python -m pytest tests/test_fuzz_configs.py` searches further, with new examples.
"""

from __future__ import annotations

import contextlib
import io
import os
import shutil
import signal

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cnnzoo import cli
from conftest import CONFIGS

SHIPPED = sorted(str(p.relative_to(CONFIGS)) for p in CONFIGS.rglob("*.yaml"))
EXAMPLES = int(os.environ.get("CNNZOO_FUZZ_EXAMPLES", "3"))
SECONDS = 60  # per example: far more than the largest config's build (ResNet-152, a few seconds)

SCALARS = st.one_of(
    st.none(), st.booleans(), st.integers(-(2**70), 2**70), st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=12),
    st.sampled_from(["$n", "${n * 2}", "${9**9**9}", "${[1] * 10**10}", "Conv2D", "stage", "basic", "relu", "same",
                     "test", "auto", "mixed_float16", "adam", "train[:10%]", "-1", "1e-3", "*a"]),
)
VALUES = st.recursive(SCALARS, lambda inner: st.one_of(st.lists(inner, max_size=4),
                                                        st.dictionaries(st.text(max_size=8), inner, max_size=3)),
                      max_leaves=8)


class Hang(Exception):
    pass


@pytest.fixture(scope="module")
def tree(tmp_path_factory):
    """A copy of configs/, so that `extends` between the files still resolves while one of them is mutated."""
    root = tmp_path_factory.mktemp("fuzz") / "configs"
    shutil.copytree(CONFIGS, root)
    return root


def _paths(node, prefix=()):
    yield prefix
    if isinstance(node, dict):
        for key, value in node.items():
            yield from _paths(value, (*prefix, key))
    elif isinstance(node, list):
        for index, value in enumerate(node):
            yield from _paths(value, (*prefix, index))


def _mutate(data, draw):
    """Replace, delete or add one value somewhere in the document."""
    paths = list(_paths(data))
    path = draw(st.sampled_from(paths))
    if not path:
        return draw(VALUES)
    parent = data
    for part in path[:-1]:
        parent = parent[part]
    action = draw(st.sampled_from(["replace", "delete", "add"]))
    if action == "delete":
        del parent[path[-1]]
    elif action == "add" and isinstance(parent, dict):
        parent[draw(st.text(max_size=10))] = draw(VALUES)
    elif action == "add":
        parent.insert(path[-1], draw(VALUES))
    else:
        parent[path[-1]] = draw(VALUES)
    return data


def _text_mutation(text: str, draw) -> str:
    """Insert characters YAML and the expression parser care about, anywhere."""
    at = draw(st.integers(0, len(text)))
    inserted = draw(st.text(alphabet=st.sampled_from(list("&*:-[]{}$\"'\n\t #!|>%@`\x00\x07")) | st.characters(),
                            min_size=1, max_size=6))
    return text[:at] + inserted + text[at:]


def _validate(path) -> tuple[int, str]:
    """`cnnzoo validate PATH` in this process: (exit code, what it printed); a hang raises Hang."""
    def timeout(signum, frame):
        raise Hang(f"no answer after {SECONDS} s")

    previous = signal.signal(signal.SIGALRM, timeout)
    signal.alarm(SECONDS)
    out, err = io.StringIO(), io.StringIO()
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            code = cli.main(["validate", str(path)])
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)
    return code, out.getvalue() + err.getvalue()


@pytest.mark.slow
@pytest.mark.parametrize("name", SHIPPED)
@settings(max_examples=EXAMPLES, deadline=None, derandomize="CNNZOO_FUZZ_EXAMPLES" not in os.environ,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow], database=None)
@given(data=st.data())
def test_a_mutated_shipped_config_is_validated_or_refused_cleanly(tree, name, data):
    path = tree / name
    original = (CONFIGS / name).read_text()
    if data.draw(st.booleans(), label="edit the text itself"):
        mutated = _text_mutation(original, data.draw)
    else:
        mutated = yaml.safe_dump(_mutate(yaml.safe_load(original), data.draw), allow_unicode=True)
    path.write_text(mutated)
    try:
        code, printed = _validate(path)
    finally:
        path.write_text(original)
    assert code in (0, 2), printed
    assert "Traceback" not in printed
    if code == 2:
        assert "error:" in printed, printed
