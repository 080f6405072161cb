"""The command line's process set-up: library logs held back, cnnzoo's warnings as one line each."""

from __future__ import annotations

import contextlib
import importlib.abc
import importlib.machinery
import os
import sys
import tempfile
import warnings

from cnnzoo.errors import CnnzooWarning


def quiet_library_logs() -> None:
    """Hold back TensorFlow's C++ start-up lines and TFDS's absl INFO/WARNING lines.

    TensorFlow is imported only when a command needs it, so a broken config file is reported
    before the seconds that import takes. TF 2.21 prints its start-up lines (oneDNN, CUDA
    probing) even when TF_CPP_MIN_LOG_LEVEL is set from inside the process, so the first
    import runs with stderr muted; what it printed is shown if it fails, and all of it with
    TF_CPP_MIN_LOG_LEVEL=0 set by the user.
    """
    from absl import logging as absl_logging

    absl_logging.set_verbosity(absl_logging.ERROR)
    if os.environ.get("TF_CPP_MIN_LOG_LEVEL") != "0" and "tensorflow" not in sys.modules:
        sys.meta_path.insert(0, _MutedFirstImport())


class _MutedFirstImport(importlib.abc.MetaPathFinder):
    """Finds `tensorflow` as usual and runs its import with file descriptor 2 muted."""

    def find_spec(self, name, path, target=None):
        if name != "tensorflow":
            return None
        sys.meta_path.remove(self)
        spec = importlib.machinery.PathFinder.find_spec(name, path)
        if spec is not None and spec.loader is not None:
            spec.loader = _MutedLoader(spec.loader)
        return spec


class _MutedLoader(importlib.abc.Loader):
    def __init__(self, loader):
        self.loader = loader

    def create_module(self, spec):
        return self.loader.create_module(spec)

    def exec_module(self, module):
        with _muted_stderr():
            self.loader.exec_module(module)
            module.config.list_physical_devices()  # probes CUDA now, while muted


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
