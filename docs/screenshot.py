"""Make docs/images/tensorboard-pictures.png (a quickstart run's Images tab) and
docs/images/tensorboard-grad-cam.png (its Grad-CAM card) in headless Chromium.

    python docs/screenshot.py            # trains configs/quickstart.yaml (about 30 s), then shoots

Needs Debian's `chromium`. The same steps, checked, are tests/test_tensorboard_browser.py.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))

from test_tensorboard_browser import _tags, chromium  # noqa: E402


def main() -> None:
    with tempfile.TemporaryDirectory() as folder:
        run = Path(folder) / "quickstart"
        subprocess.run([sys.executable, "-m", "cnnzoo.cli", "train", str(REPO / "configs" / "quickstart.yaml"),
                        "--output-dir", str(run), "runtime.seed=1"], check=True)
        with socket.socket() as probe:  # a free port
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
        server = subprocess.Popen([sys.executable, "-m", "tensorboard.main", "--logdir", str(run / "logs"),
                                   "--host", "127.0.0.1", "--port", str(port)], stderr=subprocess.DEVNULL,
                                  start_new_session=True)
        base = f"http://127.0.0.1:{port}"
        try:
            while "grad_cam" not in _tags(base, "images").get("pictures", {}):
                time.sleep(0.3)
            out = REPO / "docs" / "images" / "tensorboard-pictures.png"
            out.parent.mkdir(exist_ok=True)
            chromium(f"{base}/#images", f"--screenshot={out}", "--virtual-time-budget=10000")
            print(out)
            out = out.with_name("tensorboard-grad-cam.png")  # the Images tab filtered to the one card
            chromium(f"{base}/#images&tagFilter=grad_cam", f"--screenshot={out}", "--virtual-time-budget=15000",
                     "--window-size=1400,1080")
            print(out)
        finally:
            os.killpg(server.pid, signal.SIGTERM)
            server.wait(timeout=30)


if __name__ == "__main__":
    main()
