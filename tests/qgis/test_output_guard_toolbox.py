"""The output guard through processing.run, as a user runs the algorithms: an output on an input, two outputs
on one file, a wrong extension, leftovers of a killed run; and enum values given by number."""
from __future__ import annotations

import hashlib
import math
import os

import pytest
from qgis.core import QgsProcessingException
from test_annual import series  # noqa: F401 (module fixture)
from test_stable_ground import product as stable_product  # noqa: F401 (module fixture)
from test_stakes import INSIDE, _write_gpkg, centre, products, truth_at  # noqa: F401 (fixtures and helpers)

from glacierflow.core.io.atomic import TEMPORARY_MARK
from training.sample import write_sample


@pytest.fixture(scope="module")
def sample(tmp_path_factory):
    return write_sample(str(tmp_path_factory.mktemp("guard_sample")))


def digest(path) -> str:
    with open(path, "rb") as handle:
        return hashlib.sha256(handle.read()).hexdigest()


def files_in(folder) -> set[str]:
    return set(os.listdir(folder))


def refused(algorithm: str, parameters: dict, match: str, protected: list[str]) -> None:
    """Run ``algorithm``; it must fail with ``match`` and leave every ``protected`` file as it was."""
    import processing

    before = {path: digest(path) for path in protected}
    folders = {os.path.dirname(path): files_in(os.path.dirname(path)) for path in protected}
    with pytest.raises(QgsProcessingException, match=match):
        processing.run(algorithm, parameters)
    assert {path: digest(path) for path in protected} == before
    for folder, listing in folders.items():
        assert files_in(folder) == listing, "a file appeared or vanished"


def test_velocity_pair_output_on_image_a_is_refused(plugin, sample):
    refused("glacierflow:velocity_pair", {"IMAGE_A": sample.image_a, "IMAGE_B": sample.image_b,
                                           "ENGINE": "farneback", "OUTPUT": sample.image_a},
            "OUTPUT: .* is the input IMAGE_A", [sample.image_a, sample.image_b])


def test_output_through_a_link_to_the_input_is_refused(plugin, sample, tmp_path):
    link = tmp_path / "link.tif"
    os.symlink(sample.image_b, link)
    refused("glacierflow:velocity_pair", {"IMAGE_A": sample.image_a, "IMAGE_B": sample.image_b,
                                           "ENGINE": "farneback", "OUTPUT": str(link)},
            "is the input IMAGE_B", [sample.image_b])


def test_stack_output_on_one_of_its_inputs_is_refused(plugin, stable_product):  # noqa: F811
    _, path, _, _ = stable_product
    refused("glacierflow:stack_velocity", {"INPUTS": [path], "OUTPUT": path}, "is the input INPUTS", [path])


def test_stable_ground_report_or_output_on_the_input_is_refused(plugin, stable_product, tmp_path):  # noqa: F811
    _, path, outlines, _ = stable_product
    base = {"INPUT": path, "GLACIER_OUTLINES": outlines}
    refused("glacierflow:stable_ground", dict(base, REPORT=path), "REPORT", [path])
    refused("glacierflow:stable_ground", dict(base, REPORT=str(tmp_path / "r.json"), CORRECT=True, OUTPUT=path),
            "OUTPUT: .* is the input INPUT", [path])


def test_a_report_may_not_replace_the_inputs_style(plugin, stable_product):  # noqa: F811
    _, path, outlines, _ = stable_product
    style = os.path.splitext(path)[0] + ".qml"
    refused("glacierflow:stable_ground", {"INPUT": path, "GLACIER_OUTLINES": outlines, "REPORT": style,
                                          "OUTPUT": path.replace(".tif", "_x.tif"), "CORRECT": True},
            "name it .json", [path])


def test_compare_stakes_output_on_the_stake_geopackage_is_refused(plugin, products, tmp_path):  # noqa: F811
    _, truth, _, _ = products
    stakes = _write_gpkg(str(tmp_path / "stakes.gpkg"),
                         [(centre(c, r), math.hypot(*truth_at(*centre(c, r)))) for c, r in INSIDE])
    refused("glacierflow:compare_stakes", {"STAKES": stakes, "SPEED_FIELD": "speed", "PRODUCTS": [truth],
                                           "OUTPUT": stakes}, "is the input STAKES", [stakes])


def test_two_outputs_on_one_file_are_refused(plugin, stable_product, tmp_path):  # noqa: F811
    _, path, outlines, _ = stable_product
    output = str(tmp_path / "corrected.tif")
    report = str(tmp_path / "corrected.json")  # its text report would be corrected.txt: fine
    import processing

    processing.run("glacierflow:stable_ground", {"INPUT": path, "GLACIER_OUTLINES": outlines, "CORRECT": True,
                                                 "OUTPUT": output, "REPORT": report})
    with pytest.raises(QgsProcessingException, match="one result would replace the other"):
        processing.run("glacierflow:forecast_ndsi", {"SERIES": path, "OUTPUT": output, "FLOW_OUTPUT": output})


def test_annual_output_on_a_scene_of_its_folder_is_refused(plugin, series):  # noqa: F811
    scene = series.images[0]
    refused("glacierflow:annual_velocity", {"FOLDER": series.folder, "YEAR_A": 2021, "ENGINE": "farneback",
                                            "OUTPUT": scene}, "input folder FOLDER", [scene])


@pytest.mark.parametrize("name", ["velocity.png", "velocity.nc", "velocity"])
def test_a_raster_output_must_be_named_tif(plugin, sample, tmp_path, name):
    import processing

    with pytest.raises(QgsProcessingException, match="name it .tif or .tiff"):
        processing.run("glacierflow:velocity_pair", {"IMAGE_A": sample.image_a, "IMAGE_B": sample.image_b,
                                                     "ENGINE": "farneback", "OUTPUT": str(tmp_path / name)})
    assert files_in(tmp_path) == set()


def test_leftovers_of_a_killed_run_are_removed_and_a_stale_sidecar_dropped(plugin, sample, tmp_path):
    import processing

    output = tmp_path / "velocity.tif"
    leftovers = [tmp_path / f".velocity.tif.dead1234{TEMPORARY_MARK}.work.tif",
                 tmp_path / f".velocity.tif.dead5678{TEMPORARY_MARK}.tif.ovr.tmp",
                 tmp_path / f".velocity.qml.dead9abc{TEMPORARY_MARK}"]
    for leftover in leftovers:
        leftover.write_bytes(b"partial")
    output.write_bytes(b"old")
    (tmp_path / "velocity.tif.aux.xml").write_text("<PAMDataset><Metadata><MDI key='STATISTICS_MAXIMUM'>9</MDI>"
                                                   "</Metadata></PAMDataset>")
    processing.run("glacierflow:velocity_pair", {"IMAGE_A": sample.image_a, "IMAGE_B": sample.image_b,
                                                 "ENGINE": "farneback", "OUTPUT": str(output)})
    assert files_in(tmp_path) == {"velocity.tif", "velocity.qml"}


def test_enum_values_are_accepted_by_number(plugin, sample, tmp_path):
    import processing
    from qgis.core import QgsApplication

    algorithm = QgsApplication.processingRegistry().algorithmById("glacierflow:velocity_pair")
    number = list(algorithm.parameterDefinition("ENGINE").options()).index("farneback")
    output = str(tmp_path / "v.tif")
    processing.run("glacierflow:velocity_pair", {"IMAGE_A": sample.image_a, "IMAGE_B": sample.image_b,
                                                 "ENGINE": number, "OUTPUT": output})
    from osgeo import gdal

    assert gdal.Open(output).GetMetadataItem("ENGINE") == "farneback"
    with pytest.raises(QgsProcessingException):
        processing.run("glacierflow:velocity_pair", {"IMAGE_A": sample.image_a, "IMAGE_B": sample.image_b,
                                                     "ENGINE": 99, "OUTPUT": str(tmp_path / "w.tif")})


def test_a_read_only_output_folder_is_a_message_not_a_traceback(plugin, stable_product, tmp_path):  # noqa: F811
    import processing

    if os.geteuid() == 0:
        pytest.skip("root writes into read-only folders")
    _, path, outlines, _ = stable_product
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o555)
    try:
        with pytest.raises(QgsProcessingException, match="permission denied|not writable|Cannot write"):
            processing.run("glacierflow:stable_ground", {"INPUT": path, "GLACIER_OUTLINES": outlines,
                                                         "REPORT": str(locked / "r.json")})
    finally:
        locked.chmod(0o755)
    assert os.listdir(locked) == []


def test_an_output_that_cannot_be_replaced_is_a_message_not_a_traceback(plugin, stable_product, tmp_path):  # noqa: F811
    import processing

    _, path, outlines, _ = stable_product
    blocking = tmp_path / "r.json"
    blocking.mkdir()  # a folder where the report should go: the rename cannot replace it
    (blocking / "keep.txt").write_text("mine")
    with pytest.raises(QgsProcessingException, match="nothing was written"):
        processing.run("glacierflow:stable_ground", {"INPUT": path, "GLACIER_OUTLINES": outlines,
                                                     "REPORT": str(blocking)})
    assert (blocking / "keep.txt").read_text() == "mine"
    assert not [name for name in os.listdir(tmp_path) if TEMPORARY_MARK in name]


def test_a_csv_layer_is_protected_too(plugin, products, tmp_path):  # noqa: F811
    from qgis.core import QgsVectorLayer

    _, truth, _, _ = products
    x, y = centre(*INSIDE[0])
    table = tmp_path / "stakes.csv"
    table.write_text(f"name,x,y,speed\nS1,{x},{y},{math.hypot(*truth_at(x, y))}\n")
    layer = QgsVectorLayer(f"file://{table}?type=csv&xField=x&yField=y&crs=EPSG:32632", "stakes", "delimitedtext")
    assert layer.isValid()
    refused("glacierflow:compare_stakes", {"STAKES": layer, "SPEED_FIELD": "speed", "PRODUCTS": [truth],
                                           "OUTPUT": str(tmp_path / "c.gpkg"), "REPORT_CSV": str(table)},
            "REPORT_CSV: .* is the input STAKES", [str(table)])
