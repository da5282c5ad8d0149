"""What glaciologists do next with a velocity field: exports (arrows, CF netCDF), strain rates, profiles,
time series at points, flux gates and HTML reports. Pure science and I/O, no qgis import."""
