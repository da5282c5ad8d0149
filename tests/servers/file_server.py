"""Static files over HTTP with Range requests, request/byte counting, an optional required token and faults.

It answers like a cloud object store does for Cloud Optimized GeoTIFFs: HEAD and GET, ``Accept-Ranges:
bytes``, ``206 Partial Content`` for ``Range: bytes=a-b`` (also ``a-``, ``-n`` and several ranges as
``multipart/byteranges``), 416 for a range past the end. With :attr:`FileServer.required_query` set,
every request for a file under :attr:`FileServer.protected_prefix` must carry those query parameters (as a
signed Planetary Computer URL does) or gets 403.
"""
from __future__ import annotations

import os
import re
import urllib.parse
from collections import Counter

from .base import LocalServer, QuietHandler

Range = tuple[int, int]  # first and last byte, inclusive


class FileServer(LocalServer):
    """Serves the files under ``root``.

    Attributes:
        required_query: query parameters every request under ``protected_prefix`` must carry (else 403),
            e.g. {"sig": "..."}.
        protected_prefix: the relative path prefix the token is required for ("" = every file).
        truncate: paths (relative, "/" separated) whose GET bodies stop half way, the connection then closed.
        fail_next: path -> how many of its next requests are answered 503 Service Unavailable.
        requests: per path, how many GET requests were answered.
        bytes_sent: per path, how many body bytes were sent.
        log: (method, path, Range header, status) of every request.
    """

    def __init__(self, root: str) -> None:
        self.root = os.path.abspath(root)
        self.required_query: dict[str, str] = {}
        self.protected_prefix = ""
        self.truncate: set[str] = set()
        self.fail_next: Counter = Counter()
        self.requests: Counter = Counter()
        self.bytes_sent: Counter = Counter()
        self.log: list[tuple[str, str, str, int]] = []
        super().__init__(_FileHandler)

    def href(self, relative: str) -> str:
        """The URL of the file at ``relative`` (under ``root``)."""
        return f"{self.url}/{urllib.parse.quote(relative)}"

    def reset_counts(self) -> None:
        """Forget the counted requests and bytes."""
        with self.lock:
            self.requests.clear()
            self.bytes_sent.clear()
            self.log.clear()

    def total_requests(self, prefix: str = "") -> int:
        """GET requests answered for paths starting with ``prefix``."""
        with self.lock:
            return sum(count for path, count in self.requests.items() if path.startswith(prefix))

    def record(self, method: str, path: str, byte_range: str, status: int, sent: int) -> None:
        with self.lock:
            self.log.append((method, path, byte_range, status))
            if method == "GET":
                self.requests[path] += 1
                self.bytes_sent[path] += sent


def parse_ranges(header: str, size: int) -> list[Range] | None:
    """Byte ranges of a ``Range: bytes=...`` header clipped to ``size``; None when unsatisfiable."""
    match = re.fullmatch(r"\s*bytes\s*=\s*(.+)", header)
    if not match:
        return None
    ranges = []
    for part in match.group(1).split(","):
        first, _, last = part.strip().partition("-")
        if first:
            start, end = int(first), (int(last) if last else size - 1)
        else:
            start, end = max(0, size - int(last)), size - 1
        end = min(end, size - 1)
        if start > end or start >= size:
            continue
        ranges.append((start, end))
    return ranges or None


class _FileHandler(QuietHandler):
    """Each request is recorded before its body is written, so a client that has its answer sees it counted."""

    def do_HEAD(self) -> None:  # noqa: N802 (http.server's name)
        self._answer(body=False)

    def do_GET(self) -> None:  # noqa: N802
        self._answer(body=True)

    def _answer(self, body: bool) -> None:
        owner: FileServer = self.server.owner  # type: ignore[attr-defined]
        parsed = urllib.parse.urlsplit(self.path)
        relative = urllib.parse.unquote(parsed.path).lstrip("/")
        query = dict(urllib.parse.parse_qsl(parsed.query))
        method = "GET" if body else "HEAD"
        byte_range = self.headers.get("Range", "")
        with owner.lock:
            failing = owner.fail_next[relative] > 0
            if failing:
                owner.fail_next[relative] -= 1
        if failing:
            owner.record(method, relative, byte_range, 503, 0)
            self._plain(503, b"ServerBusy: injected fault", body)
            return
        protected = relative.startswith(owner.protected_prefix)
        if protected and any(query.get(key) != value for key, value in owner.required_query.items()):
            owner.record(method, relative, byte_range, 403, 0)
            self._plain(403, b"AuthenticationFailed: the URL is not signed", body)
            return
        path = os.path.abspath(os.path.join(owner.root, relative))
        if not path.startswith(owner.root + os.sep) or not os.path.isfile(path):
            owner.record(method, relative, byte_range, 404, 0)
            self._plain(404, b"Not found", body)
            return
        with open(path, "rb") as handle:
            data = handle.read()
        if not byte_range:
            self._send(200, data, {"Content-Type": "image/tiff"}, body, relative, byte_range)
            return
        ranges = parse_ranges(byte_range, len(data))
        if ranges is None:
            owner.record(method, relative, byte_range, 416, 0)
            self._plain(416, b"Range not satisfiable", body, {"Content-Range": f"bytes */{len(data)}"})
            return
        if len(ranges) == 1:
            start, end = ranges[0]
            headers = {"Content-Type": "image/tiff", "Content-Range": f"bytes {start}-{end}/{len(data)}"}
            self._send(206, data[start:end + 1], headers, body, relative, byte_range)
        else:
            payload, boundary = _multipart(data, ranges)
            self._send(206, payload, {"Content-Type": f"multipart/byteranges; boundary={boundary}"},
                       body, relative, byte_range)

    def _send(self, status: int, payload: bytes, headers: dict[str, str], body: bool, relative: str,
              byte_range: str) -> None:
        owner: FileServer = self.server.owner  # type: ignore[attr-defined]
        cut = body and relative in owner.truncate
        written = (len(payload) // 2 if cut else len(payload)) if body else 0
        owner.record("GET" if body else "HEAD", relative, byte_range, status, written)
        self.send_response(status)
        self.send_header("Accept-Ranges", "bytes")
        self.send_header("Content-Length", str(len(payload)))
        for key, value in headers.items():
            self.send_header(key, value)
        self.end_headers()
        if body:
            self.wfile.write(payload[:written])
            self.wfile.flush()
        if cut:
            self.close_connection = True  # the client is left short of Content-Length: a broken download

    def _plain(self, status: int, text: bytes, body: bool, headers: dict[str, str] | None = None) -> None:
        self.send_response(status)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(text)))
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.end_headers()
        if body:
            self.wfile.write(text)


def _multipart(data: bytes, ranges: list[Range]) -> tuple[bytes, str]:
    boundary = "glacierflowrangeboundary"
    parts = []
    for start, end in ranges:
        parts.append(f"--{boundary}\r\nContent-Type: image/tiff\r\nContent-Range: bytes {start}-{end}/{len(data)}"
                     f"\r\n\r\n".encode("ascii") + data[start:end + 1] + b"\r\n")
    return b"".join(parts) + f"--{boundary}--\r\n".encode("ascii"), boundary
