"""Smoke tests: every benchmark script runs end to end with its smallest settings (so they don't rot).

They check the scripts work and print what they promise, not any speed or accuracy.
"""

from __future__ import annotations

import os
import subprocess
import sys

from conftest import REPO

ENV = {**os.environ, "PYTHONPATH": str(REPO)}


def _run(*args: str) -> str:
    done = subprocess.run([sys.executable, *args], cwd=REPO, capture_output=True, text=True, timeout=600, env=ENV)
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout


def test_throughput_prints_both_rates_and_the_ratio():
    out = _run("benchmarks/throughput.py", "--models", "slide", "--steps", "3", "--epochs", "1", "--rounds", "1",
               "--validation", "data.name=mnist_sample")
    line = next(row for row in out.splitlines() if row.startswith("slide")).split()
    assert line[3].endswith("x") and float(line[3][:-1]) > 0
    assert "384 images per epoch, validated" in out


def test_runtime_options_prints_each_variant():
    # XLA compilation alone takes ~30 s here; the jit variant is the same code with one more override.
    out = _run("benchmarks/runtime_options.py", "configs/quickstart.yaml", "--steps", "32", "--repeats", "1",
               "--variants", "default,steps_per_execution=32")
    assert "default" in out and "steps_per_execution=32" in out and "1.00x" in out


def test_time_to_accuracy_reports_each_recipe():
    out = _run("benchmarks/time_to_accuracy.py", "--epochs", "1", "--target", "0.5", "data.name=mnist_sample",
               "train.steps_per_epoch=20")
    assert "slide    reached at epoch 1" in out or "slide    not reached" in out
    assert "adam" in out


def test_reproduce_writes_the_results_table(tmp_path):
    _run("benchmarks/reproduce.py", "--only", "lenet5", "--output-dir", str(tmp_path), "data.name=mnist_sample",
         "train.epochs=1")
    table = (tmp_path / "results.md").read_text()
    assert "| lenet5 | mnist_sample |" in table and "0.95% (LeCun et al. 1998)" in table
    assert (tmp_path / "lenet5" / "logs").is_dir()


def test_pictures_cost_times_both_sides():
    out = _run("benchmarks/pictures_cost.py", "configs/quickstart.yaml", "--epochs", "1", "--rounds", "1",
               "train.steps_per_epoch=5")
    assert "round 1: pictures off" in out and "median on/off" in out


def test_pipeline_prints_both_rates_and_the_ratio():
    out = _run("benchmarks/pipeline.py", "--models", "slide", "--steps", "3", "data.name=mnist_sample")
    row = next(line for line in out.splitlines() if line.startswith("slide")).split()
    assert row[3].endswith("x") and float(row[3][:-1]) > 0
