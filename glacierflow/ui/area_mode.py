"""The dock's "Area" mode: a glacier polygon (drawn or selected), a source, two years and the months
-> ``glacierflow:annual_velocity``.

Parameter names come from the algorithm modules, and only those the installed algorithm
defines are passed (``parameterDefinitions`` read at run time). Parameters the panel does
not lay out itself (a remote source's URL, credentials, project, ...) get plain widgets
made from their definitions; those of remote sources are hidden for the local folder.
"""
from __future__ import annotations

import os
from typing import Any, Callable

from qgis.core import (
    QgsApplication,
    QgsGeometry,
    QgsProcessingAlgorithm,
    QgsProcessingUtils,
    QgsProject,
    QgsSettings,
    QgsVectorLayer,
)
from qgis.gui import QgsFileWidget, QgsMapCanvas
from qgis.PyQt.QtCore import Qt
from qgis.PyQt.QtWidgets import (
    QComboBox,
    QFormLayout,
    QGroupBox,
    QLineEdit,
    QVBoxLayout,
    QWidget,
)

from ..processing import imagery_params
from ..processing.annual_velocity import AnnualVelocityAlgorithm as Annual
from .layers import ResultLayers, load_results
from .map_tool import PolygonMapTool, set_area
from .modes import VelocityMode
from .parameter_widgets import UNSET, ParameterField, field_for
from .stake_layers import stake_layer
from .vector_export import polygon_file
from .widgets import AreaPicker, engine_combo, output_widget, polygon_layer_combo, restore_engine, spin_box

ALGORITHM_ID = "glacierflow:" + Annual.ALGORITHM_ID
SETTINGS = "glacierflow/dock/area/"
LOCAL_SOURCE = "local_folder"
NO_CLOUD_LIMIT = -1
# Parameters that only a downloaded (not local) source reads, where the algorithm module defines them.
REMOTE_ONLY = tuple(getattr(imagery_params, name) for name in (
    "SOURCE_URL", "CREDENTIALS", "PROJECT", "MIN_VALID_FRACTION", "PIXEL_SIZE", "TARGET_CRS", "BAND")
    if hasattr(imagery_params, name))
# Parameters laid out by the panel itself; the others the algorithm defines get generic widgets.
OWN_PARAMETERS = {imagery_params.SOURCE, imagery_params.FOLDER, imagery_params.AREA, imagery_params.EXTENT,
                  imagery_params.START_DATE, imagery_params.END_DATE, imagery_params.MONTHS,
                  imagery_params.MAX_CLOUD, Annual.FOLDER, Annual.AREA, Annual.YEAR_A, Annual.YEAR_B,
                  Annual.MONTHS, Annual.MAX_CLOUD, Annual.ENGINE, Annual.OUTLINES, Annual.STAKES,
                  Annual.WORK_FOLDER, Annual.REPORT, Annual.OUTPUT, Annual.RULE, Annual.MIN_DAYS, Annual.MAX_DAYS,
                  Annual.MAX_PAIRS_PER_SCENE, Annual.PAIR_TABLE}


def annual_algorithm() -> QgsProcessingAlgorithm | None:
    """The registered annual algorithm, or None when the plugin's provider is not loaded."""
    return QgsApplication.processingRegistry().algorithmById(ALGORITHM_ID)


def source_names() -> list[str]:
    """The imagery sources this installation offers (``core.imagery.SOURCE_NAMES``)."""
    from ..core.imagery import SOURCE_NAMES

    return list(SOURCE_NAMES)


class AreaMode(VelocityMode, QWidget):
    """Inputs of an annual run over an area; ``parameters()`` for the algorithm, ``load()`` for its result."""

    algorithm_id = ALGORITHM_ID
    title = "Area"

    def __init__(self, last_folder: Callable[[], str], canvas: Callable[[], QgsMapCanvas | None],
                 parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.last_folder = last_folder
        self.canvas = canvas
        self.tool: PolygonMapTool | None = None
        self._previous_tool = None
        self.extra: list[ParameterField] = []
        self.remote_rows: list[QWidget] = []
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addLayout(self._area_form())
        layout.addLayout(self._search_form())
        self.extra_box = self._extra_box()
        layout.addWidget(self.extra_box)
        layout.addLayout(self._options_form())
        layout.addStretch(1)
        self._restore_settings()
        self._show_source_fields()
        self.source.currentTextChanged.connect(self._show_source_fields)
        self.rule.currentTextChanged.connect(self._show_rule_fields)
        self._show_rule_fields()
        for signal in (self.source.currentTextChanged, self.year_a.valueChanged, self.year_b.valueChanged,
                       self.months.editingFinished, self.max_cloud.valueChanged, self.engine.currentTextChanged,
                       self.folder.fileChanged, self.rule.currentTextChanged, self.min_days.valueChanged,
                       self.max_days.valueChanged, self.max_pairs.valueChanged):
            signal.connect(self.save_settings)

    # ----------------------------------------------------------------- widgets
    def _area_form(self) -> QFormLayout:
        form = QFormLayout()
        picker = self.area_picker = AreaPicker(self, self._toggle_drawing)
        self.area_layer, self.draw_button, self.selected_only = picker.layer, picker.draw_button, picker.selected_only
        picker.add_rows(form)
        self.outlines = polygon_layer_combo(self)
        self.outlines.setToolTip("Optional glacier outlines (e.g. RGI): the ground around them is the stable "
                                 "ground of the uncertainty statistics")
        form.addRow("Glacier outlines", self.outlines)
        return form

    def _search_form(self) -> QFormLayout:
        from ..core.imagery import RULES
        from ..core.imagery.pairs import RULE_HELP
        from ..core.imagery.seasons import AUTO_MONTHS, NORTHERN_MONTHS, latest_complete_season

        form = QFormLayout()
        self.source = QComboBox(self)
        self.source.addItems(source_names())
        self.folder = QgsFileWidget(self)
        self.folder.setStorageMode(QgsFileWidget.StorageMode.GetDirectory)
        self.folder.setToolTip("Folder of dated GeoTIFFs (one band each) for the local_folder source")
        latest = latest_complete_season(NORTHERN_MONTHS)  # the latest summer over (north; a season's end year)
        self.rule = QComboBox(self)
        self.rule.addItems(list(RULES))
        for index, name in enumerate(RULES):
            self.rule.setItemData(index, RULE_HELP[name], Qt.ItemDataRole.ToolTipRole)
        self.rule.setToolTip("cross_year: every scene of year A with every scene of year B; interval: every pair "
                             "min to max days apart within a season; sequential: each scene with the next")
        self.year_a = spin_box(self, 1972, 2100, latest - 1)
        self.year_b = spin_box(self, 1972, 2100, latest)
        self.year_a.setToolTip("The year the season ends in (the southern summer 2019/20 is 2020)")
        self.min_days = spin_box(self, 0, 400, 5)
        self.max_days = spin_box(self, 1, 800, 40)
        for box in (self.min_days, self.max_days):
            box.setSuffix(" days")
        self.max_pairs = spin_box(self, 0, 1000, 10)
        self.max_pairs.setSpecialValueText("no cap")
        self.max_pairs.setToolTip("At most this many pairs per scene: each scene's nearest partners first")
        self.months = QLineEdit(AUTO_MONTHS, self)
        self.months.setToolTip("Months searched: a range like 6-10 (June to October), 11-3 (across the new year) "
                               "or a list like 6,7,8; auto: 6-10 in the north, 12-3 in the south; empty: all")
        self.max_cloud = spin_box(self, NO_CLOUD_LIMIT, 100, NO_CLOUD_LIMIT)
        self.max_cloud.setSpecialValueText("no limit")
        self.max_cloud.setSuffix(" %")
        form.addRow("Source", self.source)
        form.addRow("Folder", self.folder)
        self.folder_label = form.labelForField(self.folder)
        form.addRow("Pairing rule", self.rule)
        form.addRow("Year A", self.year_a)
        form.addRow("Year B", self.year_b)
        form.addRow("Months", self.months)
        form.addRow("Min. interval", self.min_days)
        form.addRow("Max. interval", self.max_days)
        form.addRow("Max. pairs per scene", self.max_pairs)
        self.interval_rows = [self.min_days, self.max_days]
        self.search_form = form
        form.addRow("Max. cloud cover", self.max_cloud)
        return form

    def _extra_box(self) -> QGroupBox:
        """Widgets for the algorithm's parameters that this panel does not know by name."""
        box = QGroupBox("More options", self)
        form = QFormLayout(box)
        algorithm = annual_algorithm()
        definitions = algorithm.parameterDefinitions() if algorithm is not None else []
        for definition in definitions:
            if definition.name() in OWN_PARAMETERS:
                continue
            field = field_for(definition, box)
            if field is None:
                continue
            form.addRow(field.label, field.widget)
            self.extra.append(field)
            if field.name in REMOTE_ONLY:
                self.remote_rows += [field.widget, form.labelForField(field.widget)]
        box.setVisible(bool(self.extra))
        return box

    def _options_form(self) -> QFormLayout:
        form = QFormLayout()
        self.engine = engine_combo(self)
        self.stakes = QgsFileWidget(self)
        self.stakes.setFilter("Stakes (*.csv *.gpkg *.shp);;All files (*)")
        self.stakes.setToolTip("Optional GPS stakes: a CSV in lon/lat with vx, vy or speed (m/yr), or a "
                               "GeoPackage / shapefile")
        self.output = output_widget(self)
        form.addRow("Engine", self.engine)
        form.addRow("GPS stakes", self.stakes)
        form.addRow("Output", self.output)
        return form

    def _show_source_fields(self) -> None:
        local = self.source.currentText() == LOCAL_SOURCE
        self.folder.setVisible(local)
        if self.folder_label is not None:
            self.folder_label.setVisible(local)
        for widget in self.remote_rows:
            if widget is not None:
                widget.setVisible(not local)

    # ------------------------------------------------------------------ drawing
    def _toggle_drawing(self, on: bool) -> None:
        if on:
            self.start_drawing()
        else:
            self.stop_drawing()

    def start_drawing(self) -> PolygonMapTool | None:
        """Make the polygon tool the map's tool; returns it (None without a map canvas)."""
        canvas = self.canvas()
        if canvas is None:
            self.draw_button.setChecked(False)
            return None
        if self.tool is None:
            self.tool = PolygonMapTool(canvas)
            self.tool.polygonFinished.connect(self.set_polygon)
            self.tool.drawingCancelled.connect(self.stop_drawing)
        if canvas.mapTool() is not self.tool:
            self._previous_tool = canvas.mapTool()
            canvas.setMapTool(self.tool)
        self.draw_button.setChecked(True)
        return self.tool

    def stop_drawing(self) -> None:
        """Give the map back its previous tool."""
        canvas = self.canvas()
        if canvas is not None and self.tool is not None and canvas.mapTool() is self.tool:
            canvas.unsetMapTool(self.tool)
            if self._previous_tool is not None:
                canvas.setMapTool(self._previous_tool)
        self.draw_button.setChecked(False)

    def set_polygon(self, geometry: QgsGeometry) -> QgsVectorLayer:
        """Put ``geometry`` (map canvas CRS) into the "GlacierFlow area" layer and choose that layer."""
        canvas = self.canvas()
        crs = canvas.mapSettings().destinationCrs() if canvas is not None else QgsProject.instance().crs()
        layer = set_area(QgsProject.instance(), geometry, crs)
        self.area_picker.choose(layer)
        self.stop_drawing()
        return layer

    # ---------------------------------------------------------------- settings
    def _show_rule_fields(self) -> None:
        """The interval rows only for the interval and sequential rules; Year B's meaning follows the rule."""
        cross = self.rule.currentText() == "cross_year"
        for widget in self.interval_rows:
            widget.setVisible(not cross)
            label = self.search_form.labelForField(widget)
            if label is not None:
                label.setVisible(not cross)
        label = self.search_form.labelForField(self.year_b)
        if label is not None:
            label.setText("Year B" if cross else "Last season")

    def _restore_settings(self) -> None:
        settings = QgsSettings()
        source = str(settings.value(SETTINGS + "source", LOCAL_SOURCE))
        if self.source.findText(source) >= 0:
            self.source.setCurrentText(source)
        self.folder.setFilePath(str(settings.value(SETTINGS + "folder", "")))
        self.year_a.setValue(int(settings.value(SETTINGS + "year_a", self.year_a.value())))
        self.year_b.setValue(int(settings.value(SETTINGS + "year_b", self.year_b.value())))
        self.months.setText(str(settings.value(SETTINGS + "months", self.months.text())))
        rule = str(settings.value(SETTINGS + "rule", self.rule.currentText()))
        if self.rule.findText(rule) >= 0:
            self.rule.setCurrentText(rule)
        for key, box in (("min_days", self.min_days), ("max_days", self.max_days), ("max_pairs", self.max_pairs)):
            box.setValue(int(settings.value(SETTINGS + key, box.value())))
        self.max_cloud.setValue(int(settings.value(SETTINGS + "max_cloud", NO_CLOUD_LIMIT)))
        restore_engine(self.engine, str(settings.value(SETTINGS + "engine", "")))
        self.output.setDefaultRoot(self.last_folder())

    def save_settings(self) -> None:
        """Remember the source, folder, years, months, cloud limit and engine."""
        settings = QgsSettings()
        for key, value in (("source", self.source.currentText()), ("folder", self.folder.filePath()),
                           ("year_a", self.year_a.value()), ("year_b", self.year_b.value()),
                           ("months", self.months.text()), ("max_cloud", self.max_cloud.value()),
                           ("engine", self.engine.currentText()), ("rule", self.rule.currentText()),
                           ("min_days", self.min_days.value()), ("max_days", self.max_days.value()),
                           ("max_pairs", self.max_pairs.value())):
            settings.setValue(SETTINGS + key, value)

    # -------------------------------------------------------------- parameters
    def parameters(self) -> dict[str, Any]:
        """The parameters of the installed annual algorithm, from the panel.

        Raises:
            ValueError: something the user must fix first (the message says what).
        """
        algorithm = annual_algorithm()
        if algorithm is None:
            raise ValueError(f"The algorithm {ALGORITHM_ID} is not available: enable the GlacierFlow plugin.")
        accepted = {definition.name() for definition in algorithm.parameterDefinitions()}
        values = self.search_values(accepted)
        values.update({imagery_params.AREA: self.area_picker.polygon_file(), Annual.OUTPUT: self._output_path()})
        outlines = self.outlines.currentLayer()
        if isinstance(outlines, QgsVectorLayer):
            values[Annual.OUTLINES] = polygon_file(outlines, False)
        if self.stakes.filePath().strip():
            values[Annual.STAKES] = self.stakes.filePath().strip()
        return {name: value for name, value in values.items() if name in accepted}

    def search_values(self, accepted: set) -> dict[str, Any]:
        """What any algorithm that searches a source takes from this tab (the Region tab uses it too): source,
        folder, years (or the dates they span), pairing rule, months, cloud limit, engine and the remote
        source's settings; only the names in ``accepted``.

        Raises:
            ValueError: something the user must fix first (the message says what).
        """
        values = self._season_values(accepted)
        values[Annual.ENGINE] = self.engine.currentText()
        for field in self.extra:
            if field.widget.isVisibleTo(self) or field.name not in REMOTE_ONLY:
                value = field.value()
                if value is not UNSET:
                    values[field.name] = value
        return {name: value for name, value in values.items() if name in accepted}

    def _season_values(self, accepted: set) -> dict[str, Any]:
        """Source, folder, years (or the dates they span), months and cloud limit."""
        source = self.source.currentText()
        folder = self.folder.filePath().strip()
        if source == LOCAL_SOURCE and not os.path.isdir(folder):
            raise ValueError("Choose the folder of dated GeoTIFFs (Folder), or another source.")
        year_a, year_b = self.year_a.value(), self.year_b.value()
        rule = self.rule.currentText()
        if rule == "cross_year" and year_b <= year_a:
            raise ValueError(f"Year B ({year_b}) must come after year A ({year_a}).")
        if rule != "cross_year" and year_b < year_a:
            raise ValueError(f"The last season ({year_b}) must not come before the first ({year_a}).")
        if rule != "cross_year" and self.max_days.value() < self.min_days.value():
            raise ValueError("The maximum interval must be at least the minimum interval.")
        values: dict[str, Any] = {imagery_params.SOURCE: source, imagery_params.MONTHS: self.months.text().strip()}
        if source == LOCAL_SOURCE:
            values[imagery_params.FOLDER] = folder
        if Annual.YEAR_A in accepted:
            values.update({Annual.YEAR_A: year_a, Annual.YEAR_B: year_b})
        if Annual.RULE in accepted:
            values.update({Annual.RULE: rule, Annual.MIN_DAYS: float(self.min_days.value()),
                           Annual.MAX_DAYS: float(self.max_days.value()),
                           Annual.MAX_PAIRS_PER_SCENE: self.max_pairs.value()})
        else:  # an algorithm searching by dates instead of years
            values.update({imagery_params.START_DATE: f"{year_a}-01-01", imagery_params.END_DATE: f"{year_b}-12-31"})
        if self.max_cloud.value() != NO_CLOUD_LIMIT:
            values[imagery_params.MAX_CLOUD] = float(self.max_cloud.value())
        return values

    def _output_path(self) -> str:
        path = self.output.filePath().strip()
        if not path:
            return QgsProcessingUtils.generateTempFilename(f"annual_velocity_{self.engine.currentText()}.tif")
        return path if path.lower().endswith((".tif", ".tiff")) else path + ".tif"

    def describe(self, parameters: dict[str, Any]) -> str:
        """One log line for the start of a run."""
        where = parameters.get(imagery_params.FOLDER) or parameters.get(imagery_params.SOURCE, "")
        rule = self.rule.currentText()
        pairs = (rule if rule == "cross_year" else
                 f"{rule} pairs {self.min_days.value()}-{self.max_days.value()} days")
        return (f"Started the {parameters.get(Annual.ENGINE, '')} run on {where}, {pairs}, "
                f"{self.year_a.value()} and {self.year_b.value()}, months {self.months.text() or 'all'} "
                f"-> {parameters.get(Annual.OUTPUT, '')}")

    def load(self, results: dict[str, Any], parameters: dict[str, Any]) -> ResultLayers:
        """Add the annual product's styled layers, and the stakes when the run compared them."""
        output = results.get(Annual.OUTPUT, parameters.get(Annual.OUTPUT))
        layers = load_results(output, parameters.get(Annual.ENGINE, ""))
        table = results.get("STAKES_CSV")
        if table and os.path.exists(table):
            layers.stakes = stake_layer(table, layers.speed.crs(), product=output)
            QgsProject.instance().addMapLayer(layers.stakes, False)
            layers.group.insertLayer(0, layers.stakes)
        return layers

    def release(self) -> None:
        """Stop drawing and drop the map tool (the panel is going)."""
        self.stop_drawing()
        if self.tool is not None:
            self.tool.reset()
            self.tool.deleteLater()
            self.tool = None
