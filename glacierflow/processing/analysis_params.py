"""Inputs shared by the analysis algorithms: lines and points from a feature source, as core objects."""
from __future__ import annotations

from typing import Any

import numpy as np
from qgis.core import QgsProcessingException, QgsWkbTypes


def lines_from_source(source: Any, name_field: str = "") -> list[Any]:
    """Every line (each part of a multi-line) of the feature source as a core ``Line`` in the source's CRS,
    named by ``name_field`` (or the feature id, with ".part" for multi-part features)."""
    from ..core.analysis.lines import Line

    if source is None:
        raise QgsProcessingException("No line layer given, or it cannot be read.")
    crs_wkt = source.sourceCrs().toWkt()
    lines = []
    for feature in source.getFeatures():
        geometry = feature.geometry()
        if geometry.isEmpty() or geometry.type() != QgsWkbTypes.GeometryType.LineGeometry:
            continue
        parts = geometry.asMultiPolyline() if geometry.isMultipart() else [geometry.asPolyline()]
        label = str(feature[name_field]) if name_field else str(feature.id())
        for index, part in enumerate(parts):
            name = label if len(parts) == 1 else f"{label}.{index + 1}"
            lines.append(Line(name, np.array([(p.x(), p.y()) for p in part], dtype=float), crs_wkt))
    if not lines:
        raise QgsProcessingException("The line layer has no line: draw or choose a layer with lines.")
    return lines


def points_from_source(source: Any, name_field: str = "") -> tuple[list[tuple[str, float, float]], str]:
    """Every point of the feature source (centroids of other geometries): ([(name, x, y)], the CRS WKT)."""
    if source is None:
        raise QgsProcessingException("No point layer given, or it cannot be read.")
    points = []
    for feature in source.getFeatures():
        geometry = feature.geometry()
        if geometry.isEmpty():
            continue
        point = geometry.centroid().asPoint()
        points.append((str(feature[name_field]) if name_field else str(feature.id()), point.x(), point.y()))
    if not points:
        raise QgsProcessingException("The point layer has no point: choose a layer with points.")
    return points, source.sourceCrs().toWkt()
