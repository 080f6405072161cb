"""`cnnzoo sweep` is the grid case of `cnnzoo search`: the same section, the same trials, table, HParams and
best.yaml, and a killed sweep run again finishes every run without deleting one."""

from __future__ import annotations

import csv
import hashlib
import json
import signal

import pytest

from cnnzoo.config.loader import load_config
from cnnzoo.training.search_study import sampler
from cnnzoo.training.sweep import combinations, grid_search, parse_grid
from conftest import TINY, cli, killed_in_second_run, write

QUICK = TINY
SHORT = "train: {epochs: 2, steps_per_epoch: 3, pictures: false}\nruntime: {seed: 1}\n"


def _rows(path) -> list[dict]:
    with path.open() as f:
        return list(csv.DictReader(f))


def _points(spec, in_order: bool) -> list[dict]:
    import optuna

    study = optuna.create_study(sampler=sampler(spec, 1, None, in_order=in_order))
    points = []
    for _ in range(len(combinations({k: p.choice for k, p in spec.parameters.items()}))):
        trial = study.ask()
        points.append({key: trial.suggest_categorical(key, p.choice) for key, p in spec.parameters.items()})
        study.tell(trial, 0.0)
    return points


def test_a_sweeps_grid_is_a_search_section_with_the_grid_sampler_taking_its_points_in_order(tmp_path):
    grid = parse_grid(["train.optimizer.learning_rate=0.1,1.0", "data.batch_size=32,64,128"])
    config = write(tmp_path / "search.yaml", f"extends: {QUICK}\nsearch:\n  sampler: grid\n  pruner: none\n"
                   "  parameters:\n    train.optimizer.learning_rate: {choice: [0.1, 1.0]}\n"
                   "    data.batch_size: {choice: [32, 64, 128]}\n")
    spec = grid_search(grid, "val_accuracy")
    assert spec == load_config(config).search
    assert _points(spec, in_order=True) == combinations(grid)  # the sweep's order: first key slowest
    shuffled = _points(spec, in_order=False)  # a search's grid: every point once, shuffled
    assert shuffled != combinations(grid) and sorted(map(str, shuffled)) == sorted(map(str, combinations(grid)))


@pytest.mark.parametrize("grid, message", [
    ("data.batchsize: [32, 64]", "sweep key `data.batchsize`: the value 32 is refused: unknown key `batchsize`. "
     "Did you mean `batch_size`?"),
    ("model.params.width: [8, 16]", "sweep key `model.params.width`: the model has no parameter `width`"),
    ("data.batch_size: []", "sweep key `data.batch_size` lists no values"),
])
def test_a_bad_sweep_value_is_refused_at_its_line_when_the_config_loads_as_a_search_parameter_is(
        tmp_path, grid, message):
    config = write(tmp_path / "sweep.yaml", f"extends: {QUICK}\nsweep:\n  train.epochs: [1, 2]\n  {grid}\n")
    for command in ("validate", "sweep"):
        done = cli(command, config, "--output-dir", tmp_path / "s") if command == "sweep" else cli(command, config)
        assert done.returncode == 2 and "Traceback" not in done.stderr, done.stderr
        assert done.stderr.startswith(f"{config}:4:3: error: {message}"), done.stderr
    bad = cli("sweep", QUICK, "--grid", "train.epochs=1,2", "--grid", "data.batch_size=32,big", "--output-dir",
              tmp_path / "s")
    assert bad.returncode == 2 and bad.stderr.startswith("<command line> (--grid): error: sweep key `data.batch_size`: "
                                                         "the value \"big\" is refused"), bad.stderr
    assert not (tmp_path / "s").exists()  # refused before anything was written


@pytest.fixture(scope="module")
def sweep_and_search(tmp_path_factory):
    """A sweep over two learning rates and the search of the same grid, from the same base config."""
    tmp = tmp_path_factory.mktemp("grid")
    base = write(tmp / "base.yaml", f"extends: {QUICK}\n{SHORT}")
    swept = cli("sweep", base, "--grid", "train.optimizer.learning_rate=0.1,1.0", "--output-dir", tmp / "sweep")
    assert swept.returncode == 0, swept.stderr[-3000:]
    config = write(tmp / "search.yaml", f"extends: {QUICK}\n{SHORT}search:\n  sampler: grid\n  pruner: none\n"
                   "  parameters:\n    train.optimizer.learning_rate: {choice: [0.1, 1.0]}\n")
    searched = cli("search", config, "--output-dir", tmp / "search")
    assert searched.returncode == 0, searched.stderr[-3000:]
    return tmp / "sweep", tmp / "search"


@pytest.mark.slow
def test_a_sweep_trains_the_runs_a_grid_search_trains_and_writes_the_same_table(sweep_and_search):
    sweep, search = sweep_and_search
    swept, searched = _rows(sweep / "trials.csv"), _rows(search / "trials.csv")
    assert list(swept[0]) == list(searched[0]) == ["trial", "learning_rate", "val_accuracy", "state", "epochs",
                                                   "seconds", "run"]
    assert [(r["learning_rate"], r["run"]) for r in swept] == [("0.1", "01-learning_rate=0.1"),
                                                              ("1.0", "02-learning_rate=1.0")]
    by_rate = {r["learning_rate"]: r for r in searched}
    for row in swept:  # same settings, same seed: the same run, whichever command trained it
        twin = by_rate[row["learning_rate"]]
        assert (row["state"], row["epochs"], row["val_accuracy"]) == (twin["state"], twin["epochs"], twin["val_accuracy"])
        assert (sweep / row["run"] / "config.yaml").read_text() == (search / twin["run"] / "config.yaml").read_text()
    assert (sweep / "trials.md").read_text().startswith("| trial | learning_rate | val_accuracy | state |")
    best = [(folder / "best.yaml").read_text().split("\n", 1) for folder in (sweep, search)]
    assert best[0][1] == best[1][1] and "val_accuracy" in best[0][0]  # the same config, with every default
    assert (sweep / "plots" / "val_accuracy_vs_train.optimizer.learning_rate.png").is_file()
    summary = json.loads((sweep / "summary.json").read_text())  # the sweep's own summary is still written
    assert [(r["run"], r["status"], round(r["val_accuracy"], 4)) for r in summary] == [
        (r["run"], r["state"], float(r["val_accuracy"])) for r in swept]


@pytest.mark.slow
def test_a_sweep_logs_the_hparams_a_search_logs(sweep_and_search):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    from tensorboard.plugins.hparams import plugin_data_pb2

    def experiment(folder):
        events = EventAccumulator(str(folder))
        events.Reload()
        data = plugin_data_pb2.HParamsPluginData.FromString(
            events.summary_metadata["_hparams_/experiment"].plugin_data.content)
        return [(h.name, list(h.domain_discrete.values)) for h in data.experiment.hparam_infos]

    sweep, search = sweep_and_search
    assert experiment(sweep) == experiment(search) and experiment(sweep)[0][0] == "train.optimizer.learning_rate"
    for row in _rows(sweep / "trials.csv"):
        session = EventAccumulator(str(sweep / row["run"] / "logs"))
        session.Reload()
        assert {"_hparams_/session_start_info", "_hparams_/session_end_info"} <= set(session.summary_metadata)


def _digest(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.mark.slow  # a fresh process that imports TensorFlow, three short runs and a resume
def test_a_killed_sweep_run_again_finishes_every_run_and_deletes_none(tmp_path):
    config = write(tmp_path / "base.yaml", f"extends: {QUICK}\n{SHORT}")
    out = tmp_path / "s"
    proc = killed_in_second_run("from cnnzoo.training.sweep import sweep\nsweep(sys.argv[1], [], "
                                "['train.optimizer.learning_rate=0.1,0.3,1.0'], output_dir=sys.argv[2], "
                                "callbacks=callbacks)", config, out)
    assert proc.returncode == -signal.SIGKILL, proc.stderr[-3000:]
    first, killed = out / "01-learning_rate=0.1", out / "02-learning_rate=0.3"
    assert json.loads((killed / "run.json").read_text())["status"] == "running"
    kept = {name: _digest(first / name) for name in ("model.keras", "metrics.json", "run.json", "history.csv")}
    again = cli("sweep", config, "--grid", "train.optimizer.learning_rate=0.1,0.3,1.0", "--output-dir", out)
    assert again.returncode == 0, again.stderr[-3000:]
    assert "trial 2 was left running by process" in again.stdout and "resuming from" in again.stdout
    assert again.stdout.count("cnnzoo: training") == 1  # only the run never started: the third
    summary = json.loads((out / "summary.json").read_text())
    assert [(r["run"], r["status"], r["epochs"]) for r in summary] == [
        ("01-learning_rate=0.1", "completed", 2), ("02-learning_rate=0.3", "completed", 2),
        ("03-learning_rate=1.0", "completed", 2)]
    assert [r["state"] for r in _rows(out / "trials.csv")] == [
        "completed", "interrupted: retried as trial 3", "completed", "completed"]
    assert {name: _digest(first / name) for name in kept} == kept
    assert len((killed / "history.csv").read_text().splitlines()) == 3  # epoch 1 kept, epoch 2 added
    assert sorted(p.name for p in out.iterdir() if p.is_dir()) == [
        "01-learning_rate=0.1", "02-learning_rate=0.3", "03-learning_rate=1.0", "plots"]
