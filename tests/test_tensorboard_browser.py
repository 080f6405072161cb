"""A real TensorBoard in a real browser: the run's loss curve and its pictures show in headless Chromium.

Chromium is Debian's `chromium` package (`.ci/run` installs it when missing). The screenshot of the
Images dashboard is kept in build/test-artifacts/ for a person to look at.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
import urllib.request
from pathlib import Path

import pytest

from conftest import REPO

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
ARTIFACTS = REPO / "build" / "test-artifacts"
# Headless as root in a container: no sandbox, no GPU, no /dev/shm; a window large enough that
# TensorBoard lays out the image cards (it builds cards only when they are in view).
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--hide-scrollbars",
         "--window-size=1400,1000"]

pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="headless Chromium is not installed "
                                "(`apt-get install -y chromium`; .ci/run installs it when it can)")


def chromium(url: str, *extra: str) -> str:
    with tempfile.TemporaryDirectory() as profile:
        done = subprocess.run([CHROMIUM, *FLAGS, f"--user-data-dir={profile}", *extra, url],
                              capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout


def get(url: str):
    with urllib.request.urlopen(url, timeout=5) as response:
        return response.read()


@pytest.fixture
def tensorboard(pictures_run):
    """TensorBoard serving the run's logs on 127.0.0.1, once it lists the run's tags. `--port 0`: the
    server binds a port the system chooses and prints it (a port probed free and closed before the
    server binds it can be taken by another process in between)."""
    server = subprocess.Popen([sys.executable, "-m", "tensorboard.main", "--logdir", str(pictures_run / "logs"),
                               "--host", "127.0.0.1", "--port", "0"],
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        base = _served_at(server)
        deadline = time.monotonic() + 90
        while "confusion_matrix" not in _tags(base, "images").get("pictures", {}):
            assert server.poll() is None, "TensorBoard exited"
            assert time.monotonic() < deadline, "TensorBoard did not list the run's images within 90 s"
            time.sleep(0.3)
        yield base
    finally:
        os.killpg(server.pid, signal.SIGTERM)  # also its data-server child
        server.wait(timeout=30)


def _served_at(server: subprocess.Popen) -> str:
    """The address from TensorBoard's "TensorBoard 2.x at http://127.0.0.1:PORT/" line on stderr."""
    said = []
    for line in server.stderr:  # ends when TensorBoard exits
        said.append(line)
        found = re.search(r" at (http://127\.0\.0\.1:\d+)/", line)
        if found:
            threading.Thread(target=server.stderr.read, daemon=True).start()  # keep the pipe drained
            return found.group(1)
    raise AssertionError("TensorBoard exited without serving: " + "".join(said)[-2000:])


def _tags(base: str, plugin: str) -> dict:
    try:
        return json.loads(get(f"{base}/data/plugin/{plugin}/tags"))
    except OSError:
        return {}


@pytest.mark.slow
def test_tensorboard_shows_the_loss_and_the_pictures_in_chromium(tensorboard):
    # The data API the page itself calls: the run's scalars and images, and a real PNG behind a card.
    assert "epoch_loss" in _tags(tensorboard, "scalars")["train"]
    images = _tags(tensorboard, "images")["pictures"]
    assert {"filters/conv2d_1", "confusion_matrix", "mistakes", "grad_cam"} <= set(images)
    curves = _tags(tensorboard, "pr_curves")  # per-class PR curves, TensorBoard's own plugin
    assert {"pr_curve/0/pr_curves", "pr_curve/9/pr_curves"} <= set(curves["validation"]) & set(curves["test"])
    tag = urllib.parse.quote("filters/conv2d_1", safe="")
    samples = json.loads(get(f"{tensorboard}/data/plugin/images/images?run=pictures&tag={tag}"))
    assert [s["step"] for s in samples] == [0, 1]
    assert get(f"{tensorboard}/data/plugin/images/individualImage?{samples[-1]['query']}")[:8] == b"\x89PNG\r\n\x1a\n"

    # The page, rendered by Chromium: the Time Series dashboard's cards carry their tags as titles
    # (filtered to these tags, so that all their cards are in view and drawn).
    titles = [f'title="{tag}"' for tag in ("epoch_loss", "filters/conv2d_1", "confusion_matrix")]
    for attempt in range(6):  # a busy machine may need more than one load for the cards to be drawn
        page = chromium(f"{tensorboard}/?tagFilter=epoch_loss%7Cfilters%7Cconfusion_matrix#timeseries",
                        "--dump-dom", f"--virtual-time-budget={10000 * (attempt + 1)}")
        if all(title in page for title in titles) and page.count("data/plugin/timeseries/imageData") >= 2:
            break
    for title in titles:
        assert title in page, title
    assert page.count("data/plugin/timeseries/imageData") >= 2  # image cards with their pictures

    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    shot = ARTIFACTS / "tensorboard-images.png"
    chromium(f"{tensorboard}/#images", f"--screenshot={shot}", "--virtual-time-budget=10000")
    _assert_not_blank(shot)


def _assert_not_blank(png: Path) -> None:
    from matplotlib.image import imread

    pixels = imread(png)
    assert pixels.shape[:2] == (1000, 1400)
    assert pixels[..., :3].std() > 0.05  # TensorBoard's white page alone would be ~0
