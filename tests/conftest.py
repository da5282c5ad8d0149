"""Test set-up: the repository is imported as the installed plugin package ``glacierflow``."""
from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

import pytest

# QGIS (started by pytest-qgis) needs no display; set before its application is created.
os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = ROOT.parent / "shared" / "data"


def _plugin_parent() -> Path:
    """A folder holding a ``glacierflow`` link to the repository, as QGIS's plugin folder would."""
    configured = os.environ.get("QGIS_PLUGINPATH")
    if configured and (Path(configured) / "glacierflow").resolve() == ROOT:
        return Path(configured)
    parent = Path(tempfile.mkdtemp(prefix="glacierflow-plugins-"))
    (parent / "glacierflow").symlink_to(ROOT)
    return parent


PLUGIN_PARENT = _plugin_parent()
if str(PLUGIN_PARENT) not in sys.path:
    sys.path.insert(0, str(PLUGIN_PARENT))


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
