"""A screenshot of the dock's Area mode (drawn polygon) beside its styled result, taken under Xvfb
(skipped where xvfb-run is absent).

``python -m bench.screenshot docs/dock_screenshot.png`` under xvfb-run refreshes the README's copy;
this test takes one into a temporary folder and checks that it shows the map, the arrows and the panel.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import glacierflow


@pytest.mark.skipif(shutil.which("xvfb-run") is None, reason="xvfb-run is not installed")
def test_screenshot_shows_dock_and_styled_map(tmp_path):
    from qgis.PyQt.QtGui import QColor, QImage

    png = tmp_path / "dock_screenshot.png"
    env = {k: v for k, v in os.environ.items() if k not in ("QT_QPA_PLATFORM", "DISPLAY")}
    env["PYTHONPATH"] = os.pathsep.join([str(Path(glacierflow.__path__[0]).parent)] + sys.path[1:])
    env["QGIS_CUSTOM_CONFIG_PATH"] = str(tmp_path / "profile")
    completed = subprocess.run(
        ["xvfb-run", "-a", "-s", "-screen 0 1600x1000x24", sys.executable, "-m", "bench.screenshot",
         str(png), "--engine", "farneback"], env=env, capture_output=True, text=True, timeout=300)
    assert completed.returncode == 0, completed.stdout + completed.stderr
    image = QImage(str(png))
    assert (image.width(), image.height()) == (1500, 860)
    colours = [QColor(image.pixel(x, y)) for x in range(280, 820, 4) for y in range(20, 840, 4)]  # the map
    yellow = sum(c.red() > 200 and c.green() > 200 and c.blue() < 90 for c in colours)  # fast ice, viridis top
    white = sum(c.red() > 245 and c.green() > 245 and c.blue() > 245 for c in colours)  # the arrows
    purple = sum(c.red() < 90 and c.green() < 40 and c.blue() > 70 for c in colours)  # still ground
    assert yellow > 100 and white > 50 and purple > 5000
    outline = [QColor(image.pixel(x, y)) for x in range(280, 820) for y in range(20, 840, 2)]  # 2 px wide lines
    drawn = sum(c.red() > 230 and 70 < c.green() < 110 and 40 < c.blue() < 80 for c in outline)
    assert drawn > 1000  # the drawn area's outline, all of it in view
    tab = [QColor(image.pixel(x, y)) for x in range(840, 1500, 4) for y in range(0, 120, 2)]
    assert len({c.rgb() for c in tab}) > 5  # the panel is drawn beside the map
