"""The command line's process set-up: TensorFlow's and Keras' first imports (muted, without notebook
modules or garbage collections), cnnzoo's warnings as one line each."""

from __future__ import annotations

import contextlib
import functools
import importlib.abc
import importlib.machinery
import os
import sys
import tempfile
import warnings

from cnnzoo.errors import CnnzooWarning
from cnnzoo.memory import import_uncollected


def first_imports() -> None:
    """Set up how TensorFlow and Keras are first imported, and hold back TFDS's absl INFO/WARNING lines.

    TensorFlow is imported only when a command needs it, so a broken config file is reported
    before the seconds that import takes. TF 2.21 prints its start-up lines (oneDNN, CUDA
    probing) even when TF_CPP_MIN_LOG_LEVEL is set from inside the process, so the first
    import runs with stderr muted; what it printed is shown if it fails, and all of it with
    TF_CPP_MIN_LOG_LEVEL=0 set by the user.

    Keras imports IPython and matplotlib's pyplot when they are installed, for notebooks and
    image galleries a command never shows: its first import runs without them (a new Python
    importing Keras took 0.6 s less here, of ~4.6 s). cnnzoo imports pyplot itself where it plots.

    Both first imports run without garbage collections (`cnnzoo.memory.import_uncollected`).
    """
    from absl import logging as absl_logging

    absl_logging.set_verbosity(absl_logging.ERROR)
    if "tensorflow" not in sys.modules:
        muted = os.environ.get("TF_CPP_MIN_LOG_LEVEL") != "0"
        sys.meta_path.insert(0, _FirstImport("tensorflow", functools.partial(_first_tensorflow_import, muted=muted)))
    if "keras" not in sys.modules:
        sys.meta_path.insert(0, _FirstImport("keras", _first_keras_import))


class _FirstImport(importlib.abc.MetaPathFinder):
    """Finds module `name` as usual and runs its import inside `around(module)`, a context manager."""

    def __init__(self, name: str, around):
        self.name, self.around = name, around

    def find_spec(self, name, path, target=None):
        if name != self.name:
            return None
        sys.meta_path.remove(self)
        spec = importlib.machinery.PathFinder.find_spec(name, path)
        if spec is not None and spec.loader is not None:
            spec.loader = _AroundLoader(spec.loader, self.around)
        return spec


class _AroundLoader(importlib.abc.Loader):
    def __init__(self, loader, around):
        self.loader, self.around = loader, around

    def create_module(self, spec):
        return self.loader.create_module(spec)

    def exec_module(self, module):
        with self.around(module):
            self.loader.exec_module(module)


@contextlib.contextmanager
def _first_tensorflow_import(module, muted: bool):
    with import_uncollected():
        if not muted:
            yield
            return
        with _muted_stderr():
            yield
            module.config.list_physical_devices()  # probes CUDA now, while muted


@contextlib.contextmanager
def _first_keras_import(module):
    with import_uncollected(), _without_notebook_modules(module):
        yield


NOTEBOOK_MODULES = ("IPython", "matplotlib.pyplot")


@contextlib.contextmanager
def _without_notebook_modules(module):
    hidden = [name for name in NOTEBOOK_MODULES if name not in sys.modules]
    for name in hidden:
        sys.modules[name] = None  # `import name` raises ImportError, which Keras expects of a missing one
    try:
        yield
    finally:
        for name in hidden:
            if sys.modules.get(name, False) is None:
                del sys.modules[name]


@contextlib.contextmanager
def _muted_stderr():
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as captured:
        os.dup2(captured.fileno(), 2)
        try:
            yield
        except BaseException:
            os.dup2(saved, 2)
            captured.seek(0)
            sys.stderr.write(captured.read().decode(errors="replace"))
            raise
        finally:
            os.dup2(saved, 2)
            os.close(saved)


def show_warnings_as_one_line() -> None:
    default = warnings.showwarning

    def show(message, category, filename, lineno, file=None, line=None):
        if issubclass(category, CnnzooWarning):
            print(f"warning: {message}", file=sys.stderr)
        else:
            default(message, category, filename, lineno, file, line)

    warnings.showwarning = show
