"""onnxruntime for every model the plugin runs (RAFT, the NDSI forecasters): providers, sessions, cards.

Execution providers: "auto" takes CUDA when this onnxruntime has it (onnxruntime-gpu with working CUDA
libraries), else the CPU; the session reports what it really used, and callers log and tag it, since
whether a GPU ran is otherwise invisible. Sessions are created once per file, provider choice and
thread count, and shared (Processing may run algorithms in several threads). Each model's card is its
``metadata_props``, every value a JSON document (DESIGN.md).

onnxruntime is imported inside functions: QGIS starts fast and a missing package only affects the
steps that run a model, with a message saying how to install it.
"""
from __future__ import annotations

import json
import os
import threading
from collections.abc import Mapping, Sequence
from typing import Any

from .errors import GlacierFlowError

CUDA = "CUDAExecutionProvider"
CPU = "CPUExecutionProvider"
PROVIDER_CHOICES = ("auto", "cuda", "cpu")

# (abs path, mtime ns, provider choice, threads) -> session
_SESSIONS: dict[tuple[str, int, str, int | None], Any] = {}
_SESSIONS_LOCK = threading.Lock()


def decode_card(metadata: Mapping[str, str], source: str, hint: str) -> dict[str, Any]:
    """The model card of an ONNX file: its ``metadata_props``, every value a JSON document.

    Args:
        metadata: the session's ``custom_metadata_map``.
        source: the model file, named in the message.
        hint: what to do when a value is not JSON (e.g. how to re-export).
    """
    try:
        return {key: json.loads(value) for key, value in metadata.items()}
    except (TypeError, ValueError) as exc:
        raise GlacierFlowError(f"The model card of {source} is not valid JSON ({exc}); {hint}.") from exc


def choose_providers(requested: str, available: Sequence[str]) -> tuple[list[str], str | None]:
    """Execution providers to ask onnxruntime for, and a note when the request cannot be met.

    Args:
        requested: "auto" (CUDA when onnxruntime has it, else CPU), "cuda" or "cpu".
        available: ``onnxruntime.get_available_providers()``.

    Returns:
        (providers in order of preference, always ending with CPU; a note for
        the log when CUDA was asked for but is not available, else None).
    """
    choice = (requested or "auto").lower()
    if choice not in PROVIDER_CHOICES:
        raise GlacierFlowError(f"Unknown execution provider choice {requested!r}; use one of "
                               f"{', '.join(PROVIDER_CHOICES)}.")
    if choice == "cpu":
        return [CPU], None
    if CUDA in available:
        return [CUDA, CPU], None
    if choice == "cuda":
        return [CPU], (f"CUDA was requested but this onnxruntime has no {CUDA} (available: "
                       f"{', '.join(available) or 'none'}); running on {CPU}. Install onnxruntime-gpu "
                       "matching your CUDA version into QGIS's Python to use the GPU.")
    return [CPU], None


def available_cores() -> int:
    """CPU cores this process may use (affinity-aware where the OS tells)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):  # Windows and macOS have no sched_getaffinity
        return max(1, os.cpu_count() or 1)


def import_onnxruntime(needed_by: str) -> Any:
    """The onnxruntime module; ``needed_by`` (e.g. "The RAFT engine") names what needs it in the message."""
    try:
        import onnxruntime
    except ImportError as exc:
        raise GlacierFlowError(
            f"{needed_by} needs onnxruntime, which is not installed in QGIS's Python. Install it from the "
            "plugin's dependency dialog (or `pip install onnxruntime`, onnxruntime-gpu for an NVIDIA GPU, from "
            "the OSGeo4W shell / QGIS's Python) and restart QGIS.") from exc
    return onnxruntime


def session_options(ort: Any, threads: int | None = None, spinning: bool = False) -> Any:
    """SessionOptions: no memory-pattern reuse, one intra-op thread per core, no spinning.

    ``enable_mem_reuse = False`` cut session creation from 7-10 s to 1.2-1.6 s
    on this model (measured; 3.4-5.1 s -> 0.6-1.1 s in bench/bench_raft_speed.py)
    at the same inference speed. Idle intra-op threads sleep instead of
    spin-waiting: QGIS shares the machine with its own rendering and other
    work, and with one of 2 cores busy a 256 px tile took 1.2-1.6x longer
    with spinning threads (e.g. 0.33 s against 0.21 s, bench_raft_speed).

    Args:
        ort: the onnxruntime module.
        threads: intra-op threads; None = :func:`available_cores`.
        spinning: let idle threads spin-wait (onnxruntime's default), for comparisons.
    """
    options = ort.SessionOptions()
    options.enable_mem_reuse = False
    options.intra_op_num_threads = threads or available_cores()
    options.add_session_config_entry("session.intra_op.allow_spinning", "1" if spinning else "0")
    options.log_severity_level = 3  # errors only: shape-inference chatter is not for users
    return options


def cached_session(model_path: str, provider: str = "auto", needed_by: str = "This model",
                   hint: str = "export it again", threads: int | None = None) -> tuple[Any, str | None]:
    """The InferenceSession of ``model_path`` for a provider choice, created once per process.

    The cache key holds the file's modification time, so a model re-exported in place (e.g. after
    fine-tuning) is loaded afresh, and the thread count.

    Args:
        model_path: an exported .onnx file.
        provider: "auto" (CUDA when onnxruntime has it, else CPU), "cuda" or "cpu".
        needed_by: what loads it, for messages ("The RAFT engine", "NDSI forecasting").
        hint: what to do when the file cannot be loaded (how to export it again).
        threads: intra-op CPU threads; None = :func:`available_cores`.

    Returns:
        (session, a note for the log or None): the note says when CUDA was asked for and not used.
    """
    ort = import_onnxruntime(needed_by)
    path = os.path.abspath(model_path)
    if not os.path.isfile(path):
        raise GlacierFlowError(f"Model {path} does not exist; give the path of an exported .onnx file.")
    choice = (provider or "auto").lower()
    providers, note = choose_providers(choice, ort.get_available_providers())
    key = (path, os.stat(path).st_mtime_ns, choice, threads)
    with _SESSIONS_LOCK:
        session = _SESSIONS.get(key)
        if session is None:
            for stale in [k for k in _SESSIONS if k[0] == path and k[2] == choice and k[3] == threads]:
                del _SESSIONS[stale]  # an older version of the same file: free its memory
            try:
                session = ort.InferenceSession(path, session_options(ort, threads), providers=providers)
            except Exception as exc:  # onnxruntime raises its own types for corrupt or foreign files
                raise GlacierFlowError(f"onnxruntime cannot load the model {path}: {exc}; {hint}.") from exc
            _SESSIONS[key] = session
    used = session.get_providers()[0]
    if providers[0] == CUDA and used != CUDA:  # onnxruntime-gpu falls back quietly when CUDA libs fail
        note = (f"{CUDA} is installed but could not be started (check the CUDA and cuDNN libraries); "
                f"running on {used}.")
    return session, note


def clear_session_cache() -> None:
    """Forget every cached session (frees their memory; the next engine creates one anew)."""
    with _SESSIONS_LOCK:
        _SESSIONS.clear()
