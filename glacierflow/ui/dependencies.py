"""Are the plugin's Python packages installed? If not, a dialog explains and can install them.

The check is cheap (``importlib.util.find_spec``: nothing is imported), so it runs on every
QGIS start. The installation (``core/packages.py`` run by QGIS's Python in a ``QProcess``: QGIS stays
responsive and pip's log streams into the dialog) puts the chosen parts into a plugin-local folder of the QGIS
profile (:func:`packages_folder`), never into QGIS's own Python, and never installs numpy.
"""
from __future__ import annotations

import importlib.util
import os
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Callable

from qgis.PyQt.QtCore import QProcess, pyqtSignal
from qgis.PyQt.QtWidgets import (
    QCheckBox,
    QDialog,
    QDialogButtonBox,
    QLabel,
    QPlainTextEdit,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from ..core import packages

PLUGIN_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
INSTALLER = packages.__file__


@dataclass(frozen=True)
class Dependency:
    """A Python package the plugin uses: the module it imports and the pip name that provides it.

    ``required``: the plugin offers to install it when missing. ``needed_to_load``: without it the
    algorithms and the panel cannot even be imported (numpy); the others are imported only by the
    steps that use them, which then say how to install them.
    """

    module: str
    package: str
    purpose: str
    required: bool = True
    needed_to_load: bool = False


DEPENDENCIES = (
    Dependency("numpy", "numpy", "arrays everywhere", needed_to_load=True),
    Dependency("cv2", "opencv-python-headless", "Farneback flow, image alignment and filters"),
    Dependency("onnxruntime", "onnxruntime", "the RAFT engine and the NDSI forecasters"),
    Dependency("ee", "earthengine-api", "the Google Earth Engine imagery source", required=False),
)


def is_installed(module: str) -> bool:
    """True when ``module`` can be imported (found on the path; it is not imported)."""
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):  # a broken parent package, or a module with __spec__ None
        return False


def missing_dependencies(dependencies: Sequence[Dependency] = DEPENDENCIES) -> list[Dependency]:
    """The ``dependencies`` that cannot be imported, required ones first."""
    missing = [d for d in dependencies if not is_installed(d.module)]
    return sorted(missing, key=lambda d: not d.required)


def qgis_python(executable: str = sys.executable, exec_prefix: str = sys.exec_prefix,
                exists: Callable[[str], bool] = os.path.isfile) -> str:
    """The Python interpreter of this QGIS, for ``python -m pip``.

    Inside QGIS on Windows (and in the macOS app) ``sys.executable`` is QGIS itself
    (``qgis-bin.exe``), so the python beside it or in ``sys.exec_prefix`` is taken.
    """
    name = os.path.basename(executable).lower()
    if name.startswith("python"):
        return executable
    folders = [os.path.dirname(executable), exec_prefix, os.path.join(exec_prefix, "bin")]
    names = ("python.exe", "python3.exe", "python3", "python")
    for folder in folders:
        for candidate in names:
            path = os.path.join(folder, candidate)
            if exists(path):
                return path
    return executable  # last resort: pip's own error will say what is wrong


def packages_folder() -> str:
    """The plugin-local package folder of this QGIS profile and Python version (created by an install)."""
    from qgis.core import QgsApplication

    base = os.path.join(QgsApplication.qgisSettingsDirPath(), "python", "glacierflow-packages")
    return packages.target_folder(base)


def default_components(missing: Sequence[Dependency]) -> list[str]:
    """The installer choices that cover ``missing``: the engines when OpenCV or onnxruntime lack, Earth Engine
    when its package lacks."""
    chosen = []
    if any(d.module in ("cv2", "onnxruntime") for d in missing):
        chosen.append("core")
    if any(d.module == "ee" for d in missing):
        chosen.append("earth_engine")
    return chosen or ["core"]


def install_command(python: str = "", components: Sequence[str] = ("core",), target: str = "") -> list[str]:
    """QGIS's Python running the installer for ``components`` into ``target`` (default: :func:`packages_folder`)."""
    return [python or qgis_python(), INSTALLER, "install", "--target", target or packages_folder(), "--",
            *packages.requirements_for(components)]


def describe_missing(missing: Sequence[Dependency]) -> str:
    """An HTML list of what is missing and what each package is for."""
    items = "".join(f"<li><b>{d.package}</b> (module <code>{d.module}</code>): {d.purpose}"
                    f"{'' if d.required else ' (optional)'}</li>" for d in missing)
    return f"<ul>{items}</ul>"


class DependencyDialog(QDialog):
    """Explains what is missing and runs ``command`` (the pip install) in a ``QProcess``.

    ``installFinished(ok)`` is emitted when the command ends. The command is injectable so
    that tests run a harmless one.
    """

    installFinished = pyqtSignal(bool)  # noqa: N815 (Qt naming)

    def __init__(self, missing: Sequence[Dependency], command: Sequence[str] | None = None,
                 parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("GlacierFlow: missing Python packages")
        self.resize(640, 520)
        self.fixed_command = list(command) if command else None
        self.choices: dict[str, QCheckBox] = {}
        self.chosen = default_components(missing)
        self.command = self.fixed_command or install_command(components=self.chosen)
        self.process: QProcess | None = None
        self.exit_code: int | None = None
        self._build(missing)

    def _build(self, missing: Sequence[Dependency]) -> None:
        required = [d for d in missing if d.required]
        intro = ("GlacierFlow cannot compute without these packages:" if required
                 else "Optional packages are missing; the rest of GlacierFlow works:")
        self.explanation = QLabel(
            f"<p>{intro}</p>{describe_missing(missing)}<p>The parts chosen below are installed into GlacierFlow's "
            "own folder of your QGIS profile; QGIS's Python and its numpy are left untouched. <b>Restart QGIS "
            "after the installation.</b> Where QGIS is shared or managed, your administrator can install "
            "them instead (OSGeo4W, the system package manager).</p>", self)
        self.explanation.setWordWrap(True)
        for name, label in packages.COMPONENTS.items():
            box = QCheckBox(label, self)
            box.setChecked(name in self.chosen)
            box.toggled.connect(self._update_command)
            self.choices[name] = box
        self.log_view = QPlainTextEdit(self)
        self.log_view.setReadOnly(True)
        self.status_label = QLabel("", self)
        self.install_button = QPushButton("Install", self)
        self.install_button.clicked.connect(self.start_install)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close, self)
        buttons.addButton(self.install_button, QDialogButtonBox.ButtonRole.ActionRole)
        buttons.rejected.connect(self.close)
        layout = QVBoxLayout(self)
        for widget in (self.explanation, *self.choices.values(), self.log_view, self.status_label, buttons):
            layout.addWidget(widget)

    def _update_command(self) -> None:
        """The command for the parts ticked now (a command given to the dialog stays as it is)."""
        self.chosen = [name for name, box in self.choices.items() if box.isChecked()]
        if self.fixed_command is None:
            self.command = install_command(components=self.chosen)
        self.install_button.setEnabled(bool(self.chosen) and not self.is_running())

    def is_running(self) -> bool:
        """True while the install command runs."""
        return self.process is not None

    def start_install(self) -> None:
        """Start the command in the background; its output streams into the log."""
        if self.is_running():
            return
        self.exit_code = None
        self.process = QProcess(self)
        self.process.setProcessChannelMode(QProcess.ProcessChannelMode.MergedChannels)
        self.process.readyReadStandardOutput.connect(self._read_output)
        self.process.finished.connect(self._on_finished)
        self.process.errorOccurred.connect(self._on_error)
        self.install_button.setEnabled(False)
        self.status_label.setText("Installing… QGIS stays usable meanwhile.")
        self.log_view.appendPlainText("$ " + " ".join(self.command))
        self.process.start(self.command[0], self.command[1:])

    def _read_output(self) -> None:
        if self.process is not None:
            text = bytes(self.process.readAllStandardOutput()).decode("utf-8", "replace")
            self.log_view.appendPlainText(text.rstrip("\n"))

    def _on_error(self, error: QProcess.ProcessError) -> None:
        if error == QProcess.ProcessError.FailedToStart:
            self.log_view.appendPlainText(f"Could not start {self.command[0]}: is it QGIS's Python?")
            self._end(-1)

    def _on_finished(self, exit_code: int, exit_status: QProcess.ExitStatus) -> None:
        self._read_output()
        crashed = exit_status != QProcess.ExitStatus.NormalExit
        self._end(-1 if crashed else exit_code)

    def _end(self, exit_code: int) -> None:
        if self.process is None:
            return
        self.process.deleteLater()
        self.process = None
        self.exit_code = exit_code
        ok = exit_code == 0
        self.status_label.setText("Installed: restart QGIS to use GlacierFlow." if ok
                                  else f"The installation failed (exit code {exit_code}): see the log above.")
        self.install_button.setEnabled(not ok)
        self.installFinished.emit(ok)

    def closeEvent(self, event) -> None:  # noqa: N802
        """Closing the dialog stops a running install (pip may then need to be run again)."""
        if self.process is not None:
            self.process.kill()
            self.process.waitForFinished(5000)
        super().closeEvent(event)
