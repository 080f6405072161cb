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

from cnnzoo.version import __version__


# Keras-dependent entry points load on first use, keeping `import cnnzoo` light.
_LAZY = {"build_model": "cnnzoo.models.builder", "plan": "cnnzoo.plan", "train": "cnnzoo.training.trainer",
         "resume": "cnnzoo.training.resume"}


def __getattr__(name: str):
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'cnnzoo' has no attribute {name!r}")


__all__ = [
    "BuildError", "Config", "CnnzooError", "ConfigError", "DataError", "TrainingError",
    "build_model", "config_from_dict", "load_config", "plan", "resume", "train", "__version__",
]
