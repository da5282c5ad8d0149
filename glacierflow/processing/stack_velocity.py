"""Processing algorithm ``glacierflow:stack_velocity``: annual velocity from several pair products.

Its parameter names are a public headless API: keep them stable.
"""
from __future__ import annotations

from typing import Any

from qgis.core import (
    QgsProcessing,
    QgsProcessingContext,
    QgsProcessingFeedback,
    QgsProcessingOutputNumber,
    QgsProcessingParameterBoolean,
    QgsProcessingParameterDefinition,
    QgsProcessingParameterMultipleLayers,
    QgsProcessingParameterNumber,
    QgsProcessingParameterRasterDestination,
)

from . import report_step
from .base import GlacierFlowAlgorithm
from .feedback import ProcessingFeedback
from .temporal import load_with_time

HELP_TEXT = """<p>Combines several velocity products of <i>Glacier velocity from an image pair</i> (for example all
pairs of one year) into one annual velocity map with an uncertainty, pixel by pixel and strip by strip.</p>
<p>Every product is read on the first product's grid (others are warped, bilinear). Per pixel, over the
pairs with a valid velocity: pairs whose vector is farther from the median vector than <b>Outlier
threshold</b> robust standard deviations (1.4826&nbsp;x&nbsp;MAD with small-sample factors, both components
together), and farther than the <b>outlier floor</b>, are rejected; with fewer than three pairs nothing is
rejected. vx and vy are the mean of the kept pairs, weighted by each pair's interval (days) when
<b>Weight by interval</b> is on: longer pairs turn the same pixel error into a smaller velocity error.</p>
<h3>Inputs</h3>
<ul>
<li><b>Velocity pairs</b>: products with bands vx and vy (m/yr) and the INTERVAL_DAYS tag.</li>
<li><b>Weight by interval</b>: weights proportional to the interval in days (off: equal weights).</li>
<li><b>Outlier threshold</b> (robust standard deviations, 3 by default; 0 turns rejection off).</li>
<li><b>Outlier floor</b> (m/yr, advanced): differences below it are never outliers; empty: one pixel over
the median interval of the pairs.</li>
</ul>
<h3>Output</h3>
<p>A Cloud Optimized GeoTIFF with bands <b>vx</b>, <b>vy</b>, <b>speed</b> (m/yr), <b>uncertainty</b>
(m/yr: the 1-sigma standard error of the velocity vector, robust spread / sqrt(effective count); NaN where
fewer than two pairs remain), <b>count</b> (pairs kept), and vx_median, vy_median, vx_std, vy_std (m/yr)
and rejected (pairs dropped). The metadata lists the pairs with their dates and intervals. A single pair
still works: the log warns that count is 1 and the uncertainty NaN.</p>"""


class StackVelocityAlgorithm(GlacierFlowAlgorithm):
    """Annual velocity from several pair products."""

    INPUTS = "INPUTS"
    WEIGHT_BY_INTERVAL = "WEIGHT_BY_INTERVAL"
    OUTLIER_K = "OUTLIER_K"
    OUTLIER_FLOOR = "OUTLIER_FLOOR"
    OUTPUT = "OUTPUT"

    ALGORITHM_ID = "stack_velocity"
    DISPLAY_NAME = "Stack velocity pairs"
    GROUP = "Velocity"
    HELP = HELP_TEXT

    def initAlgorithm(self, config: dict[str, Any] | None = None) -> None:  # noqa: N802
        self.addParameter(QgsProcessingParameterMultipleLayers(
            self.INPUTS, "Velocity pairs (products of 'Glacier velocity from an image pair')",
            QgsProcessing.SourceType.TypeRaster))
        self.addParameter(QgsProcessingParameterBoolean(self.WEIGHT_BY_INTERVAL, "Weight by interval", False))
        self.addParameter(QgsProcessingParameterNumber(
            self.OUTLIER_K, "Outlier threshold (robust standard deviations, 0: none)",
            QgsProcessingParameterNumber.Type.Double, 3.0, minValue=0.0))
        floor = QgsProcessingParameterNumber(
            self.OUTLIER_FLOOR, "Outlier floor (m/yr, empty: 1 px over the median interval)",
            QgsProcessingParameterNumber.Type.Double, None, optional=True, minValue=0.0)
        floor.setFlags(floor.flags() | QgsProcessingParameterDefinition.Flag.FlagAdvanced)
        self.addParameter(floor)
        self.addParameter(QgsProcessingParameterRasterDestination(self.OUTPUT, "Annual velocity (m/yr)"))
        report_step.add_report_parameter(self)
        self.addOutput(QgsProcessingOutputNumber("PAIR_COUNT", "Number of pairs"))
        self.addOutput(QgsProcessingOutputNumber("MEDIAN_UNCERTAINTY", "Median uncertainty (m/yr)"))

    def process(self, parameters: dict[str, Any], context: QgsProcessingContext,
                feedback: QgsProcessingFeedback) -> dict[str, Any]:
        from ..core.velocity.stacking import StackJob, run_stack_job

        job = StackJob(
            inputs=self.raster_paths(parameters, self.INPUTS, context),
            output=self.parameterAsOutputLayer(parameters, self.OUTPUT, context),
            weight_by_interval=self.parameterAsBool(parameters, self.WEIGHT_BY_INTERVAL, context),
            outlier_k=self.parameterAsDouble(parameters, self.OUTLIER_K, context),
            outlier_floor=self.optional_double(parameters, self.OUTLIER_FLOOR, context))
        report = report_step.report_path(self, parameters, context)
        result = run_stack_job(job, ProcessingFeedback(feedback))
        load_with_time(context, result.output)
        return {**report_step.velocity_report(report, result.output), self.OUTPUT: result.output,
                "PAIR_COUNT": result.pair_count,
                "MEDIAN_UNCERTAINTY": result.median_uncertainty}
