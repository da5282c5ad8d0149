"""Test set-up shared by tests/unit (no QGIS) and tests/qgis: real data, the plugin as QGIS loads it."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

# QGIS (started by pytest-qgis) needs no display; set before its application is created.
os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = ROOT.parent / "shared" / "data"


def _check_plugin_path() -> None:
    """``glacierflow`` must be this checkout's package (pyproject's pythonpath puts the root first)."""
    import glacierflow

    found = Path(glacierflow.__file__).resolve().parent
    assert found == ROOT / "glacierflow", f"glacierflow imported from {found}, not from {ROOT}"


_check_plugin_path()


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """``../shared/data``; tests that need it skip with the reason when it is absent."""
    if not SHARED_DATA.is_dir():
        pytest.skip("../shared/data is absent: real-imagery tests need it beside the repository")
    return SHARED_DATA


class RecordingIface:
    """pytest-qgis's interface plus the calls it lacks (dock removal, raster menu), recorded."""

    def __init__(self, iface):
        self._iface = iface
        self.menu, self.toolbar, self.docks = [], [], []

    def __getattr__(self, name):
        return getattr(self._iface, name)

    def addPluginToRasterMenu(self, name, action):  # noqa: N802
        self.menu.append(action)

    def removePluginRasterMenu(self, name, action):  # noqa: N802
        self.menu.remove(action)

    def addToolBarIcon(self, action):  # noqa: N802
        self.toolbar.append(action)

    def removeToolBarIcon(self, action):  # noqa: N802
        self.toolbar.remove(action)

    def addDockWidget(self, area, dock):  # noqa: N802
        self.docks.append(dock)
        self.mainWindow().addDockWidget(area, dock)

    def removeDockWidget(self, dock):  # noqa: N802
        self.docks.remove(dock)
        self.mainWindow().removeDockWidget(dock)


@pytest.fixture(scope="module")
def recording_iface(qgis_iface) -> RecordingIface:
    """QGIS's interface for plugin tests, recording menu, toolbar and dock calls (no desktop here)."""
    return RecordingIface(qgis_iface)


@pytest.fixture(scope="module")
def plugin(qgis_processing, recording_iface):
    """The plugin loaded as QGIS loads it (GUI and Processing), unloaded after the module."""
    import glacierflow

    loaded = glacierflow.classFactory(recording_iface)
    loaded.initGui()
    yield loaded
    loaded.unload()
