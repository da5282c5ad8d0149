"""Outlines that would silently corrupt a result: invalid polygons are made valid, outlines that miss the
product never turn the glacier into "stable ground", and no offset is measured on the product's own glacier."""
from __future__ import annotations

import numpy as np
import pytest
from test_stable_ground import GLACIER, OFFSET, box_ring, write_polygons
from test_stable_ground import product as stable_product  # noqa: F401 (module fixture)

from glacierflow.core.errors import GlacierFlowError
from glacierflow.core.feedback import Feedback
from glacierflow.core.geo.outlines import GlacierOutlines
from glacierflow.core.validation.stable_ground import StableGroundJob, run_stable_ground


class Recorder(Feedback):
    def __init__(self) -> None:
        self.warnings: list[str] = []

    def warning(self, message: str) -> None:
        self.warnings.append(message)


def test_a_ring_traced_twice_is_made_valid_and_masks_the_glacier(stable_product, tmp_path):  # noqa: F811
    grid, _, _, _ = stable_product
    ring = box_ring(grid, 30, 70, 20, 100)
    twice = write_polygons(tmp_path / "twice.geojson", [ring + [ring[0]] + ring], grid.crs_wkt)
    recorder = Recorder()
    outlines = GlacierOutlines(twice, grid.crs_wkt, feedback=recorder)
    assert outlines.repaired == 1 and "made valid" in recorder.warnings[0]
    mask = outlines.mask(grid)
    assert mask[GLACIER].mean() > 0.95 and mask.sum() < 1.1 * mask[GLACIER].size


def test_outlines_missing_the_product_fall_back_to_its_glacier_band(stable_product, tmp_path):  # noqa: F811
    grid, path, _, _ = stable_product
    far = write_polygons(tmp_path / "far.geojson", [box_ring(grid, 3000, 3040, 2000, 2080)], grid.crs_wkt)
    recorder = Recorder()
    result = run_stable_ground(StableGroundJob(path, glacier_outlines=far, buffer_m=20.0), recorder)
    assert any("its own glacier band is used" in warning for warning in recorder.warnings)
    assert result.statistics["vx"]["median"] == pytest.approx(OFFSET[0], abs=0.5)  # not 300 m/yr of ice


def test_outlines_missing_a_product_without_glacier_band_are_refused(tmp_path):
    from glacierflow.core.io.cog import ProductWriter
    from glacierflow.core.products.velocity import PAIR_BANDS
    from training.sample import sample_grid

    grid = sample_grid((60, 60))
    path = str(tmp_path / "pair.tif")
    vx = np.full((60, 60), 5.0, np.float32)
    with ProductWriter(path, grid, PAIR_BANDS) as writer:
        writer.write_rows(0, {"vx": vx, "vy": vx, "speed": vx, "valid": np.ones_like(vx)})
        writer.finish({"INTERVAL_DAYS": "365.25"})
    far = write_polygons(tmp_path / "far.geojson", [box_ring(grid, 3000, 3040, 2000, 2080)], grid.crs_wkt)
    output = tmp_path / "corrected.tif"
    with pytest.raises(GlacierFlowError, match="whole raster, glacier included, would count as stable"):
        run_stable_ground(StableGroundJob(path, glacier_outlines=far, correct=True, output=str(output)))
    assert not output.exists()


def test_no_offset_is_measured_on_the_products_own_glacier(stable_product, tmp_path):  # noqa: F811
    grid, path, _, _ = stable_product
    # "stable areas" drawn on the ice: the product's glacier band says so
    on_ice = write_polygons(tmp_path / "ice.geojson", [box_ring(grid, 35, 65, 25, 95)], grid.crs_wkt)
    output = tmp_path / "corrected.tif"
    with pytest.raises(GlacierFlowError, match="lies on the product's own glacier band"):
        run_stable_ground(StableGroundJob(path, stable_areas=on_ice, correct=True, output=str(output)))
    assert not output.exists()
