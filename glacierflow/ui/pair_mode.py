"""The dock's "Image pair" mode: two images, their dates, an optional outline -> ``glacierflow:velocity_pair``."""
from __future__ import annotations

import os
from typing import Any, Callable

from qgis.core import QgsMapLayerProxyModel, QgsProcessingUtils, QgsSettings, QgsVectorLayer
from qgis.gui import QgsMapLayerComboBox
from qgis.PyQt.QtWidgets import QCheckBox, QFormLayout, QLineEdit, QVBoxLayout, QWidget

from .layers import ResultLayers, load_results
from .modes import VelocityMode
from .vector_export import export_polygons
from .widgets import RasterPicker, engine_combo, output_widget, restore_engine, spin_box

ALGORITHM_ID = "glacierflow:velocity_pair"
SETTINGS = "glacierflow/dock/"
DATE_HINT = "e.g. 2021-08-01; empty: read from the file"


class PairMode(VelocityMode, QWidget):
    """Inputs of one pair; ``parameters()`` for the algorithm, ``load()`` for its result."""

    algorithm_id = ALGORITHM_ID
    title = "Image pair"

    def __init__(self, last_folder: Callable[[], str], parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.last_folder = last_folder
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addLayout(self._inputs_form())
        layout.addLayout(self._options_form())
        layout.addStretch(1)
        self._restore_settings()
        for signal in (self.engine.currentTextChanged, self.tile_size.valueChanged, self.overlap.valueChanged):
            signal.connect(self.save_settings)

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
        self.engine = engine_combo(self)
        self.tile_size = spin_box(self, 32, 4096, 256, 32)
        self.overlap = spin_box(self, 0, 2048, 64, 16)
        self.output = output_widget(self)
        form.addRow("Engine", self.engine)
        form.addRow("RAFT tile size (px)", self.tile_size)
        form.addRow("Tile overlap (px)", self.overlap)
        form.addRow("Output", self.output)
        return form

    def _restore_settings(self) -> None:
        settings = QgsSettings()
        restore_engine(self.engine, str(settings.value(SETTINGS + "engine", "")))
        self.tile_size.setValue(int(settings.value(SETTINGS + "tile_size", 256)))
        self.overlap.setValue(int(settings.value(SETTINGS + "overlap", 64)))
        self.output.setDefaultRoot(self.last_folder())

    def save_settings(self) -> None:
        """Remember the engine and the tile sizes."""
        settings = QgsSettings()
        settings.setValue(SETTINGS + "engine", self.engine.currentText())
        settings.setValue(SETTINGS + "tile_size", self.tile_size.value())
        settings.setValue(SETTINGS + "overlap", self.overlap.value())

    def parameters(self) -> dict[str, Any]:
        """The algorithm's parameters.

        Raises:
            ValueError: something the user must fix first (the message says what).
        """
        image_a, image_b = self.image_a.source(), self.image_b.source()
        if not image_a or not image_b:
            raise ValueError("Choose image A (earlier) and image B (later).")
        parameters: dict[str, Any] = {
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

    def describe(self, parameters: dict[str, Any]) -> str:
        """One log line for the start of a run."""
        return (f"Started {parameters['ENGINE']} on {os.path.basename(parameters['IMAGE_A'])} and "
                f"{os.path.basename(parameters['IMAGE_B'])} -> {parameters['OUTPUT']}")

    def load(self, results: dict[str, Any], parameters: dict[str, Any]) -> ResultLayers:
        """Add the run's styled layers to the project."""
        return load_results(results.get("OUTPUT", parameters["OUTPUT"]), parameters["ENGINE"])
