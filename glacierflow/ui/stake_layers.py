"""GPS stakes compared with a velocity product, as a point layer labelled "measured / estimated m/yr".

The stake table is the CSV that ``core.validation.stakes.write_csv_report`` writes (for example
``<output>_stakes.csv`` of the annual algorithm): one row per stake and product with x, y
in the product's CRS and speeds in m/yr, then a blank line and a summary. The points are
written to a GeoPackage beside the table, so a saved project reopens with them. Symbols
show the error relative to the measured speed (the style of :mod:`..processing.styles`).
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
    QgsPointXY,
    QgsVectorLayer,
)

from ..processing.styles import apply_stake_style
from ..qgis_compat import make_field
from .layers import memory_points, write_points_gpkg

NUMBER_COLUMNS = ("measured_speed", "estimated_speed", "diff_speed")  # measured, estimated, difference


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
    apply_stake_style(layer, *NUMBER_COLUMNS)
    return layer


__all__ = ["read_stake_table", "stake_features", "stake_fields", "stake_layer"]
