"""Processing algorithm ``glacierflow:image_pairs``: which scenes to pair for velocity.

Its parameter names are a public headless API: keep them stable.
"""
from __future__ import annotations

from typing import Any

from qgis.core import (
    QgsProcessing,
    QgsProcessingContext,
    QgsProcessingFeedback,
    QgsProcessingParameterEnum,
    QgsProcessingParameterFeatureSink,
    QgsProcessingParameterFileDestination,
    QgsProcessingParameterNumber,
)

from .base import GlacierFlowAlgorithm
from .imagery_params import SEARCH_HELP, add_search_parameters, search_from_parameters

HELP_TEXT = """<p>Searches scenes as <i>Search scenes</i> does and pairs them, always earlier with later,
never two scenes of the same time.</p>
<h3>Rules</h3>
<ul>
<li><b>cross_year</b> (the first paper's rule): every scene of <b>Year A</b> with every scene of
<b>Year B</b>. Empty Year A: the earliest scene's year; empty Year B: Year A + 1.</li>
<li><b>interval</b>: every pair between <b>Minimum</b> and <b>Maximum interval</b> days apart
(inclusive).</li>
</ul>""" + SEARCH_HELP + """
<h3>Output</h3>
<p>A table (no geometry), one row per pair: <b>first_id</b>, <b>second_id</b>, <b>first_datetime</b>,
<b>second_datetime</b> (ISO-8601, UTC), <b>interval_days</b> (exact to the second), <b>first_path</b>,
<b>second_path</b>; optionally the same as a CSV file.</p>"""


PAIR_COLUMNS = (("first_id", "string"), ("second_id", "string"), ("first_datetime", "string"),
                ("second_datetime", "string"), ("interval_days", "double"),
                ("first_path", "string"), ("second_path", "string"))


class ImagePairsAlgorithm(GlacierFlowAlgorithm):
    """Pair the scenes of an imagery source by a rule."""

    RULE = "RULE"
    YEAR_A = "YEAR_A"
    YEAR_B = "YEAR_B"
    MIN_DAYS = "MIN_DAYS"
    MAX_DAYS = "MAX_DAYS"
    OUTPUT = "OUTPUT"
    CSV = "CSV"

    ALGORITHM_ID = "image_pairs"
    DISPLAY_NAME = "Image pairs"
    GROUP = "Imagery"
    HELP = HELP_TEXT

    def initAlgorithm(self, config: dict[str, Any] | None = None) -> None:  # noqa: N802
        from ..core.imagery import RULES

        add_search_parameters(self)
        self.addParameter(QgsProcessingParameterEnum(
            self.RULE, "Pairing rule", options=list(RULES), defaultValue=RULES[0], usesStaticStrings=True))
        self.addParameter(QgsProcessingParameterNumber(
            self.YEAR_A, "Year A (cross_year; empty: the earliest scene's)", QgsProcessingParameterNumber.Type.Integer,
            None, optional=True, minValue=1972, maxValue=2200))
        self.addParameter(QgsProcessingParameterNumber(
            self.YEAR_B, "Year B (cross_year; empty: year A + 1)", QgsProcessingParameterNumber.Type.Integer,
            None, optional=True, minValue=1972, maxValue=2200))
        self.addParameter(QgsProcessingParameterNumber(
            self.MIN_DAYS, "Minimum interval (days; interval rule)", QgsProcessingParameterNumber.Type.Double, 5.0,
            minValue=0.0))
        self.addParameter(QgsProcessingParameterNumber(
            self.MAX_DAYS, "Maximum interval (days; interval rule)", QgsProcessingParameterNumber.Type.Double, 400.0,
            minValue=0.0))
        self.addParameter(QgsProcessingParameterFeatureSink(self.OUTPUT, "Pairs", QgsProcessing.SourceType.TypeVector))
        self.addParameter(QgsProcessingParameterFileDestination(
            self.CSV, "Pairs as CSV", "CSV files (*.csv)", optional=True, createByDefault=False))

    def process(self, parameters: dict[str, Any], context: QgsProcessingContext,
                feedback: QgsProcessingFeedback) -> dict[str, Any]:
        from ..core.imagery import pairs_by_rule, write_pairs_csv

        scenes = search_from_parameters(self, parameters, context, feedback)
        csv_path = self.parameterAsFileOutput(parameters, self.CSV, context)
        pairs = pairs_by_rule(
            scenes, self.parameterAsEnumString(parameters, self.RULE, context),
            year_a=self.optional_int(parameters, self.YEAR_A, context),
            year_b=self.optional_int(parameters, self.YEAR_B, context),
            min_days=self.parameterAsDouble(parameters, self.MIN_DAYS, context),
            max_days=self.parameterAsDouble(parameters, self.MAX_DAYS, context))
        if csv_path:
            write_pairs_csv(pairs, csv_path)
        dest_id = self.write_table(parameters, self.OUTPUT, context, PAIR_COLUMNS,
                                   ([pair.first.id, pair.second.id, pair.first.time.isoformat(),
                                     pair.second.time.isoformat(), pair.interval_days, pair.first.href,
                                     pair.second.href] for pair in pairs))
        feedback.pushInfo(f"{len(pairs)} pair(s).")
        result: dict[str, Any] = {self.OUTPUT: dest_id}
        if csv_path:
            result[self.CSV] = csv_path
        return result
