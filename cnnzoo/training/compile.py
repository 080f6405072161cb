"""Model + `train`/`runtime` config -> compiled model (optimizer, schedule, loss, metrics)."""

from __future__ import annotations

import warnings

from cnnzoo import registry
from cnnzoo.arguments import bind
from cnnzoo.config.schema import Config
from cnnzoo.errors import BuildError, CnnzooWarning, did_you_mean, keras_message

# Losses that compare against one-hot labels; the others take integer class ids.
ONE_HOT_LOSSES = {"categorical_crossentropy", "categorical_focal_crossentropy", "categorical_hinge", "kl_divergence"}


def uses_one_hot_labels(loss: str) -> bool:
    """Whether a loss (by function or class name) wants one-hot labels rather than class ids."""
    return registry.snake_case(loss) in ONE_HOT_LOSSES


def make_optimizer(config: Config):
    """The optimizer named in `train.optimizer`, with `train.lr_schedule` if given."""
    opt = config.train.optimizer
    where = config.where("train", "optimizer")
    cls = registry.optimizers().get(opt.name, location=config.where("train", "optimizer", "name"), path="train.optimizer.name")
    kwargs = bind(cls, [], opt.kwargs, what=f"optimizer {cls.__name__}", location=where, path="train.optimizer",
                  locate=lambda key: config.where("train", "optimizer", key))
    if cls.__name__ == "Adadelta" and "learning_rate" not in kwargs and config.train.lr_schedule is None:
        warnings.warn(
            f"{where}: Adadelta without learning_rate uses Keras 3's default 0.001; the lecture's Keras 1 "
            "used 1.0 (its ~99.2% on MNIST needs it). Set `train.optimizer.learning_rate: 1.0` to match.",
            CnnzooWarning,
            stacklevel=2,
        )
    if config.train.lr_schedule is not None:
        kwargs["learning_rate"] = make_schedule(config)
    try:
        return cls(**kwargs)
    except Exception as exc:  # Keras validates arguments with ValueError, TypeError, ...
        raise BuildError(
            f"optimizer {cls.__name__}: {keras_message(exc)}", location=where, path="train.optimizer"
        ) from None


def make_schedule(config: Config):
    spec = config.train.lr_schedule
    where = config.where("train", "lr_schedule")
    cls = registry.schedules().get(spec.name, location=config.where("train", "lr_schedule", "name"), path="train.lr_schedule.name")
    kwargs = bind(cls, [], spec.kwargs, what=f"schedule {cls.__name__}", location=where, path="train.lr_schedule",
                  locate=lambda key: config.where("train", "lr_schedule", key))
    try:
        return cls(**kwargs)
    except Exception as exc:
        raise BuildError(f"schedule {cls.__name__}: {keras_message(exc)}", location=where, path="train.lr_schedule") from None


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
