"""Annual or season velocity for an area: search, pairs by rule, every pair, stacking, stable ground, stakes.

The chain behind ``glacierflow:annual_velocity`` (the first paper's method, and seasons of many pairs):

1. scenes of a local folder over the area, in the season(s), under a cloud limit. A season is months that
   may wrap the new year (``11-3``) named by the year it ends in, or a start and an end date
   (:mod:`.imagery.seasons`); ``auto`` months follow the area's hemisphere (6-10 north, 12-3 south).
   Without a year: for a local folder the latest season(s) with scenes, otherwise the latest season over;
   with any other source (STAC, Earth Engine, or a source object), the scenes are searched over the area,
   fetched onto one job grid (:func:`..geo.gridspec.resolve_grid`: the area's UTM zone or polar
   stereographic CRS, aligned to the pixel size) and written into ``<work_folder>/scenes``
   (:func:`.imagery.download.download_scenes`; a rerun reuses every file), and the chain goes on from
   that folder;
2. pairs by rule (:mod:`.imagery.pairs`): ``cross_year`` (every scene of season A with every scene of
   season B), ``interval`` (every pair MIN_DAYS to MAX_DAYS apart) or ``sequential``, at most
   ``max_pairs_per_scene`` pairs per scene;
3. each pair through :func:`.pair_velocity.run_pair_job` into ``work_folder``, named from the two scene
   ids and the engine, so a rerun after an interruption **reuses** every finished pair (a product that
   opens and carries ``GLACIERFLOW_PRODUCT=velocity_pair`` with the same images and engine, newer than
   both images) and computes only the rest;
4. every pair measured (trusted fraction, stable-ground offset and spread, median speed) and screened
   (:mod:`.pair_table`); the pairs that pass are stacked (:func:`.stacking.run_stack_job`: vx, vy, speed,
   uncertainty, count, time span), each pair's stable-ground offset removed first and, with stable ground,
   weighted by its measured noise; the pair table (CSV) says which pairs carried the result;
5. stable-ground statistics off the buffered glacier outlines (:func:`.stable_ground.run_stable_ground`),
   optionally subtracting the median offset;
6. with a stake file, the stake table of the annual product (and optionally of every pair): CSV and HTML.

The annual product is assembled under a hidden name and renamed into place last: an error or a cancel
leaves no annual output (finished pair products stay, for the resume).
"""
from __future__ import annotations

import json
import os
import re
import shutil
import time
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

from ..errors import GlacierFlowError
from ..feedback import Feedback, JobCancelled, StageFeedback
from ..geo.area import Area
from ..geo.crs import is_geographic, transform_bounds
from ..geo.grid import Grid
from ..geo.gridspec import GridSpec, resolve_grid
from ..imagery import ImageSource, LocalFolderSource, Scene, ScenePair, pairs_by_rule, parse_months
from ..imagery.seasons import AUTO_MONTHS, Season, latest_complete_season, resolve_months, season_between, season_of
from ..imagery.seasons import season_year as season_end_year
from ..io.atomic import commit, temporary_path
from ..io.raster import BandSource
from ..products.velocity import IMAGE_A, IMAGE_B, PAIR, open_velocity
from ..velocity.flow import MOST_ACCURATE_ENGINE
from .pair_table import PairRecord, measure_pair, screen_pairs, write_pair_table

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
        year_a: the first season's year (the year it ends in); None: derived (see the module docstring).
        year_b: ``cross_year``: the second season's year (None: year_a + 1); ``interval``/``sequential``: the
            last season's year (None: year_a), pairs never span two seasons.
        area: polygon file (any CRS, all features united) or an :class:`.imagery.Area`; None: no spatial filter.
        months: months searched, like ``"6-10"`` (June to October), ``"11-3"`` (wraps the new year) or
            ``"6,7,8"``; ``"auto"``: by the area's hemisphere (6-10 north, 12-3 south); empty: all.
        rule: ``cross_year``, ``interval`` or ``sequential`` (:data:`.imagery.RULES`).
        min_days, max_days: the interval (days) of ``interval`` pairs; ``sequential`` pairs each scene with
            the next one at least ``min_days`` later, at most ``max_days``.
        max_pairs_per_scene: cap on the pairs per scene (0: none).
        season_start, season_end: ISO dates of one season instead of months and years (``interval`` and
            ``sequential`` rules).
        remove_pair_offsets: subtract each pair's stable-ground median offset before stacking (with
            outlines or stable areas).
        min_trusted_fraction: pairs trusting less of their grid (0-1) stay out of the stack.
        pair_table: the pair table CSV; None: ``<output stem>_pairs.csv`` in the report folder.
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
    year_a: int | None = None
    year_b: int | None = None
    area: str | Area | None = None
    months: str | None = AUTO_MONTHS
    rule: str = "cross_year"
    min_days: float = 5.0
    max_days: float = 40.0
    max_pairs_per_scene: int = 10
    season_start: str = ""
    season_end: str = ""
    remove_pair_offsets: bool = True
    min_trusted_fraction: float = 0.05
    pair_table: str | None = None
    max_cloud: float | None = None
    engine: str = MOST_ACCURATE_ENGINE
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
    pair_table: str | None = None
    records: list[Any] = field(default_factory=list)
    stacked_count: int = 0
    seasons: list[str] = field(default_factory=list)


# --- pairs ------------------------------------------------------------------------------------------------

def pair_product_name(pair: ScenePair, engine: str) -> str:
    """The pair product's file name: both scene ids and the engine, made file-safe."""
    def safe(text: str) -> str:
        return re.sub(r"[^A-Za-z0-9._-]+", "_", text)

    return f"{safe(pair.first.id)}__{safe(pair.second.id)}__{safe(engine)}.tif"


def is_complete_product(path: str, pair: ScenePair, engine: str, grid: Grid | None = None) -> bool:
    """True when ``path`` is a finished pair product of these images and engine, newer than both images,
    and on ``grid`` when one is given (a folder reused for another area must not lend its products)."""
    if not os.path.isfile(path):
        return False
    try:
        product = open_velocity(path)
    except GlacierFlowError:
        return False
    if product.kind != PAIR or product.engine != engine:
        return False
    if grid is not None and not product.grid.same_as(grid):
        return False
    if (product.metadata.get(IMAGE_A), product.metadata.get(IMAGE_B)) != (os.path.basename(pair.first.href),
                                                                          os.path.basename(pair.second.href)):
        return False
    product_time = os.path.getmtime(path)
    return all(not os.path.exists(s.href) or os.path.getmtime(s.href) <= product_time
               for s in (pair.first, pair.second))


def run_pairs(pairs: Sequence[ScenePair], folder: str, engine: str, outlines: str | None = None,
              pair_options: dict[str, Any] | None = None, feedback: Feedback | None = None,
              grid: Grid | None = None, failures: dict[int, str] | None = None) -> list[str]:
    """Every pair through the pair job into ``folder``, all on ``grid`` (the job's; None: each pair's own);
    finished products are reused. Returns the product paths in pair order; the log says which were reused.
    With ``failures``, a pair whose job fails (an unreadable scene, no overlap) gets ``""`` as its path and
    its message in ``failures[index]`` instead of stopping the run. Raises JobCancelled between or inside
    pairs."""
    from ..velocity.pair import PairJob, run_pair_job

    feedback = feedback or Feedback()
    os.makedirs(folder, exist_ok=True)
    products = []
    for index, pair in enumerate(pairs):
        if feedback.is_cancelled():
            raise JobCancelled("Cancelled by the user")
        path = os.path.join(folder, pair_product_name(pair, engine))
        label = f"Pair {index + 1}/{len(pairs)} {pair.first.id} -> {pair.second.id} ({pair.interval_days:.1f} days)"
        if is_complete_product(path, pair, engine, grid):
            feedback.info(f"{label}: reused {os.path.basename(path)}")
        else:
            feedback.info(f"{label}: computing")
            job = PairJob(image_a=pair.first.href, image_b=pair.second.href, output=path, band_a=pair.first.band,
                          band_b=pair.second.band, outlines=outlines, engine=engine, grid=grid,
                          **(pair_options or {}))
            stage = StageFeedback(feedback, 100.0 * index / len(pairs), 100.0 * (index + 1) / len(pairs))
            try:
                run_pair_job(job, stage)
            except (GlacierFlowError, RuntimeError, ValueError) as error:  # GDAL and OpenCV raise these too
                if failures is None:
                    raise
                failures[index] = f"the pair job failed: {error}"
                feedback.warning(f"{label}: failed ({error}); left out")
                path = ""
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


@dataclass
class SeasonPlan:
    """The season(s) a job searches and pairs in, resolved from the job (months, years or dates)."""

    rule: str
    months: str
    seasons: list[Season]
    year_a: int | None = None
    year_b: int | None = None
    why: str = ""

    @property
    def start(self) -> datetime:
        """The earliest acquisition time searched (UTC)."""
        return min(s.start for s in self.seasons)

    @property
    def end(self) -> datetime:
        """The latest acquisition time searched (UTC)."""
        return max(s.end for s in self.seasons)

    def season_index(self, scene: Scene) -> int | None:
        """Which of :attr:`seasons` holds the scene, or None."""
        return next((i for i, season in enumerate(self.seasons) if season.contains(scene.time)), None)

    def describe(self) -> str:
        """One line for the log."""
        return (f"Season(s) {', '.join(s.label for s in self.seasons)}: {self.start:%Y-%m-%d} to "
                f"{self.end:%Y-%m-%d}" + (f" ({self.why})" if self.why else ""))


def season_plan(job: AnnualJob, latitude: float | None, scenes: Sequence[Scene] | None = None,
                today: datetime | None = None) -> SeasonPlan:
    """The job's season(s): from its dates, or its months (``auto``: by ``latitude``, degrees) and years.

    Years left empty come from ``scenes`` (the latest season(s) holding them) or, without scenes (a remote
    source before its search), from the latest season over by ``today``.
    """
    from ..imagery import RULES

    if job.rule not in RULES:
        raise GlacierFlowError(f"Unknown pairing rule '{job.rule}': use one of {', '.join(RULES)}.")
    months = resolve_months(job.months, latitude)
    if job.season_start or job.season_end:
        if job.rule == "cross_year":
            raise GlacierFlowError("A start and an end date make one season; the cross_year rule pairs two "
                                   "seasons. Use the interval or sequential rule, or give years A and B.")
        return SeasonPlan(job.rule, months, [season_between(job.season_start, job.season_end)], why="given dates")
    year_a, why = job.year_a, "given years"
    cross = job.rule == "cross_year"
    if year_a is None:
        year_a, why = _default_year(months, cross, scenes, today)
    year_b = job.year_b if job.year_b is not None else (year_a + 1 if cross else year_a)
    if cross and year_b <= year_a:
        raise GlacierFlowError(f"Year B ({year_b}) must be after year A ({year_a}): for example {year_a + 1}.")
    if not cross and year_b < year_a:
        raise GlacierFlowError(f"The last season ({year_b}) is before the first ({year_a}): give a later year B "
                               "or leave it empty for one season.")
    years = [year_a, year_b] if cross else list(range(year_a, year_b + 1))
    return SeasonPlan(job.rule, months, [season_of(months, y) for y in years], year_a, year_b, why)


def _default_year(months: str, cross: bool, scenes: Sequence[Scene] | None,
                  today: datetime | None) -> tuple[int, str]:
    """Year A when the job gives none: from the scenes, else from the latest season over by ``today``."""
    month_set = parse_months(months)
    if scenes:
        counts: dict[int, int] = {}
        for scene in scenes:
            if month_set is None or scene.time.month in month_set:
                year = season_end_year(scene.time, month_set)
                counts[year] = counts.get(year, 0) + 1
        if cross:
            both = [y for y in counts if y + 1 in counts]
            if both:
                return max(both), "the latest two seasons with scenes"
        else:
            enough = [y for y, n in counts.items() if n >= 2]
            if enough:
                return max(enough), "the latest season with two scenes or more"
    latest = latest_complete_season(months, today)
    return (latest - 1, "the latest two seasons over") if cross else (latest, "the latest season over")


def scene_latitude(job: AnnualJob, scenes: Sequence[Scene] = ()) -> float | None:
    """Latitude (degrees) of the area's centre, else of the first scene's footprint, else None."""
    from ..geo.crs import to_lonlat

    area = job_area(job)
    if area is not None:
        xmin, ymin, xmax, ymax = area.bounds()
        return to_lonlat([(0.5 * (xmin + xmax), 0.5 * (ymin + ymax))], area.crs_wkt)[0][1]
    for scene in scenes:
        if scene.footprint is not None and scene.footprint_crs_wkt:
            xmin, ymin, xmax, ymax = scene.footprint
            return to_lonlat([(0.5 * (xmin + xmax), 0.5 * (ymin + ymax))], scene.footprint_crs_wkt)[0][1]
    return None


def find_pairs(job: AnnualJob, feedback: Feedback, folder: str | None = None,
               only: set[str] | None = None, plan: SeasonPlan | None = None) -> list[ScenePair]:
    """The scenes of the job's season(s) in ``folder`` (default ``job.folder``; only the files in ``only``
    when given) and their pairs by the job's rule; fails clearly when none."""
    source = LocalFolderSource(folder or job.folder)
    try:
        found = source.search(job_area(job), plan.start if plan else None, plan.end if plan else None,
                              max_cloud=job.max_cloud)
    finally:
        for name, reason in source.skipped:
            feedback.info(f"Skipped {name}: {reason}")
    if only is not None:
        found = [s for s in found if os.path.abspath(s.href) in only]
    plan = plan or season_plan(job, scene_latitude(job, found), found)
    feedback.info(f"Months {plan.months}; " + plan.describe())
    scenes = [s for s in found if plan.season_index(s) is not None]
    feedback.info(f"{len(scenes)} scene(s) in the season(s): " + ", ".join(s.id for s in scenes))
    pairs = _pairs_in_plan(job, plan, scenes)
    cap = f"at most {job.max_pairs_per_scene} per scene" if job.max_pairs_per_scene else "no cap per scene"
    if plan.rule == "cross_year":
        feedback.info(f"{len(pairs)} cross-year pair(s) ({plan.year_a} x {plan.year_b}; {cap}).")
    else:
        feedback.info(f"{len(pairs)} {plan.rule} pair(s) of {job.min_days:g} to {job.max_days:g} days ({cap}).")
    return pairs


def _pairs_in_plan(job: AnnualJob, plan: SeasonPlan, scenes: Sequence[Scene]) -> list[ScenePair]:
    """Pairs by the job's rule: cross_year between seasons A and B, the others within each season."""
    if not scenes:
        raise GlacierFlowError(f"No scene in {plan.describe()}: widen the months, the dates or the cloud limit, "
                               "or choose years with scenes.")
    if plan.rule == "cross_year":
        return pairs_by_rule(scenes, "cross_year", plan.year_a, plan.year_b, max_per_scene=job.max_pairs_per_scene,
                             year_of=lambda s: plan.seasons[0].end.year if plan.season_index(s) == 0
                             else plan.seasons[-1].end.year)
    pairs: list[ScenePair] = []
    for index in range(len(plan.seasons)):
        inside = [s for s in scenes if plan.season_index(s) == index]
        if len(inside) >= 2:
            try:
                pairs += pairs_by_rule(inside, plan.rule, min_days=job.min_days, max_days=job.max_days,
                                       max_per_scene=job.max_pairs_per_scene)
            except GlacierFlowError:
                continue  # this season has no pair in the interval; the check below speaks for all
    if not pairs:
        raise GlacierFlowError(f"No two of the {len(scenes)} scene(s) of a season are {job.min_days:g} to "
                               f"{job.max_days:g} days apart: widen the interval, the months or the dates.")
    return pairs


# --- a remote source: search over the area and download onto the job grid --------------------------------

def download_for_job(job: AnnualJob, feedback: Feedback) -> tuple[str, set[str], SeasonPlan]:
    """Search the job's source over its area in its season(s) and download the scenes onto the job grid
    into ``<work_folder>/scenes``; returns that folder, the files of this job (absolute paths) and the
    season plan."""
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
    plan = season_plan(job, scene_latitude(job))
    feedback.info(f"Months {plan.months}; " + plan.describe())
    try:
        found = source.search(area, plan.start, plan.end, months=parse_months(plan.months), max_cloud=job.max_cloud)
    finally:
        for name, reason in getattr(source, "skipped", []):
            feedback.info(f"Skipped {name}: {reason}")
    scenes, dropped = keep_valid([s for s in found if plan.season_index(s) is not None], job.min_valid_fraction)
    for scene in dropped:
        feedback.info(f"Skipped {scene.id}: only {100.0 * (scene.valid_fraction or 0.0):.0f} % of the area is usable")
    if not scenes:
        raise GlacierFlowError(f"No scene of {plan.describe()} covers enough of the area ({len(found)} found, "
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
    return folder, {os.path.abspath(p) for p in paths}, plan


# --- the whole chain --------------------------------------------------------------------------------------

def run_annual_job(job: AnnualJob, feedback: Feedback | None = None) -> AnnualResult:
    """Search, pairs, screening, stacking, stable ground and stakes; the annual output appears only on success."""
    whole = feedback or Feedback()
    started = time.perf_counter()
    _check_output(job)
    plan: SeasonPlan | None = None
    if is_local(job):
        folder, only, feedback = job.folder, None, whole
    else:
        folder, only, plan = download_for_job(job, StageFeedback(whole, 0.0, DOWNLOAD_SHARE))
        feedback = StageFeedback(whole, DOWNLOAD_SHARE, 100.0)
    pairs = find_pairs(job, feedback, folder, only, plan)
    work = _work_folder(job)
    grid = job_grid(job, pairs, feedback)
    done_before = sum(is_complete_product(os.path.join(work, pair_product_name(p, job.engine)), p, job.engine, grid)
                      for p in pairs)
    failures: dict[int, str] = {}
    products = run_pairs(pairs, work, job.engine, job.outlines, job.pair_options,
                         StageFeedback(feedback, 0.0, PAIR_SHARE), grid, failures)
    records = _pair_records(job, pairs, products, failures, feedback)
    kept = [r for r in records if r.in_stack]
    single = len(kept) == 1
    if single:
        feedback.warning("Only one pair: the annual map is that pair's velocity (count 1, uncertainty NaN). "
                         "Add scenes to either year for a stack with an uncertainty.")
    result = _assemble(job, kept, work, StageFeedback(feedback, PAIR_SHARE, 100.0))
    result.pair_products = [p for p in products if p]
    result.reused, result.computed, result.single_pair = done_before, len(result.pair_products) - done_before, single
    result.records, result.stacked_count = records, len(kept)
    result.pair_table = write_pair_table(records, job.pair_table or os.path.join(
        _report_folder(job), _stem(job) + "_pairs.csv"))
    _compare_stakes(job, result)
    result.seconds = time.perf_counter() - started
    feedback.info(f"Velocity from {len(kept)} of {len(pairs)} pair(s) ({result.reused} reused) in "
                  f"{result.seconds:.1f} s: median speed {result.median_speed:.1f} m/yr, median uncertainty "
                  f"{result.median_uncertainty:.1f} m/yr -> {job.output}; pair table {result.pair_table}")
    feedback.progress(100.0)
    return result


def _pair_records(job: AnnualJob, pairs: Sequence[ScenePair], products: Sequence[str], failures: dict[int, str],
                  feedback: Feedback) -> list[PairRecord]:
    """Measure every finished pair and decide which enter the stack (the pair table's rows)."""
    records = []
    for index, (pair, product) in enumerate(zip(pairs, products)):
        if feedback.is_cancelled():
            raise JobCancelled("Cancelled by the user")
        record = PairRecord(pair, product, reason=failures.get(index, ""))
        if product:
            measure_pair(record, job.outlines, job.stable_areas, job.buffer_m)
        records.append(record)
    screen_pairs(records, job.min_trusted_fraction, feedback=feedback)
    return records


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


def _assemble(job: AnnualJob, kept: list[PairRecord], work: str, feedback: Feedback) -> AnnualResult:
    """Stack the kept pairs (and correct) in a hidden folder of ``work``, then rename the annual product into
    place; each record gets its weight in the stack."""
    from ..velocity.stacking import StackJob, run_stack_job

    measured = all(r.has_stable_ground for r in kept)
    offsets = [(r.offset_vx, r.offset_vy) for r in kept] if measured and job.remove_pair_offsets else None
    sigmas = [r.sigma() for r in kept] if measured else None
    if offsets:
        feedback.info("Each pair's stable-ground offset is removed before stacking: "
                      + ", ".join(f"({vx:+.1f}, {vy:+.1f})" for vx, vy in offsets) + " m/yr")
    scratch = temporary_path(os.path.join(work, "annual"), create_folder=True)  # hidden; reports name the output's file
    os.makedirs(scratch)
    stacked = os.path.join(scratch, os.path.basename(job.output))
    corrected = os.path.join(scratch, _stem(job) + "_corrected.tif")
    try:
        stack = run_stack_job(StackJob([r.product for r in kept], stacked, weight_by_interval=job.weight_by_interval,
                                       offsets=offsets, uncertainties=sigmas), StageFeedback(feedback, 0.0, 60.0))
        if feedback.is_cancelled():
            raise JobCancelled("Cancelled by the user")
        stable, report = _stable_ground(job, stacked, corrected, StageFeedback(feedback, 60.0, 100.0))
        final = corrected if job.correct_offset and stable is not None else stacked
        commit(final, job.output)
        style = _move_style(final, job.output)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    weights = json.loads(stack.metadata.get("PAIR_WEIGHTS", "[]"))
    for record, weight in zip(kept, weights):
        record.weight = float(weight)
    return AnnualResult(job.output, style, [r.product for r in kept], 0, 0, stack.pair_count, stack.median_speed,
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
