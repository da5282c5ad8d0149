"""Layer inputs opened in the main thread, before a job runs in QGIS's worker thread.

QGIS's layers and its project are Qt objects of the main thread. The task manager runs an algorithm's
``processAlgorithm`` in a worker thread, and there, opening a layer from a path or searching the project
for one races with the desktop, which may be adding, drawing or removing layers at the same moment (a
crash seen when a panel job started while its previous result was being drawn). ``prepareAlgorithm``
runs in the main thread: it finds every layer input chosen from the project, and opens the vector ones
given by path, once; the job then reads those layers' files and CRS, which are read-only calls. A raster
given as a file path is never opened as a QGIS layer: the job reads it with GDAL, so that no display
statistics are computed on the main thread (seconds for a large or remote raster) and no layer is built in
the worker thread.
"""
from __future__ import annotations

import os
from typing import Any

from qgis.core import QgsProcessingAlgorithm, QgsProcessingContext, QgsProcessingFeatureSourceDefinition

_SINGLE_LAYER_KINDS = ("raster", "vector", "source", "layer", "mesh", "pointcloud")


def open_layer_inputs(algorithm: QgsProcessingAlgorithm, parameters: dict[str, Any],
                      context: QgsProcessingContext) -> dict[str, Any]:
    """Every given layer input of ``algorithm`` as its layer (or list of layers), keyed by parameter name.

    Call in the thread that owns ``context`` (the main thread). Inputs that cannot be opened are left out:
    the job then reports them with its own message. A feature-source definition (selected features only,
    a feature limit) stays as given, so the job keeps those settings.
    """
    opened: dict[str, Any] = {}
    for definition in algorithm.parameterDefinitions():
        name, kind, value = definition.name(), definition.type(), parameters.get(definition.name())
        if definition.isDestination() or _unset(value) or isinstance(value, QgsProcessingFeatureSourceDefinition):
            continue
        if _raster_files(kind, value):
            continue
        if kind == "multilayer":
            layers = algorithm.parameterAsLayerList(parameters, name, context)
            if layers:
                opened[name] = list(layers)
        elif kind in _SINGLE_LAYER_KINDS:
            layer = _open(algorithm, kind, parameters, name, context)
            if layer is not None:
                opened[name] = layer
    return opened


def _open(algorithm: QgsProcessingAlgorithm, kind: str, parameters: dict[str, Any], name: str,
          context: QgsProcessingContext) -> Any:
    if kind == "raster":
        return algorithm.parameterAsRasterLayer(parameters, name, context)
    if kind in ("vector", "source"):
        return algorithm.parameterAsVectorLayer(parameters, name, context)
    return algorithm.parameterAsLayer(parameters, name, context)


def is_file_path(value: Any) -> bool:
    """True for a plain path to an existing file (a raster there is read by GDAL, not opened as a layer)."""
    return isinstance(value, str) and os.path.isfile(value)


def file_paths(value: Any) -> list[str] | None:
    """``value`` as a list of existing file paths (one path, or a list of them), or None when it is not."""
    values = value if isinstance(value, (list, tuple)) else [value]
    return list(values) if values and all(is_file_path(item) for item in values) else None


def _raster_files(kind: str, value: Any) -> bool:
    """A raster input (or a multi-layer one) given as file paths only."""
    return (kind == "raster" and is_file_path(value)) or (kind == "multilayer" and file_paths(value) is not None)


def _unset(value: Any) -> bool:
    return value is None or (isinstance(value, (str, list)) and not value)
