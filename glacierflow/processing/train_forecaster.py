"""Processing algorithm ``glacierflow:train_forecaster``: a forecaster trained on the user's NDSI series.

Training needs torch (``requirements/train.txt``). Parameter names are a public headless API.
"""
from __future__ import annotations

from typing import Any

from qgis.core import (
    QgsProcessing,
    QgsProcessingContext,
    QgsProcessingFeedback,
    QgsProcessingOutputNumber,
    QgsProcessingParameterDefinition,
    QgsProcessingParameterEnum,
    QgsProcessingParameterFileDestination,
    QgsProcessingParameterMultipleLayers,
    QgsProcessingParameterNumber,
)

from .base import GlacierFlowAlgorithm

FAMILIES = ("sa_lstm", "lstm_encdec", "convlstm", "unet", "transformer")  # training.forecast.registry.MODEL_NAMES

HELP_TEXT = """<p>Trains an NDSI forecaster on your own series (outputs of <i>NDSI series for an area</i>)
and exports it to ONNX with its model card, for <i>Forecast NDSI</i>'s <b>Model file</b>.</p>
<h3>Inputs</h3>
<ul>
<li><b>NDSI series</b>: one or more series with the same window length and threshold. Each is cut into
50 x 50 px patches (<b>stride</b> px apart) of 4 input and 4 target windows and split <i>by time</i>:
earlier windows train, later ones validate, the latest test, and no future window is ever a training
target (the papers' random split of overlapping patches leaked the test set into training).</li>
<li><b>Architecture</b>: <code>sa_lstm</code> (self-attention LSTM hybrid with recursive first-in
first-out decoding, the attention paper's model), <code>lstm_encdec</code>, <code>convlstm</code>,
<code>unet</code> or <code>transformer</code>, at the small sizes shipped with the plugin (see
<code>training/forecast/README.md</code> for the papers' sizes).</li>
<li><b>Epochs</b> and <b>patience</b> (early stopping on the validation MSE), learning rate (AdamW,
cosine decay), batch.</li>
<li><b>Generated series</b> (advanced): realistic generated series added to the training set when your
record is short.</li>
</ul>
<h3>Outputs</h3>
<p>The ONNX model; the log and the card give the test MSE and MAE of the model, persistence (the last
window repeated) and seasonal climatology (the same window in earlier years) on the same samples. It
needs a series of at least about 20 windows (5 years of 3-month windows).</p>"""


class TrainForecasterAlgorithm(GlacierFlowAlgorithm):
    """Train a forecaster on NDSI series and export it."""

    SERIES = "SERIES"
    ARCHITECTURE = "ARCHITECTURE"
    EPOCHS = "EPOCHS"
    PATIENCE = "PATIENCE"
    LEARNING_RATE = "LEARNING_RATE"
    BATCH = "BATCH"
    STRIDE = "STRIDE"
    GENERATED = "GENERATED"
    OUTPUT = "OUTPUT"

    ALGORITHM_ID = "train_forecaster"
    DISPLAY_NAME = "Train forecaster"
    GROUP = "Forecast"
    HELP = HELP_TEXT

    def initAlgorithm(self, config: dict[str, Any] | None = None) -> None:  # noqa: N802
        self.addParameter(QgsProcessingParameterMultipleLayers(self.SERIES, "NDSI series",
                                                               QgsProcessing.SourceType.TypeRaster))
        self.addParameter(QgsProcessingParameterEnum(self.ARCHITECTURE, "Architecture", options=list(FAMILIES),
                                                     defaultValue="sa_lstm", usesStaticStrings=True))
        self.addParameter(QgsProcessingParameterNumber(self.EPOCHS, "Epochs (most)",
                                                       QgsProcessingParameterNumber.Type.Integer, 20, minValue=1))
        self.addParameter(QgsProcessingParameterNumber(self.PATIENCE, "Patience (epochs)",
                                                       QgsProcessingParameterNumber.Type.Integer, 4, minValue=1))
        for parameter in (
                QgsProcessingParameterNumber(self.LEARNING_RATE, "Learning rate",
                                             QgsProcessingParameterNumber.Type.Double, 1e-3, minValue=1e-6,
                                                 maxValue=1.0),
                QgsProcessingParameterNumber(self.BATCH, "Batch (patches)", QgsProcessingParameterNumber.Type.Integer,
                                             32, minValue=1),
                QgsProcessingParameterNumber(self.STRIDE, "Patch stride (px)",
                                             QgsProcessingParameterNumber.Type.Integer,
                                             10, minValue=1, maxValue=50),
                QgsProcessingParameterNumber(self.GENERATED, "Generated series added to training",
                                             QgsProcessingParameterNumber.Type.Integer, 0, minValue=0, maxValue=50)):
            parameter.setFlags(parameter.flags() | QgsProcessingParameterDefinition.Flag.FlagAdvanced)
            self.addParameter(parameter)
        self.addParameter(QgsProcessingParameterFileDestination(self.OUTPUT, "Forecaster", "ONNX models (*.onnx)"))
        self.addOutput(QgsProcessingOutputNumber("TEST_MSE", "Test MSE of the model"))
        self.addOutput(QgsProcessingOutputNumber("PERSISTENCE_MSE", "Test MSE of persistence"))
        self.addOutput(QgsProcessingOutputNumber("CLIMATOLOGY_MSE", "Test MSE of climatology"))

    def process(self, parameters: dict[str, Any], context: QgsProcessingContext,
                feedback: QgsProcessingFeedback) -> dict[str, Any]:
        fit = self.training_module("training.forecast.fit")
        from ..core.products.ndsi import read_ndsi_series

        series = [read_ndsi_series(path) for path in self.raster_paths(parameters, self.SERIES, context)]
        result = self.run_training(lambda: fit.fit_on_series(
            self.parameterAsEnumString(parameters, self.ARCHITECTURE, context), series,
            self.parameterAsFileOutput(parameters, self.OUTPUT, context),
            epochs=self.parameterAsInt(parameters, self.EPOCHS, context),
            patience=self.parameterAsInt(parameters, self.PATIENCE, context),
            lr=self.parameterAsDouble(parameters, self.LEARNING_RATE, context),
            batch=self.parameterAsInt(parameters, self.BATCH, context),
            stride=self.parameterAsInt(parameters, self.STRIDE, context),
            generated=self.parameterAsInt(parameters, self.GENERATED, context),
            log=feedback.pushInfo, progress=feedback.setProgress, is_cancelled=feedback.isCanceled))
        return {self.OUTPUT: result.output, "TEST_MSE": result.test["model"]["mse"],
                "PERSISTENCE_MSE": result.test["persistence"]["mse"],
                "CLIMATOLOGY_MSE": result.test["climatology"]["mse"]}
