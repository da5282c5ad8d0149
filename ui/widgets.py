"""Small input widgets of the dock: a raster picker that takes project layers or files."""
from __future__ import annotations

import os
from typing import Callable, Optional

from qgis.core import QgsMapLayerProxyModel, QgsRasterLayer
from qgis.gui import QgsMapLayerComboBox
from qgis.PyQt.QtCore import pyqtSignal
from qgis.PyQt.QtWidgets import QFileDialog, QHBoxLayout, QToolButton, QWidget

RASTER_FILTER = "Rasters (*.tif *.tiff *.TIF *.TIFF *.jp2 *.vrt *.img);;All files (*)"


class RasterPicker(QWidget):
    """A raster layer combo; '…' adds image files as extra entries (they are not loaded)."""

    fileChosen = pyqtSignal(str)  # noqa: N815 (Qt naming): the folder of a newly chosen file

    def __init__(self, folder: Callable[[], str], parent: Optional[QWidget] = None) -> None:
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
