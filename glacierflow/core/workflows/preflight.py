"""Read every input of an annual job before its first pair runs, so a bad file fails in seconds, not after
hours of pairs, and leaves nothing behind (issue: a bad stake file failed the job after every pair)."""
from __future__ import annotations

import os
from typing import Any

from ..errors import GlacierFlowError
from ..geo.crs import wgs84_wkt
from ..geo.outlines import GlacierOutlines
from ..validation.stakes import read_stakes


def check_annual_inputs(job: Any) -> None:
    """Open the stakes, outlines, stable areas, model file and scene folder of an :class:`.annual.AnnualJob`;
    raise GlacierFlowError naming the first one that cannot be used. Nothing is written."""
    if job.stakes:
        read_stakes(job.stakes, crs_wkt=job.stakes_crs_wkt)
    for label, path in (("Glacier outlines", job.outlines), ("Stable areas", job.stable_areas)):
        if path:
            try:
                GlacierOutlines(path, wgs84_wkt())
            except GlacierFlowError as error:
                raise GlacierFlowError(f"{label}: {error}") from None
    model = (job.pair_options or {}).get("engine_params", {}).get("model_path")
    if model and not os.path.isfile(model):
        raise GlacierFlowError(f"RAFT model '{model}' does not exist: choose an .onnx file, or leave it empty "
                               "for the shipped model.")
    if job.source == "local_folder" and job.folder and not os.path.isdir(job.folder):
        raise GlacierFlowError(f"Scene folder '{job.folder}' does not exist: choose the folder holding your "
                               "GeoTIFFs.")
    for folder in (job.work_folder, job.report_folder):
        _check_writable(folder)


def _check_writable(folder: str | None) -> None:
    """An output folder that exists must be writable; one to create needs a writable existing parent."""
    if not folder:
        return
    existing = folder
    while existing and not os.path.exists(existing):
        existing = os.path.dirname(existing)
    if existing and not os.access(existing, os.W_OK):
        raise GlacierFlowError(f"Cannot write in '{existing}' (read-only): choose another folder for '{folder}'.")
