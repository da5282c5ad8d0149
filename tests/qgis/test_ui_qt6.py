"""Qt6 readiness of the whole plugin: qgis.PyQt imports only, fully scoped enums, no compiled resources.

Every ``Class.NAME`` in every shipped module outside ``core/`` where ``Class`` is imported from qgis is looked up on
the real class: an enum value reached without its enum's name (``Qt.AlignLeft`` instead of
``Qt.AlignmentFlag.AlignLeft``) fails, because Qt6 (PyQt6) has only the scoped form.
"""
from __future__ import annotations

import ast
import importlib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PLUGIN = ROOT / "glacierflow"
# Every shipped module that can touch Qt or QGIS (core never imports qgis: test_layers checks that).
SOURCES = sorted(p for p in PLUGIN.rglob("*.py") if "core" not in p.relative_to(PLUGIN).parts)


def qgis_names(tree: ast.Module) -> dict:
    """Names imported from qgis.* modules, to their objects."""
    names = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.level == 0 and (node.module or "").split(".")[0] == "qgis":
            module = importlib.import_module(node.module)
            for alias in node.names:
                names[alias.asname or alias.name] = getattr(module, alias.name)
    return names


def unscoped_enums(path: Path) -> list:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    names = qgis_names(tree)
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id in names:
            owner = names[node.value.id]
            value = getattr(owner, node.attr, None)
            constant = node.attr.isupper()  # QGIS_VERSION_INT and the like are plain constants
            if isinstance(value, int) and not isinstance(value, bool) and not constant:
                found.append(f"{path.name}:{node.lineno} {node.value.id}.{node.attr}")
    return found


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: p.name)
def test_enums_are_scoped_and_imports_go_through_qgis_pyqt(path, qgis_app):
    assert unscoped_enums(path) == []
    text = path.read_text(encoding="utf-8")
    for forbidden in ("from PyQt5", "import PyQt5", "from PyQt6", "import PyQt6", "resources_rc", "import sip"):
        assert forbidden not in text, f"{path.name}: {forbidden}"
    if path.name != "qgis_compat.py":
        assert "QVariant" not in text, f"{path.name}: field types go through glacierflow/qgis_compat.py"


def test_the_check_catches_an_unscoped_enum(tmp_path, qgis_app):
    bad = tmp_path / "bad.py"
    bad.write_text("from qgis.PyQt.QtCore import Qt\nx = Qt.AlignLeft\ny = Qt.AlignmentFlag.AlignLeft\n")
    assert unscoped_enums(bad) == ["bad.py:2 Qt.AlignLeft"]


def test_no_compiled_resources():
    assert not list(PLUGIN.rglob("*.qrc"))
    assert not list(PLUGIN.rglob("resources*.py"))
