"""Processing algorithm ``glacierflow:velocity_arrows``: flow arrows of a velocity product as a GeoPackage.

Its parameter names are a public headless API: keep them stable.
"""
from __future__ import annotations

from typing import Any

from qgis.core import (
    QgsProcessing,
    QgsProcessingContext,
    QgsProcessingException,
    QgsProcessingFeedback,
    QgsProcessingLayerPostProcessorInterface,
    QgsProcessingOutputNumber,
    QgsProcessingParameterBoolean,
    QgsProcessingParameterEnum,
    QgsProcessingParameterNumber,
    QgsProcessingParameterRasterLayer,
    QgsProcessingParameterVectorDestination,
    QgsSingleSymbolRenderer,
    QgsVectorLayer,
)

from .base import GlacierFlowAlgorithm
from .styles import arrow_symbol, coloured_arrow_symbol

HELP_TEXT = """<p>Writes flow arrows of a velocity product (bands vx, vy in m/yr) as a GeoPackage point layer, so
every user (toolbox, models, batch, <code>qgis_process</code>) gets the arrows the panel draws.</p>
<p>Each point has <b>vx</b>, <b>vy</b>, <b>speed</b> (m/yr) and <b>direction</b> (degrees clockwise from
north). The layer is styled as arrows rotated by direction, sized and (with <b>Colour by speed</b>)
coloured by speed; the style is saved in the GeoPackage as its default, so it opens styled anywhere.</p>
<h3>Inputs</h3>
<ul>
<li><b>Spacing</b> between arrows and its <b>unit</b> (px or m); 0 gives about 35 arrows along the longer
side.</li>
<li><b>Minimum speed fraction</b>: arrows slower than this share of the 98th-percentile speed are dropped
(still ground shows no dots); 0 keeps every arrow with data.</li>
</ul>"""

UNITS = ["px", "m"]


def arrow_renderer(maximum: float, coloured: bool) -> QgsSingleSymbolRenderer:
    """Arrows sized (and, when ``coloured``, coloured) by speed up to ``maximum`` m/yr."""
    return QgsSingleSymbolRenderer(coloured_arrow_symbol(maximum) if coloured else arrow_symbol(maximum))


class ArrowStyler(QgsProcessingLayerPostProcessorInterface):
    """Styles the loaded output as arrows sized (and coloured) up to ``maximum`` m/yr."""

    instance: ArrowStyler | None = None

    def __init__(self, maximum: float, coloured: bool) -> None:
        super().__init__()
        self.maximum, self.coloured = maximum, coloured

    def postProcessLayer(self, layer: Any, context: QgsProcessingContext,  # noqa: N802
                         feedback: QgsProcessingFeedback) -> None:
        layer.setRenderer(arrow_renderer(self.maximum, self.coloured))
        layer.triggerRepaint()

    @classmethod
    def create(cls, maximum: float, coloured: bool) -> ArrowStyler:
        cls.instance = ArrowStyler(maximum, coloured)  # kept alive: Processing holds only a pointer
        return cls.instance


class VelocityArrowsAlgorithm(GlacierFlowAlgorithm):
    """Flow arrows of a velocity product."""

    INPUT = "INPUT"
    SPACING = "SPACING"
    SPACING_UNIT = "SPACING_UNIT"
    MIN_FRACTION = "MIN_FRACTION"
    COLOUR_BY_SPEED = "COLOUR_BY_SPEED"
    OUTPUT = "OUTPUT"

    ALGORITHM_ID = "velocity_arrows"
    DISPLAY_NAME = "Flow arrows (GeoPackage)"
    GROUP = "Analysis"
    HELP = HELP_TEXT

    def initAlgorithm(self, config: dict[str, Any] | None = None) -> None:  # noqa: N802
        self.addParameter(QgsProcessingParameterRasterLayer(self.INPUT, "Velocity product (vx, vy in m/yr)"))
        self.addParameter(QgsProcessingParameterNumber(
            self.SPACING, "Spacing between arrows (0: about 35 across)", QgsProcessingParameterNumber.Type.Double,
            0.0, minValue=0.0))
        self.addParameter(QgsProcessingParameterEnum(self.SPACING_UNIT, "Spacing unit", UNITS, defaultValue=0))
        self.addParameter(QgsProcessingParameterNumber(
            self.MIN_FRACTION, "Minimum speed (fraction of the 98th-percentile speed)",
            QgsProcessingParameterNumber.Type.Double, 0.05, minValue=0.0, maxValue=1.0))
        self.addParameter(QgsProcessingParameterBoolean(self.COLOUR_BY_SPEED, "Colour by speed", True))
        self.addParameter(QgsProcessingParameterVectorDestination(
            self.OUTPUT, "Flow arrows", QgsProcessing.SourceType.TypeVectorPoint))
        self.addOutput(QgsProcessingOutputNumber("ARROW_COUNT", "Number of arrows"))

    def process(self, parameters: dict[str, Any], context: QgsProcessingContext,
                feedback: QgsProcessingFeedback) -> dict[str, Any]:
        from ..core.analysis.export import ArrowOptions, export_arrows

        output = self.parameterAsOutputLayer(parameters, self.OUTPUT, context)
        if not output.lower().endswith(".gpkg"):
            raise QgsProcessingException(f"OUTPUT must be a GeoPackage (.gpkg), not '{output}'.")
        options = ArrowOptions(self.parameterAsDouble(parameters, self.SPACING, context),
                               UNITS[self.parameterAsEnum(parameters, self.SPACING_UNIT, context)],
                               self.parameterAsDouble(parameters, self.MIN_FRACTION, context))
        path, count = export_arrows(self.raster_path(parameters, self.INPUT, context), output, options)
        feedback.pushInfo(f"{count} arrows written to {path}.")
        coloured = self.parameterAsBool(parameters, self.COLOUR_BY_SPEED, context)
        maximum = save_arrow_style(path, coloured)
        if context.willLoadLayerOnCompletion(path):
            context.layerToLoadOnCompletionDetails(path).setPostProcessor(ArrowStyler.create(maximum, coloured))
        return {self.OUTPUT: path, "ARROW_COUNT": count}


def save_arrow_style(path: str, coloured: bool = True) -> float:
    """Save the arrow style into the GeoPackage as its default style; returns the speed (m/yr) given the
    largest arrow (a rounded 98th percentile)."""
    from ..core.io.style import nice_maximum

    layer = QgsVectorLayer(path, "flow arrows", "ogr")
    speeds = sorted(float(f["speed"]) for f in layer.getFeatures())
    maximum = nice_maximum(speeds[int(0.98 * (len(speeds) - 1))] if speeds else 1.0)
    layer.setRenderer(arrow_renderer(maximum, coloured))
    layer.saveStyleToDatabase("flow arrows", "GlacierFlow arrows: rotated by direction, sized by speed", True, "")
    return maximum
