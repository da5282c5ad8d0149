"""The one exception type a user can act on."""
from __future__ import annotations

import re


class GlacierFlowError(Exception):
    """A problem with the user's input or environment.

    The message always says what went wrong and what to do about it;
    Processing algorithms turn it into ``QgsProcessingException``.
    """


_USER_INFO = re.compile(r"(?i)\b([a-z][a-z0-9+.-]*://)[^/\s@'\"]+@")
_SECRET_PARAMETER = re.compile(
    r"(?i)([?&;](?:sig|signature|token|access_token|id_token|refresh_token|api_key|apikey|key|subscription-key|"
    r"password|passwd|pwd|secret|client_secret|x-amz-signature|x-amz-credential|x-amz-security-token|"
    r"x-goog-signature|x-goog-credential)=)[^&\s#'\"]+")
_BEARER = re.compile(r"(?i)\b(bearer|basic)\s+[a-z0-9._~+/=-]{8,}")


def redact_secrets(text: str) -> str:
    """``text`` with the credentials a URL or header may carry replaced by ``***``: user:password@ in URLs,
    secret query parameters (sig, token, key, password, X-Amz-Signature, ...) and bearer/basic tokens.
    Used on every message and log line GlacierFlow shows."""
    text = _USER_INFO.sub(r"\1***@", text)
    text = _SECRET_PARAMETER.sub(r"\1***", text)
    return _BEARER.sub(r"\1 ***", text)
