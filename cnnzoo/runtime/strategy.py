"""`runtime.strategy` -> a `tf.distribute.Strategy`, TensorFlow's own: no scheduling of our own.

auto picks, in order: a TPU if `TPUClusterResolver` finds one; MultiWorkerMirroredStrategy if
TF_CONFIG describes more than one worker; MirroredStrategy if there is more than one GPU;
otherwise TensorFlow's default strategy (one device). The model, its optimizer and `compile`
are created inside the chosen strategy's scope (`cnnzoo.training.trainer`).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from typing import Any

from cnnzoo.config.schema import Config
from cnnzoo.errors import CnnzooError


@dataclass(frozen=True)
class Placement:
    """The strategy chosen, in words, and this process's role in it."""

    strategy: Any
    kind: str  # default | one_device | mirrored | multi_worker | tpu
    description: str
    worker_index: int = 0
    num_workers: int = 1

    @property
    def is_chief(self) -> bool:
        """Worker 0 writes the run directory; the others write to temporary folders."""
        return self.worker_index == 0

    @property
    def replicas(self) -> int:
        return self.strategy.num_replicas_in_sync


def choose_strategy(config: Config) -> Placement:
    """The strategy `runtime.strategy` asks for; auto chooses from the hardware present."""
    runtime = config.runtime
    kind = runtime.strategy
    where = config.where("runtime", "strategy") if kind != "auto" else None
    if kind == "auto":
        kind = _auto_kind(runtime.tpu)
    try:
        return _MAKERS[kind](config)
    except CnnzooError:
        raise
    except (ValueError, RuntimeError) as exc:  # TF's way of saying a device or cluster is not there
        raise CnnzooError(
            f"cannot start the `{kind}` distribution strategy: {str(exc).strip().splitlines()[0]}",
            location=where, path="runtime.strategy",
            hint="Check runtime.devices against `python -c \"import tensorflow as tf; "
            "print(tf.config.list_logical_devices())\"`, or use `runtime.strategy=auto`.",
        ) from None


def _auto_kind(tpu: str | None) -> str:
    import tensorflow as tf

    if tpu_resolver(tpu) is not None:
        return "tpu"
    cluster = tf_config().get("cluster", {})
    if len(cluster.get("worker", [])) + len(cluster.get("chief", [])) > 1:
        return "multi_worker"
    if len(tf.config.list_physical_devices("GPU")) > 1:
        return "mirrored"
    return "default"


def tpu_resolver(tpu: str | None):
    """TensorFlow's TPUClusterResolver, or None when no TPU is found (it raises ValueError then)."""
    import tensorflow as tf

    try:
        return tf.distribute.cluster_resolver.TPUClusterResolver(tpu=tpu)
    except (ValueError, tf.errors.NotFoundError):
        return None


def tf_config() -> dict:
    """The TF_CONFIG environment variable, parsed (empty when unset)."""
    raw = os.environ.get("TF_CONFIG", "")
    if not raw:
        return {}
    try:
        return json.loads(raw)
    except ValueError:
        raise CnnzooError(
            "TF_CONFIG is not valid JSON",
            hint='It looks like {"cluster": {"worker": ["host1:12345", "host2:12345"]}, '
            '"task": {"type": "worker", "index": 0}}.',
        ) from None


def _default(config: Config) -> Placement:
    import tensorflow as tf

    devices = ", ".join(d.name for d in tf.config.list_logical_devices() if d.device_type in ("CPU", "GPU"))
    return Placement(tf.distribute.get_strategy(), "default", f"default strategy (one device; have {devices})")


def _one_device(config: Config) -> Placement:
    import tensorflow as tf

    devices = config.runtime.devices or (["/gpu:0"] if tf.config.list_physical_devices("GPU") else ["/cpu:0"])
    return Placement(tf.distribute.OneDeviceStrategy(devices[0]), "one_device", f"one device: {devices[0]}")


def _mirrored(config: Config) -> Placement:
    import tensorflow as tf

    strategy = tf.distribute.MirroredStrategy(devices=config.runtime.devices)
    names = ", ".join(strategy.extended.worker_devices)
    return Placement(strategy, "mirrored", f"MirroredStrategy over {strategy.num_replicas_in_sync} devices: {names}")


def _multi_worker(config: Config) -> Placement:
    import tensorflow as tf

    spec = tf_config()
    workers = spec.get("cluster", {}).get("worker", [])
    if not workers or "task" not in spec:
        raise CnnzooError(
            "runtime.strategy is multi_worker but TF_CONFIG does not describe a cluster and this task",
            location=config.where("runtime", "strategy"), path="runtime.strategy",
            hint="Set TF_CONFIG on every machine (see README, 'Scaling up'), or for a local test pass "
            "--workers HOST:PORT,HOST:PORT --worker-index I.",
        )
    strategy = tf.distribute.MultiWorkerMirroredStrategy()  # reads TF_CONFIG itself
    task, cluster = spec["task"], spec["cluster"]
    # TF's convention: the `chief` task if there is one, else worker 0, does the writing.
    index = 0 if task.get("type") == "chief" else int(task.get("index", 0)) + int("chief" in cluster)
    count = len(workers) + len(cluster.get("chief", []))
    return Placement(strategy, "multi_worker", f"MultiWorkerMirroredStrategy: worker {index} of {count}, "
                     f"{strategy.num_replicas_in_sync} replicas in all", index, count)


def _tpu(config: Config) -> Placement:
    import tensorflow as tf

    resolver = tpu_resolver(config.runtime.tpu)
    if resolver is None:
        raise CnnzooError(
            "runtime.strategy is tpu but no TPU was found",
            location=config.where("runtime", "strategy"), path="runtime.strategy",
            hint="On a Cloud TPU VM set `runtime.tpu: local`; for a TPU node give its name or grpc:// address.",
        )
    tf.config.experimental_connect_to_cluster(resolver)
    tf.tpu.experimental.initialize_tpu_system(resolver)
    strategy = tf.distribute.TPUStrategy(resolver)
    return Placement(strategy, "tpu", f"TPUStrategy with {strategy.num_replicas_in_sync} cores")


_MAKERS = {
    "default": _default, "one_device": _one_device, "mirrored": _mirrored,
    "multi_worker": _multi_worker, "tpu": _tpu,
}


def local_tf_config(workers: list[str], index: int) -> str:
    """TF_CONFIG for worker `index` of a cluster given as host:port strings (worker 0 is the chief)."""
    return json.dumps({"cluster": {"worker": workers}, "task": {"type": "worker", "index": index}})
