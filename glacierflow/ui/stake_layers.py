"""GPS stakes compared with a velocity product, as a point layer labelled "measured / estimated m/yr".

The stake table is the CSV that ``core.validation.stakes.write_csv_report`` writes (for example
``<output>_stakes.csv`` of the annual algorithm): one row per stake and product with x, y
in the product's CRS and speeds in m/yr, then a blank line and a summary. The points are
written to a GeoPackage beside the table, so a saved project reopens with them. Symbols
show the error relative to the measured speed.
"""
from __future__ import annotations

import csv
import math
import os

from qgis.core import (
    QgsCoordinateReferenceSystem,
    QgsFeature,
    QgsFields,
    QgsGeometry,
    QgsMarkerSymbol,
    QgsPalLayerSettings,
    QgsPointXY,
    QgsRuleBasedRenderer,
    QgsTextBufferSettings,
    QgsTextFormat,
    QgsVectorLayer,
    QgsVectorLayerSimpleLabeling,
)
from qgis.PyQt.QtGui import QColor

from ..qgis_compat import make_field
from .layers import memory_points, write_points_gpkg

LABEL_EXPRESSION = ("format_number(\"measured_speed\", 1) || ' / ' || "
                    "coalesce(format_number(\"estimated_speed\", 1), '–') || ' m/yr'")
# (legend label, filter, colour): the error relative to the measured speed; the filters exclude each
# other, as a rule-based renderer draws every rule that matches.
ERROR_RULES = (
    ("no estimate", '"diff_speed" IS NULL', QColor(150, 150, 150)),
    ("error ≤ 10 % of measured", 'abs("diff_speed") <= 0.1 * "measured_speed"', QColor(26, 152, 80)),
    ("error 10–25 %", 'abs("diff_speed") > 0.1 * "measured_speed" AND abs("diff_speed") <= 0.25 * "measured_speed"',
     QColor(254, 178, 76)),
    ("error > 25 %", 'abs("diff_speed") > 0.25 * "measured_speed"', QColor(215, 48, 39)),
)
NUMBER_COLUMNS = ("measured_speed", "estimated_speed", "diff_speed")


def read_stake_table(path: str, product: str = "") -> list[dict[str, str]]:
    """The rows of the stake table ``path`` (up to the blank line before the summary).

    With ``product`` (a file name or path), only its rows when the table has any.

    Raises:
        ValueError: the file is not a stake table (no stake_id, x, y columns).
    """
    with open(path, newline="", encoding="utf-8") as handle:
        reader = csv.reader(handle)
        header = next(reader, [])
        if not {"stake_id", "x", "y"} <= set(header):
            raise ValueError(f"'{path}' is not a stake table (it needs stake_id, x and y columns).")
        rows = []
        for values in reader:
            if not any(v.strip() for v in values):
                break  # the summary follows
            rows.append(dict(zip(header, values)))
    name = os.path.basename(product)
    mine = [row for row in rows if row.get("product") == name]
    return mine if name and mine else rows


def _number(text: str | None) -> float | None:
    try:
        value = float(text) if text not in (None, "") else math.nan
    except ValueError:
        value = math.nan
    return value if math.isfinite(value) else None


def stake_fields() -> QgsFields:
    """stake_id, measured_speed, estimated_speed, diff_speed (m/yr, estimated - measured) and reason."""
    fields = QgsFields()
    fields.append(make_field("stake_id", "string"))
    for name in NUMBER_COLUMNS:
        fields.append(make_field(name, "double"))
    fields.append(make_field("reason", "string"))
    return fields


def stake_features(rows: list[dict[str, str]], fields: QgsFields) -> list[QgsFeature]:
    """One point per row with a position."""
    features = []
    for row in rows:
        x, y = _number(row.get("x")), _number(row.get("y"))
        if x is None or y is None:
            continue
        feature = QgsFeature(fields)
        feature.setGeometry(QgsGeometry.fromPointXY(QgsPointXY(x, y)))
        feature.setAttributes([row.get("stake_id", "")] + [_number(row.get(c)) for c in NUMBER_COLUMNS]
                              + [row.get("reason", "")])
        features.append(feature)
    return features


def stake_renderer() -> QgsRuleBasedRenderer:
    """Circles coloured by the error relative to the measured speed (see :data:`ERROR_RULES`)."""
    root = QgsRuleBasedRenderer.Rule(None)
    for label, expression, colour in ERROR_RULES:
        symbol = QgsMarkerSymbol.createSimple({"name": "circle", "color": colour.name(), "size": "3.2",
                                               "size_unit": "MM", "outline_color": "35,35,35,255",
                                               "outline_width": "0.3"})
        root.appendChild(QgsRuleBasedRenderer.Rule(symbol, 0, 0, expression, label))
    return QgsRuleBasedRenderer(root)


def stake_labeling() -> QgsVectorLayerSimpleLabeling:
    """Labels "measured / estimated m/yr" in dark text with a white halo."""
    settings = QgsPalLayerSettings()
    settings.fieldName = LABEL_EXPRESSION
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


def stake_layer(table: str, crs: QgsCoordinateReferenceSystem, product: str = "",
                name: str = "GPS stakes (measured / estimated m/yr)") -> QgsVectorLayer:
    """The stakes of ``table`` (positions in ``crs``, the product's CRS), styled and labelled.

    Written to ``<table stem>.gpkg`` beside the table; in memory when that folder is read-only.
    """
    fields = stake_fields()
    features = stake_features(read_stake_table(table, product), fields)
    layer = None
    try:
        path = write_points_gpkg(os.path.splitext(table)[0] + ".gpkg", fields, features, crs)
        layer = QgsVectorLayer(path, name, "ogr")
    except OSError:
        layer = None
    if layer is None or not layer.isValid():
        layer = memory_points(fields, features, crs, name)
    layer.setRenderer(stake_renderer())
    layer.setLabeling(stake_labeling())
    layer.setLabelsEnabled(True)
    return layer


__all__ = ["ERROR_RULES", "LABEL_EXPRESSION", "read_stake_table", "stake_features", "stake_fields",
           "stake_labeling", "stake_layer", "stake_renderer"]
