"""Every algorithm's inputs and outputs as files, for core's output guard (core/io/output_guard.py).

Called by ``GlacierFlowAlgorithm.processAlgorithm`` before ``process``: an output that is an input (or
its sidecar), two outputs on one file, or an output with the wrong extension is refused before anything
is written; temporary files a killed run left beside each output are removed.
"""
from __future__ import annotations

import re
from typing import Any

from qgis.core import QgsProcessingAlgorithm, QgsProcessingContext, QgsProcessingFeedback

from ..core.io import output_guard as guard
from ..core.io.atomic import remove_stale_temporaries, remove_stale_temporaries_in
from .input_layers import file_paths

_INPUT_LAYER_TYPES = {"raster", "source", "vector", "layer", "mesh", "pointcloud"}
_TEMPORARY = ("TEMPORARY_OUTPUT", "memory:")


def guard_outputs(algorithm: QgsProcessingAlgorithm, parameters: dict[str, Any], context: QgsProcessingContext,
                  feedback: QgsProcessingFeedback) -> None:
    """Refuse outputs that would destroy inputs or each other (GlacierFlowError); clean stale temporaries."""
    inputs: dict[str, list[str]] = {}
    outputs: list[guard.Output] = []
    for definition in algorithm.parameterDefinitions():
        name = definition.name()
        if parameters.get(name) in (None, "", []):
            continue
        if definition.isDestination():
            output = _output(algorithm, definition, parameters, context)
            if output is not None:
                outputs.append(output)
        else:
            inputs[name] = _input_files(algorithm, definition, parameters, context)
    guard.check_outputs(inputs, outputs)
    for output in outputs:
        _remove_leftovers(output, feedback)


def _output(algorithm: QgsProcessingAlgorithm, definition: Any, parameters: dict[str, Any],
            context: QgsProcessingContext) -> guard.Output | None:
    kind = definition.type()
    name = definition.name()
    if kind == "rasterDestination":
        path = algorithm.parameterAsOutputLayer(parameters, name, context)
        return _local(guard.Output(name, path, guard.RASTER, guard.RASTER_EXTENSIONS))
    if kind == "fileDestination":
        path = algorithm.parameterAsFileOutput(parameters, name, context)
        extensions = tuple("." + ext.lower() for ext in re.findall(r"\*\.(\w+)", definition.fileFilter()))
        report = extensions == (".json",)
        return _local(guard.Output(name, path, guard.REPORT if report else guard.FILE, extensions))
    if kind in ("sink", "vectorDestination"):
        path = algorithm.parameterAsOutputLayer(parameters, name, context)
        return _local(guard.Output(name, _vector_file(path), guard.VECTOR))
    if kind == "folderDestination":
        path = algorithm.parameterAsFileOutput(parameters, name, context)
        return _local(guard.Output(name, path, guard.FOLDER))
    return None


def _local(output: guard.Output) -> guard.Output | None:
    """``output`` when it is a file the job writes (not a temporary layer or a database URI)."""
    path = output.path or ""
    if not path or path.startswith(_TEMPORARY) or "://" in path:
        return None
    return output


def _vector_file(uri: str) -> str:
    """The file behind an OGR output URI ("ogr:dbname='x.gpkg' table=..." or "x.gpkg|layername=y")."""
    match = re.match(r"^ogr:dbname='([^']+)'", uri)
    return match.group(1) if match else uri.split("|", 1)[0]


def _input_files(algorithm: QgsProcessingAlgorithm, definition: Any, parameters: dict[str, Any],
                 context: QgsProcessingContext) -> list[str]:
    kind, name = definition.type(), definition.name()
    if kind == "file":
        return guard.input_files([algorithm.parameterAsFile(parameters, name, context)])
    files = file_paths(parameters.get(name))
    if files is not None and kind in ("raster", "multilayer"):  # read by GDAL: no layer is opened for them
        return guard.input_files(files)
    if kind == "multilayer":
        layers = algorithm.parameterAsLayerList(parameters, name, context)
        return guard.input_files(layer.source() for layer in layers)
    if kind == "raster":
        layer = algorithm.parameterAsRasterLayer(parameters, name, context)
    elif kind in _INPUT_LAYER_TYPES:
        layer = algorithm.parameterAsVectorLayer(parameters, name, context)
    else:
        return []
    return guard.input_files([layer.source()]) if layer is not None else []


def _remove_leftovers(output: guard.Output, feedback: QgsProcessingFeedback) -> None:
    """Remove the temporary files a killed earlier run left for this output (and its sidecars)."""
    if output.kind == guard.FOLDER:
        removed = remove_stale_temporaries_in(output.path)
    else:
        removed = [path for written in guard.written_files(output) for path in remove_stale_temporaries(written)]
    if removed:
        feedback.pushInfo(f"Removed {len(removed)} temporary file(s) an interrupted earlier run left beside "
                          f"{output.parameter}.")
