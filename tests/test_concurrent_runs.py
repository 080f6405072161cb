"""Two runs started at once never share a folder (job arrays start many in the same second)."""

from __future__ import annotations

import threading

import pytest

from cnnzoo import CnnzooError
from cnnzoo.training import run_dir
from conftest import CONFIGS, cli


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
    done = cli("train", CONFIGS / "quickstart.yaml", "data.validation_split=valid", cwd=tmp_path)
    assert done.returncode == 2
    assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").iterdir())
