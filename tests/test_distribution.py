"""Strategies (multi-worker, mirrored, TPU selection), mixed precision and determinism, on real CPU runs."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import keras
import numpy as np
import pytest
import tensorflow as tf

from cnnzoo import CnnzooError, build_model, load_config, train
from cnnzoo.runtime import strategy as strategy_module
from cnnzoo.runtime.cluster import local_tf_config
from cnnzoo.runtime.precision import auto_precision, cpu_flags
from conftest import CONFIGS, PORT_TAKEN, REPO, TINY

QUICK = TINY


def _free_ports(n: int) -> list[int]:
    sockets = [socket.socket() for _ in range(n)]
    for s in sockets:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return ports


def _cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "cnnzoo.cli", *args]


@pytest.mark.slow
def test_a_lost_worker_stops_the_other_with_a_clear_message_and_resume_finishes_the_run(tmp_path):
    """SIGKILL worker 1 in the middle of training: the chief stops once the heartbeat timeout passes
    (3 s here, TensorFlow's 10 s by default) with exit code 3 and the command to continue; both workers
    then resume the run, train the same weights, and only the chief's run directory is kept (a run
    started by two workers, without a loss, is tests/test_slurm.py's)."""
    env = {**os.environ, "PYTHONPATH": str(REPO)}

    def start(index: int, *args: str) -> subprocess.Popen:
        return subprocess.Popen(_cli("train", *args, "--workers", workers, "--worker-index", str(index)), cwd=REPO,
                                env=env, text=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE)

    for attempt in range(3):  # a free port can be taken by another process before the workers bind it
        workers = ",".join(f"127.0.0.1:{p}" for p in _free_ports(2))
        out = tmp_path / f"run{attempt}"
        # Epochs enough that the chief is still training when worker 1 dies (the tiny net's are short)
        common = [str(QUICK), "--output-dir", str(out), "train.epochs=10", "train.steps_per_epoch=6", "runtime.seed=11",
                  "runtime.heartbeat_timeout=3"]
        chief, worker = start(0, *common), start(1, *common)
        state = out / "backup" / "current" / "state.json"
        deadline = time.time() + 300
        while not state.exists() and chief.poll() is None and worker.poll() is None and time.time() < deadline:
            time.sleep(0.05)
        if state.exists():
            break
        for proc in (chief, worker):
            proc.kill()
        errors = [proc.communicate()[1] for proc in (chief, worker)]
        assert any(PORT_TAKEN in err for err in errors), errors[0][-3000:] + errors[1][-3000:]
    assert state.exists(), "the workers' ports were taken three times"
    worker.send_signal(signal.SIGKILL)
    killed = time.time()
    _, stderr = chief.communicate(timeout=120)
    waited = time.time() - killed
    worker.communicate()
    assert chief.returncode == 3 and "Traceback" not in stderr, stderr[-3000:]
    assert "error: another worker stopped responding, so this one stopped too" in stderr
    assert f"cnnzoo train --resume {out}" in stderr and waited < 30, waited
    assert json.loads((out / "run.json").read_text())["status"] == "failed"

    resumed = [start(i, "--resume", str(out)) for i in (1, 0)]
    outputs = [p.communicate(timeout=400) for p in resumed]
    for proc, (_, err) in zip(resumed, outputs):
        assert proc.returncode == 0, err[-3000:]
    (worker_out, _), (chief_out, _) = outputs
    assert "MultiWorkerMirroredStrategy: worker 0 of 2 (chosen by runtime.strategy: auto)" in chief_out.splitlines()[1]
    assert "cnnzoo: 2 replicas in all; global batch 128 = 64 per replica" in chief_out
    assert "worker 1: cnnzoo: resuming" in worker_out and "MultiWorkerMirroredStrategy: worker 1 of 2" in worker_out
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["epochs_completed"] == 10
    assert (out / "model.keras").is_file() and any((out / "logs" / "train").iterdir())
    # The worker trained the very same weights, and removed its temporary run directory: only the chief writes.
    assert f"weights sha256 {metrics['weights_sha256'][:16]}" in worker_out
    worker_dir = re.search(r"run directory: (\S+)", worker_out).group(1)
    assert worker_dir != str(out) and not Path(worker_dir).exists()


MIRRORED_SCRIPT = """
import json, sys
import tensorflow as tf
cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
from cnnzoo import load_config, train
losses = {}
for name, overrides in [("mirrored", ["runtime.strategy=mirrored", "runtime.devices=[/cpu:0, /cpu:1]"]),
                        ("one_device", ["runtime.strategy=one_device", "runtime.devices=[/cpu:0]"])]:
    config = load_config(sys.argv[1], ["train.epochs=1", "train.steps_per_epoch=12", "runtime.seed=5", *overrides])
    result = train(config, output_dir=sys.argv[2] + "/" + name, log=print)
    losses[name] = {"train_loss": result.metrics["history"]["loss"][0], "test": result.metrics["test"]}
print("LOSSES " + json.dumps(losses))
"""


@pytest.mark.slow
def test_mirrored_over_two_logical_cpus_matches_one_device(tmp_path):
    # LeNet-5 has no dropout, so both runs see the same data, weights and updates;
    # only the order of floating-point sums differs, which float32 keeps within 1e-4.
    config_path = tmp_path / "lenet_sample.yaml"
    config_path.write_text(f"extends: {CONFIGS / 'lenet5.yaml'}\ndata:\n  name: mnist_sample\n"
                           "runtime:\n  precision: float32\n")
    done = subprocess.run([sys.executable, "-c", MIRRORED_SCRIPT, str(config_path), str(tmp_path)],
                          cwd=REPO, capture_output=True, text=True, timeout=400,
                          env={**os.environ, "PYTHONPATH": str(REPO)})
    assert done.returncode == 0, done.stderr[-3000:]
    assert "MirroredStrategy over 2 devices" in done.stdout and "global batch 128 = 64 per replica" in done.stdout
    losses = json.loads(done.stdout.split("LOSSES ")[1])
    mirrored, single = losses["mirrored"], losses["one_device"]
    # The same 12 steps: gradients summed over two replicas of 64 equal one batch of 128.
    np.testing.assert_allclose(mirrored["train_loss"], single["train_loss"], rtol=1e-4)
    # The final test metrics come from weights that differ only by summation order, 12 steps into a
    # steep descent: measured gaps of up to 5.6 accuracy points (0.425 against 0.369) with training
    # losses equal to 1e-7. They must still be the same kind of model: both far above chance (0.1).
    assert abs(mirrored["test"]["accuracy"] - single["test"]["accuracy"]) <= 0.1, losses
    assert min(mirrored["test"]["accuracy"], single["test"]["accuracy"]) > 0.25, losses


def test_auto_picks_a_tpu_when_the_resolver_finds_one(monkeypatch):
    found = object()
    monkeypatch.setattr(tf.distribute.cluster_resolver, "TPUClusterResolver", lambda tpu=None: found)
    assert strategy_module._auto_kind(None) == "tpu"


def test_auto_without_tpu_cluster_or_gpus_is_the_default_strategy(monkeypatch):
    def no_tpu(tpu=None):
        raise ValueError("Please provide a TPU Name to connect to.")  # what TF raises on a CPU machine

    monkeypatch.setattr(tf.distribute.cluster_resolver, "TPUClusterResolver", no_tpu)
    monkeypatch.delenv("TF_CONFIG", raising=False)
    choice = strategy_module.choose_strategy(load_config(QUICK))
    assert choice.kind == "default" and choice.is_chief and choice.auto
    assert choice.summary() == "default strategy (one device, CPU:0) (chosen by runtime.strategy: auto)"
    monkeypatch.setenv("TF_CONFIG", local_tf_config(["a:1", "b:2"], 1))
    assert strategy_module._auto_kind(None) == "multi_worker"


def test_asking_for_a_tpu_without_one_is_a_clear_error(monkeypatch):
    def no_tpu(tpu=None):
        raise ValueError("Please provide a TPU Name to connect to.")

    monkeypatch.setattr(tf.distribute.cluster_resolver, "TPUClusterResolver", no_tpu)
    with pytest.raises(CnnzooError) as err:
        strategy_module.choose_strategy(load_config(QUICK, ["runtime.strategy=tpu"]))
    assert "no TPU was found" in str(err.value) and "runtime.tpu: local" in str(err.value)


def test_multi_worker_without_tf_config_says_how_to_set_it(monkeypatch):
    monkeypatch.delenv("TF_CONFIG", raising=False)
    with pytest.raises(CnnzooError) as err:
        strategy_module.choose_strategy(load_config(QUICK, ["runtime.strategy=multi_worker"]))
    assert "TF_CONFIG" in str(err.value) and "--workers" in str(err.value)


@pytest.mark.slow
def test_the_coordination_service_is_given_the_start_and_heartbeat_timeouts(monkeypatch):
    from tensorflow.python.eager import context

    from cnnzoo.runtime import cluster

    given = {}

    class Context:
        coordination_service = type("Config", (), {})()

        def configure_coordination_service(self, **kwargs):
            given.update(kwargs)

    monkeypatch.setattr(context, "context", Context)
    monkeypatch.setattr(tf.distribute, "MultiWorkerMirroredStrategy", lambda: "strategy")
    monkeypatch.setenv("TF_CONFIG", local_tf_config(["127.0.0.1:1", "127.0.0.1:2"], 0))
    config = load_config(TINY, ["runtime.worker_start_timeout=30", "runtime.heartbeat_timeout=2.5"])
    assert cluster.multi_worker_strategy(config) == "strategy"
    assert given["cluster_register_timeout_in_ms"] == 30_000 and given["heartbeat_timeout_in_ms"] == 2_500
    assert [(job.name, job.num_tasks) for job in given["coordinated_jobs"]] == [("worker", 2)]


def test_mixed_bfloat16_trains_without_nan_and_outputs_float32(tmp_path):
    config = load_config(CONFIGS / "quickstart.yaml", [  # the lecture's net: its softmax is a layer of its own
        "runtime.precision=mixed_bfloat16", "train.epochs=1", "train.steps_per_epoch=15", "runtime.seed=2",
        "train.pictures=false"])  # pictures: not the subject
    result = train(config, output_dir=str(tmp_path / "bf16"), log=lambda _: None)
    model = result.model
    assert model.get_layer("conv2d_1").compute_dtype == "bfloat16"
    assert model.get_layer("conv2d_1").kernel.dtype == "float32"  # weights stay float32
    assert model.get_layer("activation_12").compute_dtype == "float32"  # the softmax
    assert model.output.dtype == "float32"
    assert np.isfinite(result.metrics["history"]["loss"]).all() and np.isfinite(result.metrics["test"]["loss"])
    assert result.metrics["test"]["accuracy"] > 0.3  # learned something in 15 steps (chance: 0.1)
    assert keras.mixed_precision.global_policy().name == "float32"  # the process's policy was never touched


@pytest.mark.parametrize("kind, flags, expected", [
    ("cpu", {"avx2", "avx512f", "avx512_bf16"}, "mixed_bfloat16"),  # e.g. AMD Zen 4, Intel Cooper Lake
    ("cpu", {"avx2", "amx_bf16", "amx_tile"}, "mixed_bfloat16"),  # Intel Sapphire Rapids
    ("cpu", {"avx2", "avx512f"}, "float32"),  # bfloat16 would be emulated (not measured here)
    ("gpu", {"avx512_bf16"}, "float32"),  # not measured here: full precision
    ("tpu", {"avx512_bf16"}, "float32"),
])
def test_auto_precision_is_bfloat16_only_on_cpus_that_compute_it_natively(kind, flags, expected):
    assert auto_precision(kind, flags) == expected


def test_cpu_flags_are_read_from_cpuinfo(tmp_path):
    info = tmp_path / "cpuinfo"
    info.write_text("processor\t: 0\nvendor_id\t: AuthenticAMD\nflags\t\t: fpu avx2 avx512_bf16\n\nprocessor\t: 1\n")
    assert cpu_flags(info) == {"fpu", "avx2", "avx512_bf16"}
    assert cpu_flags(tmp_path / "missing") == set()


@pytest.mark.slow
def test_auto_precision_trains_in_the_chosen_policy_and_leaves_the_callers_policy_alone(tmp_path):
    config = load_config(QUICK, ["train.epochs=1", "train.steps_per_epoch=3", "runtime.seed=2", "runtime.precision=auto"])
    result = train(config, output_dir=str(tmp_path / "auto"), log=lambda _: None)
    chosen = auto_precision("cpu")
    assert load_config(result.run_dir.config).runtime.precision == chosen
    assert result.model.get_layer("conv2d_1").compute_dtype == ("bfloat16" if chosen == "mixed_bfloat16" else "float32")
    assert keras.mixed_precision.global_policy().name == "float32"
    assert build_model(config).get_layer("conv2d_1").compute_dtype == "float32"  # outside training: float32


def test_mixed_float16_scales_the_loss_and_a_final_block_output_is_cast():
    from cnnzoo.models.compile import compile_model

    config = load_config(CONFIGS / "resnet" / "resnet20.yaml", ["runtime.precision=mixed_float16"])
    model = build_model(config)
    compile_model(model, config)
    assert isinstance(model.optimizer, keras.optimizers.LossScaleOptimizer)
    assert model.get_layer("dense_8").compute_dtype == "float32" and model.output.dtype == "float32"
    assert model.get_layer("conv2d_1").compute_dtype == "float16"
    assert keras.mixed_precision.global_policy().name == "float32"  # set per layer, not process-wide


DETERMINISM_OVERRIDES = ["train.epochs=1", "train.steps_per_epoch=10", "runtime.seed=9", "runtime.deterministic=true"]


@pytest.mark.slow
def test_two_deterministic_runs_give_identical_weights(tmp_path):
    digests = []
    for name in ("a", "b"):
        done = subprocess.run(_cli("train", str(QUICK), "--output-dir", str(tmp_path / name), *DETERMINISM_OVERRIDES),
                              cwd=REPO, capture_output=True, text=True, timeout=300,
                              env={**os.environ, "PYTHONPATH": str(REPO)})
        assert done.returncode == 0, done.stderr[-2000:]
        digests.append(json.loads((tmp_path / name / "metrics.json").read_text())["weights_sha256"])
    assert digests[0] == digests[1]


@pytest.mark.slow
def test_run_json_and_config_record_the_runtime(tmp_path):
    config = load_config(QUICK, ["train.epochs=1", "train.steps_per_epoch=2", "runtime.strategy=default"])
    result = train(config, output_dir=str(tmp_path / "r"), log=lambda _: None)
    saved = load_config(result.run_dir.config)
    assert saved.runtime.strategy == "default" and saved.runtime.precision == "float32"  # the default everywhere
    assert len(result.metrics["weights_sha256"]) == 64
