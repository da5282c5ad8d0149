"""The QGIS plugin object: registers the Processing provider, the menu entries and the dock panel.

On start it checks (without importing them) that the Python packages it needs are
installed; when one is missing the plugin still loads, and a message bar item offers a
dialog that explains and can install them.
"""
from __future__ import annotations

from collections.abc import Sequence

from qgis.core import QgsApplication

from .processing.provider import GlacierFlowProvider
from .ui.dependencies import DEPENDENCIES, Dependency, DependencyDialog, missing_dependencies

MENU = "&GlacierFlow"


class GlacierFlowPlugin:
    """Registers the provider once (``initProcessing``) and the GUI entries (``initGui``)."""

    def __init__(self, iface, dependencies: Sequence[Dependency] = DEPENDENCIES) -> None:
        self.iface = iface
        self.provider: GlacierFlowProvider | None = None
        self.actions: list[object] = []
        self.panel_action = None
        self.dock = None  # created on first use, so QGIS starts without loading the panel's imports
        self.missing = missing_dependencies(dependencies)
        self.dependency_dialog: DependencyDialog | None = None
        self.message_item = None

    def missing_required(self) -> list[Dependency]:
        """The required packages that are not installed (the algorithms cannot run without them)."""
        return [d for d in self.missing if d.required]

    def missing_to_load(self) -> list[Dependency]:
        """The missing packages without which the algorithms and the panel cannot be imported."""
        return [d for d in self.missing if d.needed_to_load]

    def initProcessing(self) -> None:  # noqa: N802
        """Register the Processing provider; safe to call more than once. Skipped while a package needed
        to load the algorithms is missing; without OpenCV or onnxruntime the algorithms that need them say
        so when run, and the others work."""
        if self.provider is None and not self.missing_to_load():
            self.provider = GlacierFlowProvider()
            QgsApplication.processingRegistry().addProvider(self.provider)

    def initGui(self) -> None:  # noqa: N802
        """Add the provider, the menu entry and the panel's toolbar button."""
        self.initProcessing()
        if self.iface is None:
            return
        from qgis.PyQt.QtWidgets import QAction

        action = QAction(self._icon(), "Glacier velocity from an image pair…", self.iface.mainWindow())
        action.triggered.connect(lambda: self._open_algorithm("glacierflow:velocity_pair"))
        self.iface.addPluginToRasterMenu(MENU, action)
        self.actions.append(action)
        self._add_panel_action()
        if self.missing_required():
            self._offer_install()

    @staticmethod
    def _icon():
        return GlacierFlowProvider().icon()

    def _offer_install(self) -> None:
        """A message bar item naming the missing packages, with a button opening the install dialog."""
        from qgis.core import Qgis

        names = ", ".join(d.package for d in self.missing_required())
        bar = self.iface.messageBar()
        text = f"needs {names}, which this QGIS's Python lacks."
        if not hasattr(bar, "createMessage"):  # a bare interface (tests, scripts): text only
            bar.pushMessage("GlacierFlow", text, Qgis.MessageLevel.Warning, 0)
            return
        from qgis.PyQt.QtWidgets import QPushButton

        item = bar.createMessage("GlacierFlow", text)
        button = QPushButton("Install…", item)
        button.clicked.connect(self.show_dependency_dialog)
        item.layout().addWidget(button)
        self.message_item = bar.pushWidget(item, Qgis.MessageLevel.Warning)

    def show_dependency_dialog(self, command: Sequence[str] | None = None) -> DependencyDialog:
        """Open (or raise) the dialog that explains what is missing and can install it."""
        if self.dependency_dialog is None:
            parent = self.iface.mainWindow() if self.iface is not None else None
            self.dependency_dialog = DependencyDialog(self.missing, command or None, parent)
        self.dependency_dialog.show()
        self.dependency_dialog.raise_()
        return self.dependency_dialog

    def _add_panel_action(self) -> None:
        """A checkable toolbar button and Raster menu entry showing or hiding the dock panel."""
        from qgis.PyQt.QtWidgets import QAction

        action = QAction(self._icon(), "GlacierFlow panel", self.iface.mainWindow())
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
        if self.missing_to_load():  # the panel's imports would fail: explain instead
            self.panel_action.setChecked(False)
            self.show_dependency_dialog()
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
        if self.dependency_dialog is not None:
            self.dependency_dialog.close()
            self.dependency_dialog.deleteLater()
            self.dependency_dialog = None
        if self.message_item is not None and self.iface is not None:
            self.iface.messageBar().popWidget(self.message_item)
            self.message_item = None
        if self.provider is not None:
            QgsApplication.processingRegistry().removeProvider(self.provider)
            self.provider = None

    def _remove_panel(self) -> None:
        """Stop a running job, remove the dock and its action."""
        if self.dock is not None:
            self.dock.release()  # a running job stops within one tile and writes nothing; drawing stops
            self.iface.removeDockWidget(self.dock)
            self.dock.deleteLater()
            self.dock = None
        if self.panel_action is not None:
            self.iface.removeToolBarIcon(self.panel_action)
            self.iface.removePluginRasterMenu(MENU, self.panel_action)
            self.panel_action.deleteLater()
            self.panel_action = None
