"""What differs between the Qt5 and Qt6 builds of QGIS, in one place.

QGIS 3.38 and later (and every Qt6 build) type fields with ``QMetaType.Type``; older
releases, such as Debian's 3.22, with ``QVariant.Type``.
"""
from __future__ import annotations

from typing import Any

from qgis.core import Qgis, QgsField

METATYPE_FIELDS_SINCE = 33800  # Qgis.QGIS_VERSION_INT of 3.38


def field_type(kind: str) -> Any:
    """The field type for ``kind`` (``"double"``, ``"int"`` or ``"string"``) in this QGIS."""
    if Qgis.QGIS_VERSION_INT >= METATYPE_FIELDS_SINCE:
        from qgis.PyQt.QtCore import QMetaType

        types = {"double": QMetaType.Type.Double, "int": QMetaType.Type.Int, "string": QMetaType.Type.QString}
    else:
        from qgis.PyQt.QtCore import QVariant

        types = {"double": QVariant.Type.Double, "int": QVariant.Type.Int, "string": QVariant.Type.String}
    return types[kind]


def make_field(name: str, kind: str) -> QgsField:
    """A ``QgsField`` called ``name`` of ``kind`` (see :func:`field_type`)."""
    return QgsField(name, field_type(kind))
