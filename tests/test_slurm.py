"""Under Slurm's `srun`, `runtime.strategy: auto` forms the cluster with TensorFlow's SlurmClusterResolver."""

from __future__ import annotations

import json
import os
import random
import re
import subprocess
import sys
from pathlib import Path

import pytest

from cnnzoo import load_config
from cnnzoo.runtime.strategy import choose_strategy
from conftest import PORT_TAKEN, REPO, TINY

QUICK = TINY


def slurm_env(rank: int, port: int) -> dict[str, str]:
    """What `srun --ntasks=2` sets for one of two tasks on one node (the variables the resolver reads)."""
    return {"SLURM_JOB_ID": "4242", "SLURM_STEP_NUM_TASKS": "2", "SLURM_PROCID": str(rank),
            "SLURM_STEP_NODELIST": "localhost", "SLURM_STEP_TASKS_PER_NODE": "2", "CNNZOO_SLURM_PORT": str(port)}


def test_auto_under_srun_is_multi_worker_from_slurms_variables(monkeypatch):
    monkeypatch.setenv("TF_CONFIG", "")  # none (setenv, so the TF_CONFIG the resolver writes is undone after)
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    for key, value in slurm_env(1, 23456).items():
        monkeypatch.setenv(key, value)
    choice = choose_strategy(load_config(QUICK))
    assert choice.kind == "multi_worker" and choice.worker_index == 1 and not choice.is_chief
    assert json.loads(os.environ["TF_CONFIG"]) == {"cluster": {"worker": ["localhost:23456", "localhost:23457"]},
                                                   "task": {"type": "worker", "index": 1}}


def test_a_tf_config_given_is_kept(monkeypatch):
    given = json.dumps({"cluster": {"worker": ["a:1", "b:2"]}, "task": {"type": "worker", "index": 0}})
    monkeypatch.setenv("TF_CONFIG", given)
    for key, value in slurm_env(1, 23456).items():
        monkeypatch.setenv(key, value)
    assert choose_strategy(load_config(QUICK)).worker_index == 0 and os.environ["TF_CONFIG"] == given


@pytest.mark.slow
def test_two_srun_tasks_train_one_run_written_by_the_chief(tmp_path):
    base = {k: v for k, v in os.environ.items() if k != "TF_CONFIG"}
    for attempt in range(3):  # the two ports (drawn at random, as Slurm's are fixed) may be another process's
        port, out = random.randint(20000, 40000), tmp_path / f"run{attempt}"
        args = [sys.executable, "-m", "cnnzoo.cli", "train", str(QUICK), "--output-dir", str(out),
                "train.epochs=1", "train.steps_per_epoch=3", "train.pictures=false", "runtime.seed=3"]
        procs = [subprocess.Popen(args, cwd=REPO, text=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                  env={**base, **slurm_env(rank, port), "PYTHONPATH": str(REPO)}) for rank in (1, 0)]
        outputs = [p.communicate(timeout=400) for p in procs]
        if not any(PORT_TAKEN in stderr for _, stderr in outputs):
            break
    for proc, (_, stderr) in zip(procs, outputs):
        assert proc.returncode == 0, stderr[-3000:]
    (worker_out, _), (chief_out, _) = outputs
    assert "MultiWorkerMirroredStrategy: worker 0 of 2" in chief_out.splitlines()[0]
    assert "cnnzoo: 2 replicas in all; global batch 128 = 64 per replica" in chief_out
    assert "worker 1: cnnzoo: training" in worker_out and "MultiWorkerMirroredStrategy: worker 1 of 2" in worker_out
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["epochs_completed"] == 1 and (out / "model.keras").is_file() and any((out / "logs" / "train").iterdir())
    # The worker trained the very same weights, and removed its temporary run directory: only the chief writes.
    assert f"weights sha256 {metrics['weights_sha256'][:16]}" in worker_out
    worker_dir = re.search(r"run directory: (\S+)", worker_out).group(1)
    assert worker_dir != str(out) and not Path(worker_dir).exists()
