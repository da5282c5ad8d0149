"""Screenshot of the dock beside a map of its result, for the README.

Runs the built-in multi-date sample through the panel's Area mode exactly as a user
would (the area drawn with the map tool, a background task, results loaded in a
group), shows the layer tree, the map and the panel in one window and grabs it::

    xvfb-run -a -s "-screen 0 1600x1000x24" python -m bench.screenshot docs/dock_screenshot.png
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from typing import Any


def _start_qgis() -> Any:
    from qgis.core import QgsApplication

    app = QgsApplication([], True)
    app.initQgis()
    plugins = os.path.join(app.pkgDataPath(), "python", "plugins")
    if plugins not in sys.path:
        sys.path.append(plugins)
    from processing.core.Processing import Processing

    Processing.initialize()
    from glacierflow import classFactory

    app.glacierflow = classFactory(None)  # keep the plugin (and its provider) alive
    app.glacierflow.initProcessing()
    return app


class _ScreenshotIface:
    """The little of QGIS's interface the panel uses here: the map canvas (for drawing the area)."""

    def __init__(self, canvas: Any) -> None:
        self.canvas = canvas

    def mapCanvas(self) -> Any:  # noqa: N802
        return self.canvas


def _window(app: Any) -> Any:
    """A main window: layer tree (left), map canvas (centre), GlacierFlow dock (right)."""
    from qgis.core import QgsCoordinateReferenceSystem, QgsLayerTreeModel, QgsProject
    from qgis.gui import QgsLayerTreeView, QgsMapCanvas
    from qgis.PyQt.QtCore import Qt
    from qgis.PyQt.QtWidgets import QDockWidget, QMainWindow

    from glacierflow.ui.dock import GlacierFlowDock

    window = QMainWindow()
    window.setWindowTitle("QGIS - GlacierFlow")
    window.canvas = QgsMapCanvas(window)
    window.canvas.setDestinationCrs(QgsCoordinateReferenceSystem("EPSG:32632"))  # the sample's UTM zone
    window.setCentralWidget(window.canvas)
    tree = QgsLayerTreeView(window)
    tree.setModel(QgsLayerTreeModel(QgsProject.instance().layerTreeRoot(), tree))
    layers = QDockWidget("Layers", window)
    layers.setWidget(tree)
    window.addDockWidget(Qt.DockWidgetArea.LeftDockWidgetArea, layers)
    window.dock = GlacierFlowDock(_ScreenshotIface(window.canvas), window)
    window.dock.setMinimumWidth(430)
    window.addDockWidget(Qt.DockWidgetArea.RightDockWidgetArea, window.dock)
    window.resize(1500, 860)
    # Docks keep their size hint; give the map the room a user would (layers 250 px, panel 430 px).
    window.resizeDocks([layers, window.dock], [250, 430], Qt.Orientation.Horizontal)
    window.tree = tree
    return window


def _draw_around(tool: Any, extent: Any, margin: float) -> None:
    """Click an octagon ``margin`` (fraction of the size) outside ``extent`` with the map tool, then finish."""
    import math

    from qgis.core import QgsPointXY

    centre = extent.center()
    rx, ry = extent.width() * (0.5 + margin), extent.height() * (0.5 + margin)
    for step in range(8):
        angle = math.radians(22.5 + 45 * step)
        tool.add_vertex(QgsPointXY(centre.x() + rx * math.cos(angle), centre.y() + ry * math.sin(angle)))
    tool.finish()


def _run_sample(app: Any, window: Any, folder: str, engine: str) -> Any:
    """The multi-date sample through the Area mode: draw the area, choose the folder and years, run."""
    from qgis.core import QgsCoordinateTransform, QgsProject, QgsVectorLayer

    from training.sample_series import write_sample_series

    series = write_sample_series(folder, shape=(288, 288))
    outline = QgsVectorLayer(series.outlines, "glacier outline", "ogr")
    outline.renderer().setSymbol(_outline_symbol())
    QgsProject.instance().addMapLayer(outline)
    canvas = window.canvas
    to_map = QgsCoordinateTransform(outline.crs(), canvas.mapSettings().destinationCrs(), QgsProject.instance())
    glacier = to_map.transformBoundingBox(outline.extent())
    dock = window.dock
    dock.set_mode(dock.area)
    canvas.setExtent(glacier.buffered(glacier.width()))
    _draw_around(dock.area.start_drawing(), glacier, 0.12)
    area = dock.area
    area.source.setCurrentText("local_folder")
    area.folder.setFilePath(series.folder)
    area.year_a.setValue(2021)
    area.year_b.setValue(2022)
    area.months.setText("6-10")
    area.engine.setCurrentText(engine)
    area.outlines.setLayer(outline)
    area.stakes.setFilePath(series.stakes)
    area.output.setFilePath(os.path.join(folder, f"annual_velocity_{engine}.tif"))
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

    return QgsFillSymbol.createSimple({"style": "no", "outline_color": "250,250,250,255", "outline_width": "0.4",
                                       "outline_style": "dash"})


def _show_map(app: Any, window: Any, extra: list[Any]) -> None:
    from qgis.PyQt.QtGui import QColor

    results = window.dock.results
    canvas = window.canvas
    canvas.setCanvasColor(QColor(236, 236, 236))  # not white: white is the arrows
    drawn = window.dock.area.area_layer.currentLayer()
    canvas.setLayers([results.stakes, results.arrows] + extra + [drawn, results.speed])
    shown = results.speed.extent()
    shown.combineExtentWith(drawn.extent())  # the job grid covers the drawn area's bounding box
    canvas.setExtent(shown.buffered(shown.width() * 0.02))
    window.tree.expandAll()
    window.show()
    for _ in range(20):
        app.processEvents()
        time.sleep(0.05)
    canvas.refreshAllLayers()
    canvas.waitWhileRendering()
    app.processEvents()


def take(png: str, engine: str = "horn_schunck") -> str:
    """Run the multi-date sample through the dock's Area mode and save the window to ``png``; returns its path."""
    app = _start_qgis()
    window = _window(app)
    with tempfile.TemporaryDirectory(prefix="glacierflow-shot-") as folder:
        outline = _run_sample(app, window, folder, engine)
        _show_map(app, window, [outline])
        os.makedirs(os.path.dirname(os.path.abspath(png)), exist_ok=True)
        if not window.grab().save(png):
            raise RuntimeError(f"Could not write {png}")
        window.dock.release()
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
