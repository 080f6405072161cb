"""`train.optimizer.learning_rate_multipliers`: a weight steps at a multiple of the learning rate.

`learning_rate_multipliers: {beta: 64}` makes every weight whose name contains `beta` (BatchNormalization's
offsets) take steps 64 times the schedule's learning rate, as airbench trains its BatchNorm biases; the
other weights keep the schedule's rate. Names match as `exclude_from_weight_decay`'s do: a weight's path
(`conv_group/batch_normalization/beta`) containing the name; the first name that matches decides. Keras 3
optimizers take one learning rate for all their weights, so the optimizer's per-weight step is given the
multiplied rate: for every optimizer (SGD, Adam, ...) that is exactly a larger learning rate for those weights.
Decoupled `weight_decay` is not multiplied (Keras applies it apart from the step).
"""

from __future__ import annotations

from cnnzoo.config.schema import Config
from cnnzoo.errors import BuildError

KEY = "learning_rate_multipliers"
EXAMPLE = "`learning_rate_multipliers: {beta: 64}`"


def multipliers(config: Config) -> dict[str, float]:
    """The config's {weight name: factor}, checked ({} when not set)."""
    value = config.train.optimizer.kwargs.get(KEY)
    if value is None:
        return {}
    where = dict(location=config.where("train", "optimizer", KEY), path=f"train.optimizer.{KEY}",
                 hint=f"Write a mapping of weight names to factors, e.g. {EXAMPLE} (BatchNormalization's offsets).")
    if not isinstance(value, dict) or not value:
        raise BuildError(f"`{KEY}` must map weight names to factors, got {value!r}", **where)
    for name, factor in value.items():
        if not isinstance(name, str) or not name:
            raise BuildError(f"`{KEY}`: {name!r} is not a weight name", **where)
        if isinstance(factor, bool) or not isinstance(factor, (int, float)) or not factor > 0:
            raise BuildError(f"`{KEY}.{name}` must be a number > 0, got {factor!r}", **where)
    return {name: float(factor) for name, factor in value.items()}


def factor_for(path: str, factors: dict[str, float]) -> float:
    """The factor of the weight at `path`: the first name it contains, else 1."""
    return next((f for name, f in factors.items() if name in path), 1.0)


def apply_multipliers(optimizer, factors: dict[str, float], config: Config) -> None:
    """Make `optimizer` step each weight with its factor times the learning rate. The factors are found
    once, when the first step is traced, from the weights the optimizer was built with; a name that matches
    none of them is refused (a typo would otherwise train at the plain rate, silently)."""
    from cnnzoo.keras_internals import optimizer_weights

    plain, by_key = optimizer.update_step, {}

    def update_step(gradient, variable, learning_rate):
        weights, key = optimizer_weights(optimizer)
        if not by_key:
            by_key.update(_factors_by_key(weights, key, factors, config))
        factor = by_key.get(key(variable), 1.0)
        return plain(gradient, variable, learning_rate if factor == 1.0 else learning_rate * factor)

    optimizer.update_step = update_step  # on this optimizer only; its saved config stays Keras' own


def _factors_by_key(weights: list, key, factors: dict[str, float], config: Config) -> dict:
    paths = [w.path for w in weights]
    unmatched = [name for name in factors if not any(name in p for p in paths)]
    if unmatched:
        raise BuildError(f"`{KEY}.{unmatched[0]}` names no trainable weight of this model",
                         location=config.where("train", "optimizer", KEY), path=f"train.optimizer.{KEY}",
                         hint=f"Weight names look like {', '.join(sorted({p.rsplit('/', 1)[-1] for p in paths}))}.")
    return {key(w): factor_for(w.path, factors) for w in weights}
