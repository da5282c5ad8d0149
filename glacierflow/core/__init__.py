"""GlacierFlow science core: grids, imagery, preprocessing, flow, velocity.

Nothing in this package imports ``qgis``; it is tested with plain pytest and
called identically by Processing algorithms, the dock panel and scripts.
"""
