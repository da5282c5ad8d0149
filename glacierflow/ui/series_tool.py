"""Speed through time at a clicked point: a map tool and a window with the plot.

A click on the map runs ``glacierflow:velocity_time_series`` (through Processing, like every dock action)
on the dated velocity products loaded in the project (pairs and stacks, found by their bands and tags) and
shows its PNG with the values; the CSV and PNG stay in a temporary folder (their paths are in the log).
"""
from __future__ import annotations

import os
import tempfile
from typing import Any

from qgis.core import (
    QgsApplication,
    QgsCoordinateReferenceSystem,
    QgsPointXY,
    QgsProcessingContext,
    QgsProcessingFeedback,
    QgsProject,
    QgsRasterLayer,
)
from qgis.gui import QgsMapCanvas, QgsMapMouseEvent, QgsMapTool
from qgis.PyQt.QtCore import Qt, pyqtSignal
from qgis.PyQt.QtGui import QPixmap
from qgis.PyQt.QtWidgets import QDialog, QLabel, QPlainTextEdit, QVBoxLayout, QWidget

ALGORITHM_ID = "glacierflow:velocity_time_series"


class PointClickTool(QgsMapTool):
    """Emits ``pointClicked(point)`` (canvas CRS) on each left click; Esc or a right click ends it."""

    pointClicked = pyqtSignal(QgsPointXY)  # noqa: N815 (Qt naming)
    finished = pyqtSignal()

    def __init__(self, canvas: QgsMapCanvas) -> None:
        super().__init__(canvas)
        self.setCursor(Qt.CursorShape.CrossCursor)

    def canvasReleaseEvent(self, event: QgsMapMouseEvent) -> None:  # noqa: N802
        if event.button() == Qt.MouseButton.LeftButton:
            self.pointClicked.emit(QgsPointXY(event.mapPoint()))
        elif event.button() == Qt.MouseButton.RightButton:
            self.finished.emit()

    def keyPressEvent(self, event: Any) -> None:  # noqa: N802
        if event.key() == Qt.Key.Key_Escape:
            self.finished.emit()
        else:
            event.ignore()


def dated_velocity_layers(project: QgsProject | None = None) -> list[str]:
    """Files of the project's raster layers that are dated velocity products (pairs or stacks), each once."""
    from ..core.analysis.timeline import velocity_time_range
    from ..core.errors import GlacierFlowError

    project = project or QgsProject.instance()
    paths: list[str] = []
    for layer in project.mapLayers().values():
        if not isinstance(layer, QgsRasterLayer) or layer.providerType() != "gdal":
            continue
        path = layer.source()
        if path in paths or not os.path.isfile(path):
            continue
        try:
            if velocity_time_range(path) is not None:
                paths.append(path)
        except GlacierFlowError:
            continue
    return sorted(paths)


def series_at(point: QgsPointXY, crs: QgsCoordinateReferenceSystem, products: list[str],
              folder: str | None = None) -> dict[str, Any]:
    """Run the time-series algorithm at ``point`` (in ``crs``) over ``products``; its results (CSV, PNG).

    Raises:
        ValueError: no product, or the algorithm failed (the message says why).
    """
    if not products:
        raise ValueError("No dated velocity product is loaded: load pair or stack results first.")
    algorithm = QgsApplication.processingRegistry().createAlgorithmById(ALGORITHM_ID)
    if algorithm is None:
        raise ValueError(f"The algorithm {ALGORITHM_ID} is not available: enable the GlacierFlow plugin.")
    folder = folder or tempfile.mkdtemp(prefix="glacierflow_series_")
    stem = os.path.join(folder, f"series_{point.x():.0f}_{point.y():.0f}")
    parameters = {"INPUTS": products, "POINT": f"{point.x()!r},{point.y()!r} [{crs.authid() or crs.toWkt()}]",
                  "OUTPUT_CSV": stem + ".csv", "OUTPUT_PNG": stem + ".png"}
    context, feedback = QgsProcessingContext(), QgsProcessingFeedback()
    context.setProject(QgsProject.instance())
    results, ok = algorithm.run(parameters, context, feedback)
    if not ok:
        raise ValueError(f"The time series failed: {feedback.textLog().strip() or 'see the log'}")
    return results


class SeriesWindow(QDialog):
    """The plot of a time series and its table."""

    def __init__(self, png: str, csv_path: str, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("GlacierFlow: speed through time at the clicked point")
        layout = QVBoxLayout(self)
        self.picture = QLabel(self)
        self.picture.setPixmap(QPixmap(png))
        self.table = QPlainTextEdit(self)
        self.table.setReadOnly(True)
        with open(csv_path, encoding="utf-8") as handle:
            self.table.setPlainText(handle.read())
        layout.addWidget(self.picture)
        layout.addWidget(self.table)
