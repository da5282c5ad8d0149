"""Time-slider support: GlacierFlow layers get QGIS temporal properties from their products' dates.

Velocity products show over their acquisition interval; an NDSI series or forecast raster shows over its
whole span (and, on QGIS 3.38 and later, each band over its own window); the panel loads one layer per
window instead (see ``ui/forecast_layers``), which plays on every QGIS version.
"""
from __future__ import annotations

from datetime import datetime
from typing import Any

from qgis.core import (
    Qgis,
    QgsDateTimeRange,
    QgsProcessingContext,
    QgsProcessingFeedback,
    QgsProcessingLayerPostProcessorInterface,
    QgsRasterLayerTemporalProperties,
)
from qgis.PyQt.QtCore import QDateTime, Qt


def qdatetime(moment: datetime) -> QDateTime:
    """A UTC QDateTime of an aware datetime."""
    value = QDateTime.fromSecsSinceEpoch(int(round(moment.timestamp())))
    return value.toTimeSpec(Qt.TimeSpec.UTC)


def time_range(start: datetime, end: datetime) -> QgsDateTimeRange:
    """[start, end) as a QGIS date-time range."""
    return QgsDateTimeRange(qdatetime(start), qdatetime(end), True, False)


def raster_temporal_mode(name: str) -> Any:
    """The raster temporal mode ``name`` (e.g. "FixedTemporalRange"): ``Qgis.RasterTemporalMode`` where it
    exists (3.22+ Python enums), else the older ``Mode...`` class attribute; None when unknown."""
    modes = getattr(Qgis, "RasterTemporalMode", None)
    if modes is not None and hasattr(modes, name):
        return getattr(modes, name)
    return getattr(QgsRasterLayerTemporalProperties, f"Mode{name}", None)


def set_fixed_range(layer: Any, start: datetime, end: datetime) -> None:
    """Make the raster ``layer`` temporal, shown over [start, end)."""
    properties = layer.temporalProperties()
    properties.setMode(raster_temporal_mode("FixedTemporalRange"))
    properties.setFixedTemporalRange(time_range(start, end))
    properties.setIsActive(True)


def set_band_ranges(layer: Any, ranges: list[Any]) -> None:
    """Each band over its own window where QGIS can (3.38+: fixed range per band), else the whole span."""
    from ..core.analysis.timeline import span

    whole = span(ranges)
    if whole is None:
        return
    properties = layer.temporalProperties()
    per_band = raster_temporal_mode("FixedRangePerBand")
    if per_band is not None and hasattr(properties, "setFixedRangePerBand") and all(ranges):
        properties.setMode(per_band)
        properties.setFixedRangePerBand({band: time_range(*window) for band, window in enumerate(ranges, start=1)})
        properties.setIsActive(True)
        return
    set_fixed_range(layer, *whole)


def apply_product_time(layer: Any, path: str) -> None:
    """Temporal properties from the product at ``path``: a velocity product's acquisitions, or an NDSI
    raster's windows; nothing for rasters without dates."""
    from ..core.analysis.timeline import band_time_ranges, velocity_time_range
    from ..core.errors import GlacierFlowError

    try:
        interval = velocity_time_range(path)
    except GlacierFlowError:
        interval = None
    if interval is not None:
        set_fixed_range(layer, *interval)
        return
    set_band_ranges(layer, band_time_ranges(path))


class TimeStamper(QgsProcessingLayerPostProcessorInterface):
    """Sets a loaded output's temporal properties from its product's dates."""

    instances: list[TimeStamper] = []

    def __init__(self, path: str) -> None:
        super().__init__()
        self.path = path

    def postProcessLayer(self, layer: Any, context: QgsProcessingContext,  # noqa: N802
                         feedback: QgsProcessingFeedback) -> None:
        apply_product_time(layer, self.path)


def load_with_time(context: QgsProcessingContext, path: str) -> None:
    """When Processing will load ``path``, give the layer its time range (keeps any other post-processor's
    work: it runs only when none is set)."""
    if not path or not context.willLoadLayerOnCompletion(path):
        return
    details = context.layerToLoadOnCompletionDetails(path)
    if details.postProcessor() is None:
        stamper = TimeStamper(path)
        TimeStamper.instances = [*TimeStamper.instances[-31:], stamper]  # alive: Processing holds a pointer
        details.setPostProcessor(stamper)
