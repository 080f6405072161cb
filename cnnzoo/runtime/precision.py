"""`runtime.precision: auto`: which Keras dtype policy wins on the hardware a run uses.

Measured on an AMD EPYC (Zen 4) with AVX512_BF16, the slide's net trains 1.5x faster under
mixed_bfloat16 than in float32, its recipe to the same accuracy (README, "Speed"). CPUs without
native bfloat16 would emulate it (not measured here), and GPUs and TPUs were not measured either:
those keep float32 until someone measures them.
"""

from __future__ import annotations

import contextlib
from pathlib import Path

from cnnzoo.config.schema import Config

NATIVE_BF16_FLAGS = {"avx512_bf16", "amx_bf16"}


def cpu_flags(cpuinfo: Path = Path("/proc/cpuinfo")) -> set[str]:
    """The CPU's feature flags (Linux); empty where /proc/cpuinfo does not exist."""
    try:
        text = cpuinfo.read_text()
    except OSError:
        return set()
    for line in text.splitlines():
        if line.startswith("flags"):
            return set(line.partition(":")[2].split())
    return set()


def auto_precision(device_kind: str, flags: set[str] | None = None) -> str:
    """mixed_bfloat16 when training on a CPU that computes bfloat16 natively, else float32."""
    if device_kind != "cpu":
        return "float32"
    return "mixed_bfloat16" if NATIVE_BF16_FLAGS & (cpu_flags() if flags is None else flags) else "float32"


def device_kind(strategy_kind: str, devices: list[str] | None) -> str:
    """tpu, gpu or cpu: what a run's replicas compute on (physical devices only: see cli)."""
    import tensorflow as tf

    if strategy_kind == "tpu":
        return "tpu"
    if devices:
        return "gpu" if any("gpu" in d.lower() for d in devices) else "cpu"
    return "gpu" if tf.config.list_physical_devices("GPU") else "cpu"


def with_precision(config: Config, strategy_kind: str) -> Config:
    """The config with `runtime.precision: auto` replaced by the policy chosen for this hardware."""
    if config.runtime.precision != "auto":
        return config
    chosen = auto_precision(device_kind(strategy_kind, config.runtime.devices))
    runtime = config.runtime.model_copy(update={"precision": chosen})
    return config.model_copy(update={"runtime": runtime})  # keeps the source positions


@contextlib.contextmanager
def global_policy_restored():
    """Keras' dtype policy is process-wide and the builder sets it: give the caller theirs back."""
    import keras

    before = keras.mixed_precision.global_policy()
    try:
        yield
    finally:
        keras.mixed_precision.set_global_policy(before)
