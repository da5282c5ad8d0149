"""The regional job (``core.workflows.regional``) on the built-in regional sample (4 glaciers in 2 job
areas): in this process, on a real ``dask scheduler`` with two ``dask worker`` processes on 127.0.0.1 (one
killed mid-run), a rerun, a bad address, and the command line."""
from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from osgeo import gdal, ogr

from glacierflow.core.errors import GlacierFlowError
from glacierflow.core.feedback import Feedback
from glacierflow.core.workflows.regional import (
    INDEX_NAME,
    RegionalJob,
    group_glaciers,
    read_glaciers,
    run_regional_job,
)
from training.sample_region import write_sample_region

ROOT = Path(__file__).resolve().parents[2]
DASK = Path(sys.executable).parent / "dask"
pytest.importorskip("distributed", reason="requirements/worker.txt is not installed")


class Recorder(Feedback):
    """Keeps the log; calls ``on_info`` with each message."""

    def __init__(self, on_info=None) -> None:
        self.messages: list[str] = []
        self.warnings: list[str] = []
        self.on_info = on_info

    def info(self, message: str) -> None:
        self.messages.append(message)
        if self.on_info:
            self.on_info(message)

    def warning(self, message: str) -> None:
        self.warnings.append(message)


def regional_job(region, output, **options) -> RegionalJob:
    return RegionalJob(outlines=region.outlines, output=str(output), folder=region.folder, group_distance_m=1000,
                       **options)


def products(output) -> dict[str, np.ndarray]:
    """Every glacier product's bands, by glacier folder."""
    found = {}
    for folder in sorted(Path(output).iterdir()):
        product = folder / "velocity.tif"
        if product.exists():
            found[folder.name] = gdal.Open(str(product)).ReadAsArray()
    return found


def files_and_times(output) -> dict[str, float]:
    return {str(p): p.stat().st_mtime for p in Path(output).rglob("*") if p.is_file() and p.name != INDEX_NAME}


@pytest.fixture(scope="module")
def region(tmp_path_factory):
    return write_sample_region(str(tmp_path_factory.mktemp("region")))


@pytest.fixture(scope="module")
def serial(region, tmp_path_factory):
    output = tmp_path_factory.mktemp("serial") / "out"
    return output, run_regional_job(regional_job(region, output, workers=0), Recorder())


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture()
def cluster(tmp_path):
    """A real ``dask scheduler`` and two ``dask worker`` processes (no nanny: each PID is the worker)."""
    from distributed import Client

    port = free_port()
    address = f"tcp://127.0.0.1:{port}"
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]))
    logs = open(tmp_path / "dask.log", "w")
    processes = [subprocess.Popen([str(DASK), "scheduler", "--host", "127.0.0.1", "--port", str(port),
                                   "--dashboard-address", ":0"], env=env, stdout=logs, stderr=logs)]
    time.sleep(1.0)
    for name in ("w1", "w2"):
        processes.append(subprocess.Popen(
            [str(DASK), "worker", address, "--nthreads", "1", "--no-nanny", "--name", name,
             "--local-directory", str(tmp_path / name), "--memory-limit", "2GB"], env=env, stdout=logs, stderr=logs,
            cwd=str(tmp_path)))
    with Client(address, timeout="20s") as client:
        client.wait_for_workers(2, timeout=40)
    try:
        yield address, processes
    finally:
        for process in reversed(processes):
            if process.poll() is None:
                process.kill()  # the test's own processes, by PID
            process.wait(timeout=30)
        logs.close()


def test_glaciers_are_grouped_into_job_areas(region):
    glaciers = read_glaciers(region.outlines)
    assert sorted(g.id for g in glaciers) == sorted(region.glacier_ids) and len(glaciers) == 4
    areas = group_glaciers(glaciers, 1000.0)
    assert [sorted(g.id for g in a.glaciers) for a in areas] == [region.glacier_ids[:2], region.glacier_ids[2:]]
    assert len(group_glaciers(glaciers, 50000.0)) == 1  # 20 km apart: one area when allowed
    with pytest.raises(GlacierFlowError, match="no field 'NAME'"):
        read_glaciers(region.outlines, id_field="NAME")


def test_a_pair_task_measures_its_product_as_the_screening_would_and_restores_opencv(region, tmp_path):
    import math

    import cv2

    from glacierflow.core.workflows.pair_table import PairRecord, measure_pair
    from glacierflow.core.workflows.regional import compute_pair, plan_areas

    area = plan_areas(regional_job(region, tmp_path / "out"), Recorder())[0]
    threads = cv2.getNumThreads()
    result = compute_pair(area.pairs[0], str(tmp_path / "pairs"), "horn_schunck", area.annual.outlines,
                          {"workers": 1}, area.grid)
    assert cv2.getNumThreads() == threads and not result["error"] and os.path.exists(result["path"])
    fresh = PairRecord(area.pairs[0], result["path"])
    measure_pair(fresh, area.annual.outlines, None, None)
    measured = result["measured"]
    for name in ("trusted_fraction", "median_speed", "offset_vx", "offset_vy", "spread", "pixel_size"):
        value = getattr(fresh, name)
        assert math.isfinite(value) and measured[name] == value, name


def test_serial_run_writes_a_folder_per_glacier_and_the_index(region, serial):
    output, result = serial
    assert result.tasks_run == 2 * 9 + 2 + 4 and result.tasks_skipped == 0
    assert all(row["status"] == "complete" and row["pair_count"] == 9 for row in result.rows)
    for glacier in region.glacier_ids:
        folder = output / glacier
        assert {"velocity.tif", "outline.geojson", "pairs.csv", "summary.json", "stable_ground.json"} <= {
            p.name for p in folder.iterdir()}
    index = ogr.Open(str(output / INDEX_NAME))
    layer = index.GetLayer(0)
    rows = {f.GetField("glacier_id"): f for f in layer}
    assert sorted(rows) == sorted(region.glacier_ids)
    truth_max = max(s.max_speed for s in region.series)
    for feature in rows.values():
        assert feature.GetField("status") == "complete" and feature.GetField("coverage") > 0.9
        assert 0 < feature.GetField("median_speed") <= feature.GetField("p95_speed") < 1.1 * truth_max
        assert feature.GetField("median_uncertainty") > 0 and abs(feature.GetField("offset_vx")) < 1.0
        assert os.path.exists(feature.GetField("product")) and feature.GetGeometryRef().GetArea() > 0
    assert not [p for p in output.rglob("*") if ".gftmp" in p.name]


def test_dask_with_real_processes_gives_the_serial_products_even_when_a_worker_dies(region, serial, cluster,
                                                                                    tmp_path):
    address, processes = cluster
    victim = processes[1]

    def kill_after_two_tasks(message: str) -> None:
        if message.startswith("Task 2/") and victim.poll() is None:
            os.kill(victim.pid, signal.SIGKILL)  # the worker's own PID, mid-run

    feedback = Recorder(kill_after_two_tasks)
    output = tmp_path / "dask"
    result = run_regional_job(regional_job(region, output, scheduler=address, connect_timeout_s=10), feedback)
    assert victim.poll() is not None, "the worker was not killed during the run"
    assert processes[2].poll() is None  # the other worker finished the job
    assert all(row["status"] == "complete" for row in result.rows)
    assert any("dashboard" in m for m in feedback.messages)
    reference, distributed = products(serial[0]), products(output)
    assert sorted(distributed) == sorted(reference) == sorted(region.glacier_ids)
    for name, bands in reference.items():
        assert np.array_equal(bands, distributed[name], equal_nan=True), name  # max abs difference 0
    assert not [p for p in output.rglob("*") if ".gftmp" in p.name]

    before = files_and_times(output)
    again = Recorder()
    rerun = run_regional_job(regional_job(region, output, scheduler=address), again)
    assert rerun.tasks_run == 0 and rerun.tasks_skipped == 2 * 9 + 2 + 4
    assert files_and_times(output) == before  # nothing recomputed, nothing rewritten


def test_cancel_keeps_complete_work_and_a_rerun_finishes_it(region, serial, tmp_path):
    from glacierflow.core.feedback import JobCancelled

    class Cancelling(Recorder):
        def __init__(self) -> None:
            super().__init__()
            self.percents: list[float] = []

        def is_cancelled(self) -> bool:
            return any(m.startswith("Task 12 finished") for m in self.messages)

        def progress(self, percent: float) -> None:
            self.percents.append(percent)

    output = tmp_path / "cancelled"
    cancelling = Cancelling()
    with pytest.raises(JobCancelled):
        run_regional_job(regional_job(region, output, workers=0), cancelling)
    # the bar moves with each task, on the scale of the 24 tasks the job can run (2 areas: 9 pairs, 1, 2)
    assert cancelling.percents == pytest.approx([100.0 * k / 24 for k in range(1, 13)])
    assert not (output / INDEX_NAME).exists() and not [p for p in output.rglob("*") if ".gftmp" in p.name]
    # tasks 1-12: area 1's 9 pairs, its screening, its 2 glaciers; then the cancel
    assert len(list(output.glob("_areas/*/pairs/*.tif"))) == 9
    assert sorted(p.parent.name for p in output.glob("*/summary.json")) == region.glacier_ids[:2]
    again = run_regional_job(regional_job(region, output, workers=0), Recorder())
    assert again.tasks_skipped == 12 and again.tasks_run == 12
    for name, bands in products(serial[0]).items():
        assert np.array_equal(bands, products(output)[name], equal_nan=True)


def test_a_folder_reused_with_other_area_grids_recomputes_everything(region, serial, tmp_path):
    output = tmp_path / "reused"
    shutil.copytree(serial[0], output)
    # no margin: the same areas and pairs (same product names) on smaller area grids. Products of the old
    # grids are not this job's, and the screenings and stacks made of them are stale too.
    narrow = run_regional_job(regional_job(region, output, workers=0, margin_m=0.0), Recorder())
    assert narrow.tasks_run == 2 * 9 + 2 + 4 and narrow.tasks_skipped == 0
    assert all(row["status"] == "complete" for row in narrow.rows)
    fresh_folder = tmp_path / "fresh"
    fresh = run_regional_job(regional_job(region, fresh_folder, workers=0, margin_m=0.0), Recorder())
    for name, bands in products(fresh_folder).items():
        assert np.array_equal(bands, products(output)[name], equal_nan=True)  # as if the folder were new
    assert run_regional_job(regional_job(region, output, workers=0, margin_m=0.0), Recorder()).tasks_run == 0
    assert fresh.tasks_run == narrow.tasks_run


def test_a_remote_source_is_downloaded_per_area_and_every_glacier_completes(region, tmp_path):
    """A source object instead of a folder: the search -> job grid -> download path that STAC and Earth
    Engine take (here a LocalFolderSource, so no network), area by area, then the same tasks."""
    from glacierflow.core.imagery import LocalFolderSource

    source = LocalFolderSource(region.folder, cache_dir=str(tmp_path / "cache"))
    output = tmp_path / "remote"
    job = RegionalJob(outlines=region.outlines, output=str(output), source=source, group_distance_m=1000,
                      year_a=2021, year_b=2022, workers=0)  # a catalogue has no folder to take the years from
    result = run_regional_job(job, Recorder())
    assert result.tasks_run == 2 * 9 + 2 + 4
    truth_max = max(s.max_speed for s in region.series)
    for row in result.rows:
        assert row["status"] == "complete" and row["pair_count"] == 9 and row["coverage"] > 0.9
        assert 0 < row["median_speed"] <= row["p95_speed"] < 1.1 * truth_max
    for area in ("area_001", "area_002"):  # each area's scenes downloaded once, onto its own job grid
        assert len(list((output / "_areas" / area / "pairs" / "scenes").glob("*.tif"))) == 6
    assert run_regional_job(job, Recorder()).tasks_run == 0


def test_a_bad_scheduler_address_says_what_to_do(region, tmp_path):
    job = regional_job(region, tmp_path / "out", scheduler=f"tcp://127.0.0.1:{free_port()}", connect_timeout_s=2)
    started = time.perf_counter()
    with pytest.raises(GlacierFlowError, match="Cannot reach the Dask scheduler.*leave the scheduler empty"):
        run_regional_job(job, Recorder())
    assert time.perf_counter() - started < 30
    assert not (tmp_path / "out" / INDEX_NAME).exists()


def test_command_line_without_qgis(region, serial, tmp_path):
    output = tmp_path / "cli"
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    arguments = ["--outlines", region.outlines, "--folder", region.folder, "--output", str(output), "--workers", "0",
                 "--group-distance", "1000"]
    # QGIS made unimportable: any import of it in the job would fail the run
    no_qgis = ("import runpy, sys; sys.modules['qgis'] = None; sys.argv = ['glacierflow.regional'] + sys.argv[1:]; "
               "runpy.run_module('glacierflow.regional', run_name='__main__', alter_sys=True)")
    run = subprocess.run([sys.executable, "-c", no_qgis, *arguments], capture_output=True, text=True, env=env,
                         timeout=300, check=False)
    assert run.returncode == 0, run.stderr
    assert run.stdout.strip() == str(output / INDEX_NAME) and "4 of 4 glacier(s) complete" in run.stderr
    for name, bands in products(serial[0]).items():
        assert np.array_equal(bands, products(output)[name], equal_nan=True)
    bad = subprocess.run([sys.executable, "-m", "glacierflow.regional", "--outlines", str(tmp_path / "none.gpkg"),
                          "--output", str(tmp_path / "x"), "--workers", "0"], capture_output=True, text=True,
                         env=env, timeout=120, check=False)
    assert bad.returncode == 2 and "Cannot read the outlines" in bad.stderr
