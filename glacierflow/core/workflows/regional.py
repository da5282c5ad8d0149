"""Regional velocity: many glaciers and many pairs with the same core, in this process or on Dask distributed.

A regional job takes glacier outlines (an RGI layer, or any polygons), scenes (a local folder, or a remote
source downloaded once per job area), a season and a pairing rule (as :mod:`.annual`) and an engine:

1. **Job areas**: glaciers whose envelopes lie within ``group_distance_m`` of each other are grouped, so a
   scene is read (or fetched) once for all the glaciers it covers. Each area gets the annual chain's pairs
   (:func:`.annual.find_pairs`) and one job grid (:func:`.annual.job_grid`) over its glaciers.
2. **Tasks**: one per (area, pair) not already complete (:func:`.annual.run_pairs`, atomic writes,
   reused on a rerun; one core each on Dask), which also measures its product (:mod:`.pair_table`: trusted
   fraction, stable-ground offset and spread); one screening per area (which pairs enter the stack); one
   stack per glacier on its own window of the area grid (:func:`..velocity.stacking.run_stack_job`, each
   pair's stable-ground offset removed first).
   Tasks return paths and figures only: no image data goes through the scheduler.
3. **Outputs**: ``<output>/<glacier id>/`` with ``velocity.tif`` (+ ``.qml``), ``outline.geojson``,
   ``pairs.csv``, ``stable_ground.json`` and ``summary.json`` (written last: a glacier is complete when it
   is there), the pair products under ``<output>/_areas/<area>/pairs``, and ``index.gpkg``: one row per
   glacier with its outline, status, pair count, coverage, median and 95th-percentile speed, median
   uncertainty, stable-ground offset and the product's path.

**Where it runs**: ``workers == 0`` with no ``scheduler``: in this process, one task after the other (the
reference path). Otherwise on Dask distributed: an empty ``scheduler`` starts a ``LocalCluster`` of
``workers`` processes (one thread each, ``memory_per_worker``) on this machine; an address
(``tcp://host:8786``) uses a running cluster (``dask scheduler`` + ``dask worker``, dask-jobqueue on
SLURM, Kubernetes). Workers need only ``requirements/worker.txt`` and this package on their path; no QGIS.
A task whose worker dies is run again elsewhere (Dask reschedules it; ``retries`` more for errors); a
rerun skips every complete pair, screening and glacier; a cancel cancels the futures and leaves complete
glaciers intact. Products are identical whichever way they are computed (same functions, same inputs).
"""
from __future__ import annotations

import json
import math
import os
import re
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from ..errors import GlacierFlowError
from ..feedback import Feedback, JobCancelled
from ..geo.area import Area
from ..geo.grid import Grid, Window
from ..imagery import ScenePair
from ..imagery.seasons import AUTO_MONTHS
from ..io.atomic import atomic_path, write_text
from ..velocity.flow import MOST_ACCURATE_ENGINE
from .annual import (
    AnnualJob,
    download_for_job,
    find_pairs,
    is_complete_product,
    is_local,
    job_grid,
    pair_product_name,
    run_pairs,
)
from .pair_table import PairRecord, measure_pair, screen_pairs, write_pair_table

AREAS_FOLDER = "_areas"
INDEX_NAME = "index.gpkg"
SUMMARY_NAME = "summary.json"
PRODUCT_NAME = "velocity.tif"
ID_FIELDS = ("RGIId", "rgi_id", "glac_id", "GLIMSId", "glacier_id", "id", "name")
CONNECT_TIMEOUT_S = 10
#: The environment of local workers: one thread per numerical library (as Dask's default), and no
#: MALLOC_TRIM_THRESHOLD_ (see :func:`connect`).
WORKER_ENVIRONMENT = {"OMP_NUM_THREADS": 1, "MKL_NUM_THREADS": 1, "OPENBLAS_NUM_THREADS": 1}


@dataclass
class RegionalJob:
    """What the user asked for (season, rule and scene settings as :class:`.annual.AnnualJob`).

    Attributes:
        outlines: glacier polygons (any CRS, any OGR format): one glacier per feature.
        output: the output folder (created): one folder per glacier, ``_areas`` and ``index.gpkg``.
        folder: the local folder of dated GeoTIFFs (``source`` ``local_folder``).
        id_field: the field naming each glacier; empty: the first of :data:`ID_FIELDS` present, else the FID.
        group_distance_m: glaciers closer than this (m, between envelopes) share a job area.
        margin_m: m around each glacier kept in its product (stable ground for the offset).
        min_area_km2: glaciers smaller than this are left out.
        scheduler: a Dask scheduler address (``tcp://host:8786``); empty: a LocalCluster (or this process
            with ``workers`` 0).
        workers: LocalCluster worker processes (0 with no scheduler: run here, no Dask).
        memory_per_worker: LocalCluster memory limit per worker (``"4GB"``).
        retries: extra tries for a task that raised (a dying worker's tasks are rescheduled anyway).
        connect_timeout_s: how long to try reaching ``scheduler`` (s).
    """

    outlines: str
    output: str
    folder: str = ""
    source: Any = "local_folder"
    source_settings: dict[str, Any] = field(default_factory=dict)
    year_a: int | None = None
    year_b: int | None = None
    months: str | None = AUTO_MONTHS
    rule: str = "cross_year"
    min_days: float = 5.0
    max_days: float = 40.0
    max_pairs_per_scene: int = 10
    season_start: str = ""
    season_end: str = ""
    max_cloud: float | None = None
    engine: str = MOST_ACCURATE_ENGINE
    pair_options: dict[str, Any] = field(default_factory=dict)
    id_field: str = ""
    group_distance_m: float = 5000.0
    margin_m: float = 300.0
    min_area_km2: float = 0.0
    scheduler: str = ""
    workers: int = 2
    memory_per_worker: str = "4GB"
    retries: int = 2
    connect_timeout_s: float = CONNECT_TIMEOUT_S


@dataclass
class Glacier:
    """One outline: its id, geometry (WKT) and CRS (WKT), area (km2)."""

    id: str
    wkt: str
    crs_wkt: str
    area_km2: float

    @property
    def folder_name(self) -> str:
        """The id made file-safe."""
        return re.sub(r"[^A-Za-z0-9._-]+", "_", self.id) or "glacier"


@dataclass
class JobArea:
    """Glaciers sharing scenes, pairs and a job grid."""

    id: str
    glaciers: list[Glacier]
    annual: AnnualJob | None = None
    pairs: list[ScenePair] = field(default_factory=list)
    grid: Grid | None = None
    status: str = ""


@dataclass
class RegionalResult:
    """What the run produced: the index, one row per glacier, and the task counts."""

    index: str
    rows: list[dict[str, Any]]
    tasks_run: int
    tasks_skipped: int
    seconds: float
    dashboard: str = ""


# --- outlines and job areas -------------------------------------------------------------------------------

def read_glaciers(path: str, id_field: str = "", min_area_km2: float = 0.0) -> list[Glacier]:
    """Every polygon feature of ``path`` as a :class:`Glacier` (area on the ellipsoid via a local UTM)."""
    from osgeo import ogr

    from ..geo.crs import to_lonlat, utm_crs_wkt

    dataset = ogr.Open(path)
    if dataset is None or dataset.GetLayerCount() == 0:
        raise GlacierFlowError(f"Cannot read the outlines '{path}': give a polygon layer (RGI shapefile, GeoPackage).")
    layer = dataset.GetLayer(0)
    reference = layer.GetSpatialRef()
    if reference is None:
        raise GlacierFlowError(f"The outlines '{path}' have no CRS: assign one and save them.")
    crs_wkt = reference.ExportToWkt()
    names = [layer.GetLayerDefn().GetFieldDefn(i).GetName() for i in range(layer.GetLayerDefn().GetFieldCount())]
    if id_field and id_field not in names:
        raise GlacierFlowError(f"The outlines have no field '{id_field}': choose one of {', '.join(names)}.")
    field_name = id_field or next((n for n in ID_FIELDS if n in names), "")
    glaciers, seen = [], set()
    for feature in layer:
        geometry = feature.GetGeometryRef()
        if geometry is None or geometry.IsEmpty() or "POLYGON" not in geometry.GetGeometryName():
            continue
        name = str(feature.GetField(field_name)) if field_name else f"glacier_{feature.GetFID()}"
        if name in seen:
            raise GlacierFlowError(f"Two outlines are named '{name}': give an id field with unique values.")
        seen.add(name)
        xmin, xmax, ymin, ymax = geometry.GetEnvelope()
        lon, lat = to_lonlat([(0.5 * (xmin + xmax), 0.5 * (ymin + ymax))], crs_wkt)[0]
        metric = geometry.Clone()
        metric.TransformTo(_reference(utm_crs_wkt(lon, lat)))
        area_km2 = metric.GetArea() / 1e6
        if area_km2 >= min_area_km2:
            glaciers.append(Glacier(name, geometry.ExportToWkt(), crs_wkt, area_km2))
    if not glaciers:
        raise GlacierFlowError(f"No glacier polygon of at least {min_area_km2:g} km2 in '{path}'.")
    return glaciers


def _reference(wkt: str) -> Any:
    from ..geo.crs import spatial_reference

    return spatial_reference(wkt)


def group_glaciers(glaciers: Sequence[Glacier], distance_m: float) -> list[JobArea]:
    """Job areas: glaciers whose envelopes (in a local UTM zone) are within ``distance_m`` m, transitively."""
    from ..geo.crs import to_lonlat, transform_bounds, utm_crs_wkt

    if not glaciers:
        return []
    first = glaciers[0]
    xmin, ymin, xmax, ymax = _envelope(first)
    lon, lat = to_lonlat([(0.5 * (xmin + xmax), 0.5 * (ymin + ymax))], first.crs_wkt)[0]
    metric = utm_crs_wkt(lon, lat)
    boxes = [transform_bounds(_envelope(g), g.crs_wkt, metric) for g in glaciers]
    parent = list(range(len(glaciers)))

    def root(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for i in range(len(boxes)):
        for j in range(i + 1, len(boxes)):
            gap_x = max(boxes[j][0] - boxes[i][2], boxes[i][0] - boxes[j][2], 0.0)
            gap_y = max(boxes[j][1] - boxes[i][3], boxes[i][1] - boxes[j][3], 0.0)
            if math.hypot(gap_x, gap_y) <= distance_m:
                parent[root(i)] = root(j)
    groups: dict[int, list[Glacier]] = {}
    for index, glacier in enumerate(glaciers):
        groups.setdefault(root(index), []).append(glacier)
    ordered = sorted(groups.values(), key=lambda members: members[0].id)
    return [JobArea(f"area_{number:03d}", members) for number, members in enumerate(ordered, start=1)]


def _envelope(glacier: Glacier) -> tuple[float, float, float, float]:
    from osgeo import ogr

    xmin, xmax, ymin, ymax = ogr.CreateGeometryFromWkt(glacier.wkt).GetEnvelope()
    return (xmin, ymin, xmax, ymax)


def write_outlines(glaciers: Sequence[Glacier], path: str) -> str:
    """The glaciers as GeoJSON in their CRS (field ``glacier_id``), written atomically; an identical file
    already there is kept as it is (a rerun rewrites nothing)."""
    from osgeo import ogr

    from ..io.atomic import commit, remove_quietly, temporary_path

    temporary = temporary_path(path, ".geojson", create_folder=True)
    try:
        dataset = ogr.GetDriverByName("GeoJSON").CreateDataSource(temporary)
        layer = dataset.CreateLayer("outlines", _reference(glaciers[0].crs_wkt), ogr.wkbMultiPolygon)
        layer.CreateField(ogr.FieldDefn("glacier_id", ogr.OFTString))
        for glacier in glaciers:
            feature = ogr.Feature(layer.GetLayerDefn())
            feature.SetField("glacier_id", glacier.id)
            feature.SetGeometry(ogr.CreateGeometryFromWkt(glacier.wkt))
            layer.CreateFeature(feature)
        dataset = None
        if _same_bytes(temporary, path):
            remove_quietly(temporary)
        else:
            commit(temporary, path)
    except BaseException:
        remove_quietly(temporary)
        raise
    return path


def _same_bytes(first: str, second: str) -> bool:
    if not os.path.exists(second):
        return False
    with open(first, "rb") as a, open(second, "rb") as b:
        return a.read() == b.read()


def _area_polygon(area: JobArea, margin_m: float) -> Area:
    """The union of the area's glacier envelopes grown by ``margin_m`` (in the outlines' CRS, grown in m
    through a local UTM zone)."""
    from ..geo.crs import to_lonlat, transform_bounds, utm_crs_wkt

    crs = area.glaciers[0].crs_wkt
    boxes = [_envelope(g) for g in area.glaciers]
    xmin, ymin = min(b[0] for b in boxes), min(b[1] for b in boxes)
    xmax, ymax = max(b[2] for b in boxes), max(b[3] for b in boxes)
    lon, lat = to_lonlat([(0.5 * (xmin + xmax), 0.5 * (ymin + ymax))], crs)[0]
    metric = utm_crs_wkt(lon, lat)
    mx0, my0, mx1, my1 = transform_bounds((xmin, ymin, xmax, ymax), crs, metric)
    grown = (mx0 - margin_m, my0 - margin_m, mx1 + margin_m, my1 + margin_m)
    return Area(_box_wkt(grown), metric)


def _box_wkt(bounds: Sequence[float]) -> str:
    xmin, ymin, xmax, ymax = bounds
    return f"POLYGON(({xmin} {ymin},{xmax} {ymin},{xmax} {ymax},{xmin} {ymax},{xmin} {ymin}))"


# --- planning ---------------------------------------------------------------------------------------------

def plan_areas(job: RegionalJob, feedback: Feedback) -> list[JobArea]:
    """Group the glaciers, then per area: its outlines file, its pairs (downloading a remote source's scenes
    first) and its job grid. An area without pairs keeps the reason in ``status``."""
    glaciers = read_glaciers(job.outlines, job.id_field, job.min_area_km2)
    areas = group_glaciers(glaciers, job.group_distance_m)
    feedback.info(f"{len(glaciers)} glacier(s) in {len(areas)} job area(s) (grouped within {job.group_distance_m:g} m)")
    for area in areas:
        if feedback.is_cancelled():
            raise JobCancelled("Cancelled by the user")
        folder = os.path.join(job.output, AREAS_FOLDER, area.id)
        outlines = write_outlines(area.glaciers, os.path.join(folder, "outlines.geojson"))
        area.annual = AnnualJob(
            folder=job.folder, output=os.path.join(folder, "area.tif"), year_a=job.year_a, year_b=job.year_b,
            area=_area_polygon(area, job.margin_m), months=job.months, rule=job.rule, min_days=job.min_days,
            max_days=job.max_days, max_pairs_per_scene=job.max_pairs_per_scene, season_start=job.season_start,
            season_end=job.season_end, max_cloud=job.max_cloud, engine=job.engine, outlines=outlines,
            work_folder=os.path.join(folder, "pairs"), pair_options=dict(job.pair_options), source=job.source,
            source_settings=dict(job.source_settings))
        try:
            if is_local(area.annual):
                area.pairs = find_pairs(area.annual, feedback)
            else:
                scenes, only, plan = download_for_job(area.annual, feedback)
                area.pairs = find_pairs(area.annual, feedback, scenes, only, plan)
            area.grid = job_grid(area.annual, area.pairs, feedback)
        except GlacierFlowError as error:
            area.status = f"no pairs: {error}"
            feedback.warning(f"{area.id} ({', '.join(g.id for g in area.glaciers)}): {area.status}")
    return areas


# --- the tasks (plain functions: they run in this process or on a Dask worker) ------------------------------

def compute_pair(pair: ScenePair, folder: str, engine: str, outlines: str, pair_options: dict[str, Any],
                 grid: Grid) -> dict[str, Any]:
    """One pair product on the area grid (reused when complete), measured for the screening (trusted
    fraction, stable-ground offset and spread, m/yr) while it is at hand; ``{"path", "error", "measured"}``.

    ``pair_options["workers"]`` (threads for the pair's blocks), when given, also caps OpenCV's own thread
    pool for the task: a Dask task that asks for 1 thread then uses 1 core (OpenCV's pool otherwise added
    ~45 % of a second core to every pair, so 2 workers on 2 cores competed). Products do not change."""
    failures: dict[int, str] = {}
    with _opencv_threads(int(pair_options.get("workers", 0) or 0)):
        path = run_pairs([pair], folder, engine, outlines, pair_options, Feedback(), grid, failures)[0]
    result: dict[str, Any] = {"path": path, "error": failures.get(0, "")}
    result["measured"] = _record_row(_measured_record(pair, result, outlines))
    return result


@contextmanager
def _opencv_threads(threads: int) -> Iterator[None]:
    """Within the block, OpenCV's thread pool has ``threads`` threads (0: left as it is)."""
    if threads <= 0:
        yield
        return
    import cv2

    before = cv2.getNumThreads()
    cv2.setNumThreads(threads)
    try:
        yield
    finally:
        cv2.setNumThreads(before)


def _measured_record(pair: ScenePair, result: dict[str, Any], outlines: str) -> PairRecord:
    """The pair's record: from its pair task's measurement, else measured now (a product complete before)."""
    if result.get("measured") is not None:
        return _record_from(pair, result["measured"])
    record = PairRecord(pair, result["path"], reason=result["error"])
    if record.product:
        measure_pair(record, outlines, None, None)
    return record


def screen_area(pairs: Sequence[ScenePair], results: Sequence[dict[str, Any]], outlines: str,
                table: str) -> list[PairRecord]:
    """Screen the area's pairs (each measured in its pair task, or here when its product was complete
    before); reused when ``table``'s JSON twin lists the same products, saved after them."""
    cache = os.path.splitext(table)[0] + ".json"
    products = [r["path"] for r in results]
    cached = _read_json(cache) if screening_complete(table, results) else None
    if cached:
        return [_record_from(pair, row) for pair, row in zip(pairs, cached["records"])]
    records = [_measured_record(pair, result, outlines) for pair, result in zip(pairs, results)]
    try:
        screen_pairs(records)
    except GlacierFlowError:
        pass  # every pair out: each glacier says so
    write_pair_table(records, table)
    write_text(cache, json.dumps({"products": [os.path.basename(p) for p in products],
                                  "records": [_record_row(r) for r in records]}))
    return records


def _record_row(record: PairRecord) -> dict[str, Any]:
    row = asdict(record)
    row.pop("pair")
    return {k: (None if isinstance(v, float) and not math.isfinite(v) else v) for k, v in row.items()}


def _record_from(pair: ScenePair, row: dict[str, Any]) -> PairRecord:
    values: dict[str, Any] = {k: (math.nan if v is None else v) for k, v in row.items()}
    return PairRecord(pair, **values)


def _read_json(path: str) -> dict[str, Any] | None:
    try:
        with open(path, encoding="utf-8") as handle:
            return json.load(handle)
    except (OSError, ValueError):
        return None


def stack_glacier(glacier: Glacier, records: Sequence[PairRecord], area_grid: Grid, area_outlines: str,
                  folder: str, margin_m: float) -> dict[str, Any]:
    """The glacier's velocity from the area's kept pairs on its window of the area grid, its figures
    (m/yr) and ``summary.json`` (written last); reused when the summary lists the same pairs."""
    from ..velocity.stacking import StackJob, run_stack_job

    kept = [r for r in records if r.in_stack]
    pair_paths = [r.product for r in records if r.product]
    done = current_summary(folder, pair_paths)
    if done is not None:
        return done
    inputs = sorted(os.path.basename(path) for path in pair_paths)
    summary_path = os.path.join(folder, SUMMARY_NAME)
    os.makedirs(folder, exist_ok=True)
    outline = write_outlines([glacier], os.path.join(folder, "outline.geojson"))
    write_pair_table(records, os.path.join(folder, "pairs.csv"))
    row: dict[str, Any] = {"glacier_id": glacier.id, "area_km2": glacier.area_km2, "inputs": inputs,
                           "pair_count": len(kept), "product": ""}
    if not kept:
        row["status"] = "no pair entered the stack (see pairs.csv)"
        write_text(summary_path, json.dumps(row, indent=1))
        return row
    grid = glacier_grid(glacier, area_grid, margin_m)
    product = os.path.join(folder, PRODUCT_NAME)
    measured = all(r.has_stable_ground for r in kept)
    run_stack_job(StackJob([r.product for r in kept], product, weight_by_interval=True, grid=grid,
                           offsets=[(r.offset_vx, r.offset_vy) for r in kept] if measured else None,
                           uncertainties=[r.sigma() for r in kept] if measured else None))
    row.update(glacier_figures(product, outline, area_outlines, folder))
    row.update({"status": "complete", "product": product})
    write_text(summary_path, json.dumps(row, indent=1))
    return row


def glacier_grid(glacier: Glacier, area_grid: Grid, margin_m: float) -> Grid:
    """The window of ``area_grid`` (north-up) around the glacier's envelope grown by ``margin_m``."""
    from ..geo.crs import transform_bounds

    xmin, ymin, xmax, ymax = transform_bounds(_envelope(glacier), glacier.crs_wkt, area_grid.crs_wkt)
    x0, dx, _, y0, _, dy = area_grid.transform
    col0 = max(0, int(math.floor((xmin - margin_m - x0) / dx)))
    col1 = min(area_grid.width, int(math.ceil((xmax + margin_m - x0) / dx)))
    row0 = max(0, int(math.floor((ymax + margin_m - y0) / dy)))
    row1 = min(area_grid.height, int(math.ceil((ymin - margin_m - y0) / dy)))
    if col1 <= col0 or row1 <= row0:
        raise GlacierFlowError(f"Glacier {glacier.id} lies outside its area's grid: check the outlines' CRS.")
    return area_grid.window_grid(Window(col0, row0, col1 - col0, row1 - row0))


def glacier_figures(product: str, outline: str, area_outlines: str, folder: str) -> dict[str, Any]:
    """Coverage (share of glacier pixels with a velocity), median and 95th-percentile speed, median
    uncertainty (m/yr) inside the outline, and the stable-ground offset (m/yr) around it."""
    from ..geo.outlines import GlacierOutlines
    from ..products.velocity import open_velocity
    from ..validation.stable_ground import StableGroundJob, run_stable_ground

    opened = open_velocity(product)
    inside = GlacierOutlines(outline, opened.grid.crs_wkt).mask(opened.grid)
    speed = opened.read("speed", opened.grid)[inside]
    uncertainty = opened.read("uncertainty", opened.grid)[inside]
    valid = speed[np.isfinite(speed)]
    figures: dict[str, Any] = {
        "coverage": float(valid.size / max(inside.sum(), 1)),
        "median_speed": float(np.median(valid)) if valid.size else None,
        "p95_speed": float(np.percentile(valid, 95)) if valid.size else None,
        "median_uncertainty": float(np.nanmedian(uncertainty)) if np.isfinite(uncertainty).any() else None,
        "offset_vx": None, "offset_vy": None}
    try:
        stats = run_stable_ground(StableGroundJob(product=product, glacier_outlines=area_outlines,
                                                  report=os.path.join(folder, "stable_ground.json"))).statistics
        figures.update({"offset_vx": stats["vx"]["median"], "offset_vy": stats["vy"]["median"]})
    except GlacierFlowError:
        pass  # no stable ground in the window: the offset stays empty
    return figures


# --- running: in this process, or on Dask distributed ------------------------------------------------------

class SerialRunner:
    """Runs each task at once, here: the reference path and the path without Dask; checks for a cancel
    between tasks."""

    dashboard = ""

    def __init__(self, feedback: Feedback) -> None:
        self.feedback = feedback
        self.finished = 0
        self.planned = 0  # the most tasks the job can submit (:meth:`expect`): the progress scale

    def submit(self, function: Any, *args: Any, key: str = "") -> Any:
        if self.feedback.is_cancelled():
            raise JobCancelled("Cancelled by the user: complete pairs and glaciers stay for a rerun")
        value = function(*args)
        self.finished += 1
        self.feedback.info(f"Task {self.finished} finished: {key}")
        if self.planned:  # tasks run one by one here: the bar moves with each (100 % when all have run)
            self.feedback.progress(min(99.0, 100.0 * self.finished / self.planned))
        return value

    def expect(self, tasks: int) -> None:
        """At most ``tasks`` will be submitted (complete ones are skipped): the progress scale."""
        self.planned = tasks

    @staticmethod
    def pair_options(options: dict[str, Any]) -> dict[str, Any]:
        """A pair task here uses every core for its blocks (the pair job's own threads)."""
        return dict(options)

    def results(self, handles: list[Any], feedback: Feedback) -> list[Any]:
        feedback.progress(100.0)
        return handles

    def close(self) -> None:
        return None


class DaskRunner:
    """Submits tasks to a Dask distributed client; waits on them counting finished tasks."""

    def __init__(self, job: RegionalJob, feedback: Feedback) -> None:
        self.retries = job.retries
        self.client = connect(job, feedback)
        self.cluster = getattr(self.client, "cluster", None)  # the LocalCluster this job started, if any
        self.dashboard = str(getattr(self.client, "dashboard_link", "") or "")
        self.handles: list[Any] = []

    @staticmethod
    def expect(tasks: int) -> None:
        """Nothing: progress counts the submitted futures as they finish."""

    @staticmethod
    def pair_options(options: dict[str, Any]) -> dict[str, Any]:
        """One thread per pair task (unless set): Dask's workers are the parallelism, one core each. The
        product does not change (its blocks do not depend on the thread count)."""
        return {"workers": 1, **options}

    def submit(self, function: Any, *args: Any, key: str = "") -> Any:
        future = self.client.submit(function, *args, key=key or None, retries=self.retries, pure=False)
        self.handles.append(future)
        return future

    def results(self, handles: list[Any], feedback: Feedback) -> list[Any]:
        """Wait for every submitted task (progress = finished / submitted), then the values of ``handles``;
        a cancel cancels every future."""
        from distributed import as_completed

        total = max(len(self.handles), 1)
        finished = 0
        pending = as_completed(self.handles, with_results=False)
        while not pending.is_empty():
            if feedback.is_cancelled():
                self.client.cancel(self.handles)
                raise JobCancelled("Cancelled by the user: the remaining tasks were cancelled")
            for future in pending.next_batch(block=False) or []:
                finished += 1
                feedback.progress(100.0 * finished / total)
                feedback.info(f"Task {finished}/{total} finished: {future.key}")
            time.sleep(0.05)
        return [self._value(h) for h in handles]

    def _value(self, handle: Any) -> Any:
        if not hasattr(handle, "result"):
            return handle  # known without a task (a complete glacier)
        try:
            return handle.result()
        except Exception as error:
            return TaskFailed(f"{type(error).__name__}: {error}")

    def close(self) -> None:
        self.client.close()
        if self.cluster is not None:
            self.cluster.close()


@dataclass
class TaskFailed:
    """A task that raised after its retries: the message goes to the glacier's status."""

    message: str


def connect(job: RegionalJob, feedback: Feedback) -> Any:
    """A Dask client: to ``job.scheduler``, or to a new LocalCluster of ``job.workers`` processes."""
    try:
        from distributed import Client, LocalCluster
    except ImportError:
        raise GlacierFlowError("Dask distributed is not installed: pip install -r requirements/worker.txt "
                               "(or set workers to 0 to run in this process).") from None
    if job.scheduler:
        try:
            client = Client(job.scheduler, timeout=f"{job.connect_timeout_s:g}s")
        except (OSError, TimeoutError, ValueError) as error:
            raise GlacierFlowError(
                f"Cannot reach the Dask scheduler at '{job.scheduler}' within {job.connect_timeout_s:g} s ({error}): "
                "start it (dask scheduler) and its workers (dask worker ADDRESS), check the address and port, "
                "or leave the scheduler empty to run on this machine.") from None
        feedback.info(f"Dask scheduler {job.scheduler}: {len(client.scheduler_info().get('workers', {}))} "
                      f"worker(s); dashboard {client.dashboard_link}")
        return client
    if job.workers < 1:
        raise GlacierFlowError("A local Dask cluster needs at least 1 worker.")
    import dask

    _use_python_for_workers()
    # Dask's nanny sets MALLOC_TRIM_THRESHOLD_=65536 in its workers, which pins glibc's mmap threshold at
    # 128 KiB: every large NumPy array is then mapped and unmapped again, and the pair job ran 2.5 x slower
    # (measured, docs/scale.md). Keep only the one-thread settings.
    with dask.config.set({"distributed.nanny.pre-spawn-environ": WORKER_ENVIRONMENT}):
        cluster = LocalCluster(n_workers=job.workers, threads_per_worker=1, processes=True,
                               memory_limit=job.memory_per_worker, dashboard_address=":0")
    client = Client(cluster)
    feedback.info(f"Local Dask cluster: {job.workers} worker process(es), 1 thread and {job.memory_per_worker} "
                  f"each; dashboard {client.dashboard_link}")
    return client


def _use_python_for_workers() -> None:
    """Start local worker processes with an interpreter whose standard library is the one running here.

    Inside QGIS ``sys.executable`` is QGIS itself, or a Python of another installation found on the PATH
    (its child would mix two standard libraries): the interpreter QGIS embeds sits beside
    ``sys.exec_prefix``. Each candidate is asked for its standard library folder."""
    import multiprocessing

    # subprocess runs only a candidate Python interpreter with a fixed one-line script
    import subprocess  # nosec B404
    import sys

    here = os.path.dirname(os.__file__)
    version = f"{sys.version_info.major}.{sys.version_info.minor}"
    candidates = [sys.executable] + [os.path.join(prefix, *parts) for prefix in (sys.exec_prefix, sys.base_exec_prefix)
                                     for parts in (("bin", f"python{version}"), ("bin", "python3"), ("python.exe",))]
    for candidate in candidates:
        if not candidate or not os.path.isfile(candidate):
            continue
        try:
            answer = subprocess.run([candidate, "-I", "-c", "import os; print(os.path.dirname(os.__file__))"],  # nosec B603
                                    capture_output=True, text=True, timeout=60, check=False)
        except (OSError, subprocess.SubprocessError):
            continue
        if answer.returncode == 0 and os.path.realpath(answer.stdout.strip()) == os.path.realpath(here):
            multiprocessing.set_executable(candidate)
            return
    raise GlacierFlowError(f"No Python {version} interpreter with this standard library ({here}) to start local "
                           "Dask workers: start a cluster (dask scheduler, dask worker) and give its address, or "
                           "set workers to 0.")


def make_runner(job: RegionalJob, feedback: Feedback) -> SerialRunner | DaskRunner:
    """In this process (no scheduler, 0 workers) or on Dask."""
    if not job.scheduler and job.workers == 0:
        feedback.info("Running in this process (workers 0): no Dask.")
        return SerialRunner(feedback)
    return DaskRunner(job, feedback)


def run_regional_job(job: RegionalJob, feedback: Feedback | None = None) -> RegionalResult:
    """Plan, run every task that is not complete, and write ``index.gpkg``; returns one row per glacier."""
    feedback = feedback or Feedback()
    started = time.perf_counter()
    if not os.path.isdir(os.path.dirname(os.path.abspath(job.output)) or "."):
        raise GlacierFlowError(f"The folder holding '{job.output}' does not exist: create it or choose another.")
    os.makedirs(job.output, exist_ok=True)
    areas = plan_areas(job, feedback)
    runner = make_runner(job, feedback)
    try:
        rows, run, skipped = _run_tasks(job, areas, runner, feedback)
    finally:
        runner.close()
    index = write_index(job, areas, rows)
    removed = remove_leftovers(job.output)
    if removed:
        feedback.info(f"Removed {removed} temporary file(s) of tasks whose worker died (their work was redone)")
    seconds = time.perf_counter() - started
    complete = sum(r.get("status") == "complete" for r in rows)
    feedback.info(f"{complete} of {len(rows)} glacier(s) complete; {run} task(s) run, {skipped} complete before; "
                  f"{seconds:.1f} s -> {index}")
    return RegionalResult(index, rows, run, skipped, seconds, runner.dashboard)


def _run_tasks(job: RegionalJob, areas: list[JobArea], runner: SerialRunner | DaskRunner,
               feedback: Feedback) -> tuple[list[dict[str, Any]], int, int]:
    """Submit the tasks of every area; returns the glacier rows and the counts of tasks run and skipped."""
    handles: list[tuple[Glacier, Any]] = []
    run = skipped = 0
    runner.expect(sum(len(a.pairs) + 1 + len(a.glaciers) for a in areas if a.grid is not None))
    for area in areas:
        if area.annual is None or area.grid is None:
            continue
        work, outlines = str(area.annual.work_folder), str(area.annual.outlines)
        results: list[Any] = []
        reused = 0  # pairs complete before this run (a serial runner's fresh results are dicts too)
        for pair in area.pairs:
            path = os.path.join(work, pair_product_name(pair, job.engine))
            if is_complete_product(path, pair, job.engine, area.grid):
                results.append({"path": path, "error": ""})
                skipped += 1
                reused += 1
            else:
                results.append(runner.submit(compute_pair, pair, work, job.engine, outlines,
                                             runner.pair_options(job.pair_options), area.grid,
                                             key=f"pair-{area.id}-{os.path.basename(path)}"))
                run += 1
        table = os.path.join(job.output, AREAS_FOLDER, area.id, "pairs.csv")
        # a pair computed now (even under an old name) makes the saved screening and stacks stale
        all_done = reused == len(results)
        if all_done and screening_complete(table, results):
            records: Any = screen_area(area.pairs, results, outlines, table)  # reads the cached screening
            skipped += 1
        else:
            # depends on the area's pair futures only: it (and the area's stacks) can run while other areas'
            # pairs still do (each pair was measured in its own task)
            records = runner.submit(screen_area, area.pairs, results, outlines, table, key=f"screen-{area.id}")
            run += 1
        paths = [r["path"] for r in results if isinstance(r, dict) and r["path"]]
        for glacier in area.glaciers:
            folder = os.path.join(job.output, glacier.folder_name)
            summary = current_summary(folder, paths) if all_done else None
            if summary is not None:
                handles.append((glacier, summary))
                skipped += 1
                continue
            handles.append((glacier, runner.submit(stack_glacier, glacier, records, area.grid, outlines, folder,
                                                   job.margin_m, key=f"stack-{glacier.folder_name}")))
            run += 1
    feedback.info(f"{run} task(s) to run, {skipped} complete before (pairs, screenings, glaciers)")
    values = runner.results([h for _, h in handles], feedback)
    rows = []
    for (glacier, _), value in zip(handles, values):
        rows.append({"glacier_id": glacier.id, "status": f"failed: {value.message}", "pair_count": 0}
                    if isinstance(value, TaskFailed) else value)
    for area in areas:
        if area.grid is None:
            rows += [{"glacier_id": g.id, "status": area.status, "pair_count": 0} for g in area.glaciers]
    return rows, run, skipped


def remove_leftovers(folder: str) -> int:
    """Remove the hidden temporary files (:data:`..io.atomic.TEMPORARY_MARK`) under ``folder`` that killed
    workers left; call only when no task of this output is running. Returns how many."""
    from ..io.atomic import TEMPORARY_MARK, remove_quietly

    count = 0
    for root, _, names in os.walk(folder):
        for name in names:
            if name.startswith(".") and TEMPORARY_MARK in name:
                remove_quietly(os.path.join(root, name))
                count += 1
    return count


def screening_complete(table: str, results: Sequence[dict[str, str]]) -> bool:
    """True when the area's screening was saved for exactly these pair products, after they were written."""
    saved = os.path.splitext(table)[0] + ".json"
    cached = _read_json(saved)
    return cached is not None and os.path.exists(table) and cached.get("products") == [
        os.path.basename(r["path"]) for r in results] and newer_than_inputs(saved, [r["path"] for r in results])


def current_summary(folder: str, pair_paths: Sequence[str]) -> dict[str, Any] | None:
    """The glacier's ``summary.json`` when it is current: it lists exactly these pair products, was written
    after them, and its product (if it has one) exists; else None (the glacier is stacked again)."""
    path = os.path.join(folder, SUMMARY_NAME)
    summary = _read_json(path)
    if summary is None or summary.get("inputs") != sorted(os.path.basename(p) for p in pair_paths):
        return None
    if not newer_than_inputs(path, pair_paths) or (summary.get("product") and not os.path.exists(summary["product"])):
        return None
    return summary


def newer_than_inputs(path: str, inputs: Sequence[str]) -> bool:
    """True when ``path`` exists and was written after every existing file of ``inputs``: a pair product
    recomputed under its old name (another area grid, a broken file) makes what was made of it stale."""
    if not os.path.exists(path):
        return False
    written = os.path.getmtime(path)
    return all(os.path.getmtime(item) <= written for item in inputs if item and os.path.exists(item))


# --- the index ----------------------------------------------------------------------------------------------

INDEX_FIELDS = (("glacier_id", "string"), ("status", "string"), ("area_km2", "real"), ("pair_count", "integer"),
                ("coverage", "real"), ("median_speed", "real"), ("p95_speed", "real"),
                ("median_uncertainty", "real"), ("offset_vx", "real"), ("offset_vy", "real"), ("product", "string"))


def write_index(job: RegionalJob, areas: Sequence[JobArea], rows: Sequence[dict[str, Any]]) -> str:
    """``index.gpkg``: one feature per glacier (its outline) with :data:`INDEX_FIELDS` (m/yr, km2), atomically."""
    from osgeo import ogr

    by_id = {row["glacier_id"]: row for row in rows}
    glaciers = [g for area in areas for g in area.glaciers]
    kinds = {"string": ogr.OFTString, "real": ogr.OFTReal, "integer": ogr.OFTInteger}
    path = os.path.join(job.output, INDEX_NAME)
    with atomic_path(path, suffix=".gpkg") as temporary:
        dataset = ogr.GetDriverByName("GPKG").CreateDataSource(temporary)
        layer = dataset.CreateLayer("glaciers", _reference(glaciers[0].crs_wkt), ogr.wkbMultiPolygon)
        for name, kind in INDEX_FIELDS:
            layer.CreateField(ogr.FieldDefn(name, kinds[kind]))
        for glacier in glaciers:
            row = dict(by_id.get(glacier.id, {}), area_km2=glacier.area_km2)
            feature = ogr.Feature(layer.GetLayerDefn())
            for name, _ in INDEX_FIELDS:
                value = row.get(name)
                if value is not None and not (isinstance(value, float) and not math.isfinite(value)):
                    feature.SetField(name, value)
            geometry = ogr.ForceToMultiPolygon(ogr.CreateGeometryFromWkt(glacier.wkt))
            feature.SetGeometry(geometry)
            layer.CreateFeature(feature)
        dataset = None
    return path
