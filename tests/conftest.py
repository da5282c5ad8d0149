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
