"""A local service speaking the Planetary Computer SAS token protocol.

``GET /api/sas/v1/token/{collection}`` answers ``{"msft:expiry": "<UTC ISO time>", "token": "<query string>"}``,
like https://planetarycomputer.microsoft.com/api/sas/v1/token/{collection}. With :attr:`required_key` set, the
request must carry it in the ``Ocp-Apim-Subscription-Key`` header, else 401.
"""
from __future__ import annotations

import json
import urllib.parse
from collections import Counter
from datetime import datetime, timedelta, timezone

from .base import LocalServer, QuietHandler

TOKEN_PATH = "/api/sas/v1/token/"


class SasTokenServer(LocalServer):
    """Hands out ``token`` (a URL query string), valid for ``lifetime`` from each request.

    Attributes:
        signature: the ``sig`` value inside every token (the file server requires it).
        lifetime: how long a token is valid (a negative one hands out tokens already expired).
        required_key: subscription key the requests must carry, or None.
        requests: per collection, how many tokens were handed out.
    """

    def __init__(self, signature: str = "glacierflow-test-signature") -> None:
        self.signature = signature
        self.lifetime = timedelta(hours=1)
        self.required_key: str | None = None
        self.requests: Counter = Counter()
        self.keys_seen: dict[str, int] = {}
        super().__init__(_TokenHandler)

    @property
    def signing_url(self) -> str:
        """The token endpoint template, ``{collection}`` to be filled in."""
        return f"{self.url}{TOKEN_PATH}{{collection}}"

    def token(self, expiry: datetime) -> str:
        """The SAS query string handed out (its ``se`` is the expiry, as Azure's are)."""
        return urllib.parse.urlencode({"st": "2021-01-01T00:00:00Z", "se": expiry.strftime("%Y-%m-%dT%H:%M:%SZ"),
                                       "sp": "rl", "sv": "2021-06-08", "sr": "c", "sig": self.signature})


class _TokenHandler(QuietHandler):
    def do_GET(self) -> None:  # noqa: N802 (http.server's name)
        owner: SasTokenServer = self.server.owner  # type: ignore[attr-defined]
        if not self.path.startswith(TOKEN_PATH):
            self._json(404, {"detail": "Not found"})
            return
        collection = self.path[len(TOKEN_PATH):].split("?")[0]
        key = self.headers.get("Ocp-Apim-Subscription-Key")
        if owner.required_key is not None and key != owner.required_key:
            self._json(401, {"detail": "Access denied due to missing or invalid subscription key."})
            return
        expiry = datetime.now(timezone.utc).replace(microsecond=0) + owner.lifetime
        with owner.lock:
            owner.requests[collection] += 1
        self._json(200, {"msft:expiry": expiry.strftime("%Y-%m-%dT%H:%M:%SZ"), "token": owner.token(expiry)})

    def _json(self, status: int, payload: dict) -> None:
        body = json.dumps(payload).encode("utf-8")
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
