"""A threaded HTTP server on 127.0.0.1 at a port the OS chooses, run in a daemon thread."""
from __future__ import annotations

import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class QuietHandler(BaseHTTPRequestHandler):
    """A request handler that logs nothing and speaks HTTP/1.1 (keep-alive, as GDAL and urllib expect)."""

    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: object) -> None:  # the base class's signature
        pass


class LocalServer:
    """Serves ``handler`` on 127.0.0.1; ``url`` is its base address, :meth:`stop` shuts it down.

    The handler reaches the owning server object as ``self.server.owner``.
    """

    def __init__(self, handler: type[BaseHTTPRequestHandler]) -> None:
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.httpd.daemon_threads = True
        self.httpd.owner = self  # type: ignore[attr-defined]
        self.port = self.httpd.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self.lock = threading.Lock()
        self._thread = threading.Thread(target=self.httpd.serve_forever, name=type(self).__name__, daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop serving and close the socket."""
        self.httpd.shutdown()
        self.httpd.server_close()
        self._thread.join(timeout=5)


def free_port() -> int:
    """A port the OS reports free on 127.0.0.1 (for servers that cannot report the port they bound)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def closed_port() -> int:
    """A port nothing listens on (bound, then released): connecting to it is refused."""
    return free_port()
