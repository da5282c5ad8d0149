"""Surface strain rates from a velocity field: tensor components, effective strain rate, principal rates
and directions, in 1/yr.

Velocity derivatives are central differences over one pixel (one-sided beside a hole or an edge),
mapped from pixel axes to map axes through the grid's transform (any sign or rotation). The tensor
components are then smoothed with a NaN-aware Gaussian (normalised convolution: missing pixels carry no
weight) whose standard deviation is half the user's smoothing length, so the length is the window over
which about two thirds of the weight lies; a length of a few ice thicknesses is usual. Smoothing the
derivatives equals differentiating the smoothed velocity away from edges, and stays unbiased next to
holes and edges (a linear velocity field keeps its exact rates everywhere). Pixels without velocity stay
NaN.

With incompressibility (the vertical rate is -(exx + eyy)) the effective strain rate is the second
invariant sqrt(exx^2 + eyy^2 + exx*eyy + exy^2) (Cuffey and Paterson 2010, eq. 3.31 with eq. 3.35).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..errors import GlacierFlowError
from ..geo.grid import Grid
from ..io.cog import BandSpec, write_bands
from ..io.style import VIRIDIS, nice_maximum, pseudocolor_qml, write_style_beside
from ..products.velocity import open_velocity

EFFECTIVE = BandSpec("effective", "Effective strain rate sqrt(exx^2 + eyy^2 + exx eyy + exy^2) (incompressible "
                     "ice)", "1/yr")
STRAIN_BANDS = [
    BandSpec("exx", "Strain rate along map x (east): d vx / dx", "1/yr"),
    BandSpec("eyy", "Strain rate along map y (north): d vy / dy", "1/yr"),
    BandSpec("exy", "Shear strain rate: (d vx / dy + d vy / dx) / 2", "1/yr"),
    EFFECTIVE,
    BandSpec("e1", "Largest principal strain rate (most extensional)", "1/yr"),
    BandSpec("e2", "Smallest principal strain rate (most compressive)", "1/yr"),
    BandSpec("e1_direction", "Direction of the e1 axis, degrees clockwise from north, 0-180 (an axis)", "degree"),
    BandSpec("dilatation", "Horizontal divergence exx + eyy (= minus the vertical strain rate)", "1/yr"),
]


@dataclass(frozen=True)
class StrainRates:
    """Strain-rate fields (1/yr, NaN where no velocity), each of the velocity's shape."""

    exx: np.ndarray
    eyy: np.ndarray
    exy: np.ndarray

    @property
    def effective(self) -> np.ndarray:
        """Effective strain rate (1/yr), second invariant with incompressibility."""
        return np.sqrt(self.exx ** 2 + self.eyy ** 2 + self.exx * self.eyy + self.exy ** 2)

    @property
    def principal(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(e1, e2, e1 direction): principal rates (1/yr, e1 >= e2) and the e1 axis in degrees clockwise
        from north, 0..180."""
        mean = (self.exx + self.eyy) / 2.0
        radius = np.sqrt(((self.exx - self.eyy) / 2.0) ** 2 + self.exy ** 2)
        angle_from_x = 0.5 * np.arctan2(2.0 * self.exy, self.exx - self.eyy)  # radians, counter-clockwise
        direction = (90.0 - np.degrees(angle_from_x)) % 180.0
        return mean + radius, mean - radius, direction

    def bands(self) -> list[np.ndarray]:
        """The arrays of :data:`STRAIN_BANDS`, in order."""
        e1, e2, direction = self.principal
        return [self.exx, self.eyy, self.exy, self.effective, e1, e2, direction, self.exx + self.eyy]


def gaussian_smooth(values: np.ndarray, sigma_px: float) -> np.ndarray:
    """NaN-aware Gaussian smoothing (normalised convolution, ``sigma_px`` in px; 0 returns a copy); NaN
    pixels stay NaN and carry no weight."""
    values = np.asarray(values, dtype=np.float64)
    if sigma_px <= 0:
        return values.copy()
    import cv2  # lazy: QGIS starts fast

    radius = max(1, int(np.ceil(3.0 * sigma_px)))
    offsets = np.arange(-radius, radius + 1, dtype=np.float64)
    kernel = np.exp(-0.5 * (offsets / sigma_px) ** 2)
    kernel /= kernel.sum()
    finite = np.isfinite(values)
    filled = np.where(finite, values, 0.0)

    def convolve(array: np.ndarray) -> np.ndarray:
        return cv2.sepFilter2D(array, cv2.CV_64F, kernel, kernel, borderType=cv2.BORDER_CONSTANT)

    weight = convolve(finite.astype(np.float64))
    with np.errstate(invalid="ignore", divide="ignore"):
        smoothed = convolve(filled) / weight
    return np.where(finite & (weight > 1e-6), smoothed, np.nan)


def pixel_derivative(values: np.ndarray, axis: int) -> np.ndarray:
    """Derivative per px along ``axis``: central difference where both neighbours have data, one-sided
    where one has, NaN where none has or the pixel itself has no data."""
    values = np.asarray(values, dtype=np.float64)
    padded = np.pad(values, [(1, 1) if a == axis else (0, 0) for a in range(values.ndim)],
                    constant_values=np.nan)
    size = values.shape[axis]
    before = np.take(padded, np.arange(0, size), axis=axis)
    after = np.take(padded, np.arange(2, size + 2), axis=axis)
    central = (after - before) / 2.0
    forward, backward = after - values, values - before
    result = np.where(np.isfinite(central), central, np.where(np.isfinite(forward), forward, backward))
    return np.where(np.isfinite(values), result, np.nan)


def map_gradient(values: np.ndarray, grid: Grid) -> tuple[np.ndarray, np.ndarray]:
    """(d/dx, d/dy) of ``values`` in map axes (per m); see :func:`pixel_derivative`."""
    d_row, d_col = pixel_derivative(values, 0), pixel_derivative(values, 1)  # per px: down, right
    _, a, b, _, d, e = grid.transform
    # chain rule: f_col = a f_x + d f_y and f_row = b f_x + e f_y
    det = a * e - b * d
    return (e * d_col - d * d_row) / det, (-b * d_col + a * d_row) / det


def strain_rates(vx: np.ndarray, vy: np.ndarray, grid: Grid, smoothing_m: float = 0.0) -> StrainRates:
    """Strain rates (1/yr) of the velocity ``vx``, ``vy`` (m/yr, map east and north, NaN = no data) on
    ``grid``, after smoothing over ``smoothing_m`` metres (0: none)."""
    if smoothing_m < 0:
        raise GlacierFlowError(f"Smoothing length {smoothing_m} m is negative: give 0 (none) or a length in m.")
    sigma_px = 0.5 * smoothing_m / min(grid.pixel_size)
    missing = ~(np.isfinite(vx) & np.isfinite(vy))
    vx, vy = np.where(missing, np.nan, vx), np.where(missing, np.nan, vy)
    dvx_dx, dvx_dy = map_gradient(vx, grid)
    dvy_dx, dvy_dy = map_gradient(vy, grid)
    components = [dvx_dx, dvy_dy, 0.5 * (dvx_dy + dvy_dx)]
    exx, eyy, exy = (np.where(missing, np.nan, gaussian_smooth(c, sigma_px)) for c in components)
    return StrainRates(exx, eyy, exy)


DEFAULT_SMOOTHING_PX = 4.0  # without a length: four pixels, enough to tame pixel-scale matching noise


def write_strain_rates(path: str, output: str, smoothing_m: float | None = None) -> tuple[str, StrainRates]:
    """Strain rates of the velocity product ``path`` as a COG at ``output`` (bands :data:`STRAIN_BANDS`,
    1/yr) with a default style (effective strain rate) beside it; ``smoothing_m`` in m (None: four
    pixels). Returns (output, the rates)."""
    product = open_velocity(path)
    if smoothing_m is None:
        smoothing_m = DEFAULT_SMOOTHING_PX * min(product.grid.pixel_size)
    rates = strain_rates(product.read("vx"), product.read("vy"), product.grid, smoothing_m)
    metadata = {"GLACIERFLOW_PRODUCT": "strain_rates", "SOURCE": path, "SMOOTHING_M": f"{smoothing_m:g}",
                "UNITS": "1/yr (365.25-day year)"}
    write_bands(output, product.grid, rates.bands(), STRAIN_BANDS, metadata)
    write_style_beside(output, effective_style_qml(rates.effective))
    return output, rates


def effective_style_qml(effective: np.ndarray) -> str:
    """A viridis style of the effective strain rate band, 0 .. the rounded 98th percentile (1/yr)."""
    finite = effective[np.isfinite(effective)]
    top = nice_maximum(float(np.percentile(finite, 98))) if finite.size and np.percentile(finite, 98) > 0 else 0.1
    count = len(VIRIDIS) - 1
    stops = [(top * i / count, colour, f"{top * i / count:.3g} /yr") for i, colour in enumerate(VIRIDIS)]
    return pseudocolor_qml(STRAIN_BANDS.index(EFFECTIVE) + 1, stops, suffix=" /yr", decimals=4)
