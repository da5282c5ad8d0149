"""Processing algorithm ``glacierflow:download_scenes``: the scenes of a search as GeoTIFFs on one job grid.

Its parameter names are a public headless API: keep them stable.
"""
from __future__ import annotations

from typing import Any

from qgis.core import (
    QgsProcessingContext,
    QgsProcessingException,
    QgsProcessingFeedback,
    QgsProcessingOutputNumber,
    QgsProcessingParameterFileDestination,
    QgsProcessingParameterFolderDestination,
)

from . import grid_params
from .base import GlacierFlowAlgorithm
from .feedback import ProcessingFeedback
from .imagery_params import (
    GRID_HELP,
    SEARCH_HELP,
    add_band_parameter,
    add_search_parameters,
    band_name,
    run_search,
    search_request,
)

HELP_TEXT = """<p>Searches scenes as <i>Search scenes</i> does, then fetches each one onto one job grid over
the area and writes it as a Cloud Optimized GeoTIFF (float32, NaN for no data: outside the scene, cloud,
fill) into the output folder. The folder is then a <code>local_folder</code> source for every other
algorithm: each file carries ACQUISITION_DATETIME (ISO-8601, UTC), CLOUD_COVER (%), VALID_FRACTION (0-1 of
the grid), SCENE_ID, SOURCE and BAND tags.</p>
<p>An area is required (polygons or an extent): it defines the grid. A rerun into the same folder skips
every file already downloaded for the same scene, band and grid; a scene with no valid pixel on the grid
is skipped (the log says so). Each file is written under a hidden name and renamed when complete, so a
cancel leaves no partial file.</p>""" + SEARCH_HELP + GRID_HELP + """
<ul><li><b>Band</b>: a band name the source offers (<code>nir</code>, <code>green</code>,
<code>swir1</code>, ...; surface reflectance 0-1), or empty for its default band (the one velocity uses:
Sentinel-2 B8; a local file's band).</li></ul>
<h3>Outputs</h3>
<p>The folder, and a CSV table with one row per file: <b>file</b>, <b>scene_id</b>, <b>datetime</b>,
<b>cloud_cover</b> (%), <b>valid_fraction</b> (0-1 of the grid), <b>band</b>, <b>source</b>.</p>"""


class DownloadScenesAlgorithm(GlacierFlowAlgorithm):
    """Download the scenes of a search onto the job grid."""

    OUTPUT = "OUTPUT"
    TABLE = "TABLE"

    ALGORITHM_ID = "download_scenes"
    DISPLAY_NAME = "Download scenes"
    GROUP = "Imagery"
    HELP = HELP_TEXT

    def initAlgorithm(self, config: dict[str, Any] | None = None) -> None:  # noqa: N802
        add_search_parameters(self)
        grid_params.add_grid_parameters(self, "Pixel size (m; 0: the sensor's resolution)", advanced=False)
        add_band_parameter(self)
        self.addParameter(QgsProcessingParameterFolderDestination(self.OUTPUT, "Scene folder"))
        self.addParameter(QgsProcessingParameterFileDestination(
            self.TABLE, "Table of the files (CSV)", "CSV files (*.csv)"))
        self.addOutput(QgsProcessingOutputNumber("COUNT", "Number of files"))

    def process(self, parameters: dict[str, Any], context: QgsProcessingContext,
                feedback: QgsProcessingFeedback) -> dict[str, Any]:
        from dataclasses import replace

        from ..core.geo.gridspec import default_pixel_size, resolve_grid
        from ..core.imagery.download import download_scenes, write_download_table

        request = search_request(self, parameters, context)
        if request.area is None:
            raise QgsProcessingException("Downloading needs an area (polygons or an extent): it defines the job "
                                         "grid the scenes are warped onto.")
        scenes = run_search(request, feedback)
        spec = grid_params.grid_spec(self, parameters, context)
        pixel_size, why = ((spec.pixel_size, "given") if spec.pixel_size
                           else default_pixel_size(request.source, scenes))
        feedback.pushInfo(f"Pixel size {pixel_size:g} m ({why}).")
        core_feedback = ProcessingFeedback(feedback)
        grid = resolve_grid(replace(spec, pixel_size=pixel_size), area=request.area, feedback=core_feedback)
        folder = self.parameterAsFileOutput(parameters, self.OUTPUT, context)
        band = band_name(self, parameters, context)
        paths = download_scenes(request.source, scenes, grid, folder, band, core_feedback)
        if not paths:
            raise QgsProcessingException(f"None of the {len(scenes)} scene(s) has a valid pixel inside the area: "
                                         "check the area's position and CRS, or widen the search.")
        table = write_download_table(paths, self.parameterAsFileOutput(parameters, self.TABLE, context))
        feedback.pushInfo(f"{len(paths)} file(s) in {folder}.")
        return {self.OUTPUT: folder, self.TABLE: table, "COUNT": len(paths)}
