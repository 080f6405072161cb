"""`runtime.precision`: the Keras dtype policy a run computes in, checked against the hardware.

float32 is the default, as in Keras, Lightning and timm, so one config gives the same numbers on
every machine. `auto` is one setting away: mixed_bfloat16 when training on a CPU that computes
bfloat16 natively (AVX512_BF16 or AMX), where the slide's net trained 1.5x faster than in float32
(docs/benchmarks.md), and float32 elsewhere (GPUs and TPUs were not measured here). A policy that
the hardware cannot run well is refused or flagged, never silently swapped.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from cnnzoo.config.schema import Config
from cnnzoo.errors import CnnzooError

NATIVE_BF16_FLAGS = {"avx512_bf16", "amx_bf16"}
# Measured with benchmarks/runtime_options.py on a 2-core AMD EPYC (Zen 4): the slide's net.
BF16_SPEEDUP = "1.5x"
FP16_ON_CPU_SLOWDOWN = "4x"
# Measured with benchmarks/epoch_profile.py on a 2-core AMD EPYC without AVX-512: airbench94's net
# (configs/experiments/cifar10_94.yaml) took 96.5 s a step in emulated bfloat16, 10.2 s in float32.
BF16_EMULATED_SLOWDOWN = "9.5x"


@dataclass(frozen=True)
class PrecisionChoice:
    policy: str  # a Keras dtype policy name
    note: str | None = None  # said once at start
    warning: str | None = None


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
    return "mixed_bfloat16" if native_bfloat16(flags) else "float32"


def native_bfloat16(flags: set[str] | None = None) -> bool:
    return bool(NATIVE_BF16_FLAGS & (cpu_flags() if flags is None else flags))


def choose_precision(config: Config, device_kind: str, flags: set[str] | None = None) -> PrecisionChoice:
    """The policy for `runtime.precision` on replicas of `device_kind` (cpu, gpu, tpu).

    Raises:
        CnnzooError: mixed_float16 without a GPU (CPUs emulate float16, TPUs compute bfloat16).
    """
    asked = config.runtime.precision
    where = config.where("runtime", "precision")
    native = device_kind == "cpu" and native_bfloat16(flags)
    if asked == "auto":
        policy = auto_precision(device_kind, flags)
        reason = "this CPU computes bfloat16 natively" if native else f"replicas on {device_kind.upper()}"
        return PrecisionChoice(policy, note=f"runtime.precision auto chose {policy} ({reason})")
    if asked == "mixed_float16" and device_kind != "gpu":
        raise CnnzooError(
            f"runtime.precision is mixed_float16, which needs a GPU; this run's replicas are on {device_kind.upper()} "
            f"(a CPU emulates float16: the slide's net trained {FP16_ON_CPU_SLOWDOWN} slower than in float32 here)",
            location=where, path="runtime.precision",
            hint="Use float32, or mixed_bfloat16 on TPUs and on CPUs with AVX512_BF16/AMX.",
        )
    if asked == "mixed_bfloat16" and device_kind == "cpu" and not native:
        return PrecisionChoice(asked, warning=(
            f"{where}: runtime.precision is mixed_bfloat16, but this CPU has no native bfloat16 (AVX512_BF16/AMX): "
            f"it is emulated, and airbench94's net trained {BF16_EMULATED_SLOWDOWN} slower a step than in float32 on "
            "such a CPU (docs/benchmarks.md). Add `runtime.precision=float32` (other rounding, so other numbers) or "
            "`runtime.precision=auto`, which picks float32 here."))
    if asked == "float32" and native and not config.is_written("runtime", "precision"):
        return PrecisionChoice(asked, note=f"this CPU computes bfloat16 natively: `runtime.precision=auto` trained "
                               f"the slide's net {BF16_SPEEDUP} faster here, with other rounding (docs/benchmarks.md)")
    return PrecisionChoice(asked)
