"""The dock's "Forecast" mode: a glacier polygon, a source and a date range -> ``glacierflow:ndsi_series``,
then ``glacierflow:forecast_ndsi`` on that series, chained in the background.

The polygon is drawn with the Area mode's map tool into the same "GlacierFlow area" layer. Parameter
names come from the algorithm modules; parameters the panel does not lay out itself get plain widgets
made from the installed algorithms' definitions (a remote source's settings are hidden for a local folder).
"""
from __future__ import annotations

import os
from datetime import date
from typing import Any, Callable

from qgis.core import (
    QgsApplication,
    QgsGeometry,
    QgsMapLayer,
    QgsProcessingAlgorithm,
    QgsProcessingFeedback,
    QgsProcessingOutputNumber,
    QgsProcessingUtils,
    QgsSettings,
    QgsVectorLayer,
)
from qgis.gui import QgsFileWidget
from qgis.PyQt.QtCore import QDate
from qgis.PyQt.QtWidgets import (
    QComboBox,
    QDateEdit,
    QDoubleSpinBox,
    QFormLayout,
    QGroupBox,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from ..processing import imagery_params
from ..processing.forecast_ndsi import PREFERRED_MODEL
from ..processing.forecast_ndsi import ForecastNdsiAlgorithm as Forecast
from ..processing.ndsi_series import NdsiSeriesAlgorithm as Series
from .area_mode import LOCAL_SOURCE, REMOTE_ONLY, AreaMode, source_names
from .forecast_layers import FORECAST_GROUP, ForecastLayers, load_forecast
from .parameter_widgets import UNSET, ParameterField, field_for
from .task import ChainStep, start_chain
from .widgets import AreaPicker

SERIES_ID = "glacierflow:" + Series.ALGORITHM_ID
FORECAST_ID = "glacierflow:" + Forecast.ALGORITHM_ID
ALGORITHM_ID = FORECAST_ID  # the mode's main algorithm: its help is the panel's help
SETTINGS = "glacierflow/dock/forecast/"
MODEL_FILE_ITEM = "file…"
DATE_FORMAT = "yyyy-MM-dd"
# Parameters laid out by the panel itself; the others the algorithms define get generic widgets.
OWN_SERIES_PARAMETERS = {imagery_params.SOURCE, imagery_params.FOLDER, imagery_params.AREA, imagery_params.EXTENT,
                         imagery_params.START_DATE, imagery_params.END_DATE, Series.WINDOW_MONTHS, Series.THRESHOLD,
                         Series.OUTPUT}
OWN_FORECAST_PARAMETERS = {Forecast.SERIES, Forecast.MODEL, Forecast.MODEL_FILE, Forecast.STRIDE, Forecast.OUTPUT,
                           Forecast.FLOW_OUTPUT}


def algorithm(algorithm_id: str) -> QgsProcessingAlgorithm | None:
    """The registered algorithm, or None when the plugin's provider is not loaded."""
    return QgsApplication.processingRegistry().algorithmById(algorithm_id)


def shipped_models() -> list[str]:
    """The names of the forecasters shipped in glacierflow/assets/models/forecast (e.g. "sa_lstm"), sorted."""
    from ..core.forecast.onnx_forecaster import list_shipped_forecasters

    return list(list_shipped_forecasters())


def unique_path(folder: str, stem: str) -> str:
    """``folder/stem.tif``, or ``stem_2.tif``, ``stem_3.tif``, ... when taken: a rerun never overwrites a
    product that may be loaded (and locked, on Windows) in the project."""
    path, number = os.path.join(folder, stem + ".tif"), 1
    while os.path.exists(path):
        number += 1
        path = os.path.join(folder, f"{stem}_{number}.tif")
    return path


class ForecastMode(QWidget):
    """Inputs of a series-then-forecast run; ``parameters()`` and ``steps()`` for the chain, ``load()`` and
    ``report()`` for its result."""

    algorithm_id = ALGORITHM_ID
    title = "Forecast"

    def __init__(self, last_folder: Callable[[], str], area: AreaMode, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.last_folder = last_folder
        self.area = area  # owns the polygon map tool; both modes draw into the "GlacierFlow area" layer
        self._drawing_linked = False
        self.extra: list[tuple[str, ParameterField]] = []  # (algorithm id, field)
        self.remote_rows: list[QWidget] = []
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addLayout(self._area_form())
        layout.addLayout(self._search_form())
        layout.addLayout(self._forecast_form())
        self.extra_box = self._extra_box()
        layout.addWidget(self.extra_box)
        layout.addStretch(1)
        self._restore_settings()
        self._show_source_fields()
        self._show_model_file()
        self.source.currentTextChanged.connect(self._show_source_fields)
        self.model.currentTextChanged.connect(self._show_model_file)
        for signal in (self.source.currentTextChanged, self.folder.fileChanged, self.start_date.dateChanged,
                       self.end_date.dateChanged, self.window_months.valueChanged, self.threshold.valueChanged,
                       self.model.currentTextChanged, self.model_file.fileChanged, self.stride.valueChanged,
                       self.output.fileChanged):
            signal.connect(self.save_settings)

    # ----------------------------------------------------------------- widgets
    def _area_form(self) -> QFormLayout:
        form = QFormLayout()
        picker = self.area_picker = AreaPicker(self, self._toggle_drawing)
        self.area_layer, self.draw_button, self.selected_only = picker.layer, picker.draw_button, picker.selected_only
        picker.add_rows(form)
        return form

    def _search_form(self) -> QFormLayout:
        form = QFormLayout()
        self.source = QComboBox(self)
        self.source.addItems(source_names())
        self.folder = QgsFileWidget(self)
        self.folder.setStorageMode(QgsFileWidget.StorageMode.GetDirectory)
        self.folder.setToolTip("Folder of Landsat *_SR_B3 / *_SR_B6 (or Sentinel-2 *_B03 / *_B11) GeoTIFFs "
                               "for the local_folder source")
        today = QDate.currentDate()
        self.start_date = self._date_edit(QDate(today.year() - 5, 1, 1))
        self.end_date = self._date_edit(today)
        form.addRow("Source", self.source)
        form.addRow("Folder", self.folder)
        self.folder_label = form.labelForField(self.folder)
        form.addRow("Start date", self.start_date)
        form.addRow("End date", self.end_date)
        return form

    def _date_edit(self, value: QDate) -> QDateEdit:
        edit = QDateEdit(value, self)
        edit.setDisplayFormat(DATE_FORMAT)
        edit.setCalendarPopup(True)
        edit.setToolTip("Acquisitions searched (UTC, the end date included). The forecast needs at least "
                        "4 windows; the hindcast scores need 8 (two years of 3-month windows).")
        return edit

    def _forecast_form(self) -> QFormLayout:
        form = QFormLayout()
        self.window_months = QSpinBox(self)
        self.threshold = QDoubleSpinBox(self)
        self.threshold.setDecimals(2)
        self.threshold.setSingleStep(0.05)
        self.stride = QSpinBox(self)
        self._set_from_definition(self.window_months, SERIES_ID, Series.WINDOW_MONTHS, (1, 12, 3))
        self._set_from_definition(self.threshold, SERIES_ID, Series.THRESHOLD, (-1.0, 1.0, 0.3))
        self._set_from_definition(self.stride, FORECAST_ID, Forecast.STRIDE, (1, 50, 10))
        self.stride.setSuffix(" px")
        self.stride.setToolTip("Between the origins of the 50 x 50 px patches: 10 as the papers; larger is faster")
        self.window_months.setSuffix(" months")
        self.window_months.setToolTip("Averaging window of the series; it must match the model's (3 for the "
                                      "shipped models)")
        self.threshold.setToolTip("NDSI kept where at least this, 0 elsewhere (0.3 as the papers)")
        self.model = QComboBox(self)
        self.model.addItems(shipped_models() + [MODEL_FILE_ITEM])
        self.model.setToolTip("A shipped forecaster, or 'file…' for an .onnx of your own (Train forecaster)")
        self.model_file = QgsFileWidget(self)
        self.model_file.setFilter("ONNX model (*.onnx)")
        self.output = QgsFileWidget(self)
        self.output.setStorageMode(QgsFileWidget.StorageMode.GetDirectory)
        self.output.lineEdit().setPlaceholderText("[Save to temporary files]")
        self.output.setToolTip("Folder for the NDSI series and the forecast GeoTIFFs (never overwritten)")
        form.addRow("Window", self.window_months)
        form.addRow("NDSI threshold", self.threshold)
        form.addRow("Model", self.model)
        form.addRow("Model file", self.model_file)
        self.model_file_label = form.labelForField(self.model_file)
        form.addRow("Patch stride", self.stride)
        form.addRow("Output folder", self.output)
        return form

    @staticmethod
    def _set_from_definition(spin: Any, algorithm_id: str, name: str, fallback: tuple[float, float, float]) -> None:
        """Range and default from the algorithm's definition of ``name`` (``fallback`` without it)."""
        installed = algorithm(algorithm_id)
        definition = installed.parameterDefinition(name) if installed is not None else None
        low, high, default = (definition.minimum(), definition.maximum(), definition.defaultValue()) \
            if definition is not None else fallback
        if isinstance(spin, QSpinBox):  # an unbounded integer parameter has DBL_MAX as its maximum
            low, high, default = int(max(low, -2 ** 31 + 1)), int(min(high, 2 ** 31 - 1)), int(default)
        spin.setRange(low, high)
        spin.setValue(default)

    def _extra_box(self) -> QGroupBox:
        """Widgets for the algorithms' parameters that this panel does not know by name."""
        box = QGroupBox("More options", self)
        form = QFormLayout(box)
        for algorithm_id, own in ((SERIES_ID, OWN_SERIES_PARAMETERS), (FORECAST_ID, OWN_FORECAST_PARAMETERS)):
            installed = algorithm(algorithm_id)
            for definition in installed.parameterDefinitions() if installed is not None else []:
                field = None if definition.name() in own else field_for(definition, box)
                if field is None:
                    continue
                form.addRow(field.label, field.widget)
                self.extra.append((algorithm_id, field))
                if algorithm_id == SERIES_ID and field.name in REMOTE_ONLY:
                    self.remote_rows += [field.widget, form.labelForField(field.widget)]
        box.setVisible(bool(self.extra))
        return box

    def extra_field(self, name: str) -> ParameterField | None:
        """The generic field of the parameter ``name`` (e.g. ``Forecast.STRIDE``), or None."""
        return next((field for _, field in self.extra if field.name == name), None)

    def _is_local(self) -> bool:
        return self.source.currentText() == LOCAL_SOURCE

    def _show_source_fields(self) -> None:
        local = self._is_local()
        for widgets, visible in (([self.folder, self.folder_label], local), (self.remote_rows, not local)):
            for widget in widgets:
                if widget is not None:
                    widget.setVisible(visible)

    def _show_model_file(self) -> None:
        from_file = self.model.currentText() == MODEL_FILE_ITEM
        for widget in (self.model_file, self.model_file_label):
            if widget is not None:
                widget.setVisible(from_file)

    # ------------------------------------------------------------------ drawing
    def _toggle_drawing(self, on: bool) -> None:
        if on:
            self.start_drawing()
        else:
            self.area.stop_drawing()

    def start_drawing(self) -> Any:
        """Draw the polygon with the Area mode's map tool; returns the tool (None without a map canvas)."""
        tool = self.area.start_drawing()
        if tool is None:
            self.draw_button.setChecked(False)
            return None
        if not self._drawing_linked:  # the Area mode ends every drawing by unchecking its button
            tool.polygonFinished.connect(self._adopt_drawn_area)
            self.area.draw_button.toggled.connect(lambda on: on or self.draw_button.setChecked(False))
            self._drawing_linked = True
        self.draw_button.setChecked(True)
        return tool

    def _adopt_drawn_area(self, _geometry: QgsGeometry) -> None:
        """The Area mode has put the drawn polygon into the "GlacierFlow area" layer: choose it here too."""
        self.area_picker.choose(self.area.area_layer.currentLayer())

    def set_polygon(self, geometry: QgsGeometry) -> QgsVectorLayer:
        """Make ``geometry`` (map canvas CRS) the "GlacierFlow area" polygon and choose that layer."""
        layer = self.area.set_polygon(geometry)
        self.area_picker.choose(layer)
        return layer

    # ---------------------------------------------------------------- settings
    def _restore_settings(self) -> None:
        settings = QgsSettings()
        source = str(settings.value(SETTINGS + "source", LOCAL_SOURCE))
        if self.source.findText(source) >= 0:
            self.source.setCurrentText(source)
        self.folder.setFilePath(str(settings.value(SETTINGS + "folder", "")))
        for edit, key in ((self.start_date, "start_date"), (self.end_date, "end_date")):
            saved = QDate.fromString(str(settings.value(SETTINGS + key, "")), DATE_FORMAT)
            if saved.isValid():
                edit.setDate(saved)
        self.window_months.setValue(int(settings.value(SETTINGS + "window_months", self.window_months.value())))
        self.threshold.setValue(float(settings.value(SETTINGS + "threshold", self.threshold.value())))
        model = str(settings.value(SETTINGS + "model", PREFERRED_MODEL))
        if self.model.findText(model) >= 0:
            self.model.setCurrentText(model)
        self.model_file.setFilePath(str(settings.value(SETTINGS + "model_file", "")))
        self.stride.setValue(int(settings.value(SETTINGS + "stride", self.stride.value())))
        self.output.setFilePath(str(settings.value(SETTINGS + "output", "")))
        self.model_file.setDefaultRoot(self.last_folder())

    def save_settings(self) -> None:
        """Remember the source, folder, dates, window, threshold, model, stride and output folder."""
        settings = QgsSettings()
        for key, value in (("source", self.source.currentText()), ("folder", self.folder.filePath()),
                           ("start_date", self.start_date.date().toString(DATE_FORMAT)),
                           ("end_date", self.end_date.date().toString(DATE_FORMAT)),
                           ("window_months", self.window_months.value()), ("threshold", self.threshold.value()),
                           ("model", self.model.currentText()), ("model_file", self.model_file.filePath()),
                           ("stride", self.stride.value()),
                           ("output", self.output.filePath())):
            settings.setValue(SETTINGS + key, value)

    # -------------------------------------------------------------- parameters
    def parameters(self) -> dict[str, dict[str, Any]]:
        """The parameters of both algorithms, keyed by algorithm id; the forecast's SERIES is filled in
        from the series step's result when it runs.

        Raises:
            ValueError: something the user must fix first (the message says what).
        """
        for algorithm_id in (SERIES_ID, FORECAST_ID):
            if algorithm(algorithm_id) is None:
                raise ValueError(f"The algorithm {algorithm_id} is not available: enable the GlacierFlow plugin.")
        start, end = self.start_date.date().toPyDate(), self.end_date.date().toPyDate()
        if end <= start:
            raise ValueError(f"The end date ({end}) must come after the start date ({start}).")
        series = self._series_values(start, end)
        forecast = dict(self._model_values(), **{Forecast.STRIDE: self.stride.value()})
        series_path, forecast_path = self._output_paths(start, end, self._model_name(forecast))
        series[Series.OUTPUT] = series_path
        forecast[Forecast.OUTPUT] = forecast_path
        local = self._is_local()
        for algorithm_id, field in self.extra:
            if local and algorithm_id == SERIES_ID and field.name in REMOTE_ONLY:
                continue
            value = field.value()
            if value is not UNSET:
                (series if algorithm_id == SERIES_ID else forecast)[field.name] = value
        return {SERIES_ID: self._accepted(SERIES_ID, series), FORECAST_ID: self._accepted(FORECAST_ID, forecast)}

    @staticmethod
    def _accepted(algorithm_id: str, values: dict[str, Any]) -> dict[str, Any]:
        """Only the parameters the installed algorithm defines."""
        names = {definition.name() for definition in algorithm(algorithm_id).parameterDefinitions()}
        return {name: value for name, value in values.items() if name in names}

    def _series_values(self, start: date, end: date) -> dict[str, Any]:
        folder = self.folder.filePath().strip()
        if self._is_local() and not os.path.isdir(folder):
            raise ValueError("Choose the folder of Landsat green and SWIR1 GeoTIFFs (Folder), or another source.")
        values: dict[str, Any] = {
            imagery_params.SOURCE: self.source.currentText(), imagery_params.AREA: self.area_picker.polygon_file(),
            imagery_params.START_DATE: start.isoformat(), imagery_params.END_DATE: end.isoformat(),
            Series.WINDOW_MONTHS: self.window_months.value(), Series.THRESHOLD: self.threshold.value()}
        if self._is_local():
            values[imagery_params.FOLDER] = folder
        return values

    def _model_values(self) -> dict[str, Any]:
        if self.model.currentText() != MODEL_FILE_ITEM:
            return {Forecast.MODEL: self.model.currentText()}
        path = self.model_file.filePath().strip()
        if not os.path.isfile(path):
            shipped = ", ".join(shipped_models()) or "none is shipped"
            raise ValueError(f"Choose the forecaster's .onnx file (Model file), or a shipped model ({shipped}).")
        return {Forecast.MODEL_FILE: path}

    @staticmethod
    def _model_name(values: dict[str, Any]) -> str:
        if Forecast.MODEL_FILE in values:
            return os.path.splitext(os.path.basename(values[Forecast.MODEL_FILE]))[0]
        return str(values[Forecast.MODEL])

    def _output_paths(self, start: date, end: date, model: str) -> tuple[str, str]:
        """Where the series and the forecast go: the output folder, or temporary files."""
        span = f"{start:%Y%m%d}_{end:%Y%m%d}"
        folder = self.output.filePath().strip()
        if not folder:
            return (QgsProcessingUtils.generateTempFilename(f"ndsi_series_{span}.tif"),
                    QgsProcessingUtils.generateTempFilename(f"ndsi_forecast_{model}_{span}.tif"))
        if not os.path.isdir(folder):
            raise ValueError(f"The output folder '{folder}' does not exist: choose an existing folder, or leave "
                             "it empty for temporary files.")
        return unique_path(folder, f"ndsi_series_{span}"), unique_path(folder, f"ndsi_forecast_{model}_{span}")

    def steps(self, parameters: dict[str, dict[str, Any]]) -> list[ChainStep]:
        """The chain: the series, then the forecast of that series."""
        return [ChainStep(SERIES_ID, lambda done: parameters[SERIES_ID]),
                ChainStep(FORECAST_ID, lambda done: dict(parameters[FORECAST_ID],
                                                         **{Forecast.SERIES: done[SERIES_ID][Series.OUTPUT]}))]

    def describe(self, parameters: dict[str, dict[str, Any]]) -> str:
        """One log line for the start of a run."""
        series, forecast = parameters[SERIES_ID], parameters[FORECAST_ID]
        where = series.get(imagery_params.FOLDER) or series.get(imagery_params.SOURCE, "")
        return (f"Started the NDSI series on {where}, {series.get(imagery_params.START_DATE)} to "
                f"{series.get(imagery_params.END_DATE)}, {series.get(Series.WINDOW_MONTHS)}-month windows, "
                f"then the forecast with {self._model_name(forecast)} -> {forecast.get(Forecast.OUTPUT)}")

    # ------------------------------------------------------------------ result
    def load(self, results: dict[str, dict[str, Any]], parameters: dict[str, dict[str, Any]]) -> ForecastLayers:
        """Add the forecast windows (styled) and the series (hidden) in one group."""
        series = results[SERIES_ID].get(Series.OUTPUT, parameters[SERIES_ID][Series.OUTPUT])
        forecast = results[FORECAST_ID].get(Forecast.OUTPUT, parameters[FORECAST_ID][Forecast.OUTPUT])
        model = self._model_name(parameters[FORECAST_ID])
        return load_forecast(forecast, series=series, group_name=f"{FORECAST_GROUP} ({model})")

    def start(self, parameters: dict[str, dict[str, Any]], feedback: QgsProcessingFeedback,
              on_executed: Callable[[bool, dict[str, Any]], None]) -> tuple[Any, Any]:
        """Queue the chain (the series, then the forecast); a chain keeps its own contexts."""
        return start_chain(self.steps(parameters), feedback, on_executed), None

    def report(self, layers: ForecastLayers, results: dict[str, dict[str, Any]],
               seconds: float) -> tuple[list[str], QgsMapLayer]:
        """Log lines for a finished run (the products, the layers and the hindcast MSE), and the first
        forecast window to show."""
        forecast = results[FORECAST_ID]
        lines = [f"Result ({seconds:.1f} s): {forecast.get(Forecast.OUTPUT)}",
                 f"Loaded '{layers.group.name()}': {len(layers.layers)} forecast windows "
                 f"({layers.layers[0].name()} to {layers.layers[-1].name()})"
                 + (f" and the series ({layers.series.name()}, hidden)." if layers.series is not None else ".")]
        return lines + hindcast_report(forecast), layers.layers[0]

    def release(self) -> None:
        """Nothing to release: the map tool is the Area mode's."""


def hindcast_report(results: dict[str, Any]) -> list[str]:
    """The forecast's hindcast scores (its numeric outputs, described by the algorithm), one line each."""
    installed = algorithm(FORECAST_ID)
    number = QgsProcessingOutputNumber.typeName()
    outputs = [d for d in installed.outputDefinitions() if d.type() == number] if installed else []
    scores = [(d.description(), results.get(d.name())) for d in outputs]
    scores = [(text, value) for text, value in scores if isinstance(value, (int, float))]
    if not scores:
        return ["No hindcast score: the series is too short to forecast its own last windows (widen the dates)."]
    return ["Hindcast scores (NDSI units; lower is better):"] + [f"  {text}: {value:.4f}" for text, value in scores]
