"""An HTTP proxy in front of a real server that can answer with faults instead: error statuses, a slow answer.

The STAC API server itself (rustac) is real; the proxy forwards every request to it unchanged unless a
fault is queued, so the client's retries, timeouts and error messages meet real HTTP failures.
"""
from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from collections import deque

from .base import LocalServer, QuietHandler

Fault = tuple[int, float]  # (HTTP status, 0 = forward; seconds to wait before answering)


class FaultProxy(LocalServer):
    """Forwards to ``target`` (a base URL).

    Attributes:
        faults: queued (status, delay s) answers used one per request before forwarding resumes; status 0
            forwards after the delay.
        always: (status, delay s) used for every request while set (persistent faults), or None.
        required_header: (name, value) every request must carry, else 401, or None.
        log: (method, path, JSON body or None) of every request that reached the proxy.
    """

    def __init__(self, target: str) -> None:
        self.target = target.rstrip("/")
        self.faults: deque[Fault] = deque()
        self.always: Fault | None = None
        self.required_header: tuple[str, str] | None = None
        self.log: list[tuple[str, str, dict | None]] = []
        super().__init__(_ProxyHandler)

    def reset(self) -> None:
        """No faults, no required header, an empty log."""
        with self.lock:
            self.faults.clear()
            self.always = None
            self.required_header = None
            self.log.clear()

    def next_fault(self) -> Fault | None:
        with self.lock:
            if self.faults:
                return self.faults.popleft()
            return self.always

    def searches(self) -> list[tuple[str, str, dict | None]]:
        """The logged requests to ``/search``."""
        with self.lock:
            return [entry for entry in self.log if entry[1].split("?")[0].rstrip("/").endswith("/search")]


class _ProxyHandler(QuietHandler):
    def do_GET(self) -> None:  # noqa: N802 (http.server's name)
        self._handle("GET")

    def do_POST(self) -> None:  # noqa: N802
        self._handle("POST")

    def _handle(self, method: str) -> None:
        owner: FaultProxy = self.server.owner  # type: ignore[attr-defined]
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else None
        with owner.lock:
            owner.log.append((method, self.path, json.loads(body) if body else None))
        if owner.required_header is not None:
            name, value = owner.required_header
            if self.headers.get(name) != value:
                self._reply(401, b'{"code":"Unauthorized","description":"missing credentials"}',
                            {"Content-Type": "application/json"})
                return
        fault = owner.next_fault()
        if fault is not None:
            status, delay = fault
            time.sleep(delay)
            if status:
                self._reply(status, b'{"code":"ServiceUnavailable","description":"injected fault"}',
                            {"Content-Type": "application/json", "Retry-After": "0"})
                return
        self._forward(owner, method, body)

    def _forward(self, owner: FaultProxy, method: str, body: bytes | None) -> None:
        headers = {"Content-Type": self.headers.get("Content-Type", "application/json")}
        request = urllib.request.Request(owner.target + self.path, data=body, method=method, headers=headers)
        try:
            with urllib.request.urlopen(request, timeout=30) as answer:
                status, payload, answer_headers = answer.status, answer.read(), dict(answer.headers)
        except urllib.error.HTTPError as error:
            status, payload, answer_headers = error.code, error.read(), dict(error.headers)
        self._reply(status, payload, {"Content-Type": answer_headers.get("Content-Type", "application/json")})

    def _reply(self, status: int, payload: bytes, headers: dict[str, str]) -> None:
        try:
            self.send_response(status)
            for key, value in headers.items():
                self.send_header(key, value)
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client gave up (its timeout) before the slow answer came
