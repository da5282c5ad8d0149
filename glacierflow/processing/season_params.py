"""The season and pairing parameters that the annual and regional algorithms share, declared and read once.

Their names are a public headless API: keep them stable.
"""
from __future__ import annotations

from typing import Any

from qgis.core import (
    QgsProcessingAlgorithm,
    QgsProcessingContext,
    QgsProcessingParameterEnum,
    QgsProcessingParameterNumber,
)

RULE = "RULE"
YEAR_A = "YEAR_A"
YEAR_B = "YEAR_B"
MONTHS = "MONTHS"
MIN_DAYS = "MIN_DAYS"
MAX_DAYS = "MAX_DAYS"
MAX_PAIRS_PER_SCENE = "MAX_PAIRS_PER_SCENE"
MONTHS_LABEL = "Months (auto: 6-10 north, 12-3 south; 11-3 wraps the new year; empty: all)"


def add_pairing_parameters(algorithm: QgsProcessingAlgorithm) -> None:
    """RULE, YEAR_A and YEAR_B (years: the year a season ends in)."""
    from ..core.imagery import RULES

    algorithm.addParameter(QgsProcessingParameterEnum(
        RULE, "Pairing rule", options=list(RULES), defaultValue=RULES[0], usesStaticStrings=True))
    algorithm.addParameter(QgsProcessingParameterNumber(
        YEAR_A, "Year A (the year its season ends in; empty: the latest season(s) with scenes)",
        QgsProcessingParameterNumber.Type.Integer, None, optional=True, minValue=1972, maxValue=2100))
    algorithm.addParameter(QgsProcessingParameterNumber(
        YEAR_B, "Year B (cross_year, empty: year A + 1; other rules: the last season, empty: year A)",
        QgsProcessingParameterNumber.Type.Integer, None, optional=True, minValue=1972, maxValue=2100))


def add_interval_parameters(algorithm: QgsProcessingAlgorithm) -> None:
    """MIN_DAYS and MAX_DAYS (days) of the interval and sequential rules, and the cap MAX_PAIRS_PER_SCENE."""
    algorithm.addParameter(QgsProcessingParameterNumber(
        MIN_DAYS, "Minimum interval (days; interval and sequential rules)",
        QgsProcessingParameterNumber.Type.Double, 5.0, minValue=0.0))
    algorithm.addParameter(QgsProcessingParameterNumber(
        MAX_DAYS, "Maximum interval (days; interval and sequential rules)",
        QgsProcessingParameterNumber.Type.Double, 40.0, minValue=0.0))
    algorithm.addParameter(QgsProcessingParameterNumber(
        MAX_PAIRS_PER_SCENE, "Maximum pairs per scene (0: no cap)",
        QgsProcessingParameterNumber.Type.Integer, 10, minValue=0))


def season_options(algorithm: Any, parameters: dict[str, Any], context: QgsProcessingContext) -> dict[str, Any]:
    """The job fields these parameters set: year_a, year_b, months, rule, min_days, max_days (days),
    max_pairs_per_scene. ``algorithm`` is a :class:`.base.GlacierFlowAlgorithm`."""
    return {
        "year_a": algorithm.optional_int(parameters, YEAR_A, context),
        "year_b": algorithm.optional_int(parameters, YEAR_B, context),
        "months": algorithm.parameterAsString(parameters, MONTHS, context),
        "rule": algorithm.parameterAsEnumString(parameters, RULE, context) or "cross_year",
        "min_days": algorithm.parameterAsDouble(parameters, MIN_DAYS, context),
        "max_days": algorithm.parameterAsDouble(parameters, MAX_DAYS, context),
        "max_pairs_per_scene": algorithm.parameterAsInt(parameters, MAX_PAIRS_PER_SCENE, context),
    }
