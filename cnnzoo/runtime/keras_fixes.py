"""Work-arounds for Keras 3's `fit` under MultiWorkerMirroredStrategy (keras-team/keras#20585, open).

Keras 3.x (measured with 3.15.1 and TF 2.21) fails in two places when a model trains under
`tf.distribute.MultiWorkerMirroredStrategy`:
1. `fit` first "symbolically builds" the model by averaging a distributed batch with
   `strategy.reduce("MEAN", (x, y))`, which the collective strategy cannot do for a tuple;
2. it averages each step's scalar logs with `strategy.reduce("MEAN", v, axis=0)`: a scalar has no axis 0.
Both are Keras-side bugs: TensorFlow's strategy works (the same ops with `axis=None` all-reduce
fine). `multi_worker_fit` applies the fixes for the duration of one multi-worker run and undoes
them; the 2-worker test in tests/test_distribution.py fails if a Keras release breaks them.
"""

from __future__ import annotations

import contextlib

from cnnzoo import keras_internals


@contextlib.contextmanager
def multi_worker_fit(model):
    """Let `model.fit/evaluate` run under MultiWorkerMirroredStrategy, inside its scope, within this block."""
    tree = keras_internals.module("tree")
    trainer = keras_internals.module("backend.tensorflow.trainer")
    for name in ("reduce_per_replica", "_collective_all_reduce_multi_worker"):
        if not hasattr(trainer, name):
            raise keras_internals.changed(f"keras.src.backend.tensorflow.trainer.{name}")
    if not hasattr(model, "_distribute_strategy"):
        raise keras_internals.changed("Model._distribute_strategy")
    original = trainer.reduce_per_replica

    def reduce_per_replica(values, strategy, reduction):
        # (2) The mean over all replicas of every worker, as Keras intends, with axis=None.
        if reduction in ("auto", "mean") and trainer._collective_all_reduce_multi_worker(strategy):
            return tree.map_structure(lambda v: strategy.reduce("MEAN", v, axis=None), values)
        return original(values, strategy, reduction)

    # (1) Without a strategy remembered at construction, Keras builds the model lazily at the
    # first traced step instead (its own fallback); `fit` then takes the strategy from the scope.
    remembered = model._distribute_strategy
    model._distribute_strategy = None
    trainer.reduce_per_replica = reduce_per_replica
    try:
        yield
    finally:
        trainer.reduce_per_replica = original
        model._distribute_strategy = remembered
