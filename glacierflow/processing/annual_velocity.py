"""Processing algorithm ``glacierflow:annual_velocity``: from an area, an imagery source and two years (or a
season and a pairing rule) to a velocity map with uncertainty, the pair table, the stable-ground report and
the stake table.

Its parameter names (and its id, older than its display name) are a public headless API: keep them stable.
"""
from __future__ import annotations

from typing import Any

from qgis.core import (
    QgsProcessing,
    QgsProcessingContext,
    QgsProcessingFeedback,
    QgsProcessingOutputFile,
    QgsProcessingOutputNumber,
    QgsProcessingParameterBoolean,
    QgsProcessingParameterDefinition,
    QgsProcessingParameterEnum,
    QgsProcessingParameterFeatureSink,
    QgsProcessingParameterFeatureSource,
    QgsProcessingParameterFile,
    QgsProcessingParameterFolderDestination,
    QgsProcessingParameterRasterDestination,
    QgsProcessingParameterString,
)

from ..core.velocity.flow import ENGINE_NAMES, default_engine_name
from . import grid_params, report_step, season_params
from . import imagery_params as imagery
from .base import GlacierFlowAlgorithm
from .feedback import ProcessingFeedback

HELP_TEXT = """<p>The whole velocity chain in one step: the scenes of an imagery source over an area, paired
by a <b>Pairing rule</b>, each pair tracked by the chosen engine, checked, and the pairs stacked per pixel
into one velocity map with an uncertainty, stable-ground statistics off the glacier outlines, the pair
table, and the comparison with GPS stakes.</p>
<h3>Pairing rule and season</h3>
<ul>
<li><code>cross_year</code> (the first paper's rule): every scene of the season of <b>Year A</b> with every
scene of the season of <b>Year B</b> (empty: A + 1).</li>
<li><code>interval</code>: every pair <b>Minimum interval</b> to <b>Maximum interval</b> days apart (e.g. 5 to
40) within a season: a season's velocity from scenes every few days.</li>
<li><code>sequential</code>: each scene with the next one at least the minimum interval later.</li>
<li><b>Maximum pairs per scene</b> (0: no cap) keeps a 70-scene season from making thousands of pairs: every
scene's nearest partner first, then the next nearest.</li>
<li><b>Months</b>: a season, like <code>6-10</code> or <code>11-3</code> (November to March, across the new
year); <code>auto</code> (the default) follows the area's hemisphere: <code>6-10</code> in the north,
<code>12-3</code> in the south. A season is named by the <b>year it ends in</b>: the southern summer 2019/20
is year 2020. With <code>interval</code> or <code>sequential</code>, Year A is the season and Year B the last
season (pairs never span two seasons). Empty Year A: for a local folder the latest season(s) with scenes,
for a remote source the latest season already over.</li>
<li><b>Season start</b> and <b>Season end</b> (dates, optional): one season between two dates instead of
months and years (<code>interval</code> and <code>sequential</code> rules).</li>
</ul>
<h3>Inputs</h3>
<ul>
<li><b>Imagery source</b>: <code>local_folder</code> reads the <b>Folder of GeoTIFFs</b> as it is (one
band each, dated by the ACQUISITION_DATETIME tag, a Landsat MTL file or a Sentinel-2 / Landsat product
name). Any other source (STAC, Earth Engine; settings in the advanced <b>Service URL</b>,
<b>Credentials</b> and <b>Project</b>) is searched over the area in both years, and its scenes are
downloaded onto one job grid into <code>scenes</code> inside the pair folder (as <i>Download scenes</i>
does; a rerun reuses them). The grid: the area's UTM zone, or polar stereographic beyond 72 degrees, at
the sensor's resolution (advanced <b>Pixel size</b>, m, and <b>Target CRS</b> change it); <b>Band</b>
(advanced, empty: the source's default).</li>
<li><b>Area</b>: polygons, or else an <b>extent</b>; scenes must overlap it (needed by remote sources,
optional for a local folder). <b>Months</b>: like <code>6-10</code> (the default, June to October).
<b>Maximum cloud cover</b> (%, optional). <b>Minimum valid fraction</b> (%, default 50): the share of the
area a scene must cover with usable pixels, where the source can tell (local files: kept).</li>
<li><b>Glacier outlines</b> (optional, any CRS): the pairs get a glacier band, and off-glacier ground
grown by max(2 px, 30 m) is the stable ground.</li>
<li><b>Stable areas</b> (optional, any CRS): polygons of ground you know does not move (bare rock); with
outlines, only their off-glacier part counts. Without outlines or stable areas there are no stable-ground
statistics.</li>
<li><b>GPS stakes</b> (optional): a CSV in lon/lat (WGS 84) with vx, vy or speed (m/yr), or start and end
positions with dates; or a GeoPackage / shapefile (any CRS).</li>
<li><b>Remove each pair's stable-ground offset before stacking</b> (default on, with outlines or stable
areas): a co-registration error between two scenes biases that pair only; it is measured on the pair's
stable ground and subtracted before the pairs are combined. With stable ground, each pair is also weighted
by its measured noise (inverse variance); otherwise by its interval.</li>
<li><b>Correct the stable-ground offset</b>: subtract the median offset of vx and vy left in the stack.</li>
<li><b>RAFT model</b> (advanced): an .onnx of your own (e.g. from <i>Fine-tune RAFT on your image pairs</i>)
for the raft engine.</li>
<li><b>Compare every pair with the stakes</b>: the stake table also lists each pair product, not only the
annual map.</li>
<li><b>Pair folder</b> (optional): where the pair products are kept. A rerun with the same folder reuses
every finished pair (the log says "reused"), so an interrupted run resumes. Empty: a folder named after
the output, beside it.</li>
<li><b>Report folder</b> (optional): where the reports go; empty: beside the output.</li>
</ul>
<h3>Outputs</h3>
<p>The velocity COG (bands vx, vy, speed, uncertainty, count, ..., time_span in days, see <i>Stack velocity
pairs</i>); the <b>pair table</b> (<code>&lt;output&gt;_pairs.csv</code> and a table output): for every pair
its dates, interval, trusted fraction, stable-ground offset and spread, median speed, weight, and whether it
entered the stack, with the reason when not (a failed pair, too few trusted pixels, stable ground far
noisier than the other pairs'); <code>&lt;output&gt;_stable_ground.json</code> and <code>.txt</code>, and with
stakes
<code>&lt;output&gt;_stakes.csv</code> and <code>.html</code>. A single pair still works: the log says so
and the uncertainty is NaN. A cancel leaves no annual output; finished pairs stay for the resume.</p>"""


class AnnualVelocityAlgorithm(GlacierFlowAlgorithm):
    """Annual velocity from an area, with any imagery source."""

    SOURCE = imagery.SOURCE
    FOLDER = imagery.FOLDER
    AREA = imagery.AREA
    EXTENT = imagery.EXTENT
    YEAR_A = season_params.YEAR_A
    YEAR_B = season_params.YEAR_B
    RULE = season_params.RULE
    MIN_DAYS = season_params.MIN_DAYS
    MAX_DAYS = season_params.MAX_DAYS
    MAX_PAIRS_PER_SCENE = season_params.MAX_PAIRS_PER_SCENE
    SEASON_START = "SEASON_START"
    SEASON_END = "SEASON_END"
    REMOVE_PAIR_OFFSETS = "REMOVE_PAIR_OFFSETS"
    PAIR_TABLE = "PAIR_TABLE"
    MONTHS = imagery.MONTHS
    MAX_CLOUD = imagery.MAX_CLOUD
    MIN_VALID_FRACTION = imagery.MIN_VALID_FRACTION
    ENGINE = "ENGINE"
    MODEL = "MODEL"
    OUTLINES = "OUTLINES"
    STABLE_AREAS = "STABLE_AREAS"
    STAKES = "STAKES"
    CORRECT_OFFSET = "CORRECT_OFFSET"
    COMPARE_PAIRS = "COMPARE_PAIRS"
    WORK_FOLDER = "WORK_FOLDER"
    REPORT = "REPORT"
    OUTPUT = "OUTPUT"

    ALGORITHM_ID = "annual_velocity"
    DISPLAY_NAME = "Annual velocity from an area (any imagery source)"
    GROUP = "Velocity"
    HELP = HELP_TEXT

    def initAlgorithm(self, config: dict[str, Any] | None = None) -> None:  # noqa: N802
        imagery.add_source_parameters(self, recursive=False)
        imagery.add_area_parameters(self)
        from ..core.imagery.seasons import AUTO_MONTHS

        season_params.add_pairing_parameters(self)
        imagery.add_filter_parameters(self)
        months = self.parameterDefinition(self.MONTHS)
        months.setDescription(season_params.MONTHS_LABEL)
        months.setDefaultValue(AUTO_MONTHS)
        season_params.add_interval_parameters(self)
        for name, label in ((self.SEASON_START, "Season start (date, optional: instead of months and years)"),
                            (self.SEASON_END, "Season end (date, optional)")):
            date = QgsProcessingParameterString(name, label, optional=True)
            date.setFlags(date.flags() | QgsProcessingParameterDefinition.Flag.FlagAdvanced)
            self.addParameter(date)
        self.addParameter(QgsProcessingParameterEnum(
            self.ENGINE, "Optical-flow engine", options=list(ENGINE_NAMES), defaultValue=default_engine_name(),
            usesStaticStrings=True))
        self.addParameter(QgsProcessingParameterFeatureSource(
            self.OUTLINES, "Glacier outlines (RGI polygons)",
                [QgsProcessing.SourceType.TypeVectorPolygon], optional=True))
        self.addParameter(QgsProcessingParameterFeatureSource(
            self.STABLE_AREAS, "Stable areas (polygons of ground that does not move)",
            [QgsProcessing.SourceType.TypeVectorPolygon], optional=True))
        self.addParameter(QgsProcessingParameterFile(
            self.STAKES, "GPS stakes (CSV in lon/lat, GeoPackage or shapefile)", optional=True))
        self.addParameter(QgsProcessingParameterBoolean(
            self.REMOVE_PAIR_OFFSETS, "Remove each pair's stable-ground offset before stacking", True))
        self.addParameter(QgsProcessingParameterBoolean(
            self.CORRECT_OFFSET, "Correct the stable-ground offset", False))
        self.addParameter(QgsProcessingParameterBoolean(
            self.COMPARE_PAIRS, "Compare every pair with the stakes too", False))
        self.addParameter(QgsProcessingParameterFolderDestination(
            self.WORK_FOLDER, "Pair folder (kept for a resume)", optional=True, createByDefault=False))
        self.addParameter(QgsProcessingParameterFolderDestination(
            self.REPORT, "Report folder", optional=True, createByDefault=False))
        self.addParameter(QgsProcessingParameterRasterDestination(self.OUTPUT, "Annual velocity (m/yr)"))
        report_step.add_report_parameter(self)
        self.addParameter(QgsProcessingParameterFeatureSink(
            self.PAIR_TABLE, "Pair table", QgsProcessing.SourceType.TypeVector, optional=True, createByDefault=True))
        model = QgsProcessingParameterFile(self.MODEL, "RAFT model (.onnx)",
                                           extension="onnx", optional=True)
        model.setFlags(model.flags() | QgsProcessingParameterDefinition.Flag.FlagAdvanced)
        self.addParameter(model)
        grid_params.add_grid_parameters(self, "Pixel size (m; 0: the sensor's resolution)")
        imagery.add_band_parameter(self, advanced=True)
        imagery.add_service_parameters(self)
        self.addOutput(QgsProcessingOutputNumber("PAIR_COUNT", "Number of pairs"))
        self.addOutput(QgsProcessingOutputNumber("REUSED", "Pairs reused from the pair folder"))
        self.addOutput(QgsProcessingOutputNumber("STACKED_COUNT", "Pairs that entered the stack"))
        self.addOutput(QgsProcessingOutputFile("PAIR_TABLE_CSV", "Pair table (CSV)"))
        self.addOutput(QgsProcessingOutputNumber("MEDIAN_UNCERTAINTY", "Median uncertainty (m/yr)"))
        self.addOutput(QgsProcessingOutputFile("STABLE_REPORT", "Stable-ground report (JSON)"))
        self.addOutput(QgsProcessingOutputFile("STAKES_CSV", "Stake table (CSV)"))
        self.addOutput(QgsProcessingOutputFile("STAKES_HTML", "Stake report (HTML)"))

    def process(self, parameters: dict[str, Any], context: QgsProcessingContext,
                feedback: QgsProcessingFeedback) -> dict[str, Any]:
        from ..core.workflows.annual import AnnualJob, run_annual_job
        from ..core.workflows.preflight import check_annual_inputs

        job = AnnualJob(
            folder=self.parameterAsFile(parameters, self.FOLDER, context),
            output=self.parameterAsOutputLayer(parameters, self.OUTPUT, context),
            area=imagery.area_from_parameters(self, parameters, context),
            max_cloud=self._optional(parameters, self.MAX_CLOUD, lambda: self.parameterAsDouble(
                parameters, self.MAX_CLOUD, context)),
            **season_params.season_options(self, parameters, context),
            season_start=self.parameterAsString(parameters, self.SEASON_START, context).strip(),
            season_end=self.parameterAsString(parameters, self.SEASON_END, context).strip(),
            remove_pair_offsets=self.parameterAsBoolean(parameters, self.REMOVE_PAIR_OFFSETS, context),
            engine=self.parameterAsEnumString(parameters, self.ENGINE, context),
            outlines=self.vector_path(parameters, self.OUTLINES, context, feedback),
            stable_areas=self.vector_path(parameters, self.STABLE_AREAS, context, feedback),
            stakes=self.parameterAsFile(parameters, self.STAKES, context) or None,
            correct_offset=self.parameterAsBoolean(parameters, self.CORRECT_OFFSET, context),
            compare_pairs=self.parameterAsBoolean(parameters, self.COMPARE_PAIRS, context),
            work_folder=self._folder(parameters, self.WORK_FOLDER, context),
            report_folder=self._folder(parameters, self.REPORT, context),
            source=self.parameterAsEnumString(parameters, self.SOURCE, context),
            source_settings=imagery.service_settings(self, parameters, context),
            min_valid_fraction=imagery.min_valid_fraction(self, parameters, context),
            grid_spec=grid_params.grid_spec(self, parameters, context),
            band=imagery.band_name(self, parameters, context),
            pair_options={"engine_params": self.raft_model(parameters, context)})
        check_annual_inputs(job)  # every input read before the first pair: a bad one fails now, not in hours
        report = report_step.report_path(self, parameters, context)
        result = run_annual_job(job, ProcessingFeedback(feedback))
        pictures = report_step.velocity_report(report, result.output, job.outlines, job.stable_areas, job.stakes)
        outputs = {**pictures, self.OUTPUT: result.output, "PAIR_COUNT": result.pair_count, "REUSED": result.reused,
                   "STACKED_COUNT": result.stacked_count, "PAIR_TABLE_CSV": result.pair_table,
                   "MEDIAN_UNCERTAINTY": result.median_uncertainty, "STABLE_REPORT": result.stable_report,
                   "STAKES_CSV": result.stakes_csv, "STAKES_HTML": result.stakes_html}
        if not self.is_unset(parameters, self.PAIR_TABLE):
            from ..core.workflows.pair_table import TABLE_COLUMNS

            outputs[self.PAIR_TABLE] = self.write_table(parameters, self.PAIR_TABLE, context, TABLE_COLUMNS,
                                                        [record.typed_row() for record in result.records])
        return outputs

    @staticmethod
    def _optional(parameters: dict[str, Any], name: str, read: Any) -> Any:
        return None if GlacierFlowAlgorithm.is_unset(parameters, name) else read()

    def _folder(self, parameters: dict[str, Any], name: str, context: QgsProcessingContext) -> str | None:
        if self.is_unset(parameters, name):
            return None
        return self.parameterAsFileOutput(parameters, name, context) or None
