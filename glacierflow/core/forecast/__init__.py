"""NDSI snow/ice forecasting (issue 6): the Landsat NDSI series, patches and splits, baselines,
metrics, the synthetic-series generator and the forecast products.

Submodules are imported explicitly (``from glacierflow.core.forecast.series import ...``) so that
importing this package stays cheap inside QGIS.
"""
