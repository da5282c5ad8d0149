"""NDSI snow/ice forecasting: the Landsat NDSI series, patches and splits, baselines, metrics, the
ONNX forecaster and the jobs (the products' format is :mod:`..products.ndsi`, the synthetic-series
generator is training code).

Submodules are imported explicitly (``from glacierflow.core.forecast.series import ...``) so that
importing this package stays cheap inside QGIS.
"""
