"""Processing algorithm ``glacierflow:finetune_raft``: adapt the RAFT model to a user's glacier.

Training needs torch (``requirements/train.txt``); the rest of the plugin does not. Parameter names are a
public headless API: keep them stable.
"""
from __future__ import annotations

import os
from typing import Any

from qgis.core import (
    QgsProcessingContext,
    QgsProcessingException,
    QgsProcessingFeedback,
    QgsProcessingOutputNumber,
    QgsProcessingParameterDefinition,
    QgsProcessingParameterEnum,
    QgsProcessingParameterFile,
    QgsProcessingParameterFileDestination,
    QgsProcessingParameterNumber,
    QgsProcessingParameterRasterLayer,
)

from .base import GlacierFlowAlgorithm

LABEL_MODES = ("horn_schunck", "self_supervised")  # the same names as training.raft.finetune.LABEL_MODES

HELP_TEXT = """<p>Fine-tunes the plugin's RAFT network on your own image pairs of your glacier and writes a
new ONNX model (with its model card) that the <b>RAFT model</b> option of <i>Glacier velocity from an
image pair</i> can then use. This follows <i>Deep Glacier Image Velocimetry</i>: on real imagery the
labels come from multi-level Horn-Schunck with a 9 x 9 median filter.</p>
<h3>Inputs</h3>
<ul>
<li><b>Image pairs</b>: the CSV written by <i>Image pairs</i> (columns first_href, second_href), or a CSV
with two paths per line (earlier, later); and/or one pair as <b>Image A / Image B</b>.</li>
<li><b>Labels</b>: <code>horn_schunck</code> (each pair is cut into 256 px tiles and tracked exactly as the
velocity algorithm does; only forward-backward consistent, textured pixels count) or
<code>self_supervised</code> (no labels: the photometric error of image B warped by the flow onto image A,
plus an edge-aware smoothness term).</li>
<li><b>Steps</b>, <b>batch</b> (crops per step) and <b>crop</b> (px, multiple of 8, at least 128).
Training runs on the CPU unless torch sees a GPU; on a 2-core CPU a step of 4 crops of 128 px takes
about a second.</li>
<li><b>Base checkpoint</b> (advanced): the torch checkpoint to start from (default: the plugin's).</li>
</ul>
<h3>Outputs</h3>
<p>The ONNX model; the log and the card give the endpoint error against the labels on held-out data
(the last pair, or with one pair the right-most quarter of its tiles) before and after fine-tuning, in
px. It needs the <code>torch</code> and <code>onnx</code> Python packages
(<code>python -m pip install -r requirements/train.txt</code>).</p>"""


class FineTuneRaftAlgorithm(GlacierFlowAlgorithm):
    """Fine-tune RAFT on the user's pairs and export an ONNX model."""

    PAIRS = "PAIRS"
    IMAGE_A = "IMAGE_A"
    IMAGE_B = "IMAGE_B"
    LABELS = "LABELS"
    STEPS = "STEPS"
    BATCH = "BATCH"
    CROP = "CROP"
    LEARNING_RATE = "LEARNING_RATE"
    CHECKPOINT = "CHECKPOINT"
    OUTPUT = "OUTPUT"

    ALGORITHM_ID = "finetune_raft"
    DISPLAY_NAME = "Fine-tune RAFT on your image pairs"
    GROUP = "Velocity"
    HELP = HELP_TEXT

    def initAlgorithm(self, config: dict[str, Any] | None = None) -> None:  # noqa: N802
        self.addParameter(QgsProcessingParameterFile(self.PAIRS, "Image pairs (CSV)", extension="csv",
                                                     optional=True))
        self.addParameter(QgsProcessingParameterRasterLayer(self.IMAGE_A, "Image A (earlier)", optional=True))
        self.addParameter(QgsProcessingParameterRasterLayer(self.IMAGE_B, "Image B (later)", optional=True))
        self.addParameter(QgsProcessingParameterEnum(self.LABELS, "Labels", options=list(LABEL_MODES),
                                                     defaultValue=LABEL_MODES[0], usesStaticStrings=True))
        self.addParameter(QgsProcessingParameterNumber(self.STEPS, "Steps", QgsProcessingParameterNumber.Type.Integer,
                                                       300, minValue=1, maxValue=1_000_000))
        self.addParameter(QgsProcessingParameterNumber(self.BATCH, "Batch (crops per step)",
                                                       QgsProcessingParameterNumber.Type.Integer, 4, minValue=1))
        self.addParameter(QgsProcessingParameterNumber(self.CROP, "Crop (px)",
                                                       QgsProcessingParameterNumber.Type.Integer,
                                                       128, minValue=128, maxValue=256))
        for parameter in (
                QgsProcessingParameterNumber(self.LEARNING_RATE, "Learning rate",
                                             QgsProcessingParameterNumber.Type.Double, 5e-5, minValue=1e-7,
                                                 maxValue=1e-2),
                QgsProcessingParameterFile(self.CHECKPOINT, "Base checkpoint (.pt, empty: the plugin's)",
                                           extension="pt", optional=True)):
            parameter.setFlags(parameter.flags() | QgsProcessingParameterDefinition.Flag.FlagAdvanced)
            self.addParameter(parameter)
        self.addParameter(QgsProcessingParameterFileDestination(self.OUTPUT, "Fine-tuned model",
                                                                "ONNX models (*.onnx)"))
        self.addOutput(QgsProcessingOutputNumber("EPE_BEFORE", "Held-out error before (px, vs labels)"))
        self.addOutput(QgsProcessingOutputNumber("EPE_AFTER", "Held-out error after (px, vs labels)"))

    def process(self, parameters: dict[str, Any], context: QgsProcessingContext,
                feedback: QgsProcessingFeedback) -> dict[str, Any]:
        finetune = self.training_module("training.raft.finetune")
        pairs = self._pairs(parameters, context, finetune.read_pairs_csv)
        checkpoint = self.parameterAsFile(parameters, self.CHECKPOINT, context).strip() or finetune.DEFAULT_CHECKPOINT
        if not os.path.exists(checkpoint):
            raise QgsProcessingException(f"Checkpoint {checkpoint} not found: choose a RAFT training checkpoint.")
        output = self.parameterAsFileOutput(parameters, self.OUTPUT, context)
        result = self.run_training(lambda: finetune.finetune(
            pairs, output, checkpoint, labels=self.parameterAsEnumString(parameters, self.LABELS, context),
            steps=self.parameterAsInt(parameters, self.STEPS, context),
            batch=self.parameterAsInt(parameters, self.BATCH, context),
            crop=self.parameterAsInt(parameters, self.CROP, context),
            lr=self.parameterAsDouble(parameters, self.LEARNING_RATE, context),
            feedback=feedback.pushInfo, is_cancelled=feedback.isCanceled, progress=feedback.setProgress))
        key = "epe_vs_labels_median_px"
        return {self.OUTPUT: result.output, "EPE_BEFORE": result.before.get(key),
                "EPE_AFTER": result.after.get(key)}

    def _pairs(self, parameters: dict[str, Any], context: QgsProcessingContext, read_csv: Any
               ) -> list[tuple[str, str]]:
        pairs: list[tuple[str, str]] = []
        table = self.parameterAsFile(parameters, self.PAIRS, context).strip()
        if table:
            pairs.extend(read_csv(table))
        if not self.is_unset(parameters, self.IMAGE_A) or not self.is_unset(parameters, self.IMAGE_B):
            pairs.append((self.raster_path(parameters, self.IMAGE_A, context),
                          self.raster_path(parameters, self.IMAGE_B, context)))
        if not pairs:
            raise QgsProcessingException("No image pair: give the pair list (CSV of 'Image pairs') or Image A and B.")
        missing = [p for pair in pairs for p in pair if not os.path.exists(p)]
        if missing:
            raise QgsProcessingException(f"Image(s) not found: {', '.join(missing[:3])}. Check the pair list's paths.")
        return pairs
