"""Processing algorithm ``glacierflow:ndsi_series``: a windowed NDSI series for an area.

Parameter names are a public headless API: keep them stable.
"""
from __future__ import annotations

from typing import Any

from qgis.core import (
    QgsProcessingContext,
    QgsProcessingFeedback,
    QgsProcessingOutputNumber,
    QgsProcessingParameterEnum,
    QgsProcessingParameterNumber,
    QgsProcessingParameterRasterDestination,
)

from . import grid_params
from . import imagery_params as ip
from .base import GlacierFlowAlgorithm
from .feedback import ProcessingFeedback
from .temporal import load_with_time

ALIGN_CHOICES = ("translation", "euclidean", "affine", "none")

HELP_TEXT = """<p>Builds the NDSI (normalised difference snow index) time series of a glacier that the
forecasters learn from and predict, as in <i>Glacier Movement Prediction with (Attention-based) Recurrent
Neural Networks and Satellite Data</i>: Landsat green and SWIR1 surface reflectance, gaps (clouds, fill)
filled with a 5 x 5 distance-weighted kernel repeated until none remains (scenes missing more than half
their pixels are dropped), every scene aligned to the series' mean image with ECC, NDSI = (green - SWIR1)
/ (green + SWIR1), kept where it is at least the <b>threshold</b> (0.3) and 0 elsewhere, averaged over
windows of <b>window months</b> (3, calendar quarters), and empty windows filled by linear interpolation
between their neighbours in time.</p>
<h3>Imagery</h3>
<p>A local folder of Landsat Collection-2 Level-2 files named <code>*_SR_B3.TIF</code> (green) and
<code>*_SR_B6.TIF</code> (SWIR1), Sentinel-2 <code>*_B03</code> / <code>*_B11</code> (read as DN / 10000:
remove the +1000 DN offset of processing baseline 04.00 and later first, or use a remote source, which
does), or any files named <code>*_green</code> / <code>*_swir1</code> holding reflectance (0-1);
or a remote source offering green and
SWIR1: <code>planetary_computer_landsat</code> (Landsat 8/9 Collection-2 Level-2 with its qa_pixel cloud
mask, the papers' data), or Sentinel-2 L2A B03/B11 from <code>earth_search_sentinel2</code>,
<code>planetary_computer_sentinel2</code> or <code>earth_engine</code> (20 m SWIR1; choose the pixel size).
Months are empty (all) by default: the series covers every season.</p>""" + ip.SEARCH_HELP + """
<h3>Output</h3>
<p>A Cloud Optimized GeoTIFF with one band per window ("NDSI 2019-07-01..2019-09-30", tags WINDOW_START,
WINDOW_END and FILLED for interpolated windows), unitless masked NDSI 0-1, styled blue to white. It is the
input of <i>Forecast NDSI</i> and <i>Train forecaster</i>.</p>"""


class NdsiSeriesAlgorithm(GlacierFlowAlgorithm):
    """A windowed, masked NDSI series for an area."""

    WINDOW_MONTHS = "WINDOW_MONTHS"
    THRESHOLD = "THRESHOLD"
    ALIGN = "ALIGN"
    OUTPUT = "OUTPUT"

    ALGORITHM_ID = "ndsi_series"
    DISPLAY_NAME = "NDSI series for an area"
    GROUP = "Forecast"
    HELP = HELP_TEXT

    def initAlgorithm(self, config: dict[str, Any] | None = None) -> None:  # noqa: N802
        ip.add_search_parameters(self)
        self.parameterDefinition(ip.MONTHS).setDefaultValue("")
        grid_params.add_grid_parameters(self, "Pixel size (m)", default_pixel_size=30.0, advanced=False)
        self.addParameter(QgsProcessingParameterNumber(
            self.WINDOW_MONTHS, "Window (months)",
                QgsProcessingParameterNumber.Type.Integer, 3, minValue=1, maxValue=12))
        self.addParameter(QgsProcessingParameterNumber(
            self.THRESHOLD, "NDSI threshold",
                QgsProcessingParameterNumber.Type.Double, 0.3, minValue=-1.0, maxValue=1.0))
        self.addParameter(QgsProcessingParameterEnum(
            self.ALIGN, "ECC alignment", options=list(ALIGN_CHOICES), defaultValue="translation",
            usesStaticStrings=True))
        self.addParameter(QgsProcessingParameterRasterDestination(self.OUTPUT, "NDSI series"))
        self.addOutput(QgsProcessingOutputNumber("WINDOWS", "Number of windows"))
        self.addOutput(QgsProcessingOutputNumber("FILLED_WINDOWS", "Interpolated windows"))

    def process(self, parameters: dict[str, Any], context: QgsProcessingContext,
                feedback: QgsProcessingFeedback) -> dict[str, Any]:
        from ..core.forecast.jobs import NdsiSeriesJob, run_ndsi_series_job

        request = ip.search_request(self, parameters, context)
        align = self.parameterAsEnumString(parameters, self.ALIGN, context)
        job = NdsiSeriesJob(
            output=self.parameterAsOutputLayer(parameters, self.OUTPUT, context), source=request.source,
            area=request.area, scenes=ip.run_search(request, feedback),
            window_months=self.parameterAsInt(parameters, self.WINDOW_MONTHS, context),
            threshold=self.parameterAsDouble(parameters, self.THRESHOLD, context),
            align=None if align == "none" else align,
            grid_spec=grid_params.grid_spec(self, parameters, context))
        series = run_ndsi_series_job(job, ProcessingFeedback(feedback))
        load_with_time(context, job.output)
        return {self.OUTPUT: job.output, "WINDOWS": len(series.times), "FILLED_WINDOWS": len(series.filled_windows)}
