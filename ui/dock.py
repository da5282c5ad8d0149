"""The GlacierFlow dock: choose a pair, run ``glacierflow:velocity_pair`` in the background, see the result.

The run is the Processing algorithm itself (the same result as the toolbox and
``qgis_process``), queued in QGIS's task manager so QGIS never freezes.
"""
from __future__ import annotations

import html
import os
import time
from typing import Any, Dict, Optional

from qgis.core import (
    QgsApplication,
    QgsMapLayerProxyModel,
    QgsProcessingUtils,
    QgsProject,
    QgsSettings,
    QgsVectorFileWriter,
    QgsVectorLayer,
)
from qgis.gui import QgsDockWidget, QgsFileWidget, QgsMapLayerComboBox
from qgis.PyQt.QtCore import Qt, pyqtSignal
from qgis.PyQt.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPlainTextEdit,
    QProgressBar,
    QPushButton,
    QSpinBox,
    QTextBrowser,
    QVBoxLayout,
    QWidget,
)

from ..core.flow import ENGINE_NAMES, default_engine_name, runnable_engine_names
from .layers import ResultLayers, load_results
from .task import LogFeedback, start_algorithm
from .widgets import RasterPicker

ALGORITHM_ID = "glacierflow:velocity_pair"
SETTINGS = "glacierflow/dock/"
DATE_HINT = "e.g. 2021-08-01; empty: read from the file"


class GlacierFlowDock(QgsDockWidget):
    """The panel. ``run()`` starts a background job; ``runFinished(ok)`` is emitted when it ends."""

    runFinished = pyqtSignal(bool)  # noqa: N815 (Qt naming)

    def __init__(self, iface: Any = None, parent: Optional[QWidget] = None) -> None:
        super().__init__("GlacierFlow", parent)
        self.setObjectName("GlacierFlowDock")
        self.iface = iface
        self.results: Optional[ResultLayers] = None
        self.status = "Ready"
        self._task = None
        self._context = None
        self._feedback: Optional[LogFeedback] = None
        self._engine = ""
        self._output = ""
        self._started = 0.0
        self._help: Optional[QDialog] = None
        self._build()
        self._restore_settings()
        self._connect_settings()
        self._set_busy(False)

    # ----------------------------------------------------------------- widgets
    def _build(self) -> None:
        body = QWidget(self)
        layout = QVBoxLayout(body)
        layout.addLayout(self._inputs_form())
        layout.addLayout(self._options_form())
        layout.addLayout(self._buttons())
        self.progress = QProgressBar(body)
        self.progress.setRange(0, 100)
        self.status_label = QLabel(self.status, body)
        self.log_view = QPlainTextEdit(body)
        self.log_view.setReadOnly(True)
        self.log_view.setMaximumBlockCount(5000)
        for widget in (self.progress, self.status_label, self.log_view):
            layout.addWidget(widget)
        self.setWidget(body)

    def _inputs_form(self) -> QFormLayout:
        form = QFormLayout()
        self.image_a = RasterPicker(self.last_folder, self)
        self.image_b = RasterPicker(self.last_folder, self)
        self.date_a = self._date_edit()
        self.date_b = self._date_edit()
        self.outline = QgsMapLayerComboBox(self)
        self.outline.setFilters(QgsMapLayerProxyModel.Filter.PolygonLayer)
        self.outline.setAllowEmptyLayer(True)
        self.outline.setLayer(None)
        self.selected_only = QCheckBox("Selected polygons only", self)
        form.addRow("Image A (earlier)", self.image_a)
        form.addRow("Image B (later)", self.image_b)
        form.addRow("Date A", self.date_a)
        form.addRow("Date B", self.date_b)
        form.addRow("Glacier outline", self.outline)
        form.addRow("", self.selected_only)
        return form

    def _date_edit(self) -> QLineEdit:
        edit = QLineEdit(self)
        edit.setPlaceholderText(DATE_HINT)
        edit.setToolTip("Acquisition time, ISO-8601 (2021-08-01 or 2021-08-01T10:30:21Z)")
        return edit

    def _options_form(self) -> QFormLayout:
        form = QFormLayout()
        self.engine = QComboBox(self)
        runnable = runnable_engine_names()
        for name in ENGINE_NAMES:
            self.engine.addItem(name)
            if name not in runnable:
                self.engine.model().item(self.engine.count() - 1).setEnabled(False)
                self.engine.setItemData(self.engine.count() - 1, "Needs a model file in models/",
                                         Qt.ItemDataRole.ToolTipRole)
        self.tile_size = self._spin(32, 4096, 256, 32)
        self.overlap = self._spin(0, 2048, 64, 16)
        self.output = QgsFileWidget(self)
        self.output.setStorageMode(QgsFileWidget.StorageMode.SaveFile)
        self.output.setFilter("GeoTIFF (*.tif *.tiff)")
        self.output.lineEdit().setPlaceholderText("[Save to a temporary file]")
        form.addRow("Engine", self.engine)
        form.addRow("Tile size (px)", self.tile_size)
        form.addRow("Tile overlap (px)", self.overlap)
        form.addRow("Output", self.output)
        return form

    def _spin(self, low: int, high: int, value: int, step: int) -> QSpinBox:
        spin = QSpinBox(self)
        spin.setRange(low, high)
        spin.setSingleStep(step)
        spin.setValue(value)
        return spin

    def _buttons(self) -> QHBoxLayout:
        row = QHBoxLayout()
        self.run_button = QPushButton("Run", self)
        self.cancel_button = QPushButton("Cancel", self)
        self.help_button = QPushButton("Help", self)
        self.run_button.clicked.connect(self.run)
        self.cancel_button.clicked.connect(self.cancel)
        self.help_button.clicked.connect(self.show_help)
        for button in (self.run_button, self.cancel_button, self.help_button):
            row.addWidget(button)
        return row

    # ---------------------------------------------------------------- settings
    def last_folder(self) -> str:
        """The folder of the last file chosen (images or output)."""
        return str(QgsSettings().value(SETTINGS + "last_folder", os.path.expanduser("~")))

    def _set_last_folder(self, folder: str) -> None:
        if folder:
            QgsSettings().setValue(SETTINGS + "last_folder", folder)
            self.output.setDefaultRoot(folder)

    def _restore_settings(self) -> None:
        settings = QgsSettings()
        engine = str(settings.value(SETTINGS + "engine", default_engine_name()))
        if engine not in runnable_engine_names():  # e.g. raft chosen before its model was removed
            engine = default_engine_name()
        self.engine.setCurrentIndex(self.engine.findText(engine))
        self.tile_size.setValue(int(settings.value(SETTINGS + "tile_size", 256)))
        self.overlap.setValue(int(settings.value(SETTINGS + "overlap", 64)))
        self.output.setDefaultRoot(self.last_folder())

    def _connect_settings(self) -> None:
        self.engine.currentTextChanged.connect(self._save_settings)
        self.tile_size.valueChanged.connect(self._save_settings)
        self.overlap.valueChanged.connect(self._save_settings)
        self.image_a.fileChosen.connect(self._set_last_folder)
        self.image_b.fileChosen.connect(self._set_last_folder)
        self.output.fileChanged.connect(lambda path: self._set_last_folder(os.path.dirname(path)))

    def _save_settings(self) -> None:
        settings = QgsSettings()
        settings.setValue(SETTINGS + "engine", self.engine.currentText())
        settings.setValue(SETTINGS + "tile_size", self.tile_size.value())
        settings.setValue(SETTINGS + "overlap", self.overlap.value())

    # -------------------------------------------------------------- parameters
    def parameters(self) -> Dict[str, Any]:
        """The algorithm's parameters from the panel.

        Raises:
            ValueError: something the user must fix first (the message says what).
        """
        image_a, image_b = self.image_a.source(), self.image_b.source()
        if not image_a or not image_b:
            raise ValueError("Choose image A (earlier) and image B (later).")
        parameters: Dict[str, Any] = {
            "IMAGE_A": image_a, "IMAGE_B": image_b,
            "DATE_A": self.date_a.text().strip(), "DATE_B": self.date_b.text().strip(),
            "ENGINE": self.engine.currentText(), "TILE_SIZE": self.tile_size.value(),
            "OVERLAP": self.overlap.value(), "OUTPUT": self._output_path(),
        }
        outline = self._outline_source()
        if outline:
            parameters["OUTLINES"] = outline
        return parameters

    def _output_path(self) -> str:
        path = self.output.filePath().strip()
        if not path:
            return QgsProcessingUtils.generateTempFilename(f"velocity_{self.engine.currentText()}.tif")
        return path if path.lower().endswith((".tif", ".tiff")) else path + ".tif"

    def _outline_source(self) -> str:
        """A file the worker thread can open: the layer's own file, or its (selected) polygons exported."""
        layer = self.outline.currentLayer()
        if not isinstance(layer, QgsVectorLayer):
            return ""
        if self.selected_only.isChecked():
            if layer.selectedFeatureCount() == 0:
                raise ValueError(f"No polygon of '{layer.name()}' is selected: select the glacier, "
                                 "or untick 'Selected polygons only'.")
            return export_polygons(layer, selected_only=True)
        return layer.source() if layer.providerType() == "ogr" else export_polygons(layer, False)

    # --------------------------------------------------------------------- run
    def is_running(self) -> bool:
        """True while a job is queued or running."""
        return self._feedback is not None

    def run(self) -> bool:
        """Start the job in the background; False (with the reason in the log) if it cannot start."""
        if self.is_running():
            return False
        try:
            parameters = self.parameters()
            self._feedback = LogFeedback()
            self._feedback.message.connect(self.log)
            self._feedback.progressChanged.connect(self._on_progress)
            self._task, self._context = start_algorithm(ALGORITHM_ID, parameters, self._feedback,
                                                        self._on_executed)
        except ValueError as error:
            self._feedback = None
            self.log(str(error), True)
            self._set_status("Not started")
            return False
        self._engine, self._output, self._started = parameters["ENGINE"], parameters["OUTPUT"], time.monotonic()
        self.progress.setValue(0)
        self.log(f"Started {parameters['ENGINE']} on {os.path.basename(parameters['IMAGE_A'])} and "
                 f"{os.path.basename(parameters['IMAGE_B'])} -> {parameters['OUTPUT']}")
        self._set_status("Running…")
        self._set_busy(True)
        return True

    def cancel(self) -> None:
        """Ask the running job to stop; the algorithm stops within one tile and writes nothing."""
        if self._feedback is not None and not self._feedback.isCanceled():
            self.log("Cancelling…")
            self._feedback.cancel()

    def _on_progress(self, percent: float) -> None:
        self.progress.setValue(int(percent))

    def _on_executed(self, ok: bool, results: Dict[str, Any]) -> None:
        cancelled = self._feedback is not None and self._feedback.isCanceled()
        self._task, self._context, self._feedback = None, None, None
        self._set_busy(False)
        if ok and not cancelled:
            self._load(results.get("OUTPUT", self._output))
        elif cancelled:
            self.log("Cancelled: no output was written.", True)
            self._set_status("Cancelled")
        else:
            self.log("Failed: see the messages above.", True)
            self._set_status("Failed")
        self.runFinished.emit(bool(ok and not cancelled))

    def _load(self, output: str) -> None:
        self.results = load_results(output, self._engine)
        self.progress.setValue(100)
        self.log(f"Result ({time.monotonic() - self._started:.1f} s): {output}")
        self.log(f"Loaded '{self.results.group.name()}': speed, {self.results.arrows.featureCount()} "
                 "direction arrows, untrusted areas (hidden).")
        self._set_status("Done")
        if self.iface is not None and hasattr(self.iface, "setActiveLayer"):
            self.iface.setActiveLayer(self.results.speed)
            self.iface.zoomToActiveLayer()

    def _set_busy(self, busy: bool) -> None:
        self.run_button.setEnabled(not busy)
        self.cancel_button.setEnabled(busy)

    def _set_status(self, status: str) -> None:
        self.status = status
        self.status_label.setText(status)

    def log(self, text: str, error: bool = False) -> None:
        """Append ``text`` to the panel's log (errors in red)."""
        escaped = html.escape(text).replace("\n", "<br>")
        self.log_view.appendHtml(f'<span style="color:#c0392b">{escaped}</span>' if error else escaped)

    # -------------------------------------------------------------------- help
    def show_help(self) -> None:
        """Show the algorithm's help (inputs, units, outputs, papers) in a non-modal window."""
        algorithm = QgsApplication.processingRegistry().algorithmById(ALGORITHM_ID)
        if algorithm is None:
            self.log(f"The algorithm {ALGORITHM_ID} is not available: enable the GlacierFlow plugin.", True)
            return
        self._help = HelpDialog(algorithm.displayName(), algorithm.shortHelpString(), self)
        self._help.show()

    def closeEvent(self, event) -> None:  # noqa: N802
        """Settings are saved as they change; a closed panel keeps its job running."""
        self._save_settings()
        super().closeEvent(event)


class HelpDialog(QDialog):
    """The algorithm's help text, with a button to open the full Processing dialog."""

    def __init__(self, title: str, help_html: str, parent: Optional[QWidget] = None) -> None:
        super().__init__(parent)
        self.setWindowTitle(f"GlacierFlow help: {title}")
        self.resize(560, 620)
        self.browser = QTextBrowser(self)
        self.browser.setOpenExternalLinks(True)
        self.browser.setHtml(f"<h2>{html.escape(title)}</h2>{help_html}")
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close, self)
        toolbox = buttons.addButton("Open in Processing…", QDialogButtonBox.ButtonRole.ActionRole)
        toolbox.clicked.connect(self._open_algorithm)
        buttons.rejected.connect(self.close)
        layout = QVBoxLayout(self)
        layout.addWidget(self.browser)
        layout.addWidget(buttons)

    @staticmethod
    def _open_algorithm() -> None:
        import processing

        processing.execAlgorithmDialog(ALGORITHM_ID)


def export_polygons(layer: QgsVectorLayer, selected_only: bool) -> str:
    """Write ``layer``'s (selected) polygons to a temporary GeoPackage; returns its path.

    Memory layers and selections live in the main thread; the worker reads the file.
    """
    path = QgsProcessingUtils.generateTempFilename("glacier_outline.gpkg")
    options = QgsVectorFileWriter.SaveVectorOptions()
    options.driverName = "GPKG"
    options.onlySelectedFeatures = selected_only
    result = QgsVectorFileWriter.writeAsVectorFormatV3(
        layer, path, QgsProject.instance().transformContext(), options)
    if result[0] != QgsVectorFileWriter.WriterError.NoError:
        raise ValueError(f"Could not export the outline '{layer.name()}': {result[1]}")
    return path
