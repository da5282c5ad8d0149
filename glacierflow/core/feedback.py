"""How long-running core functions report progress and learn of cancellation.

Processing algorithms adapt ``QgsProcessingFeedback`` to this; scripts and
tests use the silent default.
"""
from __future__ import annotations


class Feedback:
    """Progress, log and cancellation channel; the base class is silent and never cancels."""

    def progress(self, percent: float) -> None:
        """Report progress, 0..100 %."""

    def info(self, message: str) -> None:
        """Log an informational message."""

    def warning(self, message: str) -> None:
        """Log something the user should know about the result."""

    def is_cancelled(self) -> bool:
        """True once the user asked to stop."""
        return False


class StageFeedback(Feedback):
    """A feedback mapping 0..100 % of one stage onto [start, end] % of the whole job's bar."""

    def __init__(self, parent: Feedback, start: float, end: float) -> None:
        self.parent, self.start, self.end = parent, start, end

    def progress(self, percent: float) -> None:
        self.parent.progress(self.start + (self.end - self.start) * percent / 100.0)

    def info(self, message: str) -> None:
        self.parent.info(message)

    def warning(self, message: str) -> None:
        self.parent.warning(message)

    def is_cancelled(self) -> bool:
        return self.parent.is_cancelled()


class JobCancelled(Exception):  # noqa: N818 (a cancel is not an error)
    """Raised inside a job when the user cancels; no output is left behind."""
