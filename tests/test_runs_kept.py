"""Nothing a user trained is lost: runs started at once get folders of their own; a sweep run again goes on
with every run that saved a state."""

from __future__ import annotations

import threading

import pytest

from cnnzoo import CnnzooError
from cnnzoo.training import run_dir
from conftest import TINY, cli


def test_runs_claimed_in_the_same_second_get_folders_of_their_own(tmp_path, monkeypatch):
    monkeypatch.setattr(run_dir.time, "strftime", lambda _: "20261202-120000")  # one second for all
    claimed, barrier = [], threading.Barrier(8)

    def start():
        barrier.wait()
        claimed.append(run_dir.claim(None, "net", root=str(tmp_path)))

    threads = [threading.Thread(target=start) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(set(claimed)) == 8 and all(p.is_dir() for p in claimed)
    assert sorted(p.name for p in claimed)[:2] == ["net-20261202-120000", "net-20261202-120000-2"]


def test_one_empty_output_dir_given_to_two_runs_is_taken_by_one(tmp_path):
    folder = tmp_path / "run"
    assert run_dir.claim(str(folder), "net") == folder
    with pytest.raises(CnnzooError, match="another cnnzoo run is starting in"):
        run_dir.claim(str(folder), "net")
    run_dir.release(folder, started=False)
    assert not folder.exists()  # a run that stopped before starting leaves nothing behind


def test_a_run_refused_after_its_claim_leaves_no_folder(tmp_path):
    done = cli("train", TINY, "data.validation_split=valid", cwd=tmp_path)
    assert done.returncode == 2
    assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").iterdir())


@pytest.mark.slow
def test_a_sweep_run_again_resumes_a_killed_run_instead_of_deleting_it(tmp_path):
    """The killed run is in the folder of a sweep from before sweeps kept an Optuna study: the sweep takes
    the folder over and resumes the run."""
    import json

    import keras

    from cnnzoo import load_config, train
    from cnnzoo.training.sweep import sweep

    class Kill(keras.callbacks.Callback):  # what SIGKILL leaves: a saved epoch, status still `running`
        def on_epoch_begin(self, epoch, logs=None):
            if epoch == 1:
                raise KeyboardInterrupt

    folder = tmp_path / "sweep" / "01-epochs=2"
    overrides = ["train.steps_per_epoch=3", "train.pictures=false", "runtime.seed=1"]
    config = load_config(TINY, [*overrides, "train.epochs=2"])
    with pytest.raises(CnnzooError):
        train(config, output_dir=str(folder), callbacks=[Kill()], log=lambda _: None)
    info = json.loads((folder / "run.json").read_text())
    (folder / "run.json").write_text(json.dumps({**info, "status": "running"}))
    first_epoch = (folder / "history.csv").read_text().splitlines()[1]

    said = []
    [row] = sweep(str(TINY), overrides, ["train.epochs=2"], output_dir=str(folder.parent),
                  log=said.append)
    assert row["status"] == "completed" and row["run"] == folder.name, said
    assert any("resuming from" in line for line in said), said
    history = (folder / "history.csv").read_text().splitlines()
    assert history[1] == first_epoch and len(history) == 3  # epoch 1 kept, epoch 2 added
