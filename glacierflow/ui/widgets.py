"""Small widgets of the dock: a raster picker that takes project layers or files, the engine choice,
the output file, and the help window."""
from __future__ import annotations

import html
import os
from typing import Callable

from qgis.core import QgsMapLayerProxyModel, QgsRasterLayer, QgsVectorLayer
from qgis.gui import QgsFileWidget, QgsMapLayerComboBox
from qgis.PyQt.QtCore import Qt, pyqtSignal
from qgis.PyQt.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QSpinBox,
    QTextBrowser,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from .vector_export import polygon_file

RASTER_FILTER = "Rasters (*.tif *.tiff *.TIF *.TIFF *.jp2 *.vrt *.img);;All files (*)"
DRAW_TIP = ("Draw the glacier area on the map: left click adds a vertex, right click or double click finishes, "
            "Backspace removes the last vertex, Esc cancels")


def polygon_layer_combo(parent: QWidget) -> QgsMapLayerComboBox:
    """A combo of the project's polygon layers, empty by default."""
    combo = QgsMapLayerComboBox(parent)
    combo.setFilters(QgsMapLayerProxyModel.Filter.PolygonLayer)
    combo.setAllowEmptyLayer(True)
    combo.setLayer(None)
    return combo


class AreaPicker:
    """The glacier area of a tab: a polygon layer, a checkable Draw button and "Selected polygons only"."""

    def __init__(self, parent: QWidget, on_draw: Callable[[bool], None]) -> None:
        self.layer = polygon_layer_combo(parent)
        self.draw_button = QToolButton(parent)
        self.draw_button.setText("Draw")
        self.draw_button.setCheckable(True)
        self.draw_button.setToolTip(DRAW_TIP)
        self.draw_button.toggled.connect(on_draw)
        self.selected_only = QCheckBox("Selected polygons only", parent)

    def add_rows(self, form: QFormLayout) -> None:
        """Put the area rows into ``form``."""
        row = QHBoxLayout()
        row.addWidget(self.layer, 1)
        row.addWidget(self.draw_button)
        form.addRow("Area (polygon)", row)
        form.addRow("", self.selected_only)

    def choose(self, layer: QgsVectorLayer) -> None:
        """Make ``layer`` (e.g. the one just drawn) the area, all of its polygons."""
        self.layer.setLayer(layer)
        self.selected_only.setChecked(False)

    def polygon_file(self) -> str:
        """The chosen area as a vector file for Processing (selected polygons only when ticked)."""
        layer = self.layer.currentLayer()
        if not isinstance(layer, QgsVectorLayer):
            raise ValueError("Draw the glacier area on the map (Draw), or choose a polygon layer.")
        return polygon_file(layer, self.selected_only.isChecked())


class RasterPicker(QWidget):
    """A raster layer combo; '…' adds image files as extra entries (they are not loaded)."""

    fileChosen = pyqtSignal(str)  # noqa: N815 (Qt naming): the folder of a newly chosen file

    def __init__(self, folder: Callable[[], str], parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._folder = folder
        self.combo = QgsMapLayerComboBox(self)
        self.combo.setFilters(QgsMapLayerProxyModel.Filter.RasterLayer)
        self.combo.setAllowEmptyLayer(True)
        self.combo.setLayer(None)
        button = QToolButton(self)
        button.setText("…")
        button.setToolTip("Choose an image file")
        button.clicked.connect(self._browse)
        layout = QHBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.combo, 1)
        layout.addWidget(button)

    def _browse(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Choose an image", self._folder(), RASTER_FILTER)
        if path:
            self.set_path(path)
            self.fileChosen.emit(os.path.dirname(path))

    def set_path(self, path: str) -> None:
        """Offer the file ``path`` as an entry and select it."""
        items = [item for item in self.combo.additionalItems() if item != path]
        self.combo.setAdditionalItems(items + [path])
        self.combo.setCurrentIndex(self.combo.findText(path))

    def source(self) -> str:
        """The chosen file path; '' when nothing is chosen.

        Raises:
            ValueError: the chosen layer is not a file GDAL can read (a WMS, for example).
        """
        layer = self.combo.currentLayer()
        if isinstance(layer, QgsRasterLayer):
            if layer.providerType() != "gdal":
                raise ValueError(f"'{layer.name()}' is not a file-based raster: save it as GeoTIFF first.")
            return layer.source()
        text = self.combo.currentText()
        return text if text in self.combo.additionalItems() else ""


def engine_combo(parent: QWidget) -> QComboBox:
    """The optical-flow engines; those that cannot run here (no model file) are greyed out."""
    from ..core.velocity.flow import ENGINE_NAMES, runnable_engine_names

    combo = QComboBox(parent)
    runnable = runnable_engine_names()
    for name in ENGINE_NAMES:
        combo.addItem(name)
        if name not in runnable:
            combo.model().item(combo.count() - 1).setEnabled(False)
            combo.setItemData(combo.count() - 1, "Needs a RAFT model file", Qt.ItemDataRole.ToolTipRole)
    return combo


def restore_engine(combo: QComboBox, engine: str) -> None:
    """Select ``engine`` when it can run here, else the default engine."""
    from ..core.velocity.flow import default_engine_name, runnable_engine_names

    if engine not in runnable_engine_names():  # e.g. raft chosen before its model was removed
        engine = default_engine_name()
    combo.setCurrentIndex(combo.findText(engine))


def output_widget(parent: QWidget, file_filter: str = "GeoTIFF (*.tif *.tiff)") -> QgsFileWidget:
    """A 'save as' file widget; empty means a temporary file."""
    widget = QgsFileWidget(parent)
    widget.setStorageMode(QgsFileWidget.StorageMode.SaveFile)
    widget.setFilter(file_filter)
    widget.lineEdit().setPlaceholderText("[Save to a temporary file]")
    return widget


def spin_box(parent: QWidget, low: int, high: int, value: int, step: int = 1) -> QSpinBox:
    """An integer spin box."""
    spin = QSpinBox(parent)
    spin.setRange(low, high)
    spin.setSingleStep(step)
    spin.setValue(value)
    return spin


class HelpDialog(QDialog):
    """An algorithm's help text (inputs, units, outputs, papers), with a button to open its Processing dialog."""

    def __init__(self, algorithm_id: str, title: str, help_html: str, help_url: str = "",
                 parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.algorithm_id = algorithm_id
        self.setWindowTitle(f"GlacierFlow help: {title}")
        self.resize(560, 620)
        self.browser = QTextBrowser(self)
        self.browser.setOpenExternalLinks(True)
        link = f'<p><a href="{html.escape(help_url)}">Full documentation</a></p>' if help_url else ""
        self.browser.setHtml(f"<h2>{html.escape(title)}</h2>{help_html}{link}")
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close, self)
        toolbox = buttons.addButton("Open in Processing…", QDialogButtonBox.ButtonRole.ActionRole)
        toolbox.clicked.connect(self._open_algorithm)
        buttons.rejected.connect(self.close)
        layout = QVBoxLayout(self)
        layout.addWidget(self.browser)
        layout.addWidget(buttons)

    def _open_algorithm(self) -> None:
        import processing

        processing.execAlgorithmDialog(self.algorithm_id)
