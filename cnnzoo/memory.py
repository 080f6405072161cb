"""How much memory this process may use (the container's limit where there is one, else the RAM),
memory TensorFlow can share with NumPy, and Python's garbage collections kept off what lives long:
a run's starting heap, what a big import makes.

A pod limited to 8 GiB on a 256 GiB host sees 256 GiB through `sysconf`; sizing caches or weight
budgets from that gets it OOM-killed. cgroup v2 says the limit in `memory.max`, v1 in
`memory.limit_in_bytes` (a huge number there means none).
"""

from __future__ import annotations

import contextlib
import gc
import os
import threading
from pathlib import Path

CGROUP = Path("/sys/fs/cgroup")
ALIGNMENT = 64  # bytes: TensorFlow's alignment for tensors it may take from NumPy without a slow copy
_NO_LIMIT_V1 = 2**60  # v1 writes about 2**63 rounded down to a page when no limit is set
_freezing = {"depth": 0, "lock": threading.Lock(), "ours": False, "runs": 0}


def available_memory(cgroup: Path | None = None) -> int | None:
    """Bytes this process may use: the smaller of the RAM and its cgroup's limit (None: unknown)."""
    limits = [m for m in (_physical(), _cgroup_limit(cgroup or CGROUP)) if m]
    return min(limits) if limits else None


def _physical() -> int | None:
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return None


def _cgroup_limit(root: Path) -> int | None:
    """The memory limit of this process's cgroup (v2, then v1), or None. In a container the cgroup
    namespace makes its own group the root, so `root/memory.max` is the container's limit."""
    v2, v1 = _own_group(root, v2=True), _own_group(root, v2=False)
    candidates = [root / v2 / "memory.max", root / "memory.max",
                  root / "memory" / v1 / "memory.limit_in_bytes", root / "memory" / "memory.limit_in_bytes"]
    return next((limit for limit in map(_read, candidates) if limit is not None), None)


def _own_group(root: Path, *, v2: bool) -> str:
    """This process's cgroup path from /proc/self/cgroup (`0::/kubepods/...` for v2, `N:memory:/...` for v1)."""
    try:
        lines = Path("/proc/self/cgroup").read_text().splitlines()
    except OSError:
        return ""
    for line in lines:
        _, controllers, path = line.split(":", 2)
        if (v2 and controllers == "") or (not v2 and "memory" in controllers.split(",")):
            return path.lstrip("/")
    return ""


def _read(path: Path) -> int | None:
    try:
        text = path.read_text().strip()
    except OSError:
        return None
    if not text.isdigit():
        return None  # "max": no limit
    value = int(text)
    return value if 0 < value < _NO_LIMIT_V1 else None


def aligned_empty(shape: tuple[int, ...], dtype):
    """`np.empty(shape, dtype)` whose data starts on an ALIGNMENT-byte boundary."""
    import numpy as np

    size = int(np.prod(shape)) * np.dtype(dtype).itemsize
    buffer = np.empty(size + ALIGNMENT, np.uint8)
    start = -buffer.ctypes.data % ALIGNMENT
    return buffer[start:start + size].view(dtype).reshape(shape)


@contextlib.contextmanager
def frozen_heap():
    """Leave the objects that exist on entry out of Python's full garbage collections until exit.

    They are mostly TensorFlow's and Keras' modules (about 365,000 objects after importing them).
    Python scans them all in a full collection, and a run starts by allocating enough to cause one:
    it took 0.18-0.23 s of every run, while the run's own objects are collected as before.
    A process's later runs (a search's trials, a notebook's second run) first collect the garbage
    an earlier one left, such as its model, which would otherwise be frozen with the rest.
    Re-entrant. A heap the caller froze already is left as the caller set it.
    """
    with _freezing["lock"]:
        if _freezing["depth"] == 0:
            _freezing["ours"] = gc.get_freeze_count() == 0
            if _freezing["ours"]:
                if _freezing["runs"]:
                    gc.collect()
                gc.freeze()
        _freezing["depth"] += 1
    try:
        yield
    finally:
        with _freezing["lock"]:
            _freezing["depth"] -= 1
            if _freezing["depth"] == 0:
                _freezing["runs"] += 1
                if _freezing["ours"]:
                    gc.unfreeze()


@contextlib.contextmanager
def import_uncollected():
    """Run a big import (TensorFlow's, Keras') without garbage collections, and freeze what it made.

    For a process cnnzoo owns (the command line). An import makes long-lived objects (modules, classes,
    functions), and the collections it causes scan them again and again: importing TensorFlow and
    Keras in a new Python took 4.4-4.7 s with six full collections among them (0.51-0.54 s), 3.1-4.0 s
    with none (three runs each). Frozen afterwards, they stay out of later collections too.
    """
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        gc.freeze()
        if enabled:
            gc.enable()
