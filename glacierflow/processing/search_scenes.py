"""Processing algorithm ``glacierflow:search_scenes``: a table of the scenes an imagery source has.

Its parameter names are a public headless API: keep them stable.
"""
from __future__ import annotations

from typing import Any

from qgis.core import (
    QgsProcessing,
    QgsProcessingContext,
    QgsProcessingFeedback,
    QgsProcessingParameterFeatureSink,
)

from .base import GlacierFlowAlgorithm
from .imagery_params import SEARCH_HELP, add_search_parameters, search_from_parameters

HELP_TEXT = """<p>Lists the scenes an imagery source holds over an area, in a date range and in chosen
months, with their acquisition time (UTC), cloud cover (%) and valid fraction. The table feeds <i>Image
pairs</i> and <i>Download scenes</i> and lets you check what a velocity job will use.</p>""" + SEARCH_HELP + """
<h3>Output</h3>
<p>A table (no geometry) with <b>scene_id</b>, <b>datetime</b> (ISO-8601, UTC), <b>cloud_cover</b> (%,
empty when unknown), <b>source</b>, <b>path</b> and <b>valid_fraction</b> (0-1: the share of the area with
usable pixels, empty when the source cannot tell, as for a local folder), sorted by time.</p>"""


SCENE_COLUMNS = (("scene_id", "string"), ("datetime", "string"), ("cloud_cover", "double"),
                 ("source", "string"), ("path", "string"), ("valid_fraction", "double"))


class SearchScenesAlgorithm(GlacierFlowAlgorithm):
    """Search scenes of an imagery source."""

    OUTPUT = "OUTPUT"

    ALGORITHM_ID = "search_scenes"
    DISPLAY_NAME = "Search scenes"
    GROUP = "Imagery"
    HELP = HELP_TEXT

    def initAlgorithm(self, config: dict[str, Any] | None = None) -> None:  # noqa: N802
        add_search_parameters(self)
        self.addParameter(QgsProcessingParameterFeatureSink(self.OUTPUT, "Scenes", QgsProcessing.SourceType.TypeVector))

    def process(self, parameters: dict[str, Any], context: QgsProcessingContext,
                feedback: QgsProcessingFeedback) -> dict[str, Any]:
        scenes = search_from_parameters(self, parameters, context, feedback)
        for scene in scenes:
            feedback.pushInfo(f"{scene.id}: {scene.time.isoformat()} (from {scene.time_source})")
        dest_id = self.write_table(parameters, self.OUTPUT, context, SCENE_COLUMNS,
                                   ([scene.id, scene.time.isoformat(), scene.cloud_cover, scene.source, scene.href,
                                     scene.valid_fraction] for scene in scenes))
        return {self.OUTPUT: dest_id}

