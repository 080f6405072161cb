"""Process-wide settings a run needs before any model exists: strategy, seeds, determinism."""

from __future__ import annotations

from cnnzoo.config.schema import Config
from cnnzoo.runtime.strategy import Placement, choose_strategy


def setup_runtime(config: Config) -> Placement:
    """Choose the strategy first (MultiWorkerMirroredStrategy must start before other TF work), then seed."""
    import keras
    import tensorflow as tf

    placement = choose_strategy(config)
    keras.utils.set_random_seed(config.runtime.seed)  # Python, NumPy and TensorFlow
    if config.runtime.deterministic:
        tf.config.experimental.enable_op_determinism()
    return placement
