"""TensorBoard's HParams tab for a sweep or a search: the experiment (keys, their domains, the metrics) in
the parent folder, one session per run in the run's logs/ (its metrics are read from logs/train and
logs/validation)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

METRICS = [("epoch_loss", "train"), ("epoch_accuracy", "train"), ("epoch_loss", "validation"),
           ("epoch_accuracy", "validation")]


def write_experiment(root: Path, domains: dict[str, Any]) -> None:
    """`domains`: key -> list of values (discrete), or `(low, high)` with floats (a real interval) or ints."""
    import tensorflow as tf
    from tensorboard.plugins.hparams import api as hp

    def domain(values):
        if isinstance(values, tuple):
            low, high = values
            if isinstance(low, int) and isinstance(high, int):
                return hp.IntInterval(low, high)
            return hp.RealInterval(float(low), float(high))
        return hp.Discrete(sorted({hp_value(v) for v in values}, key=str))

    hparams = [hp.HParam(key, domain(values)) for key, values in domains.items()]
    metrics = [hp.Metric(tag, group=group, display_name=f"{group} {tag.removeprefix('epoch_')}")
               for tag, group in METRICS]
    root.mkdir(parents=True, exist_ok=True)
    with tf.summary.create_file_writer(str(root)).as_default():
        hp.hparams_config(hparams=hparams, metrics=metrics)


def write_session(folder: Path, values: dict[str, Any], name: str, *, failed: bool) -> None:
    """The run's settings as an HParams session in its logs/, ended with TensorBoard's success or failure status."""
    import tensorflow as tf
    from tensorboard.plugins.hparams import api as hp
    from tensorboard.plugins.hparams import api_pb2, summary

    status = api_pb2.STATUS_FAILURE if failed else api_pb2.STATUS_SUCCESS
    with tf.summary.create_file_writer(str(folder / "logs")).as_default():
        hp.hparams({key: hp_value(v) for key, v in values.items()}, trial_id=name)
        tf.summary.experimental.write_raw_pb(summary.session_end_pb(status).SerializeToString(), step=0)


def hp_value(value: Any) -> Any:
    return value if isinstance(value, (bool, int, float, str)) else json.dumps(value)
