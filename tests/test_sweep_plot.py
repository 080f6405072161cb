"""`cnnzoo sweep` (grid of runs, HParams) and `cnnzoo plot` (PNG curves) on real short runs."""

from __future__ import annotations

import json

import matplotlib.image
import pytest
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from cnnzoo import ConfigError
from cnnzoo.training.search_trial import run_name
from cnnzoo.training.sweep import combinations, parse_grid
from conftest import TINY, cli

QUICK = TINY


def test_grid_options_parse_as_yaml_and_combine():
    grid = parse_grid(["model.params.n=3,9", "model.blocks.basic.shortcut=A,none"])
    assert grid == {"model.params.n": [3, 9], "model.blocks.basic.shortcut": ["A", "none"]}
    runs = combinations(grid)
    assert len(runs) == 4 and runs[1] == {"model.params.n": 3, "model.blocks.basic.shortcut": "none"}
    assert run_name(runs[1]) == "n=3,shortcut=none"
    with pytest.raises(ConfigError):
        parse_grid(["train.epochs"])


@pytest.fixture(scope="module")
def sweep_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("sweep") / "s"
    done = cli("sweep", QUICK, "train.epochs=2", "train.steps_per_epoch=3", "runtime.seed=1",
               "--grid", "train.optimizer.learning_rate=0.1,1.0", "--output-dir", out)
    assert done.returncode == 0, done.stderr[-3000:]
    return out


@pytest.mark.slow
def test_sweep_trains_each_combination_and_writes_a_summary(sweep_dir):
    rows = json.loads((sweep_dir / "summary.json").read_text())
    assert [r["run"] for r in rows] == ["01-learning_rate=0.1", "02-learning_rate=1.0"]
    assert all(r["epochs"] == 2 and 0 <= r["test_accuracy"] <= 1 and r["status"] == "completed" for r in rows)
    table = (sweep_dir / "summary.md").read_text()
    assert table.startswith("| run | learning_rate | status | train_loss |")
    assert "| 02-learning_rate=1.0 | 1.0 | completed |" in table
    for row in rows:
        saved = (sweep_dir / row["run"] / "config.yaml").read_text()
        assert f"learning_rate: {row['learning_rate']}" in saved and "sweep: {}" in saved


@pytest.mark.slow
def test_sweep_logs_hparams_sessions_tensorboard_can_read(sweep_dir):
    config = EventAccumulator(str(sweep_dir))
    config.Reload()
    assert "_hparams_/experiment" in config.summary_metadata
    session = EventAccumulator(str(sweep_dir / "02-learning_rate=1.0" / "logs"))
    session.Reload()
    assert "_hparams_/session_start_info" in session.summary_metadata


@pytest.mark.slow
def test_plot_overlays_runs_into_a_png(sweep_dir, tmp_path):
    png = tmp_path / "curves.png"
    done = cli("plot", str(sweep_dir / "01-learning_rate=0.1"), str(sweep_dir / "02-learning_rate=1.0"), "-o", str(png))
    assert done.returncode == 0, done.stderr[-2000:]
    image = matplotlib.image.imread(png)
    assert image.shape[0] > 300 and image.shape[1] > 800


def test_plot_of_a_folder_without_metrics_is_a_clear_error(tmp_path):
    done = cli("plot", str(tmp_path), "-o", str(tmp_path / "x.png"))
    assert done.returncode == 2 and "has no metrics.json" in done.stderr and "Traceback" not in done.stderr
