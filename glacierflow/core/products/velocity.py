"""The velocity product, one owner: its kinds, bands, metadata keys, and how to open one.

Every velocity raster GlacierFlow writes is a float32 COG (NaN nodata) whose bands are found by name
(the band description): ``vx`` towards map east and ``vy`` towards map north, in m/yr (365.25-day year),
then ``speed`` and the kind's own bands. The dataset tag ``GLACIERFLOW_PRODUCT`` says the kind:

* ``velocity_pair`` (:data:`PAIR_BANDS`, plus :data:`GLACIER_BAND` with outlines): one image pair;
  tags :data:`INTERVAL_DAYS` (the exact time between the acquisitions), :data:`ACQUISITION_A` /
  :data:`ACQUISITION_B` (ISO-8601 UTC), :data:`ENGINE`, :data:`IMAGE_A` / :data:`IMAGE_B` (file names);
* ``velocity_stack`` (:data:`STACK_BANDS`): many pairs stacked (annual velocity); tags PAIR_COUNT,
  PAIRS (JSON), FIRST_ACQUISITION, LAST_ACQUISITION.

Writers build their metadata with these names; readers call :func:`open_velocity` instead of looking
for bands and tags themselves.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..errors import GlacierFlowError
from ..geo.grid import Grid
from ..io.cog import BandSpec
from ..io.raster import BandSource, grid_of, open_raster

KIND = "GLACIERFLOW_PRODUCT"
PAIR = "velocity_pair"
STACK = "velocity_stack"
INTERVAL_DAYS = "INTERVAL_DAYS"
ACQUISITION_A = "ACQUISITION_A"
ACQUISITION_B = "ACQUISITION_B"
FIRST_ACQUISITION = "FIRST_ACQUISITION"
LAST_ACQUISITION = "LAST_ACQUISITION"
ENGINE = "ENGINE"
IMAGE_A = "IMAGE_A"
IMAGE_B = "IMAGE_B"
UNITS = "VELOCITY_UNITS"
UNITS_TEXT = "m/yr (365.25-day year)"
TIME_FORMAT = "%Y-%m-%dT%H:%M:%SZ"

VX = BandSpec("vx", "Velocity towards map east (grid +x)", "m/yr")
VY = BandSpec("vy", "Velocity towards map north (grid +y)", "m/yr")
SPEED = BandSpec("speed", "Speed, magnitude of (vx, vy)", "m/yr")
PAIR_BANDS = [
    VX, VY, SPEED,
    BandSpec("valid", "1 = trusted, 0 = untrusted: failed the forward-backward check or too little "
                      "texture (velocity set to NaN)", "1"),
]
GLACIER_BAND = BandSpec("glacier", "1 = inside the glacier outlines, 0 = outside", "1")
STACK_BANDS = [
    BandSpec("vx", "Velocity towards map east: mean of the kept pairs (interval-weighted if chosen)", "m/yr"),
    BandSpec("vy", "Velocity towards map north: mean of the kept pairs (interval-weighted if chosen)", "m/yr"),
    SPEED,
    BandSpec("uncertainty", "Standard error of the velocity vector: hypot(b_n 1.4826 MAD of vx, of vy) / "
                            "sqrt(effective count); NaN with fewer than 2 pairs", "m/yr"),
    BandSpec("count", "Number of pairs kept (valid and not rejected as outliers)", "1"),
    BandSpec("vx_median", "Median of vx over the kept pairs", "m/yr"),
    BandSpec("vy_median", "Median of vy over the kept pairs", "m/yr"),
    BandSpec("vx_std", "Standard deviation of vx over the kept pairs (ddof 1)", "m/yr"),
    BandSpec("vy_std", "Standard deviation of vy over the kept pairs (ddof 1)", "m/yr"),
    BandSpec("rejected", "Number of valid pairs rejected as outliers", "1"),
    BandSpec("time_span", "Days from the earliest first to the latest second acquisition of the kept pairs",
             "days"),
]


@dataclass
class VelocityProduct:
    """An opened velocity product: where it is, its grid, kind, tags and bands (name -> 1-based index).

    Attributes:
        path: the file.
        grid: its native grid.
        kind: ``velocity_pair``, ``velocity_stack`` or "" (a velocity raster from elsewhere with vx and vy).
        metadata: the dataset's tags.
        bands: band name (description, lower case) -> 1-based index.
    """

    path: str
    grid: Grid
    kind: str
    metadata: dict[str, str]
    bands: dict[str, int]
    _dataset: Any = field(default=None, repr=False)

    def has(self, name: str) -> bool:
        """True when the product has band ``name`` (any case)."""
        return name.lower() in self.bands

    def source(self, name: str) -> BandSource:
        """Band ``name`` (any case) as a :class:`BandSource` (readable on any grid)."""
        if not self.has(name):
            raise GlacierFlowError(f"'{self.path}' has no band '{name}'.")
        return BandSource.open(self.path, self.bands[name.lower()])

    def read(self, name: str, grid: Grid | None = None) -> np.ndarray:
        """Band ``name`` as float32 on ``grid`` (default: the product's own), NaN where no data."""
        return self.source(name).read(grid or self.grid)

    @property
    def dataset(self) -> Any:
        """The open GDAL dataset (read-only)."""
        return self._dataset

    def band_descriptions(self) -> list[BandSpec]:
        """Every band's name, description and unit, in band order (to write a corrected copy)."""
        specs = []
        for index in range(1, self._dataset.RasterCount + 1):
            band = self._dataset.GetRasterBand(index)
            specs.append(BandSpec(band.GetDescription() or f"band_{index}", band.GetMetadataItem("DESCRIPTION") or "",
                                  band.GetUnitType() or ""))
        return specs

    @property
    def interval_days(self) -> float | None:
        """Days between the acquisitions of a pair (None when the product does not say)."""
        value = _float_or_none(self.metadata.get(INTERVAL_DAYS))
        if value is not None and value <= 0:
            raise GlacierFlowError(f"'{self.path}' has a non-positive interval ({value} days): recompute the pair.")
        return value

    @property
    def acquisition_a(self) -> str:
        """ISO-8601 time of the first image (a stack's first acquisition)."""
        return self.metadata.get(ACQUISITION_A) or self.metadata.get(FIRST_ACQUISITION, "")

    @property
    def acquisition_b(self) -> str:
        """ISO-8601 time of the second image (a stack's last acquisition)."""
        return self.metadata.get(ACQUISITION_B) or self.metadata.get(LAST_ACQUISITION, "")

    @property
    def engine(self) -> str:
        """The flow engine's name ("" when the product does not say)."""
        return self.metadata.get(ENGINE, "")


def open_velocity(path: str) -> VelocityProduct:
    """Open a velocity product; fails clearly when the raster has no ``vx`` and ``vy`` bands."""
    dataset = open_raster(path)
    bands: dict[str, int] = {}
    for index in range(1, dataset.RasterCount + 1):
        bands.setdefault((dataset.GetRasterBand(index).GetDescription() or "").strip().lower(), index)
    if "vx" not in bands or "vy" not in bands:
        raise GlacierFlowError(
            f"'{path}' has no bands named vx and vy: give a velocity product of GlacierFlow ('Glacier velocity "
            "from an image pair' or a stack), or name the bands of your own raster vx and vy (m/yr).")
    metadata = {str(k): str(v) for k, v in (dataset.GetMetadata() or {}).items()}
    return VelocityProduct(path, grid_of(dataset, path), metadata.get(KIND, ""), metadata, bands, dataset)


def _float_or_none(text: str | None) -> float | None:
    if text is None or not text.strip():
        return None
    try:
        return float(text)
    except ValueError:
        return None
