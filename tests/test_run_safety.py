"""Runs that cannot be lost or corrupted: resume checks before it writes, foreign folders are never
written into, saves are atomic and a corrupt one is skipped, and a sweep goes on past a failed run."""

from __future__ import annotations

import csv
import json
import shutil

import keras
import pytest

from cnnzoo import load_config, train
from cnnzoo.training.checkpoints import save_model_atomically
from cnnzoo.training.resume import effective_config
from cnnzoo.training.run_dir import RunDir
from conftest import TINY, cli, run_cli, write

QUICK = TINY


@pytest.fixture(scope="module")
def interrupted_run(tmp_path_factory):
    """A 3-epoch run stopped after 2 epochs with every kind of saved state present, as a kill leaves it.

    Made by finishing 2 epochs and then marking the run interrupted with its state put back:
    backup/current (epoch 2), backup/previous (epoch 1), checkpoints/last.keras (epoch 2).
    """
    out = tmp_path_factory.mktemp("safety") / "run"
    config = load_config(QUICK, ["train.epochs=2", "train.steps_per_epoch=4", "runtime.seed=5"])

    class KeepBackup(keras.callbacks.Callback):  # copy the resume state before the run removes it
        def on_epoch_end(self, epoch, logs=None):
            if epoch == 1:
                shutil.copytree(out / "backup", out.parent / "backup-kept")

    result = train(config, output_dir=str(out), log=lambda _: None, callbacks=[KeepBackup()])
    result.run_dir.model.unlink()
    result.run_dir.metrics.unlink()
    shutil.move(out.parent / "backup-kept", out / "backup")
    result.run_dir.update_info(status="interrupted")
    return result.run_dir


def _copy(run: RunDir, tmp_path) -> RunDir:
    return RunDir(shutil.copytree(run.path, tmp_path / "run"))


def _snapshot(run: RunDir) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in (run.config, run.info)}


@pytest.mark.parametrize("override, key", [
    ("model.layers.0.Conv2D.filters=16", "model.layers.0.Conv2D.filters"),
    ("model.layers.0=Conv2D: [8, 3]", "model.layers.0"),
])
@pytest.mark.slow
def test_resume_refuses_an_override_that_changes_the_weights_and_writes_nothing(interrupted_run, tmp_path,
                                                                                 override, key):
    run = _copy(interrupted_run, tmp_path)
    before = _snapshot(run)
    done = cli("train", "--resume", str(run.path), "train.epochs=3", override)
    assert done.returncode == 2 and "Traceback" not in done.stderr, done.stderr[-2000:]
    assert f"--resume cannot change the model's weights: `{key}` would change the shape" in done.stderr
    assert "train.epochs" not in done.stderr.split("error:")[1].split(";")[0]  # only the culprit is named
    assert _snapshot(run) == before


@pytest.mark.slow
def test_resume_validates_the_whole_config_before_writing(interrupted_run, tmp_path):
    run = _copy(interrupted_run, tmp_path)
    before = _snapshot(run)
    done = cli("train", "--resume", str(run.path), "train.optimizer.name=adamm")
    assert done.returncode == 2 and "unknown optimizer `adamm`" in done.stderr
    assert _snapshot(run) == before


@pytest.mark.slow
def test_resume_keeps_config_yaml_and_records_each_resume(interrupted_run, tmp_path):
    run = _copy(interrupted_run, tmp_path)
    original = run.config.read_text()
    done = run_cli("train", "--resume", str(run.path), "train.epochs=3")  # a process of its own: run.json records its command
    assert done.returncode == 0, done.stderr[-2000:]
    assert "resuming from" in done.stdout and "backup/current after epoch 2" in done.stdout
    assert run.config.read_text() == original
    resumes = json.loads(run.info.read_text())["resumes"]
    assert [r["overrides"] for r in resumes] == [["train.epochs=3"]] and "--resume" in resumes[0]["command"]
    assert effective_config(run).train.epochs == 3
    assert json.loads(run.metrics.read_text())["epochs_completed"] == 3


@pytest.mark.parametrize("damage, used, skipped", [
    (["backup/current/model.weights.h5"], "backup/previous after epoch 1", ["backup/current"]),
    (["backup/current/state.json", "backup/previous/model.weights.h5"], "checkpoints/last.keras after epoch 2",
     ["backup/current", "backup/previous"]),
])
@pytest.mark.slow
def test_a_truncated_save_is_named_and_the_newest_intact_state_is_used(interrupted_run, tmp_path, damage, used,
                                                                       skipped):
    run = _copy(interrupted_run, tmp_path)
    for name in damage:
        path = run.path / name
        path.write_bytes(path.read_bytes()[: len(path.read_bytes()) // 2])  # as a kill mid-write would leave it
    done = cli("train", "--resume", run.path)
    assert done.returncode == 0, done.stderr[-2000:]
    assert f"resuming from {run.path / used}" in done.stdout
    for name in skipped:
        assert f"warning: {run.path / name} could not be loaded (" in done.stderr
    assert "could not write" not in done.stderr
    assert json.loads(run.metrics.read_text())["epochs_completed"] == 2


@pytest.mark.slow
def test_no_intact_state_is_a_clear_error_that_changes_nothing(interrupted_run, tmp_path):
    run = _copy(interrupted_run, tmp_path)
    for path in [*run.backup.glob("*/model.weights.h5"), run.checkpoints / "last.keras"]:
        path.write_bytes(b"")
    before = _snapshot(run)
    done = cli("train", "--resume", str(run.path))
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert f"no saved state of {run.path} loads: {run.backup / 'current'} could not be loaded" in done.stderr
    assert "last.keras could not be loaded" in done.stderr and "--output-dir NEW_DIR" in done.stderr
    assert _snapshot(run) == before


def test_a_save_cut_short_leaves_the_previous_file(tmp_path, monkeypatch):
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])
    path = tmp_path / "model.keras"
    save_model_atomically(model, path)
    good = path.read_bytes()

    def dies_midway(self, filepath, **kwargs):
        with open(filepath, "wb") as f:
            f.write(good[:100])  # half a zip, then the process "dies"
        raise KeyboardInterrupt

    monkeypatch.setattr(keras.Model, "save", dies_midway)
    with pytest.raises(KeyboardInterrupt):
        save_model_atomically(model, path)
    assert path.read_bytes() == good


def test_a_folder_that_is_not_a_run_is_never_written_into(tmp_path):
    folder = tmp_path / "notes"
    write(folder / "notes.txt", "my notes\n")
    write(folder / "history.csv", "epoch,loss\n0,9.9\n")
    done = cli("train", str(QUICK), "--output-dir", str(folder), "train.epochs=1", "train.steps_per_epoch=1")
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert "is not empty (history.csv, notes.txt) and holds no cnnzoo run" in done.stderr
    assert sorted(p.name for p in folder.iterdir()) == ["history.csv", "notes.txt"]
    assert (folder / "history.csv").read_text() == "epoch,loss\n0,9.9\n"
    here = cli("train", str(QUICK), "--output-dir", ".", "--overwrite", cwd=folder)
    assert here.returncode == 2 and "--output-dir . is not empty" in here.stderr


@pytest.mark.slow
def test_overwrite_replaces_an_earlier_run_only(tmp_path):
    out = tmp_path / "run"
    args = ("train", str(QUICK), "--output-dir", str(out), "train.epochs=1", "train.steps_per_epoch=2")
    assert cli(*args, "runtime.seed=1").returncode == 0
    refused = cli(*args, "runtime.seed=2")
    assert refused.returncode == 2 and "already holds a run" in refused.stderr and "--overwrite" in refused.stderr
    replaced = cli(*args, "runtime.seed=2", "--overwrite")
    assert replaced.returncode == 0, replaced.stderr[-2000:]
    assert load_config(out / "config.yaml").runtime.seed == 2
    assert len(RunDir(out).read_info().get("resumes", [])) == 0


@pytest.mark.slow
def test_a_sweep_records_a_diverged_run_goes_on_and_a_rerun_skips_what_completed(tmp_path):
    config = write(tmp_path / "sweep.yaml", f"""\
extends: {QUICK}
train: {{epochs: 1, steps_per_epoch: 3, optimizer: {{name: sgd}}}}
runtime: {{seed: 1}}
sweep:
  train.optimizer.learning_rate: [0.01, 1.0e+30]    # the second diverges at its second step
  data.augmentation: [{{horizontal_flip: false}}]     # a value with characters no folder name should hold
  model.name: [net.v1, net-v1]
""")
    out = tmp_path / "s"
    first = cli("sweep", config, "--output-dir", out)
    assert first.returncode == 3 and "Traceback" not in first.stderr, first.stderr[-3000:]
    assert "2 of 4 sweep runs failed" in first.stderr
    rows = json.loads((out / "summary.json").read_text())
    names = [r["run"] for r in rows]
    assert names == [f"0{i}-learning_rate={lr},augmentation=_horizontal_flip_false_,name={name}"
                     for i, (lr, name) in enumerate([("0.01", "net.v1"), ("0.01", "net-v1"),
                                                     ("1e+30", "net.v1"), ("1e+30", "net-v1")], start=1)]
    assert [r["status"].split(":")[0] for r in rows] == ["completed", "completed", "failed", "failed"]
    assert "NaN" in rows[2]["status"] and all((out / n).is_dir() for n in names)

    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    session = EventAccumulator(str(out / names[2] / "logs"))
    session.Reload()
    assert "_hparams_/session_end_info" in session.summary_metadata

    again = cli("sweep", config, "--output-dir", out)
    assert again.returncode == 3
    assert f"{out / names[0]} completed earlier: kept" in again.stdout
    assert f"{out / names[1]} completed earlier: kept" in again.stdout
    assert again.stdout.count("cnnzoo: training") == 2  # only the failed ones ran again
    with (out / "trials.csv").open() as f:  # the search's table: each attempt, the first ones marked retried
        states = [row["state"] for row in csv.DictReader(f)]
    assert len(states) == 6 and states[2].startswith("pruned: ") and "NaN" in states[2]
    assert states[2].endswith("; retried as trial 5") and states[4].startswith("pruned: ")


@pytest.mark.slow
def test_a_run_interrupted_under_the_earlier_backup_layout_still_resumes(interrupted_run, tmp_path):
    """Runs interrupted before this version hold Keras' BackupAndRestore files and no last.json."""
    run = _copy(interrupted_run, tmp_path)
    state = run.backup / "current"
    shutil.copy(state / "model.weights.h5", run.backup / "latest.weights.h5")
    (run.backup / "training_metadata.json").write_text(json.dumps({"epoch": 2, "batch": 0}))
    for folder in ("current", "previous"):
        shutil.rmtree(run.backup / folder)
    (run.checkpoints / "last.json").unlink()
    done = cli("train", "--resume", run.path, "train.epochs=3")
    assert done.returncode == 0 and "warning" not in done.stderr, done.stderr[-2000:]
    assert f"resuming from {run.backup / 'latest.weights.h5'} after epoch 2" in done.stdout
    assert json.loads(run.metrics.read_text())["epochs_completed"] == 3


@pytest.mark.slow
@pytest.mark.parametrize("per_execution", [1, 8])
def test_backup_every_steps_holds_when_keras_reports_batches_in_groups(tmp_path, monkeypatch, per_execution):
    """runtime.steps_per_execution N makes Keras report every N-th batch; saves still come every backup_every_steps."""
    from cnnzoo.training.checkpoints import Backup

    saved_at = []
    real_save = Backup.save_now
    monkeypatch.setattr(Backup, "save_now", lambda self: (saved_at.append(self._batch), real_save(self)))
    config = load_config(QUICK, ["train.epochs=1", "train.steps_per_epoch=48", "runtime.backup_every_steps=20",
                                 f"runtime.steps_per_execution={per_execution}", "runtime.seed=3"])
    train(config, output_dir=str(tmp_path / "run"), log=lambda _: None)
    # Batches done at each save; the last save is the epoch's end (the count is back to 0 by then).
    assert saved_at == ([20, 40, 0] if per_execution == 1 else [24, 48, 0])


def test_two_writers_of_one_json_file_never_take_each_others_temporary_file(tmp_path, monkeypatch):
    """Two `cnnzoo search` processes on one folder both write search.json: one's rename must not find the
    other's temporary file gone (a FileNotFoundError that ended one of the two)."""
    import os

    from cnnzoo.training import run_dir

    target, real, others = tmp_path / "search.json", os.replace, []

    def replace(src, dst):  # the other process writes the same file between this one's write and rename
        if not others:
            others.append(dst)
            run_dir.write_json(target, {"writer": "B"})
        real(src, dst)

    monkeypatch.setattr(os, "replace", replace)
    run_dir.write_json(target, {"writer": "A"})
    assert json.loads(target.read_text()) == {"writer": "A"}
    assert [p.name for p in tmp_path.iterdir()] == ["search.json"]
