"""Model + `train`/`runtime` config -> compiled model (optimizer, schedule, loss, metrics)."""

from __future__ import annotations

import warnings

from cnnzoo import registry
from cnnzoo.arguments import bind, construct
from cnnzoo.config.schema import Config
from cnnzoo.errors import BuildError, CnnzooWarning, did_you_mean

# Losses that compare against one-hot labels; the others take integer class ids.
ONE_HOT_LOSSES = {"categorical_crossentropy", "categorical_focal_crossentropy", "categorical_hinge", "kl_divergence"}


def uses_one_hot_labels(loss: str) -> bool:
    """Whether a loss (by function or class name) wants one-hot labels rather than class ids."""
    return registry.snake_case(loss) in ONE_HOT_LOSSES


def make_optimizer(config: Config):
    """The optimizer named in `train.optimizer`, with `train.lr_schedule` if given."""
    cls, kwargs = _resolve(config, "optimizer", registry.optimizers())
    where = config.where("train", "optimizer")
    if cls.__name__ == "Adadelta" and "learning_rate" not in kwargs and config.train.lr_schedule is None:
        warnings.warn(
            f"{where}: Adadelta without learning_rate uses Keras 3's default 0.001; the lecture's Keras 1 "
            "used 1.0 (its ~99.2% on MNIST needs it). Set `train.optimizer.learning_rate: 1.0` to match.",
            CnnzooWarning,
            stacklevel=2,
        )
    if config.train.lr_schedule is not None:
        cls_s, kwargs_s = _resolve(config, "lr_schedule", registry.schedules())
        kwargs["learning_rate"] = construct(
            cls_s, kwargs_s, what=f"schedule {cls_s.__name__}", location=config.where("train", "lr_schedule"),
            path="train.lr_schedule",
        )
    return construct(cls, kwargs, what=f"optimizer {cls.__name__}", location=where, path="train.optimizer")


def _resolve(config: Config, key: str, table: registry.Registry) -> tuple[type, dict]:
    """The class `train.<key>.name` names, and its other keys checked as its arguments."""
    spec = getattr(config.train, key)
    cls = table.get(spec.name, location=config.where("train", key, "name"), path=f"train.{key}.name")
    kwargs = bind(cls, [], spec.kwargs, what=f"{table.kind} {cls.__name__}", location=config.where("train", key),
                  path=f"train.{key}", locate=lambda name: config.where("train", key, name))
    return cls, kwargs


def check_loss_and_metrics(config: Config) -> None:
    """Unknown loss or metric names fail here, before any data is loaded."""
    import keras

    try:
        keras.losses.get(config.train.loss)
    except ValueError:
        names = [n for n in dir(keras.losses) if n.islower() and not n.startswith("_")]
        raise BuildError(
            f"unknown loss `{config.train.loss}`.{did_you_mean(config.train.loss, names)}",
            location=config.where("train", "loss"),
            path="train.loss",
        ) from None
    for i, metric in enumerate(config.train.metrics):
        if metric in ("accuracy", "acc"):
            continue
        try:
            keras.metrics.get(metric)
        except ValueError:
            names = ["accuracy"] + [n for n in dir(keras.metrics) if n.islower() and not n.startswith("_")]
            raise BuildError(
                f"unknown metric `{metric}`.{did_you_mean(metric, names)}",
                location=config.where("train", "metrics", i),
                path=f"train.metrics.{i}",
            ) from None


def compile_model(model, config: Config) -> None:
    """Compile `model` in place as `train` and `runtime` say."""
    check_loss_and_metrics(config)
    _warn_if_probabilities_mismatch(model, config)
    model.compile(
        optimizer=make_optimizer(config),
        loss=config.train.loss,
        metrics=list(config.train.metrics),
        jit_compile=config.runtime.jit_compile,
        steps_per_execution=config.runtime.steps_per_execution,
    )


def _warn_if_probabilities_mismatch(model, config: Config) -> None:
    # A classic trap: crossentropy on raw scores (no softmax) trains badly without from_logits.
    last = model.layers[-1]
    name = "softmax" if type(last).__name__ == "Softmax" else getattr(getattr(last, "activation", None), "__name__", "")
    if "crossentropy" in config.train.loss and name not in ("softmax", "sigmoid"):
        warnings.warn(
            f"{config.where('model', 'layers')}: the last layer is not a softmax, but the loss "
            f"`{config.train.loss}` expects probabilities. Add `- Activation: softmax` at the end.",
            CnnzooWarning,
            stacklevel=2,
        )
