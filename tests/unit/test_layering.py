"""The package's layers: ``core`` knows nothing of QGIS, Processing, the dock or training code;
``processing`` knows nothing of the dock; nothing that ships imports torch or the training package.

Read from the source (every import statement, also those inside functions), so a lazy import that
would break a QGIS-free Dask worker or the plugin zip fails here, not on a user's machine.
"""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "glacierflow"
MODULES = sorted(PACKAGE.rglob("*.py"))


def _imported_modules(path: Path) -> set[str]:
    """Absolute dotted names of every module ``path`` imports (relative imports resolved)."""
    package = ["glacierflow", *path.relative_to(PACKAGE).parent.parts]
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = package[: len(package) - node.level + 1] if node.level else []
            module = ".".join(base + ([node.module] if node.module else []))
            names.update(f"{module}.{alias.name}" if not node.module else module for alias in node.names)
    return names


def _layer(path: Path) -> str:
    parts = path.relative_to(PACKAGE).parts
    return parts[0] if len(parts) > 1 else "top"


FORBIDDEN = {
    "core": ("qgis", "glacierflow.processing", "glacierflow.ui", "glacierflow.plugin", "glacierflow.qgis_compat",
             "training", "torch", "processing"),
    "processing": ("glacierflow.ui", "training", "torch"),
    "ui": ("training", "torch"),
    "assets": (),
    "top": ("training", "torch"),
}


def _violations(path: Path) -> list[str]:
    forbidden = FORBIDDEN[_layer(path)]
    return sorted(name for name in _imported_modules(path)
                  if any(name == bad or name.startswith(bad + ".") for bad in forbidden))


def test_every_shipped_module_is_checked():
    assert len(MODULES) > 50 and {_layer(p) for p in MODULES} >= {"core", "processing", "ui", "top"}


@pytest.mark.parametrize("path", MODULES, ids=lambda p: str(p.relative_to(PACKAGE)))
def test_no_module_imports_from_a_layer_above_it(path):
    assert _violations(path) == [], f"{path.relative_to(PACKAGE)} imports from a layer above it"


def test_the_check_sees_lazy_and_relative_imports(tmp_path, monkeypatch):
    fake = PACKAGE / "core" / "velocity" / "pair.py"
    source = "def f():\n    from ...ui import dock\n    import torch\n"
    monkeypatch.setattr(Path, "read_text", lambda self, encoding=None: source)
    assert _violations(fake) == ["glacierflow.ui", "torch"]
