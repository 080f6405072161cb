"""cnnzoo: CNN models from YAML configs, built and trained with Keras 3 on TensorFlow.

    import cnnzoo
    config = cnnzoo.load_config("configs/slide_cnn.yaml", overrides=["train.epochs=3"])
    model = cnnzoo.build_model(config)        # an uncompiled keras.Model
    result = cnnzoo.train(config)             # fits it and fills a run directory

The path config -> validated spec -> Keras graph -> compiled model -> fit lives in
`config/`, `models/builder.py`, `training/compile.py` and `training/trainer.py`.
Keras is imported only when a model is built, so loading configs stays fast.
"""

from cnnzoo.config.loader import config_from_dict, load_config
from cnnzoo.config.schema import Config
from cnnzoo.errors import BuildError, CnnzooError, ConfigError, DataError, TrainingError

__version__ = "0.1.0"


def build_model(config, *, input_shape=None):
    """Build the uncompiled Functional `keras.Model` a config describes (see `cnnzoo.models.builder`)."""
    from cnnzoo.models.builder import build_model as _build

    return _build(config, input_shape=input_shape)


def train(config, **kwargs):
    """Train a config's model and fill a run directory (see `cnnzoo.training.trainer.train`)."""
    from cnnzoo.training.trainer import train as _train

    return _train(config, **kwargs)


__all__ = [
    "BuildError", "Config", "CnnzooError", "ConfigError", "DataError", "TrainingError",
    "build_model", "config_from_dict", "load_config", "train", "__version__",
]
