"""The GlacierFlow dock: four modes, "Image pair" (``glacierflow:velocity_pair``), "Area"
(``glacierflow:annual_velocity``), "Region" (``glacierflow:regional_velocity``, many glaciers, on Dask) and
"Forecast" (``glacierflow:ndsi_series`` then ``glacierflow:forecast_ndsi``), run in the background; the
results are loaded styled.

The run is the Processing algorithms themselves (the same result as the toolbox and
``qgis_process``), queued in QGIS's task manager so QGIS never freezes.
"""
from __future__ import annotations

import html
import os
import time
from typing import Any

from qgis.core import QgsApplication, QgsSettings
from qgis.gui import QgsDockWidget
from qgis.PyQt.QtCore import pyqtSignal
from qgis.PyQt.QtWidgets import (
    QDialog,
    QFrame,
    QHBoxLayout,
    QLabel,
    QPlainTextEdit,
    QProgressBar,
    QPushButton,
    QScrollArea,
    QTabWidget,
    QVBoxLayout,
    QWidget,
)

from .area_mode import AreaMode
from .forecast_layers import ForecastLayers
from .forecast_mode import ForecastMode
from .layers import ResultLayers
from .modes import DockMode
from .pair_mode import PairMode
from .region_mode import RegionLayers, RegionMode
from .task import LogFeedback
from .widgets import HelpDialog

SETTINGS = "glacierflow/dock/"


class GlacierFlowDock(QgsDockWidget):
    """The panel. ``run()`` starts the current mode's job; ``runFinished(ok)`` is emitted when it ends."""

    runFinished = pyqtSignal(bool)  # noqa: N815 (Qt naming)

    def __init__(self, iface: Any = None, parent: QWidget | None = None) -> None:
        super().__init__("GlacierFlow", parent)
        self.setObjectName("GlacierFlowDock")
        self.iface = iface
        self.results: ResultLayers | RegionLayers | ForecastLayers | None = None
        self.status = "Ready"
        self._task = None
        self._context = None
        self._feedback: LogFeedback | None = None
        self._running: DockMode | None = None
        self._parameters: dict[str, Any] = {}
        self._started = 0.0
        self._help: QDialog | None = None
        self._series_tool: Any = None
        self._series_window: QDialog | None = None
        self._build()
        titles = [self.modes.tabText(index) for index in range(self.modes.count())]
        remembered = str(QgsSettings().value(SETTINGS + "mode_title", ""))  # by title: tabs may be added
        self.modes.setCurrentIndex(titles.index(remembered) if remembered in titles else 0)
        self.modes.currentChanged.connect(
            lambda index: QgsSettings().setValue(SETTINGS + "mode_title", self.modes.tabText(index)))
        self.pair.image_a.fileChosen.connect(self._set_last_folder)
        self.pair.image_b.fileChosen.connect(self._set_last_folder)
        for output in (self.pair.output, self.area.output):
            output.fileChanged.connect(lambda path: self._set_last_folder(os.path.dirname(path)))
        self.forecast.output.fileChanged.connect(self._set_last_folder)  # a folder itself
        self._set_busy(False)

    # ----------------------------------------------------------------- widgets
    def _build(self) -> None:
        body = QWidget(self)
        layout = QVBoxLayout(body)
        self.pair = PairMode(self.last_folder, body)
        self.area = AreaMode(self.last_folder, self._canvas, body)
        self.region = RegionMode(self.last_folder, self.area, body)
        self.forecast = ForecastMode(self.last_folder, self.area, body)
        self.modes = QTabWidget(body)
        self._pages: dict[int, QScrollArea] = {}
        for mode in (self.pair, self.area, self.region, self.forecast):
            # A scroll area per tab: the dock can be narrow (QGIS users dock it beside the map) without
            # the widest tab forcing its width on the map canvas.
            page = QScrollArea(self.modes)
            page.setWidgetResizable(True)
            page.setFrameShape(QFrame.Shape.NoFrame)
            page.setWidget(mode)
            self._pages[id(mode)] = page
            self.modes.addTab(page, mode.title)
        layout.addWidget(self.modes)
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

    def _buttons(self) -> QHBoxLayout:
        row = QHBoxLayout()
        self.run_button = QPushButton("Run", self)
        self.cancel_button = QPushButton("Cancel", self)
        self.help_button = QPushButton("Help", self)
        self.help_button.setToolTip("The current mode's algorithm: inputs, units, outputs and papers")
        self.series_button = QPushButton("Speed at a click", self)
        self.series_button.setCheckable(True)
        self.series_button.setToolTip("Click on the map: speed through time there, from the velocity results "
                                      "loaded in the project (right click or Esc ends)")
        self.series_button.toggled.connect(self._toggle_series_tool)
        self.run_button.clicked.connect(self.run)
        self.cancel_button.clicked.connect(self.cancel)
        self.help_button.clicked.connect(self.show_help)
        for button in (self.run_button, self.cancel_button, self.help_button, self.series_button):
            row.addWidget(button)
        return row

    # ------------------------------------------------------ time series at a click
    def _toggle_series_tool(self, on: bool) -> None:
        from .series_tool import PointClickTool

        canvas = self._canvas()
        if canvas is None:
            return
        if on:
            self._series_tool = PointClickTool(canvas)
            self._series_tool.pointClicked.connect(self.show_series_at)
            self._series_tool.finished.connect(lambda: self.series_button.setChecked(False))
            canvas.setMapTool(self._series_tool)
        elif self._series_tool is not None:
            canvas.unsetMapTool(self._series_tool)
            self._series_tool = None

    def show_series_at(self, point: Any, crs: Any = None, products: list[str] | None = None) -> Any:
        """Plot the speed through time at ``point`` (canvas CRS unless ``crs``) from ``products`` (default:
        the dated velocity results loaded in the project) in a window; returns it, or None with the reason
        in the log."""
        from .series_tool import SeriesWindow, dated_velocity_layers, series_at

        canvas = self._canvas()
        crs = crs or (canvas.mapSettings().destinationCrs() if canvas is not None else None)
        try:
            results = series_at(point, crs, dated_velocity_layers() if products is None else products)
        except ValueError as error:
            self.log(str(error), True)
            return None
        self.log(f"Speed through time at {point.x():.1f}, {point.y():.1f}: {results['OUTPUT_CSV']}")
        self._series_window = SeriesWindow(results["OUTPUT_PNG"], results["OUTPUT_CSV"], self)
        self._series_window.show()
        return self._series_window

    def _canvas(self) -> Any:
        return self.iface.mapCanvas() if self.iface is not None and hasattr(self.iface, "mapCanvas") else None

    def current_mode(self) -> DockMode:
        """The mode of the visible tab."""
        return self.modes.currentWidget().widget()

    def set_mode(self, mode: DockMode) -> None:
        """Show ``mode``'s tab (``dock.pair``, ``dock.area``, ``dock.region`` or ``dock.forecast``)."""
        self.modes.setCurrentWidget(self._pages[id(mode)])

    # ---------------------------------------------------------------- settings
    def last_folder(self) -> str:
        """The folder of the last file chosen (images or output)."""
        return str(QgsSettings().value(SETTINGS + "last_folder", os.path.expanduser("~")))

    def _set_last_folder(self, folder: str) -> None:
        if folder:
            QgsSettings().setValue(SETTINGS + "last_folder", folder)
            for output in (self.pair.output, self.area.output):
                output.setDefaultRoot(folder)

    def _save_settings(self) -> None:
        self.pair.save_settings()
        self.area.save_settings()
        self.region.save_settings()
        self.forecast.save_settings()

    # --------------------------------------------------------------------- run
    def is_running(self) -> bool:
        """True while a job is queued or running."""
        return self._feedback is not None

    def run(self) -> bool:
        """Start the current mode's job in the background; False (with the reason in the log) if it cannot."""
        if self.is_running():
            return False
        mode = self.current_mode()
        try:
            parameters = mode.parameters()
            self._feedback = LogFeedback()
            self._feedback.message.connect(self.log)
            self._feedback.progressChanged.connect(self._on_progress)
            self.log(mode.describe(parameters))  # before the job's own lines
            self._task, self._context = mode.start(parameters, self._feedback, self._on_executed)
        except ValueError as error:
            self._feedback = None
            self.log(str(error), True)
            self._set_status("Not started")
            return False
        self._running, self._parameters, self._started = mode, parameters, time.monotonic()
        self.progress.setValue(0)
        self._set_status("Running…")
        self._set_busy(True)
        return True

    def cancel(self) -> None:
        """Ask the running job to stop; the algorithm stops within one tile and writes nothing (a chain
        also removes what its finished steps wrote)."""
        if self._feedback is not None and not self._feedback.isCanceled():
            self.log("Cancelling…")
            self._feedback.cancel()

    def _on_progress(self, percent: float) -> None:
        self.progress.setValue(int(percent))

    def _on_executed(self, ok: bool, results: dict[str, Any]) -> None:
        cancelled = self._feedback is not None and self._feedback.isCanceled()
        self._task, self._context, self._feedback = None, None, None
        self._set_busy(False)
        if ok and not cancelled:
            try:
                self._load(results)
            except (OSError, ValueError, RuntimeError) as error:  # the product exists; only its display failed
                self.log(f"The result was written but could not be loaded: {error}", True)
                self._set_status("Done (not loaded)")
        elif cancelled:
            self.log(f"Cancelled: {getattr(self._running, 'cancelled_leaves', 'no output was written.')}", True)
            self._set_status("Cancelled")
        else:
            self.log("Failed: see the messages above.", True)
            self._set_status("Failed")
        self.runFinished.emit(bool(ok and not cancelled))

    def _load(self, results: dict[str, Any]) -> None:
        self.results = self._running.load(results, self._parameters)
        self.progress.setValue(100)
        lines, main_layer = self._running.report(self.results, results, time.monotonic() - self._started)
        for line in lines:
            self.log(line)
        self._set_status("Done")
        if self.iface is not None and hasattr(self.iface, "setActiveLayer"):
            self.iface.setActiveLayer(main_layer)
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
        """Show the current mode's algorithm help (inputs, units, outputs, papers) in a non-modal window."""
        algorithm_id = self.current_mode().algorithm_id
        algorithm = QgsApplication.processingRegistry().algorithmById(algorithm_id)
        if algorithm is None:
            self.log(f"The algorithm {algorithm_id} is not available: enable the GlacierFlow plugin.", True)
            return
        self._help = HelpDialog(algorithm_id, algorithm.displayName(), algorithm.shortHelpString(),
                                algorithm.helpUrl(), self)
        self._help.show()

    def closeEvent(self, event) -> None:  # noqa: N802
        """Settings are saved as they change; a closed panel keeps its job running but stops drawing."""
        self._save_settings()
        self.area.stop_drawing()
        super().closeEvent(event)

    def release(self) -> None:
        """Cancel a running job and drop the map tool: the plugin is unloading."""
        self.cancel()
        self.area.release()
        self.series_button.setChecked(False)
