"""Optical-flow engines behind one interface, and the checks around them.

Engines are looked up by name with :func:`create_engine`; their modules are
imported only when requested so that the plugin starts fast and a missing
optional dependency only affects the engine that needs it.
"""
from __future__ import annotations

import importlib
from typing import Any

import numpy as np

from ...errors import GlacierFlowError
from .base import Flow, FlowEngine

__all__ = [
    "CLASSICAL_ENGINE_NAMES",
    "ENGINE_NAMES",
    "Flow",
    "FlowEngine",
    "check_pair",
    "create_engine",
    "default_engine_name",
    "estimate_with_checks",
    "runnable_engine_names",
]

# name -> (module, class); modules are imported lazily in create_engine. New engines go at the
# end so that the indices of Processing's engine enum stay valid in saved models and scripts.
_ENGINES: dict[str, tuple[str, str]] = {
    "horn_schunck": (".horn_schunck", "HornSchunck"),
    "farneback": (".farneback", "Farneback"),
    "raft": (".raft_onnx", "RaftOnnx"),
    "dis": (".dis", "Dis"),
    "ncc": (".ncc", "NccEngine"),
    "hybrid": (".hybrid", "Hybrid"),
}
_NEEDS_MODEL = ("raft",)  # engines that cannot run without a model file


def _shipped_model() -> str | None:
    from .raft_onnx import shipped_model_path  # no heavy import: onnxruntime loads on first use

    return shipped_model_path()


# Every registered engine: what the Processing algorithm offers (choosing "raft" without a model
# gives a clear error).
ENGINE_NAMES: tuple[str, ...] = tuple(_ENGINES)
# The classical engines: no model needed; baselines and training labels for RAFT.
CLASSICAL_ENGINE_NAMES: tuple[str, ...] = ("horn_schunck", "farneback", "dis", "ncc", "hybrid")
# The most accurate engine on the real-texture benchmark (bench/RESULTS.md); no model needed.
MOST_ACCURATE_ENGINE = "hybrid"


def runnable_engine_names() -> tuple[str, ...]:
    """The engines ready to run in this installation ("raft" only when a model is shipped)."""
    return tuple(name for name in _ENGINES if name not in _NEEDS_MODEL or _shipped_model() is not None)


def default_engine_name() -> str:
    """The engine offered first: :data:`MOST_ACCURATE_ENGINE` ("hybrid"), measured on real texture.

    RAFT is chosen explicitly (it needs a model); a shipped model does not make it the default until it
    beats the hybrid on the real-texture benchmark.
    """
    return MOST_ACCURATE_ENGINE


def create_engine(name: str, **params: Any) -> FlowEngine:
    """Build the engine called ``name`` with keyword ``params``.

    Args:
        name: one of :data:`ENGINE_NAMES`.
        **params: constructor parameters of that engine (pixel units).

    Raises:
        GlacierFlowError: unknown name or parameter.
    """
    if name not in _ENGINES:
        raise GlacierFlowError(
            f"Unknown flow engine {name!r}. Choose one of: {', '.join(ENGINE_NAMES)}."
        )
    module_name, class_name = _ENGINES[name]
    cls = getattr(importlib.import_module(module_name, __name__), class_name)
    try:
        return cls(**params)
    except TypeError as exc:  # unexpected keyword: a user-facing settings mistake
        raise GlacierFlowError(f"Invalid parameter for flow engine {name!r}: {exc}") from exc


def check_pair(image_a: np.ndarray, image_b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Validate an image pair for an engine and return it as float32 (C, H, W).

    A (H, W) array is accepted as a single channel. Sizes are in px.

    Raises:
        GlacierFlowError: shapes differ, wrong rank, or non-finite values.
    """
    a = np.asarray(image_a, dtype=np.float32)
    b = np.asarray(image_b, dtype=np.float32)
    if a.ndim == 2:
        a, b = a[None], (b[None] if b.ndim == 2 else b)
    if a.ndim != 3 or a.shape != b.shape:
        raise GlacierFlowError(
            f"The two images must have the same (channels, rows, cols) shape; "
            f"got {a.shape} and {b.shape}. Resample both onto the job's grid first."
        )
    if not (np.isfinite(a).all() and np.isfinite(b).all()):
        raise GlacierFlowError(
            "Flow inputs contain NaN or infinite values; fill no-data gaps before "
            "estimating flow."
        )
    return np.ascontiguousarray(a), np.ascontiguousarray(b)


def estimate_with_checks(
    engine: FlowEngine,
    image_a: np.ndarray,
    image_b: np.ndarray,
    median_size: int = 9,
    check_consistency: bool = True,
) -> tuple[Flow, np.ndarray]:
    """Forward flow, optional forward-backward check, then the median filter.

    The consistency check is the pair job's (:func:`.postprocess.consistent`: round trip within 0.5 px
    + 2 % of the motion) and runs on the raw flows (it is meant to catch raw
    mismatches). Pixels that fail it are set to NaN *before* the median
    filter so that their wrong values cannot pull on their neighbours; they
    may then receive the median of their valid neighbours, so callers should
    still apply the returned mask.

    Args:
        engine: any :class:`FlowEngine`.
        image_a, image_b: (C, H, W) float32 normalised images.
        median_size: side of the NaN-aware median window, px (<= 1: none).
        check_consistency: run the backward flow and the check.

    Returns:
        (filtered flow in px, bool (H, W) mask: True where the pixel passed
        the check and has a finite flow; all True when not checking, except
        where the flow is NaN).
    """
    from .postprocess import consistent, forward_backward_error, median_filter_flow

    forward = engine.estimate(image_a, image_b)
    if check_consistency:
        backward = engine.estimate(image_b, image_a)
        valid = consistent(*forward_backward_error(forward, backward))
        forward = Flow(
            dx=np.where(valid, forward.dx, np.float32(np.nan)).astype(np.float32),
            dy=np.where(valid, forward.dy, np.float32(np.nan)).astype(np.float32),
        )
    else:
        valid = np.ones(forward.dx.shape, dtype=bool)
    if median_size > 1:
        forward = median_filter_flow(forward, median_size)
    valid &= np.isfinite(forward.dx) & np.isfinite(forward.dy)
    return forward, valid
