"""Clean kills: SIGINT (Ctrl+C) and SIGTERM stop a headless job at its next cancel check.

A job that runs in the main thread (``qgis_process``, a script calling ``processing.run``) turns the first
SIGINT or SIGTERM into a cancel: the job stops between tiles or scenes, its atomic writers remove their
temporary files, and the caller gets "cancelled, no output written". A second signal acts as it did
before the job (Python's KeyboardInterrupt, or termination), for a user who will not wait. In other
threads (the QGIS desktop runs algorithms in a task) signals cannot be caught and nothing changes.
"""
from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Callable, Iterator
from typing import Any

STOP_SIGNALS = tuple(getattr(signal, name) for name in ("SIGINT", "SIGTERM") if hasattr(signal, name))


class SignalWatch:
    """What :func:`cancel_on_signals` saw: the name of the first stop signal, or None."""

    def __init__(self) -> None:
        self.received: str | None = None


@contextlib.contextmanager
def cancel_on_signals(cancel: Callable[[], None]) -> Iterator[SignalWatch]:
    """While inside, the first SIGINT/SIGTERM calls ``cancel()`` (and is recorded in the yielded watch);
    the previous handlers come back at once for a second signal, and in any case on leaving."""
    watch = SignalWatch()
    if threading.current_thread() is not threading.main_thread():
        yield watch
        return
    previous: dict[int, Any] = {}

    def restore() -> None:
        for number, handler in previous.items():
            with contextlib.suppress(ValueError, OSError):
                signal.signal(number, handler)

    def on_signal(number: int, _frame: Any) -> None:
        watch.received = signal.Signals(number).name
        restore()
        cancel()

    try:
        for number in STOP_SIGNALS:
            previous[number] = signal.getsignal(number)
            signal.signal(number, on_signal)
    except (ValueError, OSError):  # an embedding that forbids handlers: leave the signals alone
        restore()
        previous.clear()
    try:
        yield watch
    finally:
        restore()
