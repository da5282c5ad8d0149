"""Processing algorithm ``glacierflow:velocity_profile``: velocity sampled along lines, as CSV and PNG.

Its parameter names are a public headless API: keep them stable.
"""
from __future__ import annotations

from typing import Any

from qgis.core import (
    QgsProcessing,
    QgsProcessingContext,
    QgsProcessingFeedback,
    QgsProcessingOutputNumber,
    QgsProcessingParameterFeatureSource,
    QgsProcessingParameterField,
    QgsProcessingParameterFileDestination,
    QgsProcessingParameterNumber,
    QgsProcessingParameterRasterLayer,
)

from .analysis_params import lines_from_source
from .base import GlacierFlowAlgorithm

HELP_TEXT = """<p>Samples a velocity product (bands vx, vy in m/yr) along lines (a centreline, a cross-section)
every <b>spacing</b> metres, bilinearly and NaN-aware, and writes a CSV table and a PNG plot.</p>
<p>Columns: <b>line</b> (the name field or the feature id), <b>distance_m</b> from the line's start,
<b>x</b>, <b>y</b> (the product's CRS), <b>vx</b>, <b>vy</b>, <b>speed</b>, <b>along</b> (component in the
direction the line was drawn), <b>across</b> (component towards the line's left), <b>uncertainty</b> (stacks)
and <b>valid</b> (pairs), all velocities in m/yr; empty cells where there is no data. Lines in any CRS are
projected onto the product's.</p>
<p>The plot shows speed (with the uncertainty band when there is one), along and across components against
distance.</p>"""


class VelocityProfileAlgorithm(GlacierFlowAlgorithm):
    """Velocity along lines."""

    INPUT = "INPUT"
    LINES = "LINES"
    NAME_FIELD = "NAME_FIELD"
    SPACING = "SPACING"
    OUTPUT_CSV = "OUTPUT_CSV"
    OUTPUT_PNG = "OUTPUT_PNG"

    ALGORITHM_ID = "velocity_profile"
    DISPLAY_NAME = "Velocity profile along lines"
    GROUP = "Analysis"
    HELP = HELP_TEXT

    def initAlgorithm(self, config: dict[str, Any] | None = None) -> None:  # noqa: N802
        self.addParameter(QgsProcessingParameterRasterLayer(self.INPUT, "Velocity product (vx, vy in m/yr)"))
        self.addParameter(QgsProcessingParameterFeatureSource(
            self.LINES, "Lines (centreline, cross-section)", [QgsProcessing.SourceType.TypeVectorLine]))
        self.addParameter(QgsProcessingParameterField(
            self.NAME_FIELD, "Line name field", parentLayerParameterName=self.LINES, optional=True))
        self.addParameter(QgsProcessingParameterNumber(
            self.SPACING, "Spacing (m)", QgsProcessingParameterNumber.Type.Double, 50.0, minValue=0.001))
        self.addParameter(QgsProcessingParameterFileDestination(
            self.OUTPUT_CSV, "Profile table (CSV)", "CSV files (*.csv)"))
        self.addParameter(QgsProcessingParameterFileDestination(
            self.OUTPUT_PNG, "Profile plot (PNG)", "PNG files (*.png)", optional=True))
        self.addOutput(QgsProcessingOutputNumber("STATION_COUNT", "Number of stations"))

    def process(self, parameters: dict[str, Any], context: QgsProcessingContext,
                feedback: QgsProcessingFeedback) -> dict[str, Any]:
        from ..core.analysis.profile import velocity_profiles, write_profile_csv, write_profile_png

        lines = lines_from_source(self.parameterAsSource(parameters, self.LINES, context),
                                  self.parameterAsString(parameters, self.NAME_FIELD, context))
        profiles = velocity_profiles(self.raster_path(parameters, self.INPUT, context), lines,
                                     self.parameterAsDouble(parameters, self.SPACING, context))
        results: dict[str, Any] = {"STATION_COUNT": sum(p.distance.size for p in profiles)}
        results[self.OUTPUT_CSV] = write_profile_csv(
            self.parameterAsFileOutput(parameters, self.OUTPUT_CSV, context), profiles)
        png = self.parameterAsFileOutput(parameters, self.OUTPUT_PNG, context)
        if png:
            results[self.OUTPUT_PNG] = write_profile_png(png, profiles)
        for profile in profiles:
            feedback.pushInfo(f"Line {profile.line}: {profile.distance.size} stations over "
                              f"{profile.distance[-1]:.0f} m, mean speed {_nanmean(profile.speed):.1f} m/yr.")
        return results


def _nanmean(values: Any) -> float:
    import numpy as np

    finite = values[np.isfinite(values)]
    return float(finite.mean()) if finite.size else float("nan")
