"""The job grid's parameters, declared and read the same way by every algorithm that has them.

PIXEL_SIZE (m), TARGET_CRS (projected, m) and, for a pair of images, EXTENT (limit to an area): read
into one :class:`..core.geo.gridspec.GridSpec`, which :func:`..core.geo.gridspec.resolve_grid` turns
into the job grid.
"""
from __future__ import annotations

from typing import Any

from qgis.core import (
    QgsCoordinateReferenceSystem,
    QgsProcessingAlgorithm,
    QgsProcessingContext,
    QgsProcessingParameterCrs,
    QgsProcessingParameterDefinition,
    QgsProcessingParameterExtent,
    QgsProcessingParameterNumber,
)

from ..core.geo.gridspec import GridSpec

PIXEL_SIZE = "PIXEL_SIZE"
TARGET_CRS = "TARGET_CRS"
EXTENT = "EXTENT"  # a pair's "limit to extent" (area jobs name their search area EXTENT and add none)
AREA_CRS_LABEL = "Target CRS (empty: the area's UTM zone, polar stereographic beyond 72 degrees)"


def add_grid_parameters(algorithm: QgsProcessingAlgorithm, pixel_label: str, crs_label: str = AREA_CRS_LABEL,
                        default_pixel_size: float = 0.0, extent: bool = False, advanced: bool = True) -> None:
    """PIXEL_SIZE (m; 0 means the default the label names), TARGET_CRS and, with ``extent``, EXTENT."""
    parameters: list[QgsProcessingParameterDefinition] = [
        QgsProcessingParameterNumber(PIXEL_SIZE, pixel_label, QgsProcessingParameterNumber.Type.Double,
                                     default_pixel_size, minValue=0.0),
        QgsProcessingParameterCrs(TARGET_CRS, crs_label, optional=True)]
    if extent:
        parameters.append(QgsProcessingParameterExtent(EXTENT, "Limit to extent", optional=True))
    for parameter in parameters:
        if advanced:
            parameter.setFlags(parameter.flags() | QgsProcessingParameterDefinition.Flag.FlagAdvanced)
        algorithm.addParameter(parameter)


def grid_spec(algorithm: QgsProcessingAlgorithm, parameters: dict[str, Any], context: QgsProcessingContext,
              extent_crs: QgsCoordinateReferenceSystem | None = None) -> GridSpec:
    """The GridSpec the user asked for (empty fields where they left the defaults). With ``extent_crs``
    (image A's, for a pair) EXTENT limits the grid, read in the target CRS, else in ``extent_crs``."""
    pixel_size = algorithm.parameterAsDouble(parameters, PIXEL_SIZE, context) if parameters.get(
        PIXEL_SIZE) not in (None, "") else 0.0
    crs = algorithm.parameterAsCrs(parameters, TARGET_CRS, context)
    wkt = crs.toWkt(QgsCoordinateReferenceSystem.WKT_PREFERRED_GDAL) if crs.isValid() else None
    bounds = None
    if extent_crs is not None and parameters.get(EXTENT) not in (None, ""):
        extent = algorithm.parameterAsExtent(parameters, EXTENT, context, crs if crs.isValid() else extent_crs)
        bounds = (extent.xMinimum(), extent.yMinimum(), extent.xMaximum(), extent.yMaximum())
    return GridSpec(wkt, pixel_size or None, bounds)
