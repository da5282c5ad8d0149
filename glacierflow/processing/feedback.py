"""Bridges between core's Feedback/errors and QGIS Processing."""
from __future__ import annotations

from qgis.core import QgsProcessingFeedback

from ..core.feedback import Feedback


class ProcessingFeedback(Feedback):
    """Core :class:`Feedback` reporting to a ``QgsProcessingFeedback``."""

    def __init__(self, feedback: QgsProcessingFeedback) -> None:
        self._feedback = feedback

    def progress(self, percent: float) -> None:
        self._feedback.setProgress(percent)

    def info(self, message: str) -> None:
        self._feedback.pushInfo(message)

    def warning(self, message: str) -> None:
        self._feedback.reportError(message, fatalError=False)

    def is_cancelled(self) -> bool:
        return self._feedback.isCanceled()
