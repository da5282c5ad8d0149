"""The job grid: CRS, affine transform and shape shared by every raster of a job.

The transform is GDAL's geotransform ``(x0, a, b, y0, d, e)``:
``X = x0 + a*col + b*row`` and ``Y = y0 + d*col + e*row`` for the *corner*
of pixel (row, col). It may have any sign (south-up grids have ``e > 0``).
"""
from __future__ import annotations

from dataclasses import dataclass

GeoTransform = tuple[float, float, float, float, float, float]


@dataclass(frozen=True)
class Window:
    """A rectangle of pixels: offsets and size in px."""

    col_off: int
    row_off: int
    width: int
    height: int

    @property
    def slices(self) -> tuple[slice, slice]:
        """Numpy (rows, cols) slices of this window in its parent array."""
        return (slice(self.row_off, self.row_off + self.height),
                slice(self.col_off, self.col_off + self.width))


@dataclass(frozen=True)
class Grid:
    """A georeferenced pixel grid.

    Attributes:
        crs_wkt: WKT of a projected CRS with metre units.
        transform: GDAL geotransform (m per px terms).
        width: number of columns, px.
        height: number of rows, px.
    """

    crs_wkt: str
    transform: GeoTransform
    width: int
    height: int

    @property
    def shape(self) -> tuple[int, int]:
        """(rows, cols) in px."""
        return (self.height, self.width)

    @property
    def pixel_size(self) -> tuple[float, float]:
        """Ground size of one pixel (along columns, along rows) in CRS units (m)."""
        x0, a, b, y0, d, e = self.transform
        return (float((a * a + d * d) ** 0.5), float((b * b + e * e) ** 0.5))

    def bounds(self) -> tuple[float, float, float, float]:
        """(xmin, ymin, xmax, ymax) of the grid's outer pixel edges in CRS units."""
        xs, ys = [], []
        for col, row in ((0, 0), (self.width, 0), (0, self.height), (self.width, self.height)):
            x, y = self.pixel_to_map(col, row)
            xs.append(x)
            ys.append(y)
        return (min(xs), min(ys), max(xs), max(ys))

    def pixel_to_map(self, col: float, row: float) -> tuple[float, float]:
        """Map coordinates (m) of a pixel-corner position (col, row in px)."""
        x0, a, b, y0, d, e = self.transform
        return (x0 + a * col + b * row, y0 + d * col + e * row)

    def same_as(self, other: Grid, tolerance_px: float = 1e-3) -> bool:
        """True when ``other`` is this grid: the same size (px) and CRS, every corner within ``tolerance_px`` px."""
        from .crs import same_crs

        if (self.width, self.height) != (other.width, other.height):
            return False
        limit = tolerance_px * min(self.pixel_size)
        for col, row in ((0, 0), (self.width, 0), (0, self.height), (self.width, self.height)):
            (x, y), (x_other, y_other) = self.pixel_to_map(col, row), other.pixel_to_map(col, row)
            if abs(x - x_other) > limit or abs(y - y_other) > limit:
                return False
        return same_crs(self.crs_wkt, other.crs_wkt)

    def window_grid(self, window: Window) -> Grid:
        """The sub-grid covered by ``window`` (same CRS and resolution)."""
        x, y = self.pixel_to_map(window.col_off, window.row_off)
        _, a, b, _, d, e = self.transform
        return Grid(self.crs_wkt, (x, a, b, y, d, e), window.width, window.height)
