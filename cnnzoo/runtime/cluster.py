"""Multi-worker training: TensorFlow's MultiWorkerMirroredStrategy, with bounded waits for lost peers.

TensorFlow's coordination service sends heartbeats between the workers: when one dies during
training, the others' next collective fails once `runtime.heartbeat_timeout` seconds pass without
its heartbeat (10 by default, TensorFlow's own) with a `tf.errors` exception, which
`lost_worker_error` turns into a clear message. What TensorFlow does not bound is the start: a
worker whose peers never come up waits forever. `runtime.worker_start_timeout` bounds that. Both
are set by configuring the coordination service before the strategy starts it (TensorFlow-internal
settings, applied only where they exist).
"""

from __future__ import annotations

import json
import os
import warnings

from cnnzoo.config.schema import Config
from cnnzoo.errors import CnnzooError, CnnzooWarning, TrainingError

# The lines of a collective's error that say what happened (the first line is often only
# "Graph execution error:").
_TELLING = ("aborted by", "unhealthy", "Deadline Exceeded", "Connection reset", "preempted", "timed out")


def multi_worker_strategy(config: Config):
    """MultiWorkerMirroredStrategy from TF_CONFIG, giving up after `runtime.worker_start_timeout`
    seconds if the other workers do not join."""
    import tensorflow as tf

    timeout = config.runtime.worker_start_timeout
    _bound_waits(tf_config().get("cluster", {}), timeout, config.runtime.heartbeat_timeout)
    try:
        return tf.distribute.MultiWorkerMirroredStrategy()
    except (tf.errors.DeadlineExceededError, tf.errors.UnavailableError) as exc:
        workers = ", ".join(tf_config().get("cluster", {}).get("worker", []))
        raise CnnzooError(
            f"the other workers did not join within {timeout} s ({workers}): {_telling_line(exc)}",
            location=config.where("runtime", "worker_start_timeout"),
            hint="Start the same command on every worker (each with its own index), check the addresses and that "
            "the ports are open between the machines, or raise runtime.worker_start_timeout.",
        ) from None


def _bound_waits(cluster: dict, timeout: int, heartbeat_timeout: float) -> None:
    try:
        from tensorflow.compiler.xla.tsl.protobuf import coordination_config_pb2
        from tensorflow.python.eager import context
    except ImportError:
        warnings.warn("this TensorFlow has no coordination-service settings where cnnzoo looks for them: workers "
                      "wait for each other without a time limit, and TensorFlow's own heartbeat timeout applies",
                      CnnzooWarning, stacklevel=3)
        return
    jobs = [job for job in ("chief", "worker") if cluster.get(job)]
    ctx = context.context()
    ctx.configure_coordination_service(
        service_type="standalone", service_leader=f"/job:{jobs[0]}/replica:0/task:0",
        cluster_register_timeout_in_ms=timeout * 1000, heartbeat_timeout_in_ms=round(heartbeat_timeout * 1000),
        coordinated_jobs=[coordination_config_pb2.CoordinatedJob(name=job, num_tasks=len(cluster[job]))
                          for job in jobs],
    )
    ctx.coordination_service.cluster_register_with_barrier = True  # so the chief gives up too, not only the others


def lost_worker_error(exc: BaseException, resume_command: str) -> TrainingError | None:
    """A TrainingError for a collective that failed because another worker is gone, else None."""
    import tensorflow as tf

    kinds = (tf.errors.UnavailableError, tf.errors.DeadlineExceededError, tf.errors.CancelledError,
             tf.errors.AbortedError)
    if not isinstance(exc, kinds):
        return None
    return TrainingError(
        f"another worker stopped responding, so this one stopped too ({type(exc).__name__}: {_telling_line(exc)})",
        hint=f"Restart every worker with `{resume_command}` (the same on each machine, with its own --worker-index); "
        "training goes on from the last saved state.",
    )


def _telling_line(exc: BaseException) -> str:
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    telling = next((line for line in lines if any(word in line for word in _TELLING)), lines[0] if lines else "")
    return telling[:240]


def tf_config() -> dict:
    """The TF_CONFIG environment variable, parsed (empty when unset)."""
    raw = os.environ.get("TF_CONFIG", "")
    if not raw:
        return {}
    try:
        spec = json.loads(raw)
    except ValueError:
        spec = None
    if not isinstance(spec, dict):
        raise CnnzooError(
            "TF_CONFIG is not a JSON object",
            hint='It looks like {"cluster": {"worker": ["host1:12345", "host2:12345"]}, '
            '"task": {"type": "worker", "index": 0}}.',
        )
    return spec


SLURM_PORT = "CNNZOO_SLURM_PORT"  # the first port of a node's tasks (default 8888, as TensorFlow's resolver)


def adopt_slurm() -> bool:
    """Under `srun` with several tasks and no TF_CONFIG: set TF_CONFIG for this task from TensorFlow's own
    SlurmClusterResolver (one task a node, or one a GPU), so `runtime.strategy: auto` forms the cluster.

    Returns whether it did. GPUs are counted from Slurm's and CUDA's variables (nothing probed), and
    each task is given its own through CUDA_VISIBLE_DEVICES, as the resolver does.
    """
    if os.environ.get("TF_CONFIG") or int(os.environ.get("SLURM_STEP_NUM_TASKS", "1") or 1) < 2:
        return False
    import tensorflow as tf

    gpus = _slurm_gpus()
    try:
        resolver = tf.distribute.cluster_resolver.SlurmClusterResolver(
            port_base=int(os.environ.get(SLURM_PORT, "8888")), auto_set_gpu=bool(gpus),
            # without GPUs the resolver still pairs each task with a GPU slot: give it one slot a task
            gpus_per_node=gpus or 1024, gpus_per_task=None if gpus else 1)
        cluster = resolver.cluster_spec().as_dict()
    except (RuntimeError, ValueError, KeyError) as exc:
        raise CnnzooError(f"cannot form the cluster from Slurm's variables: {exc}",
                          hint="Run one task per node (or per GPU) with `srun`, as docs/scaling.md shows.") from None
    task_type, task_id = resolver.get_task_info()
    os.environ["TF_CONFIG"] = json.dumps({"cluster": cluster, "task": {"type": task_type, "index": task_id}})
    return True


def _slurm_gpus() -> int:
    """GPUs on this node as Slurm or CUDA say (0 on a CPU node)."""
    if os.environ.get("SLURM_GPUS_ON_NODE", "").isdigit():
        return int(os.environ["SLURM_GPUS_ON_NODE"])
    visible = os.environ.get("CUDA_VISIBLE_DEVICES", "")
    return len([d for d in visible.split(",") if d.strip()]) if visible and visible != "-1" else 0


def local_tf_config(workers: list[str], index: int) -> str:
    """TF_CONFIG for worker `index` of a cluster given as host:port strings (worker 0 is the chief)."""
    return json.dumps({"cluster": {"worker": workers}, "task": {"type": "worker", "index": index}})
