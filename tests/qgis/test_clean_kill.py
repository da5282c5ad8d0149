"""A headless run killed with SIGTERM or stopped with Ctrl+C (SIGINT): qgis_process in a real subprocess stops
promptly, says it was cancelled, and leaves no file, partial or temporary, in the output folder."""
from __future__ import annotations

import os
import signal
import subprocess
import time

import pytest
from qgis_process_runner import qgis_process_env

from glacierflow.core.io.atomic import TEMPORARY_MARK
from training.sample import write_sample


@pytest.fixture(scope="module")
def large_sample(tmp_path_factory):
    """A pair big enough that horn_schunck with small tiles runs for many seconds."""
    return write_sample(str(tmp_path_factory.mktemp("kill_sample")), shape=(1024, 1024))


@pytest.mark.parametrize("stop", [signal.SIGTERM, signal.SIGINT])
def test_a_killed_run_stops_promptly_and_leaves_nothing(large_sample, tmp_path, stop):
    binary, env = qgis_process_env(tmp_path / "profile")
    out = tmp_path / "out"
    out.mkdir()
    process = subprocess.Popen(
        [binary, "run", "glacierflow:velocity_pair", "--", f"IMAGE_A={large_sample.image_a}",
         f"IMAGE_B={large_sample.image_b}", "ENGINE=horn_schunck", "TILE_SIZE=64", "OVERLAP=16",
         f"OUTPUT={out / 'velocity.tif'}"], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    deadline = time.monotonic() + 120
    while not any(TEMPORARY_MARK in name for name in os.listdir(out)):  # tiles are being written
        assert process.poll() is None, process.communicate()[0]
        assert time.monotonic() < deadline, "the job never started writing"
        time.sleep(0.05)
    time.sleep(0.5)
    sent = time.monotonic()
    process.send_signal(stop)
    output, _ = process.communicate(timeout=60)
    assert time.monotonic() - sent < 15, "the job did not stop promptly"
    assert process.returncode != 0
    assert f"Cancelled by {signal.Signals(stop).name}: no output was written" in output
    assert os.listdir(out) == []
