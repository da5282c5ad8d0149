"""Input widgets made from a Processing parameter's definition, for the parameters the panel does not
lay out itself (e.g. a source's URL or credentials, added to an algorithm after the panel was written)."""
from __future__ import annotations

from typing import Any, Callable

from qgis.core import (
    QgsProcessingParameterBoolean,
    QgsProcessingParameterDefinition,
    QgsProcessingParameterEnum,
    QgsProcessingParameterFile,
    QgsProcessingParameterNumber,
    QgsProcessingParameterString,
)
from qgis.gui import QgsFileWidget
from qgis.PyQt.QtWidgets import QCheckBox, QComboBox, QDoubleSpinBox, QLineEdit, QSpinBox, QWidget

SIMPLE_TYPES = (QgsProcessingParameterBoolean.typeName(), QgsProcessingParameterEnum.typeName(),
                QgsProcessingParameterFile.typeName(), QgsProcessingParameterNumber.typeName(),
                QgsProcessingParameterString.typeName())
UNSET = object()  # value() of an empty optional field: the parameter is left out


class ParameterField:
    """A widget for one parameter and ``value()``, what to pass for it (``UNSET`` when empty)."""

    def __init__(self, definition: QgsProcessingParameterDefinition, parent: QWidget) -> None:
        self.name = definition.name()
        self.label = definition.description()
        self.optional = bool(definition.flags() & QgsProcessingParameterDefinition.Flag.FlagOptional)
        self.widget, self._read = _make(definition, parent)
        self.widget.setToolTip(definition.toolTip() if hasattr(definition, "toolTip") else self.label)

    def value(self) -> Any:
        """The value for the algorithm, or ``UNSET``."""
        return self._read()


def is_simple(definition: QgsProcessingParameterDefinition) -> bool:
    """True for a visible input parameter that a plain widget can hold (text, number, file, choice, tick)."""
    hidden = bool(definition.flags() & QgsProcessingParameterDefinition.Flag.FlagHidden)
    return not hidden and not definition.isDestination() and definition.type() in SIMPLE_TYPES


def _make(definition: Any, parent: QWidget) -> tuple[QWidget, Callable[[], Any]]:
    default = definition.defaultValue()
    kind = definition.type()
    if kind == QgsProcessingParameterBoolean.typeName():
        box = QCheckBox(parent)
        box.setChecked(bool(default))
        return box, box.isChecked
    if kind == QgsProcessingParameterEnum.typeName():
        return _enum(definition, parent)
    if kind == QgsProcessingParameterNumber.typeName():
        return _number(definition, parent)
    if kind == QgsProcessingParameterFile.typeName():
        widget = QgsFileWidget(parent)
        if definition.behavior() == QgsProcessingParameterFile.Behavior.Folder:
            widget.setStorageMode(QgsFileWidget.StorageMode.GetDirectory)
        widget.setFilePath(str(default or ""))
        return widget, lambda: widget.filePath().strip() or UNSET
    edit = QLineEdit(parent)
    edit.setText("" if default is None else str(default))
    return edit, lambda: edit.text().strip() or UNSET


def _enum(definition: Any, parent: QWidget) -> tuple[QWidget, Callable[[], Any]]:
    combo = QComboBox(parent)
    combo.addItems(definition.options())
    default = definition.defaultValue()
    if isinstance(default, int) and 0 <= default < combo.count():
        combo.setCurrentIndex(default)
    elif default is not None:
        combo.setCurrentText(str(default))
    static = definition.usesStaticStrings()
    return combo, lambda: combo.currentText() if static else combo.currentIndex()


def _number(definition: Any, parent: QWidget) -> tuple[QWidget, Callable[[], Any]]:
    integer = definition.dataType() == QgsProcessingParameterNumber.Type.Integer
    spin = QSpinBox(parent) if integer else QDoubleSpinBox(parent)
    if not integer:
        spin.setDecimals(3)
    low, high = definition.minimum(), definition.maximum()
    limit = 2 ** 31 - 1
    spin.setRange(int(max(low, -limit)) if integer else low, int(min(high, limit)) if integer else high)
    optional = bool(definition.flags() & QgsProcessingParameterDefinition.Flag.FlagOptional)
    default = definition.defaultValue()
    if optional:  # the lowest value reads "not set"
        spin.setMinimum(spin.minimum() - 1)
        spin.setSpecialValueText("not set")
    spin.setValue(spin.minimum() if default is None else default)
    return spin, lambda: UNSET if optional and spin.value() == spin.minimum() else spin.value()


def field_for(definition: QgsProcessingParameterDefinition, parent: QWidget) -> ParameterField | None:
    """A :class:`ParameterField` for ``definition``, or None when it needs a richer widget."""
    return ParameterField(definition, parent) if is_simple(definition) else None
