"""Reading and writing rasters: band sources, the COG writer, atomic writes, acquisition times, styles."""
