"""NDSI forecast rasters as map layers: one layer per future window in a group "NDSI forecast".

A forecast product is a multi-band GeoTIFF, one band per window, each band's description
holding the window's dates (e.g. ``2023-07-01/2023-07-16``). Each window is shown with a
white-to-blue ramp over NDSI 0..1 (snow and ice in blue); values below 0 are not drawn.
The NDSI series the forecast started from can join the group, hidden, showing its last window.

Every window layer carries its dates as QGIS temporal properties (fixed range: the window, from the
WINDOW_START / WINDOW_END band tags or the dates of the description), so the temporal controller (time
slider) plays the forecast; windows with dates are all switched on, as only the current one draws when
the slider runs, and the first window is on top otherwise. :func:`load_series_windows` loads a series the
same way, one layer per window.
"""
from __future__ import annotations

import re
from dataclasses import dataclass

from qgis.core import QgsLayerTreeGroup, QgsProject, QgsRasterLayer
from qgis.PyQt.QtGui import QColor

from ..processing.temporal import apply_product_time, set_fixed_range
from .layers import ramp_renderer

FORECAST_GROUP = "NDSI forecast"
NDSI_STOPS = [(0.0, QColor(255, 255, 255)), (0.4, QColor(158, 202, 225)), (1.0, QColor(8, 48, 107))]
ISO_DATE = re.compile(r"\d{4}-\d{2}(?:-\d{2})?")  # 2023-07-01, or a month: 2023-07


@dataclass
class ForecastLayers:
    """The group and its layers, one per window, in band order."""

    group: QgsLayerTreeGroup
    layers: list[QgsRasterLayer]
    series: QgsRasterLayer | None = None


def window_dates(description: str) -> str:
    """``<start> – <end>`` (or ``<start>``) from the ISO dates in a band description; '' without dates."""
    dates = ISO_DATE.findall(description or "")
    if len(dates) >= 2:
        return f"{dates[0]} – {dates[-1]}"
    return dates[0] if dates else ""


def window_name(description: str, band: int) -> str:
    """The layer name of a window: ``NDSI <start> – <end>`` from the dates in ``description``.

    A description without dates is used as it is; an empty one gives ``NDSI window <band>``.
    """
    dates = window_dates(description)
    if dates:
        return f"NDSI {dates}"
    return f"NDSI {description.strip()}" if description and description.strip() else f"NDSI window {band}"


def band_descriptions(path: str) -> list[str]:
    """The band descriptions of the raster ``path`` (one per band).

    Raises:
        ValueError: GDAL cannot open ``path``.
    """
    from osgeo import gdal

    dataset = gdal.Open(path)
    if dataset is None:
        raise ValueError(f"'{path}' cannot be opened as a raster: choose an NDSI forecast GeoTIFF.")
    return [dataset.GetRasterBand(i).GetDescription() for i in range(1, dataset.RasterCount + 1)]


def ndsi_layer(path: str, band: int, name: str) -> QgsRasterLayer:
    """Band ``band`` of ``path`` styled white (NDSI 0) to blue (NDSI 1)."""
    layer = QgsRasterLayer(path, name)
    layer.setRenderer(ramp_renderer(layer, band, 0.0, 1.0, NDSI_STOPS, "NDSI"))
    return layer


def series_layer(path: str) -> QgsRasterLayer:
    """The NDSI series ``path`` as one layer showing its last (most recent) window, styled as the forecast.

    Raises:
        ValueError: GDAL cannot open ``path``.
    """
    descriptions = band_descriptions(path)
    last = window_dates(descriptions[-1]) if descriptions else ""
    name = f"NDSI series ({len(descriptions)} windows" + (f", shown: {last})" if last else ")")
    return ndsi_layer(path, len(descriptions), name)


def load_forecast(path: str, project: QgsProject | None = None, series: str | None = None,
                  group_name: str = FORECAST_GROUP) -> ForecastLayers:
    """Add one styled layer per window of the forecast ``path`` to a new top group (``group_name``).

    Only the first window is visible, so the windows can be compared by switching them on in turn.
    ``series`` (the NDSI series the forecast started from) is added last in the group, hidden.
    """
    project = project or QgsProject.instance()
    group = project.layerTreeRoot().insertGroup(0, group_name)
    layers = window_layers(path, group, project)
    observed = None
    if series:
        observed = series_layer(series)
        apply_product_time(observed, series)
        project.addMapLayer(observed, False)
        group.addLayer(observed).setItemVisibilityChecked(False)
    return ForecastLayers(group, layers, observed)


def window_layers(path: str, group: QgsLayerTreeGroup, project: QgsProject) -> list[QgsRasterLayer]:
    """One styled layer per band of the NDSI raster ``path`` in ``group``, each with its window as a
    temporal range; dated windows are switched on (the slider shows one at a time), others only the first."""
    from ..core.analysis.timeline import band_time_ranges

    ranges = band_time_ranges(path)
    layers = []
    for band, text in enumerate(band_descriptions(path), start=1):
        layer = ndsi_layer(path, band, window_name(text, band))
        window = ranges[band - 1] if band - 1 < len(ranges) else None
        if window is not None:
            set_fixed_range(layer, *window)
        project.addMapLayer(layer, False)
        group.addLayer(layer).setItemVisibilityChecked(band == 1 or window is not None)
        layers.append(layer)
    return layers


def load_series_windows(path: str, project: QgsProject | None = None,
                        group_name: str = "NDSI series") -> ForecastLayers:
    """The NDSI series ``path`` as one temporal layer per window in a new top group (for the time slider)."""
    project = project or QgsProject.instance()
    group = project.layerTreeRoot().insertGroup(0, group_name)
    return ForecastLayers(group, window_layers(path, group, project))


__all__ = ["FORECAST_GROUP", "ForecastLayers", "band_descriptions", "load_forecast", "load_series_windows",
           "ndsi_layer", "series_layer", "window_dates", "window_layers", "window_name"]
