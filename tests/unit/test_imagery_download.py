"""The job grid from an area, downloading scenes onto it, and the annual chain from any source.

Everything runs on real GeoTIFFs written in tmp_path, read back through GDAL; the "remote" source of the
annual chain is a LocalFolderSource object, which takes the same search -> job grid -> download path as
STAC or Earth Engine (the chain only sees the ImageSource protocol).
"""
from __future__ import annotations

import csv
import math
import os
from pathlib import Path

import numpy as np
import pytest
from osgeo import gdal, osr

from glacierflow.core.errors import GlacierFlowError
from glacierflow.core.feedback import Feedback, JobCancelled
from glacierflow.core.geo.area import Area
from glacierflow.core.geo.crs import same_crs
from glacierflow.core.geo.grid import Grid
from glacierflow.core.geo.gridspec import (
    MAX_SIDE_PX,
    GridSpec,
    default_pixel_size,
    resolve_grid,
    sensor_of,
    sensor_pixel_size,
)
from glacierflow.core.imagery import LocalFolderSource, Scene
from glacierflow.core.imagery.download import (
    download_name,
    download_scenes,
    is_complete_download,
    keep_valid,
    write_download_table,
)
from glacierflow.core.io.raster import write_array
from glacierflow.core.workflows.annual import AnnualJob, run_annual_job
from training.sample_series import write_sample_series


def job_grid_for_area(area, pixel_size_m, crs_wkt=None, feedback=None):
    """The job grid of an area job (what the annual, download and NDSI jobs resolve)."""
    return resolve_grid(GridSpec(crs_wkt, pixel_size_m), area=area, feedback=feedback)


def _wkt(epsg: int) -> str:
    srs = osr.SpatialReference()
    srs.ImportFromEPSG(epsg)
    return srs.ExportToWkt()


def _to_lonlat(wkt: str, points):
    source = osr.SpatialReference()
    source.ImportFromWkt(wkt)
    source.SetAxisMappingStrategy(osr.OAMS_TRADITIONAL_GIS_ORDER)
    target = osr.SpatialReference()
    target.ImportFromEPSG(4326)
    target.SetAxisMappingStrategy(osr.OAMS_TRADITIONAL_GIS_ORDER)
    transform = osr.CoordinateTransformation(source, target)
    return [transform.TransformPoint(x, y)[:2] for x, y in points]


def _box(xmin: float, ymin: float, xmax: float, ymax: float) -> str:
    return f"POLYGON(({xmin} {ymin},{xmax} {ymin},{xmax} {ymax},{xmin} {ymax},{xmin} {ymin}))"


def _epsg_of(grid: Grid) -> int:
    srs = osr.SpatialReference()
    srs.ImportFromWkt(grid.crs_wkt)
    srs.AutoIdentifyEPSG()
    return int(srs.GetAuthorityCode(None))


WGS84 = _wkt(4326)
UTM33 = _wkt(32633)
NATIVE = Grid(UTM33, (500000.0, 10.0, 0.0, 7000000.0, 0.0, -10.0), 60, 60)
# The area: the native grid's inner 300 m x 300 m, given in lon/lat as a drawn polygon would be.
INNER = [(500100.0, 6999400.0), (500400.0, 6999400.0), (500400.0, 6999700.0), (500100.0, 6999700.0)]
AREA = Area("POLYGON((" + ",".join(f"{x} {y}" for x, y in _to_lonlat(UTM33, INNER + INNER[:1])) + "))", WGS84)


class Recorder(Feedback):
    """Keeps the log and the progress; cancels once a message starts with ``cancel_at``."""

    def __init__(self, cancel_at: str = "") -> None:
        self.messages, self.warnings, self.percents = [], [], []
        self.cancel_at = cancel_at

    def info(self, message: str) -> None:
        self.messages.append(message)

    def warning(self, message: str) -> None:
        self.warnings.append(message)

    def progress(self, percent: float) -> None:
        self.percents.append(percent)

    def is_cancelled(self) -> bool:
        return bool(self.cancel_at) and any(m.startswith(self.cancel_at) for m in self.messages)


# --- the job grid -----------------------------------------------------------------------------------------

def _covers(grid: Grid, points_lonlat) -> bool:
    target = osr.SpatialReference()
    target.ImportFromWkt(grid.crs_wkt)
    target.SetAxisMappingStrategy(osr.OAMS_TRADITIONAL_GIS_ORDER)
    wgs84 = osr.SpatialReference()
    wgs84.ImportFromEPSG(4326)
    wgs84.SetAxisMappingStrategy(osr.OAMS_TRADITIONAL_GIS_ORDER)
    transform = osr.CoordinateTransformation(wgs84, target)
    xmin, ymin, xmax, ymax = grid.bounds()
    return all(xmin <= x <= xmax and ymin <= y <= ymax
               for x, y in (transform.TransformPoint(lon, lat)[:2] for lon, lat in points_lonlat))


def test_job_grid_is_the_utm_zone_aligned_to_the_pixel_size():
    feedback = Recorder()
    area = Area(_box(-140.47, 60.03, -140.31, 60.11), WGS84)  # a glacier in Alaska, zone 7N
    grid = job_grid_for_area(area, 10.0, feedback=feedback)
    assert _epsg_of(grid) == 32607 and grid.pixel_size == (10.0, 10.0)
    x0, a, b, y0, d, e = grid.transform
    assert (a, b, d, e) == (10.0, 0.0, 0.0, -10.0)
    assert x0 % 10.0 == 0.0 and y0 % 10.0 == 0.0
    assert _covers(grid, [(-140.47, 60.03), (-140.31, 60.03), (-140.31, 60.11), (-140.47, 60.11)])
    assert 850 < grid.width < 950 and 880 < grid.height < 960  # 8.9 km x 8.9 km
    assert not feedback.warnings and "UTM zone 7N" in feedback.messages[-1]
    # a slightly different area lands on the same pixel lattice: reruns share pixels and cache entries
    nudged = job_grid_for_area(Area(_box(-140.4699, 60.0301, -140.3101, 60.1099), WGS84), 10.0)
    assert (nudged.transform[0] - x0) % 10.0 == 0.0 and (nudged.transform[3] - y0) % 10.0 == 0.0
    assert job_grid_for_area(area, 10.0) == grid
    at_30 = job_grid_for_area(area, 30.0)
    assert at_30.transform[0] % 30.0 == 0.0 and abs(at_30.width - grid.width / 3) <= 2


def test_job_grid_of_a_projected_area_keeps_its_pixels():
    inside = Area(_box(500100, 6999400, 500400, 6999700), UTM33)
    grid = job_grid_for_area(inside, 10.0)
    assert same_crs(grid.crs_wkt, UTM33)
    assert grid.transform == (500100.0, 10.0, 0.0, 6999700.0, 0.0, -10.0) and grid.shape == (30, 30)


@pytest.mark.parametrize("lat, epsg", [(75.1, 3413), (71.5, 32624), (-77.1, 3031)])
def test_job_grid_is_polar_stereographic_beyond_72_degrees(lat, epsg):
    area = Area(_box(-38.5, lat, -38.2, lat + 0.05), WGS84)  # Greenland; the south one is in Antarctica
    grid = job_grid_for_area(area, 30.0)
    assert _epsg_of(grid) == epsg
    assert grid.transform[0] % 30.0 == 0.0 and grid.transform[3] % 30.0 == 0.0
    assert _covers(grid, [(-38.5, lat), (-38.2, lat), (-38.2, lat + 0.05), (-38.5, lat + 0.05)])


def test_job_grid_across_the_antimeridian_is_the_short_way():
    feedback = Recorder()
    crossing = Area(_box(179.8, 65.0, -179.8, 65.2), WGS84)  # vertices at +179.8 and -179.8
    grid = job_grid_for_area(crossing, 10.0, feedback=feedback)
    # 0.4 degrees of longitude at 65 N are 18.8 km, not the 359.6 degrees the other way round
    assert 1800 < grid.width < 2200 and 2100 < grid.height < 2400
    assert _epsg_of(grid) in (32601, 32660)
    assert _covers(grid, [(179.8, 65.0), (-179.8, 65.0), (-179.8, 65.2), (179.8, 65.2), (180.0, 65.1)])
    assert any("zones 60 to 1" in w for w in feedback.warnings)
    unwrapped = job_grid_for_area(Area(_box(179.8, 65.0, 180.2, 65.2), WGS84), 10.0)
    assert unwrapped == grid


def test_job_grid_across_utm_zones_warns_and_uses_the_centroid_zone():
    feedback = Recorder()
    grid = job_grid_for_area(Area(_box(-138.5, 60.0, -137.2, 60.1), WGS84), 10.0, feedback=feedback)
    assert _epsg_of(grid) == 32608  # centroid -137.85: zone 8 (-138 to -132)
    assert len(feedback.warnings) == 1 and "zones 7 to 8" in feedback.warnings[0]
    assert "%" in feedback.warnings[0] and "target CRS" in feedback.warnings[0]


def test_job_grid_faults_say_what_to_do():
    with pytest.raises(GlacierFlowError, match=f"more than {MAX_SIDE_PX} px a side.*at least 28 m"):
        job_grid_for_area(Area(_box(0.0, 0.0, 5.0, 5.0), WGS84), 10.0)
    with pytest.raises(GlacierFlowError, match="no coordinate reference system"):
        job_grid_for_area(Area(_box(0.0, 0.0, 0.1, 0.1), ""), 10.0)
    with pytest.raises(GlacierFlowError, match="in degrees"):
        job_grid_for_area(AREA, 10.0, crs_wkt=WGS84)
    with pytest.raises(GlacierFlowError, match="positive"):
        job_grid_for_area(AREA, 0.0)
    given = job_grid_for_area(AREA, 10.0, crs_wkt=_wkt(32632))  # a neighbouring zone, on request
    assert _epsg_of(given) == 32632


def test_sensor_resolutions():
    assert sensor_pixel_size("Sentinel-2") == 10.0 and sensor_pixel_size("landsat") == 30.0
    assert sensor_pixel_size("landsat-pan") == 15.0
    assert sensor_of("S2B_MSIL2A_20210820T103019_N0301_R108_T33WXS_20210820T150000") == "sentinel-2"
    assert sensor_of("LC09_L2SP_063018_20220801_20220803_02_T1") == "landsat"
    assert sensor_of("LC08_L1TP_198015_20220901_20220910_02_T1_B8") == "landsat-pan"
    assert sensor_of("series_20210710_B08") is None
    with pytest.raises(GlacierFlowError, match="pixel size"):
        sensor_pixel_size("spot")


# --- downloading ------------------------------------------------------------------------------------------

VALUES = np.random.default_rng(3).integers(1, 10000, NATIVE.shape).astype(np.uint16)


@pytest.fixture()
def originals(tmp_path: Path) -> Path:
    """Three dated scenes of one place (uint16, nodata 0): two clear, one all fill (an empty scene)."""
    folder = tmp_path / "originals"
    folder.mkdir()
    write_array(str(folder / "a_2021-07-05.tif"), NATIVE, VALUES, nodata=0,
                metadata={"ACQUISITION_DATETIME": "2021-07-05T10:30:21Z", "CLOUD_COVER": "12.5"})
    write_array(str(folder / "b_2022-07-10.tif"), NATIVE, VALUES[::-1].copy(), nodata=0,
                metadata={"ACQUISITION_DATETIME": "2022-07-10T10:40:00Z"})
    write_array(str(folder / "fill_2021-08-01.tif"), NATIVE, np.zeros(NATIVE.shape, np.uint16), nodata=0,
                metadata={"ACQUISITION_DATETIME": "2021-08-01T10:00:00Z", "CLOUD_COVER": "3"})
    return folder


def _source(folder: Path, tmp_path: Path) -> LocalFolderSource:
    return LocalFolderSource(str(folder), cache_dir=str(tmp_path / "cache"))


def _visible(folder: Path):
    return sorted(n for n in os.listdir(folder))


def test_download_writes_tagged_cogs_that_a_local_folder_reads_back(originals, tmp_path):
    source = _source(originals, tmp_path)
    scenes = source.search(AREA, None, None)
    assert [s.id for s in scenes] == ["a_2021-07-05", "fill_2021-08-01", "b_2022-07-10"]
    grid = job_grid_for_area(AREA, 10.0)
    assert same_crs(grid.crs_wkt, UTM33) and grid.shape == (30, 30)
    feedback = Recorder()
    out = tmp_path / "scenes"
    paths = download_scenes(source, scenes, grid, str(out), feedback=feedback)

    assert [os.path.basename(p) for p in paths] == ["a_2021-07-05.tif", "b_2022-07-10.tif"]
    assert _visible(out) == ["a_2021-07-05.tif", "b_2022-07-10.tif"]  # no temporary left, no empty scene
    assert any("fill_2021-08-01: empty on the job grid" in m for m in feedback.messages)
    assert feedback.percents[-1] == 100.0 and len(feedback.percents) == 3
    assert not list((tmp_path / "cache").rglob("*.npy"))  # stored once: the download, not a cache copy too
    assert source.cache.store  # the source caches again for other jobs

    dataset = gdal.Open(paths[0])
    band = dataset.GetRasterBand(1)
    assert band.DataType == gdal.GDT_Float32 and math.isnan(band.GetNoDataValue())
    assert dataset.GetMetadata("IMAGE_STRUCTURE").get("LAYOUT") == "COG"
    assert dataset.GetGeoTransform() == grid.transform and same_crs(dataset.GetProjection(), grid.crs_wkt)
    tags = dataset.GetMetadata()
    assert tags["ACQUISITION_DATETIME"] == "2021-07-05T10:30:21Z" and tags["CLOUD_COVER"] == "12.5"
    assert tags["SCENE_ID"] == "a_2021-07-05" and tags["SOURCE"] == "local_folder" and tags["BAND"] == "default"
    assert float(tags["VALID_FRACTION"]) == 1.0
    # the grid's pixels are the originals' pixels 10..39 (aligned: copied exactly, as float32)
    assert np.array_equal(band.ReadAsArray(), VALUES[30:60, 10:40].astype(np.float32))
    dataset = None
    assert "CLOUD_COVER" not in gdal.Open(paths[1]).GetMetadata()  # unknown stays unknown

    again = LocalFolderSource(str(out), cache_dir=str(tmp_path / "cache2")).search(AREA, None, None)
    assert [(s.id, s.time, s.cloud_cover) for s in again] == [
        ("a_2021-07-05", scenes[0].time, 12.5), ("b_2022-07-10", scenes[2].time, None)]
    assert all(s.time_source == "tag ACQUISITION_DATETIME" for s in again)

    table = write_download_table(paths, str(tmp_path / "table.csv"))
    with open(table, newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    assert [(r["scene_id"], r["cloud_cover"], r["valid_fraction"]) for r in rows] == [
        ("a_2021-07-05", "12.5", "1.0000"), ("b_2022-07-10", "", "1.0000")]


def test_rerun_downloads_nothing_and_a_changed_grid_rewrites(originals, tmp_path):
    source = _source(originals, tmp_path)
    scenes = source.search(AREA, None, None)
    grid = job_grid_for_area(AREA, 10.0)
    out = tmp_path / "scenes"
    paths = download_scenes(source, scenes, grid, str(out))
    times = {p: os.stat(p).st_mtime_ns for p in paths}
    feedback = Recorder()
    assert download_scenes(source, scenes, grid, str(out), feedback=feedback) == paths
    assert {p: os.stat(p).st_mtime_ns for p in paths} == times
    assert sum(": already downloaded" in m for m in feedback.messages) == 2
    assert is_complete_download(paths[0], scenes[0], grid)
    assert not is_complete_download(paths[0], scenes[0], grid, band="nir")

    coarse = job_grid_for_area(AREA, 20.0)
    assert not is_complete_download(paths[0], scenes[0], coarse)
    rewritten = download_scenes(source, scenes, coarse, str(out))
    assert rewritten == paths and gdal.Open(paths[0]).RasterXSize == coarse.width


class FailingSource:
    """A source whose fetch of one scene raises (as a remote fetch does when cancelled or on a dropped
    connection); every other scene comes from the wrapped real source."""

    def __init__(self, inner: LocalFolderSource, failing_id: str, error: BaseException) -> None:
        self.inner, self.failing_id, self.error = inner, failing_id, error
        self.name = inner.name

    def search(self, *args, **kwargs):
        return self.inner.search(*args, **kwargs)

    def fetch(self, scene, grid, band=""):
        if scene.id == self.failing_id:
            raise self.error
        return self.inner.fetch(scene, grid, band)


def test_cancel_leaves_only_complete_files(originals, tmp_path):
    source = _source(originals, tmp_path)
    scenes = source.search(AREA, None, None)
    grid = job_grid_for_area(AREA, 10.0)
    out = tmp_path / "scenes"
    with pytest.raises(JobCancelled):
        download_scenes(source, scenes, grid, str(out), feedback=Recorder(cancel_at="Scene 1/3"))
    assert _visible(out) == ["a_2021-07-05.tif"]  # the finished one, complete; nothing hidden

    failing = FailingSource(source, "b_2022-07-10", JobCancelled("Cancelled by the user"))
    with pytest.raises(JobCancelled):
        download_scenes(failing, scenes, grid, str(tmp_path / "other"))
    assert _visible(tmp_path / "other") == ["a_2021-07-05.tif"]
    # the rerun after the interruption completes the folder and keeps the finished file
    feedback = Recorder()
    download_scenes(source, scenes, grid, str(out), feedback=feedback)
    assert _visible(out) == ["a_2021-07-05.tif", "b_2022-07-10.tif"]
    assert feedback.messages[0].endswith("already downloaded (a_2021-07-05.tif)")


def test_names_bands_and_valid_fraction_filter(tmp_path):
    from datetime import datetime, timezone

    when = datetime(2021, 7, 5, tzinfo=timezone.utc)
    scenes = [Scene("S2A_X/T33", when, 5.0, "stac", "a", valid_fraction=0.8),
              Scene("S2A_X/T34", when, 5.0, "stac", "b", valid_fraction=0.3),
              Scene("local", when, None, "local_folder", "c")]
    assert download_name(scenes[0]) == "S2A_X_T33.tif" and download_name(scenes[0], "swir1") == "S2A_X_T33_swir1.tif"
    kept, dropped = keep_valid(scenes, 0.5)
    assert [s.id for s in kept] == ["S2A_X/T33", "local"] and [s.id for s in dropped] == ["S2A_X/T34"]
    assert keep_valid(scenes, None)[0] == scenes
    assert default_pixel_size(object(), scenes)[0] == 10.0
    assert default_pixel_size(object(), [Scene("LC09_L2SP_063018", when, None, "stac", "x")])[0] == 30.0


def test_a_band_name_reaches_the_source_and_the_file_name(originals, tmp_path):
    source = _source(originals, tmp_path)
    scenes = source.search(AREA, None, None)[:1]
    with pytest.raises(GlacierFlowError, match="one band per file"):
        download_scenes(source, scenes, job_grid_for_area(AREA, 10.0), str(tmp_path / "nir"), band="nir")
    assert _visible(tmp_path / "nir") == []


# --- the annual chain from any source ---------------------------------------------------------------------

ENGINE = "farneback"


@pytest.fixture(scope="module")
def series(tmp_path_factory):
    return write_sample_series(str(tmp_path_factory.mktemp("series")), shape=(128, 128))


def _series_area(series) -> Area:
    dataset = gdal.Open(series.images[0])
    x0, size, _, y0, _, negative = dataset.GetGeoTransform()
    box = _box(x0, y0 + negative * dataset.RasterYSize, x0 + size * dataset.RasterXSize, y0)
    return Area(box, dataset.GetProjection())


def test_annual_from_a_downloaded_source_equals_the_folder_on_the_same_grid(series, tmp_path):
    area = _series_area(series)
    common = dict(year_a=2021, months="7-8", engine=ENGINE, outlines=series.outlines, area=area)
    direct = run_annual_job(AnnualJob(folder=series.folder, output=str(tmp_path / "direct.tif"), **common))
    source = LocalFolderSource(series.folder, cache_dir=str(tmp_path / "cache"))
    feedback = Recorder()
    job = AnnualJob(folder="", output=str(tmp_path / "remote.tif"), source=source,
                    work_folder=str(tmp_path / "work"), **common)
    remote = run_annual_job(job, feedback)

    downloaded = sorted(os.listdir(tmp_path / "work" / "scenes"))
    assert downloaded == ["series_20210710_B08.tif", "series_20210804_B08.tif", "series_20220715_B08.tif",
                          "series_20220809_B08.tif"]  # only July and August of both years
    assert direct.pair_count == remote.pair_count == 4
    first, second = gdal.Open(direct.output), gdal.Open(remote.output)  # kept open while their bands are read
    assert first.RasterCount == second.RasterCount >= 5
    for band in range(1, first.RasterCount + 1):
        a, b = first.GetRasterBand(band).ReadAsArray(), second.GetRasterBand(band).ReadAsArray()
        assert np.isfinite(a).mean() > 0.5
        assert np.allclose(a, b, equal_nan=True, atol=1e-4), f"band {band} differs"
    assert any("Job grid: UTM zone 32N" in m for m in feedback.messages)
    assert any("10 m (the resolution of series_20210710_B08)" in m for m in feedback.messages)
    assert max(feedback.percents) == 100.0 and all(p <= 30.0 for p in feedback.percents[:4])

    again = Recorder()
    rerun = run_annual_job(AnnualJob(folder="", output=str(tmp_path / "again.tif"), source=source,
                                     work_folder=str(tmp_path / "work"), **common), again)
    assert rerun.reused == 4 and rerun.computed == 0
    assert sum(": already downloaded" in m for m in again.messages) == 4


def test_annual_from_a_source_needs_an_overlapping_area(series, originals, tmp_path):
    source = LocalFolderSource(series.folder, cache_dir=str(tmp_path / "cache"))
    with pytest.raises(GlacierFlowError, match="needs an area"):
        run_annual_job(AnnualJob(folder="", output=str(tmp_path / "x.tif"), year_a=2021, source=source))
    far = Area(_box(1.0, 10.0, 1.01, 10.01), WGS84)
    with pytest.raises(GlacierFlowError, match="No scene found.*outside the area"):
        run_annual_job(AnnualJob(folder="", output=str(tmp_path / "x.tif"), year_a=2021, source=source, area=far))
    # scenes that overlap the area but hold no valid pixel there: nothing to track, said clearly
    fill_only = tmp_path / "fill_only"
    fill_only.mkdir()
    for day in ("2021-07-05", "2022-07-05"):
        write_array(str(fill_only / f"fill_{day}.tif"), NATIVE, np.zeros(NATIVE.shape, np.uint16), nodata=0,
                    metadata={"ACQUISITION_DATETIME": f"{day}T10:00:00Z"})
    with pytest.raises(GlacierFlowError, match="no valid pixel|has a valid pixel"):
        run_annual_job(AnnualJob(folder="", output=str(tmp_path / "x.tif"), year_a=2021, area=AREA,
                                 source=_source(fill_only, tmp_path), work_folder=str(tmp_path / "w")))
    assert not (tmp_path / "x.tif").exists()
    assert _visible(tmp_path / "w" / "scenes") == []


def test_cancel_during_the_download_stage_leaves_no_output(series, tmp_path):
    source = LocalFolderSource(series.folder, cache_dir=str(tmp_path / "cache"))
    job = AnnualJob(folder="", output=str(tmp_path / "annual.tif"), year_a=2021, months="7-8", engine=ENGINE,
                    area=_series_area(series), source=source, work_folder=str(tmp_path / "work"))
    with pytest.raises(JobCancelled):
        run_annual_job(job, Recorder(cancel_at="Scene 2/4"))
    assert not (tmp_path / "annual.tif").exists()
    assert _visible(tmp_path / "work" / "scenes") == ["series_20210710_B08.tif", "series_20210804_B08.tif"]


# --- the algorithms ---------------------------------------------------------------------------------------


def _shapefile_without_crs(path: Path, wkt: str) -> str:
    """A polygon shapefile with no .prj: a layer QGIS opens with an invalid CRS."""
    from osgeo import ogr

    dataset = ogr.GetDriverByName("ESRI Shapefile").CreateDataSource(str(path))
    layer = dataset.CreateLayer("area", None, ogr.wkbPolygon)
    feature = ogr.Feature(layer.GetLayerDefn())
    feature.SetGeometry(ogr.CreateGeometryFromWkt(wkt))
    layer.CreateFeature(feature)
    feature, layer, dataset = None, None, None
    assert not path.with_suffix(".prj").exists()
    return str(path)
