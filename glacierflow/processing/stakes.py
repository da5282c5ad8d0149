"""Processing algorithm ``glacierflow:compare_stakes``: velocity products against GPS stakes.

Its parameter names are a public headless API: keep them stable.
"""
from __future__ import annotations

import math
import os
import re
from typing import Any

from qgis.core import (
    QgsFeature,
    QgsFeatureSink,
    QgsField,
    QgsFields,
    QgsGeometry,
    QgsPointXY,
    QgsProcessing,
    QgsProcessingContext,
    QgsProcessingException,
    QgsProcessingFeedback,
    QgsProcessingLayerPostProcessorInterface,
    QgsProcessingParameterEnum,
    QgsProcessingParameterFeatureSink,
    QgsProcessingParameterFeatureSource,
    QgsProcessingParameterField,
    QgsProcessingParameterFileDestination,
    QgsProcessingParameterMultipleLayers,
    QgsProcessingParameterNumber,
    QgsWkbTypes,
)

from ..qgis_compat import field_type
from .base import GlacierFlowAlgorithm
from .styles import apply_stake_style

HELP_TEXT = """<p>Compares velocity products with GPS stakes: each product is sampled at each stake and the
differences (estimated - measured, m/yr) are summarised per product as bias (mean difference) and RMSE.</p>
<h3>Inputs</h3>
<ul>
<li><b>Stakes</b>: points (CSV layer, GeoPackage, shapefile; any CRS) with either a measured velocity
(<b>vx</b> and <b>vy</b> in m/yr east/north, or a <b>speed</b> in m/yr with an optional direction) or
<b>start and end positions</b> (x/y fields in the layer's CRS) with <b>start and end dates</b>; the
velocity is then the displacement over the exact interval (Julian years of 365.25 days), computed in each
product's CRS so it is rotated correctly. Empty field choices try common names (vx, vy, speed, x_start,
date_start, ...).</li>
<li><b>Velocity products</b>: rasters with bands vx and vy (m/yr), any CRS.</li>
<li><b>Sampling</b>: bilinear, or the median of a window of <b>Window</b> x <b>Window</b> pixels; both
ignore no data. A stake outside a raster or on no data gets no value and a reason.</li>
</ul>
<h3>Outputs</h3>
<p>A point layer in the stakes' CRS with the measured speed and, per product, the estimated speed and the
difference (m/yr), labelled with the first product's difference; a CSV table (with the summary) and an
HTML page with a measured-against-estimated plot.</p>"""

METHOD_KEYS = ["bilinear", "window_median"]
FIELD_PARAMETERS = [("ID_FIELD", "id", "Stake id field"), ("VX_FIELD", "vx", "Measured vx field (m/yr)"),
                    ("VY_FIELD", "vy", "Measured vy field (m/yr)"), ("SPEED_FIELD", "speed", "Speed field (m/yr)"),
                    ("DIRECTION_FIELD", "direction", "Direction field (degrees from north)"),
                    ("X_START", "x_start", "Start x field"), ("Y_START", "y_start", "Start y field"),
                    ("X_END", "x_end", "End x field"), ("Y_END", "y_end", "End y field"),
                    ("DATE_START", "date_start", "Start date field"), ("DATE_END", "date_end", "End date field")]


class StakeStyler(QgsProcessingLayerPostProcessorInterface):
    """Styles the output as the panel does: circles coloured by the error of the first product, labelled
    "measured / estimated m/yr"."""

    instance: StakeStyler | None = None

    def __init__(self, product: str) -> None:
        super().__init__()
        self.product = product

    def postProcessLayer(self, layer: Any, context: QgsProcessingContext,  # noqa: N802
                         feedback: QgsProcessingFeedback) -> None:
        apply_stake_style(layer, "measured", f"est_{self.product}", f"diff_{self.product}")

    @classmethod
    def create(cls, product: str) -> StakeStyler:
        cls.instance = StakeStyler(product)  # kept alive: Processing holds only a pointer
        return cls.instance


class CompareStakesAlgorithm(GlacierFlowAlgorithm):
    """Velocity products against GPS stakes."""

    STAKES = "STAKES"
    PRODUCTS = "PRODUCTS"
    METHOD = "METHOD"
    WINDOW = "WINDOW"
    OUTPUT = "OUTPUT"
    REPORT_CSV = "REPORT_CSV"
    REPORT_HTML = "REPORT_HTML"

    ALGORITHM_ID = "compare_stakes"
    DISPLAY_NAME = "Compare with GPS stakes"
    GROUP = "Validation"
    HELP = HELP_TEXT

    def initAlgorithm(self, config: dict[str, Any] | None = None) -> None:  # noqa: N802
        self.addParameter(QgsProcessingParameterFeatureSource(
            self.STAKES, "GPS stakes (points)", [QgsProcessing.SourceType.TypeVectorPoint]))
        for name, _, label in FIELD_PARAMETERS:
            self.addParameter(QgsProcessingParameterField(
                name, label, parentLayerParameterName=self.STAKES, optional=True))
        self.addParameter(QgsProcessingParameterMultipleLayers(
            self.PRODUCTS, "Velocity products (vx, vy in m/yr)", QgsProcessing.SourceType.TypeRaster))
        self.addParameter(QgsProcessingParameterEnum(
            self.METHOD, "Sampling", ["Bilinear", "Median of a window"], defaultValue=0))
        self.addParameter(QgsProcessingParameterNumber(
            self.WINDOW, "Window (px, for the median)", QgsProcessingParameterNumber.Type.Integer, 3, minValue=1))
        self.addParameter(QgsProcessingParameterFeatureSink(
            self.OUTPUT, "Stakes compared", QgsProcessing.SourceType.TypeVectorPoint))
        self.addParameter(QgsProcessingParameterFileDestination(
            self.REPORT_CSV, "Stake table (CSV)", "CSV files (*.csv)", optional=True, createByDefault=False))
        self.addParameter(QgsProcessingParameterFileDestination(
            self.REPORT_HTML, "Stake report (HTML)", "HTML files (*.html)", optional=True, createByDefault=False))

    def process(self, parameters: dict[str, Any], context: QgsProcessingContext,
                feedback: QgsProcessingFeedback) -> dict[str, Any]:
        from ..core.validation import stakes as core

        source = self.parameterAsSource(parameters, self.STAKES, context)
        if source is None:
            raise QgsProcessingException("STAKES: no point layer given, or it cannot be read.")
        path = self.parameterAsCompatibleSourceLayerPath(parameters, self.STAKES, context, ["gpkg"], "gpkg", feedback)
        fields = core.StakeFields(**{key: self.parameterAsString(parameters, name, context) or None
                                     for name, key, _ in FIELD_PARAMETERS})
        stakes = core.read_stakes(path, fields, source.sourceCrs().toWkt())
        products = self.raster_paths(parameters, self.PRODUCTS, context)
        method = METHOD_KEYS[self.parameterAsEnum(parameters, self.METHOD, context)]
        window = self.parameterAsInt(parameters, self.WINDOW, context)
        comparison = core.compare_stakes(stakes, products, method, window)
        core.check_some_stake_sampled(comparison)
        for line in core.summary_lines(comparison):
            feedback.pushInfo(line)
        outputs = self._write_layer(parameters, context, source, stakes, comparison)
        for name, writer in ((self.REPORT_CSV, core.write_csv_report), (self.REPORT_HTML, core.write_html_report)):
            target = self.parameterAsFileOutput(parameters, name, context)
            if target:
                outputs[name] = writer(target, comparison)
        return outputs

    def _write_layer(self, parameters: dict[str, Any], context: QgsProcessingContext, source: Any,
                     stakes: list[Any], comparison: Any) -> dict[str, Any]:
        names = product_field_names(comparison.products)
        fields = QgsFields()
        fields.append(QgsField("stake_id", field_type("string")))
        fields.append(QgsField("measured", field_type("double")))
        for name in names:
            fields.append(QgsField(f"est_{name}", field_type("double")))
            fields.append(QgsField(f"diff_{name}", field_type("double")))
        sink, dest_id = self.parameterAsSink(parameters, self.OUTPUT, context, fields, QgsWkbTypes.Type.Point,
                                             source.sourceCrs())
        if sink is None:
            raise QgsProcessingException("OUTPUT: the stake layer cannot be written.")
        by_key = {(s.stake_id, s.product): s for s in comparison.samples}
        for stake in stakes:
            sink.addFeature(self._feature(fields, stake, comparison.products, names, by_key),
                            QgsFeatureSink.Flag.FastInsert)
        if context.willLoadLayerOnCompletion(dest_id):
            details = context.layerToLoadOnCompletionDetails(dest_id)
            details.setPostProcessor(StakeStyler.create(names[0]))
        return {self.OUTPUT: dest_id}

    @staticmethod
    def _feature(fields: QgsFields, stake: Any, products: list[str], names: list[str], by_key: dict) -> QgsFeature:
        feature = QgsFeature(fields)
        x, y = stake.x, stake.y
        if stake.end is not None:
            x, y = (stake.x + stake.end[0]) / 2, (stake.y + stake.end[1]) / 2
        feature.setGeometry(QgsGeometry.fromPointXY(QgsPointXY(x, y)))
        first = by_key[(stake.id, products[0])]
        values: list[Any] = [stake.id, _value(first.measured_speed)]
        for product in products:
            sample = by_key[(stake.id, product)]
            values += [_value(sample.estimated_speed), _value(sample.difference("speed"))]
        feature.setAttributes(values)
        return feature


def _value(number: float) -> float | None:
    return float(number) if math.isfinite(number) else None


def product_field_names(products: list[str]) -> list[str]:
    """Short unique field-name stems (letters, digits, _) from the products' file names."""
    names: list[str] = []
    for index, path in enumerate(products, start=1):
        stem = re.sub(r"[^A-Za-z0-9_]", "_", os.path.splitext(os.path.basename(path))[0])[:20] or f"p{index}"
        names.append(stem if stem not in names else f"{stem}_{index}")
    return names
