"""Processing algorithm ``glacierflow:stable_ground``: stable-ground statistics and offset correction.

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
    QgsProcessingParameterBoolean,
    QgsProcessingParameterFeatureSource,
    QgsProcessingParameterFileDestination,
    QgsProcessingParameterNumber,
    QgsProcessingParameterRasterDestination,
    QgsProcessingParameterRasterLayer,
)

from .base import GlacierFlowAlgorithm
from .feedback import ProcessingFeedback

HELP_TEXT = """<p>Measures what a velocity product shows on ground that should not move (bare rock), the
co-registration and tracking error that remains, and optionally removes the offset.</p>
<h3>Inputs</h3>
<ul>
<li><b>Velocity raster</b>: a GlacierFlow product (bands vx, vy and speed in m/yr), a pair or a stack.</li>
<li><b>Stable areas</b> (optional polygons, any CRS): the stable ground. With glacier outlines as well,
the buffered glaciers are cut out of them.</li>
<li><b>Glacier outlines</b> (optional polygons, any CRS): without stable areas, everything off the glaciers
is stable ground. Without either, the product's own <i>glacier</i> band is used when it has one.</li>
<li><b>Buffer</b> (m): the glaciers are grown by it before taking off-glacier ground, leaving out margins
where outlines are uncertain. Empty: the larger of 2 pixels and 30 m.</li>
<li><b>Correct the offset</b>: subtract the median offsets of vx and vy and recompute speed.</li>
</ul>
<h3>Outputs</h3>
<p>Over the valid stable pixels, for vx and vy (m/yr): the median offset, the spread (1.4826&nbsp;x&nbsp;MAD
and the standard deviation), the half-width of the 95&nbsp;% range (half of p97.5&nbsp;-&nbsp;p2.5) and the
pixel count, with the offset also in pixels over the pair's interval. They go to the <b>report</b>
(JSON, with a readable .txt beside it), the log, and the metadata (STABLE_*) of the <b>output raster</b>,
a copy of the input, corrected when asked.</p>"""


class StableGroundAlgorithm(GlacierFlowAlgorithm):
    """Stable-ground statistics of a velocity product."""

    INPUT = "INPUT"
    GLACIER_OUTLINES = "GLACIER_OUTLINES"
    STABLE_AREAS = "STABLE_AREAS"
    BUFFER = "BUFFER"
    CORRECT = "CORRECT"
    OUTPUT = "OUTPUT"
    REPORT = "REPORT"

    ALGORITHM_ID = "stable_ground"
    DISPLAY_NAME = "Stable-ground statistics"
    GROUP = "Validation"
    HELP = HELP_TEXT

    def initAlgorithm(self, config: dict[str, Any] | None = None) -> None:  # noqa: N802
        self.addParameter(QgsProcessingParameterRasterLayer(self.INPUT, "Velocity raster (m/yr)"))
        self.addParameter(QgsProcessingParameterFeatureSource(
            self.GLACIER_OUTLINES, "Glacier outlines (off-glacier ground is stable)",
            [QgsProcessing.SourceType.TypeVectorPolygon], optional=True))
        self.addParameter(QgsProcessingParameterFeatureSource(
            self.STABLE_AREAS, "Stable areas (polygons of ground that does not move)",
            [QgsProcessing.SourceType.TypeVectorPolygon], optional=True))
        self.addParameter(QgsProcessingParameterNumber(
            self.BUFFER, "Buffer around the glaciers (m, empty: max(2 px, 30 m))",
            QgsProcessingParameterNumber.Type.Double, None, optional=True, minValue=0.0))
        self.addParameter(QgsProcessingParameterBoolean(self.CORRECT, "Correct the offset", False))
        self.addParameter(QgsProcessingParameterRasterDestination(
            self.OUTPUT, "Velocity with statistics (corrected when asked)", optional=True, createByDefault=False))
        self.addParameter(QgsProcessingParameterFileDestination(
            self.REPORT, "Stable-ground report", "JSON files (*.json)"))
        for name, label in (("VX_OFFSET", "Median vx offset (m/yr)"), ("VY_OFFSET", "Median vy offset (m/yr)"),
                            ("PIXEL_COUNT", "Stable pixels")):
            self.addOutput(QgsProcessingOutputNumber(name, label))

    def process(self, parameters: dict[str, Any], context: QgsProcessingContext,
                feedback: QgsProcessingFeedback) -> dict[str, Any]:
        from ..core.validation.stable_ground import StableGroundJob, run_stable_ground

        output = self.parameterAsOutputLayer(parameters, self.OUTPUT, context) or None
        correct = self.parameterAsBool(parameters, self.CORRECT, context)
        if correct and not output:
            raise QgsProcessingException("Correct the offset: choose an output raster for the corrected velocity.")
        job = StableGroundJob(
            product=self.raster_path(parameters, self.INPUT, context),
            stable_areas=self.vector_path(parameters, self.STABLE_AREAS, context, feedback),
            glacier_outlines=self.vector_path(parameters, self.GLACIER_OUTLINES, context, feedback),
            buffer_m=self.optional_double(parameters, self.BUFFER, context),
            correct=correct, output=output,
            report=self.parameterAsFileOutput(parameters, self.REPORT, context))
        result = run_stable_ground(job, ProcessingFeedback(feedback))
        stats = result.statistics
        outputs = {self.REPORT: result.report, "VX_OFFSET": stats["vx"]["median"],
                   "VY_OFFSET": stats["vy"]["median"], "PIXEL_COUNT": stats["pixel_count"]}
        if result.output:
            outputs[self.OUTPUT] = result.output
        return outputs
