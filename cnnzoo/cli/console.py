"""The command line's process set-up: TensorFlow imported quietly, cnnzoo's warnings as one line each."""

from __future__ import annotations

import os
import sys
import warnings

from cnnzoo.errors import CnnzooWarning


def import_tensorflow_quietly() -> None:
    """Import TensorFlow with its C++ start-up lines (oneDNN, CUDA probing) held back.

    TF 2.21 prints them before TF_CPP_MIN_LOG_LEVEL takes effect. They are shown
    if the import fails, and always with TF_CPP_MIN_LOG_LEVEL=0.
    """
    if os.environ.get("TF_CPP_MIN_LOG_LEVEL") == "0":
        return
    import tempfile

    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as captured:
        os.dup2(captured.fileno(), 2)
        try:
            import tensorflow as tf

            tf.config.list_physical_devices()  # probes CUDA now, while muted (logical devices would fix the runtime too early for multi-worker)
        except BaseException:
            os.dup2(saved, 2)
            captured.seek(0)
            sys.stderr.write(captured.read().decode(errors="replace"))
            raise
        finally:
            os.dup2(saved, 2)
            os.close(saved)
    from absl import logging as absl_logging

    absl_logging.set_verbosity(absl_logging.ERROR)  # TFDS's INFO/WARNING lines; cnnzoo reports progress itself


def show_warnings_as_one_line() -> None:
    default = warnings.showwarning

    def show(message, category, filename, lineno, file=None, line=None):
        if issubclass(category, CnnzooWarning):
            print(f"warning: {message}", file=sys.stderr)
        else:
            default(message, category, filename, lineno, file, line)

    warnings.showwarning = show
