"""The rustac STAC API server (``rustac serve``, in-memory backend) on 127.0.0.1, started on item files.

rustac answers ``intersects``, ``bbox``, ``datetime``, ``collections``, ``ids`` and ``limit`` with paging
through ``next`` links; its landing page declares no ``query``, ``filter`` or ``sort`` conformance.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
import urllib.request

from .base import free_port


def rustac_executable() -> str | None:
    """The ``rustac`` command beside this Python (the venv) or on PATH, or None when not installed."""
    beside = os.path.join(os.path.dirname(sys.executable), "rustac")
    if os.access(beside, os.X_OK):
        return beside
    return shutil.which("rustac")


class RustacServer:
    """``rustac serve`` on ``item_files``; its links name ``public_url`` when given (a proxy in front of it)."""

    def __init__(self, executable: str, item_files: list[str], log_path: str) -> None:
        self.executable = executable
        self.item_files = item_files
        self.log_path = log_path
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.process: subprocess.Popen | None = None

    def start(self, public_url: str = "", wait_s: float = 20.0) -> RustacServer:
        """Start the server and wait until its landing page answers."""
        address = ["--addr", public_url, "--bind", f"127.0.0.1:{self.port}"] if public_url else \
            ["--addr", f"127.0.0.1:{self.port}"]
        with open(self.log_path, "wb") as log:
            self.process = subprocess.Popen([self.executable, "serve", *address, "--create-collections",
                                             *self.item_files], stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + wait_s
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                break
            try:
                with urllib.request.urlopen(self.url + "/", timeout=1):
                    return self
            except OSError:
                time.sleep(0.05)
        self.stop()
        with open(self.log_path, encoding="utf-8", errors="replace") as log:
            raise RuntimeError(f"rustac serve did not start on {self.url}: {log.read()[-2000:]}")

    def stop(self) -> None:
        """Stop the server process (the one this object started)."""
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=5)
        self.process = None
