"""What every GlacierFlow algorithm shares: its identity from class attributes, and error handling."""
from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from qgis.core import (
    QgsCoordinateReferenceSystem,
    QgsFeature,
    QgsFeatureSink,
    QgsFields,
    QgsProcessingAlgorithm,
    QgsProcessingContext,
    QgsProcessingException,
    QgsProcessingFeedback,
    QgsWkbTypes,
)

from ..core.errors import GlacierFlowError, redact_secrets
from ..core.feedback import JobCancelled
from ..core.interrupts import cancel_on_signals
from ..qgis_compat import make_field
from .input_layers import file_paths, is_file_path, open_layer_inputs
from .network_settings import apply_cache_settings, qgis_proxy
from .output_guard import guard_outputs


class GlacierFlowAlgorithm(QgsProcessingAlgorithm):
    """Base of the provider's algorithms.

    Subclasses set ``ALGORITHM_ID``, ``DISPLAY_NAME``, ``GROUP`` and ``HELP``
    and implement :meth:`process`; a core error a user can fix, or a cancel,
    becomes a ``QgsProcessingException`` with its message.
    """

    ALGORITHM_ID = ""
    DISPLAY_NAME = ""
    GROUP = ""
    HELP = ""
    # What a cancelled run leaves, said after "Cancelled: " (a job that keeps finished parts says so).
    CANCELLED_LEAVES = "no output was written."

    def name(self) -> str:
        return self.ALGORITHM_ID

    def displayName(self) -> str:  # noqa: N802
        return self.DISPLAY_NAME

    def group(self) -> str:
        return self.GROUP

    def groupId(self) -> str:  # noqa: N802
        return self.GROUP.lower()

    def shortHelpString(self) -> str:  # noqa: N802
        return self.HELP

    def createInstance(self) -> GlacierFlowAlgorithm:  # noqa: N802
        return type(self)()

    def prepareAlgorithm(self, parameters: dict[str, Any], context: QgsProcessingContext,  # noqa: N802
                         feedback: QgsProcessingFeedback) -> bool:
        """In the main thread, before the job: open or find the layer inputs (see input_layers)."""
        self._layer_inputs = open_layer_inputs(self, parameters, context)
        return True

    def processAlgorithm(self, parameters: dict[str, Any], context: QgsProcessingContext,  # noqa: N802
                         feedback: QgsProcessingFeedback) -> dict[str, Any]:
        from ..core.imagery.network import using_proxy  # imagery's imports wait until a job runs

        # The layers prepareAlgorithm opened, so the (worker) thread running this opens and searches none.
        parameters = {**self.enum_values_as_names(parameters), **getattr(self, "_layer_inputs", {})}
        apply_cache_settings()
        with cancel_on_signals(feedback.cancel) as signals, using_proxy(qgis_proxy()):
            try:
                guard_outputs(self, parameters, context, feedback)
                return self.process(parameters, context, feedback)
            except JobCancelled:
                stopped_by = f" by {signals.received}" if signals.received else ""
                raise QgsProcessingException(f"Cancelled{stopped_by}: {self.CANCELLED_LEAVES}") from None
            except GlacierFlowError as error:
                raise QgsProcessingException(redact_secrets(str(error))) from None
            except PermissionError as error:
                raise QgsProcessingException(
                    f"Cannot write '{error.filename or 'the output'}': permission denied (a read-only folder, or the "
                    "file is open in another program). Choose another output folder, or close the file; nothing "
                    "was written.") from None
            except OSError as error:
                if error.errno is None:
                    raise
                raise QgsProcessingException(
                    f"'{error.filename or 'a file'}': {error.strerror}. Check the path, the free disk space and "
                    "that the folder is writable; nothing was written.") from None

    def checkParameterValues(self, parameters: dict[str, Any],  # noqa: N802
                             context: QgsProcessingContext) -> tuple[bool, str]:
        """Processing's own checks, with an enum given by its number (as ``qgis_process help`` lists it)
        accepted as well as by its name."""
        return super().checkParameterValues(self.enum_values_as_names(parameters), context)

    def enum_values_as_names(self, parameters: dict[str, Any]) -> dict[str, Any]:
        """``parameters`` with every number given to a named (static-string) enum replaced by its name."""
        converted = dict(parameters)
        for definition in self.parameterDefinitions():
            if definition.type() != "enum" or not definition.usesStaticStrings():
                continue
            value = converted.get(definition.name())
            options = definition.options()
            if isinstance(value, bool):
                continue
            if isinstance(value, int) or (isinstance(value, str) and value.strip().isdigit()):
                index = int(value)
                if 0 <= index < len(options):
                    converted[definition.name()] = options[index]
        return converted

    def process(self, parameters: dict[str, Any], context: QgsProcessingContext,
                feedback: QgsProcessingFeedback) -> dict[str, Any]:
        """The algorithm's work: parameters -> core call -> outputs."""
        raise NotImplementedError

    @staticmethod
    def training_module(name: str) -> Any:
        """GlacierFlow's training module ``name`` (e.g. "training.raft.finetune").

        The training code (torch models, generators) does not ship in the plugin zip: it comes with a
        checkout of the repository, installed into QGIS's Python with its requirements. Say how when it
        or torch is missing."""
        import importlib

        try:
            return importlib.import_module(name)
        except ImportError as error:
            raise QgsProcessingException(
                f"Training needs GlacierFlow's training package, torch and onnx ({error.name or error} is missing). "
                "From a checkout of the GlacierFlow repository, install them into QGIS's Python with "
                "'python -m pip install -r requirements/train.txt' and 'python -m pip install --no-deps .', then "
                "restart QGIS."
            ) from None

    @staticmethod
    def run_training(train: Any) -> Any:
        """``train()`` with its cancel (InterruptedError) and bad-input (ValueError) ends as Processing errors."""
        try:
            return train()
        except InterruptedError:
            raise QgsProcessingException("Cancelled: no model was written.") from None
        except ValueError as error:
            raise QgsProcessingException(str(error)) from None

    def raft_model(self, parameters: dict[str, Any], context: QgsProcessingContext) -> dict[str, Any]:
        """The engine parameters for a RAFT model file of the user's (parameter MODEL, e.g. a fine-tuned one):
        {"model_path": file}, or {} when none is given; a file with another engine than raft is refused."""
        model = self.parameterAsFile(parameters, "MODEL", context).strip()
        if not model:
            return {}
        if self.parameterAsEnumString(parameters, "ENGINE", context) != "raft":
            raise QgsProcessingException("A RAFT model file was given but the engine is not raft: choose raft, "
                                         "or leave the model empty.")
        return {"model_path": model}

    def raster_path(self, parameters: dict[str, Any], name: str, context: QgsProcessingContext) -> str:
        """The file behind raster parameter ``name``; core reads files, not layers (a file path is taken as
        given, without opening a QGIS layer)."""
        if is_file_path(parameters.get(name)):
            return str(parameters[name])
        layer = self.parameterAsRasterLayer(parameters, name, context)
        if layer is None:
            raise QgsProcessingException(f"{name}: no raster given, or it cannot be opened as a raster.")
        return _file_of(layer)

    def raster_crs(self, parameters: dict[str, Any], name: str,
                   context: QgsProcessingContext) -> QgsCoordinateReferenceSystem:
        """The CRS of raster parameter ``name`` (a file's is read with GDAL); invalid when it has none."""
        from ..core.io.raster import open_raster

        if is_file_path(parameters.get(name)):
            wkt = open_raster(str(parameters[name])).GetProjection()
            return QgsCoordinateReferenceSystem.fromWkt(wkt) if wkt else QgsCoordinateReferenceSystem()
        layer = self.parameterAsRasterLayer(parameters, name, context)
        return layer.crs() if layer is not None else QgsCoordinateReferenceSystem()

    def raster_paths(self, parameters: dict[str, Any], name: str, context: QgsProcessingContext) -> list[str]:
        """The files behind multiple-raster parameter ``name`` (at least one)."""
        files = file_paths(parameters.get(name))
        if files:
            return files
        layers = self.parameterAsLayerList(parameters, name, context)
        if not layers:
            raise QgsProcessingException(f"{name}: choose at least one velocity raster.")
        return [_file_of(layer) for layer in layers]

    @staticmethod
    def is_unset(parameters: dict[str, Any], name: str) -> bool:
        """True when optional parameter ``name`` was left empty."""
        return parameters.get(name) in (None, "")

    def optional_int(self, parameters: dict[str, Any], name: str, context: QgsProcessingContext) -> int | None:
        """Integer parameter ``name``, or None when left empty."""
        return None if self.is_unset(parameters, name) else self.parameterAsInt(parameters, name, context)

    def optional_double(self, parameters: dict[str, Any], name: str,
                        context: QgsProcessingContext) -> float | None:
        """Number parameter ``name``, or None when left empty."""
        return None if self.is_unset(parameters, name) else self.parameterAsDouble(parameters, name, context)

    def write_table(self, parameters: dict[str, Any], name: str, context: QgsProcessingContext,
                    columns: Sequence[tuple[str, Any]], rows: Iterable[Sequence[Any]]) -> str:
        """Write ``rows`` to the geometry-less feature sink ``name`` with ``columns`` (name, "string",
        "double" or "int")."""
        fields = QgsFields()
        for column, kind in columns:
            fields.append(make_field(column, kind))
        sink, dest_id = self.parameterAsSink(parameters, name, context, fields, QgsWkbTypes.Type.NoGeometry,
                                             QgsCoordinateReferenceSystem())
        if sink is None:
            raise QgsProcessingException(self.invalidSinkError(parameters, name))
        for row in rows:
            feature = QgsFeature(fields)
            feature.setAttributes(list(row))
            sink.addFeature(feature, QgsFeatureSink.Flag.FastInsert)
        return dest_id

    def vector_path(self, parameters: dict[str, Any], name: str, context: QgsProcessingContext,
                    feedback: QgsProcessingFeedback) -> str | None:
        """A file core can read for optional vector parameter ``name`` (exported when needed), or None."""
        if self.is_unset(parameters, name):
            return None
        return self.parameterAsCompatibleSourceLayerPath(
            parameters, name, context, ["gpkg", "shp", "geojson"], "gpkg", feedback)


def _file_of(layer: Any) -> str:
    if layer.providerType() != "gdal":
        raise QgsProcessingException(f"'{layer.name()}' is not a file-based raster; save it as GeoTIFF.")
    return layer.source()
