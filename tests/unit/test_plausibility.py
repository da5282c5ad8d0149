"""Plausibility checks through the pair job on real GeoTIFFs: what would give silently wrong velocities is
refused with a message saying what to do, and nothing is written; what is only less certain is a warning."""
from __future__ import annotations

import os
from datetime import timedelta

import pytest
from osgeo import gdal

from glacierflow.core.errors import GlacierFlowError
from glacierflow.core.feedback import Feedback
from glacierflow.core.geo.gridspec import GridSpec
from glacierflow.core.io.timestamps import acquisition_of
from glacierflow.core.velocity.pair import PairJob, run_pair_job
from glacierflow.core.velocity.plausibility import check_speeds
from training.sample import write_sample


class Recorder(Feedback):
    def __init__(self) -> None:
        self.warnings: list[str] = []

    def warning(self, message: str) -> None:
        self.warnings.append(message)


@pytest.fixture(scope="module")
def sample(tmp_path_factory):
    return write_sample(str(tmp_path_factory.mktemp("plausible")), shape=(256, 256))


def _copy(source, target, **options) -> str:
    gdal.Translate(str(target), source, options=gdal.TranslateOptions(**options))
    return str(target)


def refused(job: PairJob, match: str) -> None:
    folder = os.path.dirname(job.output)
    before = set(os.listdir(folder))
    with pytest.raises(GlacierFlowError, match=match):
        run_pair_job(job)
    assert set(os.listdir(folder)) == before, "a file was left behind"


@pytest.mark.parametrize("coarse", ["a", "b"])
def test_pixel_sizes_far_apart_are_refused(sample, tmp_path, coarse):
    resampled = _copy(sample.image_b if coarse == "b" else sample.image_a, tmp_path / "coarse.tif",
                      xRes=300, yRes=300, resampleAlg="average")
    image_a, image_b = (sample.image_a, resampled) if coarse == "b" else (resampled, sample.image_b)
    out = tmp_path / "out"
    out.mkdir()
    refused(PairJob(image_a, image_b, str(out / "v.tif"), engine="farneback"), r"10 m .* 300 m|300 m .* 10 m")


def test_a_strip_too_narrow_to_track_is_refused(sample, tmp_path):
    strips = [_copy(image, tmp_path / f"strip_{i}.tif", srcWin=[100, 0, 6, 256])
              for i, image in enumerate((sample.image_a, sample.image_b))]
    refused(PairJob(*strips, str(tmp_path / "v.tif"), engine="farneback"), "only 6 x 256 px")


def test_a_grid_twenty_times_finer_than_the_images_is_refused(sample, tmp_path):
    refused(PairJob(sample.image_a, sample.image_b, str(tmp_path / "v.tif"), engine="farneback",
                    grid_spec=GridSpec(pixel_size=0.5)), "20x finer")


def test_file_writing_time_is_not_an_acquisition_time(sample, tmp_path):
    images = []
    for name, image, stamp in (("a", sample.image_a, "2021:08:01 10:00:00"), ("b", sample.image_b,
                                                                               "2021:08:01 10:07:00")):
        path = _copy(image, tmp_path / f"{name}.tif")
        dataset = gdal.Open(path, gdal.GA_Update)
        dataset.SetMetadata({"TIFFTAG_DATETIME": stamp})
        dataset = None
        images.append(path)
    assert acquisition_of(images[0], gdal.Open(images[0])).source == "tag TIFFTAG_DATETIME"
    out = tmp_path / "out"
    out.mkdir()
    refused(PairJob(*images, str(out / "v.tif"), engine="farneback"), "TIFFTAG_DATETIME.*give the acquisition time")
    # the user's own dates make the same files usable
    result = run_pair_job(PairJob(*images, str(out / "v.tif"), engine="farneback",
                                  date_a="2021-08-01T10:00:00Z", date_b="2021-08-17T10:00:00Z"))
    assert result.interval_days == pytest.approx(16.0)


@pytest.mark.parametrize("date_a, date_b, match", [
    ("2021-08-01T10:30:00Z", "2021-08-01T10:30:01Z", "hours apart"),
    ("1921-08-01T10:30:00Z", "2021-08-01T10:30:00Z", "100.0 years apart"),
])
def test_implausible_intervals_are_refused(sample, tmp_path, date_a, date_b, match):
    refused(PairJob(sample.image_a, sample.image_b, str(tmp_path / "v.tif"), engine="farneback",
                    date_a=date_a, date_b=date_b), match)


def test_a_date_only_time_mixed_with_an_exact_one_is_refused_unless_both_are_given(sample, tmp_path):
    # image B's exact time comes from its ACQUISITION_DATETIME tag; a date-only DATE_A 10 days earlier
    exact_b = acquisition_of(sample.image_b, gdal.Open(sample.image_b))
    assert exact_b.exact
    day_a = (exact_b.time - timedelta(days=10)).strftime("%Y-%m-%d")
    refused(PairJob(sample.image_a, sample.image_b, str(tmp_path / "v.tif"), engine="farneback", date_a=day_a),
            "date only.*bias every speed by up to 5 %.*Give both times")
    recorder = Recorder()
    run_pair_job(PairJob(sample.image_a, sample.image_b, str(tmp_path / "v.tif"), engine="farneback", date_a=day_a,
                         date_b=exact_b.time.strftime("%Y-%m-%dT%H:%M:%SZ")), recorder)
    assert any("bias every speed" in warning for warning in recorder.warnings)


def test_a_year_long_exact_pair_passes_without_a_warning(sample, tmp_path):
    recorder = Recorder()
    run_pair_job(PairJob(sample.image_a, sample.image_b, str(tmp_path / "v.tif"), engine="farneback"), recorder)
    assert recorder.warnings == []


def test_speeds_beyond_any_glacier_are_a_warning():
    recorder = Recorder()
    check_speeds(250.0, recorder)
    assert recorder.warnings == []
    check_speeds(100000.0, recorder)
    assert "100,000 m/yr" in recorder.warnings[0]


def test_a_rerun_removes_what_a_killed_run_left_beside_the_same_output(sample, tmp_path):
    from glacierflow.core.io.atomic import TEMPORARY_MARK

    out = tmp_path / "out"
    out.mkdir()
    for leftover in (f".v.tif.dead{TEMPORARY_MARK}.work.tif", f".v.tif.dead{TEMPORARY_MARK}.tif.ovr.tmp"):
        (out / leftover).write_bytes(b"partial")
    (out / ".other.tif.beef.gftmp.work.tif").write_bytes(b"another output's: kept")
    run_pair_job(PairJob(sample.image_a, sample.image_b, str(out / "v.tif"), engine="farneback"))
    assert sorted(os.listdir(out)) == [".other.tif.beef.gftmp.work.tif", "v.qml", "v.tif"]
