"""Make the docs' TensorBoard screenshots in headless Chromium: docs/images/tensorboard-pictures.png (a
quickstart run's Images tab), docs/images/tensorboard-grad-cam.png (its Grad-CAM card) and, with
--search, docs/images/tensorboard-hparams.png (the HParams tab of docs/search.md's example search).

    python docs/screenshot.py            # trains configs/quickstart.yaml (about 30 s), then shoots
    python docs/screenshot.py --search   # runs configs/experiments/quickstart_search.yaml (about 90 s), then shoots

Needs Debian's `chromium`. The same steps, checked, are tests/test_tensorboard_browser.py.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
IMAGES = REPO / "docs" / "images"
sys.path.insert(0, str(REPO / "tests"))

from test_tensorboard_browser import _tags, chromium  # noqa: E402


@contextlib.contextmanager
def tensorboard(logdir: Path):
    """A TensorBoard serving `logdir` on a free local port; yields its address."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = subprocess.Popen([sys.executable, "-m", "tensorboard.main", "--logdir", str(logdir),
                               "--host", "127.0.0.1", "--port", str(port)], stderr=subprocess.DEVNULL,
                              start_new_session=True)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=30)


def cnnzoo(*args: str) -> None:
    subprocess.run([sys.executable, "-m", "cnnzoo.cli", *args], check=True)


def pictures(folder: Path) -> None:
    run = folder / "quickstart"
    cnnzoo("train", str(REPO / "configs" / "quickstart.yaml"), "--output-dir", str(run), "runtime.seed=1")
    with tensorboard(run / "logs") as base:
        while "grad_cam" not in _tags(base, "images").get("pictures", {}):
            time.sleep(0.3)
        out = IMAGES / "tensorboard-pictures.png"
        chromium(f"{base}/#images", f"--screenshot={out}", "--virtual-time-budget=10000")
        print(out)
        out = IMAGES / "tensorboard-grad-cam.png"  # the Images tab filtered to the one card
        chromium(f"{base}/#images&tagFilter=grad_cam", f"--screenshot={out}", "--virtual-time-budget=15000",
                 "--window-size=1400,1080")
        print(out)


def hparams(folder: Path) -> None:
    search = folder / "search-demo"
    cnnzoo("search", str(REPO / "configs" / "experiments" / "quickstart_search.yaml"), "--output-dir", str(search))
    trials = len(list((search / "trials").iterdir()))
    with tensorboard(search) as base:
        while sum("/logs/" in run for run in _tags(base, "scalars")) < trials:  # every trial's logs read
            time.sleep(0.3)
        out = IMAGES / "tensorboard-hparams.png"
        chromium(f"{base}/#hparams", f"--screenshot={out}", "--virtual-time-budget=15000", "--window-size=1400,900")
        print(out)


def main() -> None:
    IMAGES.mkdir(exist_ok=True)
    with tempfile.TemporaryDirectory() as folder:
        (hparams if "--search" in sys.argv[1:] else pictures)(Path(folder))


if __name__ == "__main__":
    main()
