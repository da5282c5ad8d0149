"""Processing algorithm ``glacierflow:velocity_time_series``: velocity at points across many products.

Its parameter names are a public headless API: keep them stable.
"""
from __future__ import annotations

from typing import Any

from qgis.core import (
    QgsProcessing,
    QgsProcessingContext,
    QgsProcessingException,
    QgsProcessingFeedback,
    QgsProcessingOutputNumber,
    QgsProcessingParameterFeatureSource,
    QgsProcessingParameterField,
    QgsProcessingParameterFile,
    QgsProcessingParameterFileDestination,
    QgsProcessingParameterMultipleLayers,
    QgsProcessingParameterPoint,
)

from .analysis_params import points_from_source
from .base import GlacierFlowAlgorithm
from .feedback import ProcessingFeedback

HELP_TEXT = """<p>Velocity at points through time: every velocity product given (pairs of <i>Glacier velocity
from an image pair</i>, stacks of <i>Stack velocity pairs</i>, or a folder holding them) is sampled at the
points (bilinear, NaN-aware), and each value is dated by the middle of the product's interval.</p>
<h3>Inputs</h3>
<ul>
<li><b>Velocity products</b> and/or a <b>folder</b> of them (its GeoTIFFs; rasters that are not dated
velocity products are skipped with a warning).</li>
<li><b>Points</b> (a point layer, any CRS; centroids of other geometries) with an optional name field,
and/or one <b>point</b> clicked on the map.</li>
</ul>
<h3>Outputs</h3>
<p>A CSV with point, x, y, product, start, end, mid_date (ISO-8601 UTC), interval_days, vx, vy, speed,
valid and uncertainty (m/yr; empty where there is no data), and a PNG: speed against mid-date per point,
horizontal bars spanning each interval, vertical bars the uncertainty (stacks).</p>"""


class VelocityTimeSeriesAlgorithm(GlacierFlowAlgorithm):
    """Velocity at points across many products."""

    INPUTS = "INPUTS"
    FOLDER = "FOLDER"
    POINTS = "POINTS"
    NAME_FIELD = "NAME_FIELD"
    POINT = "POINT"
    OUTPUT_CSV = "OUTPUT_CSV"
    OUTPUT_PNG = "OUTPUT_PNG"

    ALGORITHM_ID = "velocity_time_series"
    DISPLAY_NAME = "Velocity time series at points"
    GROUP = "Analysis"
    HELP = HELP_TEXT

    def initAlgorithm(self, config: dict[str, Any] | None = None) -> None:  # noqa: N802
        self.addParameter(QgsProcessingParameterMultipleLayers(
            self.INPUTS, "Velocity products (pairs or stacks)", QgsProcessing.SourceType.TypeRaster, optional=True))
        self.addParameter(QgsProcessingParameterFile(
            self.FOLDER, "Folder of velocity products", QgsProcessingParameterFile.Behavior.Folder, optional=True))
        self.addParameter(QgsProcessingParameterFeatureSource(
            self.POINTS, "Points", [QgsProcessing.SourceType.TypeVectorAnyGeometry], optional=True))
        self.addParameter(QgsProcessingParameterField(
            self.NAME_FIELD, "Point name field", parentLayerParameterName=self.POINTS, optional=True))
        self.addParameter(QgsProcessingParameterPoint(self.POINT, "A point on the map", optional=True))
        self.addParameter(QgsProcessingParameterFileDestination(
            self.OUTPUT_CSV, "Time series table (CSV)", "CSV files (*.csv)"))
        self.addParameter(QgsProcessingParameterFileDestination(
            self.OUTPUT_PNG, "Time series plot (PNG)", "PNG files (*.png)", optional=True))
        self.addOutput(QgsProcessingOutputNumber("VALUE_COUNT", "Number of values with data"))

    def process(self, parameters: dict[str, Any], context: QgsProcessingContext,
                feedback: QgsProcessingFeedback) -> dict[str, Any]:
        from ..core.analysis.timeseries import (
            SeriesPoint,
            velocity_time_series,
            write_series_csv,
            write_series_png,
        )

        inputs = self.raster_paths(parameters, self.INPUTS, context) if parameters.get(self.INPUTS) else []
        folder = self.parameterAsFile(parameters, self.FOLDER, context)
        if folder:
            inputs.append(folder)
        if not inputs:
            raise QgsProcessingException("Give velocity products or a folder holding them.")
        named, crs_wkt = self._points(parameters, context)
        points = [SeriesPoint(name, x, y) for name, x, y in named]
        values = velocity_time_series(inputs, points, crs_wkt, ProcessingFeedback(feedback))
        results: dict[str, Any] = {"VALUE_COUNT": sum(1 for v in values if v.speed == v.speed)}
        results[self.OUTPUT_CSV] = write_series_csv(
            self.parameterAsFileOutput(parameters, self.OUTPUT_CSV, context), values)
        png = self.parameterAsFileOutput(parameters, self.OUTPUT_PNG, context)
        if png:
            results[self.OUTPUT_PNG] = write_series_png(png, values)
        return results

    def _points(self, parameters: dict[str, Any], context: QgsProcessingContext
                ) -> tuple[list[tuple[str, float, float]], str]:
        """The named points in one CRS: the layer's points, then the clicked point (in the layer's CRS)."""
        points: list[tuple[str, float, float]] = []
        crs = None
        if not self.is_unset(parameters, self.POINTS):
            source = self.parameterAsSource(parameters, self.POINTS, context)
            points, _ = points_from_source(source, self.parameterAsString(parameters, self.NAME_FIELD, context))
            crs = source.sourceCrs()
        if not self.is_unset(parameters, self.POINT):
            crs = crs or self.parameterAsPointCrs(parameters, self.POINT, context)
            point = self.parameterAsPoint(parameters, self.POINT, context, crs)  # transformed into crs
            points.append(("clicked", point.x(), point.y()))
        if crs is None or not points:
            raise QgsProcessingException("Give a point layer or a point on the map.")
        return points, crs.toWkt()
