"""Where things are: grids, CRS helpers, the one job-grid resolver and glacier outlines."""
