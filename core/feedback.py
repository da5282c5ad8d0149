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


class JobCancelled(Exception):
    """Raised inside a job when the user cancels; no output is left behind."""
