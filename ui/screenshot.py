"""Screenshot of the dock beside a map of its result, for the README.

Runs the built-in sample through the panel exactly as a user would (background
task, results loaded in a group), shows the layer tree, the map and the panel in
one window and grabs it::

    xvfb-run -a -s "-screen 0 1600x1000x24" python -m glacierflow.ui.screenshot docs/dock_screenshot.png
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from typing import Any, List


def _start_qgis() -> Any:
    from qgis.core import QgsApplication

    app = QgsApplication([], True)
    app.initQgis()
    plugins = os.path.join(app.pkgDataPath(), "python", "plugins")
    if plugins not in sys.path:
        sys.path.append(plugins)
    from processing.core.Processing import Processing

    Processing.initialize()
    from .. import classFactory

    app.glacierflow = classFactory(None)  # keep the plugin (and its provider) alive
    app.glacierflow.initProcessing()
    return app


def _window(app: Any) -> Any:
    """A main window: layer tree (left), map canvas (centre), GlacierFlow dock (right)."""
    from qgis.core import QgsLayerTreeModel, QgsProject
    from qgis.gui import QgsLayerTreeView, QgsMapCanvas
    from qgis.PyQt.QtCore import Qt
    from qgis.PyQt.QtWidgets import QDockWidget, QMainWindow

    from .dock import GlacierFlowDock

    window = QMainWindow()
    window.setWindowTitle("QGIS - GlacierFlow")
    window.canvas = QgsMapCanvas(window)
    window.setCentralWidget(window.canvas)
    tree = QgsLayerTreeView(window)
    tree.setModel(QgsLayerTreeModel(QgsProject.instance().layerTreeRoot(), tree))
    layers = QDockWidget("Layers", window)
    layers.setWidget(tree)
    window.addDockWidget(Qt.DockWidgetArea.LeftDockWidgetArea, layers)
    window.dock = GlacierFlowDock(None, window)
    window.addDockWidget(Qt.DockWidgetArea.RightDockWidgetArea, window.dock)
    window.resize(1500, 860)
    window.tree = tree
    return window


def _run_sample(app: Any, window: Any, folder: str, engine: str) -> Any:
    from qgis.core import QgsProject, QgsVectorLayer

    from ..core.sample import write_sample

    sample = write_sample(folder)
    outline = QgsVectorLayer(sample.outlines, "glacier outline", "ogr")
    outline.renderer().setSymbol(_outline_symbol())
    QgsProject.instance().addMapLayer(outline)
    dock = window.dock
    dock.image_a.set_path(sample.image_a)
    dock.image_b.set_path(sample.image_b)
    dock.outline.setLayer(outline)
    dock.engine.setCurrentText(engine)
    dock.output.setFilePath(os.path.join(folder, f"velocity_{engine}.tif"))
    if not dock.run():
        raise RuntimeError(dock.log_view.toPlainText())
    deadline = time.monotonic() + 300
    while dock.is_running() and time.monotonic() < deadline:
        app.processEvents()
        time.sleep(0.02)
    if dock.status != "Done":
        raise RuntimeError(dock.log_view.toPlainText())
    return outline


def _outline_symbol() -> Any:
    from qgis.core import QgsFillSymbol

    return QgsFillSymbol.createSimple({"style": "no", "outline_color": "255,90,60,255", "outline_width": "0.6"})


def _show_map(app: Any, window: Any, extra: List[Any]) -> None:
    from qgis.PyQt.QtGui import QColor

    results = window.dock.results
    canvas = window.canvas
    canvas.setCanvasColor(QColor(236, 236, 236))  # not white: white is the arrows
    canvas.setDestinationCrs(results.speed.crs())
    canvas.setLayers([results.arrows] + extra + [results.speed])
    canvas.setExtent(results.speed.extent().buffered(results.speed.extent().width() * 0.02))
    window.tree.expandAll()
    window.show()
    for _ in range(20):
        app.processEvents()
        time.sleep(0.05)
    canvas.refreshAllLayers()
    canvas.waitWhileRendering()
    app.processEvents()


def take(png: str, engine: str = "horn_schunck") -> str:
    """Run the sample through the dock and save the window to ``png``; returns its path."""
    app = _start_qgis()
    window = _window(app)
    with tempfile.TemporaryDirectory(prefix="glacierflow-shot-") as folder:
        outline = _run_sample(app, window, folder, engine)
        _show_map(app, window, [outline])
        os.makedirs(os.path.dirname(os.path.abspath(png)), exist_ok=True)
        if not window.grab().save(png):
            raise RuntimeError(f"Could not write {png}")
        window.close()
    return png


def main() -> None:
    """Command line: the PNG path and the engine."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("png", nargs="?", default="docs/dock_screenshot.png")
    parser.add_argument("--engine", default="horn_schunck")
    args = parser.parse_args()
    print(take(args.png, args.engine))


if __name__ == "__main__":
    main()
