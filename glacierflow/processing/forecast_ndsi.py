"""Processing algorithm ``glacierflow:forecast_ndsi``: the next windows of an NDSI series.

Parameter names are a public headless API: keep them stable.
"""
from __future__ import annotations

from typing import Any

from qgis.core import (
    QgsProcessingContext,
    QgsProcessingException,
    QgsProcessingFeedback,
    QgsProcessingOutputNumber,
    QgsProcessingParameterDefinition,
    QgsProcessingParameterEnum,
    QgsProcessingParameterFile,
    QgsProcessingParameterNumber,
    QgsProcessingParameterRasterDestination,
    QgsProcessingParameterRasterLayer,
)

from . import report_step
from .base import GlacierFlowAlgorithm
from .feedback import ProcessingFeedback
from .temporal import load_with_time

DEVICES = ("auto", "cpu", "cuda")
PREFERRED_MODEL = "unet"  # lowest held-out MSE of the shipped models (bench/RESULTS.md); any can be chosen

HELP_TEXT = """<p>Forecasts the next windows (four 3-month windows with the shipped models) of a glacier's
masked NDSI from its last windows, with a recurrent or convolutional network exported to ONNX and run by
onnxruntime (CUDA when present, else the CPU; the log says which). The scene is cut into overlapping
patches (50 x 50 px, <b>stride</b> apart), each forecast, and blended back without seams.</p>
<h3>Inputs</h3>
<ul>
<li><b>NDSI series</b>: the output of <i>NDSI series for an area</i> (its last windows are the input).</li>
<li><b>Model</b>: a shipped forecaster: <code>sa_lstm</code> (self-attention LSTM hybrid),
<code>lstm_encdec</code>, <code>convlstm</code>, <code>unet</code>, <code>transformer</code>; or
<b>Model file</b>: an .onnx of your own (<i>Train forecaster</i>). Its card gives the window count, patch
size, window length and NDSI threshold, which must match the series.</li>
<li><b>Stride</b> (px): between patch origins, 10 as the papers; larger is faster.</li>
</ul>
<h3>Outputs</h3>
<p>A Cloud Optimized GeoTIFF with one band per future window (description and tags give its dates),
masked NDSI 0-1, styled blue to white; optionally the Farneback optical flow (the thesis' parameters)
between consecutive windows (last observed window first): dx, dy (px) and speed (m/yr) per step.</p>
<p><b>Scores in the log</b>: when the series is long enough, the model also forecasts the series' own
last windows from the ones before (a hindcast), scored in MSE and MAE against <b>persistence</b> (the last
window repeated) and <b>seasonal climatology</b> (the same window in earlier years), the baselines the
papers did not report; and the model card's test scores on held-out generated series.</p>"""


class ForecastNdsiAlgorithm(GlacierFlowAlgorithm):
    """Forecast the next NDSI windows of a series."""

    SERIES = "SERIES"
    MODEL = "MODEL"
    MODEL_FILE = "MODEL_FILE"
    STRIDE = "STRIDE"
    DEVICE = "DEVICE"
    OUTPUT = "OUTPUT"
    FLOW_OUTPUT = "FLOW_OUTPUT"
    MODEL_MSE = "MODEL_MSE"
    PERSISTENCE_MSE = "PERSISTENCE_MSE"
    CLIMATOLOGY_MSE = "CLIMATOLOGY_MSE"

    ALGORITHM_ID = "forecast_ndsi"
    DISPLAY_NAME = "Forecast NDSI"
    GROUP = "Forecast"
    HELP = HELP_TEXT

    def initAlgorithm(self, config: dict[str, Any] | None = None) -> None:  # noqa: N802
        from ..core.forecast.onnx_forecaster import list_shipped_forecasters

        shipped = list(list_shipped_forecasters())
        default = PREFERRED_MODEL if PREFERRED_MODEL in shipped else (shipped[0] if shipped else None)
        self.addParameter(QgsProcessingParameterRasterLayer(self.SERIES, "NDSI series"))
        self.addParameter(QgsProcessingParameterEnum(self.MODEL, "Model (shipped)", options=shipped,
                                                     defaultValue=default, usesStaticStrings=True,
                                                     optional=True))
        self.addParameter(QgsProcessingParameterFile(self.MODEL_FILE, "Model file (.onnx; instead of a shipped one)",
                                                     extension="onnx", optional=True))
        self.addParameter(QgsProcessingParameterNumber(self.STRIDE, "Patch stride (px)",
                                                       QgsProcessingParameterNumber.Type.Integer, 10, minValue=1))
        device = QgsProcessingParameterEnum(self.DEVICE, "Device", options=list(DEVICES), defaultValue="auto",
                                            usesStaticStrings=True)
        device.setFlags(device.flags() | QgsProcessingParameterDefinition.Flag.FlagAdvanced)
        self.addParameter(device)
        self.addParameter(QgsProcessingParameterRasterDestination(self.OUTPUT, "NDSI forecast"))
        report_step.add_report_parameter(self)
        self.addParameter(QgsProcessingParameterRasterDestination(
            self.FLOW_OUTPUT, "Flow between forecast windows", optional=True, createByDefault=False))
        for name, text in ((self.MODEL_MSE, "Hindcast MSE of the model"),
                           (self.PERSISTENCE_MSE, "Hindcast MSE of persistence"),
                           (self.CLIMATOLOGY_MSE, "Hindcast MSE of climatology")):
            self.addOutput(QgsProcessingOutputNumber(name, text))

    def process(self, parameters: dict[str, Any], context: QgsProcessingContext,
                feedback: QgsProcessingFeedback) -> dict[str, Any]:
        from ..core.forecast.jobs import ForecastJob, run_forecast_job

        model = self.parameterAsFile(parameters, self.MODEL_FILE, context).strip() or \
            self.parameterAsEnumString(parameters, self.MODEL, context)
        if not model:
            raise QgsProcessingException("No forecaster: choose a shipped model or an .onnx model file.")
        flow = None
        if not self.is_unset(parameters, self.FLOW_OUTPUT):
            flow = self.parameterAsOutputLayer(parameters, self.FLOW_OUTPUT, context) or None
        job = ForecastJob(series=self.raster_path(parameters, self.SERIES, context), model=model,
                          output=self.parameterAsOutputLayer(parameters, self.OUTPUT, context), flow_output=flow,
                          stride=self.parameterAsInt(parameters, self.STRIDE, context),
                          device=self.parameterAsEnumString(parameters, self.DEVICE, context))
        report = report_step.report_path(self, parameters, context)
        result = run_forecast_job(job, ProcessingFeedback(feedback))
        scores = {f"{name.upper()}_MSE": values["mse"] for name, values in result.hindcast.items()}
        outputs: dict[str, Any] = {self.OUTPUT: result.output, **scores}
        load_with_time(context, result.output)
        if result.flow_output:
            outputs[self.FLOW_OUTPUT] = result.flow_output
        outputs.update(report_step.forecast_report(report, result.output, job.series, result.hindcast))
        return outputs
