"""Layer inputs opened in the main thread, before a job runs in QGIS's worker thread.

QGIS's layers and its project are Qt objects of the main thread. The task manager runs an algorithm's
``processAlgorithm`` in a worker thread, and there, opening a layer from a path or searching the project
for one races with the desktop, which may be adding, drawing or removing layers at the same moment (a
crash seen when a panel job started while its previous result was being drawn). ``prepareAlgorithm``
runs in the main thread: it opens or finds every layer input once, and the job then reads those layers'
files and CRS, which are read-only calls.
"""
from __future__ import annotations

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


def _unset(value: Any) -> bool:
    return value is None or (isinstance(value, (str, list)) and not value)
