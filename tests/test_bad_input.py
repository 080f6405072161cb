"""Hostile or broken input gets exit code 2 and one clear message, fast: never a traceback, never a hang."""

from __future__ import annotations

import time

import pytest

from conftest import CONFIGS, cli, run_cli, write

SLIDE = CONFIGS / "slide_cnn.yaml"
BOMB = "a: &a [1, 2, 3, 4, 5, 6, 7, 8, 9]\n" + "".join(
    f"{chr(98 + i)}: &{chr(98 + i)} [{', '.join(['*' + chr(97 + i)] * 9)}]\n" for i in range(8))


def _assert_user_error(done, *fragments: str) -> None:
    """A clear error, exit 2 (no wall-clock bound: TensorFlow's import alone varies with the machine's load;
    `test_the_checks_themselves_are_immediate` times the checks in-process)."""
    assert done.returncode == 2, done.stderr[-2000:]
    assert "Traceback" not in done.stderr
    for fragment in fragments:
        assert fragment in done.stderr, done.stderr[-2000:]


def _cli(*args):
    return run_cli(*args, timeout=300)


def test_a_binary_file_as_config(tmp_path):
    path = tmp_path / "model.keras"
    path.write_bytes(b"PK\x03\x04\x14\x00\x00\x00\x08\x00" + bytes(range(256)) * 4)
    done = _cli("validate", str(path))
    _assert_user_error(done, f"{path}")
    assert "not UTF-8 text" in done.stderr or "not a text file" in done.stderr


def test_a_broken_file_is_reported_before_tensorflow_is_imported(tmp_path):
    """The seconds TensorFlow's import takes are spent only on configs that can be read."""
    import subprocess
    import sys

    path = write(tmp_path / "bomb.yaml", BOMB)
    code = ("import sys; from cnnzoo.cli import main; "
            "codes = [main(['validate', sys.argv[1]]), main(['train', sys.argv[1]]), "
            "main(['train', '--config', sys.argv[2], 'train.optimzer=sgd'])]; "
            "print('tensorflow imported:', 'tensorflow' in sys.modules); sys.exit(max(codes))")
    done = subprocess.run([sys.executable, "-c", code, str(path), str(CONFIGS / "quickstart.yaml")],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 2 and done.stderr.count("aliases repeat") == 2, done.stderr
    assert "train.optimzer: unknown key" in done.stderr and "tensorflow imported: False" in done.stdout


def test_control_characters_in_utf8_text(tmp_path):
    path = write(tmp_path / "c.yaml", "model:\n  name: a\x00b\n")
    done = _cli("validate", str(path))
    _assert_user_error(done, f"{path}:2: error:", "not a text file", "control character 0x0000")


def test_a_yaml_alias_bomb(tmp_path):
    path = write(tmp_path / "bomb.yaml", BOMB)
    done = _cli("validate", str(path))
    _assert_user_error(done, f"{path}:", "expands to more than 100,000 values")


@pytest.mark.parametrize("expression, message", [
    ("${9**9**9}", "is larger than 1e+15"),
    ("${[1] * 10**10}", "makes a list of more than 10,000 items"),
    ("${2.0**10000}", "is larger than 1e+15"),
])
def test_expressions_that_would_hang_or_exhaust_memory(tmp_path, expression, message):
    path = write(tmp_path / "c.yaml", f"extends: {SLIDE}\nmodel:\n  layers:\n    - Dense: \"{expression}\"\n")
    done = cli("validate", path)  # in this process: a new one would add only TensorFlow's import
    _assert_user_error(done, f"{path}:4:7: error: layer 1", message)


def test_a_layer_too_large_for_memory_is_refused_before_allocation():
    done = cli("validate", SLIDE, "model.layers.7.Dense=1000000000000")
    _assert_user_error(done, "layer 8 (Dense) makes the model", "parameters", "a typo")


def test_a_huge_integer_literal(tmp_path):
    path = write(tmp_path / "c.yaml", f"extends: {SLIDE}\ntrain:\n  epochs: 1{'0' * 5000}\n")
    done = _cli("validate", str(path))
    _assert_user_error(done, f"{path}:3:11: error:", "more than 20 digits")


@pytest.mark.slow
def test_the_checks_themselves_are_immediate(tmp_path):
    """In-process, without TensorFlow's start-up: each bad document is refused at once (milliseconds
    here), where it used to hang or exhaust memory."""
    from cnnzoo import CnnzooError, load_config

    cases = {
        "bomb.yaml": BOMB,
        "deep.yaml": "[" * 5000 + "]" * 5000,
        "deeper.yaml": "[" * 400_000 + "]" * 400_000,  # libyaml's own composer overflowed the C stack here
        "pow.yaml": f"extends: {SLIDE}\nmodel:\n  params: {{n: '${{9**9**9}}'}}\n  layers:\n    - Dense: $n\n",
    }
    for name, text in cases.items():
        path = write(tmp_path / name, text)
        start = time.perf_counter()
        with pytest.raises(CnnzooError):
            from cnnzoo import build_model

            build_model(load_config(path))
        # A guard against hangs (these ran for minutes before), not a speed target: busy machines vary.
        assert time.perf_counter() - start < 20, name
