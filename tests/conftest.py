"""Shared fixtures: a private TFDS data dir per test session, the real shared data if present."""

from __future__ import annotations

import gc
import json
import os
import select
import shutil
import subprocess
import sys
import tempfile
import uuid
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
CONFIGS = REPO / "configs"
TINY = REPO / "tests" / "tiny.yaml"  # quickstart with a network that traces fast: for tests not of the network
# The course's shared datasets sit beside the repository on the team's machines and CI.
SHARED_DATA = REPO.parent / "shared" / "data"
PORT_TAKEN = "already in use"  # gRPC's words when another process took a port a cluster test chose


# Every test (and subprocess) prepares TFDS datasets in a fresh folder of its own process, never
# ~/tensorflow_datasets: tests delete and damage the files cnnzoo keeps there.
# Set when this file is imported: TFDS reads the variable once, when it is first imported.
TFDS_DIR = Path(tempfile.mkdtemp(prefix="cnnzoo-tests-tfds-"))
os.environ["TFDS_DATA_DIR"] = str(TFDS_DIR)


# Full datasets prepared from ../shared/data, which tests only read (`data.data_dir=PREPARED_DIR`), are
# prepared once per run: the pytest-xdist workers of a run share this folder, as the workers of a
# multi-worker run share a data dir (cnnzoo prepares a dataset under a lock).
def _prepared_dir(run_id: str) -> Path:
    return Path(tempfile.gettempdir()) / f"cnnzoo-tests-prepared-{run_id}"


_RUN_ID = os.environ.get("PYTEST_XDIST_TESTRUNUID")  # set by pytest-xdist in its workers only
PREPARED_DIR = _prepared_dir(_RUN_ID) if _RUN_ID else TFDS_DIR / "prepared"
PREPARED_DIR.mkdir(exist_ok=True)


def pytest_configure(config):
    if _RUN_ID is None and config.pluginmanager.hasplugin("xdist") and config.getoption("testrunuid") is None:
        config.option.testrunuid = uuid.uuid4().hex  # the id the workers get, known here to remove their folder


def _end_worker():
    """A pytest-xdist worker has sent its results (`workerfinished`) and run every unconfigure hook:
    it leaves without pytest's five last full garbage collections (the unraisable-exception plugin's
    cleanup, whose warnings a worker would not show) and Python's teardown of the objects TensorFlow
    and the tests made, which the controller waited for (measured at the end of a full run: 3.2 s,
    then 3.3 s)."""
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)


def pytest_collection_finish(session):
    """Python's full garbage collections scan every live object, and a test process holds TensorFlow's
    and Keras' ~400,000 from collection to its end: measured on a third of the suite in one process, 35
    full collections took 12.7 s of its 127 s. Frozen, those objects are no longer scanned, and full
    collections are made rarer (12 took 4.2 s there): the tests' models and traced graphs are garbage
    within the test that made them."""
    gc.collect()
    gc.freeze()
    first, second, _ = gc.get_threshold()
    gc.set_threshold(first, second, 100)
    if hasattr(session.config, "workerinput"):  # cleanups run last-registered first: this one before the plugins'
        session.config.add_cleanup(_end_worker)


@pytest.fixture
def unfrozen():
    """The heap as a program's is, not frozen (`pytest_collection_finish` freezes the test process's)."""
    gc.unfreeze()
    yield
    gc.freeze()


def pytest_unconfigure(config):
    """Each process's TFDS folder goes with it; the run's shared one goes with the controller."""
    shutil.rmtree(TFDS_DIR, ignore_errors=True)
    for server in _keras_only:
        server.kill()  # it holds nothing to save; TensorFlow's orderly exit took 0.9 s
        server.wait(timeout=60)
    _keras_only.clear()
    if not hasattr(config, "workerinput") and config.pluginmanager.hasplugin("xdist") and config.getoption("testrunuid"):
        shutil.rmtree(_prepared_dir(config.getoption("testrunuid")), ignore_errors=True)


def run_cli(*args: str, cwd: Path | None = None, timeout: int = 300) -> subprocess.CompletedProcess:
    """Run `python -m cnnzoo.cli ARGS` in a fresh process, as a user's shell would."""
    return subprocess.run(
        [sys.executable, "-m", "cnnzoo.cli", *args],
        cwd=cwd or REPO,
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )


def cli(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    """`cnnzoo ARGS` in this process: exit code and printed text as `run_cli` gives them (cnnzoo's
    `warning:` lines included), without the seconds a new process spends importing TensorFlow."""
    import contextlib
    import io
    import warnings

    from cnnzoo.cli import main
    from cnnzoo.errors import CnnzooWarning

    out, err, before = io.StringIO(), io.StringIO(), os.getcwd()
    try:
        os.chdir(cwd or before)
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err), warnings.catch_warnings():
            warnings.filterwarnings("default", category=CnnzooWarning)  # once per call, printed as the command does
            code = main([str(a) for a in args])
    finally:
        os.chdir(before)
    return subprocess.CompletedProcess(["cnnzoo", *args], code, out.getvalue(), err.getvalue())


# A Python that imported Keras and TensorFlow and never cnnzoo, kept for the whole test process: what a
# deployment has. Scripts run in it one at a time (each in a namespace of its own, as `python -c` would
# run it), so the ten checks that exports and saved models load without cnnzoo pay TensorFlow's import
# (~4.5 s of CPU) once per test process instead of once each.
WITHOUT_CNNZOO = r"""
import contextlib, io, json, os, sys, traceback
import keras, numpy, tensorflow  # noqa: F401 - imported once, as each script would
replies = os.fdopen(os.dup(1), "w")
os.dup2(2, 1)  # what anything writes to the process's own stdout goes where its stderr goes, not into a reply
for line in sys.stdin:
    request, out, err, code = json.loads(line), io.StringIO(), io.StringIO(), 0
    sys.argv, before = ["-c", *request["args"]], os.getcwd()
    try:
        os.chdir(request["cwd"])
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            exec(compile(request["code"], "<string>", "exec"), {"__name__": "__main__"})
    except SystemExit as stop:
        code = stop.code if isinstance(stop.code, int) else (0 if stop.code is None else 1)
    except BaseException:
        traceback.print_exc(file=err)
        code = 1
    finally:
        os.chdir(before)
    imported = any(name.split(".")[0] == "cnnzoo" for name in sys.modules)
    if imported:
        err.write("this process imported cnnzoo\n")
        code = code or 1
    print(json.dumps({"returncode": code, "stdout": out.getvalue(), "stderr": err.getvalue(), "ends": imported}),
          file=replies, flush=True)
    if imported:
        break  # no longer a process without cnnzoo: the next script gets a new one
"""
_keras_only: list[subprocess.Popen] = []


def without_cnnzoo(code: str, *args: str, cwd: Path | None = None, fresh: bool = False,
                   timeout: int = 300) -> subprocess.CompletedProcess:
    """Run Python `code` with sys.argv[1:] = args in a process that has Keras and TensorFlow and has never
    imported cnnzoo: as `python -c CODE ARGS` would run there, and it fails if the code (or anything
    before it in that process) imported cnnzoo. `fresh`: in a new Python, which has imported nothing
    (for code that checks TensorFlow is not imported)."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    if fresh:
        return subprocess.run([sys.executable, "-c", code, *map(str, args)], capture_output=True, text=True,
                              timeout=timeout, env=env, cwd=cwd or REPO)
    if not _keras_only or _keras_only[0].poll() is not None:
        _keras_only[:] = [subprocess.Popen([sys.executable, "-c", WITHOUT_CNNZOO], stdin=subprocess.PIPE,
                                           stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
                                           cwd=tempfile.gettempdir(), env=env)]
    server = _keras_only[0]
    server.stdin.write(json.dumps({"code": code, "args": [str(a) for a in args], "cwd": str(cwd or REPO)}) + "\n")
    server.stdin.flush()
    if not select.select([server.stdout], [], [], timeout)[0]:
        server.kill()
        server.wait()
        _keras_only.clear()  # the next call starts another
        raise subprocess.TimeoutExpired(["python", "-c", code, *map(str, args)], timeout)
    reply = server.stdout.readline()
    assert reply, "the process without cnnzoo ended"
    done = json.loads(reply)
    if done["ends"]:
        server.wait(timeout=60)
    return subprocess.CompletedProcess(["python", "-c", code, *args], done["returncode"], done["stdout"], done["stderr"])


KILLED_IN_SECOND_RUN = """
import os, signal, sys
import keras

class KillInSecondRun(keras.callbacks.Callback):
    fits = 0
    def on_train_begin(self, logs=None):
        KillInSecondRun.fits += 1
    def on_epoch_end(self, epoch, logs=None):  # after the epoch's state is saved
        if KillInSecondRun.fits == 2:
            os.kill(os.getpid(), signal.SIGKILL)

callbacks = [KillInSecondRun()]
"""


def killed_in_second_run(code: str, *args: str) -> subprocess.CompletedProcess:
    """Run `code` (Python, given `callbacks` and sys.argv[1:] = args) in a fresh process that SIGKILLs itself
    after the first epoch of the second run it trains, as a crash or the OOM killer would."""
    return subprocess.run([sys.executable, "-c", KILLED_IN_SECOND_RUN + code, *map(str, args)], cwd=REPO,
                          capture_output=True, text=True, timeout=300, env={**os.environ, "PYTHONPATH": str(REPO)})


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


@pytest.fixture(scope="session")
def pictures_run(tmp_path_factory) -> Path:
    """A small quickstart run of 2 short epochs, with its TensorBoard logs and pictures."""
    run = tmp_path_factory.mktemp("pictures") / "run"
    done = cli("train", CONFIGS / "quickstart.yaml", "--output-dir", run, "train.epochs=2", "train.steps_per_epoch=15",
               "runtime.seed=3")
    assert done.returncode == 0, done.stderr
    return run
