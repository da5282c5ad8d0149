"""The dependency check on start and the install dialog (run with harmless commands, never pip)."""
from __future__ import annotations

import os
import sys
import time

import pytest
from qgis.core import QgsApplication
from qgis.gui import QgsMessageBar
from qgis.PyQt.QtWidgets import QPushButton

from glacierflow.ui.dependencies import (
    DEPENDENCIES,
    Dependency,
    DependencyDialog,
    install_command,
    missing_dependencies,
    qgis_python,
)

FAKE = Dependency("glacierflow_test_no_such_module", "no-such-package", "nothing: a test of the check")
FAKE_CORE = Dependency("glacierflow_test_no_such_core", "no-such-core", "nothing: a test", needed_to_load=True)


def wait_for(dialog, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while dialog.is_running() and time.monotonic() < deadline:
        QgsApplication.processEvents()
        time.sleep(0.01)
    assert not dialog.is_running()


def test_check_finds_only_the_missing_package():
    assert missing_dependencies(DEPENDENCIES[:3]) == []  # numpy, cv2, onnxruntime are in the test venv
    optional = Dependency("glacierflow_test_optional", "opt", "x", required=False)
    assert missing_dependencies((optional, DEPENDENCIES[0], FAKE)) == [FAKE, optional]
    assert missing_dependencies((Dependency("os.path.nothing", "x", "y"),)) != []  # a module under a non-package


def test_qgis_python_is_found_beside_qgis_on_windows():
    windows = qgis_python("C:/OSGeo4W/bin/qgis-bin.exe", "C:/OSGeo4W/apps/Python39",
                          exists=lambda path: path == "C:/OSGeo4W/apps/Python39/python.exe")
    assert windows == "C:/OSGeo4W/apps/Python39/python.exe"
    mac = qgis_python("/Applications/QGIS.app/Contents/MacOS/QGIS", "/Applications/QGIS.app/Contents/Frameworks",
                      exists=lambda path: path == "/Applications/QGIS.app/Contents/MacOS/python3")
    assert mac == "/Applications/QGIS.app/Contents/MacOS/python3"
    assert qgis_python("/usr/bin/python3", "/usr") == "/usr/bin/python3"
    command = install_command("/usr/bin/python3", ["core", "earth_engine"], "/profile/glacierflow-packages/py311")
    assert command[:6] == ["/usr/bin/python3", command[1], "install", "--target", "/profile/glacierflow-packages/py311",
                           "--"]
    assert command[1].endswith(os.path.join("glacierflow", "core", "packages.py"))
    assert any(r.startswith("onnxruntime") for r in command[6:]) and any("earthengine" in r for r in command[6:])
    assert not any(r.startswith("numpy") for r in command)


def test_dialog_streams_the_log_without_blocking(qgis_app):
    script = "import time; print('Collecting no-such-package', flush=True); time.sleep(0.6); print('Installed')"
    dialog = DependencyDialog([FAKE], [sys.executable, "-c", script])
    assert "no-such-package" in dialog.explanation.text() and "Restart QGIS" in dialog.explanation.text()
    finished = []
    dialog.installFinished.connect(finished.append)
    started = time.monotonic()
    dialog.start_install()
    assert time.monotonic() - started < 0.4 and dialog.is_running()  # returned while the command sleeps
    assert not dialog.install_button.isEnabled()
    wait_for(dialog)
    log = dialog.log_view.toPlainText()
    assert "Collecting no-such-package" in log and "Installed" in log
    assert finished == [True] and dialog.exit_code == 0
    assert "restart QGIS" in dialog.status_label.text()


@pytest.mark.parametrize("command, code", [
    ([sys.executable, "-c", "import sys; print('ERROR: no matching distribution'); sys.exit(3)"], 3),
    (["/nonexistent/glacierflow/python", "-m", "pip"], -1),
])
def test_dialog_reports_a_failed_install(qgis_app, command, code):
    dialog = DependencyDialog([FAKE], command)
    dialog.start_install()
    wait_for(dialog)
    assert dialog.exit_code == code and "failed" in dialog.status_label.text()
    assert dialog.install_button.isEnabled()  # can be tried again


class BarIface:
    """The recording interface with a real message bar (pytest-qgis's mock has no widgets)."""

    def __init__(self, iface):
        self._iface = iface
        self.bar = QgsMessageBar()

    def __getattr__(self, name):
        return getattr(self._iface, name)

    def messageBar(self):  # noqa: N802
        return self.bar


def test_plugin_loads_without_a_package_and_offers_the_dialog(qgis_processing, recording_iface):
    from glacierflow.plugin import GlacierFlowPlugin

    iface = BarIface(recording_iface)
    plugin = GlacierFlowPlugin(iface, dependencies=DEPENDENCIES + (FAKE_CORE,))
    plugin.initGui()
    try:
        assert plugin.missing_required() == [FAKE_CORE] and plugin.provider is None
        item = plugin.message_item
        assert item is not None and "no-such-core" in item.text()
        install = [b for b in item.findChildren(QPushButton) if b.text() == "Install…"][0]
        install.click()
        assert plugin.dependency_dialog is not None and plugin.dependency_dialog.isVisible()
        plugin.dependency_dialog.close()
        plugin.panel_action.setChecked(True)  # the panel cannot open: the dialog explains instead
        assert plugin.dock is None and not plugin.panel_action.isChecked()
        assert plugin.dependency_dialog.isVisible()
    finally:
        plugin.unload()
    assert plugin.dependency_dialog is None and plugin.message_item is None


def test_a_missing_runtime_package_still_registers_the_algorithms(qgis_processing, recording_iface):
    """Without onnxruntime or OpenCV the classical algorithms still work: the provider loads, the install is
    offered, and only the steps that need the package fail (with how to install it)."""
    from qgis.core import QgsApplication

    from glacierflow.plugin import GlacierFlowPlugin

    iface = BarIface(recording_iface)
    plugin = GlacierFlowPlugin(iface, dependencies=DEPENDENCIES + (FAKE,))
    plugin.initGui()
    try:
        assert plugin.missing_required() == [FAKE] and plugin.missing_to_load() == []
        assert plugin.provider is not None
        assert QgsApplication.processingRegistry().algorithmById("glacierflow:velocity_pair") is not None
        assert plugin.message_item is not None and "no-such-package" in plugin.message_item.text()
    finally:
        plugin.unload()


def test_dialog_offers_the_optional_parts_as_separate_choices(qgis_app):
    from glacierflow.ui.dependencies import packages_folder

    earth_engine = next(d for d in DEPENDENCIES if d.module == "ee")
    dialog = DependencyDialog([earth_engine])
    assert set(dialog.choices) == {"core", "gpu", "earth_engine", "training"}
    assert dialog.chosen == ["earth_engine"] and dialog.command[4] == packages_folder()
    assert any("earthengine" in r for r in dialog.command) and not any("torch" in r for r in dialog.command)
    dialog.choices["gpu"].setChecked(True)
    assert any(r.startswith("onnxruntime-gpu") for r in dialog.command)
    for box in dialog.choices.values():
        box.setChecked(False)
    assert not dialog.install_button.isEnabled()
    assert packages_folder().startswith(QgsApplication.qgisSettingsDirPath())
