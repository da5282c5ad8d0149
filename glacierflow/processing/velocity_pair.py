"""Processing algorithm ``glacierflow:velocity_pair``: glacier velocity from an image pair.

Its parameter names are a public headless API: keep them stable.
"""
from __future__ import annotations

from typing import Any

from qgis.core import (
    QgsProcessing,
    QgsProcessingContext,
    QgsProcessingFeedback,
    QgsProcessingParameterBand,
    QgsProcessingParameterDefinition,
    QgsProcessingParameterEnum,
    QgsProcessingParameterFeatureSource,
    QgsProcessingParameterFile,
    QgsProcessingParameterNumber,
    QgsProcessingParameterRasterDestination,
    QgsProcessingParameterRasterLayer,
    QgsProcessingParameterString,
)

from ..core.velocity.flow import ENGINE_NAMES, default_engine_name
from . import grid_params, report_step
from .base import GlacierFlowAlgorithm
from .feedback import ProcessingFeedback
from .temporal import load_with_time

HELP_TEXT = """<p>Maps glacier surface velocity from two optical images of the same glacier
(for example Sentinel-2 band 8 or Landsat-8/9 band 8), following
<i>Deep Glacier Image Velocimetry</i> (Thomole, Piggott and Hughes).</p>
<p>Image B is warped onto image A's grid over their common area. Both are robustly
normalised and Sobel-filtered in x and y, cut into overlapping tiles, tracked with the chosen
optical-flow engine, filtered with a 9&nbsp;x&nbsp;9 median, checked forward against backward,
and reassembled with smooth weights. Displacements (px) become velocities (m/yr, 365.25-day
year) with the exact time between the acquisitions.</p>
<h3>Inputs</h3>
<ul>
<li><b>Image A / Image B</b>: the earlier and the later image; single-band, or choose the band.
Any CRS; images in degrees are put on their UTM zone.</li>
<li><b>Date A / Date B</b> (optional): acquisition times, ISO-8601 (2021-08-01 or
2021-08-01T10:30:21Z). When empty they are read from the file's ACQUISITION_DATETIME tag, a
Landsat MTL file beside it, or a Landsat / Sentinel-2 product name.</li>
<li><b>Glacier outlines</b> (optional): RGI polygons; adds a glacier band to the output.</li>
<li><b>Engine</b>: <code>raft</code> (a RAFT-small network trained on synthetic glacier pairs with
exact displacements, shipped as an ONNX model in the plugin's <code>models</code> folder and run with
onnxruntime; the default when that model is present), <code>horn_schunck</code> (multi-level
Horn-Schunck with warping; the default otherwise) or <code>farneback</code> (OpenCV Farneback with
the papers' parameters). RAFT runs on an NVIDIA GPU when onnxruntime-gpu is installed and on the CPU
otherwise; the log says which execution provider ran it (for example
<code>CPUExecutionProvider</code>). It needs the <code>onnxruntime</code> Python package.</li>
<li><b>Tile size / overlap</b> (px): 256 and 64 by default.</li>
<li><b>Output CRS / pixel size / extent</b> (advanced, optional): a grid of your own instead of image
A's; the grid is then north-up with its edges on whole multiples of the pixel size (m).</li>
<li><b>RAFT model</b> (advanced, optional): an .onnx file of your own, for example the output of
<i>Fine-tune RAFT on your image pairs</i>; empty: the shipped model.</li>
</ul>
<h3>Output</h3>
<p>A Cloud Optimized GeoTIFF with bands <b>vx</b> (east, m/yr), <b>vy</b> (north, m/yr),
<b>speed</b> (m/yr), <b>valid</b> (1 trusted, 0 failed the forward-backward check; velocities
there are NaN) and, with outlines, <b>glacier</b>. It loads styled by speed with a legend in m/yr.
The metadata holds the acquisition times, the interval in days and the engine; with RAFT also the
execution provider (ENGINE_PROVIDER) and the model's name and version.</p>"""


class VelocityPairAlgorithm(GlacierFlowAlgorithm):
    """Glacier velocity from an image pair."""

    IMAGE_A = "IMAGE_A"
    IMAGE_B = "IMAGE_B"
    BAND_A = "BAND_A"
    BAND_B = "BAND_B"
    DATE_A = "DATE_A"
    DATE_B = "DATE_B"
    OUTLINES = "OUTLINES"
    ENGINE = "ENGINE"
    TILE_SIZE = "TILE_SIZE"
    OVERLAP = "OVERLAP"
    MODEL = "MODEL"
    OUTPUT = "OUTPUT"

    ALGORITHM_ID = "velocity_pair"
    DISPLAY_NAME = "Glacier velocity from an image pair"
    GROUP = "Velocity"
    HELP = HELP_TEXT

    def initAlgorithm(self, config: dict[str, Any] | None = None) -> None:  # noqa: N802
        self.addParameter(QgsProcessingParameterRasterLayer(self.IMAGE_A, "Image A (earlier)"))
        self.addParameter(QgsProcessingParameterRasterLayer(self.IMAGE_B, "Image B (later)"))
        self.addParameter(QgsProcessingParameterBand(self.BAND_A, "Band of image A", None, self.IMAGE_A,
                                                     optional=True))
        self.addParameter(QgsProcessingParameterBand(self.BAND_B, "Band of image B", None, self.IMAGE_B,
                                                     optional=True))
        self.addParameter(QgsProcessingParameterString(self.DATE_A, "Date A (ISO-8601, empty: from metadata)",
                                                       optional=True))
        self.addParameter(QgsProcessingParameterString(self.DATE_B, "Date B (ISO-8601, empty: from metadata)",
                                                       optional=True))
        self.addParameter(QgsProcessingParameterFeatureSource(
            self.OUTLINES, "Glacier outlines (RGI polygons)",
                [QgsProcessing.SourceType.TypeVectorPolygon], optional=True))
        self.addParameter(QgsProcessingParameterEnum(
            self.ENGINE, "Optical-flow engine", options=list(ENGINE_NAMES), defaultValue=default_engine_name(),
            usesStaticStrings=True))
        self.addParameter(QgsProcessingParameterNumber(
            self.TILE_SIZE, "Tile size (px)",
                QgsProcessingParameterNumber.Type.Integer, 256, minValue=32, maxValue=4096))
        self.addParameter(QgsProcessingParameterNumber(
            self.OVERLAP, "Tile overlap (px)",
                QgsProcessingParameterNumber.Type.Integer, 64, minValue=0, maxValue=2048))
        grid_params.add_grid_parameters(self, "Output pixel size (m, 0: image A's)",
                                        "Output CRS (empty: image A's; the automatic one for an image in degrees)",
                                        extent=True)
        model = QgsProcessingParameterFile(self.MODEL, "RAFT model (.onnx)", extension="onnx", optional=True)
        model.setFlags(model.flags() | QgsProcessingParameterDefinition.Flag.FlagAdvanced)
        self.addParameter(model)
        self.addParameter(QgsProcessingParameterRasterDestination(self.OUTPUT, "Velocity (m/yr)"))
        report_step.add_report_parameter(self)

    def process(self, parameters: dict[str, Any], context: QgsProcessingContext,
                feedback: QgsProcessingFeedback) -> dict[str, Any]:
        from ..core.velocity.pair import PairJob, run_pair_job
        from ..core.velocity.plausibility import check_speeds

        job = PairJob(
            image_a=self.raster_path(parameters, self.IMAGE_A, context),
            image_b=self.raster_path(parameters, self.IMAGE_B, context),
            output=self.parameterAsOutputLayer(parameters, self.OUTPUT, context),
            band_a=self._band(parameters, self.BAND_A, context),
            band_b=self._band(parameters, self.BAND_B, context),
            date_a=self.parameterAsString(parameters, self.DATE_A, context).strip() or None,
            date_b=self.parameterAsString(parameters, self.DATE_B, context).strip() or None,
            outlines=self.vector_path(parameters, self.OUTLINES, context, feedback),
            engine=self.parameterAsEnumString(parameters, self.ENGINE, context),
            tile_size=self.parameterAsInt(parameters, self.TILE_SIZE, context),
            overlap=self.parameterAsInt(parameters, self.OVERLAP, context),
            grid_spec=grid_params.grid_spec(
                self, parameters, context, self.parameterAsRasterLayer(parameters, self.IMAGE_A, context).crs()),
            engine_params=self.raft_model(parameters, context),
        )
        report = report_step.report_path(self, parameters, context)
        core_feedback = ProcessingFeedback(feedback)
        result = run_pair_job(job, core_feedback)
        check_speeds(result.p95_speed, core_feedback)
        load_with_time(context, result.output)
        return {self.OUTPUT: result.output, **report_step.velocity_report(report, result.output, job.outlines)}

    def _band(self, parameters: dict[str, Any], name: str, context: QgsProcessingContext) -> int | None:
        if self.is_unset(parameters, name):
            return None
        return self.parameterAsInt(parameters, name, context) or None
