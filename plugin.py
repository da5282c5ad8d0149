"""The QGIS plugin object: registers the Processing provider and the menu entries."""
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

    def initProcessing(self) -> None:  # noqa: N802
        """Register the Processing provider; safe to call more than once."""
        if self.provider is None:
            self.provider = GlacierFlowProvider()
            QgsApplication.processingRegistry().addProvider(self.provider)

    def initGui(self) -> None:  # noqa: N802
        """Add the provider and the menu entry."""
        self.initProcessing()
        if self.iface is None:
            return
        from qgis.PyQt.QtWidgets import QAction

        action = QAction(self.provider.icon(), "Glacier velocity from an image pair…", self.iface.mainWindow())
        action.triggered.connect(lambda: self._open_algorithm("glacierflow:velocity_pair"))
        self.iface.addPluginToRasterMenu(MENU, action)
        self.actions.append(action)

    @staticmethod
    def _open_algorithm(algorithm_id: str) -> None:
        import processing

        processing.execAlgorithmDialog(algorithm_id)

    def unload(self) -> None:
        """Remove the menu entries and the provider."""
        if self.iface is not None:
            for action in self.actions:
                self.iface.removePluginRasterMenu(MENU, action)
        self.actions = []
        if self.provider is not None:
            QgsApplication.processingRegistry().removeProvider(self.provider)
            self.provider = None
