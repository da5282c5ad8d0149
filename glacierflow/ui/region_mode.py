"""The dock's "Region" mode: many glaciers (an RGI layer) -> ``glacierflow:regional_velocity``, in QGIS's
process or on Dask (a local cluster, or a running one by address).

The source, years, months, pairing rule, engine and remote-service settings are the Area tab's (one set of
search widgets for both); this tab adds the outlines, where the job runs and the output folder. The result
is the glacier index, coloured by median speed, and each complete glacier's speed raster, in one group.
"""
from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass, field
from typing import Any, Callable

from qgis.core import (
    QgsApplication,
    QgsClassificationQuantile,
    QgsFieldProxyModel,
    QgsGradientColorRamp,
    QgsGradientStop,
    QgsGraduatedSymbolRenderer,
    QgsLayerTreeGroup,
    QgsMapLayer,
    QgsProcessingUtils,
    QgsProject,
    QgsRasterLayer,
    QgsSettings,
    QgsSymbol,
    QgsVectorLayer,
)
from qgis.gui import QgsFieldComboBox, QgsFileWidget
from qgis.PyQt.QtGui import QColor
from qgis.PyQt.QtWidgets import QCheckBox, QDoubleSpinBox, QFormLayout, QLabel, QLineEdit, QVBoxLayout, QWidget

from ..processing.regional_velocity import RegionalVelocityAlgorithm as Regional
from .area_mode import AreaMode
from .layers import speed_layer
from .modes import VelocityMode
from .vector_export import polygon_file
from .widgets import polygon_layer_combo, spin_box

ALGORITHM_ID = "glacierflow:" + Regional.ALGORITHM_ID
SETTINGS = "glacierflow/dock/region/"
SPEED_FIELD = "median_speed"  # the index's field the glaciers are coloured by (m/yr)
MAX_RASTERS = 30  # speed rasters loaded at most; the index links every product
VIRIDIS = ("#440154", "#fde725", (0.25, "#3b528b"), (0.5, "#21918c"), (0.75, "#5ec962"))


@dataclass
class RegionLayers:
    """The layers of one regional run: the glacier index and the complete glaciers' speed rasters."""

    group: QgsLayerTreeGroup
    index: QgsVectorLayer
    speeds: list[QgsRasterLayer] = field(default_factory=list)
    not_loaded: int = 0  # complete glaciers whose raster was left out (beyond MAX_RASTERS)


class RegionMode(VelocityMode, QWidget):
    """Inputs of a regional run; ``parameters()`` for the algorithm, ``load()`` for its result (queued and
    released as the other velocity modes)."""

    algorithm_id = ALGORITHM_ID
    title = "Region"
    cancelled_leaves = Regional.CANCELLED_LEAVES

    def __init__(self, last_folder: Callable[[], str], area: AreaMode, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.last_folder = last_folder
        self.area = area  # owns the source, season and engine widgets
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        note = QLabel("Source, years, months, pairing rule and engine: those of the Area tab.", self)
        note.setWordWrap(True)
        layout.addWidget(note)
        layout.addLayout(self._form())
        layout.addStretch(1)
        self._restore_settings()
        for signal in (self.scheduler.editingFinished, self.workers.valueChanged, self.min_area.valueChanged,
                       self.output.fileChanged):
            signal.connect(self.save_settings)

    def _form(self) -> QFormLayout:
        form = QFormLayout()
        self.outlines = polygon_layer_combo(self)
        self.outlines.setToolTip("One polygon per glacier, e.g. an RGI region's outlines")
        self.selected_only = QCheckBox("Selected glaciers only", self)
        self.id_field = QgsFieldComboBox(self)
        self.id_field.setAllowEmptyFieldName(True)
        self.id_field.setFilters(QgsFieldProxyModel.Filter.String | QgsFieldProxyModel.Filter.Int
                                 | QgsFieldProxyModel.Filter.LongLong)
        self.id_field.setToolTip("Names each glacier's folder; empty: RGIId or the like, else the feature id")
        self.outlines.layerChanged.connect(self.id_field.setLayer)
        self.id_field.setLayer(self.outlines.currentLayer())
        self.min_area = QDoubleSpinBox(self)
        self.min_area.setRange(0.0, 10000.0)
        self.min_area.setDecimals(2)
        self.min_area.setSuffix(" km2")
        self.min_area.setToolTip("Glaciers smaller than this are left out")
        self.scheduler = QLineEdit(self)
        self.scheduler.setPlaceholderText("empty: this machine")
        self.scheduler.setToolTip("A running Dask cluster's scheduler (tcp://host:8786); empty: a local cluster "
                                  "of Workers processes, or this process when Workers is 0")
        self.workers = spin_box(self, 0, 256, 2)
        self.workers.setSpecialValueText("0 (in QGIS's process)")
        self.workers.setToolTip("Worker processes of the local cluster, one thread each; 0: no Dask, one task "
                                "after the other in this process")
        self.output = QgsFileWidget(self)
        self.output.setStorageMode(QgsFileWidget.StorageMode.GetDirectory)
        self.output.setToolTip("One folder per glacier and index.gpkg; a rerun into the same folder skips "
                               "what is complete. Empty: a temporary folder")
        form.addRow("Glacier outlines", self.outlines)
        form.addRow("", self.selected_only)
        form.addRow("Glacier id field", self.id_field)
        form.addRow("Min. glacier area", self.min_area)
        form.addRow("Dask scheduler", self.scheduler)
        form.addRow("Workers", self.workers)
        form.addRow("Output folder", self.output)
        return form

    # ---------------------------------------------------------------- settings
    def _restore_settings(self) -> None:
        settings = QgsSettings()
        self.scheduler.setText(str(settings.value(SETTINGS + "scheduler", "")))
        self.workers.setValue(int(settings.value(SETTINGS + "workers", self.workers.value())))
        self.min_area.setValue(float(settings.value(SETTINGS + "min_area", 0.0)))
        self.output.setFilePath(str(settings.value(SETTINGS + "output", "")))

    def save_settings(self) -> None:
        """Remember the scheduler, workers, minimum area and output folder."""
        settings = QgsSettings()
        for key, value in (("scheduler", self.scheduler.text().strip()), ("workers", self.workers.value()),
                           ("min_area", self.min_area.value()), ("output", self.output.filePath())):
            settings.setValue(SETTINGS + key, value)

    # -------------------------------------------------------------- parameters
    def parameters(self) -> dict[str, Any]:
        """The parameters of the installed regional algorithm, from this tab and the Area tab.

        Raises:
            ValueError: something the user must fix first (the message says what).
        """
        algorithm = QgsApplication.processingRegistry().algorithmById(ALGORITHM_ID)
        if algorithm is None:
            raise ValueError(f"The algorithm {ALGORITHM_ID} is not available: enable the GlacierFlow plugin.")
        accepted = {definition.name() for definition in algorithm.parameterDefinitions()}
        outlines = self.outlines.currentLayer()
        if not isinstance(outlines, QgsVectorLayer):
            raise ValueError("Choose the glacier outlines: a polygon layer with one polygon per glacier (RGI).")
        if self.selected_only.isChecked() and outlines.selectedFeatureCount() == 0:
            raise ValueError("No glacier is selected: select some, or untick 'Selected glaciers only'.")
        scheduler = self.scheduler.text().strip()
        if scheduler and "://" not in scheduler:
            raise ValueError(f"'{scheduler}' is not a scheduler address: give it as tcp://host:8786, or leave "
                             "it empty to run on this machine.")
        values = self.area.search_values(accepted)
        values.update({Regional.OUTLINES: polygon_file(outlines, self.selected_only.isChecked()),
                       Regional.MIN_AREA: self.min_area.value(), Regional.SCHEDULER: scheduler,
                       Regional.WORKERS: self.workers.value(), Regional.OUTPUT: self._output_folder()})
        if self.id_field.currentField():
            values[Regional.ID_FIELD] = self.id_field.currentField()
        return {name: value for name, value in values.items() if name in accepted}

    def _output_folder(self) -> str:
        """The chosen folder, else a new temporary one: a rerun resumes only in a folder the user chose (an
        earlier run of other outlines must never be taken for this one's complete work)."""
        folder = self.output.filePath().strip()
        if folder:
            return folder
        return tempfile.mkdtemp(prefix="regional_velocity_", dir=QgsProcessingUtils.tempFolder())

    def describe(self, parameters: dict[str, Any]) -> str:
        """One log line for the start of a run."""
        outlines = self.outlines.currentLayer()
        count = outlines.selectedFeatureCount() if self.selected_only.isChecked() else outlines.featureCount()
        where = (f"the Dask cluster at {parameters[Regional.SCHEDULER]}" if parameters.get(Regional.SCHEDULER)
                 else f"a local cluster of {parameters.get(Regional.WORKERS)} worker(s)"
                 if parameters.get(Regional.WORKERS) else "QGIS's process")
        return (f"Started the regional {parameters.get(Regional.ENGINE, '')} run over {count} glacier outline(s) "
                f"of '{outlines.name()}' on {where} -> {parameters.get(Regional.OUTPUT, '')}")

    # ------------------------------------------------------------------ result
    def load(self, results: dict[str, Any], parameters: dict[str, Any],
             project: QgsProject | None = None) -> RegionLayers:
        """Add the glacier index (coloured by median speed) and the complete glaciers' speed rasters."""
        project = project or QgsProject.instance()
        index = QgsVectorLayer(results["INDEX"], "glaciers (median speed, m/yr)", "ogr")
        if not index.isValid():
            raise ValueError(f"The glacier index {results['INDEX']} cannot be opened.")
        index.setRenderer(index_renderer(index))
        products = complete_products(index)
        folder = os.path.basename(os.path.normpath(str(parameters.get(Regional.OUTPUT, "")))) or "regional"
        group = project.layerTreeRoot().insertGroup(0, f"GlacierFlow region {folder}")
        project.addMapLayer(index, False)
        group.addLayer(index)
        speeds = []
        for product in products[:MAX_RASTERS]:
            glacier = os.path.basename(os.path.dirname(product))
            layer = speed_layer(product, f"{glacier} speed (m/yr)")
            project.addMapLayer(layer, False)
            group.addLayer(layer)
            speeds.append(layer)
        return RegionLayers(group, index, speeds, max(0, len(products) - MAX_RASTERS))

    def report(self, loaded: RegionLayers, results: dict[str, Any], seconds: float) -> tuple[list[str], QgsMapLayer]:
        """Log lines for a finished run (glaciers, complete ones, tasks run) and the index layer to show."""
        lines = [f"Result ({seconds:.1f} s): {results.get(Regional.OUTPUT, '')}",
                 f"{int(results.get('COMPLETE_COUNT', 0))} of {int(results.get('GLACIER_COUNT', 0))} glaciers "
                 f"complete; {int(results.get('TASKS_RUN', 0))} task(s) run (0: everything was complete already).",
                 f"Loaded '{loaded.group.name()}': the glacier index and {len(loaded.speeds)} speed raster(s)"
                 + (f"; {loaded.not_loaded} more are linked in the index's product field." if loaded.not_loaded
                    else ".")]
        return lines, loaded.index


def complete_products(index: QgsVectorLayer) -> list[str]:
    """The velocity products (files) of the index's complete glaciers, in the index's order."""
    products = (str(feature["product"]) for feature in index.getFeatures()
                if feature["status"] == "complete" and feature["product"])
    return [path for path in products if os.path.exists(path)]


def index_renderer(index: QgsVectorLayer) -> QgsGraduatedSymbolRenderer:
    """Glaciers in five quantile classes of median speed (m/yr), viridis; glaciers without one stay uncoloured."""
    ramp = QgsGradientColorRamp(QColor(VIRIDIS[0]), QColor(VIRIDIS[1]))
    ramp.setStops([QgsGradientStop(position, QColor(colour)) for position, colour in VIRIDIS[2:]])
    renderer = QgsGraduatedSymbolRenderer(SPEED_FIELD)
    renderer.setSourceSymbol(QgsSymbol.defaultSymbol(index.geometryType()))
    renderer.setClassificationMethod(QgsClassificationQuantile())
    renderer.updateClasses(index, 5)
    renderer.updateColorRamp(ramp)
    return renderer
