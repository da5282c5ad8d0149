"""Running a Processing algorithm, or a chain of them, in QGIS's task manager with a feedback that the panel
can show."""
from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Callable

from qgis.core import (
    QgsApplication,
    QgsProcessingAlgRunnerTask,
    QgsProcessingContext,
    QgsProcessingFeedback,
    QgsProcessingMultiStepFeedback,
    QgsProject,
)
from qgis.PyQt.QtCore import QObject, pyqtSignal

# Jobs in flight: the task holds its context by reference, so the context (and the feedback) must
# outlive the task even when the panel that started it is closed or the plugin unloaded.
_IN_FLIGHT: dict[int, tuple[Any, ...]] = {}
_CHAINS: set[AlgorithmChain] = set()  # chains in flight, kept alive the same way


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


def start_algorithm(algorithm_id: str, parameters: dict[str, Any], feedback: QgsProcessingFeedback,
                    on_executed: Callable[[bool, dict[str, Any]], None], project: QgsProject | None = None,
                    ) -> tuple[QgsProcessingAlgRunnerTask, QgsProcessingContext]:
    """Queue ``algorithm_id`` with ``parameters`` in the task manager; returns the task and its context.

    ``on_executed(ok, results)`` is called in the main thread when the task ends; the context
    and feedback are kept alive here until then. Cancel with ``feedback.cancel()``: the
    algorithm checks it once per block. A run that finished just as the user cancelled is
    reported as cancelled, and what it wrote is removed: a cancel always leaves no output.

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

    def executed(ok: bool, results: dict[str, Any]) -> None:
        # Release the context first: the input layers it opened close their files now (GDAL may write a
        # statistics .aux.xml), before a cancel removes outputs, which a chain's next step reads as inputs.
        _IN_FLIGHT.pop(key, None)
        if feedback.isCanceled():  # finished just as the user cancelled (ok or not): nothing it wrote stays
            for path in written_files(algorithm_id, results or {}):
                remove_output(path)
            ok, results = False, {}
        on_executed(ok, results)

    task.executed.connect(executed)
    QgsApplication.taskManager().addTask(task)
    return task, context


@dataclass
class ChainStep:
    """One algorithm of a chain: ``parameters(done)`` builds its parameters from ``done``, the results of the
    steps before it keyed by algorithm id (e.g. the forecast reads the series step's OUTPUT)."""

    algorithm_id: str
    parameters: Callable[[dict[str, dict[str, Any]]], dict[str, Any]]


class AlgorithmChain(QObject):
    """Processing algorithms run one after another, each a task of the task manager (QGIS never freezes).

    One feedback covers the chain: its progress runs 0-100 over all steps and cancelling it stops the
    step that runs. ``executed(ok, results)`` comes once, in the main thread, with the results of every
    step keyed by algorithm id. When a step fails or is cancelled, the files the steps before it wrote
    are removed: a chain leaves all its outputs or none.
    """

    executed = pyqtSignal(bool, dict)
    stepStarted = pyqtSignal(int, str)  # noqa: N815 (Qt naming): step index, algorithm display name

    def __init__(self, steps: Sequence[ChainStep], feedback: QgsProcessingFeedback,
                 project: QgsProject | None = None) -> None:
        super().__init__()
        self.steps = list(steps)
        self.feedback = feedback
        self.project = project
        self.results: dict[str, dict[str, Any]] = {}
        self.task: QgsProcessingAlgRunnerTask | None = None
        # Scales each step's 0-100 onto its share of the whole; cancelling ``feedback`` cancels it too.
        self._step_feedback = QgsProcessingMultiStepFeedback(len(self.steps), feedback)
        self._index = -1

    def start(self) -> None:
        """Queue the first step.

        Raises:
            ValueError: an algorithm of the chain is not registered (the plugin's provider is not loaded).
        """
        for step in self.steps:
            if QgsApplication.processingRegistry().algorithmById(step.algorithm_id) is None:
                raise ValueError(f"The algorithm {step.algorithm_id} is not available: enable the GlacierFlow plugin.")
        _CHAINS.add(self)
        self._start_step(0)

    def _start_step(self, index: int) -> None:
        step = self.steps[index]
        self._index = index
        name = QgsApplication.processingRegistry().algorithmById(step.algorithm_id).displayName()
        self._step_feedback.setCurrentStep(index)
        self.feedback.pushInfo(f"Step {index + 1}/{len(self.steps)}: {name}")
        self.stepStarted.emit(index, name)
        self.task, _ = start_algorithm(step.algorithm_id, step.parameters(self.results), self._step_feedback,
                                       self._on_step_executed, self.project)

    def _on_step_executed(self, ok: bool, results: dict[str, Any]) -> None:
        step = self.steps[self._index]
        if not ok or self.feedback.isCanceled():  # a step that finished as the user cancelled removed its files
            self._finish(False)
            return
        self.results[step.algorithm_id] = results
        if self._index + 1 == len(self.steps):
            self._finish(True)
            return
        try:
            self._start_step(self._index + 1)
        except (KeyError, ValueError) as error:  # a step could not be built from the results before it
            self.feedback.reportError(f"Could not start the next step: {error}", True)
            self._finish(False)

    def _finish(self, ok: bool) -> None:
        if not ok:
            for path in self.output_files():
                remove_output(path)
        self.task = None
        _CHAINS.discard(self)
        self.executed.emit(ok, dict(self.results) if ok else {})

    def output_files(self) -> list[str]:
        """The files the finished steps wrote (their destination parameters' results)."""
        return [path for algorithm_id, results in self.results.items() for path in written_files(algorithm_id, results)]


def written_files(algorithm_id: str, results: dict[str, Any]) -> list[str]:
    """The files a finished run of ``algorithm_id`` wrote: its destination parameters' results."""
    algorithm = QgsApplication.processingRegistry().algorithmById(algorithm_id)
    names = [d.name() for d in algorithm.destinationParameterDefinitions()] if algorithm else []
    return [results[n] for n in names if isinstance(results.get(n), str) and os.path.isfile(results[n])]


def remove_output(path: str) -> None:
    """Delete the raster ``path`` with its style and GDAL side-car files, if present."""
    for target in (path, os.path.splitext(path)[0] + ".qml", path + ".aux.xml"):
        try:
            os.remove(target)
        except FileNotFoundError:
            pass


def start_chain(steps: Sequence[ChainStep], feedback: QgsProcessingFeedback,
                on_executed: Callable[[bool, dict[str, Any]], None], project: QgsProject | None = None,
                ) -> AlgorithmChain:
    """Run ``steps`` one after another in the task manager; ``on_executed(ok, results_by_algorithm_id)`` is
    called in the main thread when the last ends, one fails, or ``feedback`` is cancelled.

    Raises:
        ValueError: an algorithm of the chain is not registered.
    """
    chain = AlgorithmChain(steps, feedback, project)
    chain.executed.connect(on_executed)
    chain.start()
    return chain
