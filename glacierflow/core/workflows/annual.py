"""Annual velocity for an area: search, cross-year pairs, every pair, stacking, stable ground, stakes.

The chain behind ``glacierflow:annual_velocity`` (the first paper's method):

1. scenes of a local folder over the area, in years A and B, in the chosen months, under a cloud limit;
   with any other source (STAC, Earth Engine, or a source object), the scenes are searched over the area,
   fetched onto one job grid (:func:`..geo.gridspec.resolve_grid`: the area's UTM zone or polar
   stereographic CRS, aligned to the pixel size) and written into ``<work_folder>/scenes``
   (:func:`.imagery.download.download_scenes`; a rerun reuses every file), and the chain goes on from
   that folder;
2. every year-A scene paired with every year-B scene (:func:`.imagery.cross_year_pairs`);
3. each pair through :func:`.pair_velocity.run_pair_job` into ``work_folder``, named from the two scene
   ids and the engine, so a rerun after an interruption **reuses** every finished pair (a product that
   opens and carries ``GLACIERFLOW_PRODUCT=velocity_pair`` with the same images and engine, newer than
   both images) and computes only the rest;
4. the pairs stacked (:func:`.stacking.run_stack_job`: vx, vy, speed, uncertainty, count, m/yr);
5. stable-ground statistics off the buffered glacier outlines (:func:`.stable_ground.run_stable_ground`),
   optionally subtracting the median offset;
6. with a stake file, the stake table of the annual product (and optionally of every pair): CSV and HTML.

The annual product is assembled under a hidden name and renamed into place last: an error or a cancel
leaves no annual output (finished pair products stay, for the resume).
"""
from __future__ import annotations

import os
import re
import shutil
import time
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from typing import Any

from ..errors import GlacierFlowError
from ..feedback import Feedback, JobCancelled, StageFeedback
from ..geo.area import Area
from ..geo.crs import is_geographic, transform_bounds
from ..geo.grid import Grid
from ..geo.gridspec import GridSpec, resolve_grid
from ..imagery import DEFAULT_MONTHS, ImageSource, LocalFolderSource, ScenePair, cross_year_pairs, parse_months
from ..io.atomic import commit, temporary_path
from ..io.raster import BandSource
from ..products.velocity import IMAGE_A, IMAGE_B, PAIR, open_velocity

PAIR_SHARE = 85.0  # % of the progress bar for the pairs; stacking and statistics share the rest
DOWNLOAD_SHARE = 30.0  # % of the progress bar for downloading a remote source's scenes
LOCAL_SOURCE = "local_folder"
SCENES_FOLDER = "scenes"  # inside the work folder: the scenes of a remote source on the job grid


@dataclass
class AnnualJob:
    """What the user asked for.

    Attributes:
        folder: folder of dated GeoTIFFs (one band each), for the ``local_folder`` source.
        output: the annual velocity COG (m/yr).
        year_a: the first year; year_b: the second (None: year_a + 1).
        area: polygon file (any CRS, all features united) or an :class:`.imagery.Area`; None: no spatial filter.
        months: months searched, like ``"6-10"`` (June to October) or ``"6,7,8"``; empty: all.
        max_cloud: largest scene cloud cover (%); None: any (unknown cover passes).
        engine: optical-flow engine name.
        outlines: glacier outlines (any CRS): glacier band of the pairs and stable ground off the ice.
        stakes: stake file (CSV in lon/lat unless ``stakes_crs_wkt``, GeoPackage, shapefile), or None.
        correct_offset: subtract the stable-ground median offset from the annual vx, vy.
        buffer_m: m grown around the glaciers for the stable ground; None: max(2 px, 30 m).
        stable_areas: polygons of ground known not to move (any CRS); with outlines, their off-glacier part.
        work_folder: where pair products live (reused on a rerun); None: ``<output stem>_pairs`` beside it.
        report_folder: where reports go; None: the output's folder.
        compare_pairs: also compare every pair product with the stakes.
        weight_by_interval: interval-weighted mean in the stack.
        pair_options: further :class:`.pair_velocity.PairJob` fields (tile_size, median_size, ...).
        source: ``"local_folder"`` (``folder`` used as it is), another source name of
            :data:`.imagery.SOURCE_NAMES`, or an :class:`.imagery.ImageSource` object; anything but
            ``"local_folder"`` is searched over ``area`` and downloaded onto the job grid first.
        source_settings: settings of a named remote source: ``url`` (STAC API), ``credentials`` (key
            file), ``project`` (Earth Engine project id), ``cache_dir``.
        min_valid_fraction: smallest share (0-1) of the area a scene must cover with usable pixels, where
            the source can tell (a local file cannot: kept).
        grid_spec: the job grid's CRS and pixel size (m) for a downloaded source; its pixel size None: the
            sensor's resolution; its CRS None: the area's UTM zone (polar stereographic beyond 72 degrees).
        band: band name fetched from a downloaded source (``""``: its default, the one velocity uses).
    """

    folder: str
    output: str
    year_a: int
    year_b: int | None = None
    area: str | Area | None = None
    months: str | None = DEFAULT_MONTHS
    max_cloud: float | None = None
    engine: str = "horn_schunck"
    outlines: str | None = None
    stakes: str | None = None
    stakes_crs_wkt: str | None = None
    correct_offset: bool = False
    buffer_m: float | None = None
    stable_areas: str | None = None
    work_folder: str | None = None
    report_folder: str | None = None
    compare_pairs: bool = False
    weight_by_interval: bool = True
    pair_options: dict[str, Any] = field(default_factory=dict)
    source: str | ImageSource = LOCAL_SOURCE
    source_settings: dict[str, Any] = field(default_factory=dict)
    min_valid_fraction: float | None = 0.5
    grid_spec: GridSpec = field(default_factory=GridSpec)
    band: str = ""


@dataclass
class AnnualResult:
    """What the chain produced (paths) and its figures (m/yr unless said)."""

    output: str
    style: str
    pair_products: list[str]
    reused: int
    computed: int
    pair_count: int
    median_speed: float
    median_uncertainty: float
    stable_statistics: dict[str, Any] | None = None
    stable_report: str | None = None
    stakes_csv: str | None = None
    stakes_html: str | None = None
    stakes_summary: dict[str, float] | None = None
    single_pair: bool = False
    seconds: float = 0.0


# --- pairs ------------------------------------------------------------------------------------------------

def pair_product_name(pair: ScenePair, engine: str) -> str:
    """The pair product's file name: both scene ids and the engine, made file-safe."""
    def safe(text: str) -> str:
        return re.sub(r"[^A-Za-z0-9._-]+", "_", text)

    return f"{safe(pair.first.id)}__{safe(pair.second.id)}__{safe(engine)}.tif"


def is_complete_product(path: str, pair: ScenePair, engine: str) -> bool:
    """True when ``path`` is a finished pair product of these images and engine, newer than both images."""
    if not os.path.isfile(path):
        return False
    try:
        product = open_velocity(path)
    except GlacierFlowError:
        return False
    if product.kind != PAIR or product.engine != engine:
        return False
    if (product.metadata.get(IMAGE_A), product.metadata.get(IMAGE_B)) != (os.path.basename(pair.first.href),
                                                                          os.path.basename(pair.second.href)):
        return False
    product_time = os.path.getmtime(path)
    return all(not os.path.exists(s.href) or os.path.getmtime(s.href) <= product_time
               for s in (pair.first, pair.second))


def run_pairs(pairs: Sequence[ScenePair], folder: str, engine: str, outlines: str | None = None,
              pair_options: dict[str, Any] | None = None, feedback: Feedback | None = None,
              grid: Grid | None = None) -> list[str]:
    """Every pair through the pair job into ``folder``, all on ``grid`` (the job's; None: each pair's own);
    finished products are reused. Returns the product paths in pair order; the log says which were reused.
    Raises JobCancelled between or inside pairs."""
    from ..velocity.pair import PairJob, run_pair_job

    feedback = feedback or Feedback()
    os.makedirs(folder, exist_ok=True)
    products = []
    for index, pair in enumerate(pairs):
        if feedback.is_cancelled():
            raise JobCancelled("Cancelled by the user")
        path = os.path.join(folder, pair_product_name(pair, engine))
        label = f"Pair {index + 1}/{len(pairs)} {pair.first.id} -> {pair.second.id} ({pair.interval_days:.1f} days)"
        if is_complete_product(path, pair, engine):
            feedback.info(f"{label}: reused {os.path.basename(path)}")
        else:
            feedback.info(f"{label}: computing")
            job = PairJob(image_a=pair.first.href, image_b=pair.second.href, output=path, band_a=pair.first.band,
                          band_b=pair.second.band, outlines=outlines, engine=engine, grid=grid,
                          **(pair_options or {}))
            run_pair_job(job, StageFeedback(feedback, 100.0 * index / len(pairs), 100.0 * (index + 1) / len(pairs)))
        products.append(path)
        feedback.progress(100.0 * (index + 1) / len(pairs))
    return products


# --- search -----------------------------------------------------------------------------------------------

def area_from_file(path: str) -> Area:
    """The union of every polygon in a vector file, in the file's CRS."""
    from osgeo import ogr

    dataset = ogr.Open(path)
    if dataset is None or dataset.GetLayerCount() == 0:
        raise GlacierFlowError(f"The area file '{path}' cannot be read as vector data: give a polygon layer.")
    layer = dataset.GetLayer(0)
    union: Any = None
    for feature in layer:
        geometry = feature.GetGeometryRef()
        if geometry is not None and not geometry.IsEmpty():
            union = geometry.Clone() if union is None else union.Union(geometry)
    reference = layer.GetSpatialRef()
    if union is None or reference is None:
        raise GlacierFlowError(f"The area file '{path}' has no polygon with a CRS: draw one and save it.")
    return Area(union.ExportToWkt(), reference.ExportToWkt())


def job_area(job: AnnualJob) -> Area | None:
    """The job's area as an :class:`.imagery.Area` (read from its file when a path), or None."""
    return area_from_file(job.area) if isinstance(job.area, str) and job.area else (job.area or None)


def is_local(job: AnnualJob) -> bool:
    """True when the job reads ``job.folder`` as it is (no search and download onto a job grid)."""
    return isinstance(job.source, str) and job.source == LOCAL_SOURCE


def _years(job: AnnualJob) -> tuple[int, int, datetime, datetime]:
    """Year A, year B and the search range from 1 January of A to the end of B (UTC)."""
    year_b = job.year_b if job.year_b is not None else job.year_a + 1
    start = datetime(job.year_a, 1, 1, tzinfo=timezone.utc)
    end = datetime(year_b, 12, 31, 23, 59, 59, tzinfo=timezone.utc)
    return job.year_a, year_b, start, end


def find_pairs(job: AnnualJob, feedback: Feedback, folder: str | None = None,
               only: set[str] | None = None) -> list[ScenePair]:
    """The scenes of the two years in ``folder`` (default ``job.folder``; only the files in ``only`` when
    given) and their cross-year pairs; fails clearly when none."""
    year_a, year_b, start, end = _years(job)
    source = LocalFolderSource(folder or job.folder)
    try:
        scenes = source.search(job_area(job), start, end, months=parse_months(job.months), max_cloud=job.max_cloud)
    finally:
        for name, reason in source.skipped:
            feedback.info(f"Skipped {name}: {reason}")
    if only is not None:
        scenes = [s for s in scenes if os.path.abspath(s.href) in only]
    feedback.info(f"{len(scenes)} scene(s) in {year_a} and {year_b}: " + ", ".join(s.id for s in scenes))
    pairs = cross_year_pairs(scenes, job.year_a, year_b)
    if not pairs:
        years = sorted({s.time.year for s in scenes})
        raise GlacierFlowError(f"No pair between {job.year_a} and {year_b}: the scenes found are from "
                               f"{', '.join(map(str, years))}. Choose years that both have scenes, or widen the "
                               "months or the cloud limit.")
    feedback.info(f"{len(pairs)} cross-year pair(s) ({job.year_a} x {year_b}).")
    return pairs


# --- a remote source: search over the area and download onto the job grid --------------------------------

def download_for_job(job: AnnualJob, feedback: Feedback) -> tuple[str, set[str]]:
    """Search the job's source over its area in years A and B and download the scenes onto the job grid
    into ``<work_folder>/scenes``; returns that folder and the files of this job (absolute paths)."""
    from ..geo.gridspec import default_pixel_size
    from ..imagery.download import download_scenes, keep_valid, open_source

    area = job_area(job)
    if area is None:
        raise GlacierFlowError("Searching an imagery source needs an area: choose a polygon layer or an extent "
                               "around the glacier.")
    source = job.source if not isinstance(job.source, str) else open_source(
        job.source, url=str(job.source_settings.get("url", "") or ""),
        credentials=str(job.source_settings.get("credentials", "") or ""),
        project=str(job.source_settings.get("project", "") or ""), min_valid_fraction=job.min_valid_fraction,
        cache_dir=str(job.source_settings.get("cache_dir", "") or ""))
    year_a, year_b, start, end = _years(job)
    try:
        found = source.search(area, start, end, months=parse_months(job.months), max_cloud=job.max_cloud)
    finally:
        for name, reason in getattr(source, "skipped", []):
            feedback.info(f"Skipped {name}: {reason}")
    scenes, dropped = keep_valid([s for s in found if s.time.year in (year_a, year_b)], job.min_valid_fraction)
    for scene in dropped:
        feedback.info(f"Skipped {scene.id}: only {100.0 * (scene.valid_fraction or 0.0):.0f} % of the area is usable")
    if not scenes:
        raise GlacierFlowError(f"No scene of {year_a} or {year_b} covers enough of the area ({len(found)} found, "
                               f"{len(dropped)} under the valid fraction): lower the minimum valid fraction, widen "
                               "the months or the cloud limit, or check the area.")
    pixel_size, why = ((job.grid_spec.pixel_size, "given") if job.grid_spec.pixel_size
                       else default_pixel_size(source, scenes))
    feedback.info(f"{len(scenes)} scene(s) of {getattr(source, 'name', 'the source')} to put on the job grid "
                  f"at {pixel_size:g} m ({why}).")
    grid = resolve_grid(replace(job.grid_spec, pixel_size=pixel_size), area=area, feedback=feedback)
    folder = os.path.join(_work_folder(job), SCENES_FOLDER)
    paths = download_scenes(source, scenes, grid, folder, job.band, feedback)
    if not paths:
        raise GlacierFlowError(f"None of the {len(scenes)} scene(s) has a valid pixel inside the area: the area "
                               "does not overlap the imagery (check its position and CRS) or every scene is "
                               "cloud or fill there.")
    return folder, {os.path.abspath(p) for p in paths}


# --- the whole chain --------------------------------------------------------------------------------------

def run_annual_job(job: AnnualJob, feedback: Feedback | None = None) -> AnnualResult:
    """Search, pairs, stacking, stable ground and stakes; the annual output appears only on success."""
    whole = feedback or Feedback()
    started = time.perf_counter()
    _check_output(job)
    if is_local(job):
        folder, only, feedback = job.folder, None, whole
    else:
        folder, only = download_for_job(job, StageFeedback(whole, 0.0, DOWNLOAD_SHARE))
        feedback = StageFeedback(whole, DOWNLOAD_SHARE, 100.0)
    pairs = find_pairs(job, feedback, folder, only)
    work = _work_folder(job)
    done_before = sum(is_complete_product(os.path.join(work, pair_product_name(p, job.engine)), p, job.engine)
                      for p in pairs)
    grid = job_grid(job, pairs, feedback)
    products = run_pairs(pairs, work, job.engine, job.outlines, job.pair_options,
                         StageFeedback(feedback, 0.0, PAIR_SHARE), grid)
    single = len(products) == 1
    if single:
        feedback.warning("Only one pair: the annual map is that pair's velocity (count 1, uncertainty NaN). "
                         "Add scenes to either year for a stack with an uncertainty.")
    result = _assemble(job, products, work, StageFeedback(feedback, PAIR_SHARE, 100.0))
    result.reused, result.computed, result.single_pair = done_before, len(products) - done_before, single
    _compare_stakes(job, result)
    result.seconds = time.perf_counter() - started
    feedback.info(f"Annual velocity from {len(products)} pair(s) ({result.reused} reused) in {result.seconds:.1f} s: "
                  f"median speed {result.median_speed:.1f} m/yr, median uncertainty "
                  f"{result.median_uncertainty:.1f} m/yr -> {job.output}")
    feedback.progress(100.0)
    return result


def job_grid(job: AnnualJob, pairs: Sequence[ScenePair], feedback: Feedback) -> Grid:
    """The one grid every pair of the job is computed on (DESIGN.md: one grid per job).

    The first scene's own pixels (so scenes on its grid, such as downloaded ones, are read without
    resampling), limited to the job's area when it has one; a CRS or pixel size the job asks for gives a
    grid snapped to multiples of the pixel size instead.
    """
    first = min((s for p in pairs for s in (p.first, p.second)), key=lambda s: s.time)
    native = BandSource.open(first.href, first.band).grid
    area = job_area(job)
    spec = job.grid_spec
    if area is not None:
        target = spec.crs_wkt or (native.crs_wkt if not is_geographic(native.crs_wkt) else None)
        if target is not None:
            box = transform_bounds(area.bounds(), area.crs_wkt, target)
            spec = replace(spec, bounds=_intersect_bounds(spec.bounds, box))
    grid = resolve_grid(spec, images=[native])
    feedback.info(f"Job grid: {grid.width} x {grid.height} px at {grid.pixel_size[0]:g} m (from {first.id}); "
                  "every pair is computed on it.")
    return grid


def _intersect_bounds(a: tuple[float, float, float, float] | None,
                      b: tuple[float, float, float, float]) -> tuple[float, float, float, float]:
    if a is None:
        return b
    return (max(a[0], b[0]), max(a[1], b[1]), min(a[2], b[2]), min(a[3], b[3]))


def _work_folder(job: AnnualJob) -> str:
    """Where pair products (and a remote source's scenes) live: the job's, or ``<output stem>_pairs``."""
    return job.work_folder or os.path.splitext(job.output)[0] + "_pairs"


def _check_output(job: AnnualJob) -> None:
    folder = os.path.dirname(os.path.abspath(job.output))
    if not os.path.isdir(folder):
        raise GlacierFlowError(f"Output folder '{folder}' does not exist: create it or choose another.")
    if is_local(job) and not job.folder:
        raise GlacierFlowError("The local-folder source needs a folder: choose the folder holding your GeoTIFFs.")
    if job.stakes and not os.path.exists(job.stakes):
        raise GlacierFlowError(f"Stake file '{job.stakes}' does not exist: check the path.")


def _assemble(job: AnnualJob, products: list[str], work: str, feedback: Feedback) -> AnnualResult:
    """Stack (and correct) in a hidden folder of ``work``, then rename the annual product into place."""
    from ..velocity.stacking import StackJob, run_stack_job

    scratch = temporary_path(os.path.join(work, "annual"), create_folder=True)  # hidden; reports name the output's file
    os.makedirs(scratch)
    stacked = os.path.join(scratch, os.path.basename(job.output))
    corrected = os.path.join(scratch, _stem(job) + "_corrected.tif")
    try:
        stack = run_stack_job(StackJob(products, stacked, weight_by_interval=job.weight_by_interval),
                              StageFeedback(feedback, 0.0, 60.0))
        if feedback.is_cancelled():
            raise JobCancelled("Cancelled by the user")
        stable, report = _stable_ground(job, stacked, corrected, StageFeedback(feedback, 60.0, 100.0))
        final = corrected if job.correct_offset and stable is not None else stacked
        commit(final, job.output)
        style = _move_style(final, job.output)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return AnnualResult(job.output, style, products, 0, 0, stack.pair_count, stack.median_speed,
                        stack.median_uncertainty, stable, report)


def _move_style(source: str, output: str) -> str:
    style = os.path.splitext(output)[0] + ".qml"
    source_style = os.path.splitext(source)[0] + ".qml"
    if os.path.exists(source_style):
        shutil.move(source_style, style)
    return style


def _stable_ground(job: AnnualJob, stacked: str, corrected: str, feedback: Feedback) -> tuple:
    """Stable-ground statistics of the stack (report beside the output), or (None, None) without outlines
    or stable areas."""
    from ..validation.stable_ground import StableGroundJob, run_stable_ground

    if not job.outlines and not job.stable_areas:
        feedback.warning("No glacier outlines or stable areas: no stable-ground statistics (give outlines to "
                         "measure the offset on off-glacier ground, or polygons of stable ground).")
        return None, None
    report = os.path.join(_report_folder(job), _stem(job) + "_stable_ground.json")
    result = run_stable_ground(StableGroundJob(
        product=stacked, stable_areas=job.stable_areas, glacier_outlines=job.outlines, buffer_m=job.buffer_m,
        correct=job.correct_offset,
        output=corrected if job.correct_offset else None, report=report), feedback)
    return result.statistics, result.report


def _compare_stakes(job: AnnualJob, result: AnnualResult) -> None:
    """The stake table of the annual product (and the pairs with ``compare_pairs``) as CSV and HTML."""
    if not job.stakes:
        return
    from ..validation.stakes import compare_stakes, read_stakes, write_csv_report, write_html_report

    stakes = read_stakes(job.stakes, crs_wkt=job.stakes_crs_wkt)
    products = [job.output] + (list(result.pair_products) if job.compare_pairs else [])
    comparison = compare_stakes(stakes, products)
    base = os.path.join(_report_folder(job), _stem(job) + "_stakes")
    result.stakes_csv = write_csv_report(base + ".csv", comparison)
    result.stakes_html = write_html_report(base + ".html", comparison)
    result.stakes_summary = comparison.summary[job.output]


def _report_folder(job: AnnualJob) -> str:
    folder = job.report_folder or os.path.dirname(os.path.abspath(job.output))
    os.makedirs(folder, exist_ok=True)
    return folder


def _stem(job: AnnualJob) -> str:
    return os.path.splitext(os.path.basename(job.output))[0]
