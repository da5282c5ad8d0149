"""The one interface every imagery source implements, and what they share.

A source answers :meth:`ImageSource.search` with :class:`Scene` records
(sorted by time) and :meth:`ImageSource.fetch` with one band of a scene warped
onto a job :class:`~..grid.Grid` as float32 with NaN for no data. Fetched
arrays are kept in a :class:`SceneCache` folder, written atomically (a
temporary file renamed into place), so a rerun reads nothing again and an
interrupted fetch leaves no corrupt entry.
"""
from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import re
from dataclasses import dataclass, field
from datetime import datetime, time, timedelta, timezone
from typing import Any, Callable, Protocol

import numpy as np

from ..errors import GlacierFlowError
from ..geo.area import Area
from ..geo.grid import Grid
from ..io.atomic import remove_quietly, write_bytes, write_text

Bounds = tuple[float, float, float, float]
DEFAULT_MONTHS = "6-10"  # June to October: the papers' melt-season window


@dataclass(frozen=True)
class Scene:
    """One image a source can deliver.

    Attributes:
        id: the source's identifier (a product name, an item id, a file stem).
        time: acquisition time, timezone-aware UTC.
        cloud_cover: scene cloud cover in percent (0-100), or None when unknown.
        source: name of the source that found it (``local_folder``, ...).
        href: where fetch reads it: a file path, URL or asset reference.
        band: 1-based band index in ``href``.
        footprint: (xmin, ymin, xmax, ymax) in ``footprint_crs_wkt``, or None when unknown.
        footprint_crs_wkt: CRS of ``footprint`` (WKT), or "".
        time_source: where ``time`` was read (for the log).
        version: what identifies the content (file size and mtime, an ETag, ...); part of the cache key.
        properties: anything else the source wants to keep (strings).
        valid_fraction: share (0-1) of the search polygon with usable pixels (not cloud, not fill),
            or None when the source cannot tell at search time.
        bands: the band names :meth:`ImageSource.fetch` accepts for this scene besides the default ""
            (for example ``("nir",)`` or ``("green", "swir1")``).
    """

    id: str
    time: datetime
    cloud_cover: float | None
    source: str
    href: str
    band: int = 1
    footprint: Bounds | None = None
    footprint_crs_wkt: str = ""
    time_source: str = ""
    version: str = ""
    properties: dict[str, str] = field(default_factory=dict, compare=False, hash=False)
    valid_fraction: float | None = None
    bands: tuple[str, ...] = ()


class ImageSource(Protocol):
    """What every imagery source offers."""

    name: str

    def search(self, area: Area | None, start: datetime | None, end: datetime | None,
               months: set[int] | None = None, max_cloud: float | None = None) -> list[Scene]:
        """Scenes touching ``area`` acquired in [start, end] (UTC) in ``months`` (1..12) with cloud
        cover at most ``max_cloud`` percent; sorted by time. Raises GlacierFlowError when none."""
        ...

    def fetch(self, scene: Scene, grid: Grid, band: str = "") -> np.ndarray:
        """The scene's band on ``grid`` as float32 (rows, cols), NaN where no data, cloud or fill; cached on disk.

        ``band`` is a common band name from ``scene.bands`` (``nir``, ``green``, ``swir1``): surface
        reflectance (0-1) where the source delivers it; "" is the source's default band (the one
        velocity uses: Sentinel-2 B8, the local file's band)."""
        ...


def default_cache_dir() -> str:
    """Where fetched arrays are kept: the plugin setting (:func:`configure_cache`), ``$GLACIERFLOW_CACHE``, or
    ``~/.cache/glacierflow/imagery``."""
    configured = CACHE_SETTINGS["folder"] or os.environ.get("GLACIERFLOW_CACHE")
    if configured:
        return configured
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "glacierflow", "imagery")


DEFAULT_CACHE_LIMIT_BYTES = 20 * 1024 ** 3  # 20 GB: a season of Sentinel-2 scenes over a large glacier
CACHE_SETTINGS: dict[str, Any] = {"folder": "", "max_bytes": DEFAULT_CACHE_LIMIT_BYTES}


def configure_cache(folder: str = "", max_bytes: int | None = None) -> None:
    """The scene cache's folder ("" = the default) and size limit (bytes) for the caches made from now on (the
    plugin's settings, applied by every Processing job)."""
    CACHE_SETTINGS["folder"] = folder or ""
    CACHE_SETTINGS["max_bytes"] = DEFAULT_CACHE_LIMIT_BYTES if max_bytes is None else int(max_bytes)


class SceneCache:
    """A folder of fetched arrays (``.npy``), one per (scene, band, version, grid), at most ``max_bytes`` in all:
    past the limit the least recently used entries are evicted.

    Entries are written to a hidden temporary file and renamed into place,
    so an entry either exists complete or not at all.
    """

    def __init__(self, folder: str | None = None, max_bytes: int | None = None) -> None:
        self.folder = folder or default_cache_dir()
        self.max_bytes = int(CACHE_SETTINGS["max_bytes"] if max_bytes is None else max_bytes)
        self.store = True  # False: fetched arrays are not kept (a download writes its own copy)

    @staticmethod
    def key(scene: Scene, grid: Grid, band: str = "") -> str:
        """A file-name-safe key naming the scene (readably) and hashing everything that matters."""
        identity = json.dumps([scene.source, scene.id, scene.href, scene.band, scene.version,
                               grid.crs_wkt, list(grid.transform), grid.width, grid.height]
                              + ([band] if band else []))
        digest = hashlib.sha256(identity.encode("utf-8")).hexdigest()[:20]
        readable = re.sub(r"[^A-Za-z0-9._-]+", "_", scene.id)[:80]
        return f"{readable}_{digest}"

    def path(self, scene: Scene, grid: Grid, band: str = "") -> str:
        """The entry's file path (it may not exist)."""
        return os.path.join(self.folder, self.key(scene, grid, band) + ".npy")

    def get(self, scene: Scene, grid: Grid, band: str = "") -> np.ndarray | None:
        """The cached array, or None (an unreadable or wrong-shaped entry is removed)."""
        path = self.path(scene, grid, band)
        if not os.path.exists(path):
            return None
        try:
            array = np.load(path, allow_pickle=False)
        except (OSError, ValueError, EOFError):
            array = None
        if array is None or array.shape != grid.shape or array.dtype != np.float32:
            remove_quietly(path)
            return None
        with contextlib.suppress(OSError):
            os.utime(path)  # recently used: evicted last
        return array

    def put(self, scene: Scene, grid: Grid, array: np.ndarray, band: str = "") -> str:
        """Store ``array`` atomically; returns the entry's path."""
        os.makedirs(self.folder, exist_ok=True)
        path = self.path(scene, grid, band)
        buffer = io.BytesIO()
        np.save(buffer, np.ascontiguousarray(array, dtype=np.float32), allow_pickle=False)
        written = write_bytes(path, buffer.getvalue())
        self.evict(keep=written)
        return written

    def evict(self, keep: str = "") -> list[str]:
        """Remove the least recently used entries until the cache holds at most ``max_bytes``; ``keep`` (the
        entry just written) stays. Returns the removed paths."""
        entries = []
        for entry in os.scandir(self.folder) if os.path.isdir(self.folder) else ():
            if entry.is_file() and entry.name.endswith(".npy") and not entry.name.startswith("."):
                info = entry.stat()
                entries.append((info.st_mtime, info.st_size, entry.path))
        total = sum(size for _, size, _ in entries)
        removed = []
        for _, size, path in sorted(entries):
            if total <= self.max_bytes:
                break
            if os.path.abspath(path) == os.path.abspath(keep):
                continue
            remove_quietly(path)
            total -= size
            removed.append(path)
        return removed

    def valid_fraction(self, scene: Scene, area: Area, resolution_m: float, compute: Callable[[], float]) -> float:
        """``compute()`` (a scene's usable share of ``area``, 0-1) once per scene version, area and mask
        resolution; later searches read it back from a small JSON entry instead of the service."""
        identity = json.dumps([scene.source, scene.id, scene.href, scene.version, str(area.geometry), area.crs_wkt,
                               float(resolution_m)], sort_keys=True, default=str)
        folder = os.path.join(self.folder, "valid_fraction")
        path = os.path.join(folder, hashlib.sha256(identity.encode("utf-8")).hexdigest()[:24] + ".json")
        try:
            with open(path, encoding="utf-8") as handle:
                return float(json.load(handle)["valid_fraction"])
        except (OSError, ValueError, KeyError, TypeError):
            pass
        value = float(compute())
        try:
            write_text(path, json.dumps({"scene": scene.id, "valid_fraction": value}), create_folder=True)
        except (OSError, GlacierFlowError):
            pass   # a read-only cache only costs a re-read next time
        return value

    def fetch(self, scene: Scene, grid: Grid, read: Callable[[], np.ndarray], band: str = "") -> np.ndarray:
        """The cached array, or ``read()`` stored then returned."""
        cached = self.get(scene, grid, band)
        if cached is not None:
            return cached
        array = np.asarray(read(), dtype=np.float32)
        if array.shape != grid.shape:
            raise GlacierFlowError(f"Scene '{scene.id}' came back as {array.shape}, not the grid's {grid.shape}.")
        if self.store:
            self.put(scene, grid, array, band)
        return array


def parse_months(text: str | None) -> set[int] | None:
    """Months (1..12) from ``"6-10"``, ``"6,7,8"`` or ``"11-2"`` (wraps over new year); empty: None (all)."""
    if text is None or not str(text).strip():
        return None
    months: set[int] = set()
    for part in str(text).replace(";", ",").split(","):
        part = part.strip()
        if not part:
            continue
        match = re.fullmatch(r"(\d{1,2})\s*-\s*(\d{1,2})", part)
        try:
            if match:
                first, last = int(match.group(1)), int(match.group(2))
                _check_month(first, text)
                _check_month(last, text)
                span = (last - first) % 12
                months.update((first - 1 + step) % 12 + 1 for step in range(span + 1))
            else:
                month = int(part)
                _check_month(month, text)
                months.add(month)
        except ValueError:
            raise GlacierFlowError(f"Months '{text}' not understood: write a range like 6-10 or a list "
                                   "like 6,7,8 (1 = January).") from None
    return months or None


def _check_month(month: int, text: Any) -> None:
    if not 1 <= month <= 12:
        raise GlacierFlowError(f"Months '{text}': {month} is not a month (1 = January ... 12 = December).")


def parse_date_bound(text: str | None, end: bool = False) -> datetime | None:
    """A search bound from ISO text (UTC when naive); a bare end date means the end of that day."""
    from ..io.timestamps import parse_datetime

    if text is None or not str(text).strip():
        return None
    value = parse_datetime(str(text))
    if end and re.fullmatch(r"\s*\d{4}-\d{2}-\d{2}\s*", str(text)):
        value = datetime.combine(value.date(), time(0), tzinfo=timezone.utc) + timedelta(days=1, microseconds=-1)
    return value


def check_range(start: datetime | None, end: datetime | None) -> None:
    """Fail clearly on naive datetimes or a start after the end."""
    for name, value in (("start", start), ("end", end)):
        if value is not None and value.tzinfo is None:
            raise GlacierFlowError(f"The {name} date has no time zone: give it in UTC.")
    if start is not None and end is not None and start > end:
        raise GlacierFlowError(f"The start date {start:%Y-%m-%d} is after the end date {end:%Y-%m-%d}: swap them.")


def scene_matches(scene: Scene, start: datetime | None, end: datetime | None,
                  months: set[int] | None, max_cloud: float | None) -> str | None:
    """None when ``scene`` passes the time, month and cloud filters, else the filter it fails.

    A scene whose cloud cover is unknown passes ``max_cloud`` (it cannot be judged).
    """
    if start is not None and scene.time < start:
        return "before the start date"
    if end is not None and scene.time > end:
        return "after the end date"
    if months and scene.time.month not in months:
        return "outside the months"
    if max_cloud is not None and scene.cloud_cover is not None and scene.cloud_cover > max_cloud:
        return "too cloudy"
    return None
