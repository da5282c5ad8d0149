"""Result layers of a velocity run: speed (viridis, m/yr), direction arrows, untrusted areas.

They are added to the project in one layer-tree group per run,
"GlacierFlow <engine> <date A> - <date B>".
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Dict, Optional

import numpy as np
from qgis.core import (
    QgsCoordinateReferenceSystem,
    QgsFeature,
    QgsField,
    QgsGeometry,
    QgsLayerTreeGroup,
    QgsMarkerSymbol,
    QgsPalettedRasterRenderer,
    QgsPointXY,
    QgsProject,
    QgsProperty,
    QgsRasterLayer,
    QgsSingleSymbolRenderer,
    QgsVectorLayer,
)
from qgis.PyQt.QtCore import QVariant
from qgis.PyQt.QtGui import QColor

from ..core.arrows import Arrows, arrow_spacing, arrows_from_samples, sample_positions
from ..core.style import nice_maximum

ARROW_MIN_MM = 1.8  # marker size of a still arrow; the fastest get ARROW_MAX_MM
ARROW_MAX_MM = 7.0
MIN_ARROW_FRACTION = 0.1  # arrows slower than this share of the legend maximum are not drawn


@dataclass
class ResultLayers:
    """The layers of one run and the layer-tree group holding them."""

    group: QgsLayerTreeGroup
    speed: QgsRasterLayer
    arrows: QgsVectorLayer
    validity: Optional[QgsRasterLayer]


def product_metadata(path: str) -> Dict[str, str]:
    """The GeoTIFF's metadata (acquisition times, engine, ...) and band descriptions as ``BAND:<name>``."""
    from osgeo import gdal

    dataset = gdal.Open(path)
    if dataset is None:
        return {}
    metadata = dict(dataset.GetMetadata() or {})
    for index in range(1, dataset.RasterCount + 1):
        metadata[f"BAND:{dataset.GetRasterBand(index).GetDescription()}"] = str(index)
    return metadata


def group_name(metadata: Dict[str, str], engine: str = "") -> str:
    """``GlacierFlow <engine> <date A> - <date B>`` from a product's metadata."""
    engine = metadata.get("ENGINE", engine) or "?"
    date_a = metadata.get("ACQUISITION_A", "?")[:10]
    date_b = metadata.get("ACQUISITION_B", "?")[:10]
    return f"GlacierFlow {engine} {date_a} - {date_b}"


def speed_layer(path: str, name: str = "speed (m/yr)") -> QgsRasterLayer:
    """The product styled by speed; the .qml written beside it by the job is applied explicitly."""
    layer = QgsRasterLayer(path, name)
    qml = os.path.splitext(path)[0] + ".qml"
    if layer.isValid() and os.path.exists(qml) and _renderer_type(layer) != "singlebandpseudocolor":
        layer.loadNamedStyle(qml)
        layer.triggerRepaint()
    return layer


def _renderer_type(layer: QgsRasterLayer) -> str:
    return layer.renderer().type() if layer.renderer() is not None else ""


def legend_maximum(layer: QgsRasterLayer) -> float:
    """The top of the speed legend (m/yr): the renderer's classification maximum."""
    renderer = layer.renderer()
    maximum = renderer.classificationMax() if hasattr(renderer, "classificationMax") else float("nan")
    return float(maximum) if np.isfinite(maximum) and maximum > 0 else 1.0


def validity_layer(path: str, band: int, name: str = "untrusted (failed checks)") -> QgsRasterLayer:
    """The ``valid`` band: untrusted pixels (0) in translucent red, trusted ones transparent."""
    layer = QgsRasterLayer(path, name)
    classes = [QgsPalettedRasterRenderer.Class(0, QColor(220, 40, 40, 150), "untrusted"),
               QgsPalettedRasterRenderer.Class(1, QColor(0, 0, 0, 0), "trusted")]
    layer.setRenderer(QgsPalettedRasterRenderer(layer.dataProvider(), band, classes))
    return layer


def read_arrows(path: str, across: int = 35, min_speed: float = 0.0) -> Arrows:
    """Sample ``vx``, ``vy`` on a regular grid, reading only the sampled rows (any raster size)."""
    from osgeo import gdal

    dataset = gdal.Open(path)
    bands = _band_indices(dataset)
    width, height = dataset.RasterXSize, dataset.RasterYSize
    rows, cols = sample_positions(width, height, arrow_spacing(width, height, across))
    vx = np.stack([_read_row(dataset, bands["vx"], int(row), cols) for row in rows])
    vy = np.stack([_read_row(dataset, bands["vy"], int(row), cols) for row in rows])
    return arrows_from_samples(vx, vy, rows, cols, dataset.GetGeoTransform(), min_speed=min_speed)


def _band_indices(dataset) -> Dict[str, int]:
    names = {dataset.GetRasterBand(i).GetDescription(): i for i in range(1, dataset.RasterCount + 1)}
    return {"vx": names.get("vx", 1), "vy": names.get("vy", 2)}


def _read_row(dataset, band_index: int, row: int, cols: np.ndarray) -> np.ndarray:
    band = dataset.GetRasterBand(band_index)
    values = band.ReadAsArray(0, row, dataset.RasterXSize, 1)[0, cols].astype(float)
    nodata = band.GetNoDataValue()
    if nodata is not None and np.isfinite(nodata):
        values[values == nodata] = np.nan
    return values


def arrow_symbol(maximum: float) -> QgsMarkerSymbol:
    """A white arrow with a dark outline, rotated by ``direction`` and sized by ``speed``.

    Sizes are in millimetres on screen, so the arrows stay readable at every zoom.
    """
    symbol = QgsMarkerSymbol.createSimple({
        "name": "arrow", "color": "255,255,255,255", "outline_color": "30,30,30,255",
        "outline_width": "0.2", "size": str(ARROW_MAX_MM), "size_unit": "MM"})
    symbol.setDataDefinedAngle(QgsProperty.fromField("direction"))
    symbol.setDataDefinedSize(QgsProperty.fromExpression(
        f'scale_linear("speed", 0, {maximum:.6g}, {ARROW_MIN_MM}, {ARROW_MAX_MM})'))
    return symbol


def arrow_layer(arrows: Arrows, crs: QgsCoordinateReferenceSystem, maximum: float,
                name: str = "flow direction") -> QgsVectorLayer:
    """A point memory layer with ``vx``, ``vy``, ``speed`` (m/yr) and ``direction`` (deg from north)."""
    layer = QgsVectorLayer("Point", name, "memory")
    layer.setCrs(crs)
    provider = layer.dataProvider()
    provider.addAttributes([QgsField(field, QVariant.Type.Double) for field in ("vx", "vy", "speed", "direction")])
    layer.updateFields()
    provider.addFeatures([_arrow_feature(layer, arrows, i) for i in range(len(arrows))])
    layer.updateExtents()
    layer.setRenderer(QgsSingleSymbolRenderer(arrow_symbol(maximum)))
    return layer


def _arrow_feature(layer: QgsVectorLayer, arrows: Arrows, index: int) -> QgsFeature:
    feature = QgsFeature(layer.fields())
    feature.setGeometry(QgsGeometry.fromPointXY(QgsPointXY(float(arrows.x[index]), float(arrows.y[index]))))
    feature.setAttributes([round(float(values[index]), 3) for values in
                           (arrows.vx, arrows.vy, arrows.speed, arrows.direction)])
    return feature


def load_results(path: str, engine: str = "", project: Optional[QgsProject] = None) -> ResultLayers:
    """Add the styled layers of the velocity product ``path`` to ``project`` in a new top group."""
    project = project or QgsProject.instance()
    metadata = product_metadata(path)
    speed = speed_layer(path)
    maximum = legend_maximum(speed) if speed.isValid() else nice_maximum(1.0)
    arrows = arrow_layer(read_arrows(path, min_speed=MIN_ARROW_FRACTION * maximum), speed.crs(), maximum)
    valid_band = int(metadata.get("BAND:valid", 0))
    validity = validity_layer(path, valid_band) if valid_band else None
    group = project.layerTreeRoot().insertGroup(0, group_name(metadata, engine))
    for layer in (arrows, validity, speed):
        if layer is not None:
            project.addMapLayer(layer, False)
            group.addLayer(layer)
    if validity is not None:
        group.findLayer(validity.id()).setItemVisibilityChecked(False)  # opt-in: keeps the map clean
    return ResultLayers(group, speed, arrows, validity)


__all__ = ["ResultLayers", "arrow_layer", "arrow_symbol", "group_name", "load_results", "product_metadata",
           "read_arrows", "speed_layer", "validity_layer"]
