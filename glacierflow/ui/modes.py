"""What every tab of the panel is: a :class:`DockMode` (inputs, the Processing job it runs, its results).

The dock only talks to this protocol: it asks the current mode for its parameters, starts the mode's job
in the background, and hands the results back to the mode to load and report. Velocity modes run one
algorithm; the Forecast mode runs a chain of two.
"""
from __future__ import annotations

from typing import Any, Callable, Protocol

from qgis.core import QgsMapLayer, QgsProcessingFeedback

from .layers import ResultLayers
from .task import start_algorithm

Executed = Callable[[bool, dict[str, Any]], None]


class DockMode(Protocol):
    """One tab of the GlacierFlow panel."""

    title: str  # the tab's label
    algorithm_id: str  # the algorithm whose help the Help button opens

    def parameters(self) -> Any:
        """The job's parameters from the widgets; ValueError with a message saying what to fix."""
        ...

    def describe(self, parameters: Any) -> str:
        """One log line for the start of a run."""
        ...

    def start(self, parameters: Any, feedback: QgsProcessingFeedback, on_executed: Executed) -> tuple[Any, Any]:
        """Queue the job in QGIS's task manager; returns (task, context) to keep alive while it runs."""
        ...

    def load(self, results: Any, parameters: Any) -> Any:
        """Add the finished job's styled layers to the project; returns them."""
        ...

    def report(self, loaded: Any, results: Any, seconds: float) -> tuple[list[str], QgsMapLayer]:
        """Log lines for a finished run, and the layer to make active."""
        ...

    def save_settings(self) -> None:
        """Remember the widgets' values for the next QGIS session."""
        ...

    def release(self) -> None:
        """Free what the mode holds (map tools) when the panel goes."""
        ...


class VelocityMode:
    """What the velocity modes (pair, area, region) share: one algorithm queued in the task manager, its
    result loaded as a group."""

    algorithm_id = ""

    def start(self, parameters: dict[str, Any], feedback: QgsProcessingFeedback,
              on_executed: Executed) -> tuple[Any, Any]:
        """Queue :attr:`algorithm_id` with ``parameters``."""
        return start_algorithm(self.algorithm_id, parameters, feedback, on_executed)

    def report(self, loaded: ResultLayers, results: dict[str, Any], seconds: float) -> tuple[list[str], QgsMapLayer]:
        """The product, the layers loaded (hidden ones named) and the speed layer to show."""
        hidden = [layer.name() for layer in (loaded.validity, loaded.uncertainty) if layer is not None]
        stakes = f", {loaded.stakes.featureCount()} GPS stakes" if loaded.stakes is not None else ""
        lines = [f"Result ({seconds:.1f} s): {loaded.speed.source()}",
                 f"Loaded '{loaded.group.name()}': speed, {loaded.arrows.featureCount()} direction "
                 f"arrows{stakes}" + (f", {' and '.join(hidden)} (hidden)." if hidden else ".")]
        return lines, loaded.speed

    def release(self) -> None:
        """Nothing to release by default."""
