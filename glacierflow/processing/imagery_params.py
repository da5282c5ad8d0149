"""Search parameters shared by the imagery algorithms: source, folder, area, dates, months, cloud cover,
valid fraction, the remote services' settings and the job grid.

Their names are public headless API (the dock uses them too): keep them stable.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from qgis.core import (
    QgsCoordinateReferenceSystem,
    QgsGeometry,
    QgsProcessing,
    QgsProcessingAlgorithm,
    QgsProcessingContext,
    QgsProcessingException,
    QgsProcessingFeedback,
    QgsProcessingParameterBoolean,
    QgsProcessingParameterDefinition,
    QgsProcessingParameterEnum,
    QgsProcessingParameterExtent,
    QgsProcessingParameterFeatureSource,
    QgsProcessingParameterFile,
    QgsProcessingParameterNumber,
    QgsProcessingParameterString,
)

from ..core.errors import GlacierFlowError
from .base import GlacierFlowAlgorithm

SOURCE = "SOURCE"
FOLDER = "FOLDER"
RECURSIVE = "RECURSIVE"
AREA = "AREA"
EXTENT = "EXTENT"
START_DATE = "START_DATE"
END_DATE = "END_DATE"
MONTHS = "MONTHS"
MAX_CLOUD = "MAX_CLOUD"
MIN_VALID_FRACTION = "MIN_VALID_FRACTION"
SOURCE_URL = "SOURCE_URL"
CREDENTIALS = "CREDENTIALS"
PROJECT = "PROJECT"
BAND = "BAND"

DEFAULT_MIN_VALID_PERCENT = 50.0

SEARCH_HELP = """<h3>Search</h3>
<ul>
<li><b>Source</b>: <code>local_folder</code>, every GeoTIFF in <b>Folder</b> (sub-folders too with
<b>Search sub-folders</b>). Times come from the ACQUISITION_DATETIME tag, a Landsat MTL file beside the
image, or a Sentinel-2 / Landsat product name; files without one are skipped and listed in the log. Cloud
cover (%) is read from CLOUD_COVER-like tags or the MTL file, else left empty. Remote sources (STAC, Earth
Engine) take their settings from the advanced parameters <b>Service URL</b>, <b>Credentials</b> (a
service-account key file) and <b>Project</b>.</li>
<li><b>Area</b> (optional): polygons (selected features only when chosen), or else <b>Extent</b>; a scene
is kept when its footprint overlaps it. Empty: no spatial filter.</li>
<li><b>Start / end date</b> (optional, ISO-8601, UTC; a bare end date includes that whole day).</li>
<li><b>Months</b>: a range like <code>6-10</code> (June to October, the default, as the papers) or a list
like <code>6,7,8</code>; <code>11-2</code> wraps over the new year; empty: all months.</li>
<li><b>Maximum cloud cover</b> (%, optional): scenes with unknown cloud cover are kept.</li>
<li><b>Minimum valid fraction</b> (%, default 50): the share of the area a scene must cover with usable
pixels (not cloud, not fill), where the source can tell; a local file cannot, and is kept.</li>
</ul>"""

GRID_HELP = """<h3>Job grid</h3>
<p>Every scene is warped once onto one grid: the area's UTM zone (WGS 84), or polar stereographic
poleward of 72 degrees (EPSG:3413 north, EPSG:3031 south), unless <b>Target CRS</b> names another
projected CRS; north-up, its edges on whole multiples of the pixel size so reruns hit the cache. An area
across UTM zones uses its centroid's zone (the log gives the scale error at its edge); a lon/lat polygon
across the antimeridian is read the short way. <b>Pixel size</b> (m; 0: the sensor's: Sentinel-2 B8 10 m,
Landsat OLI 30 m, Landsat panchromatic 15 m, a local file's own). An area over 20000 px a side is refused:
draw a smaller one or choose larger pixels.</p>"""


def add_source_parameters(algorithm: QgsProcessingAlgorithm, recursive: bool = True) -> None:
    """SOURCE and FOLDER (and RECURSIVE, advanced)."""
    from ..core.imagery import SOURCE_NAMES

    algorithm.addParameter(QgsProcessingParameterEnum(
        SOURCE, "Imagery source", options=list(SOURCE_NAMES), defaultValue=SOURCE_NAMES[0], usesStaticStrings=True))
    algorithm.addParameter(QgsProcessingParameterFile(
        FOLDER, "Folder of GeoTIFFs (local_folder source)", behavior=QgsProcessingParameterFile.Behavior.Folder,
        optional=True))
    if recursive:
        _add_advanced(algorithm, QgsProcessingParameterBoolean(RECURSIVE, "Search sub-folders", defaultValue=False))


def add_area_parameters(algorithm: QgsProcessingAlgorithm) -> None:
    """AREA (polygons) and EXTENT (used when no polygons are given)."""
    algorithm.addParameter(QgsProcessingParameterFeatureSource(
        AREA, "Area (polygons)", [QgsProcessing.SourceType.TypeVectorPolygon], optional=True))
    algorithm.addParameter(QgsProcessingParameterExtent(EXTENT, "Area as an extent (when no polygons)",
                                                        optional=True))


def add_filter_parameters(algorithm: QgsProcessingAlgorithm) -> None:
    """MONTHS, MAX_CLOUD (%) and MIN_VALID_FRACTION (%)."""
    from ..core.imagery import DEFAULT_MONTHS

    algorithm.addParameter(QgsProcessingParameterString(
        MONTHS, "Months (6-10 or 6,7,8; empty: all)", defaultValue=DEFAULT_MONTHS, optional=True))
    algorithm.addParameter(QgsProcessingParameterNumber(
        MAX_CLOUD, "Maximum cloud cover (%)", QgsProcessingParameterNumber.Type.Double, None, optional=True,
        minValue=0.0, maxValue=100.0))
    algorithm.addParameter(QgsProcessingParameterNumber(
        MIN_VALID_FRACTION, "Minimum valid fraction of the area (%; where the source can tell)",
        QgsProcessingParameterNumber.Type.Double, DEFAULT_MIN_VALID_PERCENT, optional=True, minValue=0.0,
            maxValue=100.0))


def add_service_parameters(algorithm: QgsProcessingAlgorithm) -> None:
    """SOURCE_URL, CREDENTIALS and PROJECT: settings of remote sources (advanced)."""
    _add_advanced(algorithm, QgsProcessingParameterString(
        SOURCE_URL, "Service URL (STAC API; empty: the source's default)", optional=True))
    _add_advanced(algorithm, QgsProcessingParameterFile(
        CREDENTIALS, "Credentials (service-account key file, JSON)", optional=True))
    _add_advanced(algorithm, QgsProcessingParameterString(
        PROJECT, "Project (Earth Engine cloud project id)", optional=True))


def add_band_parameter(algorithm: QgsProcessingAlgorithm, advanced: bool = False) -> None:
    """BAND (empty: the source's default)."""
    parameter = QgsProcessingParameterString(BAND, "Band (nir, green, swir1, ...; empty: the source's default)",
                                             optional=True)
    if advanced:
        _add_advanced(algorithm, parameter)
    else:
        algorithm.addParameter(parameter)


def add_search_parameters(algorithm: QgsProcessingAlgorithm) -> None:
    """Add the shared search parameters to ``algorithm`` (their names are public API)."""
    add_source_parameters(algorithm)
    add_area_parameters(algorithm)
    algorithm.addParameter(QgsProcessingParameterString(START_DATE, "Start date (ISO-8601, UTC)", optional=True))
    algorithm.addParameter(QgsProcessingParameterString(END_DATE, "End date (ISO-8601, UTC)", optional=True))
    add_filter_parameters(algorithm)
    add_service_parameters(algorithm)


def _add_advanced(algorithm: QgsProcessingAlgorithm, parameter: QgsProcessingParameterDefinition) -> None:
    parameter.setFlags(parameter.flags() | QgsProcessingParameterDefinition.Flag.FlagAdvanced)
    algorithm.addParameter(parameter)


@dataclass
class SearchRequest:
    """A search as the parameters describe it (core objects; dates UTC, valid fraction 0-1)."""

    source: Any
    area: Any | None
    start: datetime | None
    end: datetime | None
    months: set[int] | None
    max_cloud: float | None
    min_valid_fraction: float | None


def min_valid_fraction(algorithm: GlacierFlowAlgorithm, parameters: dict[str, Any],
                       context: QgsProcessingContext) -> float | None:
    """MIN_VALID_FRACTION as a share (0-1): 50 % when absent, None when set to 0."""
    if MIN_VALID_FRACTION not in parameters:
        return DEFAULT_MIN_VALID_PERCENT / 100.0
    percent = algorithm.optional_double(parameters, MIN_VALID_FRACTION, context)
    return percent / 100.0 if percent else None


def service_settings(algorithm: GlacierFlowAlgorithm, parameters: dict[str, Any],
                     context: QgsProcessingContext) -> dict[str, str]:
    """SOURCE_URL, CREDENTIALS and PROJECT as the keyword arguments of ``make_source`` (url, credentials,
    project); empty ones are left out."""
    settings = {"url": algorithm.parameterAsString(parameters, SOURCE_URL, context).strip(),
                "credentials": algorithm.parameterAsFile(parameters, CREDENTIALS, context).strip(),
                "project": algorithm.parameterAsString(parameters, PROJECT, context).strip()}
    return {key: value for key, value in settings.items() if value}


def source_from_parameters(algorithm: GlacierFlowAlgorithm, parameters: dict[str, Any],
                           context: QgsProcessingContext) -> Any:
    """The imagery source the parameters name, configured (core errors pass through)."""
    from ..core.imagery.download import open_source

    recursive = RECURSIVE in parameters and algorithm.parameterAsBoolean(parameters, RECURSIVE, context)
    return open_source(algorithm.parameterAsEnumString(parameters, SOURCE, context),
                       folder=algorithm.parameterAsFile(parameters, FOLDER, context), recursive=recursive,
                       min_valid_fraction=min_valid_fraction(algorithm, parameters, context),
                       **service_settings(algorithm, parameters, context))


def search_request(algorithm: GlacierFlowAlgorithm, parameters: dict[str, Any],
                   context: QgsProcessingContext) -> SearchRequest:
    """The parameters as a :class:`SearchRequest` (core errors pass through)."""
    from ..core.imagery import parse_date_bound, parse_months

    return SearchRequest(
        source=source_from_parameters(algorithm, parameters, context),
        area=area_from_parameters(algorithm, parameters, context),
        start=parse_date_bound(algorithm.parameterAsString(parameters, START_DATE, context)),
        end=parse_date_bound(algorithm.parameterAsString(parameters, END_DATE, context), end=True),
        months=parse_months(algorithm.parameterAsString(parameters, MONTHS, context)),
        max_cloud=algorithm.optional_double(parameters, MAX_CLOUD, context),
        min_valid_fraction=min_valid_fraction(algorithm, parameters, context))


def run_search(request: SearchRequest, feedback: QgsProcessingFeedback) -> list[Any]:
    """The scenes of ``request``; skipped files and scenes short of the valid fraction go to the log."""
    from ..core.imagery.download import keep_valid

    try:
        found = request.source.search(request.area, request.start, request.end, months=request.months,
                                      max_cloud=request.max_cloud)
    finally:
        for name, reason in getattr(request.source, "skipped", []):
            feedback.pushInfo(f"Skipped {name}: {reason}")
    scenes, dropped = keep_valid(found, request.min_valid_fraction)
    for scene in dropped:
        feedback.pushInfo(f"Skipped {scene.id}: only {100.0 * scene.valid_fraction:.0f} % of the area is usable")
    if not scenes:
        raise GlacierFlowError(f"No scene covers {100.0 * (request.min_valid_fraction or 0):.0f} % of the area with "
                               f"usable pixels ({len(found)} found): lower the minimum valid fraction or widen "
                               "the search.")
    feedback.pushInfo(f"{len(scenes)} scene(s) found.")
    return scenes


def search_from_parameters(algorithm: GlacierFlowAlgorithm, parameters: dict[str, Any],
                           context: QgsProcessingContext, feedback: QgsProcessingFeedback) -> list[Any]:
    """Run the search the parameters describe; skipped files go to the log; errors become
    ``QgsProcessingException``."""
    try:
        return run_search(search_request(algorithm, parameters, context), feedback)
    except GlacierFlowError as error:
        raise QgsProcessingException(str(error)) from None


def area_from_parameters(algorithm: QgsProcessingAlgorithm, parameters: dict[str, Any],
                         context: QgsProcessingContext) -> Any | None:
    """The search area from AREA (union of the polygons) or EXTENT, or None."""
    from ..core.geo.area import Area

    wkt_format = QgsCoordinateReferenceSystem.WKT_PREFERRED_GDAL
    if parameters.get(AREA) not in (None, ""):
        source = algorithm.parameterAsSource(parameters, AREA, context)
        if source is None:
            raise GlacierFlowError("The area layer cannot be read: choose a polygon layer.")
        geometries = [f.geometry() for f in source.getFeatures() if f.hasGeometry()]
        if not geometries:
            raise GlacierFlowError("The area layer has no polygon (or none selected): draw or select one.")
        if not source.sourceCrs().isValid():
            raise GlacierFlowError("The area layer has no CRS: set it (Layer Properties > Source) and run again.")
        union = QgsGeometry.unaryUnion(geometries)
        return Area(union.asWkt(), source.sourceCrs().toWkt(wkt_format))
    if parameters.get(EXTENT) not in (None, ""):
        crs = algorithm.parameterAsExtentCrs(parameters, EXTENT, context)
        extent = algorithm.parameterAsExtent(parameters, EXTENT, context, crs)
        if extent.isNull() or extent.isEmpty():
            return None
        if not crs.isValid():
            raise GlacierFlowError("The extent has no CRS: choose it on the map or give it as "
                                   "'xmin,xmax,ymin,ymax [EPSG:code]'.")
        return Area(QgsGeometry.fromRect(extent).asWkt(), crs.toWkt(wkt_format))
    return None


def band_name(algorithm: GlacierFlowAlgorithm, parameters: dict[str, Any], context: QgsProcessingContext) -> str:
    """BAND ("" for the source's default)."""
    return algorithm.parameterAsString(parameters, BAND, context).strip()
