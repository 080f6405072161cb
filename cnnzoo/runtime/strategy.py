"""`runtime.strategy` -> a `tf.distribute.Strategy`, TensorFlow's own: no scheduling of our own.

Two steps, so that a config can be checked without starting anything: `choose_strategy`
decides and checks (the devices named exist, a TPU or cluster is there), `start_strategy`
creates TensorFlow's strategy object. auto picks, in order: one_device or mirrored when
`runtime.devices` names devices; a TPU if `TPUClusterResolver` finds one;
MultiWorkerMirroredStrategy if TF_CONFIG describes more than one worker; MirroredStrategy
if there is more than one GPU; otherwise TensorFlow's default strategy (one device).
What the user named and cannot be had is an error, never a silent fall-back.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from cnnzoo.config.schema import Config
from cnnzoo.errors import CnnzooError
from cnnzoo.runtime.cluster import adopt_slurm, tf_config

DEVICE_HINT = ("See this machine's devices with `python -c \"import tensorflow as tf; "
               "print(tf.config.list_logical_devices())\"`, or use `runtime.strategy=auto` without runtime.devices.")


@dataclass(frozen=True)
class StrategyChoice:
    """Which strategy a run uses, on which devices, and this process's role: decided, not started."""

    kind: str  # default | one_device | mirrored | multi_worker | tpu
    description: str
    auto: bool  # chosen by `runtime.strategy: auto`
    devices: tuple[str, ...] = ()
    worker_index: int = 0
    num_workers: int = 1

    @property
    def is_chief(self) -> bool:
        """Worker 0 writes the run directory; the others write to temporary folders."""
        return self.worker_index == 0

    @property
    def device_kind(self) -> str:
        """tpu, gpu or cpu: what the replicas compute on."""
        if self.kind == "tpu":
            return "tpu"
        if self.devices:
            return "gpu" if any(d.startswith("GPU") for d in self.devices) else "cpu"
        return "gpu" if _gpus() else "cpu"

    def summary(self) -> str:
        """For the first log line: `default strategy (auto: one device, CPU:0)`."""
        return f"{self.description}{' (chosen by runtime.strategy: auto)' if self.auto else ''}"


@dataclass(frozen=True)
class Placement:
    """A started strategy and the choice it came from."""

    strategy: Any
    choice: StrategyChoice

    kind = property(lambda self: self.choice.kind)
    description = property(lambda self: self.choice.description)
    worker_index = property(lambda self: self.choice.worker_index)
    is_chief = property(lambda self: self.choice.is_chief)

    @property
    def replicas(self) -> int:
        return self.strategy.num_replicas_in_sync


def choose_strategy(config: Config) -> StrategyChoice:
    """The strategy `runtime.strategy` asks for, checked against this machine; auto chooses from it.

    Only physical devices are probed (and logical ones for one_device/mirrored), so a later
    MultiWorkerMirroredStrategy can still configure the runtime.
    """
    runtime = config.runtime
    if runtime.strategy in ("auto", "multi_worker"):
        adopt_slurm()  # under srun: TF_CONFIG from Slurm's variables, when not set already
    devices = tuple(_device_name(d) for d in runtime.devices or ())
    kind, auto = runtime.strategy, runtime.strategy == "auto"
    if auto:
        kind = ("one_device" if len(devices) == 1 else "mirrored") if devices else _auto_kind(runtime.tpu)
    elif devices and kind not in ("one_device", "mirrored"):
        raise CnnzooError(f"runtime.devices applies to the one_device and mirrored strategies, not `{kind}`",
                          location=config.where("runtime", "devices"), path="runtime.devices",
                          hint="Remove runtime.devices, or choose runtime.strategy=mirrored.")
    return _CHOOSERS[kind](config, devices, auto)


def start_strategy(choice: StrategyChoice, config: Config) -> Placement:
    """Create TensorFlow's strategy object for a choice (for multi_worker: joins the cluster)."""
    import tensorflow as tf

    where = None if choice.auto else config.where("runtime", "strategy")
    try:
        if choice.kind == "default":
            strategy = tf.distribute.get_strategy()
        elif choice.kind == "one_device":
            strategy = tf.distribute.OneDeviceStrategy(_tf_name(choice.devices[0]))
        elif choice.kind == "mirrored":
            strategy = tf.distribute.MirroredStrategy(devices=[_tf_name(d) for d in choice.devices] or None)
        elif choice.kind == "multi_worker":
            from cnnzoo.runtime.cluster import multi_worker_strategy

            strategy = multi_worker_strategy(config)
        else:
            resolver = tpu_resolver(config.runtime.tpu)
            tf.config.experimental_connect_to_cluster(resolver)
            tf.tpu.experimental.initialize_tpu_system(resolver)
            strategy = tf.distribute.TPUStrategy(resolver)
    except (ValueError, RuntimeError) as exc:  # TF's way of saying a device or cluster is not there
        raise CnnzooError(f"cannot start the `{choice.kind}` distribution strategy: {str(exc).strip().splitlines()[0]}",
                          location=where, path="runtime.strategy", hint=DEVICE_HINT) from None
    return Placement(strategy, choice)


def _auto_kind(tpu: str | None) -> str:
    if tpu_resolver(tpu) is not None:
        return "tpu"
    cluster = tf_config().get("cluster", {})
    if len(cluster.get("worker", [])) + len(cluster.get("chief", [])) > 1:
        return "multi_worker"
    return "mirrored" if len(_gpus()) > 1 else "default"


def _default(config: Config, devices: tuple[str, ...], auto: bool) -> StrategyChoice:
    gpus = _gpus()
    where = "GPU:0" if gpus else "CPU:0"
    return StrategyChoice("default", f"default strategy (one device, {where})", auto)


def _one_device(config: Config, devices: tuple[str, ...], auto: bool) -> StrategyChoice:
    devices = devices or (("GPU:0",) if _gpus() else ("CPU:0",))
    _check_devices(config, devices[:1])
    return StrategyChoice("one_device", f"one device: {devices[0]}", auto, devices[:1])


def _mirrored(config: Config, devices: tuple[str, ...], auto: bool) -> StrategyChoice:
    if not devices:
        devices = tuple(f"GPU:{i}" for i in range(len(_gpus())))
        if not devices:
            raise CnnzooError(
                "runtime.strategy is mirrored, but this machine has no GPU to mirror over (TensorFlow would "
                "quietly train on one CPU)", location=config.where("runtime", "strategy"), path="runtime.strategy",
                hint="Use runtime.strategy=auto, or name the devices, e.g. runtime.devices=[CPU:0, CPU:1] "
                "after configuring logical CPU devices.")
    _check_devices(config, devices)
    return StrategyChoice("mirrored", f"MirroredStrategy over {len(devices)} devices: {', '.join(devices)}",
                          auto, devices)


def _multi_worker(config: Config, devices: tuple[str, ...], auto: bool) -> StrategyChoice:
    spec = tf_config()
    cluster, task = spec.get("cluster", {}), spec.get("task")
    workers = cluster.get("worker", [])
    if not workers or not isinstance(task, dict):
        raise CnnzooError(
            "runtime.strategy is multi_worker but TF_CONFIG does not describe a cluster and this task",
            location=config.where("runtime", "strategy"), path="runtime.strategy",
            hint="Set TF_CONFIG on every machine (see docs/scaling.md), or for a local test pass "
            "--workers HOST:PORT,HOST:PORT --worker-index I.",
        )
    # TF's convention: the `chief` task if there is one, else worker 0, does the writing.
    index = 0 if task.get("type") == "chief" else int(task.get("index", 0)) + int("chief" in cluster)
    count = len(workers) + len(cluster.get("chief", []))
    return StrategyChoice("multi_worker", f"MultiWorkerMirroredStrategy: worker {index} of {count}", auto,
                          worker_index=index, num_workers=count)


def _tpu(config: Config, devices: tuple[str, ...], auto: bool) -> StrategyChoice:
    if tpu_resolver(config.runtime.tpu) is None:
        raise CnnzooError(
            "runtime.strategy is tpu but no TPU was found",
            location=config.where("runtime", "strategy"), path="runtime.strategy",
            hint="On a Cloud TPU VM set `runtime.tpu: local`; for a TPU node give its name or grpc:// address.",
        )
    return StrategyChoice("tpu", "TPUStrategy", auto)


_CHOOSERS = {"default": _default, "one_device": _one_device, "mirrored": _mirrored,
             "multi_worker": _multi_worker, "tpu": _tpu}


def _check_devices(config: Config, devices: tuple[str, ...]) -> None:
    import tensorflow as tf

    have = [_device_name(d.name) for d in tf.config.list_logical_devices() if d.device_type in ("CPU", "GPU")]
    missing = [d for d in devices if d not in have]
    if missing:
        raise CnnzooError(
            f"runtime.devices names {', '.join(missing)}, which this machine does not have (it has {', '.join(have)})",
            location=config.where("runtime", "devices"), path="runtime.devices", hint=DEVICE_HINT,
        )


def _device_name(text: str) -> str:
    """`/gpu:0`, `GPU:0`, `/job:localhost/replica:0/task:0/device:GPU:0`, `gpu` -> `GPU:0`."""
    last = text.strip().rsplit("device:", 1)[-1].strip("/")
    kind, _, index = last.partition(":")
    return f"{kind.upper()}:{index or 0}"


def _tf_name(device: str) -> str:
    return f"/{device.lower()}"


def _gpus() -> list:
    import tensorflow as tf

    return tf.config.list_physical_devices("GPU")


def tpu_resolver(tpu: str | None):
    """TensorFlow's TPUClusterResolver, or None when no TPU is found (it raises ValueError then)."""
    import tensorflow as tf

    try:
        return tf.distribute.cluster_resolver.TPUClusterResolver(tpu=tpu)
    except (ValueError, tf.errors.NotFoundError):
        return None
