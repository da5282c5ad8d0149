"""The QGIS plugin object: registers the Processing provider, the menu entries and the dock panel."""
from __future__ import annotations

from typing import List, Optional

from qgis.core import QgsApplication

from .processing_provider.provider import GlacierFlowProvider

MENU = "&GlacierFlow"


class GlacierFlowPlugin:
    """Registers the provider once (``initProcessing``) and the GUI entries (``initGui``)."""

    def __init__(self, iface) -> None:
        self.iface = iface
        self.provider: Optional[GlacierFlowProvider] = None
        self.actions: List[object] = []
        self.panel_action = None
        self.dock = None  # created on first use, so QGIS starts without loading the panel's imports

    def initProcessing(self) -> None:  # noqa: N802
        """Register the Processing provider; safe to call more than once."""
        if self.provider is None:
            self.provider = GlacierFlowProvider()
            QgsApplication.processingRegistry().addProvider(self.provider)

    def initGui(self) -> None:  # noqa: N802
        """Add the provider, the menu entry and the panel's toolbar button."""
        self.initProcessing()
        if self.iface is None:
            return
        from qgis.PyQt.QtWidgets import QAction

        action = QAction(self.provider.icon(), "Glacier velocity from an image pair…", self.iface.mainWindow())
        action.triggered.connect(lambda: self._open_algorithm("glacierflow:velocity_pair"))
        self.iface.addPluginToRasterMenu(MENU, action)
        self.actions.append(action)
        self._add_panel_action()

    def _add_panel_action(self) -> None:
        """A checkable toolbar button and Raster menu entry showing or hiding the dock panel."""
        from qgis.PyQt.QtWidgets import QAction

        action = QAction(self.provider.icon(), "GlacierFlow panel", self.iface.mainWindow())
        action.setCheckable(True)
        action.setToolTip("Show or hide the GlacierFlow panel: glacier velocity from an image pair")
        action.toggled.connect(self._show_panel)
        self.iface.addToolBarIcon(action)
        self.iface.addPluginToRasterMenu(MENU, action)
        self.panel_action = action

    def _show_panel(self, visible: bool) -> None:
        """Create the dock on first use; from then on the dock keeps the action in step itself."""
        if self.dock is not None or not visible:
            return
        from qgis.PyQt.QtCore import Qt

        from .ui.dock import GlacierFlowDock

        self.dock = GlacierFlowDock(self.iface, self.iface.mainWindow())
        self.iface.addDockWidget(Qt.DockWidgetArea.RightDockWidgetArea, self.dock)
        self.dock.setToggleVisibilityAction(self.panel_action)
        self.dock.setUserVisible(True)
        self.panel_action.setChecked(True)

    @staticmethod
    def _open_algorithm(algorithm_id: str) -> None:
        import processing

        processing.execAlgorithmDialog(algorithm_id)

    def unload(self) -> None:
        """Remove the menu entries, the panel and the provider."""
        if self.iface is not None:
            for action in self.actions:
                self.iface.removePluginRasterMenu(MENU, action)
            self._remove_panel()
        self.actions = []
        if self.provider is not None:
            QgsApplication.processingRegistry().removeProvider(self.provider)
            self.provider = None

    def _remove_panel(self) -> None:
        """Stop a running job, remove the dock and its action."""
        if self.dock is not None:
            self.dock.cancel()  # a running job stops within one tile and writes nothing
            self.iface.removeDockWidget(self.dock)
            self.dock.deleteLater()
            self.dock = None
        if self.panel_action is not None:
            self.iface.removeToolBarIcon(self.panel_action)
            self.iface.removePluginRasterMenu(MENU, self.panel_action)
            self.panel_action.deleteLater()
            self.panel_action = None
