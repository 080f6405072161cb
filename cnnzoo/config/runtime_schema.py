"""The `runtime` section: where and how reproducibly a run computes (strategy, devices, precision, seed)."""

from __future__ import annotations

from typing import Literal, Optional

from pydantic import Field

from cnnzoo.config.sections import Section


class RuntimeConfig(Section):
    strategy: Literal["auto", "default", "mirrored", "multi_worker", "tpu", "one_device"] = Field(
        "auto",
        description="tf.distribute strategy. auto: TPU if one is found, else multi_worker if TF_CONFIG names "
        "several workers, else mirrored over all GPUs if more than one, else the default (one device).",
    )
    devices: Optional[list[str]] = Field(
        None, description="Devices for mirrored/one_device, e.g. [GPU:0, GPU:1] (default: all GPUs, or the CPU)."
    )
    tpu: Optional[str] = Field(
        None, description="TPU to connect to: `local` on a Cloud TPU VM, or a TPU name / grpc:// address."
    )
    precision: Literal["float32", "auto", "mixed_float16", "mixed_bfloat16"] = Field(
        "float32",
        description="Keras dtype policy. float32 (default) gives the same numbers on every machine. Mixed policies "
        "compute in 16 bits and keep weights, the final activation and the loss in float32; mixed_float16 (GPUs) "
        "also scales the loss. `auto`: mixed_bfloat16 when training on a CPU with native bfloat16 (AVX512_BF16 or "
        "AMX; 1.5x faster on the slide's net), float32 elsewhere; the run's config.yaml records the choice.",
    )
    seed: Optional[int] = Field(
        None, ge=0, lt=2**32, description="Seeds Python, NumPy, TF and Keras. Default: a random seed, written back to the run's config.yaml."
    )
    deterministic: bool = Field(
        False, description="TF op determinism: identical results for identical seeds, at some speed cost."
    )
    jit_compile: bool = Field(False, description="XLA-compile the train step (measured slower on small CPU models).")
    steps_per_execution: int = Field(1, gt=0, description="Batches run per call into the compiled train function.")
    worker_start_timeout: int = Field(
        300, gt=0, description="multi_worker: seconds a worker waits for the others to join before it stops with "
        "an error.",
    )
    heartbeat_timeout: float = Field(  # at least 1: TensorFlow takes milliseconds, and 0 would mean its default
        10, ge=1, description="multi_worker: seconds without a heartbeat from a worker (TensorFlow's coordination "
        "service; its default 10) before the others stop with an error saying a worker was lost. Lower: a lost "
        "machine is noticed sooner; higher: a worker paused longer (a busy host, a slow network) is waited for.",
    )
    backup_every_steps: Optional[int] = Field(
        None, gt=0,
        description="Also save the resume state every N training steps, not only at each epoch's end "
        "(a killed run then loses at most N steps of work).",
    )
