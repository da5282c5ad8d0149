"""NDSI forecasts from an exported ONNX forecaster, run with onnxruntime (no torch).

The models are those exported by ``training/forecast/export.py``; everything
about a model (patch size, input and output windows, window length, snow
threshold, input and output names) is read from its card in the ONNX
``metadata_props``, where every value is a JSON document. Sessions,
execution providers and their options are those of the RAFT engine
(``core.onnx_runtime``), so "auto" takes CUDA when onnxruntime has it and
:attr:`OnnxForecaster.provider` says which provider actually ran.
"""
from __future__ import annotations

import glob
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np

from ...definitions import FORECAST_MODELS_DIR
from ..errors import GlacierFlowError
from ..feedback import Feedback, JobCancelled
from ..onnx_runtime import cached_session, decode_card

TASK = "ndsi_forecast"
REQUIRED_CARD_KEYS = ("task", "version", "input_names", "output_names", "n_in", "n_out", "patch_size",
                      "window_months", "threshold")
EXPORT_HINT = "re-export it with `python -m training.forecast.export`"


def shipped_forecaster_folder() -> str:
    """The folder of the forecasters shipped with the plugin (``assets/models/forecast``)."""
    return FORECAST_MODELS_DIR


def list_shipped_forecasters() -> dict[str, str]:
    """Shipped forecasters: {architecture name (file stem, e.g. "sa_lstm"): absolute .onnx path}, sorted."""
    paths = sorted(glob.glob(os.path.join(shipped_forecaster_folder(), "*.onnx")))
    return {os.path.splitext(os.path.basename(p))[0]: os.path.abspath(p) for p in paths}


@dataclass(frozen=True)
class ForecastCard:
    """What the runtime reads from a forecaster's card (sizes in px, windows in months).

    Attributes:
        name: the model's name (its family, e.g. "sa_lstm"), else the file name.
        version: model version.
        architecture: e.g. "SA-LSTM-H".
        input_name: the frames input, (N, n_in, p, p) float32.
        output_name: the forecast output, (N, n_out, p, p) float32 in [0, 1].
        n_in: input windows.
        n_out: predicted windows.
        patch_size: patch side, px.
        window_months: months per window.
        threshold: NDSI threshold of the snow mask the model was trained on.
        raw: the whole decoded card (metrics, training data, ...).
    """

    name: str
    version: str
    architecture: str
    input_name: str
    output_name: str
    n_in: int
    n_out: int
    patch_size: int
    window_months: int
    threshold: float
    raw: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def from_metadata(cls, metadata: Mapping[str, str], source: str) -> ForecastCard:
        """Decode ``metadata_props`` (JSON values) of the model at ``source`` (named in messages)."""
        card = decode_card(metadata, source, EXPORT_HINT)
        if card.get("task", TASK) != TASK:
            raise GlacierFlowError(f"{source} is a {card['task']!r} model, not an NDSI forecaster; choose one of "
                                   f"{', '.join(list_shipped_forecasters()) or 'the exported forecasters'}.")
        missing = [key for key in REQUIRED_CARD_KEYS if key not in card]
        if missing:
            raise GlacierFlowError(f"{source} has no complete forecaster card (missing {', '.join(missing)}); "
                                   f"{EXPORT_HINT}.")
        try:
            parsed = cls(name=str(card.get("name") or os.path.basename(source)), version=str(card["version"]),
                         architecture=str(card.get("architecture", "unknown")),
                         input_name=str(card["input_names"][0]), output_name=str(card["output_names"][0]),
                         n_in=int(card["n_in"]), n_out=int(card["n_out"]), patch_size=int(card["patch_size"]),
                         window_months=int(card["window_months"]), threshold=float(card["threshold"]), raw=card)
        except (IndexError, KeyError, TypeError, ValueError) as exc:
            raise GlacierFlowError(f"The model card of {source} has a malformed entry ({exc}); {EXPORT_HINT}.") from exc
        if min(parsed.n_in, parsed.n_out, parsed.patch_size, parsed.window_months) < 1:
            raise GlacierFlowError(f"The model card of {source} has a non-positive size; {EXPORT_HINT}.")
        return parsed


class OnnxForecaster:
    """An NDSI forecaster: n_in past windows of masked NDSI -> the next n_out windows.

    Attributes:
        path: the .onnx file.
        card: its :class:`ForecastCard`.
        provider: the execution provider onnxruntime runs, "CPUExecutionProvider" or "CUDAExecutionProvider".
        provider_notes: messages for the log about the provider choice (empty when all went as asked).
    """

    def __init__(self, path: str, device: str = "auto", threads: int | None = None) -> None:
        """Load the model at ``path``.

        Args:
            path: an exported forecaster (.onnx with card).
            device: "auto" (CUDA when onnxruntime has it, else CPU), "cuda" or "cpu".
            threads: intra-op CPU threads; None = the cores this process may use.

        Raises:
            GlacierFlowError: missing file, onnxruntime missing, or not a forecaster.
        """
        self.path = os.path.abspath(path)
        if not os.path.isfile(self.path):
            raise GlacierFlowError(f"Forecaster {self.path} does not exist; choose one of "
                                   f"{', '.join(list_shipped_forecasters()) or 'the exported .onnx files'}.")
        self.session, note = cached_session(self.path, device, "NDSI forecasting", EXPORT_HINT, threads)
        self.provider: str = self.session.get_providers()[0]
        self.provider_notes: tuple[str, ...] = (note,) if note else ()
        self.card = ForecastCard.from_metadata(self.session.get_modelmeta().custom_metadata_map, self.path)
        self._check_graph()

    def _check_graph(self) -> None:
        """The graph's input and output must be those of the card, with its frame counts and patch size."""
        inputs = {i.name: i.shape for i in self.session.get_inputs()}
        outputs = {o.name for o in self.session.get_outputs()}
        c = self.card
        shape = inputs.get(c.input_name)
        if shape is None or c.output_name not in outputs:
            raise GlacierFlowError(f"{self.path}: its card names {c.input_name!r} -> {c.output_name!r} but the graph "
                                   f"has {sorted(inputs)} -> {sorted(outputs)}; {EXPORT_HINT}.")
        if list(shape[1:]) != [c.n_in, c.patch_size, c.patch_size]:
            raise GlacierFlowError(f"{self.path}: the graph takes {shape} but its card says (N, {c.n_in}, "
                                   f"{c.patch_size}, {c.patch_size}); {EXPORT_HINT}.")

    def summary(self) -> str:
        """One line for the log, e.g. "SA-LSTM-H sa_lstm 0.1.0 (4 -> 4 windows of 3 months) on CPUExecutionProvider"."""
        c = self.card
        return (f"{c.architecture} {c.name} {c.version} ({c.n_in} -> {c.n_out} windows of {c.window_months} "
                f"months, {c.patch_size} px patches) on {self.provider}")

    def predict_patches(self, inputs: np.ndarray, batch_size: int = 64,
                        progress: Callable[[float], None] | None = None,
                        is_cancelled: Callable[[], bool] | None = None) -> np.ndarray:
        """Forecast patches in batches.

        Args:
            inputs: (N, n_in, p, p) masked NDSI in [0, 1], oldest window first.
            batch_size: patches per onnxruntime call.
            progress: called with 0..100 (%) after each batch.
            is_cancelled: checked before each batch; True raises :class:`JobCancelled`.

        Returns:
            (N, n_out, p, p) float32 in [0, 1].
        """
        c = self.card
        x = np.asarray(inputs, dtype=np.float32)
        if x.ndim != 4 or x.shape[1:] != (c.n_in, c.patch_size, c.patch_size):
            raise GlacierFlowError(f"{c.name} takes patches of shape (N, {c.n_in}, {c.patch_size}, "
                                   f"{c.patch_size}), got {x.shape}.")
        out = np.empty((len(x), c.n_out, c.patch_size, c.patch_size), dtype=np.float32)
        step = max(1, int(batch_size))
        for start in range(0, len(x), step):
            if is_cancelled is not None and is_cancelled():
                raise JobCancelled("NDSI forecast cancelled")
            batch = np.ascontiguousarray(x[start:start + step])
            answer = np.asarray(self.session.run([c.output_name], {c.input_name: batch})[0])
            if answer.shape != (len(batch), c.n_out, c.patch_size, c.patch_size):
                raise GlacierFlowError(
                    f"{c.name} returned shape {answer.shape}, but its card promises ({len(batch)}, {c.n_out}, "
                    f"{c.patch_size}, {c.patch_size}): the model and its card disagree. Re-export the model, or "
                    "choose another.")
            out[start:start + step] = answer
            if progress is not None:
                progress(100.0 * min(len(x), start + step) / len(x))
        return out

    def forecast_scene(self, frames: np.ndarray, stride: int = 10, feedback: Feedback | None = None,
                       batch_size: int = 64) -> np.ndarray:
        """Forecast a whole scene from overlapping patches, blended back together.

        Args:
            frames: (n_in, H, W) masked NDSI in [0, 1], oldest window first; NaN = no data
                (set to 0 for the model; pixels with no data in every input window stay NaN).
            stride: step between patch origins, px (at most the patch size).
            feedback: progress and cancellation (checked before each batch).
            batch_size: patches per onnxruntime call.

        Returns:
            (n_out, H, W) float32 forecast in [0, 1] (NaN where the inputs had no data at all).
        """
        from .patches import assemble_patches, extract_patches, patch_origins

        c = self.card
        scene = np.asarray(frames, dtype=np.float32)
        if scene.ndim != 3 or scene.shape[0] != c.n_in:
            raise GlacierFlowError(f"{c.name} forecasts from {c.n_in} windows: give frames of shape "
                                   f"({c.n_in}, H, W), got {scene.shape}.")
        height, width = scene.shape[1:]
        if min(height, width) < c.patch_size:
            raise GlacierFlowError(f"The scene is {height} x {width} px but {c.name} needs at least "
                                   f"{c.patch_size} x {c.patch_size} px (its patch size); choose a larger area.")
        if not 1 <= stride <= c.patch_size:
            raise GlacierFlowError(f"The patch stride must be 1 to {c.patch_size} px (the patch size), got {stride}.")
        no_data = np.isnan(scene).all(axis=0)
        scene = np.nan_to_num(scene, nan=0.0)
        feedback = feedback or Feedback()
        origins = patch_origins((height, width), c.patch_size, stride)
        patches = extract_patches(scene, origins, c.patch_size)
        predicted = self.predict_patches(patches, batch_size, progress=feedback.progress,
                                         is_cancelled=feedback.is_cancelled)
        forecast = assemble_patches(predicted, origins, (height, width)).astype(np.float32)
        forecast[:, no_data] = np.nan
        return forecast
