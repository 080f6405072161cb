"""Smoke tests: every benchmark script runs end to end with its smallest settings (so they don't rot).

They check the scripts work and print what they promise, not any speed or accuracy.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import runpy
import sys

import numpy as np
import pytest
import yaml

from conftest import REPO, SHARED_DATA, TINY

# Recipes and searches change training settings only: their smoke tests train the tests' tiny network.
TINY_LAYERS = "model.layers=" + json.dumps(yaml.safe_load(TINY.read_text())["model"]["layers"])


def _run(script: str, *args: str) -> str:
    """`python SCRIPT ARGS` from the repository's root, run in this process as `__main__` (the script's
    own code, without the seconds a new process spends importing TensorFlow); what it printed."""
    path, out = REPO / script, io.StringIO()
    argv, search_path, cwd = sys.argv, list(sys.path), os.getcwd()
    sys.argv, sys.path[:0] = [str(path), *args], [str(path.parent)]  # as Python sets them for a script
    try:
        os.chdir(REPO)
        with contextlib.redirect_stdout(out):
            runpy.run_path(str(path), run_name="__main__")
    except SystemExit as done:
        assert done.code in (None, 0), f"{script} exited with {done.code}\n{out.getvalue()[-3000:]}"
    finally:
        sys.argv, sys.path[:] = argv, search_path
        os.chdir(cwd)
    return out.getvalue()


@pytest.mark.slow
def test_throughput_prints_both_rates_and_the_ratio():
    out = _run("benchmarks/throughput.py", "--models", "slide", "--steps", "3", "--epochs", "1", "--rounds", "1",
               "--validation", "data.name=mnist_sample")
    line = next(row for row in out.splitlines() if row.startswith("slide")).split()
    assert line[3].endswith("x") and float(line[3][:-1]) > 0
    assert "384 images per epoch, validated" in out


@pytest.mark.slow
def test_runtime_options_prints_each_variant():
    # XLA compilation alone takes ~30 s here; the jit variant is the same code with one more override.
    out = _run("benchmarks/runtime_options.py", "tests/tiny.yaml", "--steps", "32", "--repeats", "1",
               "--variants", "default,steps_per_execution=32")
    assert "default" in out and "steps_per_execution=32" in out and "1.00x" in out


@pytest.mark.slow
def test_time_to_accuracy_reports_each_recipe_and_seed():
    out = _run("benchmarks/time_to_accuracy.py", "--epochs", "2", "--target", "0.5", "--seeds", "1,2",
               "data.name=mnist_sample", "train.steps_per_epoch=20", TINY_LAYERS)
    for seed in (1, 2):
        for recipe in ("slide", "fast"):
            assert f"seed {seed} {recipe:<8} " in out
    summaries = [line for line in out.splitlines() if line.startswith(("slide ", "fast "))]
    assert len(summaries) == 2 and all("/2 seeds reached" in line for line in summaries)
    # A recipe stops at the epoch that reaches the target: its curve is that long.
    for line in out.splitlines():
        if " reached at epoch " in line:
            epoch = int(line.split(" reached at epoch ")[1].split()[0])
            assert len(line.split("per epoch: ")[1].split()) == epoch, line


@pytest.mark.slow
def test_reproduce_trains_reads_back_and_estimates(tmp_path):
    out = tmp_path / "table"
    _run("benchmarks/reproduce.py", "--budget", "laptop", "--only", "lenet5", "--output-dir", str(out),
         "data.name=mnist_sample", "train.epochs=1", "train.steps_per_epoch=5")
    row = next(line for line in (out / "results.md").read_text().splitlines() if line.startswith("| lenet5 |"))
    assert "| mnist_sample | `configs/lenet5.yaml` | 61,706 |" in row and "0.95% (LeCun et al. 1998)" in row
    assert (out / "lenet5" / "logs").is_dir()
    # A second call reads the completed run back instead of training it again; a row the laptop
    # budget does not train is timed and printed with the command that would train it.
    rng = np.random.default_rng(0)
    cifar = tmp_path / "data" / "cifar10"
    cifar.mkdir(parents=True)
    images = lambda n: (rng.integers(0, 256, (n, 32, 32, 3), dtype=np.uint8), rng.integers(0, 10, n).astype(np.uint8))
    np.savez(cifar / "cifar10_train_1of1.npz", **dict(zip(("x_train", "y_train"), images(300))))
    np.savez(cifar / "cifar10_test.npz", **dict(zip(("x_test", "y_test"), images(50))))
    printed = _run("benchmarks/reproduce.py", "--budget", "laptop", "--only", "lenet5,plain20", "--output-dir",
                   str(out), "--manual-dir", str(tmp_path / "data"), "--estimate-steps", "2")
    assert f"lenet5: read back the completed run in {out / 'lenet5'}" in printed
    table = (out / "results.md").read_text()
    assert table.count("| lenet5 |") == 1 and row in table
    plain = next(line for line in table.splitlines() if line.startswith("| plain20 |"))
    assert "| cifar10 | `configs/resnet/plain20.yaml` | 271,098 | not run here |" in plain
    assert "| 164 | about " in plain and "img/s measured) |" in plain
    assert f"python train.py --config configs/resnet/plain20.yaml --manual-dir {cifar}" in table


@pytest.mark.slow
def test_pictures_cost_times_both_sides():
    out = _run("benchmarks/pictures_cost.py", "tests/tiny.yaml", "--epochs", "1", "--rounds", "1",
               "train.steps_per_epoch=5")
    assert "round 1: pictures off" in out and "median on/off" in out and "median with Grad-CAM/on" in out


@pytest.mark.slow
def test_pipeline_prints_both_rates_and_the_ratio():
    out = _run("benchmarks/pipeline.py", "--models", "slide", "--steps", "3", "data.name=mnist_sample")
    row = next(line for line in out.splitlines() if line.startswith("slide")).split()
    assert row[3].endswith("x") and float(row[3][:-1]) > 0


@pytest.mark.slow
def test_first_pass_times_the_three_ways_to_the_data():
    out = _run("benchmarks/first_pass.py", "--datasets", "mnist", "--rounds", "1", "data.name=mnist_sample")
    rows = [line.split() for line in out.splitlines() if line.startswith("mnist ")]
    assert [row[1] for row in rows] == ["tfds", "decode+keep", "kept"]
    assert rows[0][-2] == "1.00x" and all(float(row[3]) > 0 for row in rows)


@pytest.mark.skipif(not (SHARED_DATA / "cifar10").is_dir(),
                    reason="needs ../shared/data/cifar10 (present on the team's machines and CI)")
@pytest.mark.slow
def test_own_images_times_cnnzoo_and_keras_on_one_folder():
    # In this process: its six fresh Pythons took ~30 s of CPU, the script's own code the rest.
    out = _run("benchmarks/own_images.py", "--cifar10", str(SHARED_DATA / "cifar10"), "--images", "200",
               "--epochs", "1", "--rounds", "1", "--in-process")
    assert "160 training + 40 test JPEGs" in out and "--in-process: every measurement ran in this Python" in out
    rows = {line.split()[0]: line.split()[1:] for line in out.splitlines()
            if line.startswith(("cnnzoo ", "keras ", "cnnzoo/keras "))}
    assert set(rows) == {"cnnzoo", "keras", "cnnzoo/keras"}
    for side in ("cnnzoo", "keras"):
        # first pass img/s; s to step 1: first run, later run, later run from launch; later run s to the end;
        # last epoch img/s; test accuracy
        numbers = [float(cell.replace(",", "")) for cell in rows[side]]
        assert len(numbers) == 7 and all(n > 0 for n in numbers[:6]) and 0 <= numbers[6] <= 1, rows[side]
        # the call follows the launch; step 1 precedes the end of training
        assert numbers[2] <= numbers[3] and numbers[2] <= numbers[4], rows[side]
    ratios = rows["cnnzoo/keras"]
    assert all(cell.endswith("x") and float(cell[:-1]) > 0 for cell in ratios[:6]) and ratios[7] == "pts", ratios
    assert "parameters: cnnzoo 315,722, keras 315,722" in out  # the same network on both sides
    assert "cnnzoo's first pass, where the time goes" in out and "decoding" in out
    assert "first pass >= 1.0x keras" in out and "later run >= 5x faster" in out
    assert "round by round" in out and "inside model.fit" in out


@pytest.mark.skipif(not (SHARED_DATA / "cifar10").is_dir(),
                    reason="needs ../shared/data/cifar10 (present on the team's machines and CI)")
@pytest.mark.slow
def test_transfer_pretrains_then_fine_tunes_each_variant(tmp_path):
    out = _run("benchmarks/transfer.py", "--cifar10", str(SHARED_DATA / "cifar10"), "--smoke", "--work",
               str(tmp_path / "work"))
    assert "folders: A 100 training + 100 test PNGs" in out and "B 100 training + 100 test PNGs" in out
    assert "pretrain on A: 1 epoch, test accuracy " in out
    # Every layer with weights but the renamed classifier comes from the pretraining run.
    pretrain = tmp_path / "work" / "runs" / "pretrain-A"
    assert (f"weights of 10 layers loaded from {pretrain / 'checkpoints' / 'best.keras'}; "
            "1 skipped: new_classifier (not in the source)") in out
    rows = {line.split()[0]: line.split()[1:] for line in out.splitlines()
            if line.startswith(("variant ", "pretrained ", "random ", "two-phase "))}
    assert list(rows) == ["variant", "pretrained", "random", "two-phase"]
    assert rows["variant"] == ["mean", "seed", "1", "spread", "vs", "random"]
    for variant in ("pretrained", "random", "two-phase"):
        mean, seed1, spread, _, versus, _ = rows[variant]
        assert mean == seed1 and 0 <= float(mean.rstrip("%")) <= 100 and spread == "0.00", rows[variant]
    assert rows["random"][4] == "+0.00"
    two_phase = (tmp_path / "work" / "runs" / "two-phase-seed1" / "log.txt").read_text()
    assert "epoch 2/2" in two_phase and "frozen" in two_phase


@pytest.mark.slow
def test_search_benchmark_compares_the_three_methods_per_seed(tmp_path):
    out = _run("benchmarks/search.py", "--seeds", "1", "--epochs", "2", "--steps", "3", "--learning-rates", "0.1,1.0",
               "--batch-sizes", "64", "--output-dir", str(tmp_path), "data.name=mnist_sample", TINY_LAYERS)
    for method in ("grid", "tpe", "random"):
        assert f"seed 1 {method:<7} best val_accuracy" in out
        assert any(line.startswith(f"{method:<7} mean best") and "1 seeds" in line for line in out.splitlines())


def test_epoch_profile_splits_a_step_into_the_pipeline_and_the_step(capsys):
    sys.path.insert(0, str(REPO / "benchmarks"))
    import epoch_profile

    epoch_profile.main([str(REPO / "configs" / "quickstart.yaml"), "--steps", "2", "--rounds", "1",
                        "data.name=mnist_sample"])
    out = capsys.readouterr().out
    rows = {line.split("  ")[1].strip(): line.split() for line in out.splitlines() if line.startswith("  ")}
    assert "quickstart as written: batch 128, float32" in out and "fit 1.00x the config as written" in out
    assert set(rows) == {"input pipeline alone", "training step alone", "fit on the pipeline"}, out
    assert rows["fit on the pipeline"][-3:] == ["100.0%", "of", "fit's"]
    seconds = {name: float(row[-7]) for name, row in rows.items()}  # per step; the pipeline's may round to 0
    assert seconds["input pipeline alone"] >= 0 and seconds["training step alone"] > 0, out
    assert seconds["fit on the pipeline"] > 0, out
