"""Search parameters shared by the imagery algorithms: source, folder, area, dates, months, cloud cover."""
from __future__ import annotations

from typing import Any, Dict, List, Optional

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

SEARCH_HELP = """<h3>Search</h3>
<ul>
<li><b>Source</b>: <code>local_folder</code>, every GeoTIFF in <b>Folder</b> (sub-folders too with
<b>Search sub-folders</b>). Times come from the ACQUISITION_DATETIME tag, a Landsat MTL file beside the
image, or a Sentinel-2 / Landsat product name; files without one are skipped and listed in the log. Cloud
cover (%) is read from CLOUD_COVER-like tags or the MTL file, else left empty.</li>
<li><b>Area</b> (optional): polygons (selected features only when chosen), or else <b>Extent</b>; a scene
is kept when its footprint overlaps it. Empty: no spatial filter.</li>
<li><b>Start / end date</b> (optional, ISO-8601, UTC; a bare end date includes that whole day).</li>
<li><b>Months</b>: a range like <code>6-10</code> (June to October, the default, as the papers) or a list
like <code>6,7,8</code>; <code>11-2</code> wraps over the new year; empty: all months.</li>
<li><b>Maximum cloud cover</b> (%, optional): scenes with unknown cloud cover are kept.</li>
</ul>"""


def add_search_parameters(algorithm: QgsProcessingAlgorithm) -> None:
    """Add the shared search parameters to ``algorithm`` (their names are public API)."""
    from ..core.imagery import DEFAULT_MONTHS, SOURCE_NAMES

    algorithm.addParameter(QgsProcessingParameterEnum(
        SOURCE, "Imagery source", options=list(SOURCE_NAMES), defaultValue=SOURCE_NAMES[0], usesStaticStrings=True))
    algorithm.addParameter(QgsProcessingParameterFile(
        FOLDER, "Folder of GeoTIFFs", behavior=QgsProcessingParameterFile.Folder, optional=True))
    recursive = QgsProcessingParameterBoolean(RECURSIVE, "Search sub-folders", defaultValue=False)
    recursive.setFlags(recursive.flags() | QgsProcessingParameterDefinition.FlagAdvanced)
    algorithm.addParameter(recursive)
    algorithm.addParameter(QgsProcessingParameterFeatureSource(
        AREA, "Area (polygons)", [QgsProcessing.TypeVectorPolygon], optional=True))
    algorithm.addParameter(QgsProcessingParameterExtent(EXTENT, "Area as an extent (when no polygons)",
                                                        optional=True))
    algorithm.addParameter(QgsProcessingParameterString(START_DATE, "Start date (ISO-8601, UTC)", optional=True))
    algorithm.addParameter(QgsProcessingParameterString(END_DATE, "End date (ISO-8601, UTC)", optional=True))
    algorithm.addParameter(QgsProcessingParameterString(
        MONTHS, "Months (6-10 or 6,7,8; empty: all)", defaultValue=DEFAULT_MONTHS, optional=True))
    algorithm.addParameter(QgsProcessingParameterNumber(
        MAX_CLOUD, "Maximum cloud cover (%)", QgsProcessingParameterNumber.Double, None, optional=True,
        minValue=0.0, maxValue=100.0))


def search_from_parameters(algorithm: GlacierFlowAlgorithm, parameters: Dict[str, Any],
                           context: QgsProcessingContext, feedback: QgsProcessingFeedback) -> List[Any]:
    """Run the search the parameters describe; skipped files go to the log; errors become
    ``QgsProcessingException``."""
    from ..core.imagery import make_source, parse_date_bound, parse_months

    try:
        source = make_source(algorithm.parameterAsEnumString(parameters, SOURCE, context),
                             folder=algorithm.parameterAsFile(parameters, FOLDER, context),
                             recursive=algorithm.parameterAsBoolean(parameters, RECURSIVE, context))
        start = parse_date_bound(algorithm.parameterAsString(parameters, START_DATE, context))
        end = parse_date_bound(algorithm.parameterAsString(parameters, END_DATE, context), end=True)
        months = parse_months(algorithm.parameterAsString(parameters, MONTHS, context))
        max_cloud = algorithm.optional_double(parameters, MAX_CLOUD, context)
        area = _area(algorithm, parameters, context)
        try:
            scenes = source.search(area, start, end, months=months, max_cloud=max_cloud)
        finally:
            for name, reason in getattr(source, "skipped", []):
                feedback.pushInfo(f"Skipped {name}: {reason}")
    except GlacierFlowError as error:
        raise QgsProcessingException(str(error)) from None
    feedback.pushInfo(f"{len(scenes)} scene(s) found.")
    return scenes


def _area(algorithm: QgsProcessingAlgorithm, parameters: Dict[str, Any],
          context: QgsProcessingContext) -> Optional[Any]:
    """The search area from AREA (union of the polygons) or EXTENT, or None."""
    from ..core.imagery import Area

    wkt_format = QgsCoordinateReferenceSystem.WKT_PREFERRED_GDAL
    if parameters.get(AREA) not in (None, ""):
        source = algorithm.parameterAsSource(parameters, AREA, context)
        if source is None:
            raise GlacierFlowError("The area layer cannot be read: choose a polygon layer.")
        geometries = [f.geometry() for f in source.getFeatures() if f.hasGeometry()]
        if not geometries:
            raise GlacierFlowError("The area layer has no polygon (or none selected): draw or select one.")
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
