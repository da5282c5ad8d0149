"""Processing algorithm ``glacierflow:export_netcdf``: a velocity product as a CF netCDF that QGIS opens as a
mesh layer with a vector dataset (its arrows, streamlines and particle traces).

Its parameter names are a public headless API: keep them stable.
"""
from __future__ import annotations

from typing import Any

from qgis.core import (
    QgsMeshLayer,
    QgsProcessingContext,
    QgsProcessingFeedback,
    QgsProcessingParameterBoolean,
    QgsProcessingParameterFileDestination,
    QgsProcessingParameterRasterLayer,
)

from .base import GlacierFlowAlgorithm

MESH_NAME = "ice surface velocity (mesh)"

HELP_TEXT = """<p>Exports a velocity product (bands vx, vy in m/yr) as a CF-1.8 netCDF file with the x and y
velocity components, the speed and, when present, valid, uncertainty and count; coordinates x, y (m, pixel
centres), a time (the middle of the interval, with the two acquisitions as bounds) and the CRS as a CF grid
mapping.</p>
<p>QGIS opens the file as a <b>mesh layer</b> whose dataset group <i>ice surface velocity</i> is a vector:
use the layer's symbology for arrows, streamlines or particle traces. Other tools (xarray, Panoply, ncview)
read it as a regular CF grid.</p>
<p><b>Load as a mesh layer</b> adds the file to the project as a mesh layer when the algorithm finishes.</p>"""


class ExportNetcdfAlgorithm(GlacierFlowAlgorithm):
    """A velocity product as a CF netCDF (mesh layer with vectors in QGIS)."""

    INPUT = "INPUT"
    LOAD_MESH = "LOAD_MESH"
    OUTPUT = "OUTPUT"

    ALGORITHM_ID = "export_netcdf"
    DISPLAY_NAME = "Export velocity as CF netCDF (mesh)"
    GROUP = "Analysis"
    HELP = HELP_TEXT

    def initAlgorithm(self, config: dict[str, Any] | None = None) -> None:  # noqa: N802
        self.addParameter(QgsProcessingParameterRasterLayer(self.INPUT, "Velocity product (vx, vy in m/yr)"))
        self.addParameter(QgsProcessingParameterBoolean(self.LOAD_MESH, "Load as a mesh layer", True))
        self.addParameter(QgsProcessingParameterFileDestination(
            self.OUTPUT, "CF netCDF", "netCDF files (*.nc)"))

    def process(self, parameters: dict[str, Any], context: QgsProcessingContext,
                feedback: QgsProcessingFeedback) -> dict[str, Any]:
        from ..core.analysis.export import export_netcdf

        output = export_netcdf(self.raster_path(parameters, self.INPUT, context),
                               self.parameterAsFileOutput(parameters, self.OUTPUT, context))
        feedback.pushInfo(f"Wrote {output}: open it as a mesh layer for arrows, streamlines or traces.")
        if self.parameterAsBool(parameters, self.LOAD_MESH, context) and context.project() is not None:
            layer = QgsMeshLayer(output, MESH_NAME, "mdal")
            if layer.isValid():
                context.temporaryLayerStore().addMapLayer(layer)
                context.addLayerToLoadOnCompletion(layer.id(), QgsProcessingContext.LayerDetails(
                    MESH_NAME, context.project(), self.OUTPUT))
            else:
                feedback.reportError(f"QGIS could not open {output} as a mesh layer: {layer.error().summary()}")
        return {self.OUTPUT: output}
