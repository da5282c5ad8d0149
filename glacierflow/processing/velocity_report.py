"""Processing algorithm ``glacierflow:velocity_report``: an HTML report with pictures of a velocity product.

Its parameter names are a public headless API: keep them stable.
"""
from __future__ import annotations

from typing import Any

from qgis.core import (
    QgsProcessing,
    QgsProcessingContext,
    QgsProcessingFeedback,
    QgsProcessingParameterEnum,
    QgsProcessingParameterFeatureSource,
    QgsProcessingParameterFile,
    QgsProcessingParameterFileDestination,
    QgsProcessingParameterRasterLayer,
    QgsProcessingParameterString,
)

from .base import GlacierFlowAlgorithm

HELP_TEXT = """<p>A self-contained HTML page (pictures embedded, no network) about a velocity product
(bands vx, vy in m/yr), each picture with the numbers behind it:</p>
<ul>
<li>a summary (kind, dates, interval, engine, grid, share of pixels with velocity, speed percentiles);</li>
<li>the speed map with flow arrows, and the speed histogram;</li>
<li>with <b>glacier outlines</b>, <b>stable areas</b> or a product that has a glacier band: vx against vy on
stable ground (should scatter around zero), with the median offsets and NMAD;</li>
<li>with <b>GPS stakes</b> (a CSV in WGS 84 or a vector file with vx, vy or speed fields): measured against
estimated speed, bias and RMSE;</li>
<li>with a <b>reference</b> (x and y components, rasters or NETCDF:"file.nc":var, m/yr or m/day): product
against reference speed, biases, RMSE, speed ratio and direction difference.</li>
</ul>
<p>A section whose input cannot be used says why; the rest of the page is still written. The pair, stack,
annual and forecast algorithms write the same page through their optional <b>Report with pictures</b>
output.</p>"""

REFERENCE_UNITS = ["m/yr", "m/day"]


class VelocityReportAlgorithm(GlacierFlowAlgorithm):
    """An HTML report of a velocity product."""

    INPUT = "INPUT"
    GLACIER_OUTLINES = "GLACIER_OUTLINES"
    STABLE_AREAS = "STABLE_AREAS"
    STAKES = "STAKES"
    REFERENCE_VX = "REFERENCE_VX"
    REFERENCE_VY = "REFERENCE_VY"
    REFERENCE_UNITS = "REFERENCE_UNITS"
    TITLE = "TITLE"
    OUTPUT = "OUTPUT"

    ALGORITHM_ID = "velocity_report"
    DISPLAY_NAME = "Velocity report with pictures (HTML)"
    GROUP = "Analysis"
    HELP = HELP_TEXT

    def initAlgorithm(self, config: dict[str, Any] | None = None) -> None:  # noqa: N802
        self.addParameter(QgsProcessingParameterRasterLayer(self.INPUT, "Velocity product (vx, vy in m/yr)"))
        for name, label in ((self.GLACIER_OUTLINES, "Glacier outlines (off-glacier ground is stable)"),
                            (self.STABLE_AREAS, "Stable areas (polygons)")):
            self.addParameter(QgsProcessingParameterFeatureSource(
                name, label, [QgsProcessing.SourceType.TypeVectorPolygon], optional=True))
        self.addParameter(QgsProcessingParameterFile(
            self.STAKES, "GPS stakes (CSV in WGS 84, GeoPackage or shapefile)", optional=True))
        for name, label in ((self.REFERENCE_VX, "Reference vx (raster or NETCDF:\"file.nc\":var)"),
                            (self.REFERENCE_VY, "Reference vy")):
            self.addParameter(QgsProcessingParameterString(name, label, optional=True))
        self.addParameter(QgsProcessingParameterEnum(
            self.REFERENCE_UNITS, "Reference units", REFERENCE_UNITS, defaultValue=0))
        self.addParameter(QgsProcessingParameterString(self.TITLE, "Title", optional=True))
        self.addParameter(QgsProcessingParameterFileDestination(self.OUTPUT, "Report (HTML)", "HTML files (*.html)"))

    def process(self, parameters: dict[str, Any], context: QgsProcessingContext,
                feedback: QgsProcessingFeedback) -> dict[str, Any]:
        from ..core.analysis.report import ReferenceInput, VelocityReportInputs, velocity_report

        vx = self.parameterAsString(parameters, self.REFERENCE_VX, context).strip()
        vy = self.parameterAsString(parameters, self.REFERENCE_VY, context).strip()
        if bool(vx) != bool(vy):
            from qgis.core import QgsProcessingException

            raise QgsProcessingException("Give both reference components (vx and vy), or neither.")
        reference = ReferenceInput(vx, vy, REFERENCE_UNITS[self.parameterAsEnum(
            parameters, self.REFERENCE_UNITS, context)]) if vx else None
        inputs = VelocityReportInputs(
            stable_areas=self.vector_path(parameters, self.STABLE_AREAS, context, feedback),
            glacier_outlines=self.vector_path(parameters, self.GLACIER_OUTLINES, context, feedback),
            stakes=self.parameterAsFile(parameters, self.STAKES, context) or None, reference=reference)
        output = velocity_report(self.raster_path(parameters, self.INPUT, context),
                                 self.parameterAsFileOutput(parameters, self.OUTPUT, context), inputs,
                                 self.parameterAsString(parameters, self.TITLE, context))
        return {self.OUTPUT: output}
