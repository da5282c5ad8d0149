"""The plugin zip: only what ships, complete metadata, and it installs into a fresh profile where its
algorithms run (through qgis_process, with nothing of the repository on the Python path)."""
from __future__ import annotations

import configparser
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest
from osgeo import gdal
from qgis_process_runner import qgis_process_env, run_json

from training.sample import write_sample

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tools"))
import package  # noqa: E402  (tools/ is a folder of scripts, not a package)

REQUIRED_METADATA = ("name", "qgisMinimumVersion", "qgisMaximumVersion", "description", "about", "version", "author",
                     "email", "repository", "tracker", "homepage", "tags", "category", "icon", "license",
                     "hasProcessingProvider")


@pytest.fixture(scope="module")
def plugin_zip(tmp_path_factory) -> Path:
    return Path(package.build(str(tmp_path_factory.mktemp("dist"))))


def test_the_zip_holds_only_what_ships(plugin_zip):
    assert plugin_zip.name == f"glacierflow-{package.plugin_version()}.zip"
    assert plugin_zip.stat().st_size < 10 * 2**20
    names = zipfile.ZipFile(plugin_zip).namelist()
    assert all(name.startswith("glacierflow/") for name in names)
    for shipped in ("glacierflow/__init__.py", "glacierflow/metadata.txt", "glacierflow/LICENSE",
                    "glacierflow/icon.svg", "glacierflow/requirements.txt", "glacierflow/processing/provider.py",
                    "glacierflow/core/products/velocity.py", "glacierflow/assets/models/forecast/unet.onnx"):
        assert shipped in names
    forbidden = ("/tests/", "/bench/", "/training/", "__pycache__", ".pyc", ".pt", "checkpoints")
    assert not [name for name in names if any(part in name for part in forbidden)]
    assert not [name for name in names if name.endswith(".py") and "import torch" in
                zipfile.ZipFile(plugin_zip).read(name).decode("utf-8")]


def test_metadata_is_complete_for_the_plugin_repository_and_qgis_4(plugin_zip):
    metadata = configparser.ConfigParser(interpolation=None)
    metadata.read_string(zipfile.ZipFile(plugin_zip).read("glacierflow/metadata.txt").decode("utf-8"))
    general = metadata["general"]
    assert [key for key in REQUIRED_METADATA if not general.get(key, "").strip()] == []
    assert general["qgisMinimumVersion"] == "3.22" and general["qgisMaximumVersion"] == "4.99"
    assert general["hasProcessingProvider"] == "yes" and general["supportsQt6"] == "True"
    pyproject = (ROOT / "pyproject.toml").read_text(encoding="utf-8")
    assert f'version = "{general["version"]}"' in pyproject


def test_the_zip_installs_into_a_fresh_profile_and_its_algorithms_run(plugin_zip, tmp_path):
    plugins = tmp_path / "plugins"
    zipfile.ZipFile(plugin_zip).extractall(plugins)
    sample = write_sample(str(tmp_path / "sample"), shape=(128, 160))
    output = tmp_path / "velocity.tif"
    completed, answer = run_json("velocity_pair", {"IMAGE_A": sample.image_a, "IMAGE_B": sample.image_b,
                                                   "ENGINE": "farneback", "OUTPUT": output},
                                 tmp_path / "profile", plugins=str(plugins))  # the zip's copy, no repository
    assert completed.returncode == 0, completed.stdout + completed.stderr
    assert answer["results"]["OUTPUT"] == str(output)
    dataset = gdal.Open(str(output))  # held: a band outlives no dataset
    speed = dataset.GetRasterBand(3).ReadAsArray()
    assert np.nanmax(speed) > 20.0
    binary, env = qgis_process_env(tmp_path / "profile", str(plugins))
    listing = subprocess.run([binary, "list"], env=env, capture_output=True, text=True, timeout=120).stdout
    assert "glacierflow:annual_velocity" in listing and "glacierflow:forecast_ndsi" in listing
