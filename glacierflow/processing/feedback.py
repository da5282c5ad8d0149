"""Bridges between core's Feedback/errors and QGIS Processing."""
from __future__ import annotations

from qgis.core import QgsProcessingFeedback

from ..core.errors import redact_secrets
from ..core.feedback import Feedback


class ProcessingFeedback(Feedback):
    """Core :class:`Feedback` reporting to a ``QgsProcessingFeedback``; credentials in URLs never reach the log."""

    def __init__(self, feedback: QgsProcessingFeedback) -> None:
        self._feedback = feedback

    def progress(self, percent: float) -> None:
        self._feedback.setProgress(percent)

    def info(self, message: str) -> None:
        self._feedback.pushInfo(redact_secrets(message))

    def warning(self, message: str) -> None:
        self._feedback.pushWarning(redact_secrets(message))

    def is_cancelled(self) -> bool:
        return self._feedback.isCanceled()
