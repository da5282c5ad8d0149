"""Realistic synthetic Landsat green / SWIR1 series of a glacierised valley.

No real Landsat series is reachable from the build machine, so the
forecasters train and are benchmarked on generated ones. Each scene is
rendered from a DEM (generated, or a real one) with:

- a seasonal snow line that rises through the melt season and falls with
  autumn snowfall, set by elevation AND aspect (north faces keep snow
  longer, in the northern hemisphere), with patchy melt-out and an
  occasional summer snowfall;
- year-to-year variability (snowier years, earlier or later melt) and a
  slow multi-year trend: the glacier retreats and thins, the snow line rises;
- glacier ice that appears when the seasonal snow melts off it, cleaner up
  glacier and dirtier (debris) toward the terminus;
- Landsat OLI-like surface reflectances: snow bright in green and dark in
  SWIR1 (NDSI ~0.8-0.95), ice ~0.6-0.8, rock and vegetation negative;
- topographic illumination that changes with the sun (winter scenes are
  darker, with deep shadows), an atmospheric-correction offset per scene
  and sensor noise;
- clouds as NaN gaps, cloudier in winter, with thin unmasked haze at their
  edges, and no acquisition when the sun is too low;
- sub-pixel to few-pixel misregistration between scenes.

Elevation thresholds are set from the DEM's own elevation range, so any
DEM (the generated one, or a real one such as the Columbia Glacier DEM in
the tests) gives a sensible glacier and snow cover. Only numpy and (inside
functions) OpenCV are used.
"""
from __future__ import annotations

import math
import os
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

import numpy as np

from glacierflow.core.errors import GlacierFlowError
from glacierflow.core.forecast.series import NdsiSeries, build_ndsi_series
from glacierflow.core.geo.grid import Grid

UTC = timezone.utc

# Surface reflectance (green, SWIR1) of the surface types, Landsat 8 OLI bands 3 and 6 (typical
# values from spectral libraries: fresh snow ~0.9 / ~0.05, clean glacier ice ~0.45 / ~0.03).
FRESH_SNOW = (0.90, 0.05)
OLD_SNOW = (0.72, 0.10)
CLEAN_ICE = (0.48, 0.04)
DIRTY_ICE = (0.22, 0.08)
ROCK = (0.11, 0.24)
VEGETATION = (0.06, 0.16)

#: Sun azimuth at a Landsat overpass (~10:30 local), degrees from north.
SUN_AZIMUTH_DEG = 150.0
#: Landsat does not image (or the product is unusable) below this sun elevation, degrees.
MIN_SUN_ELEVATION_DEG = 10.0


@dataclass
class SyntheticScene:
    """One generated acquisition.

    Attributes:
        time: acquisition time (UTC).
        green: float32 (H, W) green surface reflectance (0-1), NaN = cloud gap.
        swir1: float32 (H, W) SWIR1 surface reflectance (0-1), NaN = cloud gap.
        shift_px: the scene's misregistration (dx right, dy down), px.
        cloud_fraction: fraction of the scene masked as cloud.
    """

    time: datetime
    green: np.ndarray
    swir1: np.ndarray
    shift_px: tuple[float, float] = (0.0, 0.0)
    cloud_fraction: float = 0.0


def fbm(rng: np.random.Generator, shape: tuple[int, int], largest_px: float, smallest_px: float = 2.0,
        roughness: float = 0.6) -> np.ndarray:
    """Fractal noise (zero mean, unit std) with features from ``largest_px`` down to ``smallest_px``."""
    import cv2

    height, width = shape
    total = np.zeros(shape, dtype=np.float32)
    scale, amplitude = float(largest_px), 1.0
    while scale >= smallest_px:
        coarse = rng.standard_normal((max(2, int(height / scale) + 2), max(2, int(width / scale) + 2)))
        total += amplitude * cv2.resize(coarse.astype(np.float32), (width, height), interpolation=cv2.INTER_CUBIC)
        scale, amplitude = scale / 2.0, amplitude * roughness
    return ((total - total.mean()) / (total.std() + 1e-12)).astype(np.float32)


def synthetic_dem(shape: tuple[int, int] = (200, 200), seed: int = 0, pixel_size_m: float = 30.0) -> np.ndarray:
    """A mountain valley (m): a curving U-shaped glacier trough rising to a cirque, ridges on both sides.

    The valley runs in a random direction, so its slopes face every aspect.

    Args:
        shape: (rows, cols) px.
        seed: random seed.
        pixel_size_m: ground size of a pixel, m.

    Returns:
        float32 (rows, cols) elevation, m (about 1500-4000 m).
    """
    rng = np.random.default_rng(seed)
    height, width = shape
    rows, cols = np.mgrid[0:height, 0:width].astype(np.float64)
    x, y = (cols - width / 2.0) * pixel_size_m, (height / 2.0 - rows) * pixel_size_m
    heading = rng.uniform(0.0, 2.0 * math.pi)
    along = x * math.cos(heading) + y * math.sin(heading)
    across = -x * math.sin(heading) + y * math.cos(heading)
    span = max(height, width) * pixel_size_m
    across = across - rng.uniform(0.05, 0.12) * span * np.sin(2.0 * math.pi * along / (1.3 * span) + rng.uniform(0, 6))
    half_width = rng.uniform(0.10, 0.16) * span
    floor = 2300.0 + rng.uniform(0.12, 0.2) * along + 700.0 * _smoothstep(0.2 * span, 0.6 * span, along)
    trough = rng.uniform(700.0, 1100.0) * np.tanh((across / half_width) ** 2)
    ridges = 350.0 * (1.0 - np.abs(fbm(rng, shape, 60.0 * 30.0 / pixel_size_m, 4.0)))
    relief = 120.0 * fbm(rng, shape, 40.0, 2.0, 0.55)
    return (floor + trough + ridges * _smoothstep(0.5, 1.5, np.abs(across) / half_width) + relief).astype(np.float32)


def _smoothstep(low: float, high: float, value: np.ndarray) -> np.ndarray:
    t = np.clip((np.asarray(value, dtype=np.float64) - low) / (high - low), 0.0, 1.0)
    return t * t * (3.0 - 2.0 * t)


def _slope_aspect(dem: np.ndarray, pixel_size_m: float) -> tuple[np.ndarray, np.ndarray]:
    """Slope (rad) and aspect (rad clockwise from north, the direction the slope faces)."""
    d_row, d_col = np.gradient(dem.astype(np.float64), pixel_size_m)
    d_east, d_north = d_col, -d_row
    slope = np.arctan(np.hypot(d_east, d_north))
    aspect = np.arctan2(-d_east, -d_north) % (2.0 * math.pi)
    return slope.astype(np.float32), aspect.astype(np.float32)


def _seasonal_snow_line(day_of_year: float) -> float:
    """Snow line as a fraction of the DEM's elevation range, mean year (0 = lowest, 1 = highest)."""
    days = [15, 60, 105, 150, 195, 240, 275, 305, 335]
    level = [-0.25, -0.25, -0.05, 0.26, 0.52, 0.70, 0.55, 0.22, -0.10]
    return float(np.interp(day_of_year, days, level, period=365.0))


def _sun_elevation_deg(day_of_year: float, latitude_deg: float) -> float:
    """Sun elevation at the ~10:30 overpass, degrees (declination model, 1.5 h before noon)."""
    declination = math.radians(23.44 * math.sin(2.0 * math.pi * (day_of_year - 80.0) / 365.0))
    lat, hour = math.radians(latitude_deg), math.radians(-22.5)
    sine = math.sin(lat) * math.sin(declination) + math.cos(lat) * math.cos(declination) * math.cos(hour)
    return math.degrees(math.asin(sine))


@dataclass
class _Terrain:
    """Per-pixel fields that do not change between scenes."""

    height_fraction: np.ndarray  # elevation in the DEM's 2-98 % range, 0..1
    northness: np.ndarray  # cos(aspect) * sin(slope): +1 steep north face
    slope: np.ndarray
    aspect: np.ndarray
    glacier_potential: np.ndarray  # higher = ice survives longer
    vegetation: np.ndarray  # 0..1 share of vegetation in the snow-free ground
    rock_texture: np.ndarray  # multiplicative reflectance texture of the ground


def _terrain(dem: np.ndarray, pixel_size_m: float, rng: np.random.Generator) -> _Terrain:
    import cv2

    low, high = np.percentile(dem, [2.0, 98.0])
    if high - low < 50.0:
        raise GlacierFlowError("The DEM is almost flat (< 50 m of relief): a glacier scene needs mountains.")
    fraction = ((dem - low) / (high - low)).astype(np.float32)
    slope, aspect = _slope_aspect(dem, pixel_size_m)
    northness = (np.cos(aspect) * np.sin(slope)).astype(np.float32)
    # Valley bottoms (below their surroundings) collect ice and carry it down: elevation relative to
    # the mean over ~1.5 km (a valley's half width) makes troughs, not ridges, the glaciers' place.
    surroundings = cv2.GaussianBlur(dem.astype(np.float32), (0, 0), 1500.0 / pixel_size_m,
                                    borderType=cv2.BORDER_REFLECT)
    concavity = np.clip((surroundings - dem) / (high - low), -0.4, 0.4)
    steepness = _smoothstep(math.radians(25.0), math.radians(50.0), slope)
    potential = fraction + 0.12 * northness + 2.0 * concavity - 0.3 * steepness
    potential = cv2.GaussianBlur(potential.astype(np.float32), (0, 0), 1.5)
    vegetation = (1.0 - _smoothstep(0.10, 0.35, fraction)) * (1.0 - steepness)
    texture = np.clip(1.0 + 0.15 * fbm(rng, dem.shape, 24.0, 1.0, 0.7), 0.6, 1.4)
    return _Terrain(fraction, northness, slope, aspect, potential.astype(np.float32),
                    vegetation.astype(np.float32), texture.astype(np.float32))


def synthetic_scenes(shape: tuple[int, int] = (200, 200),
                     start: datetime = datetime(2013, 4, 1, tzinfo=UTC), years: int = 8, seed: int = 0,
                     dem: np.ndarray | None = None, pixel_size_m: float = 30.0, scenes_per_year: int = 23,
                     latitude_deg: float = 46.0, glacier_area_fraction: float = 0.25,
                     retreat_per_year: float = 0.012, max_cloud_fraction: float = 0.9) -> list[SyntheticScene]:
    """Generate a Landsat-like series of green and SWIR1 surface-reflectance scenes.

    Args:
        shape: (rows, cols) px; ignored when ``dem`` is given (its shape is used).
        start: first acquisition (UTC).
        years: length of the series, years.
        seed: random seed (terrain, weather, clouds, noise).
        dem: elevation, m (rows, cols); default a generated valley (:func:`synthetic_dem`).
        pixel_size_m: ground size of a pixel, m (slopes and illumination).
        scenes_per_year: acquisitions per year (23: one Landsat, 16-day repeat).
        latitude_deg: latitude (northern hemisphere), for the sun's elevation.
        glacier_area_fraction: share of the scene under glacier ice at the start.
        retreat_per_year: rise per year of the glacier threshold and of the
            snow line, as a fraction of the DEM's elevation range (the trend).
        max_cloud_fraction: scenes above this cloud cover are not returned,
            as a catalogue's cloud filter would discard them.

    Returns:
        Scenes in time order; a scene with the sun below 10 deg is not acquired.
    """
    rng = np.random.default_rng(seed)
    elevation = synthetic_dem(shape, seed, pixel_size_m) if dem is None else np.asarray(dem, dtype=np.float32)
    if elevation.ndim != 2 or min(elevation.shape) < 8 or not np.all(np.isfinite(elevation)):
        raise GlacierFlowError("The DEM must be a finite 2-D array of at least 8 x 8 px: fill its voids first.")
    terrain = _terrain(elevation, pixel_size_m, rng)
    glacier_level = float(np.quantile(terrain.glacier_potential, 1.0 - glacier_area_fraction))
    anomalies = rng.standard_normal((years + 2, 3))  # per year: snowiness, melt timing, winter level
    patchiness = [fbm(rng, elevation.shape, 16.0, 1.0, 0.6) for _ in range(years + 2)]
    step = timedelta(days=365.25 / scenes_per_year)
    scenes: list[SyntheticScene] = []
    for index in range(int(round(years * scenes_per_year))):
        when = _as_utc(start) + index * step
        sun = _sun_elevation_deg(when.timetuple().tm_yday, latitude_deg)
        if sun < MIN_SUN_ELEVATION_DEG:
            continue
        scene = _render_scene(rng, terrain, when, start, sun, glacier_level, retreat_per_year, anomalies,
                              patchiness, pixel_size_m)
        if scene.cloud_fraction <= max_cloud_fraction:
            scenes.append(scene)
    return scenes


def _as_utc(moment: datetime) -> datetime:
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def _year_anomaly(anomalies: np.ndarray, years_since_start: float) -> np.ndarray:
    """Anomalies interpolated smoothly between mid-year values (no jump on 1 January)."""
    position = np.clip(years_since_start, 0.0, anomalies.shape[0] - 1.0)
    low = int(math.floor(position))
    high = min(low + 1, anomalies.shape[0] - 1)
    weight = position - low
    return anomalies[low] * (1.0 - weight) + anomalies[high] * weight


def _render_scene(rng: np.random.Generator, terrain: _Terrain, when: datetime, start: datetime, sun_deg: float,
                  glacier_level: float, retreat_per_year: float, anomalies: np.ndarray,
                  patchiness: list[np.ndarray], pixel_size_m: float) -> SyntheticScene:
    years_since = (when - _as_utc(start)).total_seconds() / (365.25 * 86400.0)
    snowiness, timing, winter = _year_anomaly(anomalies, years_since)
    day = when.timetuple().tm_yday
    snow_line = _seasonal_snow_line(day - 10.0 * timing)
    summer_weight = _smoothstep(0.0, 0.5, snow_line)
    snow_line += summer_weight * (-0.07 * snowiness) + (1.0 - summer_weight) * 0.05 * winter
    snow_line += retreat_per_year * years_since
    if 120 < day < 270 and rng.random() < 0.12:
        snow_line -= rng.uniform(0.1, 0.3)  # a summer snowfall, melted again by the next scenes
    patches = patchiness[min(int(years_since), len(patchiness) - 1)]
    effective = terrain.height_fraction + 0.15 * terrain.northness + 0.035 * patches
    snow = _smoothstep(-0.04, 0.04, effective - snow_line)
    snow *= 1.0 - 0.7 * _smoothstep(math.radians(45.0), math.radians(65.0), terrain.slope)  # steep rock sheds snow
    level = glacier_level + retreat_per_year * years_since
    glacier = _smoothstep(level - 0.01, level + 0.01, terrain.glacier_potential)
    cleanliness = _smoothstep(level, level + 0.15, terrain.glacier_potential)
    green, swir1 = _surface_reflectance(terrain, snow, glacier, cleanliness, snow_line)
    illumination = _illumination(terrain, sun_deg)
    green, swir1 = green * illumination, swir1 * illumination
    shift = tuple(float(v) for v in np.clip(rng.normal(0.0, 0.7, 2), -3.0, 3.0))
    green, swir1 = _shift(green, shift), _shift(swir1, shift)
    cloud, haze = _clouds(rng, terrain.height_fraction.shape, day)
    offsets = rng.normal(0.0, 0.006, 2)
    noise = rng.normal(0.0, 0.005, (2,) + green.shape).astype(np.float32)
    green = np.clip(green + 0.12 * haze + offsets[0] + noise[0], 0.0, 1.6).astype(np.float32)
    swir1 = np.clip(swir1 + 0.06 * haze + offsets[1] + noise[1], 0.0, 1.6).astype(np.float32)
    green[cloud], swir1[cloud] = np.nan, np.nan
    return SyntheticScene(when, green, swir1, shift, float(cloud.mean()))


def _surface_reflectance(terrain: _Terrain, snow: np.ndarray, glacier: np.ndarray, cleanliness: np.ndarray,
                         snow_line: float) -> tuple[np.ndarray, np.ndarray]:
    """Green and SWIR1 reflectance of the snow / ice / ground mixture in each pixel (before illumination)."""
    age = _smoothstep(0.1, 0.6, snow_line)  # late-summer snow is old, grainy and darker
    bands = []
    for band in (0, 1):
        snow_value = FRESH_SNOW[band] * (1.0 - age) + OLD_SNOW[band] * age
        ice = DIRTY_ICE[band] + (CLEAN_ICE[band] - DIRTY_ICE[band]) * cleanliness
        ground = (ROCK[band] + (VEGETATION[band] - ROCK[band]) * terrain.vegetation) * terrain.rock_texture
        surface = ground + glacier * (ice - ground)
        bands.append((surface + snow * (snow_value - surface)).astype(np.float32))
    return bands[0], bands[1]


def _illumination(terrain: _Terrain, sun_deg: float) -> np.ndarray:
    """Uncorrected-terrain illumination factor: direct cos(i)/cos(z) plus a diffuse share."""
    zenith = math.radians(90.0 - sun_deg)
    azimuth = math.radians(SUN_AZIMUTH_DEG)
    cos_i = (math.cos(zenith) * np.cos(terrain.slope)
             + math.sin(zenith) * np.sin(terrain.slope) * np.cos(azimuth - terrain.aspect))
    direct = np.clip(cos_i, 0.0, None) / max(math.cos(zenith), 0.2)
    return np.clip(0.2 + 0.8 * direct, 0.0, 1.5).astype(np.float32)


def _shift(image: np.ndarray, shift: tuple[float, float]) -> np.ndarray:
    """``image`` moved by (dx right, dy down) px: the scene's misregistration."""
    import cv2

    matrix = np.float32([[1.0, 0.0, shift[0]], [0.0, 1.0, shift[1]]])
    height, width = image.shape
    return cv2.warpAffine(image, matrix, (width, height), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)


def _clouds(rng: np.random.Generator, shape: tuple[int, int], day_of_year: int) -> tuple[np.ndarray, np.ndarray]:
    """Cloud mask (masked in the product) and the thin haze (0..1) at cloud edges that the mask misses."""
    winter = 0.5 + 0.5 * math.cos(2.0 * math.pi * (day_of_year - 15.0) / 365.0)  # 1 mid-January, 0 mid-July
    mean_cover = 0.15 + 0.25 * winter
    cover = 0.0 if rng.random() < 0.3 - 0.15 * winter else float(rng.beta(1.2, 1.2 / mean_cover - 1.2))
    if cover < 0.005:
        return np.zeros(shape, dtype=bool), np.zeros(shape, dtype=np.float32)
    field = fbm(rng, shape, max(shape) / 2.5, 2.0, 0.55)
    level = np.quantile(field, 1.0 - cover)
    haze = _smoothstep(level - 0.5, level, field).astype(np.float32)
    return field >= level, haze * (field < level)


def synthetic_series(shape: tuple[int, int] = (200, 200), years: int = 8, seed: int = 0,
                     dem: np.ndarray | None = None, window_months: int = 3, threshold: float = 0.3,
                     **scene_options: object) -> NdsiSeries:
    """A generated masked-NDSI series: :func:`synthetic_scenes` through :func:`build_ndsi_series`.

    ``scene_options`` go to :func:`synthetic_scenes` (e.g. ``pixel_size_m``, ``latitude_deg``).
    """
    scenes = synthetic_scenes(shape=shape, years=years, seed=seed, dem=dem, **scene_options)
    if not scenes:
        raise GlacierFlowError("The generator produced no scene: check the latitude and the cloud limit.")
    times = [scene.time for scene in scenes]
    green = np.stack([scene.green for scene in scenes])
    swir1 = np.stack([scene.swir1 for scene in scenes])
    return build_ndsi_series(times, green, swir1, window_months=window_months, threshold=threshold)


def sample_ndsi_grid(shape: tuple[int, int], pixel_size_m: float = 30.0) -> Grid:
    """The NDSI sample's grid: UTM 43N (EPSG:32643) near the Parvati glacier, Landsat's 30 m."""
    from osgeo import osr

    srs = osr.SpatialReference()
    srs.ImportFromEPSG(32643)
    return Grid(srs.ExportToWkt(), (770000.0, pixel_size_m, 0.0, 3560010.0, 0.0, -pixel_size_m), shape[1], shape[0])


def write_sample_scenes(folder: str, shape: tuple[int, int] = (200, 200), years: int = 2, seed: int = 0,
                        **scene_options: object) -> list[str]:
    """Write generated scenes as Landsat Collection-2 Level-2-like GeoTIFFs: the built-in NDSI sample.

    Each scene gives ``ndsi_sample_YYYYMMDD_SR_B3.tif`` (green) and
    ``..._SR_B6.tif`` (SWIR1): uint16 DN = (reflectance + 0.2) / 2.75e-05,
    0 = fill (clouds), the ``ACQUISITION_DATETIME`` tag, a 30 m UTM grid.

    Returns:
        The written paths, green then SWIR1 for each scene in time order.
    """
    from glacierflow.core.io.raster import write_array

    os.makedirs(folder, exist_ok=True)
    scenes = synthetic_scenes(shape=shape, years=years, seed=seed, **scene_options)
    grid = sample_ndsi_grid(scenes[0].green.shape) if scenes else None
    paths: list[str] = []
    for scene in scenes:
        stamp = scene.time.strftime("%Y%m%d")
        tags: dict[str, str] = {"ACQUISITION_DATETIME": scene.time.strftime("%Y-%m-%dT%H:%M:%SZ"),
                                "SENSOR": "synthetic, Landsat 8 OLI Collection-2 Level-2-like"}
        for band, values in (("SR_B3", scene.green), ("SR_B6", scene.swir1)):
            dn = np.round((np.nan_to_num(values, nan=-0.2) + 0.2) / 2.75e-05)
            dn = np.where(np.isnan(values), 0, np.clip(dn, 1, 65535)).astype(np.uint16)
            paths.append(write_array(os.path.join(folder, f"ndsi_sample_{stamp}_{band}.tif"), grid, dn, nodata=0,
                                     metadata=dict(tags, BAND=band)))
    return paths
