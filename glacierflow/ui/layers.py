"""Result layers of a velocity run: speed (viridis, m/yr), direction arrows, untrusted areas, uncertainty.

They are added to the project in one layer-tree group per run,
"GlacierFlow <engine> <date A> - <date B>". The arrows are written to a GeoPackage beside
the product, so a saved project reopens with them.
"""
from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np
from qgis.core import (
    QgsColorRampShader,
    QgsCoordinateReferenceSystem,
    QgsFeature,
    QgsFields,
    QgsGeometry,
    QgsLayerTreeGroup,
    QgsPalettedRasterRenderer,
    QgsPointXY,
    QgsProject,
    QgsRasterLayer,
    QgsRasterShader,
    QgsSingleBandPseudoColorRenderer,
    QgsSingleSymbolRenderer,
    QgsVectorFileWriter,
    QgsVectorLayer,
    QgsWkbTypes,
)
from qgis.PyQt.QtGui import QColor

from ..core.analysis.export import sampled_arrows
from ..core.io.atomic import atomic_path, remove_quietly
from ..core.io.style import nice_maximum
from ..core.products import velocity
from ..core.products.velocity import open_velocity
from ..core.velocity.arrows import Arrows, arrow_spacing
from ..processing.styles import arrow_symbol
from ..processing.temporal import apply_product_time
from ..qgis_compat import make_field

MIN_ARROW_FRACTION = 0.1  # arrows slower than this share of the legend maximum are not drawn


@dataclass
class ResultLayers:
    """The layers of one run and the layer-tree group holding them."""

    group: QgsLayerTreeGroup
    speed: QgsRasterLayer
    arrows: QgsVectorLayer
    validity: QgsRasterLayer | None
    uncertainty: QgsRasterLayer | None = None
    stakes: QgsVectorLayer | None = None


def product_metadata(path: str) -> dict[str, str]:
    """The GeoTIFF's metadata (acquisition times, engine, ...) and band descriptions as ``BAND:<name>``."""
    from osgeo import gdal

    dataset = gdal.Open(path)
    if dataset is None:
        return {}
    metadata = dict(dataset.GetMetadata() or {})
    for index in range(1, dataset.RasterCount + 1):
        metadata[f"BAND:{dataset.GetRasterBand(index).GetDescription()}"] = str(index)
    return metadata


def group_name(metadata: dict[str, str], engine: str = "") -> str:
    """``GlacierFlow <engine> <date A> - <date B>`` from a pair product's metadata;
    ``GlacierFlow annual <engine> <first date> - <last date>`` for a stack of pairs."""
    engine = metadata.get(velocity.ENGINE, engine) or "?"
    if velocity.ACQUISITION_A not in metadata and velocity.FIRST_ACQUISITION in metadata:
        first, last = metadata[velocity.FIRST_ACQUISITION][:10], metadata.get(velocity.LAST_ACQUISITION, "?")[:10]
        return f"GlacierFlow annual {engine} {first} - {last}"
    date_a = metadata.get(velocity.ACQUISITION_A, "?")[:10]
    date_b = metadata.get(velocity.ACQUISITION_B, "?")[:10]
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
    """About ``across`` arrows along the longer side, reading only the sampled rows (any raster size)."""
    product = open_velocity(path)
    return sampled_arrows(product, arrow_spacing(product.grid.width, product.grid.height, across), min_speed)


def arrow_layer(arrows: Arrows, crs: QgsCoordinateReferenceSystem, maximum: float,
                name: str = "flow direction", path: str = "") -> QgsVectorLayer:
    """Points with ``vx``, ``vy``, ``speed`` (m/yr) and ``direction`` (deg from north), styled as arrows.

    With ``path`` the points are written to that GeoPackage (so they survive saving and
    reopening the project); without, or when it cannot be written, they stay in memory.
    """
    fields = QgsFields()
    for field in ("vx", "vy", "speed", "direction"):
        fields.append(make_field(field, "double"))
    features = [_arrow_feature(fields, arrows, i) for i in range(len(arrows))]
    layer = None
    if path:
        try:
            layer = QgsVectorLayer(write_points_gpkg(path, fields, features, crs), name, "ogr")
        except OSError:
            layer = None
    if layer is None or not layer.isValid():
        layer = memory_points(fields, features, crs, name)
    layer.setRenderer(QgsSingleSymbolRenderer(arrow_symbol(maximum)))
    return layer


def _arrow_feature(fields: QgsFields, arrows: Arrows, index: int) -> QgsFeature:
    feature = QgsFeature(fields)
    feature.setGeometry(QgsGeometry.fromPointXY(QgsPointXY(float(arrows.x[index]), float(arrows.y[index]))))
    feature.setAttributes([round(float(values[index]), 3) for values in
                           (arrows.vx, arrows.vy, arrows.speed, arrows.direction)])
    return feature


def memory_points(fields: QgsFields, features: list[QgsFeature], crs: QgsCoordinateReferenceSystem,
                  name: str) -> QgsVectorLayer:
    """A point memory layer holding ``features`` (lost when the project is closed)."""
    layer = QgsVectorLayer("Point", name, "memory")
    layer.setCrs(crs)
    layer.dataProvider().addAttributes(fields.toList())
    layer.updateFields()
    layer.dataProvider().addFeatures(features)
    layer.updateExtents()
    return layer


def write_points_gpkg(path: str, fields: QgsFields, features: list[QgsFeature],
                      crs: QgsCoordinateReferenceSystem) -> str:
    """Write ``features`` (points in ``crs``) to the GeoPackage ``path``, replacing it at once; returns ``path``.

    Written under a temporary name in the same folder and renamed: a failure leaves no partial file.

    Raises:
        OSError: the folder cannot be written.
    """
    options = QgsVectorFileWriter.SaveVectorOptions()
    options.driverName = "GPKG"
    options.layerName = os.path.splitext(os.path.basename(path))[0]
    with atomic_path(path, ".gpkg") as temporary:
        try:
            writer = QgsVectorFileWriter.create(temporary, fields, QgsWkbTypes.Type.Point, crs,
                                                QgsProject.instance().transformContext(), options)
            if writer.hasError() != QgsVectorFileWriter.WriterError.NoError:
                raise OSError(f"Could not write {path}: {writer.errorMessage()}")
            writer.addFeatures(features)
            del writer  # closes the file
        finally:
            for journal in (temporary + "-wal", temporary + "-shm"):
                remove_quietly(journal)
    return path


def uncertainty_layer(path: str, band: int, maximum: float, name: str = "uncertainty (m/yr)") -> QgsRasterLayer:
    """The ``uncertainty`` band (1 sigma, m/yr) from pale yellow (0) to dark red (``maximum``)."""
    layer = QgsRasterLayer(path, name)
    stops = [(0.0, QColor(255, 255, 204)), (0.5, QColor(253, 141, 60)), (1.0, QColor(128, 0, 38))]
    layer.setRenderer(ramp_renderer(layer, band, 0.0, maximum, stops, "m/yr"))
    return layer


def ramp_renderer(layer: QgsRasterLayer, band: int, minimum: float, maximum: float,
                  stops: list[tuple[float, QColor]], unit: str = "") -> QgsSingleBandPseudoColorRenderer:
    """A continuous colour ramp on ``band`` from ``minimum`` to ``maximum``; ``stops`` at fractions 0..1.

    Values outside the range are not drawn; the legend reads in ``unit``.
    """
    items = [QgsColorRampShader.ColorRampItem(minimum + f * (maximum - minimum), colour,
                                              f"{minimum + f * (maximum - minimum):.3g} {unit}".strip())
             for f, colour in stops]
    ramp = QgsColorRampShader(minimum, maximum)
    ramp.setColorRampType(QgsColorRampShader.Type.Interpolated)
    ramp.setColorRampItemList(items)
    ramp.setClip(True)
    shader = QgsRasterShader()
    shader.setRasterShaderFunction(ramp)
    renderer = QgsSingleBandPseudoColorRenderer(layer.dataProvider(), band, shader)
    renderer.setClassificationMin(minimum)
    renderer.setClassificationMax(maximum)
    return renderer


def band_percentile(path: str, band: int, percentile: float = 98.0) -> float:
    """The ``percentile`` of the finite values of ``band`` (read at most 512 px across; NaN when none)."""
    from osgeo import gdal

    dataset = gdal.Open(path)
    raster = dataset.GetRasterBand(band)
    step = max(1, max(dataset.RasterXSize, dataset.RasterYSize) // 512)
    values = raster.ReadAsArray(buf_xsize=max(1, dataset.RasterXSize // step),
                                buf_ysize=max(1, dataset.RasterYSize // step)).astype(float)
    nodata = raster.GetNoDataValue()
    if nodata is not None and np.isfinite(nodata):
        values[values == nodata] = np.nan
    finite = values[np.isfinite(values)]
    return float(np.percentile(finite, percentile)) if finite.size else float("nan")


def arrows_path(product: str) -> str:
    """Where the arrows of ``product`` are kept: ``<product stem>_arrows.gpkg`` beside it."""
    return os.path.splitext(product)[0] + "_arrows.gpkg"


def load_results(path: str, engine: str = "", project: QgsProject | None = None) -> ResultLayers:
    """Add the styled layers of the velocity product ``path`` (a pair or an annual stack) to ``project``
    in a new top group: arrows, validity or uncertainty (hidden), speed."""
    project = project or QgsProject.instance()
    metadata = product_metadata(path)
    speed = speed_layer(path)
    apply_product_time(speed, path)  # the time slider shows the result over its acquisition interval
    maximum = legend_maximum(speed) if speed.isValid() else nice_maximum(1.0)
    arrows = arrow_layer(read_arrows(path, min_speed=MIN_ARROW_FRACTION * maximum), speed.crs(), maximum,
                         path=arrows_path(path))
    valid_band = int(metadata.get("BAND:valid", 0))
    validity = validity_layer(path, valid_band) if valid_band else None
    uncertainty = None
    uncertainty_band = int(metadata.get("BAND:uncertainty", 0))
    if uncertainty_band:
        top = band_percentile(path, uncertainty_band)
        uncertainty = uncertainty_layer(path, uncertainty_band, nice_maximum(top) if np.isfinite(top) else 1.0)
    group = project.layerTreeRoot().insertGroup(0, group_name(metadata, engine))
    for layer in (arrows, validity, uncertainty, speed):
        if layer is not None:
            project.addMapLayer(layer, False)
            group.addLayer(layer)
    for hidden in (validity, uncertainty):  # opt-in: keeps the map clean
        if hidden is not None:
            group.findLayer(hidden.id()).setItemVisibilityChecked(False)
    return ResultLayers(group, speed, arrows, validity, uncertainty)


__all__ = ["ResultLayers", "arrow_layer", "arrow_symbol", "arrows_path", "band_percentile", "group_name",
           "load_results", "memory_points", "product_metadata", "ramp_renderer", "read_arrows", "speed_layer",
           "uncertainty_layer", "validity_layer", "write_points_gpkg"]
