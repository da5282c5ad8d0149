"""Processing algorithm ``glacierflow:regional_velocity``: many glaciers and many pairs with the same core, in
QGIS's process or on Dask distributed (a local cluster or a running one); one folder per glacier and
``index.gpkg``."""
from __future__ import annotations

from typing import Any

from qgis.core import (
    QgsProcessing,
    QgsProcessingContext,
    QgsProcessingFeedback,
    QgsProcessingOutputNumber,
    QgsProcessingOutputVectorLayer,
    QgsProcessingParameterDefinition,
    QgsProcessingParameterEnum,
    QgsProcessingParameterFeatureSource,
    QgsProcessingParameterField,
    QgsProcessingParameterFolderDestination,
    QgsProcessingParameterNumber,
    QgsProcessingParameterString,
)

from ..core.velocity.flow import ENGINE_NAMES, default_engine_name
from . import imagery_params as imagery
from . import season_params
from .base import GlacierFlowAlgorithm
from .feedback import ProcessingFeedback

HELP_TEXT = """<p>Velocity for every glacier of a region with the same chain as <i>Annual velocity from an
area</i>: glaciers close to each other are grouped into job areas (a scene is read once for all the glaciers
it covers), every (area, pair) is a task, each area's pairs are checked once, and each glacier gets its own
stack on its window of the area grid.</p>
<h3>Where it runs</h3>
<ul>
<li><b>Scheduler</b> empty and <b>Workers</b> &gt; 0: a Dask <code>LocalCluster</code> of that many worker
processes (one thread, <b>Memory per worker</b> each) on this machine; the dashboard link goes to the log.</li>
<li><b>Scheduler</b> an address (<code>tcp://host:8786</code>): a running Dask cluster (<code>dask scheduler</code>
and <code>dask worker</code>, dask-jobqueue on SLURM, Kubernetes). Workers need only
<code>requirements/worker.txt</code> and this plugin's folder on their PYTHONPATH, no QGIS.</li>
<li><b>Workers</b> 0 and no scheduler: in this process, one task after the other (no Dask needed).</li>
</ul>
<p>A task whose worker dies runs again elsewhere; a rerun with the same output folder skips every complete
pair and glacier; a cancel cancels the remaining tasks and keeps the complete glaciers. The same job runs
without QGIS: <code>python -m glacierflow.regional --help</code>.</p>
<h3>Inputs</h3>
<ul>
<li><b>Glacier outlines</b>: one polygon per glacier (an RGI layer); <b>Glacier id field</b> (empty: RGIId or
the like, else the feature id). <b>Group distance</b> (m): glaciers this close share scenes and pairs.
<b>Minimum glacier area</b> (km2).</li>
<li>Source, folder, season, months and pairing rule as in <i>Annual velocity from an area</i>; a remote
source (STAC, Earth Engine) takes the same advanced <b>Service URL</b>, <b>Credentials</b> and
<b>Project</b>, and its scenes are fetched once per job area. Give the years: without them a remote source
searches the latest two seasons.</li>
</ul>
<h3>Outputs</h3>
<p>In the <b>Output folder</b>: one folder per glacier (<code>velocity.tif</code> in m/yr with its style,
<code>outline.geojson</code>, <code>pairs.csv</code>, <code>stable_ground.json</code>, <code>summary.json</code>),
the pair products under <code>_areas</code>, and <code>index.gpkg</code>: one row per glacier with its outline,
status, pair count, coverage, median and 95th-percentile speed, median uncertainty, stable-ground offset and
the product's path.</p>"""


class RegionalVelocityAlgorithm(GlacierFlowAlgorithm):
    """Velocity for many glaciers, in this process or on Dask."""

    OUTLINES = "OUTLINES"
    ID_FIELD = "ID_FIELD"
    SOURCE = imagery.SOURCE
    FOLDER = imagery.FOLDER
    MONTHS = imagery.MONTHS
    MAX_CLOUD = imagery.MAX_CLOUD
    ENGINE = "ENGINE"
    GROUP_DISTANCE = "GROUP_DISTANCE"
    MIN_AREA = "MIN_AREA"
    SCHEDULER = "SCHEDULER"
    WORKERS = "WORKERS"
    MEMORY_PER_WORKER = "MEMORY_PER_WORKER"
    RETRIES = "RETRIES"
    OUTPUT = "OUTPUT"

    CANCELLED_LEAVES = ("the glaciers complete before the cancel stay in the output folder (index.gpkg is "
                        "written by a complete run); run again into the same folder to resume.")

    ALGORITHM_ID = "regional_velocity"
    DISPLAY_NAME = "Regional velocity (many glaciers, on Dask)"
    GROUP = "Velocity"
    HELP = HELP_TEXT

    def initAlgorithm(self, config: dict[str, Any] | None = None) -> None:  # noqa: N802
        from ..core.imagery.seasons import AUTO_MONTHS

        self.addParameter(QgsProcessingParameterFeatureSource(
            self.OUTLINES, "Glacier outlines (one polygon per glacier)", [QgsProcessing.SourceType.TypeVectorPolygon]))
        self.addParameter(QgsProcessingParameterField(
            self.ID_FIELD, "Glacier id field (empty: RGIId or the like)", parentLayerParameterName=self.OUTLINES,
            optional=True))
        imagery.add_source_parameters(self, recursive=False)
        imagery.add_service_parameters(self)
        season_params.add_pairing_parameters(self)
        self.addParameter(QgsProcessingParameterString(
            self.MONTHS, season_params.MONTHS_LABEL, defaultValue=AUTO_MONTHS, optional=True))
        self.addParameter(QgsProcessingParameterNumber(
            self.MAX_CLOUD, "Maximum cloud cover (%)", QgsProcessingParameterNumber.Type.Double, None, optional=True,
            minValue=0.0, maxValue=100.0))
        season_params.add_interval_parameters(self)
        self.addParameter(QgsProcessingParameterEnum(
            self.ENGINE, "Optical-flow engine", options=list(ENGINE_NAMES), defaultValue=default_engine_name(),
            usesStaticStrings=True))
        self.addParameter(QgsProcessingParameterNumber(
            self.GROUP_DISTANCE, "Group distance (m): glaciers this close share scenes",
            QgsProcessingParameterNumber.Type.Double, 5000.0, minValue=0.0))
        self.addParameter(QgsProcessingParameterNumber(
            self.MIN_AREA, "Minimum glacier area (km2)", QgsProcessingParameterNumber.Type.Double, 0.0, minValue=0.0))
        self.addParameter(QgsProcessingParameterString(
            self.SCHEDULER, "Dask scheduler address (empty: a local cluster on this machine)", optional=True))
        self.addParameter(QgsProcessingParameterNumber(
            self.WORKERS, "Workers of the local cluster (0: in this process, no Dask)",
            QgsProcessingParameterNumber.Type.Integer, 2, minValue=0))
        memory = QgsProcessingParameterString(self.MEMORY_PER_WORKER, "Memory per worker", defaultValue="4GB")
        retries = QgsProcessingParameterNumber(self.RETRIES, "Retries of a failed task",
                                               QgsProcessingParameterNumber.Type.Integer, 2, minValue=0)
        for advanced in (memory, retries):
            advanced.setFlags(advanced.flags() | QgsProcessingParameterDefinition.Flag.FlagAdvanced)
            self.addParameter(advanced)
        self.addParameter(QgsProcessingParameterFolderDestination(self.OUTPUT, "Output folder"))
        self.addOutput(QgsProcessingOutputVectorLayer("INDEX", "Glacier index (index.gpkg)"))
        self.addOutput(QgsProcessingOutputNumber("GLACIER_COUNT", "Glaciers"))
        self.addOutput(QgsProcessingOutputNumber("COMPLETE_COUNT", "Glaciers complete"))
        self.addOutput(QgsProcessingOutputNumber("TASKS_RUN", "Tasks run (0: everything was complete)"))

    def process(self, parameters: dict[str, Any], context: QgsProcessingContext,
                feedback: QgsProcessingFeedback) -> dict[str, Any]:
        from ..core.workflows.regional import RegionalJob, run_regional_job

        job = RegionalJob(
            outlines=str(self.vector_path(parameters, self.OUTLINES, context, feedback)),
            output=self.parameterAsFileOutput(parameters, self.OUTPUT, context),
            folder=self.parameterAsFile(parameters, self.FOLDER, context),
            source=self.parameterAsEnumString(parameters, self.SOURCE, context),
            source_settings=imagery.service_settings(self, parameters, context),
            id_field=(self.parameterAsFields(parameters, self.ID_FIELD, context) or [""])[0],
            max_cloud=self.optional_double(parameters, self.MAX_CLOUD, context),
            **season_params.season_options(self, parameters, context),
            engine=self.parameterAsEnumString(parameters, self.ENGINE, context),
            group_distance_m=self.parameterAsDouble(parameters, self.GROUP_DISTANCE, context),
            min_area_km2=self.parameterAsDouble(parameters, self.MIN_AREA, context),
            scheduler=self.parameterAsString(parameters, self.SCHEDULER, context).strip(),
            workers=self.parameterAsInt(parameters, self.WORKERS, context),
            memory_per_worker=self.parameterAsString(parameters, self.MEMORY_PER_WORKER, context) or "4GB",
            retries=self.parameterAsInt(parameters, self.RETRIES, context))
        result = run_regional_job(job, ProcessingFeedback(feedback))
        return {self.OUTPUT: job.output, "INDEX": result.index, "GLACIER_COUNT": len(result.rows),
                "COMPLETE_COUNT": sum(r.get("status") == "complete" for r in result.rows),
                "TASKS_RUN": result.tasks_run}
