"""The optional HTML report (with pictures) of the pair, stack, annual and forecast algorithms: one
parameter, declared here once, and the call to :mod:`..core.analysis.report` after the job."""
from __future__ import annotations

from typing import Any

from qgis.core import QgsProcessingContext, QgsProcessingParameterFileDestination

REPORT_HTML = "REPORT_HTML"


def add_report_parameter(algorithm: Any, label: str = "Report with pictures (HTML)") -> None:
    """Add the optional ``REPORT_HTML`` output (not written unless chosen)."""
    algorithm.addParameter(QgsProcessingParameterFileDestination(
        REPORT_HTML, label, "HTML files (*.html)", optional=True, createByDefault=False))


def report_path(algorithm: Any, parameters: dict[str, Any], context: QgsProcessingContext) -> str:
    """Where the report goes ("" when none was asked for); checks matplotlib before the job runs."""
    if algorithm.is_unset(parameters, REPORT_HTML):
        return ""
    path = algorithm.parameterAsFileOutput(parameters, REPORT_HTML, context)
    if path:
        from ..core.analysis.figures import require_matplotlib

        require_matplotlib()
    return path


def velocity_report(path: str, product: str, outlines: str | None = None, stable_areas: str | None = None,
                    stakes: str | None = None, title: str = "") -> dict[str, str]:
    """Write the velocity report of ``product`` to ``path`` (when given); returns the output entry."""
    if not path:
        return {}
    from ..core.analysis.report import VelocityReportInputs
    from ..core.analysis.report import velocity_report as write_report

    inputs = VelocityReportInputs(stable_areas=stable_areas, glacier_outlines=outlines, stakes=stakes)
    return {REPORT_HTML: write_report(product, path, inputs, title)}


def forecast_report(path: str, forecast: str, series: str, hindcast: Any) -> dict[str, str]:
    """Write the forecast report to ``path`` (when given); returns the output entry."""
    if not path:
        return {}
    from ..core.analysis.report import forecast_report as write_report

    return {REPORT_HTML: write_report(forecast, path, series, hindcast)}
