"""Training end to end on the bundled MNIST sample: run directory, TensorBoard, saved model, resume, NaN."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import tensorflow as tf
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from cnnzoo import CnnzooError, TrainingError, load_config, train
from cnnzoo.training.history import read_history
from cnnzoo.training.resume import effective_config, resume
from cnnzoo.training.run_dir import RunDir
from conftest import CONFIGS, REPO, TINY, cli, without_cnnzoo

QUICK = TINY  # the lecture's net is trained by `one_epoch_run`; the other runs test the run, not the net
TRAIN_EXAMPLES = 5400  # the bundled sample's 6,000 less the 10% held out for validation
STEPS = -(-TRAIN_EXAMPLES // 128)


@pytest.fixture(scope="module")
def one_epoch_run(tmp_path_factory):
    """One epoch of the slide's net on the bundled sample, shared by the checks below."""
    config = load_config(CONFIGS / "quickstart.yaml", ["train.epochs=1", "runtime.seed=7"])
    out = tmp_path_factory.mktemp("runs") / "quick"
    return train(config, output_dir=str(out), log=lambda _: None)


@pytest.mark.slow
def test_one_epoch_beats_chance_by_far(one_epoch_run):
    metrics = one_epoch_run.metrics
    assert metrics["params"] == 600_810 and metrics["epochs_completed"] == 1
    assert metrics["test"]["accuracy"] > 0.6  # chance is 0.1
    assert metrics["train_examples"] == TRAIN_EXAMPLES
    assert len(metrics["history"]["val_accuracy"]) == len(metrics["epoch_seconds"]) == 1


@pytest.mark.parametrize("setting, expected", [([], False), (["data.autotune=true"], True)])
def test_tf_data_autotuning_is_off_unless_configured_and_batches_still_reshuffle(setting, expected):
    # Autotuning's model thread made each new iterator (every epoch) wait up to seconds; see README "Speed".
    from cnnzoo.data.tfds_input import load_datasets

    config = load_config(QUICK, setting)
    data = load_datasets(config, one_hot=True)
    assert {data.train.options().autotune.enabled, data.test.options().autotune.enabled} == {expected}
    first, second = (next(iter(data.stream.epoch(e)))[1].numpy() for e in range(2))
    assert first.shape == (128, 10) and not np.array_equal(first, second)  # a new order each epoch
    tf.random.set_seed(0)  # a global seed of 0 (runtime.seed: 0) once made the epoch's shuffle fail to trace
    again = next(iter(load_datasets(config, one_hot=True).stream.epoch(1)))[1].numpy()
    assert np.array_equal(second, again)  # the same order for the same epoch: what a resumed run reads


@pytest.mark.slow
def test_run_directory_contents(one_epoch_run):
    run = one_epoch_run.run_dir
    for path in (run.config, run.info, run.model, run.metrics, run.history,
                 run.checkpoints / "last.keras", run.checkpoints / "best.keras"):
        assert path.is_file(), path
    # One epoch is the best so far: best.keras is a copy of last.keras, not a second save of the model.
    assert (run.checkpoints / "best.keras").read_bytes() == (run.checkpoints / "last.keras").read_bytes()
    assert not run.backup.exists()  # removed once the run completed
    info = json.loads(run.info.read_text())
    assert info["status"] == "completed" and info["seed"] == 7
    assert info["versions"]["tensorflow"] and info["versions"]["keras"].startswith("3.")
    saved = load_config(run.config)  # the resolved config reloads and reproduces the run
    assert saved.runtime.seed == 7 and saved.train.epochs == 1 and saved.data.name == "mnist_sample"


def _events(path):
    acc = EventAccumulator(str(path), size_guidance={"tensors": 0})
    acc.Reload()
    return acc


@pytest.mark.slow
def test_tensorboard_logs_scalars_config_text_and_graph(one_epoch_run):
    logs = one_epoch_run.run_dir.logs
    train_events, val_events = _events(logs / "train"), _events(logs / "validation")
    assert {"epoch_loss", "epoch_accuracy", "epoch_learning_rate"} <= set(train_events.Tags()["tensors"])
    assert {"epoch_loss", "epoch_accuracy"} <= set(val_events.Tags()["tensors"])
    lr = float(tf.make_ndarray(train_events.Tensors("epoch_learning_rate")[0].tensor_proto))
    assert lr == pytest.approx(1.0)  # Adadelta at the slide's learning rate
    text = tf.make_ndarray(train_events.Tensors("config")[0].tensor_proto).item().decode()
    assert "name: adadelta" in text and "learning_rate: 1.0" in text
    assert train_events.Tags()["graph"] is True
    graph = train_events.Graph()
    assert any("conv2d" in node.name for node in graph.node)


@pytest.mark.slow
def test_saved_model_loads_without_cnnzoo(one_epoch_run, tmp_path):
    """model.keras loads with plain Keras in a process that never imports cnnzoo."""
    images = np.random.default_rng(0).random((5, 28, 28, 1), dtype=np.float32)
    np.save(tmp_path / "x.npy", images)
    expected = one_epoch_run.model.predict(images, verbose=0)
    script = (
        "import sys, numpy as np, keras\n"
        f"m = keras.models.load_model({str(one_epoch_run.run_dir.model)!r})\n"
        f"np.save({str(tmp_path / 'y.npy')!r}, m.predict(np.load({str(tmp_path / 'x.npy')!r}), verbose=0))\n"
        "assert not any(name.startswith('cnnzoo') for name in sys.modules), 'cnnzoo was imported'\n"
    )
    done = without_cnnzoo(script, cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-2000:]
    np.testing.assert_allclose(np.load(tmp_path / "y.npy"), expected, atol=1e-6)


@pytest.mark.slow
def test_a_completed_run_trains_further_from_its_final_state(one_epoch_run, tmp_path):
    """`--resume RUN train.epochs=2` on a completed 1-epoch run adds one epoch, optimizer state included."""
    copy = shutil.copytree(one_epoch_run.run_dir.path, tmp_path / "copy")  # leave the shared run as it was
    run = RunDir(copy)
    before = json.loads(run.metrics.read_text())
    result = resume(str(run.path), ("train.epochs=2",), log=lambda _: None)
    assert result.metrics["epochs_completed"] == 2
    assert result.metrics["history"]["loss"][0] == before["history"]["loss"][0]
    assert int(result.model.optimizer.iterations.numpy()) == 2 * STEPS
    # config.yaml stays what the run started with; run.json records each resume's overrides
    assert load_config(run.config).train.epochs == 1 and effective_config(run).train.epochs == 2
    assert [r["overrides"] for r in json.loads(run.info.read_text())["resumes"]] == [["train.epochs=2"]]


@pytest.mark.slow
def test_nan_loss_stops_with_a_clear_error_and_keeps_the_last_good_epoch(tmp_path):
    """Epoch 1 trains normally; a huge learning rate from epoch 2 on makes the loss NaN."""
    import keras

    config = load_config(QUICK, [
        "train.epochs=3", "runtime.seed=1", "train.optimizer={name: sgd, learning_rate: 0.01}",
        "train.lr_schedule={name: PiecewiseConstantDecay, unit: epoch, boundaries: [1], values: [0.01, 1e30]}",
    ])
    with pytest.raises(TrainingError) as info:
        train(config, output_dir=str(tmp_path / "nan"), log=lambda _: None)
    assert "the loss became NaN/inf at epoch 2, batch" in str(info.value)
    assert f"cnnzoo train --resume {tmp_path / 'nan'} train.optimizer.learning_rate=" in str(info.value)
    assert info.value.exit_code == 3
    assert json.loads((tmp_path / "nan" / "run.json").read_text())["status"] == "failed: NaN loss"
    # No NaN weights were saved: the checkpoint and the resume state are epoch 1's.
    last = keras.models.load_model(tmp_path / "nan" / "checkpoints" / "last.keras")
    assert all(np.isfinite(w).all() for w in last.get_weights())
    assert json.loads((tmp_path / "nan" / "backup" / "current" / "state.json").read_text())["epoch"] == 1


def _start_and_wait_for_first_backup(out, *overrides):
    cmd = [sys.executable, "-m", "cnnzoo.cli", "train", "--config", str(QUICK), "--output-dir", str(out), *overrides]
    proc = subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    marker = out / "backup" / "current" / "state.json"
    deadline = time.time() + 240
    while not marker.exists() and proc.poll() is None and time.time() < deadline:
        time.sleep(0.05)
    assert marker.exists(), "the run ended before its first backup"
    return proc, marker


KILLED_AT = """
import os, signal, sys, keras
from cnnzoo import load_config, train
at_epoch, at_batch = int(sys.argv[3]), (None if sys.argv[4] == "end" else int(sys.argv[4]))

class Kill(keras.callbacks.Callback):
    def on_epoch_begin(self, epoch, logs=None):
        self.epoch = epoch
    def on_train_batch_end(self, batch, logs=None):
        if (self.epoch, batch) == (at_epoch, at_batch):
            os.kill(os.getpid(), signal.SIGKILL)
    def on_epoch_end(self, epoch, logs=None):  # after the epoch's state is saved
        if (epoch, at_batch) == (at_epoch, None):
            os.kill(os.getpid(), signal.SIGKILL)

train(load_config(sys.argv[1], sys.argv[5:]), output_dir=sys.argv[2], callbacks=[Kill()])
"""


def _killed_at(out, epoch: int, batch: int | None, *overrides: str) -> None:
    """Train in a fresh process that SIGKILLs itself after `batch` of `epoch` (both from 0; None: at the
    epoch's end), as a crash or the OOM killer would: no race between a watcher and the saves."""
    proc = subprocess.run([sys.executable, "-c", KILLED_AT, str(QUICK), str(out), str(epoch),
                           "end" if batch is None else str(batch), *overrides],
                          cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, timeout=300)
    assert proc.returncode == -signal.SIGKILL, proc.stderr[-2000:]


@pytest.mark.slow
@pytest.mark.parametrize("signum,code", [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_ctrl_c_or_sigterm_saves_state_mid_epoch_and_says_how_to_resume(tmp_path, signum, code):
    out = tmp_path / "interrupted"
    # More epochs than it can finish before the signal (the tiny net trains one in about 0.5 s here)
    proc, marker = _start_and_wait_for_first_backup(out, "train.epochs=20")
    proc.send_signal(signum)  # the first epoch is saved: the signal lands in the second (or a later) one
    _, stderr = proc.communicate(timeout=120)
    assert proc.returncode == code, stderr[-2000:]
    assert "Traceback" not in stderr
    name = signal.Signals(signum).name
    found = re.search(rf"error: training stopped by {name} at epoch (\d), batch (\d+); its weights and optimizer "
                      rf"state are saved\. Continue with: cnnzoo train --resume {re.escape(str(out))}", stderr)
    assert found, stderr[-1000:]
    assert json.loads((out / "run.json").read_text())["status"] == "interrupted"
    # Saved at the batch the signal ended, inside the epoch (epochs are counted from 0 there, batches done from 1).
    epoch, batch = int(found.group(1)), int(found.group(2))
    state = json.loads(marker.read_text())
    assert (state["epoch"], state["batch"], state["step"]) == (epoch - 1, batch, (epoch - 1) * STEPS + batch)
    assert epoch >= 2
    assert (out / "backup" / "current" / "model.weights.h5").exists() and (out / "checkpoints" / "last.keras").exists()


@pytest.mark.slow
def test_sigkill_mid_epoch_resumes_with_the_step_counter_and_schedule_going_on(tmp_path):
    """runtime.backup_every_steps: a SIGKILL mid-epoch loses at most N steps; --resume finishes the run."""
    import keras

    overrides = ["train.epochs=3", "data.batch_size=32", "train.steps_per_epoch=60", "runtime.backup_every_steps=20",
                 "runtime.seed=4"]
    out = tmp_path / "killed"
    _killed_at(out, 1, 44, *overrides)  # in the second epoch, after the save at its batch 40
    marker = out / "backup" / "current" / "state.json"
    state = json.loads(marker.read_text())
    assert (state["epoch"], state["batch"]) == (1, 40), state
    steps = 60
    saved_at = state["step"]  # the optimizer step of the last save
    assert saved_at == state["epoch"] * steps + state["batch"]

    done = cli("train", "--resume", out)  # the kill needed a process of its own; the resume does not
    assert done.returncode == 0, done.stderr[-2000:]
    assert "after epoch 1, batch 40 of epoch 2" in done.stdout
    assert "epoch 2/3" in done.stdout  # the rest of the interrupted epoch, then on
    history = read_history(RunDir(out))
    assert history["epoch"] == [0.0, 1.0, 2.0]
    # The step counter (which drives any lr schedule) went on from the save: the batches after it, once each.
    model = keras.models.load_model(out / "model.keras")
    assert int(model.optimizer.iterations.numpy()) == 3 * steps
    assert json.loads((out / "metrics.json").read_text())["test"]["accuracy"] > 0.5  # 180 steps of 32: it learned


@pytest.mark.slow
def test_a_run_stopped_inside_an_epoch_and_resumed_ends_with_the_uninterrupted_runs_weights(tmp_path):
    """Resume goes on from the next unseen batch, in the same order, with the same dropout masks and
    augmentation draws: its final weights equal those of a run never stopped, bit for bit. Epochs of 30
    steps over 43-batch passes: the stop (global batch 40) and the resume cross the data's epochs."""
    import os

    import keras

    overrides = ["train.epochs=3", "train.steps_per_epoch=30", "runtime.seed=5", "train.pictures=false",
                 "data.augmentation.pad_crop=2", "data.augmentation.horizontal_flip=true"]

    class Stop(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            self.epoch = epoch

        def on_train_batch_end(self, batch, logs=None):
            if self.epoch == 1 and batch == 8:
                os.kill(os.getpid(), signal.SIGINT)  # handled after this batch: the save comes at the next one

    whole = train(load_config(QUICK, overrides), output_dir=str(tmp_path / "whole"), log=lambda _: None)
    with pytest.raises(CnnzooError, match="at epoch 2, batch 10"):
        train(load_config(QUICK, overrides), output_dir=str(tmp_path / "stopped"), log=lambda _: None,
              callbacks=[Stop()])
    lines = []
    resumed = resume(str(tmp_path / "stopped"), log=lines.append)
    assert any("after epoch 1, batch 10 of epoch 2" in line for line in lines), lines
    assert int(resumed.model.optimizer.iterations.numpy()) == 90
    assert resumed.metrics["weights_sha256"] == whole.metrics["weights_sha256"]
    assert resumed.metrics["history"]["val_loss"] == whole.metrics["history"]["val_loss"]


def test_an_unwritable_output_dir_fails_before_training(tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    done = cli("train", QUICK, "--output-dir", blocker / "run")
    assert done.returncode == 2
    assert f"error: cannot write the run directory {blocker / 'run'}" in done.stderr
    assert "--output-dir" in done.stderr and "Traceback" not in done.stderr


def test_a_full_disk_fails_before_training_and_leaves_no_run(tmp_path, monkeypatch):
    import shutil
    from collections import namedtuple

    usage = namedtuple("usage", "total used free")
    monkeypatch.setattr(shutil, "disk_usage", lambda path: usage(10**9, 10**9 - 10**6, 10**6))  # 1 MB free
    with pytest.raises(CnnzooError) as err:
        train(load_config(QUICK), output_dir=str(tmp_path / "full"), log=lambda _: None)
    assert "only 1 MB free on the disk holding" in str(err.value) and "--output-dir" in str(err.value)
    assert not (tmp_path / "full").exists()


@pytest.mark.slow
def test_resume_after_kill_continues_epochs_and_optimizer_state(tmp_path):
    """SIGKILL a real training process after its first epoch, then --resume finishes the run."""
    out = tmp_path / "killed"
    _killed_at(out, 0, None, "train.epochs=4", "runtime.seed=3")
    assert json.loads((out / "backup" / "current" / "state.json").read_text())["epoch"] == 1
    assert not (out / "model.keras").exists()

    result = resume(str(out), log=lambda _: None)
    history = read_history(result.run_dir)
    assert history["epoch"] == [0.0, 1.0, 2.0, 3.0]  # each epoch once, none repeated or lost
    assert result.metrics["epochs_completed"] == 4
    # The optimizer's step counter came back from the backup: 4 epochs' worth, not only the resumed ones.
    assert int(result.model.optimizer.iterations.numpy()) == 4 * STEPS
    assert json.loads(result.run_dir.info.read_text())["status"] == "completed"


def test_a_run_traces_its_train_step_once(tmp_path, monkeypatch):
    """The compiled metrics are built before the first step: created inside it, they made tf.function
    trace the whole step twice (a ResNet-20 run of 3 steps took ~1.2 s more)."""
    import keras

    traced = []
    step = keras.Model.train_step

    def counted(self, data):
        traced.append(1)
        return step(self, data)

    monkeypatch.setattr(keras.Model, "train_step", counted)
    result = train(load_config(QUICK, ["train.epochs=2", "train.steps_per_epoch=2", "runtime.seed=2"]),
                   output_dir=str(tmp_path / "run"), log=lambda _: None)
    assert len(traced) == 1 and result.metrics["epochs_completed"] == 2


def test_a_lost_worker_told_in_a_sentence_leaves_no_frames_behind(tmp_path):
    """A collective that fails because a worker is gone is told as a TrainingError; the frames it failed in
    are freed then, not at interpreter exit. TensorFlow's eager all-reduce leaves a thread pool open in
    them, whose clean-up at exit printed `Exception ignored in: Pool.__del__ ... Bad file descriptor`
    after the chief's message (seen twice in clean-clone runs of the lost-worker test)."""
    import gc
    import weakref

    import keras

    left = []

    class Held:  # stands for that thread pool
        pass

    class LostAtTheEpochsEnd(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            pool = Held()
            left.append(weakref.ref(pool))
            raise tf.errors.UnavailableError(None, None, "The following tasks are unhealthy (stopped sending heartbeats)")

    with pytest.raises(TrainingError) as failed:
        train(load_config(QUICK, ["train.epochs=1", "train.steps_per_epoch=2"]), output_dir=str(tmp_path / "run"),
              log=lambda _: None, callbacks=[LostAtTheEpochsEnd()])
    assert "another worker stopped responding" in str(failed.value)
    gc.collect()
    assert left and left[0]() is None, "the failed call's frames are still held by the error"


@pytest.mark.slow
@pytest.mark.parametrize("closed_after", [None, "epoch 1/"])
def test_a_run_whose_output_is_closed_stops_saying_so_and_resumes(tmp_path, closed_after):
    """`python train.py ... | head`: the reader exits, and the run's next line meets a broken pipe. The run
    stops as a signal would stop it (SIGPIPE's exit status, the run marked interrupted, what it saved
    kept) and says so on stderr; not exit 0 with the run left `running`, nor a disk error. The pipe is
    closed before the run's first line (the line before training), or after the first epoch's line
    (the next one comes from inside `fit`, after that epoch's state is saved)."""
    out = tmp_path / "run"
    cmd = [sys.executable, "-m", "cnnzoo.cli", "train", "--config", str(QUICK), "--output-dir", str(out),
           "train.epochs=20", "train.steps_per_epoch=2"]  # epochs left to stop in after the first
    if closed_after is None:
        read, write = os.pipe()
        os.close(read)
        proc = subprocess.Popen(cmd, cwd=REPO, stdout=write, stderr=subprocess.PIPE, text=True)
        os.close(write)
    else:
        proc = subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        while closed_after not in (line := proc.stdout.readline()) and line:
            pass
        proc.stdout.close()  # as `head` exits
    stderr = proc.stderr.read()
    proc.wait(timeout=240)
    assert proc.returncode == 128 + signal.SIGPIPE, stderr[-2000:]
    assert "Traceback" not in stderr and "Exception ignored" not in stderr, stderr[-2000:]
    assert "its output was closed" in stderr and f"cnnzoo train --resume {out}" in stderr, stderr
    assert json.loads((out / "run.json").read_text())["status"] == "interrupted"
    done = cli("train", "--resume", out)
    assert done.returncode == 0, done.stderr[-2000:]
    assert json.loads((out / "run.json").read_text())["status"] == "completed"
    if closed_after is None:  # stopped before training: nothing saved, so it starts from the first epoch
        assert "has no saved state" in done.stdout, done.stdout
    else:  # from the saved epochs on
        assert "resuming from" in done.stdout and "epoch 1/20" not in done.stdout, done.stdout
