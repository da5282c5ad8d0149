"""Running a Processing algorithm in QGIS's task manager with a feedback that the panel can show."""
from __future__ import annotations

from typing import Any, Callable, Dict, Optional, Tuple

from qgis.core import (
    QgsApplication,
    QgsProcessingAlgRunnerTask,
    QgsProcessingContext,
    QgsProcessingFeedback,
    QgsProject,
)
from qgis.PyQt.QtCore import pyqtSignal

# Jobs in flight: the task holds its context by reference, so the context (and the feedback) must
# outlive the task even when the panel that started it is closed or the plugin unloaded.
_IN_FLIGHT: Dict[int, Tuple[Any, ...]] = {}


class LogFeedback(QgsProcessingFeedback):
    """A Processing feedback that also emits every log line as ``message(text, is_error)``.

    The algorithm runs in a worker thread; this object lives in the main thread, so
    connections to widgets' methods are queued and the panel updates safely.
    """

    message = pyqtSignal(str, bool)

    def pushInfo(self, info: str) -> None:  # noqa: N802
        super().pushInfo(info)
        self.message.emit(info, False)

    def pushWarning(self, warning: str) -> None:  # noqa: N802
        super().pushWarning(warning)
        self.message.emit(warning, True)

    def pushCommandInfo(self, info: str) -> None:  # noqa: N802
        super().pushCommandInfo(info)
        self.message.emit(info, False)

    def pushConsoleInfo(self, info: str) -> None:  # noqa: N802
        super().pushConsoleInfo(info)
        self.message.emit(info, False)

    def reportError(self, error: str, fatalError: bool = False) -> None:  # noqa: N802, N803
        super().reportError(error, fatalError)
        self.message.emit(error, True)


def start_algorithm(algorithm_id: str, parameters: Dict[str, Any], feedback: QgsProcessingFeedback,
                    on_executed: Callable[[bool, Dict[str, Any]], None], project: Optional[QgsProject] = None,
                    ) -> Tuple[QgsProcessingAlgRunnerTask, QgsProcessingContext]:
    """Queue ``algorithm_id`` with ``parameters`` in the task manager; returns the task and its context.

    ``on_executed(ok, results)`` is called in the main thread when the task ends; the context
    and feedback are kept alive here until then. Cancel with ``feedback.cancel()``: the
    algorithm checks it once per tile.

    Raises:
        ValueError: the algorithm is not registered (the plugin's provider is not loaded).
    """
    algorithm = QgsApplication.processingRegistry().createAlgorithmById(algorithm_id)
    if algorithm is None:
        raise ValueError(f"The algorithm {algorithm_id} is not available: enable the GlacierFlow plugin.")
    context = QgsProcessingContext()
    context.setProject(project or QgsProject.instance())
    task = QgsProcessingAlgRunnerTask(algorithm, parameters, context, feedback)
    key = id(task)
    _IN_FLIGHT[key] = (task, context, feedback)
    task.executed.connect(on_executed)
    task.executed.connect(lambda *_: _IN_FLIGHT.pop(key, None))
    QgsApplication.taskManager().addTask(task)
    return task, context
