"""The dock under test: open it in one mode, and wait for its background job (real QGIS event loop)."""
from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

from qgis.core import QgsApplication


def wait_for(dock: Any, timeout: float = 180.0) -> None:
    """Process Qt events until the dock's background job has ended (timeout in s)."""
    deadline = time.monotonic() + timeout
    while dock.is_running() and time.monotonic() < deadline:
        QgsApplication.processEvents()
        time.sleep(0.02)
    assert not dock.is_running(), "the background job did not end in time"


def open_dock(plugin: Any, mode: str) -> Iterator[Any]:
    """A GlacierFlow dock showing ``mode`` ("pair", "area", "region" or "forecast"), released afterwards.

    The last mode is remembered between tests, so each test's dock sets its own.
    """
    from glacierflow.ui.dock import GlacierFlowDock

    widget = GlacierFlowDock(plugin.iface)
    widget.set_mode(getattr(widget, mode))
    yield widget
    widget.cancel()
    wait_for(widget)
    widget.release()
    widget.deleteLater()
