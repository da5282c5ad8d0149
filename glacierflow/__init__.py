"""GlacierFlow QGIS plugin entry point; kept free of heavy imports so QGIS starts fast."""
from __future__ import annotations


def classFactory(iface):  # noqa: N802 (QGIS's required name)
    """Create the plugin; ``iface`` is None under ``qgis_process``."""
    activate_packages()
    from .plugin import GlacierFlowPlugin

    return GlacierFlowPlugin(iface)


def activate_packages() -> None:
    """Put the packages GlacierFlow's installer placed in this QGIS profile on ``sys.path`` (after QGIS's own)."""
    import os

    from qgis.core import QgsApplication

    from .core import packages

    base = os.path.join(QgsApplication.qgisSettingsDirPath(), "python", "glacierflow-packages")
    packages.activate(packages.target_folder(base))
