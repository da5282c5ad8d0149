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
    QgsProcessingParameterBoolean,
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
from ..core.velocity.preprocess import PREPROCESSING_MODES
from . import grid_params, report_step
from .base import GlacierFlowAlgorithm
from .feedback import ProcessingFeedback
from .temporal import load_with_time

HELP_TEXT = """<p>Maps glacier surface velocity from two optical images of the same glacier
(for example Sentinel-2 band 8 or Landsat-8/9 band 8).</p>
<p>Image B is warped onto image A's grid over their common area. Both are robustly normalised and
turned into the chosen engine's input (its preprocessing), tracked forward and backward in
full-resolution blocks with wide margins (so motions of tens of pixels are found near block edges
too), checked forward against backward, filtered with a 15&nbsp;x&nbsp;15 px NaN-aware median and
masked where the texture is not above the image's own noise. Displacements (px) become velocities
(m/yr, 365.25-day year) with the exact time between the acquisitions.</p>
<h3>Inputs</h3>
<ul>
<li><b>Image A / Image B</b>: the earlier and the later image; single-band, or choose the band.
Any CRS; images in degrees are put on their UTM zone.</li>
<li><b>Date A / Date B</b> (optional): acquisition times, ISO-8601 (2021-08-01 or
2021-08-01T10:30:21Z). When empty they are read from the file's ACQUISITION_DATETIME tag, a
Landsat MTL file beside it, or a Landsat / Sentinel-2 product name.</li>
<li><b>Glacier outlines</b> (optional): RGI polygons; adds a glacier band to the output.</li>
<li><b>Stable areas</b> (optional) and <b>Correct the stable-ground offset</b>: the median velocity of
stable ground (the stable-area polygons, else everything off the glacier outlines, buffered) is the
co-registration offset of the two images; when asked it is subtracted from vx and vy, and it is
reported in the log and in the product's metadata (STABLE_*).</li>
<li><b>Engine</b>: <code>hybrid</code> (the default and the most accurate engine on real satellite
texture with known motion: OpenCV DIS as the start, least-squares chip matching where it agrees,
then OpenCV's variational refinement at full resolution; about 0.03 px median error under 3 px of
motion, 0.13 px at 20-30 px, see bench/RESULTS.md), <code>dis</code> (OpenCV Dense Inverse Search:
the fastest, second in accuracy), <code>ncc</code> (normalised cross-correlation of 32 px chips every
8 px with a least-squares sub-pixel peak, the method of autoRIFT/ITS_LIVE, COSI-Corr and GIV; precise
on slow ice, weaker in steep shear margins), <code>horn_schunck</code> (multi-level Horn-Schunck with
warping, written here), <code>farneback</code> (OpenCV Farneback with the papers' parameters) and
<code>raft</code> (a RAFT network run with onnxruntime: no model ships with the plugin; it runs only
with a model file in <b>RAFT model</b> or one placed in the plugin's <code>models/raft</code> folder,
and the log says which execution provider ran it).</li>
<li><b>Preprocessing</b>: <code>default</code> uses each engine's measured best input:
<code>wallis</code> (a local-contrast filter as autoRIFT uses, for hybrid, dis, ncc and farneback) or
<code>sobel</code> (the <i>Deep Glacier Image Velocimetry</i> paper's Sobel gradients, for
horn_schunck and raft, whose model was trained on them). <code>sobel</code>, <code>wallis</code>,
<code>raw</code> (normalised intensity) and <code>gradient</code> (derivatives of a 1 px Gaussian) can
be chosen for any classical engine; the paper's choice is <code>sobel</code>.</li>
<li><b>Tile size / overlap</b> (px): RAFT's tiles, 256 and 64 by default (the classical engines work on
whole blocks).</li>
<li><b>Output CRS / pixel size / extent</b> (advanced, optional): a grid of your own instead of image
A's; the grid is then north-up with its edges on whole multiples of the pixel size (m).</li>
<li><b>Fastest expected speed</b> (advanced, m/yr, 0 by default): with the <code>ncc</code> engine
its search range is this speed's displacement over the pair's interval plus 4 px (as autoRIFT and
GIV size their search from a maximum speed); 0 keeps the engine's 36 px.</li>
<li><b>RAFT model</b> (advanced, optional): an .onnx file of your own, for example the output of
<i>Fine-tune RAFT on your image pairs</i>.</li>
</ul>
<h3>Output</h3>
<p>A Cloud Optimized GeoTIFF with bands <b>vx</b> (east, m/yr), <b>vy</b> (north, m/yr),
<b>speed</b> (m/yr), <b>valid</b> (1 trusted, 0 failed the forward-backward check or the texture test;
velocities there are NaN) and, with outlines, <b>glacier</b>. It loads styled by speed with a legend in
m/yr. The metadata holds the acquisition times, the interval in days, the engine and its
preprocessing; with RAFT also the execution provider (ENGINE_PROVIDER) and the model's name and
version.</p>"""

PREPROCESSING_OPTIONS = ("default",) + PREPROCESSING_MODES


class VelocityPairAlgorithm(GlacierFlowAlgorithm):
    """Glacier velocity from an image pair."""

    IMAGE_A = "IMAGE_A"
    IMAGE_B = "IMAGE_B"
    BAND_A = "BAND_A"
    BAND_B = "BAND_B"
    DATE_A = "DATE_A"
    DATE_B = "DATE_B"
    OUTLINES = "OUTLINES"
    STABLE_AREAS = "STABLE_AREAS"
    CORRECT_OFFSET = "CORRECT_OFFSET"
    ENGINE = "ENGINE"
    PREPROCESSING = "PREPROCESSING"
    TILE_SIZE = "TILE_SIZE"
    OVERLAP = "OVERLAP"
    MODEL = "MODEL"
    MAX_SPEED = "MAX_SPEED"
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
        self.addParameter(QgsProcessingParameterFeatureSource(
            self.STABLE_AREAS, "Stable areas (polygons of ground that does not move)",
            [QgsProcessing.SourceType.TypeVectorPolygon], optional=True))
        self.addParameter(QgsProcessingParameterBoolean(
            self.CORRECT_OFFSET, "Correct the stable-ground (co-registration) offset", False))
        self.addParameter(QgsProcessingParameterEnum(
            self.ENGINE, "Optical-flow engine", options=list(ENGINE_NAMES), defaultValue=default_engine_name(),
            usesStaticStrings=True))
        self.addParameter(QgsProcessingParameterEnum(
            self.PREPROCESSING, "Preprocessing (default: the engine's measured best)",
            options=list(PREPROCESSING_OPTIONS), defaultValue="default", usesStaticStrings=True))
        self.addParameter(QgsProcessingParameterNumber(
            self.TILE_SIZE, "Tile size (px)",
                QgsProcessingParameterNumber.Type.Integer, 256, minValue=32, maxValue=4096))
        self.addParameter(QgsProcessingParameterNumber(
            self.OVERLAP, "Tile overlap (px)",
                QgsProcessingParameterNumber.Type.Integer, 64, minValue=0, maxValue=2048))
        grid_params.add_grid_parameters(self, "Output pixel size (m, 0: image A's)",
                                        "Output CRS (empty: image A's; the automatic one for an image in degrees)",
                                        extent=True)
        max_speed = QgsProcessingParameterNumber(
            self.MAX_SPEED, "Fastest expected speed (m/yr, 0: the engine's default; sets the NCC search range)",
            QgsProcessingParameterNumber.Type.Double, 0.0, minValue=0.0)
        max_speed.setFlags(max_speed.flags() | QgsProcessingParameterDefinition.Flag.FlagAdvanced)
        self.addParameter(max_speed)
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
            stable_areas=self.vector_path(parameters, self.STABLE_AREAS, context, feedback),
            correct_offset=self.parameterAsBoolean(parameters, self.CORRECT_OFFSET, context),
            engine=self.parameterAsEnumString(parameters, self.ENGINE, context),
            preprocessing=self._preprocessing(parameters, context),
            tile_size=self.parameterAsInt(parameters, self.TILE_SIZE, context),
            overlap=self.parameterAsInt(parameters, self.OVERLAP, context),
            grid_spec=grid_params.grid_spec(
                self, parameters, context, self.raster_crs(parameters, self.IMAGE_A, context)),
            engine_params=self.raft_model(parameters, context),
            max_speed=self.parameterAsDouble(parameters, self.MAX_SPEED, context),
        )
        report = report_step.report_path(self, parameters, context)
        core_feedback = ProcessingFeedback(feedback)
        result = run_pair_job(job, core_feedback)
        check_speeds(result.p95_speed, core_feedback)
        load_with_time(context, result.output)
        return {self.OUTPUT: result.output, **report_step.velocity_report(report, result.output, job.outlines)}

    def _preprocessing(self, parameters: dict[str, Any], context: QgsProcessingContext) -> str | None:
        """The chosen mode, or None for the engine's default."""
        if self.is_unset(parameters, self.PREPROCESSING):
            return None
        mode = self.parameterAsEnumString(parameters, self.PREPROCESSING, context)
        return None if mode in ("", "default") else mode

    def _band(self, parameters: dict[str, Any], name: str, context: QgsProcessingContext) -> int | None:
        if self.is_unset(parameters, name):
            return None
        return self.parameterAsInt(parameters, name, context) or None
