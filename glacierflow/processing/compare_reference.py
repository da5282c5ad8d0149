"""Processing algorithm ``glacierflow:compare_reference``: a product against a reference velocity field.

Its parameter names are a public headless API: keep them stable.
"""
from __future__ import annotations

from typing import Any

from qgis.core import (
    QgsProcessing,
    QgsProcessingContext,
    QgsProcessingFeedback,
    QgsProcessingOutputNumber,
    QgsProcessingParameterEnum,
    QgsProcessingParameterFeatureSource,
    QgsProcessingParameterFileDestination,
    QgsProcessingParameterRasterDestination,
    QgsProcessingParameterRasterLayer,
)

from .base import GlacierFlowAlgorithm
from .feedback import ProcessingFeedback

HELP_TEXT = """<p>Compares a velocity product with a reference velocity field such as ITS_LIVE or autoRIFT.</p>
<h3>Inputs</h3>
<ul>
<li><b>Velocity raster</b>: a GlacierFlow product (bands vx and vy in m/yr).</li>
<li><b>Reference vx</b> and <b>reference vy</b>: the reference's components as rasters in any CRS, nodata
honoured. They are resampled onto the product grid (bilinear) and the vectors are <i>rotated</i> from the
reference CRS into the product's at every pixel, so directions stay right between, for example, polar
stereographic (EPSG:3413) and UTM.</li>
<li><b>Reference units</b>: m/yr, or m/day (multiplied by 365.25).</li>
<li><b>Glacier outlines</b> (optional polygons, any CRS): the figures are computed inside them; without
them, over the whole overlap.</li>
</ul>
<h3>Outputs</h3>
<p>Where both fields are valid: the bias (mean of product&nbsp;-&nbsp;reference) of vx, vy and speed, the RMSE
of the vector difference (m/yr), and, where the reference moves at least 10&nbsp;m/yr, the median speed ratio
(product / reference) and the median absolute direction difference (degrees, 0 to 180). They go to the
<b>report</b> (JSON, with a readable .txt beside it), the log and the algorithm's outputs; the
<b>difference raster</b> holds dvx, dvy and dspeed (m/yr, product&nbsp;-&nbsp;reference).</p>"""

UNIT_CHOICES = ["m/yr", "m/day"]


class CompareReferenceAlgorithm(GlacierFlowAlgorithm):
    """A velocity product against a reference velocity field."""

    PRODUCT = "PRODUCT"
    REFERENCE_VX = "REFERENCE_VX"
    REFERENCE_VY = "REFERENCE_VY"
    UNITS = "UNITS"
    OUTLINES = "OUTLINES"
    OUTPUT = "OUTPUT"
    REPORT = "REPORT"
    FIGURES = (("BIAS_VX", "bias_vx", "Bias of vx (m/yr)"), ("BIAS_VY", "bias_vy", "Bias of vy (m/yr)"),
               ("BIAS_SPEED", "bias_speed", "Bias of speed (m/yr)"),
               ("RMSE", "rmse_vector", "RMSE of the vector difference (m/yr)"),
               ("SPEED_RATIO", "median_speed_ratio", "Median speed ratio (product / reference)"),
               ("DIRECTION_DIFFERENCE", "median_abs_direction_difference_deg",
                "Median absolute direction difference (degrees)"),
               ("PIXEL_COUNT", "pixel_count", "Pixels compared"))

    ALGORITHM_ID = "compare_reference"
    DISPLAY_NAME = "Compare with a reference velocity field"
    GROUP = "Validation"
    HELP = HELP_TEXT

    def initAlgorithm(self, config: dict[str, Any] | None = None) -> None:  # noqa: N802
        self.addParameter(QgsProcessingParameterRasterLayer(self.PRODUCT, "Velocity raster (m/yr)"))
        self.addParameter(QgsProcessingParameterRasterLayer(self.REFERENCE_VX, "Reference vx (any CRS)"))
        self.addParameter(QgsProcessingParameterRasterLayer(self.REFERENCE_VY, "Reference vy (any CRS)"))
        self.addParameter(QgsProcessingParameterEnum(self.UNITS, "Reference units", UNIT_CHOICES, defaultValue=0))
        self.addParameter(QgsProcessingParameterFeatureSource(
            self.OUTLINES, "Glacier outlines (statistics inside them)", [QgsProcessing.SourceType.TypeVectorPolygon],
            optional=True))
        self.addParameter(QgsProcessingParameterRasterDestination(
            self.OUTPUT, "Difference raster (dvx, dvy, dspeed; m/yr)", optional=True))
        self.addParameter(QgsProcessingParameterFileDestination(
            self.REPORT, "Comparison report", "JSON files (*.json)"))
        for name, _, label in self.FIGURES:
            self.addOutput(QgsProcessingOutputNumber(name, label))

    def process(self, parameters: dict[str, Any], context: QgsProcessingContext,
                feedback: QgsProcessingFeedback) -> dict[str, Any]:
        from ..core.validation.reference import ReferenceJob, run_reference_comparison

        job = ReferenceJob(
            product=self.raster_path(parameters, self.PRODUCT, context),
            reference_vx=self.raster_path(parameters, self.REFERENCE_VX, context),
            reference_vy=self.raster_path(parameters, self.REFERENCE_VY, context),
            units=UNIT_CHOICES[self.parameterAsEnum(parameters, self.UNITS, context)],
            outlines=self.vector_path(parameters, self.OUTLINES, context, feedback),
            output=self.parameterAsOutputLayer(parameters, self.OUTPUT, context) or None,
            report=self.parameterAsFileOutput(parameters, self.REPORT, context))
        result = run_reference_comparison(job, ProcessingFeedback(feedback))
        outputs: dict[str, Any] = {self.REPORT: result.report}
        for name, key, _ in self.FIGURES:
            outputs[name] = result.statistics[key]
        if result.output:
            outputs[self.OUTPUT] = result.output
        return outputs
