"""The one exception type a user can act on."""
from __future__ import annotations


class GlacierFlowError(Exception):
    """A problem with the user's input or environment.

    The message always says what went wrong and what to do about it;
    Processing algorithms turn it into ``QgsProcessingException``.
    """
