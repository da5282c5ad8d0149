"""RAFT optical flow from an exported ONNX model, run with onnxruntime.

The model is the one exported by ``training/raft/export.py``; everything the
runtime needs to know about it (input channels, padding rules, iterations,
tile size, version) is read from the model card in its ``metadata_props``,
where every value is a JSON document. Nothing about a model is hard-coded
here except what the plugin's own preprocessing produces (2 channels).

onnxruntime is imported inside functions: QGIS starts fast and a missing
package only affects this engine, with a message saying how to install it.
"""
from __future__ import annotations

import glob
import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np

from ....definitions import RAFT_MODELS_DIR
from ...errors import GlacierFlowError
from ...onnx_runtime import cached_session, decode_card
from .base import Flow

# core.velocity.preprocess.prepare_for_flow gives Sobel d/dcol and d/drow: a model must take exactly these.
PLUGIN_INPUT_CHANNELS = 2
REQUIRED_CARD_KEYS = ("task", "version", "input_names", "output_names", "input_channels",
                      "min_size", "multiple", "iterations", "tile_size")
# The all-pairs correlation of a (H, W) input holds (H/8 * W/8)^2 float32 (4/3 of that with its
# pyramid): 1.4 GiB at 1024 x 1024 px, 7 GiB at 1536 px. Refuse before onnxruntime exhausts memory.
MAX_CORRELATION_BYTES = 1.5 * 2**30



def shipped_model_path() -> str | None:
    """The RAFT model shipped in the plugin's ``assets/training/raft/`` folder (the first by name), or None."""
    found = sorted(glob.glob(os.path.join(RAFT_MODELS_DIR, "*.onnx")))
    return found[0] if found else None


@dataclass(frozen=True)
class ModelCard:
    """What the runtime reads from a RAFT model's card (sizes in px).

    Attributes:
        task: must be "optical_flow".
        name: the card's name, else the file name.
        version: model version.
        architecture: e.g. "RAFT-small".
        input_names: the two image inputs, first then second image.
        output_name: the flow output, (N, 2, H, W) px.
        input_channels: channels per image.
        min_size: smallest padded height and width.
        multiple: padded height and width are multiples of this.
        iterations: refinement iterations baked into the graph.
        tile_size: tile side the model was made for.
        pad_value: value of the padding (0: no texture for Sobel inputs).
        raw: the whole decoded card.
    """

    task: str
    name: str
    version: str
    architecture: str
    input_names: tuple[str, str]
    output_name: str
    input_channels: int
    min_size: int
    multiple: int
    iterations: int
    tile_size: int
    pad_value: float = 0.0
    raw: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def from_metadata(cls, metadata: Mapping[str, str], source: str) -> ModelCard:
        """Decode ``metadata_props`` (JSON values) of the model at ``source`` (used in messages)."""
        card = decode_card(metadata, source, "re-export the model with `python -m training.raft.export`")
        missing = [key for key in REQUIRED_CARD_KEYS if key not in card]
        if missing:
            raise GlacierFlowError(f"{source} has no GlacierFlow model card (missing {', '.join(missing)}); "
                                   "export RAFT models with `python -m training.raft.export`.")
        try:
            return cls(task=str(card["task"]), name=str(card.get("name") or os.path.basename(source)),
                       version=str(card["version"]), architecture=str(card.get("architecture", "RAFT")),
                       input_names=(str(card["input_names"][0]), str(card["input_names"][1])),
                       output_name=str(card["output_names"][0]), input_channels=int(card["input_channels"]),
                       min_size=int(card["min_size"]), multiple=int(card["multiple"]),
                       iterations=int(card["iterations"]), tile_size=int(card["tile_size"]),
                       pad_value=float(card.get("pad_value", 0.0)), raw=card)
        except (IndexError, KeyError, TypeError, ValueError) as exc:
            raise GlacierFlowError(f"The model card of {source} has a malformed entry ({exc}); re-export "
                                   "the model with `python -m training.raft.export`.") from exc


def check_card(card: ModelCard, source: str, channels: int = PLUGIN_INPUT_CHANNELS) -> None:
    """Refuse a model the plugin cannot feed or whose output is not optical flow."""
    if card.task != "optical_flow":
        raise GlacierFlowError(f"{source} is a {card.task!r} model, not an optical-flow model; choose a "
                               "RAFT model exported with `python -m training.raft.export`.")
    if card.input_channels != channels:
        raise GlacierFlowError(
            f"{source} takes {card.input_channels} input channel(s) per image, but GlacierFlow's "
            f"preprocessing gives {channels} (Sobel x and y). Use a model trained and exported with "
            f"`--in-channels {channels}`.")
    if card.multiple < 1 or card.min_size < 1:
        raise GlacierFlowError(f"The model card of {source} has an invalid multiple ({card.multiple}) or "
                               f"minimum size ({card.min_size}); re-export the model.")


def padding_for(height: int, width: int, multiple: int, min_size: int) -> tuple[int, int, int, int]:
    """Padding (top, bottom, left, right) px to a multiple of ``multiple`` and at least ``min_size``.

    Split as evenly as possible with the extra pixel at the bottom / right,
    exactly as ``training.raft.raft.padding_for`` did in training and export checks.
    """
    def target(n: int) -> int:
        return max(int(math.ceil(n / multiple)) * multiple, int(math.ceil(min_size / multiple)) * multiple)

    pad_h, pad_w = target(height) - height, target(width) - width
    return pad_h // 2, pad_h - pad_h // 2, pad_w // 2, pad_w - pad_w // 2


class RaftOnnx:
    """RAFT engine (``name = "raft"``): a RAFT model exported to ONNX, run by onnxruntime.

    Attributes:
        model_path: the .onnx file.
        card: its :class:`ModelCard`.
        provider: the execution provider onnxruntime actually uses, e.g.
            "CPUExecutionProvider" or "CUDAExecutionProvider".
        provider_notes: messages for the log about the provider choice
            (e.g. CUDA requested but unavailable); empty when all went as asked.
    """

    name: ClassVar[str] = "raft"

    def __init__(self, model_path: str | None = None, provider: str = "auto") -> None:
        """Load (or reuse) the session of ``model_path`` (default: the shipped model).

        Args:
            model_path: an exported RAFT .onnx file; None = :func:`shipped_model_path`.
            provider: "auto" (CUDA when available, else CPU), "cuda" or "cpu".

        Raises:
            GlacierFlowError: no model, onnxruntime missing, or a model that does not fit.
        """
        path = model_path or shipped_model_path()
        if path is None:
            raise GlacierFlowError(
                f"No RAFT model found: {RAFT_MODELS_DIR} holds no .onnx file. Give a model file (for "
                "example one from 'Fine-tune RAFT'), export one with `python -m training.raft.export --out "
                "glacierflow/assets/models/raft/raft_small_glacier.onnx`, or choose the hybrid engine (the default, "
                "no model needed).")
        self.model_path = os.path.abspath(path)
        self.session, note = cached_session(self.model_path, provider, "The RAFT engine",
                                            "re-export it with `python -m training.raft.export`")
        self.provider: str = self.session.get_providers()[0]
        self.provider_notes: tuple[str, ...] = (note,) if note else ()
        self.card = ModelCard.from_metadata(self.session.get_modelmeta().custom_metadata_map, self.model_path)
        check_card(self.card, self.model_path)
        self._check_graph()

    def _check_graph(self) -> None:
        """The graph's inputs and output must be the ones its card names."""
        inputs = {i.name for i in self.session.get_inputs()}
        outputs = {o.name for o in self.session.get_outputs()}
        if not (set(self.card.input_names) <= inputs and self.card.output_name in outputs):
            raise GlacierFlowError(
                f"{self.model_path}: its card names inputs {list(self.card.input_names)} and output "
                f"{self.card.output_name!r} but the graph has {sorted(inputs)} -> {sorted(outputs)}; re-export it.")

    def describe(self) -> dict[str, str]:
        """Product metadata about this engine: provider used and the model's name, version, iterations."""
        return {"ENGINE_PROVIDER": self.provider, "MODEL_NAME": self.card.name,
                "MODEL_VERSION": self.card.version, "MODEL_ARCHITECTURE": self.card.architecture,
                "MODEL_ITERATIONS": str(self.card.iterations)}

    def summary(self) -> str:
        """One line for the log, e.g. "RAFT-small raft_small_glacier.onnx 0.1.0 on CPUExecutionProvider"."""
        return f"{self.card.architecture} {self.card.name} {self.card.version} on {self.provider}"

    def estimate(self, image_a: np.ndarray, image_b: np.ndarray) -> Flow:
        """Flow from ``image_a`` to ``image_b`` in px.

        Args:
            image_a: (C, H, W) float32 from ``core.velocity.preprocess.prepare_for_flow``, finite.
            image_b: same shape as ``image_a``.

        Returns:
            Flow with dx (columns) and dy (rows) in px, float32 (H, W).
        """
        return self.estimate_batch([(image_a, image_b)])[0]

    def estimate_batch(self, pairs: Sequence[tuple[np.ndarray, np.ndarray]]) -> list[Flow]:
        """Flows of several same-shape pairs in one onnxruntime call (px).

        Args:
            pairs: (image_a, image_b) tuples, each (C, H, W) float32, all of one shape.

        Returns:
            One :class:`Flow` per pair, in order.
        """
        from . import check_pair  # here, not at the top: the package imports this module while loading

        checked = [check_pair(a, b) for a, b in pairs]
        if not checked:
            return []
        shape = checked[0][0].shape
        if any(a.shape != shape for a, _ in checked):
            raise GlacierFlowError("All pairs of one RAFT batch must have the same shape; run them separately.")
        channels, height, width = shape
        if channels != self.card.input_channels:
            raise GlacierFlowError(
                f"The RAFT model takes {self.card.input_channels} channel(s) per image but got {channels}; "
                "feed it the output of core.velocity.preprocess.prepare_for_flow.")
        pads = padding_for(height, width, self.card.multiple, self.card.min_size)
        self._check_memory(height + pads[0] + pads[1], width + pads[2] + pads[3], len(checked))
        first = self._padded([a for a, _ in checked], pads)
        second = self._padded([b for _, b in checked], pads)
        names = self.card.input_names
        flow = self.session.run([self.card.output_name], {names[0]: first, names[1]: second})[0]
        top, left = pads[0], pads[2]
        crop = flow[:, :, top:top + height, left:left + width]  # (N, 2, H, W) px
        return [Flow(dx=np.ascontiguousarray(f[0], dtype=np.float32),
                     dy=np.ascontiguousarray(f[1], dtype=np.float32)) for f in crop]

    def _padded(self, images: list[np.ndarray], pads: tuple[int, int, int, int]) -> np.ndarray:
        """(N, C, H', W') float32: the images padded with the card's value, as in training."""
        top, bottom, left, right = pads
        stack = np.stack(images).astype(np.float32, copy=False)
        return np.pad(stack, ((0, 0), (0, 0), (top, bottom), (left, right)),
                      constant_values=np.float32(self.card.pad_value))

    def _check_memory(self, height: int, width: int, batch: int) -> None:
        cells = (height // 8) * (width // 8)
        need = batch * 4.0 / 3.0 * 4.0 * cells * cells  # bytes of the correlation pyramid
        if need > MAX_CORRELATION_BYTES:
            raise GlacierFlowError(
                f"A {height} x {width} px RAFT tile needs about {need / 2**30:.1f} GiB for its correlation "
                f"volume; use a smaller tile size (the model is made for {self.card.tile_size} px).")
