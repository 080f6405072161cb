"""Model + `train` config -> compiled model: optimizer, schedule (in steps), loss, metrics; and the config's callbacks."""

from __future__ import annotations

import math
import re
import warnings

from cnnzoo import registry
from cnnzoo.arguments import bind, construct
from cnnzoo.config.schema import Config
from cnnzoo.errors import BuildError, CnnzooWarning, did_you_mean
from cnnzoo.config.items import split_item
from cnnzoo.models import learning_rates

# Losses that compare against one-hot labels; the others take integer class ids.
def uses_one_hot_labels(loss: str) -> bool:
    """Whether a loss (by function or class name) wants one-hot labels rather than class ids: every
    `keras.losses` loss compares labels with the model's (batch, classes) output, but the sparse ones,
    which take the class ids (SparseCategoricalCrossentropy, sparse_categorical_crossentropy, ...)."""
    return "sparse" not in registry.snake_case(loss)


def outputs_logits(config: Config) -> bool:
    """Whether the model is trained on logits (`train.loss: {..., from_logits: true}`): predict, export and
    the pictures then apply the softmax themselves, once, outside the trained graph."""
    return bool(config.train.loss.kwargs.get("from_logits"))


def make_optimizer(config: Config, steps_per_epoch: int | None = None):
    """The optimizer named in `train.optimizer`, with `train.lr_schedule` if given.

    A schedule in epochs (`unit: epoch`) is converted with `steps_per_epoch`; without it
    (a dataset not prepared yet) one step per epoch stands in, to check the arguments.
    """
    cls, kwargs = _resolve(config, "optimizer", registry.optimizers())
    where = config.where("train", "optimizer")
    check_averaging(config, kwargs)
    if cls.__name__ == "Adadelta" and "learning_rate" not in kwargs and config.train.lr_schedule is None:
        warnings.warn(
            f"{where}: Adadelta without learning_rate uses Keras 3's default 0.001; the lecture's Keras 1 "
            "used 1.0 (its ~99.2% on MNIST needs it). Set `train.optimizer.learning_rate: 1.0` to match.",
            CnnzooWarning,
            stacklevel=2,
        )
    if config.train.lr_schedule is not None:
        cls_s, kwargs_s = _resolve(config, "lr_schedule", registry.schedules())
        if config.train.lr_schedule.unit == "epoch":
            kwargs_s = in_steps(kwargs_s, steps_per_epoch or 1)
        kwargs["learning_rate"] = construct(
            cls_s, kwargs_s, what=f"schedule {cls_s.__name__}", location=config.where("train", "lr_schedule"),
            path="train.lr_schedule",
        )
    optimizer = construct(cls, kwargs, what=f"optimizer {cls.__name__}", location=where, path="train.optimizer")
    excluded = excluded_from_weight_decay(config, kwargs)
    if excluded:
        optimizer.exclude_from_weight_decay(var_names=[re.escape(name) for name in excluded])
    factors = learning_rates.multipliers(config)
    if factors:
        learning_rates.apply_multipliers(optimizer, factors, config)
    return optimizer


# `train.optimizer` keys that are not constructor arguments but calls on the built optimizer.
OPTIMIZER_METHODS = ("exclude_from_weight_decay", learning_rates.KEY)


def excluded_from_weight_decay(config: Config, kwargs: dict) -> list[str]:
    """`train.optimizer.exclude_from_weight_decay`: names of weights (`bias`, `gamma`, `beta`, ...) that
    `weight_decay` leaves alone, checked."""
    names = config.train.optimizer.kwargs.get("exclude_from_weight_decay")
    if names is None:
        return []
    where = dict(location=config.where("train", "optimizer", "exclude_from_weight_decay"),
                 path="train.optimizer.exclude_from_weight_decay")
    if not (isinstance(names, list) and names and all(isinstance(n, str) and n for n in names)):
        raise BuildError(f"`exclude_from_weight_decay` must be a list of weight names, got {names!r}",
                         hint="E.g. `[bias, gamma, beta]`: biases and BatchNormalization's scales and offsets.", **where)
    if not kwargs.get("weight_decay"):
        raise BuildError("`exclude_from_weight_decay` without a `weight_decay` has nothing to exclude from",
                         hint="Set train.optimizer.weight_decay (e.g. 5.0e-4), or drop the exclusions.", **where)
    return names


def check_averaging(config: Config, kwargs: dict) -> None:
    """`use_ema` is a boolean, and the moving average's settings come with `use_ema: true` (Keras ignores them
    otherwise, so a run would silently train without the average its config asks for)."""
    use = kwargs.get("use_ema", False)
    if not isinstance(use, bool):
        raise BuildError(f"`use_ema` must be true or false, got {use!r}",
                         location=config.where("train", "optimizer", "use_ema"), path="train.optimizer.use_ema")
    lone = [key for key in ("ema_momentum", "ema_overwrite_frequency") if key in kwargs and not use]
    if lone:
        raise BuildError(f"`{lone[0]}` sets the optimizer's moving average of the weights, which is off",
                         location=config.where("train", "optimizer", lone[0]), path=f"train.optimizer.{lone[0]}",
                         hint="Add `use_ema: true` to train.optimizer: validation, checkpoints, the test and "
                         "model.keras then use the averaged weights.")


def in_steps(kwargs: dict, steps_per_epoch: int) -> dict:
    """Schedule arguments counted in epochs -> in optimizer steps: `boundaries` and every `*_steps`."""
    def steps(value):
        if isinstance(value, list):
            return [steps(v) for v in value]
        return max(1, round(value * steps_per_epoch)) if isinstance(value, (int, float)) else value

    return {k: steps(v) if k == "boundaries" or k.endswith("_steps") else v for k, v in kwargs.items()}


def steps_per_epoch(config: Config, train_examples: int | None, drop_remainder: bool = False) -> int | None:
    """Optimizer steps in one epoch: `train.steps_per_epoch`, else the training split's batches."""
    if config.train.steps_per_epoch is not None:
        return config.train.steps_per_epoch
    if not train_examples:
        return None
    batches = train_examples / config.data.batch_size
    return int(batches) if drop_remainder else math.ceil(batches)


def _resolve(config: Config, key: str, table: registry.Registry) -> tuple[type, dict]:
    """The class `train.<key>.name` names, and its other keys checked as its arguments."""
    spec = getattr(config.train, key)
    cls = table.get(spec.name, location=config.where("train", key, "name"), path=f"train.{key}.name")
    given = {k: v for k, v in spec.kwargs.items() if key != "optimizer" or k not in OPTIMIZER_METHODS}
    kwargs = bind(cls, [], given, what=f"{table.kind} {cls.__name__}", location=config.where("train", key),
                  path=f"train.{key}", locate=lambda name: config.where("train", key, name))
    return cls, kwargs


# Losses of keras.losses that do not compare a label with a (batch, classes) output: sequences (CTC),
# embeddings (Circle). `validate` refuses them, so that a config it accepts trains.
NOT_FOR_CLASSIFIERS = {"ctc": "sequence labelling", "circle": "metric learning on embeddings"}


def make_loss(config: Config):
    """`train.loss`: the name as Keras takes it, or its class built with the given arguments."""
    spec = config.train.loss
    kind = NOT_FOR_CLASSIFIERS.get(registry.snake_case(spec.name))
    if kind:
        raise BuildError(f"loss `{spec.name}` is for {kind}, not for an image classifier's class outputs",
                         location=config.where("train", "loss"), path="train.loss",
                         hint="Use categorical_crossentropy (or any loss comparing labels with class scores).")
    if spec.kwargs:
        cls, kwargs = _resolve(config, "loss", registry.losses())
        return construct(cls, kwargs, what=f"loss {cls.__name__}", location=config.where("train", "loss"),
                         path="train.loss")
    import keras

    try:
        keras.losses.get(spec.name)
    except ValueError:
        names = [n for n in dir(keras.losses) if n.islower() and not n.startswith("_")]
        raise BuildError(
            f"unknown loss `{spec.name}`.{did_you_mean(spec.name, names)}",
            location=config.where("train", "loss"),
            path="train.loss",
        ) from None
    return spec.name


def check_loss_and_metrics(config: Config):
    """Unknown loss or metric names (or loss arguments) fail here, before any data is loaded.
    Returns the loss for `compile`."""
    import keras

    loss = make_loss(config)
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
    return loss


def compile_model(model, config: Config, steps_per_epoch: int | None = None) -> None:
    """Compile `model` in place as `train` and `runtime` say.

    A model computing in float16 gets Keras' LossScaleOptimizer (small float16 gradients
    would underflow to 0). Keras adds it only when the global policy says float16; cnnzoo
    sets policies per layer, so it does so here.
    """
    import keras

    loss = check_loss_and_metrics(config)
    _warn_if_probabilities_mismatch(model, config)
    optimizer = make_optimizer(config, steps_per_epoch)
    if any(layer.dtype_policy.name == "mixed_float16" for layer in model.layers):
        optimizer = keras.optimizers.LossScaleOptimizer(optimizer)
    model.compile(
        optimizer=optimizer,
        loss=loss,
        # weighted: a padded last batch (static shapes, TPUs) carries weight 0 and must not count
        weighted_metrics=list(config.train.metrics),
        jit_compile=config.runtime.jit_compile,
        steps_per_execution=config.runtime.steps_per_execution,
    )


def _warn_if_probabilities_mismatch(model, config: Config) -> None:
    # A classic trap: crossentropy on raw scores (no softmax) trains badly without from_logits.
    last = model.layers[-1]
    name = "softmax" if type(last).__name__ == "Softmax" else getattr(getattr(last, "activation", None), "__name__", "")
    loss = registry.snake_case(config.train.loss.name)
    if "crossentropy" in loss and name not in ("softmax", "sigmoid") and not outputs_logits(config):
        warnings.warn(
            f"{config.where('model', 'layers')}: the last layer is not a softmax, but the loss "
            f"`{config.train.loss.name}` expects probabilities. Add `- Activation: softmax` at the end.",
            CnnzooWarning,
            stacklevel=2,
        )


CALLBACK_EXAMPLE = "`- EarlyStopping: {monitor: val_loss, patience: 3}`"


def config_callbacks(config: Config) -> list:
    """The callbacks listed under `train.callbacks`, e.g. `- EarlyStopping: {patience: 3}`."""
    result = []
    for i, item in enumerate(config.train.callbacks):
        where = config.where("train", "callbacks", i)
        path = f"train.callbacks.{i}"
        name, args, kwargs = split_item(item, what="a callback", location=where, path=path, example=CALLBACK_EXAMPLE)
        cls = registry.callbacks().get(name, location=where, path=path)
        bound = bind(cls, args, kwargs, what=f"callback {cls.__name__}", location=where, path=path,
                     locate=lambda key, i=i, name=name: config.where("train", "callbacks", i, name, key))
        result.append(construct(cls, bound, what=f"callback {cls.__name__}", location=where, path=path))
    return result


def build_metrics(model, spec) -> None:
    """Create the compiled metrics' variables eagerly, from one example shaped as `spec` (the data's
    element spec): left to Keras on one device, they are created inside the first traced train (or
    test) step, and tf.function then traces that step a second time (it created variables). Keras
    builds them itself under a distribution strategy. Nothing is measured: the update is recorded
    in a StatelessScope and dropped."""
    import keras
    import tensorflow as tf

    if all(getattr(metric, "built", True) for metric in model.metrics):
        return  # built by an earlier fit (a phase before, the part of an epoch a resume finished)
    if tf.distribute.has_strategy() or model.distribute_strategy is not tf.distribute.get_strategy():
        return
    x, y = (tf.nest.map_structure(lambda s: tf.zeros((1, *s.shape[1:]), s.dtype), part) for part in spec[:2])
    try:
        y_pred = model(x, training=False)
        with keras.StatelessScope():
            model.compute_metrics(x, y, y_pred, sample_weight=None)
    except Exception:  # a metric that refuses zeros: Keras builds it in the first step, as it would have
        return
