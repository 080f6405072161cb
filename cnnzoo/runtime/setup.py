"""Process-wide settings a run needs before any model exists: the strategy, seeds, determinism."""

from __future__ import annotations

from cnnzoo.config.schema import Config
from cnnzoo.runtime.strategy import Placement, StrategyChoice, start_strategy


def start_runtime(config: Config, choice: StrategyChoice) -> Placement:
    """Start the chosen strategy first (MultiWorkerMirroredStrategy must start before other TF
    work), then seed Python, NumPy, TensorFlow and Keras, and turn on op determinism if asked."""
    import keras
    import tensorflow as tf

    placement = start_strategy(choice, config)
    keras.utils.set_random_seed(config.runtime.seed)
    if config.runtime.deterministic:
        tf.config.experimental.enable_op_determinism()
    return placement
