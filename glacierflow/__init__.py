"""GlacierFlow QGIS plugin entry point; kept free of heavy imports so QGIS starts fast."""
from __future__ import annotations


def classFactory(iface):  # noqa: N802 (QGIS's required name)
    """Create the plugin; ``iface`` is None under ``qgis_process``."""
    from .plugin import GlacierFlowPlugin

    return GlacierFlowPlugin(iface)
