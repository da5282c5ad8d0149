"""Polygons handed to a background job as a file: memory layers and selections live in the main thread."""
from __future__ import annotations

from qgis.core import QgsProcessingUtils, QgsProject, QgsVectorFileWriter, QgsVectorLayer


def export_polygons(layer: QgsVectorLayer, selected_only: bool) -> str:
    """Write ``layer``'s (selected) polygons to a temporary GeoPackage; returns its path.

    Raises:
        ValueError: the layer cannot be written (the message says which).
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


def polygon_file(layer: QgsVectorLayer, selected_only: bool) -> str:
    """A file holding ``layer``'s (selected) polygons: the layer's own file when it is one and whole.

    Raises:
        ValueError: ``selected_only`` with nothing selected, or an empty layer.
    """
    if selected_only and layer.selectedFeatureCount() == 0:
        raise ValueError(f"No polygon of '{layer.name()}' is selected: select the glacier, "
                         "or untick 'Selected polygons only'.")
    if not selected_only and layer.featureCount() == 0:
        raise ValueError(f"'{layer.name()}' has no polygon: draw the glacier area or choose another layer.")
    if not selected_only and layer.providerType() == "ogr":
        return layer.source()
    return export_polygons(layer, selected_only)
