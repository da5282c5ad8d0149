"""Drawing the glacier area on the map, and the project layer "GlacierFlow area" that holds it.

Left clicks add vertices, a right click or a double click finishes, Backspace removes the
last vertex and Esc cancels. The polygon is in the canvas CRS.
"""
from __future__ import annotations

from qgis.core import (
    QgsCoordinateReferenceSystem,
    QgsFeature,
    QgsFillSymbol,
    QgsGeometry,
    QgsPointXY,
    QgsProject,
    QgsSingleSymbolRenderer,
    QgsVectorLayer,
    QgsWkbTypes,
)
from qgis.gui import QgsMapCanvas, QgsMapMouseEvent, QgsMapTool, QgsRubberBand
from qgis.PyQt.QtCore import Qt, pyqtSignal
from qgis.PyQt.QtGui import QColor

AREA_LAYER_NAME = "GlacierFlow area"
AREA_LAYER_PROPERTY = "glacierflow/area_layer"  # custom property marking the layer as ours


class PolygonMapTool(QgsMapTool):
    """Draw one polygon; ``polygonFinished(geometry)`` (canvas CRS) or ``drawingCancelled()`` ends it."""

    polygonFinished = pyqtSignal(QgsGeometry)  # noqa: N815 (Qt naming)
    drawingCancelled = pyqtSignal()  # noqa: N815

    def __init__(self, canvas: QgsMapCanvas) -> None:
        super().__init__(canvas)
        self.vertices: list[QgsPointXY] = []
        self.band = QgsRubberBand(canvas, QgsWkbTypes.GeometryType.PolygonGeometry)
        self.band.setColor(QColor(255, 90, 60, 70))
        self.band.setStrokeColor(QColor(255, 90, 60, 230))
        self.band.setWidth(2)
        self.setCursor(Qt.CursorShape.CrossCursor)

    # The mouse and keyboard map onto the four actions below.
    def canvasReleaseEvent(self, event: QgsMapMouseEvent) -> None:  # noqa: N802
        if event.button() == Qt.MouseButton.LeftButton:
            self.add_vertex(event.mapPoint())
        elif event.button() == Qt.MouseButton.RightButton:
            self.finish()

    def canvasDoubleClickEvent(self, event: QgsMapMouseEvent) -> None:  # noqa: N802
        self.finish()  # its first click already added the vertex

    def canvasMoveEvent(self, event: QgsMapMouseEvent) -> None:  # noqa: N802
        if self.vertices:
            self._show(self.vertices + [event.mapPoint()])

    def keyPressEvent(self, event) -> None:  # noqa: N802
        if event.key() == Qt.Key.Key_Escape:
            self.cancel()
        elif event.key() in (Qt.Key.Key_Backspace, Qt.Key.Key_Delete) and self.vertices:
            self.vertices.pop()
            self._show(self.vertices)
        else:
            event.ignore()

    def add_vertex(self, point: QgsPointXY) -> None:
        """Append a vertex (canvas CRS map units)."""
        self.vertices.append(QgsPointXY(point))
        self._show(self.vertices)

    def finish(self) -> QgsGeometry | None:
        """Close the polygon and emit it; with fewer than 3 distinct vertices, keep drawing (None)."""
        geometry = polygon_from_vertices(self.vertices)
        if geometry is None:
            return None
        self.reset()
        self.polygonFinished.emit(geometry)
        return geometry

    def cancel(self) -> None:
        """Forget the vertices and emit ``drawingCancelled``."""
        self.reset()
        self.drawingCancelled.emit()

    def reset(self) -> None:
        """Forget the vertices and clear the rubber band."""
        self.vertices = []
        self.band.reset(QgsWkbTypes.GeometryType.PolygonGeometry)

    def _show(self, points: list[QgsPointXY]) -> None:
        self.band.setToGeometry(QgsGeometry.fromPolygonXY([points]) if len(points) > 2
                                else QgsGeometry.fromPolylineXY(points), None)

    def deactivate(self) -> None:
        """Another tool was chosen: the half-drawn polygon is dropped."""
        self.reset()
        super().deactivate()


def polygon_from_vertices(vertices: list[QgsPointXY]) -> QgsGeometry | None:
    """A valid polygon through ``vertices`` (repeated clicks dropped, self-intersections repaired), or None."""
    distinct: list[QgsPointXY] = []
    for point in vertices:
        if not distinct or point != distinct[-1]:
            distinct.append(QgsPointXY(point))
    if len(distinct) > 1 and distinct[0] == distinct[-1]:
        distinct.pop()
    if len(distinct) < 3:
        return None
    geometry = QgsGeometry.fromPolygonXY([distinct])
    if not geometry.isGeosValid():
        geometry = geometry.makeValid()
    return geometry if not geometry.isEmpty() and geometry.area() > 0 else None


def area_layer(project: QgsProject, crs: QgsCoordinateReferenceSystem, create: bool = True,
               ) -> QgsVectorLayer | None:
    """The project's "GlacierFlow area" memory layer (created in ``crs`` when absent and ``create``)."""
    for layer in project.mapLayersByName(AREA_LAYER_NAME):
        if layer.customProperty(AREA_LAYER_PROPERTY) and isinstance(layer, QgsVectorLayer):
            return layer
    if not create:
        return None
    layer = QgsVectorLayer("Polygon", AREA_LAYER_NAME, "memory")
    layer.setCrs(crs)
    layer.setCustomProperty(AREA_LAYER_PROPERTY, True)
    symbol = QgsFillSymbol.createSimple({"style": "no", "outline_color": "255,90,60,255", "outline_width": "0.7"})
    layer.setRenderer(QgsSingleSymbolRenderer(symbol))
    project.addMapLayer(layer)
    return layer


def set_area(project: QgsProject, geometry: QgsGeometry, crs: QgsCoordinateReferenceSystem) -> QgsVectorLayer:
    """Make ``geometry`` (in ``crs``) the one polygon of the "GlacierFlow area" layer; returns the layer."""
    layer = area_layer(project, crs)
    if layer.crs() != crs:  # the canvas CRS changed since the layer was made
        from qgis.core import QgsCoordinateTransform

        geometry = QgsGeometry(geometry)
        geometry.transform(QgsCoordinateTransform(crs, layer.crs(), project))
    provider = layer.dataProvider()
    provider.truncate()
    feature = QgsFeature(layer.fields())
    feature.setGeometry(geometry)
    provider.addFeatures([feature])
    layer.updateExtents()
    layer.triggerRepaint()
    return layer
