"""`cnnzoo search`: ranges checked at load time, a small search and its outputs, a SIGKILLed search run
again, two processes on one storage, a diverging trial."""

from __future__ import annotations

import csv
import hashlib
import json
import os
import signal
import subprocess
import sys

import pytest

from conftest import REPO, TINY, cli, killed_in_second_run, write

QUICK = TINY
SHORT = "train: {epochs: 2, steps_per_epoch: 4, pictures: false}\nruntime: {seed: 1}\n"


def _config(tmp_path, parameters: str, search: str = "trials: 3", name: str = "search.yaml"):
    return write(tmp_path / name, f"extends: {QUICK}\n{SHORT}search:\n  {search}\n  parameters:\n{parameters}")


def _rows(folder) -> list[dict]:
    with (folder / "trials.csv").open() as f:
        return list(csv.DictReader(f))


@pytest.mark.parametrize("parameter, message", [
    ("data.batchsize: {choice: [32, 64]}", "search parameter `data.batchsize`: the value 32 is refused: unknown key "
     "`batchsize`. Did you mean `batch_size`?"),
    ("train.optimizer.learning_rate: {float: [1.0, 0.1]}", "the range [1.0, 0.1] is reversed"),
    ("train.optimizer.learning_rate: {float: [0.5, 0.5]}", "the range [0.5, 0.5] is empty"),
    ("train.optimizer.learning_rate: {float: [0, 1.0], log: true}", "a log range must stay above 0"),
    ("data.batch_size: {choice: [32, big]}", "search parameter `data.batch_size`: the value \"big\" is refused: "
     "input should be a valid integer"),
    ("model.params.width: {int: [8, 64], step: 8}", "the model has no parameter `width`"),
    ("data.batch_size: {int: [8, 64], choice: [8]}", "give exactly one of"),
])
def test_a_bad_parameter_is_refused_at_its_line(tmp_path, parameter, message):
    config = _config(tmp_path, f"    {parameter}\n    train.epochs: {{int: [1, 2]}}\n")
    done = cli("validate", config)
    assert done.returncode == 2 and "Traceback" not in done.stderr, done.stderr
    assert done.stderr.startswith(f"{config}:7:5: error: ") and message in done.stderr, done.stderr


def test_a_metric_not_logged_and_a_grid_of_a_float_range_are_refused(tmp_path):
    lr = "    train.optimizer.learning_rate: {float: [0.1, 1.0]}\n"
    done = cli("validate", _config(tmp_path, lr, "sampler: grid"))
    assert done.returncode == 2 and "float range without a `step`" in done.stderr, done.stderr
    done = cli("validate", _config(tmp_path, lr, "metric: val_top5"))
    assert done.returncode == 2 and ":5:" in done.stderr and "val_top5" in done.stderr, done.stderr


@pytest.fixture(scope="module")
def small_search(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("search")
    config = _config(tmp, "    train.optimizer.learning_rate: {float: [0.05, 1.0], log: true}\n"
                          "    data.batch_size: {choice: [64, 32]}\n")
    done = cli("search", config, "--output-dir", tmp / "s")
    assert done.returncode == 0, done.stderr[-3000:]
    return tmp / "s"


@pytest.mark.slow
def test_a_search_writes_its_table_hparams_plots_and_a_best_yaml_that_trains(small_search, tmp_path):
    rows = _rows(small_search)
    assert [r["trial"] for r in rows] == ["1", "2", "3"] and all(r["state"] in ("completed", "pruned") for r in rows)
    assert list(rows[0]) == ["trial", "learning_rate", "batch_size", "val_accuracy", "state", "epochs", "seconds", "run"]
    assert all((small_search / r["run"] / "model.keras").is_file() for r in rows)
    assert (small_search / "trials.md").read_text().startswith("| trial | learning_rate | batch_size | val_accuracy |")
    assert (small_search / "plots" / "val_accuracy_vs_train.optimizer.learning_rate.png").is_file()
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    experiment = EventAccumulator(str(small_search))
    experiment.Reload()
    assert "_hparams_/experiment" in experiment.summary_metadata
    best = max((r for r in rows if r["state"] == "completed"), key=lambda r: float(r["val_accuracy"]))
    text = (small_search / "best.yaml").read_text()
    assert f"trial {best['trial']}," in text.splitlines()[0] and "search:" not in text
    assert f"batch_size: {best['batch_size']}" in text
    for row in rows:  # numeric choices are drawn as an index into their sorted values (TPE sees the order)
        assert f"batch_size: {row['batch_size']}" in (small_search / row["run"] / "config.yaml").read_text()
    import optuna

    study = optuna.load_study(study_name=None, storage=f"sqlite:///{small_search / 'study.db'}")
    assert {str(t.distributions["data.batch_size"]) for t in study.trials} == {"IntDistribution(high=1, log=False, low=0, step=1)"}
    assert {(t.params["data.batch_size"], r["batch_size"]) for t, r in zip(study.trials, rows)} <= {(0, "32"), (1, "64")}
    done = cli("train", "--config", small_search / "best.yaml", "--output-dir", tmp_path / "again")
    assert done.returncode == 0, done.stderr[-2000:]


@pytest.mark.slow
def test_the_same_search_again_runs_nothing_more_and_more_trials_add_to_it(small_search):
    config = small_search.parent / "search.yaml"
    again = cli("search", config, "--output-dir", small_search)
    assert again.returncode == 0 and "cnnzoo: trial" not in again.stdout, again.stdout[-2000:]
    more = cli("search", config, "--output-dir", small_search, "--trials", "4")
    assert more.returncode == 0 and more.stdout.count("cnnzoo: trial 4:") == 1, more.stderr[-2000:]
    assert len(_rows(small_search)) == 4
    other = cli("search", config, "--output-dir", small_search, "train.epochs=1")  # another study: its own folder
    assert other.returncode == 2 and "holds the trials of another search" in other.stderr, other.stderr


def test_numeric_choices_are_drawn_in_order_unless_the_study_began_with_them_as_categories():
    import optuna

    from cnnzoo import load_config
    from cnnzoo.training.search_study import ordered_choices, suggest, value_of

    spec = load_config(QUICK, ['search={"parameters": {"data.batch_size": {"choice": [128, 32, 64]}, '
                               '"model.name": {"choice": ["a", "b"]}}}']).search
    study = optuna.create_study()
    ordered = ordered_choices(study, spec)
    assert ordered == {"data.batch_size": [32, 64, 128]}
    trial = study.ask()
    drawn = suggest(trial, "data.batch_size", spec.parameters["data.batch_size"], ordered)
    assert drawn == value_of(trial, "data.batch_size", spec.parameters["data.batch_size"], ordered) in (32, 64, 128)
    assert trial.params["data.batch_size"] == [32, 64, 128].index(drawn)
    earlier = optuna.create_study()  # a study begun with the values as categories goes on so
    earlier.add_trial(optuna.trial.create_trial(params={"data.batch_size": 64}, value=0.5, distributions={
        "data.batch_size": optuna.distributions.CategoricalDistribution([128, 32, 64])}))
    assert ordered_choices(earlier, spec) == {}


def _digest(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.mark.slow
def test_a_search_killed_in_a_trial_goes_on_to_exactly_the_trials_asked_keeping_what_completed(tmp_path):
    config = _config(tmp_path, "    train.optimizer.learning_rate: {choice: [0.1, 0.3, 1.0]}\n",
                     "trials: 3\n  sampler: grid\n  pruner: none")
    out = tmp_path / "s"
    proc = killed_in_second_run("from cnnzoo.training.search import search\n"
                                "search(sys.argv[1], output_dir=sys.argv[2], callbacks=callbacks)", config, out)
    assert proc.returncode == -signal.SIGKILL, proc.stderr[-3000:]
    first = next((out / "trials").glob("01-*"))
    killed = next((out / "trials").glob("02-*"))
    kept = {name: _digest(first / name) for name in ("model.keras", "metrics.json", "run.json", "history.csv")}
    again = cli("search", config, "--output-dir", out)
    assert again.returncode == 0, again.stderr[-3000:]
    assert "trial 2 was left running by process" in again.stdout and "resuming from" in again.stdout
    rows = _rows(out)
    assert [r["state"] for r in rows] == ["completed", "interrupted: retried as trial 3", "completed", "completed"]
    assert rows[2]["run"] == rows[1]["run"] == f"trials/{killed.name}"
    assert sorted(r["learning_rate"] for r in rows if r["state"] == "completed") == ["0.1", "0.3", "1.0"]
    assert {name: _digest(first / name) for name in kept} == kept
    assert json.loads((killed / "metrics.json").read_text())["epochs_completed"] == 2
    assert len(list((out / "trials").iterdir())) == 3


@pytest.mark.slow
def test_two_processes_on_one_storage_run_the_trials_asked_between_them(tmp_path):
    config = _config(tmp_path, "    train.optimizer.learning_rate: {float: [0.05, 1.0], log: true}\n",
                     "trials: 4\n  pruner: none")
    storage = f"sqlite:///{tmp_path / 'shared.db'}"
    args = [sys.executable, "-m", "cnnzoo.cli", "search", str(config), "--output-dir", str(tmp_path / "s"),
            "--storage", storage, "train.epochs=1"]
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    procs = [subprocess.Popen(args, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
             for _ in range(2)]
    outputs = [p.communicate(timeout=300) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outputs[0][1][-2000:] + outputs[1][1][-2000:]
    import optuna

    study = optuna.load_study(study_name=None, storage=storage)
    done = [t for t in study.trials if t.state.name == "COMPLETE"]
    assert len(done) == 4 and len({t.user_attrs["folder"] for t in done}) == 4
    assert len({t.user_attrs["pid"] for t in done}) == 2  # both took part
    assert all(t.state.name == "COMPLETE" or t.user_attrs.get("surplus") for t in study.trials)
    assert len(_rows(tmp_path / "s")) == 4


@pytest.mark.parametrize("kind", ["random", "tpe"])
def test_processes_on_one_storage_draw_other_values_whichever_started_first(kind):
    """Seen once in CI: the second of two processes started with the next pid, after the first had asked one
    trial; its draws, seeded with `seed + trials before + pid`, were the first's again (a trial of repeated
    values, so five completed trials for four asked)."""
    import optuna

    from cnnzoo import load_config
    from cnnzoo.training.search_study import sampler

    spec = load_config(QUICK, ['search={"sampler": "%s", "parameters": {"train.optimizer.learning_rate": '
                               '{"float": [0.05, 1.0], "log": true}}}' % kind]).search

    def draws(trials_before: int, process: int | None) -> list[float]:
        study = optuna.create_study(sampler=sampler(spec, 1, 4, trials_before=trials_before, process=process))
        return [study.ask().suggest_float("lr", 0.05, 1.0, log=True) for _ in range(3)]

    pid = 4000
    assert draws(1, pid) != draws(0, pid + 1)  # the case seen: equal before
    assert draws(0, pid) != draws(0, pid + 1) and draws(1, pid) == draws(1, pid)  # others differ; one is repeatable
    assert draws(0, None) == draws(0, None) != draws(1, None)  # one process: a rerun draws anew, reproducibly


@pytest.mark.slow
def test_a_diverging_trial_is_recorded_and_the_search_goes_on(tmp_path):
    config = _config(tmp_path, "    train.optimizer.learning_rate: {choice: [0.01, 1.0e+30]}\n",
                     "sampler: grid\n  pruner: none")
    config.write_text(config.read_text().replace("pictures: false}", "pictures: false, optimizer: {name: sgd}}"))
    done = cli("search", config, "--output-dir", tmp_path / "s")
    assert done.returncode == 0, done.stderr[-3000:]
    rows = {r["learning_rate"]: r for r in _rows(tmp_path / "s")}
    assert rows["0.01"]["state"] == "completed"
    assert rows["1e+30"]["state"].startswith("pruned: ") and "NaN" in rows["1e+30"]["state"]
    assert (tmp_path / "s" / "best.yaml").read_text().count("learning_rate: 0.01") == 1


@pytest.mark.slow
def test_a_search_stopped_by_ctrl_c_goes_on_inside_the_stopped_trial(tmp_path):
    import keras

    from cnnzoo import CnnzooError
    from cnnzoo.training.search import search

    class StopInSecondTrial(keras.callbacks.Callback):
        fits = 0

        def on_train_begin(self, logs=None):
            StopInSecondTrial.fits += 1

        def on_train_batch_end(self, batch, logs=None):
            if StopInSecondTrial.fits == 2 and batch == 1:
                os.kill(os.getpid(), signal.SIGINT)  # handled after this batch, once its state is saved

    config = _config(tmp_path, "    train.optimizer.learning_rate: {choice: [0.1, 1.0]}\n",
                     "sampler: grid\n  pruner: none")
    out = tmp_path / "s"
    with pytest.raises(CnnzooError, match="training stopped by SIGINT") as stopped:
        search(str(config), output_dir=str(out), callbacks=[StopInSecondTrial()], log=lambda _: None)
    assert "Run the same `cnnzoo search` command again" in stopped.value.hint
    again = cli("search", config, "--output-dir", out)
    assert again.returncode == 0 and "resuming from" in again.stdout, again.stderr[-2000:]
    assert [r["state"] for r in _rows(out)] == ["completed", "interrupted: retried as trial 3", "completed"]


@pytest.mark.slow
def test_a_repeated_draw_does_not_count_as_a_trial_and_a_search_stops_when_every_point_was_tried(tmp_path):
    # random search, seed 3, over two choices draws 0.3 twice first: two trials asked for are two runs trained
    config = _config(tmp_path, "    train.optimizer.learning_rate: {choice: [0.1, 0.3]}\n", "trials: 2\n  sampler: random")
    config.write_text(config.read_text().replace("seed: 1", "seed: 3"))
    done = cli("search", config, "--output-dir", tmp_path / "s")
    assert done.returncode == 0 and done.stdout.count("cnnzoo: training") == 2, done.stdout[-3000:] + done.stderr[-2000:]
    rows = _rows(tmp_path / "s")
    first, second = rows[:2]  # values drawn again under a seed: the earlier result and folder, nothing trained
    assert second["state"] == "completed: the values of trial 1, not trained again"
    assert second["val_accuracy"] == first["val_accuracy"] and second["run"] == first["run"] and second["epochs"] == "0"
    trained = [r for r in rows if "not trained again" not in r["state"]]
    assert sorted(r["learning_rate"] for r in trained) == ["0.1", "0.3"] and len(rows) == 3
    more = cli("search", config, "--output-dir", tmp_path / "s", "--trials", "5")  # only 2 points exist
    assert more.returncode == 0 and "cnnzoo: training" not in more.stdout, more.stderr[-2000:]
    assert "every point of the search space has been tried (2)" in more.stdout
    assert _rows(tmp_path / "s")[:len(rows)] == rows
