"""Acquisition times: every metadata source, and exact intervals."""
from __future__ import annotations

from datetime import datetime, timezone

import pytest

from glacierflow.core.errors import GlacierFlowError
from glacierflow.core.io.timestamps import Acquisition, acquisition_of, interval_days, parse_datetime


def test_iso_and_tiff_forms():
    assert parse_datetime("2021-08-01T10:30:21Z") == datetime(2021, 8, 1, 10, 30, 21, tzinfo=timezone.utc)
    assert parse_datetime("2021:08:01 10:30:21") == datetime(2021, 8, 1, 10, 30, 21, tzinfo=timezone.utc)
    assert parse_datetime("2021-08-01") == datetime(2021, 8, 1, tzinfo=timezone.utc)
    assert parse_datetime("2021-08-01T12:30:21+02:00").hour == 10


def test_bad_date_says_the_format():
    with pytest.raises(GlacierFlowError, match="YYYY-MM-DD"):
        parse_datetime("1st of August")


def test_interval_exact_to_the_second():
    a = Acquisition(parse_datetime("2016-07-18T20:37:06Z"), "t")
    b = Acquisition(parse_datetime("2016-08-03T20:37:09Z"), "t")
    assert interval_days(a, b) == pytest.approx(16 + 3 / 86400, abs=1e-9)


def test_equal_or_reversed_dates_are_refused():
    a = Acquisition(parse_datetime("2021-08-01"), "t")
    with pytest.raises(GlacierFlowError, match="same"):
        interval_days(a, a)
    with pytest.raises(GlacierFlowError, match="swap"):
        interval_days(Acquisition(parse_datetime("2022-08-01"), "t"), a)


@pytest.mark.parametrize("name, expected, exact", [
    ("S2A_MSIL2A_20210801T103021_N0301_R108_T32TLR_20210801T134507_B08.tif",
     datetime(2021, 8, 1, 10, 30, 21, tzinfo=timezone.utc), True),
    ("T32TLR_20220806T103019_B08_10m.tif", datetime(2022, 8, 6, 10, 30, 19, tzinfo=timezone.utc), True),
    ("LC08_L1TP_063018_20160718_20200906_02_T1_B8.TIF", datetime(2016, 7, 18, 12, tzinfo=timezone.utc), False),
    ("LC80630182016200LGN00_B8.TIF", datetime(2016, 7, 18, 12, tzinfo=timezone.utc), False),
])
def test_product_names(tmp_path, name, expected, exact):
    path = tmp_path / name
    path.write_bytes(b"")
    found = acquisition_of(str(path))
    assert found.time == expected and found.exact is exact


def test_landsat_mtl_beside_the_file(tmp_path):
    (tmp_path / "LC80630182016200LGN00_MTL.txt").write_text(
        'GROUP = L1_METADATA_FILE\n    DATE_ACQUIRED = 2016-07-18\n'
        '    SCENE_CENTER_TIME = "20:37:06.3391580Z"\nEND_GROUP\n')
    image = tmp_path / "LC80630182016200LGN00_B8_crop.TIF"
    image.write_bytes(b"")
    found = acquisition_of(str(image))
    assert found.time == datetime(2016, 7, 18, 20, 37, 6, 339158, tzinfo=timezone.utc)
    assert found.source.startswith("MTL")


def test_explicit_date_wins_and_missing_date_says_what_to_do(tmp_path):
    image = tmp_path / "scene.tif"
    image.write_bytes(b"")
    assert acquisition_of(str(image), explicit="2020-01-02T10:00:00Z").source == "given"
    with pytest.raises(GlacierFlowError, match="DATE_A"):
        acquisition_of(str(image))


def test_real_landsat_pair_interval(shared_data):
    from osgeo import gdal

    folder = shared_data / "yahtse"
    times = []
    for name in ("LC80630182016200LGN00_B8_yahtse.TIF", "LC80630182016216LGN00_B8_yahtse.TIF"):
        times.append(acquisition_of(str(folder / name), gdal.Open(str(folder / name))))
    assert times[0].time.strftime("%Y-%m-%dT%H:%M:%S") == "2016-07-18T20:37:06"
    assert interval_days(*times) == pytest.approx(16.0, abs=5e-5)
