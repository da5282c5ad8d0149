"""Processing algorithm ``glacierflow:flux_gate``: ice discharge through gates, in km3/yr and Gt/yr.

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
    QgsProcessingParameterDefinition,
    QgsProcessingParameterFeatureSink,
    QgsProcessingParameterFeatureSource,
    QgsProcessingParameterField,
    QgsProcessingParameterFileDestination,
    QgsProcessingParameterNumber,
    QgsProcessingParameterRasterLayer,
)

from .analysis_params import lines_from_source
from .base import GlacierFlowAlgorithm
from .feedback import ProcessingFeedback

HELP_TEXT = """<p>Ice discharge through flux gates (lines across a glacier): the velocity normal to the gate
(m/yr) times the ice thickness (m) times a <b>depth-averaging factor</b> (surface to depth-averaged speed,
0.9 by default; 1 for flow by sliding), integrated along the gate at stations every <b>spacing</b> metres
(default: one pixel).</p>
<p>Sign: positive flux crosses the gate from its left to its right, looking along the direction the line
was drawn. Stations without velocity or thickness are left out; the covered share is reported.</p>
<h3>Uncertainty (1 sigma)</h3>
<p>Per station, from the velocity uncertainty (the product's uncertainty band, or the constant given) and
the thickness uncertainty (constant m plus a fraction of the thickness): f·w·sqrt((H·σu)² + (un·σH)²).
The gate's uncertainty sums them (errors correlated along a gate, the honest bound); the table also gives
the independent-error value, a lower bound.</p>
<h3>Output</h3>
<p>A table per gate: length, covered fraction, flux in m3/yr, km3/yr and Gt/yr (ice density 917 kg/m3 by
default) with uncertainties; optionally a CSV of every station. The numbers FLUX_KM3, FLUX_GT and their
uncertainties are the sums over all gates.</p>"""


class FluxGateAlgorithm(GlacierFlowAlgorithm):
    """Ice discharge through gates."""

    INPUT = "INPUT"
    GATES = "GATES"
    NAME_FIELD = "NAME_FIELD"
    THICKNESS = "THICKNESS"
    THICKNESS_CONSTANT = "THICKNESS_CONSTANT"
    THICKNESS_UNCERTAINTY = "THICKNESS_UNCERTAINTY"
    THICKNESS_UNCERTAINTY_FRACTION = "THICKNESS_UNCERTAINTY_FRACTION"
    VELOCITY_UNCERTAINTY = "VELOCITY_UNCERTAINTY"
    DEPTH_FACTOR = "DEPTH_FACTOR"
    ICE_DENSITY = "ICE_DENSITY"
    SPACING = "SPACING"
    OUTPUT = "OUTPUT"
    OUTPUT_STATIONS = "OUTPUT_STATIONS"

    ALGORITHM_ID = "flux_gate"
    DISPLAY_NAME = "Ice flux through gates"
    GROUP = "Analysis"
    HELP = HELP_TEXT

    def initAlgorithm(self, config: dict[str, Any] | None = None) -> None:  # noqa: N802
        double = QgsProcessingParameterNumber.Type.Double
        self.addParameter(QgsProcessingParameterRasterLayer(self.INPUT, "Velocity product (vx, vy in m/yr)"))
        self.addParameter(QgsProcessingParameterFeatureSource(
            self.GATES, "Flux gates (lines)", [QgsProcessing.SourceType.TypeVectorLine]))
        self.addParameter(QgsProcessingParameterField(
            self.NAME_FIELD, "Gate name field", parentLayerParameterName=self.GATES, optional=True))
        self.addParameter(QgsProcessingParameterRasterLayer(
            self.THICKNESS, "Ice thickness raster (m, band 1)", optional=True))
        self.addParameter(QgsProcessingParameterNumber(
            self.THICKNESS_CONSTANT, "Constant ice thickness (m, without a raster)", double, None, optional=True,
            minValue=0.0))
        self.addParameter(QgsProcessingParameterNumber(
            self.THICKNESS_UNCERTAINTY, "Thickness uncertainty (m, 1 sigma)", double, 0.0, minValue=0.0))
        self.addParameter(QgsProcessingParameterNumber(
            self.THICKNESS_UNCERTAINTY_FRACTION, "Thickness uncertainty (fraction of the thickness)", double, 0.1,
            minValue=0.0, maxValue=1.0))
        self.addParameter(QgsProcessingParameterNumber(
            self.VELOCITY_UNCERTAINTY, "Velocity uncertainty (m/yr, empty: the product's uncertainty band)",
            double, None, optional=True, minValue=0.0))
        self.addParameter(QgsProcessingParameterNumber(
            self.DEPTH_FACTOR, "Depth-averaging factor (depth-averaged / surface speed)", double, 0.9,
            minValue=0.01, maxValue=1.2))
        density = QgsProcessingParameterNumber(self.ICE_DENSITY, "Ice density (kg/m3)", double, 917.0, minValue=1.0)
        spacing = QgsProcessingParameterNumber(self.SPACING, "Station spacing (m, empty: one pixel)", double, None,
                                               optional=True, minValue=0.001)
        for advanced in (density, spacing):
            advanced.setFlags(advanced.flags() | QgsProcessingParameterDefinition.Flag.FlagAdvanced)
            self.addParameter(advanced)
        self.addParameter(QgsProcessingParameterFeatureSink(
            self.OUTPUT, "Flux per gate", QgsProcessing.SourceType.TypeVector))
        self.addParameter(QgsProcessingParameterFileDestination(
            self.OUTPUT_STATIONS, "Stations (CSV)", "CSV files (*.csv)", optional=True, createByDefault=False))
        for name, label in (("FLUX_KM3", "Flux (km3/yr)"), ("FLUX_GT", "Flux (Gt/yr)"),
                            ("UNCERTAINTY_KM3", "Flux uncertainty (km3/yr)"),
                            ("UNCERTAINTY_GT", "Flux uncertainty (Gt/yr)")):
            self.addOutput(QgsProcessingOutputNumber(name, label))

    def process(self, parameters: dict[str, Any], context: QgsProcessingContext,
                feedback: QgsProcessingFeedback) -> dict[str, Any]:
        from ..core.analysis.figures import write_csv
        from ..core.analysis.fluxgate import SUMMARY_COLUMNS, Thickness, flux_gates, station_rows, summary_rows

        raster = self.raster_path(parameters, self.THICKNESS, context) \
            if not self.is_unset(parameters, self.THICKNESS) else ""
        constant = self.optional_double(parameters, self.THICKNESS_CONSTANT, context)
        if not raster and not constant:
            raise QgsProcessingException("Give an ice-thickness raster or a constant thickness (m).")
        thickness = Thickness(raster, constant or 0.0,
                              self.parameterAsDouble(parameters, self.THICKNESS_UNCERTAINTY, context),
                              self.parameterAsDouble(parameters, self.THICKNESS_UNCERTAINTY_FRACTION, context))
        gates = lines_from_source(self.parameterAsSource(parameters, self.GATES, context),
                                  self.parameterAsString(parameters, self.NAME_FIELD, context))
        results = flux_gates(
            self.raster_path(parameters, self.INPUT, context), gates, thickness,
            self.optional_double(parameters, self.SPACING, context),
            self.parameterAsDouble(parameters, self.DEPTH_FACTOR, context),
            self.optional_double(parameters, self.VELOCITY_UNCERTAINTY, context),
            self.parameterAsDouble(parameters, self.ICE_DENSITY, context), ProcessingFeedback(feedback))
        columns = [(name, "string" if name == "gate" else "double") for name in SUMMARY_COLUMNS]
        outputs: dict[str, Any] = {self.OUTPUT: self.write_table(parameters, self.OUTPUT, context, columns,
                                                                 summary_rows(results))}
        stations = self.parameterAsFileOutput(parameters, self.OUTPUT_STATIONS, context)
        if stations:
            from ..core.analysis.fluxgate import STATION_COLUMNS

            outputs[self.OUTPUT_STATIONS] = write_csv(stations, STATION_COLUMNS, station_rows(results))
        total = sum(r.total for r in results)
        sigma = sum(r.uncertainty for r in results)
        density = results[0].ice_density
        for r in results:
            feedback.pushInfo(f"Gate {r.gate}: {r.total / 1e9:.4g} ± {r.uncertainty / 1e9:.2g} km3/yr "
                              f"({r.gigatonnes(r.total):.4g} Gt/yr), {100 * r.covered_fraction:.0f} % covered.")
        outputs.update(FLUX_KM3=total / 1e9, FLUX_GT=total * density / 1e12, UNCERTAINTY_KM3=sigma / 1e9,
                       UNCERTAINTY_GT=sigma * density / 1e12)
        return outputs
