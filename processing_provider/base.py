"""What every GlacierFlow algorithm shares: its identity from class attributes, and error handling."""
from __future__ import annotations

from typing import Any, Dict

from qgis.core import QgsProcessingAlgorithm, QgsProcessingContext, QgsProcessingException, QgsProcessingFeedback

from ..core.errors import GlacierFlowError
from ..core.feedback import JobCancelled


class GlacierFlowAlgorithm(QgsProcessingAlgorithm):
    """Base of the provider's algorithms.

    Subclasses set ``ALGORITHM_ID``, ``DISPLAY_NAME``, ``GROUP`` and ``HELP``
    and implement :meth:`process`; a core error a user can fix, or a cancel,
    becomes a ``QgsProcessingException`` with its message.
    """

    ALGORITHM_ID = ""
    DISPLAY_NAME = ""
    GROUP = ""
    HELP = ""

    def name(self) -> str:
        return self.ALGORITHM_ID

    def displayName(self) -> str:  # noqa: N802
        return self.DISPLAY_NAME

    def group(self) -> str:
        return self.GROUP

    def groupId(self) -> str:  # noqa: N802
        return self.GROUP.lower()

    def shortHelpString(self) -> str:  # noqa: N802
        return self.HELP

    def createInstance(self) -> "GlacierFlowAlgorithm":  # noqa: N802
        return type(self)()

    def processAlgorithm(self, parameters: Dict[str, Any], context: QgsProcessingContext,  # noqa: N802
                         feedback: QgsProcessingFeedback) -> Dict[str, Any]:
        try:
            return self.process(parameters, context, feedback)
        except JobCancelled:
            raise QgsProcessingException("Cancelled: no output was written.") from None
        except GlacierFlowError as error:
            raise QgsProcessingException(str(error)) from None

    def process(self, parameters: Dict[str, Any], context: QgsProcessingContext,
                feedback: QgsProcessingFeedback) -> Dict[str, Any]:
        """The algorithm's work: parameters -> core call -> outputs."""
        raise NotImplementedError
