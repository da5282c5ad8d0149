"""Atomic writes: every file a job produces appears complete or not at all.

A result is written to a hidden temporary file beside its final path (same folder, so the rename is
atomic on every file system) and renamed into place only when complete. Temporary names carry
:data:`TEMPORARY_MARK`, so the leftovers of a killed run can be recognised and removed by the next
run to the same output (:func:`remove_stale_temporaries`). Replacing a raster also removes its old
GDAL ``.aux.xml`` sidecar, whose statistics would describe the previous file.
"""
from __future__ import annotations

import contextlib
import glob
import os
import uuid
from collections.abc import Iterator

from ..errors import GlacierFlowError

TEMPORARY_MARK = ".gftmp"  # in every temporary file name: ".<name>.<token>.gftmp<suffix>"
# Temporaries this process handed out and has not yet committed or removed: never "stale", even when a
# second writer to the same output (a corrected product written from its uncorrected one) looks for
# leftovers of killed runs while the first is still in use.
_LIVE: set[str] = set()


def output_folder(path: str, create: bool = False) -> str:
    """The folder ``path`` will be written in; created when ``create``, else it must exist."""
    folder = os.path.dirname(os.path.abspath(path)) or "."
    if create:
        try:
            os.makedirs(folder, exist_ok=True)
        except OSError as error:
            raise GlacierFlowError(f"Cannot create the folder '{folder}' ({error.strerror}): choose another "
                                   "output folder.") from None
    if not os.path.isdir(folder):
        raise GlacierFlowError(f"Output folder '{folder}' does not exist: create it or choose another.")
    return folder


def temporary_path(path: str, suffix: str = "", create_folder: bool = False) -> str:
    """A hidden, unique temporary path beside ``path`` (``suffix`` keeps GDAL's format guess, e.g. ".tif")."""
    folder = output_folder(path, create_folder)
    token = uuid.uuid4().hex[:8]
    temporary = os.path.join(folder, f".{os.path.basename(path)}.{token}{TEMPORARY_MARK}{suffix}")
    _LIVE.add(temporary)
    return temporary


def remove_quietly(path: str) -> None:
    """Delete ``path`` and its GDAL ``.aux.xml`` sidecar if they exist (clean-up after a failed write)."""
    _LIVE.discard(path)
    for candidate in (path, path + ".aux.xml"):
        with contextlib.suppress(FileNotFoundError):
            os.remove(candidate)


def commit(temporary: str, path: str) -> str:
    """Move a complete ``temporary`` file onto ``path`` (atomically) and drop ``path``'s stale sidecar."""
    os.replace(temporary, path)
    _LIVE.discard(temporary)
    with contextlib.suppress(FileNotFoundError):
        os.remove(path + ".aux.xml")
    with contextlib.suppress(FileNotFoundError):
        os.remove(temporary + ".aux.xml")
    return path


@contextlib.contextmanager
def atomic_path(path: str, suffix: str = "", create_folder: bool = False) -> Iterator[str]:
    """Yield a temporary path to write; on success it replaces ``path``, on any error (or a cancel) it
    is removed and ``path`` is left as it was."""
    temporary = temporary_path(path, suffix, create_folder)
    try:
        yield temporary
        if not os.path.exists(temporary):
            raise GlacierFlowError(f"Nothing was written for '{path}'.")
        commit(temporary, path)
    except BaseException:
        remove_quietly(temporary)
        raise


def write_text(path: str, text: str, create_folder: bool = False) -> str:
    """Write ``text`` (UTF-8) to ``path`` atomically; returns ``path``."""
    with atomic_path(path, create_folder=create_folder) as temporary, \
            open(temporary, "w", encoding="utf-8", newline="") as handle:
        handle.write(text)
    return path


def write_bytes(path: str, data: bytes, create_folder: bool = False) -> str:
    """Write ``data`` to ``path`` atomically, flushed to disk before the rename; returns ``path``."""
    with atomic_path(path, create_folder=create_folder) as temporary, open(temporary, "wb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())
    return path


def stale_temporaries(path: str) -> list[str]:
    """Temporary files a killed run left beside ``path`` (see :data:`TEMPORARY_MARK`)."""
    folder = os.path.dirname(os.path.abspath(path)) or "."
    pattern = os.path.join(glob.escape(folder), f".{glob.escape(os.path.basename(path))}.*{TEMPORARY_MARK}*")
    return sorted(found for found in glob.glob(pattern) if not _in_use(found))


def _in_use(found: str) -> bool:
    """Whether ``found`` is (or sits beside, like its ``.ovr.tmp``) a temporary this process still uses."""
    return any(found.startswith(live) for live in list(_LIVE))


def remove_stale_temporaries(path: str) -> list[str]:
    """Remove what :func:`stale_temporaries` finds; returns the removed paths."""
    removed = stale_temporaries(path)
    for leftover in removed:
        remove_quietly(leftover)
    return removed


def stale_temporaries_in(folder: str) -> list[str]:
    """Temporary files a killed run left anywhere directly in ``folder`` (a job's work or report folder)."""
    if not os.path.isdir(folder):
        return []
    found = glob.glob(os.path.join(glob.escape(folder), f".*{TEMPORARY_MARK}*"))
    return sorted(path for path in found if not _in_use(os.path.abspath(path)))


def remove_stale_temporaries_in(folder: str) -> list[str]:
    """Remove what :func:`stale_temporaries_in` finds (hidden scratch folders too); returns the removed paths."""
    import shutil

    removed = stale_temporaries_in(folder)
    for leftover in removed:
        if os.path.isdir(leftover) and not os.path.islink(leftover):
            shutil.rmtree(leftover, ignore_errors=True)
        else:
            remove_quietly(leftover)
    return removed
