"""Processing algorithm ``glacierflow:strain_rates``: strain-rate tensor, effective and principal rates.

Its parameter names are a public headless API: keep them stable.
"""
from __future__ import annotations

from typing import Any

import numpy as np
from qgis.core import (
    QgsProcessingContext,
    QgsProcessingFeedback,
    QgsProcessingOutputNumber,
    QgsProcessingParameterNumber,
    QgsProcessingParameterRasterDestination,
    QgsProcessingParameterRasterLayer,
)

from .base import GlacierFlowAlgorithm

HELP_TEXT = """<p>Surface strain rates (1/yr) of a velocity product (bands vx, vy in m/yr): a Cloud Optimized
GeoTIFF with bands <b>exx</b>, <b>eyy</b>, <b>exy</b> (tensor components in map axes, x east, y north),
<b>effective</b> (second invariant with incompressible ice, sqrt(exx² + eyy² + exx·eyy + exy²)),
<b>e1</b>, <b>e2</b> (principal rates, e1 the most extensional), <b>e1_direction</b> (degrees clockwise
from north, an axis 0-180) and <b>dilatation</b> (exx + eyy). It loads styled by the effective strain
rate.</p>
<p>Derivatives are central differences (one-sided beside holes and edges), then smoothed with a NaN-aware
Gaussian whose standard deviation is half the <b>smoothing length</b> (m). A few ice thicknesses is usual
for glaciological interpretation; empty uses four pixels. No-data pixels stay no data.</p>"""


class StrainRatesAlgorithm(GlacierFlowAlgorithm):
    """Strain rates of a velocity product."""

    INPUT = "INPUT"
    SMOOTHING = "SMOOTHING"
    OUTPUT = "OUTPUT"

    ALGORITHM_ID = "strain_rates"
    DISPLAY_NAME = "Strain rates"
    GROUP = "Analysis"
    HELP = HELP_TEXT

    def initAlgorithm(self, config: dict[str, Any] | None = None) -> None:  # noqa: N802
        self.addParameter(QgsProcessingParameterRasterLayer(self.INPUT, "Velocity product (vx, vy in m/yr)"))
        self.addParameter(QgsProcessingParameterNumber(
            self.SMOOTHING, "Smoothing length (m, empty: four pixels)", QgsProcessingParameterNumber.Type.Double,
            None, optional=True, minValue=0.0))
        self.addParameter(QgsProcessingParameterRasterDestination(self.OUTPUT, "Strain rates (1/yr)"))
        self.addOutput(QgsProcessingOutputNumber("MEDIAN_EFFECTIVE", "Median effective strain rate (1/yr)"))

    def process(self, parameters: dict[str, Any], context: QgsProcessingContext,
                feedback: QgsProcessingFeedback) -> dict[str, Any]:
        from ..core.analysis.strain import write_strain_rates

        output, rates = write_strain_rates(self.raster_path(parameters, self.INPUT, context),
                                           self.parameterAsOutputLayer(parameters, self.OUTPUT, context),
                                           self.optional_double(parameters, self.SMOOTHING, context))
        effective = rates.effective[np.isfinite(rates.effective)]
        median = float(np.median(effective)) if effective.size else float("nan")
        feedback.pushInfo(f"Median effective strain rate {median:.4g} /yr over {effective.size} pixels.")
        return {self.OUTPUT: output, "MEDIAN_EFFECTIVE": median}
