"""Layer styles shared by the algorithms' outputs (post-processors) and the panel: one look per product.

GPS stakes: circles coloured by the error of the estimate relative to the measured speed, labelled
"measured / estimated m/yr". The same style whichever way the stakes were compared (the toolbox's
Compare stakes layer, or the panel's stake table), only the field names differ.
"""
from __future__ import annotations

from typing import Any

from qgis.core import (
    QgsMarkerSymbol,
    QgsPalLayerSettings,
    QgsProperty,
    QgsRuleBasedRenderer,
    QgsSymbolLayer,
    QgsTextBufferSettings,
    QgsTextFormat,
    QgsVectorLayerSimpleLabeling,
)
from qgis.PyQt.QtGui import QColor

# (legend label, filter template, colour): the error relative to the measured speed. The filters exclude
# each other, as a rule-based renderer draws every rule that matches; {d} is the difference (estimated -
# measured) field, {m} the measured speed field.
ERROR_RULES = (
    ("no estimate", '"{d}" IS NULL', QColor(150, 150, 150)),
    ("error ≤ 10 % of measured", 'abs("{d}") <= 0.1 * "{m}"', QColor(26, 152, 80)),
    ("error 10–25 %", 'abs("{d}") > 0.1 * "{m}" AND abs("{d}") <= 0.25 * "{m}"', QColor(254, 178, 76)),
    ("error > 25 %", 'abs("{d}") > 0.25 * "{m}"', QColor(215, 48, 39)),
)


def stake_label(measured: str, estimated: str) -> str:
    """The label expression "measured / estimated m/yr" (a dash where there is no estimate)."""
    return (f"format_number(\"{measured}\", 1) || ' / ' || "
            f"coalesce(format_number(\"{estimated}\", 1), '–') || ' m/yr'")


def stake_renderer(measured: str, difference: str) -> QgsRuleBasedRenderer:
    """Circles coloured by the error relative to the measured speed (see :data:`ERROR_RULES`)."""
    root = QgsRuleBasedRenderer.Rule(None)
    for label, template, colour in ERROR_RULES:
        symbol = QgsMarkerSymbol.createSimple({"name": "circle", "color": colour.name(), "size": "3.2",
                                               "size_unit": "MM", "outline_color": "35,35,35,255",
                                               "outline_width": "0.3"})
        root.appendChild(QgsRuleBasedRenderer.Rule(symbol, 0, 0, template.format(d=difference, m=measured), label))
    return QgsRuleBasedRenderer(root)


def stake_labeling(measured: str, estimated: str) -> QgsVectorLayerSimpleLabeling:
    """Labels "measured / estimated m/yr" in dark text with a white halo."""
    settings = QgsPalLayerSettings()
    settings.fieldName = stake_label(measured, estimated)
    settings.isExpression = True
    text = QgsTextFormat()
    text.setSize(9)
    text.setColor(QColor(20, 20, 20))
    buffer = QgsTextBufferSettings()
    buffer.setEnabled(True)
    buffer.setSize(1.0)
    buffer.setColor(QColor(255, 255, 255))
    text.setBuffer(buffer)
    settings.setFormat(text)
    return QgsVectorLayerSimpleLabeling(settings)


def apply_stake_style(layer: Any, measured: str, estimated: str, difference: str) -> None:
    """Style a stake point layer whose fields hold the measured speed, the estimate and their difference
    (estimated - measured), all m/yr."""
    layer.setRenderer(stake_renderer(measured, difference))
    layer.setLabeling(stake_labeling(measured, estimated))
    layer.setLabelsEnabled(True)
    layer.triggerRepaint()


# --- flow arrows ----------------------------------------------------------------------------------------
ARROW_MIN_MM = 1.8  # marker size of a still arrow; the fastest get ARROW_MAX_MM
ARROW_MAX_MM = 7.0


def arrow_symbol(maximum: float) -> QgsMarkerSymbol:
    """A white arrow with a dark outline, rotated by ``direction`` (degrees clockwise from north) and sized
    by ``speed`` (m/yr, ``maximum`` gets the largest arrow).

    Sizes are in millimetres on screen, so the arrows stay readable at every zoom.
    """
    symbol = QgsMarkerSymbol.createSimple({
        "name": "arrow", "color": "255,255,255,255", "outline_color": "30,30,30,255",
        "outline_width": "0.2", "size": str(ARROW_MAX_MM), "size_unit": "MM"})
    symbol.setDataDefinedAngle(QgsProperty.fromField("direction"))
    symbol.setDataDefinedSize(QgsProperty.fromExpression(
        f'scale_linear("speed", 0, {maximum:.6g}, {ARROW_MIN_MM}, {ARROW_MAX_MM})'))
    return symbol


def coloured_arrow_symbol(maximum: float) -> QgsMarkerSymbol:
    """:func:`arrow_symbol` filled by speed too (viridis, 0..``maximum`` m/yr): for arrows shown on their own
    (over imagery rather than over the speed raster)."""
    symbol = arrow_symbol(maximum)
    symbol.symbolLayer(0).setDataDefinedProperty(QgsSymbolLayer.Property.PropertyFillColor, QgsProperty.fromExpression(
        f"ramp_color('Viridis', scale_linear(\"speed\", 0, {maximum:.6g}, 0, 1))"))
    return symbol
