"""The output guard: no job may write over one of its own inputs, or two of its outputs over each other.

Checked before anything is written, for every algorithm (processing/base.py calls :func:`check_outputs`).
Paths are compared after resolving links (``os.path.realpath``) and, when both exist, as the same file
(``os.path.samefile``: hard links, case-insensitive file systems). Each output is compared together with
the sidecars it writes (a raster's ``.qml`` style and ``.aux.xml``, a JSON report's ``.txt``), so a report
cannot replace the input raster's style either.
"""
from __future__ import annotations

import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from ..errors import GlacierFlowError

RASTER = "raster"  # a GeoTIFF product: the .tif, its .qml style and GDAL's .aux.xml
REPORT = "report"  # a JSON report and the text report beside it
FILE = "file"  # a single file (CSV, HTML, a model)
VECTOR = "vector"  # a vector layer file (GeoPackage, shapefile and its sidecars)
FOLDER = "folder"  # a folder the job writes files into

RASTER_EXTENSIONS = (".tif", ".tiff")
_SHAPEFILE_PARTS = (".shp", ".shx", ".dbf", ".prj", ".cpg", ".qix")


@dataclass(frozen=True)
class Output:
    """One output of a job: the parameter that names it, its path, its kind (see the constants above) and the
    file extensions it may have (empty: any)."""

    parameter: str
    path: str
    kind: str = FILE
    extensions: tuple[str, ...] = ()


def written_files(output: Output) -> list[str]:
    """The files writing ``output`` creates or replaces: the path itself and its sidecars."""
    path = output.path
    stem = os.path.splitext(path)[0]
    if output.kind == RASTER:
        return [path, stem + ".qml", path + ".aux.xml"]
    if output.kind == REPORT:
        return [path, stem + ".txt" if stem + ".txt" != path else path + ".txt"]
    if output.kind == VECTOR and path.lower().endswith(".shp"):
        return [stem + part for part in _SHAPEFILE_PARTS]
    return [path]


def same_path(first: str, second: str) -> bool:
    """True when ``first`` and ``second`` name the same file (after links; the same inode when both exist)."""
    if os.path.normcase(os.path.realpath(first)) == os.path.normcase(os.path.realpath(second)):
        return True
    try:
        return os.path.samefile(first, second)
    except OSError:
        return False


def inside_folder(path: str, folder: str) -> bool:
    """True when ``path`` lies in ``folder`` or below it (after links)."""
    real_path, real_folder = os.path.realpath(path), os.path.realpath(folder)
    try:
        return os.path.commonpath([real_path, real_folder]) == real_folder and real_path != real_folder
    except ValueError:  # different drives on Windows
        return False


def check_outputs(inputs: Mapping[str, Sequence[str]], outputs: Sequence[Output]) -> None:
    """Refuse, before anything is written, outputs that would destroy an input or each other.

    ``inputs`` maps each input parameter to the files (or folders) it reads. An output is refused when it,
    or one of its sidecars, is one of those files; when it replaces an existing file inside an input
    folder; when it has an extension its format cannot have; or when two outputs share a file.
    """
    for output in outputs:
        _check_extension(output)
        for parameter, paths in inputs.items():
            for source in paths:
                _check_against_input(output, parameter, source)
    _check_outputs_apart(outputs)


def _check_extension(output: Output) -> None:
    if not output.extensions or output.kind == FOLDER:
        return
    extension = os.path.splitext(output.path)[1].lower()
    if extension not in output.extensions:
        wanted = " or ".join(output.extensions)
        what = "a Cloud Optimized GeoTIFF" if output.kind == RASTER else f"a {wanted} file"
        raise GlacierFlowError(
            f"{output.parameter}: '{os.path.basename(output.path)}' would be written as {what} under a "
            f"'{extension or 'missing'}' extension: name it {wanted}.")


def _check_against_input(output: Output, parameter: str, source: str) -> None:
    if output.kind == FOLDER:  # a folder output writes files of its own names, beside inputs or not
        return
    if os.path.isdir(source):
        if os.path.isfile(output.path) and inside_folder(output.path, source):
            raise GlacierFlowError(
                f"{output.parameter}: '{output.path}' is a file in the input folder {parameter} and would be "
                "replaced (and read as input by the next run): choose an output outside that folder.")
        return
    for written in written_files(output):
        if same_path(written, source):
            which = "" if written == output.path else f" (its sidecar '{os.path.basename(written)}')"
            raise GlacierFlowError(
                f"{output.parameter}: '{output.path}'{which} is the input {parameter}; writing it would destroy "
                "that input. Choose another output file; nothing was written.")


def _check_outputs_apart(outputs: Sequence[Output]) -> None:
    for index, first in enumerate(outputs):
        for second in outputs[index + 1:]:
            if _share_a_file(first, second):
                raise GlacierFlowError(
                    f"{first.parameter} and {second.parameter} are the same file ('{first.path}'): one result "
                    "would replace the other. Give each output its own name; nothing was written.")


def _share_a_file(first: Output, second: Output) -> bool:
    if FOLDER in (first.kind, second.kind):  # a report folder may also hold the pairs: their names differ
        return False
    return any(same_path(a, b) for a in written_files(first) for b in written_files(second))


def input_files(layer_sources: Iterable[str]) -> list[str]:
    """Local file paths behind layer source strings ("file.gpkg|layername=x", "/a.tif"); others dropped."""
    files = []
    for source in layer_sources:
        path = source.split("|", 1)[0].strip()
        if path.startswith("file://"):  # a delimited-text URI: file:///a.csv?type=csv&...
            path = path[len("file://"):].split("?", 1)[0]
        if path and os.path.exists(path):
            files.append(path)
    return files
